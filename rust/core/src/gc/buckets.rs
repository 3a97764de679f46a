// SPDX-License-Identifier: GPL-2.0
//! Mark and sweep over one device's buckets: what every pointer says each bucket
//! holds (data type, dirty and cached sectors, stripe references, oldest pointer
//! gen), checked against the bucket's gen as it is marked, then compared with the
//! bucket's alloc key. The bucket table is the caller's memory.

use super::super::alloc::format::{
    data_type_is_empty, AllocV4, DATA_CACHED, DATA_FREE, DATA_JOURNAL, DATA_NEED_DISCARD,
    DATA_NEED_GC_GENS, DATA_SB, DATA_STRIPE, DATA_USER,
};
use super::super::bpos::Bpos;
use super::super::sb::format::SB_SECTOR;
use super::super::sb::Sb;
use super::finding::{AllocField, Finding, Kind};

/// `BUCKET_GC_GEN_MAX`: how far a pointer's gen may fall behind its bucket's.
pub const BUCKET_GC_GEN_MAX: u8 = 96;

/// `gen_cmp`.
pub fn gen_cmp(a: u8, b: u8) -> i8 {
    a.wrapping_sub(b) as i8
}

/// `gen_after`: how many gens `a` is after `b` (0 when not after).
pub fn gen_after(a: u8, b: u8) -> u8 {
    gen_cmp(a, b).max(0) as u8
}

/// `bucket_data_type`: cached and stripe data count as user data for mixing rules.
pub fn bucket_data_type(t: u8) -> u8 {
    if t == DATA_CACHED || t == DATA_STRIPE {
        DATA_USER
    } else {
        t
    }
}

/// One bucket as gc sees it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Gen from the alloc key.
    pub gen: u8,
    /// An alloc key exists for the bucket.
    pub gen_valid: bool,
    /// Data type the pointers (or sb/journal marking) give it; 0 when none.
    pub data_type: u8,
    /// Dirty sectors counted.
    pub dirty: u32,
    /// Cached sectors counted.
    pub cached: u32,
    /// Stripes referencing the bucket.
    pub stripe_refcount: u32,
    /// Some pointer references the bucket.
    pub has_ptr: bool,
    /// Oldest gen among the pointers into the bucket.
    pub oldest_ptr_gen: u8,
    /// The bucket's gen in the `bucket_gens` btree (0 without a key, as upstream
    /// reads a missing one).
    pub bucket_gens_gen: u8,
}

/// The oldest gen a gens pass gives a bucket whose alloc key is `a` (upstream's
/// `bch2_gc_gens`): its own gen, lowered to the gen of any pointer into it that is
/// older.
pub fn oldest_gen_target(a: &AllocV4, g: &Bucket) -> u8 {
    if g.has_ptr && gen_cmp(g.oldest_ptr_gen, a.gen) < 0 {
        g.oldest_ptr_gen
    } else {
        a.gen
    }
}

/// One member device's buckets, with what gc needs to know of the member.
pub struct DevBuckets<'a> {
    /// Device index.
    pub dev: u32,
    /// `first_bucket`.
    pub first_bucket: u64,
    /// Bucket size in sectors.
    pub bucket_size: u16,
    /// The table, one entry per bucket (`nbuckets` long).
    pub buckets: &'a mut [Bucket],
    /// `btree_bitmap_shift` of the member.
    pub bitmap_shift: u8,
    /// `btree_allocated_bitmap` of the member.
    pub bitmap: u64,
    /// Bitmap regions the btree nodes found occupy.
    pub bitmap_used: u64,
    /// A node lies past what the bitmap can mark at its shift.
    pub bitmap_beyond: bool,
}

/// What a pointer is, for marking.
#[derive(Clone, Copy, Debug)]
pub struct PtrRef {
    /// Btree and level of the key holding the pointer.
    pub btree: u32,
    /// Level of the key (0 for data, > 0 for a node pointer).
    pub level: u8,
    /// Position of the key.
    pub pos: Bpos,
    /// Sector on the device.
    pub offset: u64,
    /// Pointer gen.
    pub gen: u8,
    /// Cached copy.
    pub cached: bool,
    /// Data type (btree, user, cached, stripe, parity).
    pub data_type: u8,
    /// Sectors it accounts for.
    pub sectors: u32,
}

impl<'a> DevBuckets<'a> {
    /// Buckets `sb`'s member `dev` has (0 when it is not a member): how long a
    /// table [`DevBuckets::new`] needs.
    pub fn nbuckets_of(sb: &Sb<'_>, dev: u32) -> u64 {
        sb.member(dev as usize)
            .filter(|m| m.exists())
            .map(|m| m.nbuckets())
            .unwrap_or(0)
    }

