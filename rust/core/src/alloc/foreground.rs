// SPDX-License-Identifier: GPL-2.0
//! Choosing space for a new btree node (upstream's `alloc/foreground.c` as an
//! offline writer with no open buckets needs it): which free bucket, which piece
//! of it, and what the member's btree-allocated bitmap must then mark. The caller
//! walks the freespace btree and hands each candidate here; the read twins are
//! `check_alloc_info`'s freespace checks and gc's bitmap check.
//!
//! - Free buckets are the freespace btree's extents over `genbits | bucket`
//!   ([`super::trigger::freespace_genbits`]); the lowest genbits class first, the
//!   lowest bucket within it ([`FreespaceCursor`] order), on each device first
//!   among buckets whose whole range the bitmap already marks, then any.
//! - A candidate is taken only when its alloc key agrees it is free, with the
//!   same genbits, and nothing waits on an unflushed journal entry for it
//!   ([`bucket_usable`]).
//! - A bucket yields `bucket_size / node_sectors` nodes from its start; the rest
//!   of a bucket a run leaves is not reused.

use super::super::data::extents_format::Ptr;
use super::format::{AllocV4, DATA_FREE};
use super::trigger::freespace_genbits;

/// Bits of a freespace position that hold the bucket (the rest: genbits).
pub const FREESPACE_BUCKET_MASK: u64 = (1 << 56) - 1;

/// Why a candidate bucket is not taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Skip {
    /// Outside `first_bucket..nbuckets`.
    Invalid,
    /// Its alloc key does not say free, or its genbits differ from the freespace
    /// key's (a stale freespace key: upstream deletes it later).
    NotFree,
    /// It emptied in a journal entry not flushed yet.
    JournalPending,
}

/// Whether bucket `bucket` (freespace position `pos`) with alloc key `a` can be
/// allocated on a device of `first_bucket..nbuckets` whose journal is flushed to
/// `flushed_seq` (`try_alloc_bucket_pos`'s checks).
pub fn bucket_usable(
    pos: u64,
    a: &AllocV4,
    first_bucket: u64,
    nbuckets: u64,
    flushed_seq: u64,
) -> Result<(), Skip> {
    let bucket = pos & FREESPACE_BUCKET_MASK;
    if bucket < first_bucket || bucket >= nbuckets {
        return Err(Skip::Invalid);
    }
    if a.data_type != DATA_FREE || (pos & !FREESPACE_BUCKET_MASK) != freespace_genbits(a) {
        return Err(Skip::NotFree);
    }
    if a.journal_seq_empty > flushed_seq {
        return Err(Skip::JournalPending);
    }
    Ok(())
}

/// `bch2_dev_btree_bitmap_marked_sectors`: whether a member bitmap at `shift`
/// marks every granule of `start..start + sectors`.
pub fn bitmap_marked(bitmap: u64, shift: u8, start: u64, sectors: u64) -> bool {
    let shift = u32::from(shift).min(63);
    let end = start.saturating_add(sectors);
    if end > (64u64 << shift) {
        return false;
    }
    let mut bit = start >> shift;
    while bit < 64 && (bit << shift) < end {
        if bitmap & (1 << bit) == 0 {
            return false;
        }
        bit += 1;
    }
    true
}

/// `__bch2_dev_btree_bitmap_mark` without growing the shift: the bitmap with
/// `start..start + sectors` marked, or `None` when that lies past what the shift
/// covers (the shift would have to grow).
pub fn bitmap_mark(bitmap: u64, shift: u8, start: u64, sectors: u64) -> Option<u64> {
    let shift = u32::from(shift).min(63);
    let end = start.saturating_add(sectors);
    if end > (64u64 << shift) {
        return None;
    }
    let mut b = bitmap;
    let mut bit = start >> shift;
    while bit < 64 && (bit << shift) < end {
        b |= 1 << bit;
        bit += 1;
    }
    Some(b)
}

