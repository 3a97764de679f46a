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
//! Before a gap in the leaves is closed, the devices are scanned for btree nodes
//! and a lost leaf the backpointers btree still names at its place is put back
//! (upstream's topology repair from scanned nodes, the offline tool's rules).

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::btree::io::get_node;
use crate::btree::iter::for_each_key;
use crate::commit::{bytes, path_to, put, Update};
use crate::format::alloc::format::{AllocV4, Backpointer, DATA_BTREE};
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::ExtentPtr;
use crate::format::btree::ptr::{set_min_key, set_range_updated, BtreePtr};
use crate::format::btree::read::BsetRef;
use crate::format::btree::scan::{
    cover_gap, examine_bucket, member_buckets, put_back_value, Found, Piece, ScanCtx,
};
use crate::format::gc::finding::Finding;
use crate::format::gc::repair::{dropped_with_node, topology_fix, TopologyFix};
use crate::format::ids::{btree, KeyType};
use crate::format::journal::keys::AcctView;
use crate::fs::{Fs, PtrKey};
use crate::hash::KernelHashes;
use crate::repair::{backpointers_where, leaf_key};

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

/// A whiteout at `p`.
fn deleted(p: Bpos) -> Bkey {
    Bkey {
        typ: KeyType::Deleted as u8,
        p,
        ..Default::default()
    }
}