    /// A device of `sb`'s member `dev`, over `buckets` (at least `nbuckets` long,
    /// reset here), with the superblocks and journal buckets its own superblock
    /// `dev_sb` lists already marked (none when the device is absent).
    pub fn new(
        sb: &Sb<'_>,
        dev: u32,
        buckets: &'a mut [Bucket],
        dev_sb: Option<&Sb<'_>>,
    ) -> Option<DevBuckets<'a>> {
        let m = sb.member(dev as usize).filter(|m| m.exists())?;
        let n = usize::try_from(m.nbuckets()).ok()?;
        let buckets = buckets.get_mut(..n)?;
        buckets.fill(Bucket::default());
        let mut d = DevBuckets {
            dev,
            first_bucket: u64::from(m.first_bucket()),
            bucket_size: m.bucket_size(),
            buckets,
            bitmap_shift: m.btree_bitmap_shift(),
            bitmap: m.btree_allocated_bitmap(),
            bitmap_used: 0,
            bitmap_beyond: false,
        };
        if let Some(s) = dev_sb {
            d.mark_metadata(s);
        }
        Some(d)
    }

    /// Number of buckets.
    pub fn nbuckets(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn bucket_of(&self, sector: u64) -> u64 {
        sector / u64::from(self.bucket_size.max(1))
    }

    /// Marks `[start, end)` as metadata of type `t` (`bch2_mark_metadata_bucket`),
    /// split at bucket boundaries; sectors past the device are ignored.
    fn mark_range(&mut self, start: u64, end: u64, t: u8) {
        let bs = u64::from(self.bucket_size.max(1));
        let mut s = start;
        while s < end {
            let b = s / bs;
            let e = end.min((b + 1) * bs);
            if let Some(x) = self.buckets.get_mut(b as usize) {
                x.data_type = t;
                x.dirty = x.dirty.saturating_add((e - s) as u32);
            }
            s = e;
        }
    }

    /// Marks the superblocks and journal buckets this device's own superblock `sb`
    /// lists (`bch2_mark_dev_superblock`).
    fn mark_metadata(&mut self, sb: &Sb<'_>) {
        let l = sb.layout();
        let size = 1u64 << l.sb_max_size_bits().min(32);
        for i in 0..l.nr_superblocks() as usize {
            let Some(off) = l.sb_offset(i) else { continue };
            if off == SB_SECTOR {
                self.mark_range(0, SB_SECTOR, DATA_SB);
            }
            self.mark_range(off, off.saturating_add(size), DATA_SB);
        }
        let bs = u32::from(self.bucket_size);
        for (start, nr) in sb.journal_buckets() {
            for b in start..start.saturating_add(nr) {
                if let Some(x) = self.buckets.get_mut(b as usize) {
                    x.data_type = DATA_JOURNAL;
                    x.dirty = x.dirty.saturating_add(bs);
                }
            }
        }
    }

    /// Sets the gen of bucket `b` from its alloc key (`gen_valid`).
    pub fn set_gen(&mut self, b: u64, gen: u8) {
        if let Some(x) = self.buckets.get_mut(b as usize) {
            x.gen = gen;
            x.gen_valid = true;
        }
    }

    fn finding(&self, kind: Kind, p: &PtrRef, b: u64) -> Finding {
        let mut f = Finding::new(kind);
        f.btree = Some(p.btree);
        f.level = p.level;
        f.pos = Some(p.pos);
        f.bucket = Some((self.dev, b));
        f.ptr_gen = p.gen;
        f.data_type = p.data_type;
        f
    }

    /// Marks one pointer (`bch2_check_fix_ptr` checks, then `__mark_pointer`):
    /// returns whether its sectors were counted. `gens_known` is false when the
    /// alloc btree could not be read, so gens are not checked.
    pub fn mark_ptr(
        &mut self,
        p: &PtrRef,
        gens_known: bool,
        out: &mut dyn FnMut(&Finding),
    ) -> bool {
        let b = self.bucket_of(p.offset);
        if b >= self.nbuckets() || b < self.first_bucket {
            out(&self.finding(Kind::PtrBucketInvalid, p, b));
            return false;
        }
        let g = self.buckets[b as usize];
        if gens_known {
            let mut f = self.finding(Kind::PtrToMissingAllocKey, p, b);
            f.gen = g.gen;
            if !g.gen_valid {
                out(&f);
                return false;
            }
            if gen_cmp(p.gen, g.gen) > 0 {
                f.kind = Kind::PtrGenNewerThanBucketGen;
                out(&f);
                return false;
            }
            if gen_cmp(g.gen, p.gen) > BUCKET_GC_GEN_MAX as i8 {
                f.kind = Kind::PtrTooStale;
                out(&f);
                return false;
            }
            if p.gen != g.gen {
                if !p.cached {
                    f.kind = Kind::StaleDirtyPtr;
                    out(&f);
                }
                // A stale cached pointer counts for nothing, but still holds the
                // bucket's oldest gen back.
                self.note_gen(b, p.gen);
                return false;
            }
        }
        let t = p.data_type;
        if !p.cached
            && !data_type_is_empty(g.data_type)
            && bucket_data_type(g.data_type) != bucket_data_type(t)
        {
            let mut f = self.finding(Kind::PtrBucketDataTypeMismatch, p, b);
            f.gen = g.gen;
            f.data_type = g.data_type;
            f.got = i64::from(t);
            out(&f);
            return false;
        }
        self.note_gen(b, p.gen);
        let x = &mut self.buckets[b as usize];
        if p.cached {
            x.cached = x.cached.saturating_add(p.sectors);
            if x.data_type == DATA_FREE {
                x.data_type = DATA_CACHED;
            }
        } else {
            x.dirty = x.dirty.saturating_add(p.sectors);
            x.data_type = bucket_data_type(t);
        }
        true
    }

    fn note_gen(&mut self, b: u64, gen: u8) {
        if let Some(x) = self.buckets.get_mut(b as usize) {
            if !x.has_ptr || gen_cmp(x.oldest_ptr_gen, gen) > 0 {
                x.oldest_ptr_gen = gen;
            }
            x.has_ptr = true;
        }
    }

    /// Notes a btree node at `offset` of `sectors` sectors in the bitmap regions it
    /// needs; false when the member's bitmap does not mark all of them
    /// (`bch2_dev_btree_bitmap_marked_sectors`).
    pub fn bitmap_mark(&mut self, offset: u64, sectors: u32) -> bool {
        let shift = u32::from(self.bitmap_shift).min(63);
        let end = offset.saturating_add(u64::from(sectors));
        let mut ok = end <= (64u64 << shift);
        self.bitmap_beyond |= !ok;
        let mut bit = offset >> shift;
        while bit < 64 && (bit << shift) < end {
            if self.bitmap & (1u64 << bit) == 0 {
                ok = false;
            }
            self.bitmap_used |= 1u64 << bit;
            bit += 1;
        }
        ok
    }

    /// The bitmap a `btree_bitmap_gc` pass leaves after this gc pass marked every
    /// node (`bch2_btree_bitmap_gc`): just the regions the nodes occupy, at the
    /// member's shift, which is never reduced. `None` when a node lies past what the
    /// shift can mark: the shift would have to grow first.
    pub fn bitmap_after_gc(&self) -> Option<u64> {
        (!self.bitmap_beyond).then_some(self.bitmap_used)
    }

    /// Sectors the member's bitmap marks (`hweight64(bitmap) << shift`).
    pub fn bitmap_sectors(&self) -> u64 {
        u64::from(self.bitmap.count_ones()) << u32::from(self.bitmap_shift).min(63)
    }
}

