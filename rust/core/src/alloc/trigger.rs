// SPDX-License-Identifier: GPL-2.0
//! What an alloc key change does to the keys derived from it (upstream's
//! `bch2_trigger_alloc`): the `need_discard`, `freespace` and fragmentation LRU
//! keys. The read twins are the checks upstream's `check_alloc_info` and
//! `check_alloc_to_lru_refs` make: a need_discard key at
//! `POS(journal_seq_empty, bucket_u64)` iff the bucket is need_discard, a
//! freespace extent over `bucket | genbits` iff it is free, a fragmentation LRU
//! key at `POS((8192 + dev) << 48 | idx, bucket_u64)` iff its idx is nonzero.
//! (`bucket_gens` and the per-device accounting are kept by their own repairs.)

use super::super::bpos::Bpos;
use super::super::gc::buckets::{bucket_data_type, BUCKET_GC_GEN_MAX};
use super::format::{
    data_type_is_empty, AllocV4, DATA_CACHED, DATA_FREE, DATA_JOURNAL, DATA_MULTIPLE,
    DATA_NEED_DISCARD, DATA_NEED_GC_GENS, DATA_SB, DATA_STRIPE,
};

/// `BCH_ALLOC_V4_NEED_DISCARD` and `BCH_ALLOC_V4_NEED_INC_GEN` in `flags`.
const NEED_DISCARD: u32 = 1 << 0;
const NEED_INC_GEN: u32 = 1 << 1;

/// `alloc_data_type` as the alloc trigger uses it: the type a bucket with these
/// counts has, `hint` being the type of what is in it (need_discard stays once
/// set; an empty bucket is otherwise free or waiting for gc gens).
pub fn alloc_data_type(a: &AllocV4, hint: u8) -> u8 {
    const PARITY: u8 = 6;
    if a.data_type == DATA_MULTIPLE {
        DATA_MULTIPLE
    } else if a.stripe_refcount != 0 {
        if hint == PARITY {
            PARITY
        } else {
            DATA_STRIPE
        }
    } else if a.sectors_dirty() != 0 {
        bucket_data_type(hint)
    } else if a.cached_sectors != 0 {
        DATA_CACHED
    } else if hint == DATA_NEED_DISCARD {
        DATA_NEED_DISCARD
    } else if a.gen.wrapping_sub(a.oldest_gen) >= BUCKET_GC_GEN_MAX {
        DATA_NEED_GC_GENS
    } else {
        DATA_FREE
    }
}

/// The alloc key's own trigger (`bch2_trigger_alloc`, both phases) on the change
/// `old` -> `new`, committed in journal entry `seq` with the io clocks at
/// `io_now` (read, write), the bucket not open: `new` normalized as upstream
/// leaves it. A bucket that fills gets its io times and `NEED_INC_GEN`; one that
/// empties goes to need_discard with its gen bumped and the seq it emptied at
/// (0, as upstream's fast-discard path leaves it, when it filled in the same
/// entry).
pub fn alloc_trigger(old: &AllocV4, new: &mut AllocV4, io_now: [u64; 2], seq: u64) {
    const LRU_TIME_MAX: u64 = (1 << 48) - 1;
    new.data_type = alloc_data_type(new, new.data_type);
    let was_empty = data_type_is_empty(old.data_type);
    if !was_empty
        && data_type_is_empty(new.data_type)
        && old.data_type != DATA_SB
        && old.data_type != DATA_JOURNAL
    {
        new.data_type = DATA_NEED_DISCARD;
    }
    let filled = was_empty && !data_type_is_empty(new.data_type);
    if filled {
        new.io_time = [
            (io_now[0] & LRU_TIME_MAX).max(1),
            (io_now[1] & LRU_TIME_MAX).max(1),
        ];
        new.flags |= NEED_INC_GEN | NEED_DISCARD;
    }
    if new.data_type == DATA_FREE
        && (new.flags & NEED_DISCARD != 0
            || new.journal_seq_nonempty != 0
            || new.journal_seq_empty != 0)
    {
        if new.flags & NEED_DISCARD != 0 {
            new.data_type = DATA_NEED_DISCARD;
        } else {
            new.journal_seq_nonempty = 0;
            new.journal_seq_empty = 0;
        }
    }
    if data_type_is_empty(new.data_type) && new.flags & NEED_INC_GEN != 0 {
        if new.oldest_gen == new.gen && new.sectors_dirty() == 0 && new.cached_sectors == 0 {
            new.oldest_gen = new.oldest_gen.wrapping_add(1);
        }
        new.gen = new.gen.wrapping_add(1);
        new.flags &= !NEED_INC_GEN;
        new.data_type = alloc_data_type(new, new.data_type);
    }
    if new.data_type == DATA_CACHED && new.io_time[0] == 0 {
        new.io_time[0] = (io_now[0] & LRU_TIME_MAX).max(1);
    }
    // The atomic phase, at `seq`.
    if new.journal_seq_nonempty > seq {
        new.journal_seq_nonempty = seq;
    }
    if filled && new.journal_seq_nonempty == 0 {
        new.journal_seq_nonempty = seq;
    }
    if old.data_type != DATA_NEED_DISCARD && new.data_type == DATA_NEED_DISCARD {
        new.journal_seq_empty = seq;
        if new.journal_seq_nonempty == new.journal_seq_empty {
            new.journal_seq_nonempty = 0;
            new.journal_seq_empty = 0;
        }
    }
}

/// The btrees derived keys live in.
pub mod btree {
    /// `BTREE_ID_lru`.
    pub const LRU: u32 = 10;
    /// `BTREE_ID_freespace` (an extents btree).
    pub const FREESPACE: u32 = 11;
    /// `BTREE_ID_need_discard`.
    pub const NEED_DISCARD: u32 = 12;
}

