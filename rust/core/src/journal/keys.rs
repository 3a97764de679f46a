// SPDX-License-Identifier: GPL-2.0
//! Keys not yet in the btrees: collected from the jsets that replay, sorted for
//! overlay, newest version per position kept, and overlaid on a node's sorted keys.
//!
//! No allocation: a [`JournalKey`] names its value by (buffer index, offset, length)
//! in the caller's jset buffers, and the caller provides the arrays.

use super::super::bkey::{Bkey, BKEY_BYTES};
use super::super::bpos::Bpos;
use super::super::bytes::le64;
use super::super::ids::KeyType;
use super::read::{entry, Jset};

/// A key from the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalKey {
    /// Btree id.
    pub btree: u32,
    /// Level in the btree.
    pub level: u8,
    /// Header.
    pub k: Bkey,
    /// Journal sequence of the jset it came from.
    pub seq: u64,
    /// Order of the key within the replay (ties between equal seqs).
    pub order: u32,
    /// Index of the caller's buffer holding the value.
    pub buf: u32,
    /// Offset of the value in that buffer.
    pub off: u32,
    /// Length of the value in bytes.
    pub len: u32,
}

impl JournalKey {
    /// The value bytes, from the caller's buffers.
    pub fn val<'a, B: AsRef<[u8]>>(&self, bufs: &'a [B]) -> &'a [u8] {
        bufs.get(self.buf as usize)
            .and_then(|b| {
                b.as_ref()
                    .get(self.off as usize..(self.off as usize).checked_add(self.len as usize)?)
            })
            .unwrap_or(&[])
    }
    /// Accounting keys are deltas, summed rather than replaced.
    pub fn is_accounting(&self) -> bool {
        self.k.typ == KeyType::Accounting as u8
    }
}

/// Calls `f` for every key of the `btree_keys` / `write_buffer_keys` entries of `j`,
/// whose bytes are buffer `buf` starting at `jset_off` (the jset's own start).
/// `order` numbers keys in replay order. Keys that do not fit their entry end it.
pub fn jset_keys(
    j: &Jset<'_>,
    buf: u32,
    jset_off: usize,
    order: &mut u32,
    f: &mut dyn FnMut(JournalKey),
) {
    let base = j.entries.as_ptr() as usize;
    for e in j.iter() {
        if e.typ != entry::BTREE_KEYS && e.typ != entry::WRITE_BUFFER_KEYS {
            continue;
        }
        // offset of this entry's data inside the jset's entries area
        let data_off = (e.data.as_ptr() as usize).wrapping_sub(base);
        let mut at = 0usize;
        while let Some(k) = e.data.get(at..).and_then(Bkey::read_unpacked) {
            let n = k.u64s as usize * 8;
            if n < BKEY_BYTES || at + n > e.data.len() {
                break;
            }
            let off = jset_off + super::read::JSET_BYTES + data_off + at + BKEY_BYTES;
            f(JournalKey {
                btree: e.btree_id as u32,
                level: e.level,
                k,
                seq: j.seq,
                order: *order,
                buf,
                off: off as u32,
                len: (n - BKEY_BYTES) as u32,
            });
            *order = order.wrapping_add(1);
            at += n;
        }
    }
}

/// Sorts keys for overlay: by btree, level and position, oldest first.
pub fn sort(keys: &mut [JournalKey]) {
    keys.sort_unstable_by_key(|j| (j.btree, j.level, j.k.p, j.seq, j.order));
}

/// Keeps the newest key per (btree, level, position) of sorted `keys`, compacting
/// in place; accounting deltas are all kept. Returns the new length.
pub fn dedup_newest(keys: &mut [JournalKey]) -> usize {
    let mut out = 0usize;
    for i in 0..keys.len() {
        let k = keys[i];
        if out > 0 {
            let last = keys[out - 1];
            if last.btree == k.btree
                && last.level == k.level
                && last.k.p == k.k.p
                && !k.is_accounting()
            {
                keys[out - 1] = k;
                continue;
            }
        }
        keys[out] = k;
        out += 1;
    }
    out
}

/// The sorted keys of `btree` at `level` with positions in `[min, max]`.
pub fn keys_in(keys: &[JournalKey], btree: u32, level: u8, min: Bpos, max: Bpos) -> &[JournalKey] {
    let lo = keys.partition_point(|j| (j.btree, j.level, j.k.p) < (btree, level, min));
    let hi = keys.partition_point(|j| (j.btree, j.level, j.k.p) <= (btree, level, max));
    keys.get(lo..hi.max(lo)).unwrap_or(&[])
}