/// Nodes a bucket of `bucket_size` sectors holds (the tail is never used).
pub fn nodes_per_bucket(bucket_size: u32, node_sectors: u32) -> u32 {
    bucket_size.checked_div(node_sectors).unwrap_or(0)
}

/// One device's space as the btree node allocator sees it: its bucket geometry,
/// its btree-allocated bitmap, and the bucket being filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpace {
    /// Member index.
    pub dev: u32,
    /// Bucket size in sectors.
    pub bucket_size: u64,
    /// First bucket that may hold data.
    pub first_bucket: u64,
    /// Buckets of the device (`first_bucket..nbuckets` may hold data).
    pub nbuckets: u64,
    /// The member's btree-allocated bitmap.
    pub bitmap: u64,
    /// Sectors per bitmap bit, as a shift.
    pub shift: u8,
    /// The bucket being filled: (bucket, gen, nodes handed out of it).
    pub open: Option<(u64, u8, u32)>,
}

impl NodeSpace {
    /// Member `dev` as its superblock entry `m` describes it, no bucket open.
    pub fn of_member(dev: u32, m: &super::super::sb::Member<'_>) -> NodeSpace {
        NodeSpace {
            dev,
            bucket_size: u64::from(m.bucket_size()),
            first_bucket: u64::from(m.first_bucket()),
            nbuckets: m.nbuckets(),
            bitmap: m.btree_allocated_bitmap(),
            shift: m.btree_bitmap_shift(),
            open: None,
        }
    }

    /// Nodes of `node_sectors` one of this device's buckets holds.
    fn per_bucket(&self, node_sectors: u32) -> u32 {
        u32::try_from(self.bucket_size)
            .map(|bs| nodes_per_bucket(bs, node_sectors))
            .unwrap_or(0)
    }

    /// Whether this device's buckets hold a node of `node_sectors` at all.
    pub fn holds_nodes(&self, node_sectors: u32) -> bool {
        self.per_bucket(node_sectors) > 0
    }

    /// Whether a new bucket must be opened before the next node.
    pub fn needs_bucket(&self, node_sectors: u32) -> bool {
        let per = self.per_bucket(node_sectors);
        self.open.is_none_or(|(_, _, n)| n >= per)
    }

    /// Whether free bucket `bucket` is a candidate in a pass over the buckets
    /// the bitmap marks (`want_marked`) or over any.
    pub fn candidate(&self, bucket: u64, want_marked: bool) -> bool {
        !want_marked
            || bucket
                .checked_mul(self.bucket_size)
                .is_some_and(|at| bitmap_marked(self.bitmap, self.shift, at, self.bucket_size))
    }

    /// The positions of the freespace extent `[start, end)` worth looking at:
    /// those of buckets in `first_bucket..nbuckets`, in the extent's genbits
    /// class (an extent cannot hold more; a damaged one that claims more is not
    /// walked past the device's end).
    pub fn positions(&self, start: u64, end: u64) -> core::ops::Range<u64> {
        let class = start & !FREESPACE_BUCKET_MASK;
        let lo = start.max(class | self.first_bucket.min(FREESPACE_BUCKET_MASK));
        let hi = end.min(class | self.nbuckets.min(FREESPACE_BUCKET_MASK));
        lo..hi.max(lo)
    }