/// First LRU id of the per-device fragmentation LRUs (`BCH_LRU_BUCKET_FRAGMENTATION`
/// base in 1.39 `per_dev_fragmentation_lru`).
pub const LRU_FRAGMENTATION_BASE: u64 = 8192;

/// One derived key to set (`KEY_TYPE_set`) or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Derived {
    /// Btree of the key.
    pub btree: u32,
    /// Its position (for freespace, the end of its one-bucket extent).
    pub pos: Bpos,
    /// Its size (1 for a freespace extent, else 0).
    pub size: u32,
    /// Set it (or delete it).
    pub set: bool,
}

/// `bucket_to_u64`.
pub fn bucket_u64(dev: u32, bucket: u64) -> u64 {
    (u64::from(dev) << 48) | (bucket & ((1u64 << 48) - 1))
}

/// `alloc_freespace_genbits`: the high bits a free bucket's freespace key carries.
pub fn freespace_genbits(a: &AllocV4) -> u64 {
    u64::from(a.gen.wrapping_sub(a.oldest_gen) >> 4) << 56
}

/// Where the need_discard key of a bucket with alloc key `a` is.
pub fn need_discard_pos(dev: u32, bucket: u64, a: &AllocV4) -> Bpos {
    Bpos::new(a.journal_seq_empty, bucket_u64(dev, bucket), 0)
}

/// The freespace extent of a free bucket: it ends one past `bucket | genbits`.
pub fn freespace_pos(dev: u32, bucket: u64, a: &AllocV4) -> Bpos {
    Bpos::new(u64::from(dev), (bucket | freespace_genbits(a)) + 1, 0)
}

/// The fragmentation LRU key of a bucket whose LRU idx is `idx`.
pub fn fragmentation_lru_pos(dev: u32, bucket: u64, idx: u64) -> Bpos {
    let id = LRU_FRAGMENTATION_BASE + u64::from(dev);
    Bpos::new(
        (id << 48) | (idx & ((1u64 << 48) - 1)),
        bucket_u64(dev, bucket),
        0,
    )
}

/// The derived keys that change when bucket `bucket` of device `dev` (buckets of
/// `bucket_size` sectors) goes from alloc key `old` to `new`: each handed to `out`.
pub fn derived_changes(
    dev: u32,
    bucket: u64,
    bucket_size: u16,
    old: &AllocV4,
    new: &AllocV4,
    out: &mut dyn FnMut(Derived),
) {
    // Where each derived key of a bucket in state `a` is, if it has one.
    let need_discard =
        |a: &AllocV4| (a.data_type == DATA_NEED_DISCARD).then(|| need_discard_pos(dev, bucket, a));
    let freespace = |a: &AllocV4| (a.data_type == DATA_FREE).then(|| freespace_pos(dev, bucket, a));
    let lru = |a: &AllocV4| match a.lru_idx_fragmentation(bucket_size) {
        0 => None,
        idx => Some(fragmentation_lru_pos(dev, bucket, idx)),
    };
    let mut moved = |btree: u32, size: u32, from: Option<Bpos>, to: Option<Bpos>| {
        if from == to {
            return;
        }
        if let Some(pos) = from {
            out(Derived {
                btree,
                pos,
                size,
                set: false,
            });
        }
        if let Some(pos) = to {
            out(Derived {
                btree,
                pos,
                size,
                set: true,
            });
        }
    };
    moved(btree::NEED_DISCARD, 0, need_discard(old), need_discard(new));
    moved(btree::FREESPACE, 1, freespace(old), freespace(new));
    moved(btree::LRU, 0, lru(old), lru(new));
}

#[cfg(test)]
mod tests {
    use super::super::format::DATA_USER;
    use super::*;
    use std::vec::Vec;

    fn changes(old: &AllocV4, new: &AllocV4) -> Vec<Derived> {
        let mut v = Vec::new();
        derived_changes(0, 391, 256, old, new, &mut |d| v.push(d));
        v
    }

    #[test]
    fn emptied_user_bucket_goes_to_need_discard() {
        let old = AllocV4 {
            data_type: DATA_USER,
            dirty_sectors: 113,
            ..Default::default()
        };
        let new = AllocV4 {
            data_type: DATA_NEED_DISCARD,
            dirty_sectors: 0,
            ..old
        };
        let v = changes(&old, &new);
        assert_eq!(v.len(), 2, "{:?}", v);
        assert_eq!(
            v[0],
            Derived {
                btree: btree::NEED_DISCARD,
                pos: Bpos::new(0, 391, 0),
                size: 0,
                set: true
            }
        );
        // The user bucket's fragmentation entry goes: 113 of 256 sectors.
        assert_eq!(v[1].btree, btree::LRU);
        assert!(!v[1].set);
        assert_eq!(v[1].pos.inode >> 48, LRU_FRAGMENTATION_BASE);
        assert_eq!(v[1].pos.inode & ((1 << 48) - 1), (113u64 << 31) / 256);
        assert_eq!(v[1].pos.offset, 391);
    }

    #[test]
    fn freed_bucket_gets_freespace_and_nothing_for_no_change() {
        let old = AllocV4 {
            data_type: DATA_NEED_DISCARD,
            gen: 40,
            ..Default::default()
        };
        let new = AllocV4 {
            data_type: DATA_FREE,
            ..old
        };
        let v = changes(&old, &new);
        assert_eq!(v.len(), 2);
        assert!(!v[0].set && v[0].btree == btree::NEED_DISCARD);
        assert_eq!(
            v[1],
            Derived {
                btree: btree::FREESPACE,
                pos: Bpos::new(0, (391 | (2u64 << 56)) + 1, 0),
                size: 1,
                set: true
            }
        );
        assert!(changes(&new, &new).is_empty());
    }
}
