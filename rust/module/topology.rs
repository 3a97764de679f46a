// SPDX-License-Identifier: GPL-2.0

//! Topology repair at mount: the pointer changes the core's
//! [`topology_fix`](crate::format::gc::repair::topology_fix) gives for a
//! topology finding (an unreadable node dropped from its parent with the
//! backpointers that name it or what it held; a node's start moved over a gap or
//! past an overlap, `set_node_min`; a parent's last child stretched to its end,
//! `set_node_max`), made as keys of the parent's level for the commit. The nodes
//! are not rewritten: a moved pointer says `BTREE_PTR_RANGE_UPDATED`, as upstream
//! and the offline `fsck -y` leave it. The counts the dropped nodes held are left
//! to a recount over the repaired tree (a second repair at mount).
//!
//! A gap in the leaves that a device scan could fill (a node the scan finds there
//! that the backpointers btree still names at its place) is put back only by the
//! offline tool: here that finding is left, with its reason.

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::btree::iter::range;
use crate::commit::{bytes, path_to, Update};
use crate::format::alloc::format::{Backpointer, DATA_BTREE};
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::{set_min_key, set_range_updated, BtreePtr};
use crate::format::btree::read::BsetRef;
use crate::format::btree::scan::{examine, marked_buckets};
use crate::format::gc::finding::Finding;
use crate::format::gc::repair::{dropped_with_node, topology_fix, TopologyFix};
use crate::format::ids::{btree, KeyType};
use crate::fs::Fs;
use crate::hash::KernelHashes;
use crate::repair::leaf_key;

/// Why a gap is left when the device scan finds a node for it.
const SCAN_FOUND: &str = "a device scan finds a lost node for the gap, which only the offline repair puts back (bcachefs-rs fsck -y)";

/// The planned interior key at `pos` of `btree`'s level `level`, or the tree's.
fn pointer(
    fs: &Arc<Fs>,
    updates: &[Update],
    btree: u32,
    level: u8,
    pos: Bpos,
) -> Result<Option<(Bkey, KVec<u8>)>> {
    if let Some(u) = updates
        .iter()
        .find(|u| u.btree == btree && u.level == level && u.k.p == pos)
    {
        return Ok(Some((u.k, bytes(&u.v)?)));
    }
    let path = path_to(fs, btree, pos, level.checked_sub(1).ok_or(EINVAL)?)?;
    match path.last() {
        Some((_, p)) if p.k.p == pos => Ok(Some((p.k, bytes(p.val())?))),
        _ => Ok(None),
    }
}

/// Sets the update of key `k` at `level` of `btree`, replacing a planned one.
fn put(updates: &mut KVec<Update>, btree: u32, level: u8, k: Bkey, v: KVec<u8>) -> Result {
    let u = Update {
        btree,
        level,
        k,
        v,
        journal_v: None,
    };
    match updates
        .iter_mut()
        .find(|o| o.btree == btree && o.level == level && o.k.p == k.p)
    {
        Some(o) => *o = u,
        None => updates.push(u, GFP_KERNEL)?,
    }
    Ok(())
}

/// A whiteout at `p`.
fn deleted(p: Bpos) -> Bkey {
    Bkey {
        typ: KeyType::Deleted as u8,
        p,
        ..Default::default()
    }
}

