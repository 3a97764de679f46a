// SPDX-License-Identifier: GPL-2.0

//! What the triggers write when a commit inserts or removes btree node pointers
//! (upstream's `btree_ptr_v2` trigger; the offline tool's `update::triggers`, same
//! rules, same keys): each pointer's bucket gets its alloc key marked
//! ([`mark_btree_bucket`], then the alloc trigger's own rules and the derived
//! need_discard and LRU keys), its backpointer inserted or deleted, and the
//! accounting moves (the btree's and the replicas' sectors, the device counters),
//! on top of the caller's version of each key where the caller changes it. A
//! bucket that leaves the freespace btree is the allocator's cut, made when it
//! handed the bucket out.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::alloc::Allocator;
use crate::commit::{bytes, put, Update};
use crate::format::alloc::buckets::{
    btree_backpointer, btree_ptr_accounting, dev_counter_deltas, mark_btree_bucket,
};
use crate::format::alloc::foreground::bitmap_mark;
use crate::format::alloc::format::{
    accounting_add, accounting_len, alloc_v4, AccountingPos, AllocV4, BUCKET_GENS_NR,
};
use crate::format::alloc::trigger::{alloc_trigger, derived_changes};
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::{BtreePtr, ExtentPtr};
use crate::format::gc::repair::accounting_version;
use crate::format::ids::{btree, KeyType};
use crate::fs::{Fs, PtrKey};
use crate::repair::{accounting_key, leaf_key};

/// A node pointer a commit inserts or removes, held at level `holder` (the node's
/// level + 1) of `btree`.
#[derive(Clone, Copy)]
pub(crate) struct PtrChange {
    pub(crate) btree: u32,
    pub(crate) holder: u8,
    pub(crate) ptr: PtrKey,
    pub(crate) insert: bool,
}

/// One bucket a pointer change touches: its alloc key's value as the caller
/// leaves it (or as on disk), that state, and the state after the changes.
struct Bucket {
    dev: u32,
    bucket: u64,
    v: KVec<u8>,
    base: AllocV4,
    new: AllocV4,
}

/// An update of a plain key: `typ` at `p` of `btree`'s leaves.
fn plain(btree: u32, typ: KeyType, p: Bpos, size: u32, v: KVec<u8>) -> Update {
    Update::leaf(
        btree,
        Bkey {
            typ: typ as u8,
            p,
            size,
            ..Default::default()
        },
        v,
    )
}

/// The caller's update of key `p` of `btree`'s leaves, if any.
fn caller_key(caller: &[Update], btree: u32, p: Bpos) -> Option<&Update> {
    caller
        .iter()
        .find(|u| u.btree == btree && u.level == 0 && u.k.p == p)
}

