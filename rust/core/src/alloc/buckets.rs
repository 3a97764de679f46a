// SPDX-License-Identifier: GPL-2.0
//! What a btree node pointer's insert or removal writes (upstream's
//! `bch2_trigger_pointer` for `btree_ptr_v2` keys, and the per-device counters
//! `bch2_alloc_key_to_dev_counters` moves with the alloc key). The read twin is
//! gc's count (`gc::Gc::mark_btree_ptr`): after these changes are written, gc
//! counts exactly what the keys say.
//!
//! Each node pointer holds `btree_node_size` sectors of its bucket on every
//! replica, whatever the node has written so far; it has one backpointer per
//! replica, and counts in the btree's replicas entry (`sectors * replicas`) and
//! in the btree's own accounting (`[sectors, nodes, interior nodes]`).

use super::super::bpos::Bpos;
use super::super::data::extents_format::Ptr;
use super::super::gc::accounting::{pos, replicas_pos};
use super::format::{acct, AccountingPos, AllocV4, Backpointer, DATA_BTREE, DATA_STRIPE};
use super::trigger::alloc_data_type;

/// The bucket a pointer lands in, and what the pointer changes in its alloc key.
pub fn mark_btree_bucket(a: &mut AllocV4, node_sectors: u32, insert: bool) {
    if insert {
        a.dirty_sectors = a.dirty_sectors.saturating_add(node_sectors);
        a.data_type = alloc_data_type(a, DATA_BTREE);
    } else {
        a.dirty_sectors = a.dirty_sectors.saturating_sub(node_sectors);
    }
}

/// Where a btree node replica's backpointer is, and its value: the node held at
/// `holder_level` (the node's level + 1) of `btree`, under the key at `key_pos`
/// (the node's max), `bp_shift` being the filesystem's extent backpointer shift.
pub fn btree_backpointer(
    btree: u32,
    holder_level: u8,
    key_pos: Bpos,
    p: &Ptr,
    node_sectors: u32,
    bp_shift: u32,
) -> (Bpos, Backpointer) {
    (
        // A shift of 64 or more (a damaged superblock) wraps as the C shift does
        // on x86 instead of panicking.
        Bpos::new(u64::from(p.dev), p.offset.wrapping_shl(bp_shift), 0),
        Backpointer {
            btree_id: btree as u8,
            level: holder_level,
            data_type: DATA_BTREE,
            bucket_gen: p.gen,
            flags: 0,
            bucket_len: node_sectors,
            pos: key_pos,
        },
    )
}

/// The backpointer positions of bucket `bucket` of device `dev` (`bucket_size`
/// sectors), `bp_shift` being the filesystem's extent backpointer shift: from its
/// first sector's to the last position before the next bucket's (upstream's
/// `bucket_pos_to_bp_start` and `bucket_pos_to_bp_end`). `None` when a position
/// cannot hold them.
pub fn bucket_backpointers(
    dev: u32,
    bucket: u64,
    bucket_size: u64,
    bp_shift: u32,
) -> Option<(Bpos, Bpos)> {
    let scale = 1u64.checked_shl(bp_shift)?;
    let start = |b: u64| b.checked_mul(bucket_size)?.checked_mul(scale);
    let lo = start(bucket)?;
    let hi = start(bucket.checked_add(1)?)?;
    Some((
        Bpos::new(u64::from(dev), lo, 0),
        Bpos::new(u64::from(dev), hi.checked_sub(1)?, u32::MAX),
    ))
}

/// The accounting a node pointer with replicas `ptrs` held at `holder_level` of
/// `btree` counts in, each with its counters (`sign` +1 on insert, -1 on removal).
pub fn btree_ptr_accounting(
    btree: u32,
    holder_level: u8,
    ptrs: &[Ptr],
    node_sectors: u32,
    sign: i64,
    out: &mut dyn FnMut(AccountingPos, [i64; 3]),
) {
    let sectors = i64::from(node_sectors) * ptrs.len() as i64;
    let mut devs = [0u8; 16];
    let n = ptrs.len().min(devs.len());
    for (d, p) in devs.iter_mut().zip(ptrs) {
        *d = p.dev;
    }
    if n > 0 {
        out(
            replicas_pos(DATA_BTREE, 1, &devs[..n]),
            [sign * sectors, 0, 0],
        );
    }
    out(
        pos(acct::BTREE, &btree.to_le_bytes()),
        [sign * sectors, sign, sign * i64::from(holder_level >= 2)],
    );
}

