// SPDX-License-Identifier: GPL-2.0

//! Walks over a btree through the node cache, a node at a time, resuming from a
//! position: each step descends from the root, so a walk holds no node between
//! steps and a reader can stop anywhere. Nodes are visited in post order (a parent
//! right after its last child), as the reference's node listings print them.

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use super::cache::{NodeData, NodeRef};
use super::io::get_node;
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::BtreePtr;
use crate::format::journal::keys::{self as jkeys, AcctView, Overlaid};
use crate::fs::{Fs, PtrKey};

/// Most levels a btree has (upstream's `BTREE_MAX_DEPTH`).
const MAX_DEPTH: usize = 4;

/// Calls `f` for each key of node `d` (`btree`, `level`) with the journal's keys
/// overlaid, in order, until it breaks. Accounting keys the journal has deltas for
/// show as `view` says: the listing's view, or (gc) the value replay leaves.
pub(crate) fn for_each_key(
    fs: &Fs,
    btree: u32,
    level: u8,
    d: &NodeData,
    view: AcctView,
    f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
) -> Result {
    for_each_key_from(fs, btree, level, d, view, Bpos::MIN, f)
}

/// [`for_each_key`] from position `from` on: the node's keys and the journal's are
/// both entered by binary search, so a lookup in a full leaf costs a search, not a
/// scan of every key before it.
pub(crate) fn for_each_key_from(
    fs: &Fs,
    btree: u32,
    level: u8,
    d: &NodeData,
    view: AcctView,
    from: Bpos,
    f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
) -> Result {
    let jk = jkeys::keys_in(
        &fs.journal_keys,
        btree,
        level,
        d.min_key.max(from),
        d.max_key,
    );
    let first = d.keys.partition_point(|kr| kr.k.p < from);
    let node_keys = d.keys.get(first..).unwrap_or(&[]);
    let mut acct: Option<KVec<u8>> = None;
    for o in jkeys::Overlay::new(node_keys.iter().map(|kr| (kr.k, d.val(kr))), jk) {
        let flow = match o {
            Overlaid::Node(k, v) => f(&k, v),
            Overlaid::Journal(j) => f(&j.k, j.val(&fs.jsets)),
            Overlaid::Accounting(node, deltas) => {
                if acct.is_none() {
                    acct = Some(KVec::from_elem(0u8, 8 * 256, GFP_KERNEL)?);
                }
                let out = acct.as_deref_mut().unwrap_or(&mut []);
                match view.value(node, deltas, &fs.jsets, out) {
                    Some((k, n)) => f(&k, &out[..n]),
                    None => ControlFlow::Continue(()),
                }
            }
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

/// A resumable walk over the nodes of one btree at `level` and (with `ancestors`)
/// above it.
pub(crate) struct Walk {
    btree: u32,
    level: u8,
    ancestors: bool,
    /// Where the next step starts; `None` when done.
    pos: Option<Bpos>,
    /// Interior nodes met that could not be read (their subtrees were skipped).
    pub(crate) failed: u32,
}

impl Walk {
    pub(crate) fn new(btree: u32, level: u8, ancestors: bool) -> Self {
        Walk {
            btree,
            level,
            ancestors,
            pos: Some(Bpos::MIN),
            failed: 0,
        }
    }

    /// Visits the next node at `level` (or an interior node that has nothing left at
    /// `level`) and then, with `ancestors`, each ancestor it completes: `f(level,
    /// pointer)`. Returns `false` once the walk is done.
    pub(crate) fn step(&mut self, fs: &Arc<Fs>, f: &mut dyn FnMut(u8, &PtrKey)) -> Result<bool> {
        let Some(pos) = self.pos else {
            return Ok(false);
        };
        let root = match fs.root(self.btree) {
            Some(r) if r.level >= self.level => r,
            _ => {
                self.pos = None;
                return Ok(false);
            }
        };
        // Ancestors descended through, and whether the child taken was their last.
        let mut path: [Option<(u8, PtrKey, bool)>; MAX_DEPTH + 1] = [None; MAX_DEPTH + 1];
        let mut depth = 0usize;
        let (mut lvl, mut cur) = (root.level, root.ptr);
        // The node completed by this step: `cur` at `lvl` on leaving the loop.
        let emit_self;
        loop {
            if lvl <= self.level {
                emit_self = true;
                break;
            }
            let node = get_node(fs, self.btree, lvl, &cur)?;
            let Some(d) = node.data().filter(|d| !d.failed) else {
                // Unreadable (logged when read): nothing below it; it is done.
                self.failed += 1;
                emit_self = self.ancestors;
                break;
            };
            let mut child: Option<PtrKey> = None;
            let mut last = true;
            // The children before `pos` are behind us: start the search at it.
            for_each_key_from(
                fs,
                self.btree,
                lvl,
                d,
                AcctView::Listing,
                pos,
                &mut |k, v| {
                    if BtreePtr::decode(k.typ, v).is_none() {
                        return ControlFlow::Continue(());
                    }
                    if child.is_some() {
                        last = false;
                        return ControlFlow::Break(());
                    }
                    if k.p >= pos {
                        child = PtrKey::new(*k, v);
                    }
                    ControlFlow::Continue(())
                },
            )?;
            let Some(c) = child else {
                // Every child is behind us: the node itself is done.
                emit_self = self.ancestors;
                break;
            };
            if depth > MAX_DEPTH {
                pr_err!("{}: btree deeper than {} levels\n", fs.uuid(), MAX_DEPTH);
                self.pos = None;
                return Err(EINVAL);
            }
            path[depth] = Some((lvl, cur, last));
            depth += 1;
            lvl -= 1;
            cur = c;
        }
        if emit_self {
            f(lvl, &cur);
        }
        // Ancestors whose last child just completed are complete too.
        let mut end = cur.k.p;
        while depth > 0 {
            depth -= 1;
            let Some((plvl, p, true)) = path[depth] else {
                break;
            };
            if self.ancestors {
                f(plvl, &p);
            }
            end = end.max(p.k.p);
        }
        self.pos = (end != Bpos::MAX).then(|| end.successor());
        Ok(true)
    }
}

/// The leaf `p` of `btree` at `level` from the cache or disk; `None` when it is not
/// a leaf with a replica to read (an empty btree's root, or a node above level 0).
pub(crate) fn read_leaf(
    fs: &Arc<Fs>,
    btree: u32,
    level: u8,
    p: &PtrKey,
) -> Result<Option<NodeRef>> {
    if level != 0 || BtreePtr::decode(p.k.typ, p.val()).is_none_or(|b| b.ptrs().next().is_none()) {
        return Ok(None);
    }
    get_node(fs, btree, 0, p).map(Some)
}

/// Calls `f` for every leaf key of `btree`, journal overlaid, in order. Leaves that
/// cannot be read are skipped (their error is logged when read).
pub(crate) fn for_each_leaf_key(
    fs: &Arc<Fs>,
    btree: u32,
    f: &mut dyn FnMut(&Bkey, &[u8]),
) -> Result {
    let mut walk = Walk::new(btree, 0, false);
    let mut leaf: Option<(u8, PtrKey)> = None;
    while walk.step(fs, &mut |l, p| leaf = Some((l, *p)))? {
        let Some((l, p)) = leaf.take() else { continue };
        let Some(node) = read_leaf(fs, btree, l, &p)? else {
            continue;
        };
        if let Some(d) = node.data().filter(|d| !d.failed) {
            for_each_key(fs, btree, 0, d, AcctView::Listing, &mut |k, v| {
                f(k, v);
                ControlFlow::Continue(())
            })?;
        }
    }
    Ok(())
}

/// Calls `f` for each key of `btree` from `from` to `to` inclusive, journal
/// overlaid (accounting deltas as the reference lists them), in order, until it
/// breaks. A leaf (or an interior node above one) in the range that cannot be
/// read fails the call with EIO: a caller never mistakes lost keys for absent
/// ones.
pub(crate) fn range(
    fs: &Arc<Fs>,
    btree: u32,
    from: Bpos,
    to: Bpos,
    f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
) -> Result {
    range_view(fs, btree, from, to, AcctView::Listing, f)
}

/// [`range`], with the journal's accounting deltas shown as `view` says.
pub(crate) fn range_view(
    fs: &Arc<Fs>,
    btree: u32,
    from: Bpos,
    to: Bpos,
    view: AcctView,
    f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
) -> Result {
    let mut walk = Walk::new(btree, 0, false);
    walk.pos = Some(from);
    let mut leaf: Option<(u8, PtrKey)> = None;
    let mut done = false;
    while !done && walk.step(fs, &mut |l, p| leaf = Some((l, *p)))? {
        if walk.failed > 0 {
            return Err(EIO);
        }
        let Some((l, p)) = leaf.take() else { continue };
        let Some(node) = read_leaf(fs, btree, l, &p)? else {
            continue;
        };
        let Some(d) = node.data().filter(|d| !d.failed) else {
            return Err(EIO);
        };
        for_each_key_from(fs, btree, 0, d, view, from, &mut |k, v| {
            // Never below `from`, even where a corrupt node's keys are out of order
            // (the search into it assumes they are sorted).
            if k.p < from {
                return ControlFlow::Continue(());
            }
            if k.p > to {
                done = true;
                return ControlFlow::Break(());
            }
            let r = f(k, v);
            if r.is_break() {
                done = true;
            }
            r
        })?;
        if p.k.p >= to {
            break;
        }
    }
    Ok(())
}
