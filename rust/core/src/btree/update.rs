// SPDX-License-Identifier: GPL-2.0
//! A node being updated: the keys not written yet, kept sorted with one key per
//! position in a caller's buffer (unpacked, as the journal holds them), ready for
//! [`super::write::write_bset`]. Inserting at a position that already has an
//! unwritten key overwrites it; deleting leaves a whiteout (a `deleted` key) that
//! hides the position's older key once written, as upstream's
//! `bch2_btree_insert_key_leaf` and `bch2_push_whiteout` do for plain keys.
//! (Extent overwrites, which trim or split the extents they overlap, are made by
//! the caller as plain key updates at the affected positions, as upstream's
//! transaction layer does before a key reaches a node.)
//!
//! Also the sizing rules upstream's node write path goes by: whether a bset fits
//! what is left of a node, when a node is full and must be rewritten, and when
//! its in-memory bsets should be sorted into one (`should_compact_all`).

use super::super::bkey::{encode_key_unpacked, Bkey, BKEY_BYTES};
use super::super::bpos::Bpos;
use super::super::ids::KeyType;
use super::format::{BNE_BYTES, BN_BYTES};

/// The buffer is full.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Full;

/// Unwritten keys of one node, in `buf[..len]`: unpacked keys in position order.
pub struct Unwritten<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Unwritten<'a> {
    /// No keys yet, over the caller's buffer.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Unwritten { buf, len: 0 }
    }

    /// Bytes the keys take (unpacked).
    pub fn bytes(&self) -> usize {
        self.len
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every key (after they were written).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The keys in order: `(header, value)`.
    pub fn iter(&self) -> UnwrittenIter<'_> {
        UnwrittenIter {
            b: &self.buf[..self.len],
        }
    }

    /// Byte offset of the first key at or after `p`, and whether it is at `p`.
    fn find(&self, p: Bpos) -> (usize, bool) {
        let mut at = 0usize;
        while at < self.len {
            let Some(k) = Bkey::read_unpacked(&self.buf[at..self.len]) else {
                break;
            };
            if k.p >= p {
                return (at, k.p == p);
            }
            at += usize::from(k.u64s) * 8;
        }
        (self.len, false)
    }

    /// Inserts `k` with value `v`, replacing an unwritten key at the same position.
    pub fn insert(&mut self, k: &Bkey, v: &[u8]) -> Result<(), Full> {
        let need = BKEY_BYTES + v.len().div_ceil(8) * 8;
        if need > 255 * 8 {
            return Err(Full);
        }
        let (at, exists) = self.find(k.p);
        let old = if exists {
            Bkey::read_unpacked(&self.buf[at..self.len])
                .map(|k| usize::from(k.u64s) * 8)
                .unwrap_or(0)
        } else {
            0
        };
        let new_len = self.len - old + need;
        if new_len > self.buf.len() {
            return Err(Full);
        }
        // Make room (or close the gap), then write the key in place.
        self.buf.copy_within(at + old..self.len, at + need);
        self.len = new_len;
        let k = Bkey {
            needs_whiteout: false,
            ..*k
        };
        encode_key_unpacked(&k, v, &mut self.buf[at..at + need]).ok_or(Full)?;
        Ok(())
    }

    /// Deletes the key at `p`: a whiteout that hides the written key there.
    pub fn delete(&mut self, p: Bpos) -> Result<(), Full> {
        let k = Bkey {
            typ: KeyType::Deleted as u8,
            p,
            ..Default::default()
        };
        self.insert(&k, &[])
    }
}

/// Iterator over [`Unwritten`] keys.
pub struct UnwrittenIter<'a> {
    b: &'a [u8],
}

impl<'a> Iterator for UnwrittenIter<'a> {
    type Item = (Bkey, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let k = Bkey::read_unpacked(self.b)?;
        let n = usize::from(k.u64s) * 8;
        let v = self.b.get(BKEY_BYTES..n)?;
        self.b = &self.b[n..];
        Some((k, v))
    }
}

/// Sectors a bset of `key_bytes` of keys takes at sector `offset` of a node
/// (the first bset carries the node header), rounded up to the block.
pub fn bset_sectors(offset: u32, key_bytes: usize, block_sectors: u32) -> u32 {
    let hdr = if offset == 0 { BN_BYTES } else { BNE_BYTES };
    let blk = (block_sectors.max(1) as usize) << 9;
    (((hdr + key_bytes).div_ceil(blk) * blk) >> 9) as u32
}