/// Plans the repair of topology finding `f` into `updates` (keys of interior
/// levels, and backpointers); `Some(why)` when it is not repaired.
pub(crate) fn plan_topology(
    fs: &Arc<Fs>,
    f: &Finding,
    updates: &mut KVec<Update>,
) -> Result<Option<&'static str>> {
    let Some(bt) = f.btree else {
        return Ok(Some("topology finding without its btree"));
    };
    let fix = match topology_fix(f) {
        Ok(fix) => fix,
        Err(why) => return Ok(Some(why)),
    };
    let read = |r: Result<Option<(Bkey, KVec<u8>)>>| match r {
        Err(e) if e == EIO => Ok(None),
        r => r,
    };
    match fix {
        TopologyFix::Drop {
            parent,
            level,
            min,
            max,
        } => {
            // What the pointer trigger would undo: the node's backpointer, and
            // those of the keys it and the nodes below it held.
            let mut gone: KVec<Bpos> = KVec::new();
            let mut err = Ok(());
            let r = range(
                fs,
                btree::BACKPOINTERS,
                Bpos::MIN,
                Bpos::MAX,
                &mut |k, v| {
                    if k.typ == KeyType::Backpointer as u8
                        && dropped_with_node(&Backpointer::read(v), bt, level, min, max)
                    {
                        if let Err(e) = gone.push(k.p, GFP_KERNEL) {
                            err = Err(e);
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                },
            );
            match r {
                Err(e) if e == EIO => return Ok(Some("a backpointers leaf cannot be read")),
                r => r?,
            }
            err?;
            put(updates, bt, parent, deleted(max), KVec::new())?;
            for at in gone {
                put(updates, btree::BACKPOINTERS, 0, deleted(at), KVec::new())?;
            }
            Ok(None)
        }
        TopologyFix::SetMin {
            parent,
            at,
            min,
            scan,
        } => {
            if let Some((start, end)) = scan {
                if f.level == 0 && scan_finds(fs, updates, bt, start, end)? {
                    return Ok(Some(SCAN_FOUND));
                }
            }
            if min > at {
                put(updates, bt, parent, deleted(at), KVec::new())?;
                return Ok(None);
            }
            let Some((k, mut v)) = read(pointer(fs, updates, bt, parent, at))? else {
                return Ok(Some("the node's pointer is not readable"));
            };
            if k.typ != KeyType::BtreePtrV2 as u8 {
                return Ok(Some(
                    "a btree_ptr (v1) pointer: needs a rewrite (not done yet)",
                ));
            }
            if set_min_key(&mut v, min).is_none() {
                return Ok(Some("short pointer"));
            }
            put(updates, bt, parent, k, v)?;
            Ok(None)
        }
        TopologyFix::SetMax {
            parent,
            last,
            to,
            scan,
        } => {
            if let Some((start, end)) = scan {
                if f.level == 0 && scan_finds(fs, updates, bt, start, end)? {
                    return Ok(Some(SCAN_FOUND));
                }
            }
            let Some((k, mut v)) = read(pointer(fs, updates, bt, parent, last))? else {
                return Ok(Some("the last child's pointer is not readable"));
            };
            if k.typ != KeyType::BtreePtrV2 as u8 {
                return Ok(Some(
                    "a btree_ptr (v1) pointer: needs a rewrite (not done yet)",
                ));
            }
            if set_range_updated(&mut v).is_none() {
                return Ok(Some("short pointer"));
            }
            put(updates, bt, parent, deleted(last), KVec::new())?;
            put(updates, bt, parent, Bkey { p: to, ..k }, v)?;
            Ok(None)
        }
    }
}

/// Whether a scan of the devices (upstream's `scan_for_btree_nodes`: every bucket
/// the members' btree bitmaps mark) finds a leaf of `bt` overlapping
/// `start..=end` that the backpointers btree still names at its place, i.e. one
/// the offline repair would put back into the gap.
fn scan_finds(fs: &Arc<Fs>, updates: &[Update], bt: u32, start: Bpos, end: Bpos) -> Result<bool> {
    let s = fs.sb();
    let ns = u64::from(s.btree_node_sectors());
    if ns == 0 {
        return Ok(false);
    }
    let shift = s.extent_bp_shift_or_default();
    let nr_bsets = (ns / u64::from(s.block_sectors().max(1))) as usize + 1;
    let mut bsets = KVec::from_elem(BsetRef::default(), nr_bsets, GFP_KERNEL)?;
    for i in 0..fs.devs.len() {
        let (Some(d), Some(m)) = (fs.dev(i as u32), s.member(i)) else {
            continue;
        };
        let bs = u64::from(m.bucket_size());
        if bs < ns {
            continue;
        }
        let mut buf = KVVec::from_elem(0u8, (bs as usize) << 9, GFP_KERNEL)?;
        let buckets = marked_buckets(
            m.btree_allocated_bitmap(),
            m.btree_bitmap_shift(),
            bs,
            u64::from(m.first_bucket()),
            m.nbuckets(),
        );
        for b in buckets {
            let Some(at) = b.checked_mul(bs) else {
                break;
            };
            if d.read(at, &mut buf).is_err() {
                continue;
            }
            let mut off = 0u64;
            while off + ns <= bs {
                let node = &buf[(off as usize) << 9..((off + ns) as usize) << 9];
                let found = examine(
                    node,
                    i as u8,
                    at + off,
                    s.bset_magic(),
                    s.block_sectors(),
                    ns as u32,
                    &KernelHashes,
                    &|seq| fs.is_blacklisted(seq),
                    &mut bsets,
                );
                off += ns;
                let Some(c) = found else {
                    continue;
                };
                if c.btree != bt || c.level != 0 || c.max < start || c.min > end {
                    continue;
                }
                // A node the tree still points to is not lost.
                let reachable = match pointer(fs, updates, bt, 1, c.max) {
                    Ok(Some((k, v))) => BtreePtr::decode(k.typ, &v).is_some_and(|p| p.seq == c.seq),
                    Ok(None) => false,
                    Err(e) if e == EIO => false,
                    Err(e) => return Err(e),
                };
                if reachable {
                    continue;
                }
                let Some(bp_at) = c.offset.checked_shl(shift) else {
                    continue;
                };
                let named = match leaf_key(fs, btree::BACKPOINTERS, Bpos::new(i as u64, bp_at, 0)) {
                    Ok(Some((k, v))) if k.typ == KeyType::Backpointer as u8 => {
                        let bp = Backpointer::read(&v);
                        u32::from(bp.btree_id) == bt
                            && bp.level == 1
                            && bp.data_type == DATA_BTREE
                            && bp.pos == c.max
                    }
                    Ok(_) => false,
                    // A backpointer that cannot be read may name it.
                    Err(e) if e == EIO => true,
                    Err(e) => return Err(e),
                };
                if named {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}