/// The per-device counters (`dev_data_type`: buckets, sectors, fragmented) that
/// move when a bucket of device `dev` goes from `old` to `new`.
pub fn dev_counter_deltas(
    dev: u32,
    old: &AllocV4,
    new: &AllocV4,
    bucket_size: u16,
    out: &mut dyn FnMut(AccountingPos, [i64; 3]),
) {
    let at = |t: u8| pos(acct::DEV_DATA_TYPE, &[dev as u8, t]);
    let (os, of) = (old.sectors(), old.sectors_fragmented(bucket_size));
    let (ns, nf) = (new.sectors(), new.sectors_fragmented(bucket_size));
    if old.data_type != new.data_type {
        out(at(new.data_type), [1, ns, nf]);
        out(at(old.data_type), [-1, -os, -of]);
    } else if os != ns || of != nf {
        out(at(new.data_type), [0, ns - os, nf - of]);
    }
    const UNSTRIPED: u8 = 10;
    let unstriped = |a: &AllocV4| {
        if a.data_type == DATA_STRIPE {
            i64::from(a.dirty_sectors)
        } else {
            0
        }
    };
    let (ou, nu) = (unstriped(old), unstriped(new));
    if ou != nu {
        out(
            at(UNSTRIPED),
            [i64::from(nu != 0) - i64::from(ou != 0), nu - ou, 0],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{DATA_FREE, DATA_NEED_DISCARD};
    use super::super::trigger::alloc_trigger;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn node_fills_and_frees_a_bucket() {
        // A free bucket takes a 32-sector node at journal seq 300.
        let old = AllocV4 {
            gen: 3,
            oldest_gen: 3,
            ..Default::default()
        };
        let mut new = old;
        mark_btree_bucket(&mut new, 32, true);
        alloc_trigger(&old, &mut new, [500, 700], 300);
        assert_eq!(new.data_type, DATA_BTREE);
        assert_eq!((new.dirty_sectors, new.gen), (32, 3));
        assert_eq!(new.io_time, [500, 700]);
        assert_eq!(new.journal_seq_nonempty, 300);
        assert_eq!(new.flags & 3, 3);
        let mut d = Vec::new();
        dev_counter_deltas(0, &old, &new, 128, &mut |p, c| d.push((p.typ(), p.0[2], c)));
        assert_eq!(
            d,
            [
                (acct::DEV_DATA_TYPE, DATA_BTREE, [1, 32, 96]),
                (acct::DEV_DATA_TYPE, DATA_FREE, [-1, 0, 0])
            ]
        );
        // Freed at seq 310: need_discard at that seq, gen bumped.
        let full = new;
        let mut freed = full;
        mark_btree_bucket(&mut freed, 32, false);
        alloc_trigger(&full, &mut freed, [600, 800], 310);
        assert_eq!(freed.data_type, DATA_NEED_DISCARD);
        assert_eq!((freed.gen, freed.oldest_gen), (4, 4));
        assert_eq!(freed.journal_seq_empty, 310);
        assert_eq!(freed.flags & 2, 0);
        // Filled and freed in one entry: the fast-discard path zeroes both seqs.
        let mut both = full;
        mark_btree_bucket(&mut both, 32, false);
        alloc_trigger(&full, &mut both, [600, 800], 300);
        assert_eq!((both.journal_seq_nonempty, both.journal_seq_empty), (0, 0));
    }

    #[test]
    fn pointer_accounting_and_backpointer() {
        let p = |dev| Ptr {
            dev,
            offset: 1024,
            gen: 2,
            ..Default::default()
        };
        let mut v = Vec::new();
        btree_ptr_accounting(4, 2, &[p(1), p(0)], 32, -1, &mut |a, c| v.push((a, c)));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, replicas_pos(DATA_BTREE, 1, &[0, 1]));
        assert_eq!(v[0].1, [-64, 0, 0]);
        assert_eq!(v[1].1, [-64, -1, -1]);
        let (at, bp) = btree_backpointer(4, 1, Bpos::new(9, 9, 9), &p(1), 32, 10);
        assert_eq!(at, Bpos::new(1, 1024 << 10, 0));
        assert_eq!((bp.level, bp.bucket_gen, bp.bucket_len), (1, 2, 32));
        // A damaged superblock's shift of 64 or more: no panic (the shift wraps).
        let (at, _) = btree_backpointer(4, 1, Bpos::new(9, 9, 9), &p(1), 32, 200);
        assert_eq!(at, Bpos::new(1, 1024 << (200 % 64), 0));
    }

    #[test]
    fn a_buckets_backpointers() {
        // Bucket 8 of 128 sectors, shift 10: sectors 1024..1152.
        let (from, to) = bucket_backpointers(2, 8, 128, 10).unwrap();
        assert_eq!(from, Bpos::new(2, 1024 << 10, 0));
        assert_eq!(to, Bpos::new(2, (1152 << 10) - 1, u32::MAX));
        // The node backpointer of a pointer at the bucket's first sector is in it.
        let ptr = Ptr {
            dev: 2,
            offset: 1024,
            ..Default::default()
        };
        let (at, _) = btree_backpointer(0, 1, Bpos::default(), &ptr, 32, 10);
        assert!(from <= at && at <= to);
        // Past what a position holds, or a shift of 64: none.
        assert_eq!(bucket_backpointers(0, u64::MAX / 128, 128, 10), None);
        assert_eq!(bucket_backpointers(0, 1, 128, 64), None);
    }
}