/// Whether a bset of `key_bytes` (packed or not: the caller's bound) still fits
/// the node after its `written` sectors; when not, the node must be rewritten to
/// new space (`btree_insert_btree_node_full`).
pub fn fits(written: u32, key_bytes: usize, block_sectors: u32, node_sectors: u32) -> bool {
    written
        .checked_add(bset_sectors(written, key_bytes, block_sectors))
        .is_some_and(|end| end <= node_sectors)
}

/// `btree_max_u64s`: the most key u64s a node of `node_sectors` holds.
pub fn max_u64s(node_sectors: u32) -> usize {
    ((node_sectors as usize) << 9).saturating_sub(BN_BYTES) / 8
}

/// `should_compact_all`: whether a node's second in-memory bset has grown past
/// the square root of what the node holds (`1 << ((ilog2(max_u64s) + 9) / 2)`
/// u64s), so its bsets should be sorted into one before a third is started.
pub fn should_compact_all(second_bset_u64s: usize, node_sectors: u32) -> bool {
    let m = max_u64s(node_sectors).max(1);
    let threshold = 1usize << ((m.ilog2() as usize + 9) / 2);
    second_bset_u64s > threshold
}

/// `want_new_bset` for a node whose last bset is written: a new one is started
/// while a block is left.
pub fn want_new_bset(written: u32, block_sectors: u32, node_sectors: u32) -> bool {
    written.saturating_add(block_sectors) <= node_sectors
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    #[test]
    fn unwritten_keys_match_a_model() {
        let mut buf = [0u8; 8192];
        let mut u = Unwritten::new(&mut buf);
        let mut model: BTreeMap<Bpos, (u8, Vec<u8>)> = BTreeMap::new();
        let mut x = 0x1234_5678u64;
        for i in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = Bpos::new(x % 7, (x >> 8) % 40, 0);
            if x.is_multiple_of(5) {
                if u.delete(p).is_ok() {
                    model.insert(p, (0, Vec::new()));
                }
            } else {
                let v: Vec<u8> = (0..((x >> 20) % 4) * 8)
                    .map(|b| (b as u8) ^ (i as u8))
                    .collect();
                let k = Bkey {
                    typ: 1 + (x % 30) as u8,
                    p,
                    needs_whiteout: true,
                    ..Default::default()
                };
                if u.insert(&k, &v).is_ok() {
                    model.insert(p, (k.typ, v));
                }
            }
            let got: Vec<(Bpos, u8, Vec<u8>)> =
                u.iter().map(|(k, v)| (k.p, k.typ, v.to_vec())).collect();
            let want: Vec<(Bpos, u8, Vec<u8>)> = model
                .iter()
                .map(|(p, (t, v))| (*p, *t, v.clone()))
                .collect();
            assert_eq!(got, want, "after {} updates", i + 1);
            assert!(u.iter().all(|(k, _)| !k.needs_whiteout));
        }
        // A full buffer refuses, and keeps what it had.
        let mut small = [0u8; 64];
        let mut u = Unwritten::new(&mut small);
        assert_eq!(u.insert(&Bkey::default(), &[0; 8]), Ok(()));
        let before = u.bytes();
        assert_eq!(
            u.insert(
                &Bkey {
                    p: Bpos::new(1, 0, 0),
                    ..Default::default()
                },
                &[]
            ),
            Err(Full)
        );
        assert_eq!(u.bytes(), before);
    }

    #[test]
    fn sizing_rules() {
        // 64 KiB nodes, 512-byte blocks.
        assert_eq!(bset_sectors(0, 0, 1), 1);
        assert_eq!(bset_sectors(3, 512 - 40, 1), 1);
        assert_eq!(bset_sectors(3, 512 - 39, 1), 2);
        assert!(fits(120, 4000, 1, 128));
        assert!(!fits(120, 4096, 1, 128));
        assert!(!fits(128, 0, 1, 128));
        // 256 KiB: max_u64s 32748, ilog2 14, threshold 1 << 11.
        assert_eq!(max_u64s(512), 32748);
        assert!(!should_compact_all(2048, 512));
        assert!(should_compact_all(2049, 512));
        assert!(want_new_bset(127, 1, 128));
        assert!(!want_new_bset(128, 1, 128));
    }
}
