// SPDX-License-Identifier: GPL-2.0
//! Finding btree nodes by reading the devices (upstream's `scan_for_btree_nodes`)
//! and deciding which of them fill a hole in the tree (its topology repair's use
//! of the scan). The read twin is the node reader: a node is found when its
//! header and bsets read as the reader reads them, checksums included.
//!
//! - [`examine`]: what is at one node-sized offset, if it is a node of this
//!   filesystem: btree, level, range, its bset seq (the pointer's `seq`), header
//!   seq, newest journal seq, sectors written.
//! - [`cover_gap`]: the pieces of a missing range that found nodes cover, the
//!   newest node first (by header seq, then journal seq, as upstream orders
//!   overlapping nodes), each node in one contiguous piece; then laid end to end
//!   from the start of the range, as the pointers put back will say
//!   (`BTREE_PTR_RANGE_UPDATED` where a piece is not the node's own range).

use super::super::bpos::Bpos;
use super::super::csum::Checksummer;
use super::super::data::extents_format::{BtreePtrV2, Ptr as ExtentPtr};
use super::super::sb::{Member, Sb};
use super::read::{read_bsets, BsetRef, NodeCtx, NodeHeader};
use super::write::written;

/// A node found on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Btree id from its header.
    pub btree: u32,
    /// Level from its header.
    pub level: u8,
    /// Its range, from its header.
    pub min: Bpos,
    /// End of its range.
    pub max: Bpos,
    /// The bset seq its pointer names (`btree_ptr_v2.seq`).
    pub seq: u64,
    /// The header's `BTREE_NODE_SEQ` (bumped by every rewrite).
    pub node_seq: u32,
    /// Newest journal seq of its bsets.
    pub journal_seq: u64,
    /// Sectors its bsets take.
    pub written: u32,
    /// Device it was found on.
    pub dev: u8,
    /// Sector it starts at.
    pub offset: u64,
}

impl Found {
    /// Whether `self` wins over `o` where they overlap: the newer by header seq,
    /// then by journal seq.
    pub fn newer_than(&self, o: &Found) -> bool {
        (self.node_seq, self.journal_seq) > (o.node_seq, o.journal_seq)
    }
}

/// The buckets a scan for nodes reads on one member: those its btree-allocated
/// `bitmap` (one bit per `1 << shift` sectors) marks, each once and in order, from
/// `first_bucket` up to `nbuckets`, for buckets of `bucket_sectors` sectors.
pub fn marked_buckets(
    bitmap: u64,
    shift: u8,
    bucket_sectors: u64,
    first_bucket: u64,
    nbuckets: u64,
) -> impl Iterator<Item = u64> {
    // At most 57: bit 63's range then ends at 2^63, inside a u64.
    let shift = u32::from(shift).min(57);
    let bs = bucket_sectors.max(1);
    let mut last: Option<u64> = None;
    (0..64u64)
        .filter(move |b| bitmap & (1u64 << b) != 0)
        .flat_map(move |bit| {
            let (lo, hi) = (bit << shift, (bit + 1) << shift);
            (lo / bs).max(first_bucket)..hi.div_ceil(bs).min(nbuckets)
        })
        // A bucket two granules share is read once.
        .filter(move |&b| {
            let new = !matches!(last, Some(l) if b <= l);
            if new {
                last = Some(b);
            }
            new
        })
}

/// The bucket size of member `m` and the buckets a scan for nodes of
/// `node_sectors` reads on it ([`marked_buckets`]); `None` when its buckets are
/// smaller than a node.
pub fn member_buckets(
    m: &Member<'_>,
    node_sectors: u64,
) -> Option<(u64, impl Iterator<Item = u64>)> {
    let bs = u64::from(m.bucket_size());
    if bs < node_sectors || bs == 0 {
        return None;
    }
    let buckets = marked_buckets(
        m.btree_allocated_bitmap(),
        m.btree_bitmap_shift(),
        bs,
        u64::from(m.first_bucket()),
        m.nbuckets(),
    );
    Some((bs, buckets))
}