    /// The free bucket to open next (upstream's bucket choice, as an allocator
    /// with no open buckets makes it): from `extents`, this device's freespace
    /// extents lowest first, a bucket the bitmap marks in a first pass and any in
    /// a second, never one `busy` names, and only one whose alloc key (from
    /// `alloc_key`) [`bucket_usable`] accepts with the journal flushed to
    /// `flushed_seq`. Returns its freespace position, the bucket and its gen; the
    /// caller takes the position out of the freespace btree.
    pub fn find_bucket<E>(
        &self,
        extents: &[(u64, u64)],
        flushed_seq: u64,
        busy: &dyn Fn(u64) -> bool,
        alloc_key: &mut dyn FnMut(u64) -> Result<AllocV4, E>,
    ) -> Result<Option<(u64, u64, u8)>, E> {
        for want_marked in [true, false] {
            for &(start, end) in extents {
                for pos in self.positions(start, end) {
                    let bucket = pos & FREESPACE_BUCKET_MASK;
                    if !self.candidate(bucket, want_marked) || busy(bucket) {
                        continue;
                    }
                    let a = alloc_key(bucket)?;
                    if bucket_usable(pos, &a, self.first_bucket, self.nbuckets, flushed_seq).is_ok()
                    {
                        return Ok(Some((pos, bucket, a.gen)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The next node-sized piece of the open bucket, as a pointer (`None` when
    /// no bucket is open or the open one is full: see [`NodeSpace::needs_bucket`]).
    pub fn next_piece(&mut self, node_sectors: u32) -> Option<Ptr> {
        if self.needs_bucket(node_sectors) {
            return None;
        }
        let (bucket, gen, n) = self.open?;
        let offset = bucket
            .checked_mul(self.bucket_size)?
            .checked_add(u64::from(n) * u64::from(node_sectors))?;
        self.open = Some((bucket, gen, n + 1));
        Some(Ptr {
            dev: u8::try_from(self.dev).ok()?,
            offset,
            gen,
            cached: false,
            unwritten: false,
        })
    }
}

/// A piece of a freespace extent left after a punch: `(end, size)`, if any.
pub type Piece = Option<(u64, u64)>;

/// What is left of the freespace extent `[start, end)` once position `pos` inside
/// it is taken (the transaction layer's extent overwrite): the front piece and the
/// back piece, each as `(end, size)` when not empty. The key at `end` keeps its
/// position when the back piece is left; otherwise it goes.
pub fn freespace_punch(start: u64, end: u64, pos: u64) -> (Piece, Piece) {
    let front = (pos > start).then_some((pos, pos - start));
    let back = pos
        .checked_add(1)
        .filter(|&next| end > next)
        .map(|next| (end, end - next));
    (front, back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_space_hands_out_pieces_in_order() {
        let mut d = NodeSpace {
            dev: 1,
            bucket_size: 256,
            first_bucket: 16,
            nbuckets: 512,
            // Bit i marks sectors [i << 9, (i + 1) << 9): buckets 2 and 3 of 256.
            bitmap: 0b10,
            shift: 9,
            open: None,
        };
        assert!(d.holds_nodes(128) && !d.holds_nodes(512));
        assert!(d.needs_bucket(128));
        assert_eq!(d.next_piece(128), None);
        assert!(d.candidate(2, true) && d.candidate(3, true));
        assert!(!d.candidate(4, true) && d.candidate(4, false));
        assert!(!d.candidate(u64::MAX, true));
        d.open = Some((40, 7, 0));
        let p = d.next_piece(128).unwrap();
        assert_eq!((p.dev, p.offset, p.gen, p.cached), (1, 40 * 256, 7, false));
        assert_eq!(d.next_piece(128).unwrap().offset, 40 * 256 + 128);
        assert!(d.needs_bucket(128));
        assert_eq!(d.next_piece(128), None);
        // A position past what a sector offset holds is no piece, not a panic.
        d.open = Some((u64::MAX, 0, 0));
        assert_eq!(d.next_piece(128), None);
        // Only positions of the device's buckets are looked at, whatever the
        // extent claims.
        let g = 1u64 << 56;
        assert_eq!(d.positions(0, 20), 16..20);
        assert_eq!(d.positions(g | 100, g | 200), (g | 100)..(g | 200));
        assert_eq!(d.positions(g | 500, u64::MAX), (g | 500)..(g | 512));
        assert_eq!(d.positions(600, 700), 600..600);
        assert!(d.positions(u64::MAX - 1, u64::MAX).is_empty());
    }

    #[test]
    fn find_bucket_marked_first_then_any() {
        let d = NodeSpace {
            dev: 0,
            bucket_size: 256,
            first_bucket: 16,
            nbuckets: 512,
            // Bit i marks sectors [i << 9, (i + 1) << 9): buckets 2 and 3, and
            // (bit 20) buckets 40 and 41.
            bitmap: 0b10 | (1 << 20),
            shift: 9,
            open: None,
        };
        let free = |gen| AllocV4 {
            gen,
            ..Default::default()
        };
        let mut asked = std::vec::Vec::new();
        let mut key = |b: u64| -> Result<AllocV4, ()> {
            asked.push(b);
            Ok(free(3))
        };
        // Bucket 20 comes first in the extents, but 40 is marked: the marked
        // pass takes it without asking for 20's alloc key.
        let got = d.find_bucket(&[(20, 22), (40, 42)], 9, &|b| b == 41, &mut key);
        assert_eq!(got, Ok(Some((40, 40, 3))));
        assert_eq!(asked, [40]);
        // Nothing marked is free: any, in order, skipping busy ones; positions
        // below first_bucket are not looked at.
        let got = d.find_bucket(&[(10, 22)], 9, &|b| b == 16, &mut |_| Ok::<_, ()>(free(0)));
        assert_eq!(got, Ok(Some((17, 17, 0))));
        // A bucket its alloc key says is not free is passed over; none is left.
        let used = AllocV4 {
            data_type: super::super::format::DATA_USER,
            ..Default::default()
        };
        assert_eq!(
            d.find_bucket(&[(17, 19)], 9, &|_| false, &mut |_| Ok::<_, ()>(used)),
            Ok(None)
        );
        // The lookup's error comes back as it is.
        assert_eq!(
            d.find_bucket(&[(17, 19)], 9, &|_| false, &mut |_| Err::<AllocV4, _>(7)),
            Err(7)
        );
    }

    #[test]
    fn usable_and_bitmap() {
        let free = AllocV4 {
            gen: 17,
            oldest_gen: 0,
            ..Default::default()
        };
        let genbits = 1u64 << 56;
        assert_eq!(bucket_usable(genbits | 40, &free, 16, 512, 9), Ok(()));
        assert_eq!(bucket_usable(40, &free, 16, 512, 9), Err(Skip::NotFree));
        assert_eq!(
            bucket_usable(genbits | 8, &free, 16, 512, 9),
            Err(Skip::Invalid)
        );
        let pending = AllocV4 {
            journal_seq_empty: 10,
            ..free
        };
        assert_eq!(
            bucket_usable(genbits | 40, &pending, 16, 512, 9),
            Err(Skip::JournalPending)
        );
        // Shift 13: 4 MiB granules; a 512-sector node at 40000 is in granule 4.
        assert!(!bitmap_marked(0, 13, 40000, 512));
        let b = bitmap_mark(0, 13, 40000, 512).unwrap();
        assert_eq!(b, 1 << 4);
        assert!(bitmap_marked(b, 13, 40000, 512));
        assert_eq!(bitmap_mark(0, 13, 64 << 13, 1), None);
        assert_eq!(bitmap_mark(0, 13, 8191, 2), Some(3));
    }

    #[test]
    fn punch() {
        assert_eq!(freespace_punch(10, 20, 10), (None, Some((20, 9))));
        assert_eq!(freespace_punch(10, 20, 19), (Some((19, 9)), None));
        assert_eq!(freespace_punch(10, 20, 14), (Some((14, 4)), Some((20, 5))));
        assert_eq!(freespace_punch(10, 11, 10), (None, None));
        // The last position there is: no back piece, and no panic.
        assert_eq!(
            freespace_punch(u64::MAX - 2, u64::MAX, u64::MAX),
            (Some((u64::MAX, 2)), None)
        );
        assert_eq!(nodes_per_bucket(256, 32), 8);
    }
}