/// Plans the repair of topology finding `f` into `updates` (keys of interior
/// levels, and backpointers); `Some(why)` when it is not repaired. `scanned`
/// keeps what the device scan found, read once for every gap of the repair.
pub(crate) fn plan_topology(
    fs: &Arc<Fs>,
    f: &Finding,
    updates: &mut KVec<Update>,
    scanned: &mut Option<KVec<Found>>,
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
            let gone =
                match backpointers_where(fs, &|bp| dropped_with_node(bp, bt, level, min, max))? {
                    Ok(g) => g,
                    Err(why) => return Ok(Some(why)),
                };
            put(updates, Update::at(bt, parent, deleted(max), KVec::new()))?;
            for at in gone {
                put(
                    updates,
                    Update::at(btree::BACKPOINTERS, 0, deleted(at), KVec::new()),
                )?;
            }
            Ok(None)
        }
        TopologyFix::SetMin {
            parent,
            at,
            min,
            scan,
        } => {
            // Nodes the scan finds for the gap go back first; the next node then
            // starts after the last of them.
            let mut min = min;
            if let (Some((start, end)), 0) = (scan, f.level) {
                match put_back_scanned(fs, updates, scanned, bt, start, end)? {
                    Some(last) if last == end => return Ok(None),
                    Some(last) => min = last.successor(),
                    None => {}
                }
            }
            if min > at {
                put(updates, Update::at(bt, parent, deleted(at), KVec::new()))?;
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
            put(updates, Update::at(bt, parent, k, v))?;
            Ok(None)
        }
        TopologyFix::SetMax {
            parent,
            last,
            to,
            scan,
        } => {
            // Found nodes over the parent's missing end: the last of them reaches
            // to the parent's end.
            if let (Some((start, end)), 0) = (scan, f.level) {
                if let Some(l) = put_back_scanned(fs, updates, scanned, bt, start, end)? {
                    if l != end {
                        let Some(i) = updates
                            .iter()
                            .position(|u| u.btree == bt && u.level == parent && u.k.p == l)
                        else {
                            return Err(EINVAL);
                        };
                        let mut u = updates.remove(i)?;
                        if set_range_updated(&mut u.v).is_none() {
                            return Ok(Some("short pointer"));
                        }
                        put(updates, Update::at(bt, parent, Bkey { p: end, ..u.k }, u.v))?;
                    }
                    return Ok(None);
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
            put(updates, Update::at(bt, parent, deleted(last), KVec::new()))?;
            put(updates, Update::at(bt, parent, Bkey { p: to, ..k }, v))?;
            Ok(None)
        }
    }
}

/// Every node a scan of the devices finds (upstream's `scan_for_btree_nodes`:
/// each bucket the members' btree bitmaps mark, node by node), in device and
/// offset order.
fn scan(fs: &Arc<Fs>) -> Result<KVec<Found>> {
    let s = fs.sb();
    let mut found = KVec::new();
    let ns = u64::from(s.btree_node_sectors());
    if ns == 0 {
        return Ok(found);
    }
    let mut bsets = KVec::from_elem(BsetRef::default(), s.max_bsets(), GFP_KERNEL)?;
    let blacklisted = |seq| fs.is_blacklisted(seq);
    let ctx = ScanCtx::of(&s, &KernelHashes, &blacklisted);
    for i in 0..fs.devs.len() {
        let (Some(d), Some(m)) = (fs.dev(i as u32), s.member(i)) else {
            continue;
        };
        let Some((bs, buckets)) = member_buckets(&m, ns) else {
            continue;
        };
        let mut buf = KVVec::from_elem(0u8, (bs as usize) << 9, GFP_KERNEL)?;
        for b in buckets {
            let Some(at) = b.checked_mul(bs) else {
                break;
            };
            // A bucket that cannot be read holds nothing found.
            if d.read(at, &mut buf).is_err() {
                continue;
            }
            let mut err = Ok(());
            examine_bucket(&buf, i as u8, at, &ctx, &mut bsets, &mut |c| {
                if err.is_ok() {
                    err = found.push(c, GFP_KERNEL);
                }
            });
            err?;
        }
    }
    Ok(found)
}

/// The seqs of the nodes at `level` of `bt` the tree still points to, less the
/// pointers `updates` drops. Nodes that cannot be read hold none.
fn reachable(fs: &Arc<Fs>, updates: &[Update], bt: u32, level: u8) -> Result<KVec<u64>> {
    let mut out = KVec::new();
    let Some(root) = fs.root(bt) else {
        return Ok(out);
    };
    if root.level <= level {
        return Ok(out);
    }
    let mut cur: KVec<PtrKey> = KVec::new();
    cur.push(root.ptr, GFP_KERNEL)?;
    let mut l = root.level;
    while l > level {
        let mut next: KVec<PtrKey> = KVec::new();
        for ptr in cur.iter() {
            let n = match get_node(fs, bt, l, ptr) {
                Ok(n) => n,
                Err(e) if e == EIO => continue,
                Err(e) => return Err(e),
            };
            let Some(d) = n.data() else {
                continue;
            };
            if d.failed {
                continue;
            }
            let mut err = Ok(());
            for_each_key(fs, bt, l, d, AcctView::Replayed, &mut |k, v| {
                let dropped = updates.iter().any(|u| {
                    u.btree == bt
                        && u.level == l
                        && u.k.p == k.p
                        && u.k.typ == KeyType::Deleted as u8
                });
                if let (Some(p), false) = (PtrKey::new(*k, v), dropped) {
                    if let Err(e) = next.push(p, GFP_KERNEL) {
                        err = Err(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })?;
            err?;
        }
        cur = next;
        l -= 1;
    }
    for p in cur.iter() {
        if let Some(bp) = BtreePtr::decode(p.k.typ, p.val()) {
            out.push(bp.seq, GFP_KERNEL)?;
        }
    }
    Ok(out)
}

/// Puts back into the parents (level 1 of `bt`) the leaves a device scan finds
/// for the missing range `start..=end`, as the offline repair does: only a node
/// the backpointers btree still names at its place (one the allocation info
/// still counts as live) and that the tree no longer points to; the newest
/// first, each in one piece, laid end to end from `start` (the core's
/// [`cover_gap`]). Their pointers go into `updates`. Returns where the last piece
/// ends, or `None` when nothing was found. The devices are scanned on first need
/// (`scanned`).
fn put_back_scanned(
    fs: &Arc<Fs>,
    updates: &mut KVec<Update>,
    scanned: &mut Option<KVec<Found>>,
    bt: u32,
    start: Bpos,
    end: Bpos,
) -> Result<Option<Bpos>> {
    if scanned.is_none() {
        *scanned = Some(scan(fs)?);
    }
    let found = scanned.as_deref().ok_or(EINVAL)?;
    let shift = fs.sb().extent_bp_shift_or_default();
    let named = |c: &Found| -> Result<bool> {
        let Some(bp_at) = c.offset.checked_shl(shift) else {
            return Ok(false);
        };
        match leaf_key(
            fs,
            btree::BACKPOINTERS,
            Bpos::new(u64::from(c.dev), bp_at, 0),
        ) {
            Ok(Some((k, v))) if k.typ == KeyType::Backpointer as u8 => {
                let bp = Backpointer::read(&v);
                Ok(u32::from(bp.btree_id) == bt
                    && bp.level == 1
                    && bp.data_type == DATA_BTREE
                    && bp.pos == c.max)
            }
            Ok(_) => Ok(false),
            Err(e) if e == EIO => Ok(false),
            Err(e) => Err(e),
        }
    };
    let live = reachable(fs, updates, bt, 0)?;
    // One candidate per node (its first replica found); the others join its
    // pointer.
    let mut cands: KVec<Found> = KVec::new();
    for c in found.iter() {
        if c.btree != bt
            || c.level != 0
            || live.contains(&c.seq)
            || cands.iter().any(|x| x.seq == c.seq)
            || !named(c)?
        {
            continue;
        }
        cands.push(*c, GFP_KERNEL)?;
    }
    let mut considered = KVec::from_elem(false, cands.len(), GFP_KERNEL)?;
    let mut pieces = KVec::from_elem(Piece::default(), cands.len(), GFP_KERNEL)?;
    let n = cover_gap(&cands, start, end, &mut considered, &mut pieces);
    if n == 0 {
        return Ok(None);
    }
    let mut last = start;
    for p in pieces.iter().take(n) {
        let c = cands.get(p.node).ok_or(EINVAL)?;
        let mut ptrs: KVec<ExtentPtr> = KVec::new();
        for r in found.iter().filter(|r| r.seq == c.seq) {
            if !named(r)? {
                continue;
            }
            let bs = fs
                .sb()
                .member(r.dev as usize)
                .map_or(1, |m| u64::from(m.bucket_size()).max(1));
            let at = Bpos::new(u64::from(r.dev), r.offset / bs, 0);
            let gen = match leaf_key(fs, btree::ALLOC, at) {
                Ok(Some((k, v))) => AllocV4::from_key(k.typ, &v).map_or(0, |a| a.gen),
                Ok(None) => 0,
                Err(e) if e == EIO => 0,
                Err(e) => return Err(e),
            };
            ptrs.push(
                ExtentPtr {
                    dev: r.dev,
                    offset: r.offset,
                    gen,
                    cached: false,
                    unwritten: false,
                },
                GFP_KERNEL,
            )?;
        }
        let mut v = KVec::from_elem(0u8, 40 + ptrs.len() * 8, GFP_KERNEL)?;
        put_back_value(c, p, &ptrs, &mut v).ok_or(EINVAL)?;
        let k = Bkey {
            typ: KeyType::BtreePtrV2 as u8,
            p: p.max,
            ..Default::default()
        };
        put(updates, Update::at(bt, 1, k, v))?;
        last = p.max;
    }
    pr_info!(
        "{}: repair: btree {}: {} leaf(s) found by a device scan put back over {}:{}..{}:{}\n",
        fs.uuid(),
        bt,
        n,
        start.inode,
        start.offset,
        last.inode,
        last.offset
    );
    Ok(Some(last))
}