/// What the node-sized buffer `buf` read at sector `offset` of device `dev`
/// holds: a node of the filesystem whose bset magic is `magic`, or `None`.
/// `bsets` is the caller's room for the bset list.
#[allow(clippy::too_many_arguments)]
pub fn examine(
    buf: &[u8],
    dev: u8,
    offset: u64,
    magic: u64,
    block_sectors: u32,
    node_sectors: u32,
    csum: &dyn Checksummer,
    blacklisted: &dyn Fn(u64) -> bool,
    bsets: &mut [BsetRef],
) -> Option<Found> {
    let h = NodeHeader::parse(buf)?;
    if h.magic != magic {
        return None;
    }
    let ctx = NodeCtx {
        magic,
        block_sectors,
        node_sectors,
        written: 0,
        btree_id: None,
        level: None,
        min_key: None,
        max_key: None,
        seq: None,
        range_updated: false,
        csum,
        blacklisted,
        accept_bad_csum: false,
    };
    let mut bad = false;
    let (h, n) = read_bsets(buf, &ctx, bsets, &mut |_| bad = true).ok()?;
    if n == 0 || bad || h.min_key > h.max_key {
        return None;
    }
    let bsets = &bsets[..n];
    Some(Found {
        btree: h.btree_id(),
        level: h.level(),
        min: h.min_key,
        max: h.max_key,
        seq: h.seq,
        node_seq: (h.flags >> 32) as u32,
        journal_seq: bsets.iter().map(|b| b.journal_seq).max().unwrap_or(0),
        written: written(bsets),
        dev,
        offset,
    })
}

/// What a scan reads nodes with: the filesystem's bset magic, block and node
/// sectors, the checksummer and the journal blacklist.
pub struct ScanCtx<'a> {
    /// The filesystem's bset magic.
    pub magic: u64,
    /// Sectors per block.
    pub block_sectors: u32,
    /// Sectors per btree node.
    pub node_sectors: u32,
    /// Checksums.
    pub csum: &'a dyn Checksummer,
    /// Whether a journal seq is blacklisted.
    pub blacklisted: &'a dyn Fn(u64) -> bool,
}

impl<'a> ScanCtx<'a> {
    /// The scan context of the filesystem whose superblock is `sb`.
    pub fn of(
        sb: &Sb<'_>,
        csum: &'a dyn Checksummer,
        blacklisted: &'a dyn Fn(u64) -> bool,
    ) -> ScanCtx<'a> {
        ScanCtx {
            magic: sb.bset_magic(),
            block_sectors: sb.block_sectors(),
            node_sectors: sb.btree_node_sectors(),
            csum,
            blacklisted,
        }
    }
}

/// Every node found in `buf`, the bytes of a bucket read from sector `start` of
/// device `dev`, node-sized piece by piece from its start ([`examine`] each),
/// handed to `f` in order.
pub fn examine_bucket(
    buf: &[u8],
    dev: u8,
    start: u64,
    ctx: &ScanCtx<'_>,
    bsets: &mut [BsetRef],
    f: &mut dyn FnMut(Found),
) {
    let ns = ctx.node_sectors as usize;
    if ns == 0 {
        return;
    }
    for (i, node) in buf.chunks_exact(ns << 9).enumerate() {
        let at = start.saturating_add((i * ns) as u64);
        if let Some(c) = examine(
            node,
            dev,
            at,
            ctx.magic,
            ctx.block_sectors,
            ctx.node_sectors,
            ctx.csum,
            ctx.blacklisted,
            bsets,
        ) {
            f(c);
        }
    }
}

/// One piece of a gap: the found node (index into the candidates) and the range
/// its pointer will say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Piece {
    /// Index of the found node in the candidates.
    pub node: usize,
    /// Start of the range its pointer will say.
    pub min: Bpos,
    /// End of that range (the pointer's key position).
    pub max: Bpos,
}

/// The pointer value that puts found node `c` back as piece `p` of a gap, with
/// the replicas `ptrs`, into `out` (a `btree_ptr_v2`: the node's seq and
/// sectors written, the piece's start, `BTREE_PTR_RANGE_UPDATED` where the piece
/// is not the node's own range); its length. `None` when `out` is short or the
/// node's sectors do not fit the pointer.
pub fn put_back_value(c: &Found, p: &Piece, ptrs: &[ExtentPtr], out: &mut [u8]) -> Option<usize> {
    BtreePtrV2 {
        seq: c.seq,
        sectors_written: u16::try_from(c.written).ok()?,
        flags: u16::from(p.min != c.min || p.max != c.max),
        min_key: p.min,
    }
    .write(ptrs, out)
}