/// One position of an overlaid view.
#[derive(Clone, Copy, Debug)]
pub enum Overlaid<'n, 'j> {
    /// Only the node has this position.
    Node(Bkey, &'n [u8]),
    /// The journal's newest key replaces the node's (may be a deletion).
    Journal(&'j JournalKey),
    /// Accounting deltas at a position, with the node's key if it has one: see
    /// [`accounting_sum`].
    Accounting(Option<(Bkey, &'n [u8])>, &'j [JournalKey]),
}

/// Merges a node's sorted keys with the sorted, deduplicated journal keys of the
/// same btree, level and range: at equal positions the journal wins.
pub struct Overlay<'n, 'j, I: Iterator<Item = (Bkey, &'n [u8])>> {
    node: core::iter::Peekable<I>,
    j: &'j [JournalKey],
}

impl<'n, 'j, I: Iterator<Item = (Bkey, &'n [u8])>> Overlay<'n, 'j, I> {
    /// Overlays `j` on `node`.
    pub fn new(node: I, j: &'j [JournalKey]) -> Self {
        Overlay {
            node: node.peekable(),
            j,
        }
    }
}

impl<'n, 'j, I: Iterator<Item = (Bkey, &'n [u8])>> Iterator for Overlay<'n, 'j, I> {
    type Item = Overlaid<'n, 'j>;
    fn next(&mut self) -> Option<Self::Item> {
        let np = self.node.peek().map(|(k, _)| k.p);
        let jp = self.j.first().map(|j| j.k.p);
        match (np, jp) {
            (None, None) => None,
            (Some(a), Some(b)) if a < b => self.node.next().map(|(k, v)| Overlaid::Node(k, v)),
            (Some(_), None) => self.node.next().map(|(k, v)| Overlaid::Node(k, v)),
            (np, Some(b)) => {
                let node_key = if np == Some(b) {
                    self.node.next()
                } else {
                    None
                };
                let n = self.j.iter().take_while(|j| j.k.p == b).count();
                let (group, rest) = self.j.split_at(n);
                self.j = rest;
                if group[0].is_accounting() {
                    Some(Overlaid::Accounting(node_key, group))
                } else {
                    group.last().map(Overlaid::Journal)
                }
            }
        }
    }
}

fn ver(k: &Bkey) -> (u32, u64) {
    (k.version_hi, k.version_lo)
}

/// Which value an accounting position shows once the journal is overlaid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AcctView {
    /// As the reference lists it: [`accounting_sum`].
    Listing,
    /// As replay leaves it, what gc compares with: [`accounting_total`].
    Replayed,
}

impl AcctView {
    /// The value of one position in this view: [`accounting_sum`] or
    /// [`accounting_total`].
    pub fn value<B: AsRef<[u8]>>(
        self,
        node: Option<(Bkey, &[u8])>,
        deltas: &[JournalKey],
        bufs: &[B],
        out: &mut [u8],
    ) -> Option<(Bkey, usize)> {
        match self {
            AcctView::Listing => accounting_sum(node, deltas, bufs, out),
            AcctView::Replayed => accounting_total(node, deltas, bufs, out),
        }
    }
}

/// Adds every delta newer than the btree key `node` to the counters in
/// `out[..*len]`, widening them with zeros; `hdr` becomes the first delta's header
/// when it is `None`, and takes the newest version. `None` when `out` is too small.
fn add_newer_deltas<B: AsRef<[u8]>>(
    node: Option<(Bkey, &[u8])>,
    deltas: &[JournalKey],
    bufs: &[B],
    out: &mut [u8],
    hdr: &mut Option<Bkey>,
    len: &mut usize,
) -> Option<()> {
    let base_ver = node.map(|(k, _)| ver(&k));
    for d in deltas
        .iter()
        .filter(|d| base_ver.is_none_or(|b| ver(&d.k) > b))
    {
        let v = d.val(bufs);
        if v.len() > *len {
            out.get_mut(*len..v.len())?.fill(0);
            *len = v.len();
        }
        for i in (0..v.len() / 8).map(|i| i * 8) {
            let a = le64(out, i).unwrap_or(0);
            let b = le64(v, i).unwrap_or(0);
            out[i..i + 8].copy_from_slice(&a.wrapping_add(b).to_le_bytes());
        }
        match hdr {
            None => *hdr = Some(d.k),
            Some(h) if ver(&d.k) > ver(h) => {
                h.version_hi = d.k.version_hi;
                h.version_lo = d.k.version_lo;
            }
            _ => {}
        }
    }
    Some(())
}

/// The value upstream's overlay shows for accounting deltas at one position: the
/// sum of the deltas newer than the btree key (all of them when the btree has no
/// key), in place of the btree key; or the btree key itself when no delta is newer.
/// Writes the counters into `out` and returns the header and value length, or
/// `None` when `out` is too small.
pub fn accounting_sum<B: AsRef<[u8]>>(
    node: Option<(Bkey, &[u8])>,
    deltas: &[JournalKey],
    bufs: &[B],
    out: &mut [u8],
) -> Option<(Bkey, usize)> {
    let (mut hdr, mut len) = (None, 0usize);
    add_newer_deltas(node, deltas, bufs, out, &mut hdr, &mut len)?;
    match (hdr, node) {
        (Some(h), _) => Some((h, len)),
        (None, Some((k, v))) => {
            out.get_mut(..v.len())?.copy_from_slice(v);
            Some((k, v.len()))
        }
        (None, None) => None,
    }
}

/// The value accounting at one position really has once the journal is replayed
/// (what upstream keeps in memory and gc compares with): the btree key's counters
/// plus every delta newer than it. [`accounting_sum`] gives the listing's view,
/// which shows the newer deltas alone.
pub fn accounting_total<B: AsRef<[u8]>>(
    node: Option<(Bkey, &[u8])>,
    deltas: &[JournalKey],
    bufs: &[B],
    out: &mut [u8],
) -> Option<(Bkey, usize)> {
    let (mut hdr, mut len) = match node {
        Some((k, v)) => {
            out.get_mut(..v.len())?.copy_from_slice(v);
            (Some(k), v.len())
        }
        None => (None, 0),
    };
    add_newer_deltas(node, deltas, bufs, out, &mut hdr, &mut len)?;
    hdr.map(|h| (h, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jk(pos: u64, typ: KeyType, seq: u64, ver: u64, off: u32) -> JournalKey {
        JournalKey {
            btree: 1,
            level: 0,
            k: Bkey {
                typ: typ as u8,
                p: Bpos::new(0, pos, 0),
                version_lo: ver,
                ..Default::default()
            },
            seq,
            order: off,
            buf: 0,
            off,
            len: 8,
        }
    }

    #[test]
    fn newest_wins_and_accounting_deltas_stay() {
        let mut keys = [
            jk(5, KeyType::Set, 2, 0, 8),
            jk(5, KeyType::Deleted, 3, 0, 16),
            jk(1, KeyType::Set, 1, 0, 0),
            jk(9, KeyType::Accounting, 1, 10, 24),
            jk(9, KeyType::Accounting, 2, 20, 32),
        ];
        sort(&mut keys);
        let n = dedup_newest(&mut keys);
        assert_eq!(n, 4);
        assert_eq!(keys[1].k.typ, KeyType::Deleted as u8);
        assert_eq!(
            keys_in(&keys[..n], 1, 0, Bpos::new(0, 2, 0), Bpos::MAX).len(),
            3
        );
    }

    #[test]
    fn overlay_and_accounting_sum() {
        let mut buf = [0u8; 40];
        buf[24..32].copy_from_slice(&3u64.to_le_bytes());
        buf[32..40].copy_from_slice(&4u64.to_le_bytes());
        let bufs = [&buf[..]];
        let keys = [
            jk(5, KeyType::Set, 1, 0, 0),
            jk(9, KeyType::Accounting, 1, 10, 24),
            jk(9, KeyType::Accounting, 2, 20, 32),
        ];
        let n1 = Bkey {
            p: Bpos::new(0, 3, 0),
            ..Default::default()
        };
        let n2 = Bkey {
            p: Bpos::new(0, 5, 0),
            ..Default::default()
        };
        let base = 100u64.to_le_bytes();
        let n3 = Bkey {
            p: Bpos::new(0, 9, 0),
            typ: KeyType::Accounting as u8,
            version_lo: 15,
            ..Default::default()
        };
        let node = [(n1, &[][..]), (n2, &[][..]), (n3, &base[..])];
        let v: std::vec::Vec<_> = Overlay::new(node.iter().copied(), &keys).collect();
        assert_eq!(v.len(), 3);
        assert!(matches!(v[0], Overlaid::Node(k, _) if k.p == n1.p));
        assert!(matches!(v[1], Overlaid::Journal(j) if j.k.p == n2.p));
        let Overlaid::Accounting(node, deltas) = v[2] else {
            panic!()
        };
        let mut out = [0u8; 16];
        // only the delta newer than the btree key's version (20 > 15) shows
        let (k, len) = accounting_sum(node, deltas, &bufs, &mut out).unwrap();
        assert_eq!((k.version_lo, len), (20, 8));
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 4);
        // without a btree key: every delta, summed
        let (_, len) = accounting_sum(None, deltas, &bufs, &mut out).unwrap();
        assert_eq!(u64::from_le_bytes(out[..len].try_into().unwrap()), 7);
        // replayed: the btree key's 100 plus the newer delta, at the newer version
        let (k, len) = AcctView::Replayed
            .value(node, deltas, &bufs, &mut out)
            .unwrap();
        assert_eq!((k.version_lo, len), (20, 8));
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 104);
    }
}