/// What a bucket's alloc key should say after gc, given the existing key `a`
/// (`bch2_alloc_write_key`: gc's counts over a copy of the key, then
/// `alloc_data_type_set`).
pub fn expected_alloc(a: &AllocV4, g: &Bucket) -> AllocV4 {
    let mut n = *a;
    n.dirty_sectors = g.dirty;
    n.cached_sectors = g.cached;
    n.stripe_refcount = g.stripe_refcount;
    n.data_type = alloc_data_type(&n, g.data_type);
    n
}

/// `alloc_data_type`: the data type an alloc key with these counts has, `t` being
/// the type of the data in it.
pub fn alloc_data_type(a: &AllocV4, t: u8) -> u8 {
    if a.stripe_refcount != 0 {
        return DATA_STRIPE;
    }
    if a.dirty_sectors != 0 || a.stripe_sectors != 0 {
        return bucket_data_type(t);
    }
    if a.cached_sectors != 0 {
        return DATA_CACHED;
    }
    if a.need_discard() != 0 {
        return DATA_NEED_DISCARD;
    }
    if a.gen.wrapping_sub(a.oldest_gen) >= BUCKET_GC_GEN_MAX {
        return DATA_NEED_GC_GENS;
    }
    DATA_FREE
}

/// Compares the alloc key `a` of bucket `b` with gc's count: one finding per field
/// that differs, in upstream's order (data_type, gen, dirty, cached, stripe).
/// Returns what the key should say.
pub fn compare_alloc(
    dev: u32,
    b: u64,
    a: &AllocV4,
    g: &Bucket,
    out: &mut dyn FnMut(&Finding),
) -> AllocV4 {
    let want = expected_alloc(a, g);
    let mut f = Finding::new(Kind::AllocKeyWrong);
    f.btree = Some(super::super::ids::btree::ALLOC);
    f.bucket = Some((dev, b));
    f.gen = want.gen;
    f.data_type = want.data_type;
    let mut field = |fld: AllocField, got: u64, should: u64| {
        if got != should {
            f.field = Some(fld);
            f.got = got as i64;
            f.want = should as i64;
            out(&f);
        }
    };
    field(
        AllocField::DataType,
        u64::from(a.data_type),
        u64::from(want.data_type),
    );
    field(
        AllocField::DirtySectors,
        u64::from(a.dirty_sectors),
        u64::from(want.dirty_sectors),
    );
    field(
        AllocField::CachedSectors,
        u64::from(a.cached_sectors),
        u64::from(want.cached_sectors),
    );
    field(
        AllocField::StripeRefcount,
        u64::from(a.stripe_refcount),
        u64::from(want.stripe_refcount),
    );
    if g.has_ptr && gen_cmp(a.oldest_gen, g.oldest_ptr_gen) > 0 {
        let mut f = Finding::new(Kind::OldestGenTooNew);
        f.btree = Some(super::super::ids::btree::ALLOC);
        f.bucket = Some((dev, b));
        f.gen = a.oldest_gen;
        f.ptr_gen = g.oldest_ptr_gen;
        out(&f);
    }
    want
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn dev(buckets: &mut [Bucket]) -> DevBuckets<'_> {
        DevBuckets {
            dev: 0,
            first_bucket: 0,
            bucket_size: 128,
            buckets,
            bitmap_shift: 11,
            bitmap: 1,
            bitmap_used: 0,
            bitmap_beyond: false,
        }
    }

    fn ptr(offset: u64, gen: u8, cached: bool) -> PtrRef {
        PtrRef {
            btree: 0,
            level: 0,
            pos: Bpos::new(4096, 8, u32::MAX),
            offset,
            gen,
            cached,
            data_type: if cached { DATA_CACHED } else { DATA_USER },
            sectors: 8,
        }
    }

    #[test]
    fn gens_checked_as_marked() {
        let mut t = vec![Bucket::default(); 4];
        let mut d = dev(&mut t);
        d.set_gen(1, 5);
        let mut kinds = vec![];
        let mut out = |f: &Finding| kinds.push(f.kind);
        assert!(d.mark_ptr(&ptr(128, 5, false), true, &mut out));
        assert!(!d.mark_ptr(&ptr(130, 6, false), true, &mut out));
        assert!(!d.mark_ptr(&ptr(130, 4, false), true, &mut out));
        assert!(!d.mark_ptr(&ptr(130, 4, true), true, &mut out));
        assert!(!d.mark_ptr(&ptr(256, 0, false), true, &mut out));
        assert!(!d.mark_ptr(&ptr(1024, 0, false), true, &mut out));
        assert_eq!(
            kinds,
            [
                Kind::PtrGenNewerThanBucketGen,
                Kind::StaleDirtyPtr,
                Kind::PtrToMissingAllocKey,
                Kind::PtrBucketInvalid
            ]
        );
        assert_eq!(t[1].dirty, 8);
        assert_eq!(t[1].oldest_ptr_gen, 4);
        assert_eq!(t[1].data_type, DATA_USER);
    }

    #[test]
    fn alloc_compare_names_field() {
        let g = Bucket {
            gen: 0,
            gen_valid: true,
            data_type: DATA_USER,
            dirty: 100,
            ..Default::default()
        };
        let a = AllocV4 {
            data_type: DATA_USER,
            dirty_sectors: 99,
            ..Default::default()
        };
        let mut v = vec![];
        compare_alloc(0, 7, &a, &g, &mut |f| v.push(*f));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, Some(AllocField::DirtySectors));
        assert_eq!((v[0].got, v[0].want), (99, 100));
        assert_eq!(v[0].bucket, Some((0, 7)));
        // An empty bucket whose key says need_discard stays need_discard.
        let a = AllocV4 {
            data_type: DATA_NEED_DISCARD,
            flags: 1,
            ..Default::default()
        };
        let mut v = vec![];
        compare_alloc(0, 7, &a, &Bucket::default(), &mut |f| v.push(*f));
        assert!(v.is_empty());
    }

    #[test]
    fn fragmented_counts_all_types() {
        let a = AllocV4 {
            data_type: DATA_SB,
            dirty_sectors: 8,
            ..Default::default()
        };
        assert_eq!(a.sectors_fragmented(128), 120);
        let a = AllocV4::default();
        assert_eq!(a.sectors_fragmented(128), 0);
    }
}