/// The pieces of `start..=end` that the candidates `cands` (found nodes of the
/// gap's btree and level) cover, into `out`; `considered` (as long as `cands`)
/// is the caller's scratch. Newest candidate first; a candidate whose part of the
/// gap is not one contiguous range once newer pieces are taken is left out. The
/// pieces come back in key order, laid end to end from `start` (each starts
/// where the previous ends); the last ends where its node or the gap does.
/// Returns how many.
pub fn cover_gap(
    cands: &[Found],
    start: Bpos,
    end: Bpos,
    considered: &mut [bool],
    out: &mut [Piece],
) -> usize {
    let mut n = 0usize;
    for c in considered.iter_mut() {
        *c = false;
    }
    loop {
        // The newest candidate not considered yet.
        let mut best: Option<usize> = None;
        for (i, c) in cands.iter().enumerate() {
            if considered.get(i).copied().unwrap_or(true) {
                continue;
            }
            if best.is_none_or(|b| c.newer_than(&cands[b])) {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        considered[i] = true;
        let c = &cands[i];
        let mut lo = if c.min > start { c.min } else { start };
        let mut hi = if c.max < end { c.max } else { end };
        if lo > hi {
            continue;
        }
        // Take out what newer pieces hold; keep the node only when one
        // contiguous part is left.
        let mut ok = true;
        for p in &out[..n] {
            if p.max < lo || p.min > hi {
                continue;
            }
            if p.min <= lo && p.max >= hi {
                ok = false;
                break;
            }
            if p.min <= lo {
                lo = p.max.successor();
            } else if p.max >= hi {
                hi = p.min.predecessor();
            } else {
                ok = false;
                break;
            }
        }
        if !ok || lo > hi || n == out.len() {
            continue;
        }
        out[n] = Piece {
            node: i,
            min: lo,
            max: hi,
        };
        n += 1;
    }
    // Key order, then end to end from the gap's start.
    let pieces = &mut out[..n];
    for i in 1..pieces.len() {
        let mut j = i;
        while j > 0 && pieces[j - 1].min > pieces[j].min {
            pieces.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut next = start;
    for p in pieces.iter_mut() {
        p.min = next;
        next = p.max.successor();
    }
    n
}

#[cfg(test)]
mod tests {

    #[test]
    fn marked_buckets_are_read_once_in_order() {
        use super::marked_buckets;
        // Granules of 1024 sectors (shift 10), buckets of 768: bit 0 covers
        // buckets 0..2, bit 1 buckets 1..3 (bucket 1 shared), bit 5 buckets 6..8.
        let b: [u64; 6] = [0, 1, 2, 6, 7, 0];
        let mut got = [0u64; 6];
        let mut n = 0;
        for x in marked_buckets(0b100011, 10, 768, 0, 100) {
            got[n] = x;
            n += 1;
        }
        assert_eq!(&got[..n], &b[..5]);
        // Up to nbuckets, from first_bucket; a zero bucket size reads as 1.
        assert_eq!(marked_buckets(1, 10, 768, 1, 2).count(), 1);
        assert_eq!(marked_buckets(1, 2, 0, 0, 100).count(), 4);
        // The last granule of the widest shift ends inside a u64.
        assert_eq!(
            marked_buckets(1 << 63, 63, u64::MAX, 0, u64::MAX).count(),
            1
        );
    }

    use super::*;

    fn f(min: u64, max: u64, node_seq: u32) -> Found {
        Found {
            btree: 0,
            level: 0,
            min: Bpos::new(min, 0, 0),
            max: Bpos::new(max, 0, 0),
            seq: u64::from(node_seq) + 100,
            node_seq,
            journal_seq: 0,
            written: 8,
            dev: 0,
            offset: 0,
        }
    }

    #[test]
    fn newest_cover_the_gap_end_to_end() {
        let p = |i: u64| Bpos::new(i, 0, 0);
        // Gap 10..=50. An old node over all of it, a newer one over 20..=30.
        let cands = [f(10, 50, 1), f(20, 30, 2), f(60, 70, 9)];
        let mut seen = [false; 3];
        let mut out = [Piece::default(); 4];
        let n = cover_gap(&cands, p(10), p(50), &mut seen, &mut out);
        // The old node's part is split in two by the newer one: left out.
        assert_eq!(n, 1);
        assert_eq!(out[0].node, 1);
        assert_eq!((out[0].min, out[0].max), (p(10), p(30)));
        // Two that share it: the newer keeps its range, the older the rest.
        let cands = [f(10, 35, 1), f(30, 50, 2)];
        let n = cover_gap(&cands, p(10), p(50), &mut seen[..2], &mut out);
        assert_eq!(n, 2);
        assert_eq!(
            (out[0].node, out[0].min, out[0].max),
            (0, p(10), Bpos::new(30, 0, 0).predecessor())
        );
        assert_eq!((out[1].node, out[1].min, out[1].max), (1, p(30), p(50)));
        // Nothing over the gap.
        let n = cover_gap(&cands[..0], p(10), p(50), &mut seen[..0], &mut out);
        assert_eq!(n, 0);
    }
}