/// The keys the triggers write for `changes` in the commit of journal entry
/// `seq`, on top of the caller's `caller` updates, into `out` (each replacing an
/// update of the same key there); every replica of every new node goes to
/// `new_nodes` (dev, sector), for the members' btree bitmaps. EOPNOTSUPP when a
/// new node lies past what its member's bitmap covers (growing its shift is not
/// done).
pub(crate) fn triggers(
    fs: &Arc<Fs>,
    changes: &[PtrChange],
    caller: &[Update],
    seq: u64,
    alloc: &Allocator,
    out: &mut KVec<Update>,
    new_nodes: &mut KVec<(u32, u64)>,
) -> Result {
    let s = fs.sb();
    let ns = s.btree_node_sectors();
    let bp_shift = s.extent_bp_shift_or_default();
    let mut buckets: KVec<Bucket> = KVec::new();
    let mut acct: KVec<([u8; 20], [i64; 3])> = KVec::new();
    let mut err = Ok(());
    let mut add_acct =
        |p: AccountingPos, d: [i64; 3]| match acct.iter_mut().find(|(a, _)| *a == p.0) {
            Some((_, e)) => {
                for i in 0..3 {
                    e[i] = e[i].wrapping_add(d[i]);
                }
            }
            None => {
                if let Err(e) = acct.push((p.0, d), GFP_KERNEL) {
                    err = Err(e);
                }
            }
        };
    for c in changes {
        let bp = BtreePtr::decode(c.ptr.k.typ, c.ptr.val()).ok_or(EINVAL)?;
        let mut ptrs: KVec<ExtentPtr> = KVec::new();
        for p in bp.ptrs() {
            ptrs.push(p, GFP_KERNEL)?;
        }
        let sign = if c.insert { 1 } else { -1 };
        btree_ptr_accounting(c.btree, c.holder, &ptrs, ns, sign, &mut add_acct);
        for p in ptrs.iter() {
            let m = s.member(usize::from(p.dev)).ok_or(EINVAL)?;
            let bs = u64::from(m.bucket_size()).max(1);
            let (dev, bucket) = (u32::from(p.dev), p.offset / bs);
            let i = match buckets
                .iter()
                .position(|b| b.dev == dev && b.bucket == bucket)
            {
                Some(i) => i,
                None => {
                    let at = Bpos::new(u64::from(dev), bucket, 0);
                    let (v, a) = match caller_key(caller, btree::ALLOC, at) {
                        Some(u) => (bytes(&u.v)?, AllocV4::from_key(u.k.typ, &u.v)),
                        None => match leaf_key(fs, btree::ALLOC, at)? {
                            Some((k, v)) => {
                                let a = AllocV4::from_key(k.typ, &v);
                                let v = if k.typ == KeyType::AllocV4 as u8 {
                                    v
                                } else {
                                    KVec::new()
                                };
                                (v, a)
                            }
                            None => (KVec::new(), Some(AllocV4::default())),
                        },
                    };
                    // A key that is no alloc key at all is not planned over
                    // (older alloc versions are read, and written as v4).
                    let a = a.ok_or(EINVAL)?;
                    buckets.push(
                        Bucket {
                            dev,
                            bucket,
                            v,
                            base: a,
                            new: a,
                        },
                        GFP_KERNEL,
                    )?;
                    buckets.len() - 1
                }
            };
            mark_btree_bucket(&mut buckets[i].new, ns, c.insert);
            let (bpos, b) = btree_backpointer(c.btree, c.holder, c.ptr.k.p, p, ns, bp_shift);
            if c.insert {
                let mut v = KVec::from_elem(0u8, 32, GFP_KERNEL)?;
                b.write(&mut v).ok_or(EINVAL)?;
                put(
                    out,
                    plain(btree::BACKPOINTERS, KeyType::Backpointer, bpos, 0, v),
                )?;
                if bitmap_mark(0, m.btree_bitmap_shift(), p.offset, u64::from(ns)).is_none() {
                    pr_err!(
                        "{}: repair: a new node at {}:{} lies past what the btree bitmap covers (growing its shift is not done)\n",
                        fs.uuid(),
                        dev,
                        p.offset
                    );
                    return Err(crate::eopnotsupp());
                }
                new_nodes.push((dev, p.offset), GFP_KERNEL)?;
            } else {
                put(
                    out,
                    plain(btree::BACKPOINTERS, KeyType::Deleted, bpos, 0, KVec::new()),
                )?;
            }
        }
    }
    let io_now = s.io_clocks();
    let mut gens: KVec<(Bpos, KVec<u8>)> = KVec::new();
    for b in buckets.iter_mut() {
        alloc_trigger(&b.base, &mut b.new, io_now, seq);
        let bs = s
            .member(b.dev as usize)
            .map(|m| m.bucket_size())
            .unwrap_or(0);
        let mut v = core::mem::take(&mut b.v);
        if v.len() < alloc_v4::BYTES {
            v.resize(alloc_v4::BYTES, 0, GFP_KERNEL)?;
            // BACKPOINTERS_START: the value's fixed part, in u64s.
            b.new.flags = (b.new.flags & !(0x3f << 2)) | ((alloc_v4::U64S as u32) << 2);
        }
        b.new.write(&mut v);
        let at = Bpos::new(u64::from(b.dev), b.bucket, 0);
        put(out, plain(btree::ALLOC, KeyType::AllocV4, at, 0, v))?;
        let mut derr = Ok(());
        derived_changes(b.dev, b.bucket, bs, &b.base, &b.new, &mut |d| {
            // A bucket leaving the freespace btree was cut by the allocator.
            if derr.is_err() || (d.btree == btree::FREESPACE && !d.set) {
                return;
            }
            let t = if d.set {
                KeyType::Set
            } else {
                KeyType::Deleted
            };
            derr = put(out, plain(d.btree, t, d.pos, d.size, KVec::new()));
        });
        derr?;
        if b.base.gen != b.new.gen {
            // One key holds the gens of 256 buckets: every change to it lands in
            // the same copy.
            let gp = Bpos::new(u64::from(b.dev), b.bucket / BUCKET_GENS_NR as u64, 0);
            let gi = match gens.iter().position(|(p, _)| *p == gp) {
                Some(i) => i,
                None => {
                    let mut v = match caller_key(caller, btree::BUCKET_GENS, gp) {
                        Some(u) => bytes(&u.v)?,
                        None => leaf_key(fs, btree::BUCKET_GENS, gp)?
                            .map(|(_, v)| v)
                            .unwrap_or_default(),
                    };
                    v.resize(BUCKET_GENS_NR, 0, GFP_KERNEL)?;
                    gens.push((gp, v), GFP_KERNEL)?;
                    gens.len() - 1
                }
            };
            if let Some(g) = gens[gi]
                .1
                .get_mut((b.bucket % BUCKET_GENS_NR as u64) as usize)
            {
                *g = b.new.gen;
            }
        }
        dev_counter_deltas(b.dev, &b.base, &b.new, bs, &mut add_acct);
    }
    err?;
    for (gp, gv) in gens {
        put(
            out,
            plain(btree::BUCKET_GENS, KeyType::BucketGens, gp, 0, gv),
        )?;
    }
    let mut cuts = KVec::new();
    alloc.free.updates(&mut cuts)?;
    for u in cuts {
        put(out, u)?;
    }
    // Accounting: each delta on top of the key as the caller leaves it, or as it
    // is; the node gets the total, the journal the delta, both with a version past
    // every delta already in the journal.
    let version = accounting_version(seq);
    for (pos, d) in acct.iter() {
        if *d == [0; 3] {
            continue;
        }
        let at = AccountingPos(*pos).to_bpos();
        let (k, cur, jcur) = match caller_key(caller, btree::ACCOUNTING, at) {
            Some(u) => (
                u.k,
                bytes(&u.v)?,
                u.journal_v.as_deref().map(bytes).transpose()?,
            ),
            None => match accounting_key(fs, at)? {
                Some((k, v)) => (k, v, None),
                None => (
                    Bkey {
                        typ: KeyType::Accounting as u8,
                        p: at,
                        ..Default::default()
                    },
                    KVec::new(),
                    None,
                ),
            },
        };
        let n = accounting_len(&cur, pos[0]);
        let mut v = KVec::from_elem(0u8, n * 8, GFP_KERNEL)?;
        let mut jv = KVec::from_elem(0u8, n * 8, GFP_KERNEL)?;
        accounting_add(&cur, jcur.as_deref(), d, n, &mut v, &mut jv).ok_or(EINVAL)?;
        put(
            out,
            Update {
                btree: btree::ACCOUNTING,
                level: 0,
                k: Bkey {
                    version_hi: 0,
                    version_lo: version.max(k.version_lo),
                    ..k
                },
                v,
                journal_v: Some(jv),
            },
        )?;
    }
    Ok(())
}
