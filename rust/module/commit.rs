// SPDX-License-Identifier: GPL-2.0

//! Committing key updates from the kernel: the write path of a repair at mount. The
//! layouts (bset, jset, superblock) are the core's; this file orders the IO, in the
//! order the offline `fsck -y` writes (`tool/src/repair.rs`):
//!
//! 1. every touched node gets one bset appended at its next block, on every replica
//!    ([`crate::btree::write`]: `WRITE_IN_FLIGHT`, a bio per replica, completion on
//!    the workqueue). A bset past its pointer's `sectors_written` is not read, so it
//!    stays invisible until the pointer that covers it is committed; each written
//!    node's pointer, its `sectors_written` advanced, becomes a key of its parent's
//!    bset (or the btree's new root), up to the roots. A node asked to be rewritten
//!    (read with a bad checksum), or that cannot take a bset (no room, a damaged or
//!    unreadable replica), is written whole to new space instead: its keys as read
//!    with its new ones, in buckets the [`Allocator`] takes from the freespace
//!    btree (split in two or more when they pass the split threshold); its new
//!    pointers replace the old one in its parent, and the triggers
//!    of both pointers ([`crate::trigger`]: alloc keys and their derived keys,
//!    backpointers, accounting, the members' btree bitmaps) are planned with the
//!    caller's keys, in rounds until they settle, as the offline tool plans them.
//!    A new node lies in a free bucket and nothing points to it until the commit;
//! 2. a cache flush of every device;
//! 3. one journal entry (REQ_PREFLUSH | REQ_FUA) with every key at every level and
//!    the roots, then a last entry with only the roots;
//! 4. the superblock, marked clean with the new roots and the last entry's seq, copy
//!    by copy on every device.
//!
//! On a clean filesystem the journal is not replayed at mount, so until the first
//! superblock copy lands nothing new is visible, and a crash before it leaves the
//! filesystem as it was. A filesystem that was not shut down cleanly keeps its
//! journal: the seqs past its newest entry are blacklisted first (a superblock
//! write, with the superblock's own changes), our entries start [`DIRTY_SKIP`]
//! further on and replay on top of it (their `last_seq` is its replay start), and it
//! stays dirty: there the first of our journal entries commits the keys. A node
//! rewritten whose live keys pass upstream's split threshold is split (the core's
//! `split_groups`), and a root that splits gets a new root above its halves, as
//! the offline tool writes them; no free bucket for a new node refuses the whole
//! commit, and nothing is written then.

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::alloc::{Allocator, Seqs};
use crate::bdev::WriteFlags;
use crate::btree::cache::Node;
use crate::btree::io::get_node;
use crate::btree::iter::for_each_key;
use crate::btree::write::{write_node, Image, WriteType};
use crate::eopnotsupp;
use crate::format::alloc::foreground::bitmap_mark;
use crate::format::bkey::BkeyFormat;
use crate::format::bkey::{Bkey, BKEY_BYTES};
use crate::format::bpos::Bpos;
use crate::format::btree::interior::{
    key_u64s, new_node_format, root_format, split_groups, SplitGroup,
};
use crate::format::btree::ptr::{set_sectors_written, BtreePtr};
use crate::format::btree::read::{BsetRef, NodeCtx, NodeHeader};
use crate::format::btree::update::Unwritten;
use crate::format::btree::write::{
    append_bset, compose_new_node, AppendError, NodeSpec, WriteCtx, WriteError,
};
use crate::format::ids::KeyType;
use crate::format::journal::keys::AcctView;
use crate::format::journal::read::{entry, JSET_BYTES};
use crate::format::journal::write::{
    jset_flags, next_slot, JsetBuilder, JsetHeader, Slot, DIRTY_SKIP,
};
use crate::format::sb::format as sbf;
use crate::format::sb::write::{member, SbEdit};
use crate::format::sb::{JsetEntries, Sb};
use crate::fs::{Fs, JournalPos, PtrKey, Root, WriteState};
use crate::hash::KernelHashes;
use crate::trigger::{triggers, PtrChange};

/// One key to write at `level` of `btree`.
pub(crate) struct Update {
    pub(crate) btree: u32,
    pub(crate) level: u8,
    pub(crate) k: Bkey,
    pub(crate) v: KVec<u8>,
    /// What the journal gets instead of `v` where they differ: an accounting key's
    /// journal copy is a delta.
    pub(crate) journal_v: Option<KVec<u8>>,
}

/// A copy of a key's value.
pub(crate) fn bytes(v: &[u8]) -> Result<KVec<u8>> {
    let mut out = KVec::new();
    out.extend_from_slice(v, GFP_KERNEL)?;
    Ok(out)
}

impl Update {
    /// A copy.
    pub(crate) fn try_clone(&self) -> Result<Update> {
        Ok(Update {
            btree: self.btree,
            level: self.level,
            k: self.k,
            v: bytes(&self.v)?,
            journal_v: self.journal_v.as_deref().map(bytes).transpose()?,
        })
    }

    /// Key `k` with value `v` in a leaf of `btree`, the journal's copy the same.
    pub(crate) fn leaf(btree: u32, k: Bkey, v: KVec<u8>) -> Update {
        Update::at(btree, 0, k, v)
    }

    /// Key `k` with value `v` at `level` of `btree`, the journal's copy the same.
    pub(crate) fn at(btree: u32, level: u8, k: Bkey, v: KVec<u8>) -> Update {
        Update {
            btree,
            level,
            k,
            v,
            journal_v: None,
        }
    }
}

/// Sets `u` in `out`, replacing an update of the same key.
pub(crate) fn put(out: &mut KVec<Update>, u: Update) -> Result {
    match out
        .iter_mut()
        .find(|o| o.btree == u.btree && o.level == u.level && o.k.p == u.k.p)
    {
        Some(o) => *o = u,
        None => out.push(u, GFP_KERNEL)?,
    }
    Ok(())
}

/// Superblock changes a repair makes, on every device's superblock.
#[derive(Default)]
pub(crate) struct SbChanges {
    /// A new btree-allocated bitmap, by device.
    pub(crate) bitmaps: KVec<(u32, u64)>,
    /// Recovery passes (bits of `recovery_passes_required[0]`) that ran.
    pub(crate) passes_done: u64,
}

impl SbChanges {
    pub(crate) fn is_empty(&self) -> bool {
        self.bitmaps.is_empty() && self.passes_done == 0
    }

    fn apply(&self, e: &mut SbEdit<'_>) -> Result {
        for &(dev, bitmap) in self.bitmaps.iter() {
            let shift = e
                .sb()
                .member(dev as usize)
                .ok_or(EINVAL)?
                .btree_bitmap_shift();
            e.set_member_bitmap(dev as usize, shift, bitmap)
                .map_err(|_| EINVAL)?;
        }
        if self.passes_done != 0 {
            let p = e.sb().recovery_passes_required() & !self.passes_done;
            e.set_recovery_passes_required(p).map_err(|_| EINVAL)?;
        }
        Ok(())
    }
}

/// What a commit wrote.
#[derive(Default, Debug)]
pub(crate) struct Done {
    /// Nodes that got a bset.
    pub(crate) nodes: u32,
    /// New nodes written (a node rewritten to new space).
    pub(crate) new_nodes: u32,
    /// Bytes written to both (every replica).
    pub(crate) node_bytes: u64,
    /// Journal entries, their first seq.
    pub(crate) journal_entries: u32,
    pub(crate) seq: u64,
    /// Superblock copies written (all devices).
    pub(crate) sb_copies: u32,
}

/// The writes a commit may still make: unlimited, or (the `repair_writes_max`
/// parameter, for crash tests) a count after which it stops as a crash would.
/// With `repair_write_pause_ms` (crash tests that kill the machine) each write
/// done is logged and followed by that pause before the next one starts.
struct Budget {
    left: Option<u32>,
    pause_ms: u32,
    /// Writes done, and how many were done at the last pause.
    done: u32,
    paused_at: u32,
}

impl Budget {
    fn from_param() -> Budget {
        // SAFETY: reads a module parameter.
        let max = unsafe { crate::shim::bch_rs_repair_writes_max() };
        // SAFETY: reads a module parameter.
        let pause_ms = unsafe { crate::shim::bch_rs_repair_write_pause_ms() };
        Budget {
            left: u32::try_from(max).ok(),
            pause_ms,
            done: 0,
            paused_at: 0,
        }
    }

    /// Before the next write: the pause after the last one, if asked for.
    fn pause(&mut self, fs: &Fs) {
        if self.pause_ms == 0 || self.done == self.paused_at {
            return;
        }
        self.paused_at = self.done;
        pr_notice!(
            "{}: repair: {} writes done, pausing {} ms (repair_write_pause_ms)\n",
            fs.uuid(),
            self.done,
            self.pause_ms
        );
        // SAFETY: sleeps; the commit runs in process context (the mount).
        unsafe { crate::shim::bch_rs_msleep(self.pause_ms) };
    }

    /// How many of `n` writes may go; the rest stop the commit.
    fn allow(&mut self, fs: &Fs, n: usize) -> usize {
        self.pause(fs);
        self.left.map_or(n, |left| n.min(left as usize))
    }

    fn spend(&mut self, n: usize) {
        self.done = self.done.saturating_add(n as u32);
        if let Some(left) = self.left.as_mut() {
            *left = left.saturating_sub(n as u32);
        }
    }

    /// One write: `Err` once the budget is spent.
    fn take(&mut self, fs: &Fs) -> Result {
        if self.allow(fs, 1) == 0 {
            return Err(stopped(fs));
        }
        self.spend(1);
        Ok(())
    }
}

/// The error of a commit stopped by `repair_writes_max` (ECANCELED, which the
/// kernel crate names only from 7.3 on).
pub(crate) fn stopped_errno() -> Error {
    Error::from_errno(-(kernel::bindings::ECANCELED as i32))
}

fn stopped(fs: &Fs) -> Error {
    pr_err!(
        "{}: repair: stopped by repair_writes_max, as a crash would stop it\n",
        fs.uuid()
    );
    stopped_errno()
}

/// Marks that a device write failed (each failure is logged where it happens).
struct WriteFailed<'a>(&'a mut bool);

impl WriteFailed<'_> {
    /// Past the first journal entry something is on disk: any error (but a
    /// `repair_writes_max` stop) leaves the filesystem to be read afresh.
    fn any<T>(&mut self, r: Result<T>) -> Result<T> {
        self.on(r)
    }

    fn on<T>(&mut self, r: Result<T>) -> Result<T> {
        // A stop by repair_writes_max is not a failed write.
        if r.as_ref().is_err_and(|e| *e != stopped_errno()) {
            *self.0 = true;
        }
        r
    }
}

/// A node the commit writes: where it is, its parent (index into the list), the
/// keys it gets.
struct Touched {
    btree: u32,
    level: u8,
    ptr: PtrKey,
    parent: Option<usize>,
    keys: KVec<(Bkey, KVec<u8>)>,
    /// Written whole to new space rather than appended to: why.
    rewrite: Option<&'static str>,
}

/// A commit, planned: the nodes it writes, their images (in the order to write
/// them: `None` for a new node) and the roots after it, and the node pointers it
/// inserts or removes (for the triggers).
struct Planned {
    touched: KVec<Touched>,
    images: KVec<(Option<usize>, KVec<Image>, WriteType)>,
    roots: KVec<Option<Root>>,
    changes: KVec<PtrChange>,
    /// Nodes written whole to new space: btree, level, max key, why, how many
    /// new nodes (more than one: split).
    rewritten: KVec<(u32, u8, Bpos, &'static str, usize)>,
    /// Keys of new interior nodes that no touched node holds (a new root's and
    /// those under it), for the journal: btree, level, keys.
    extra: KVec<(u32, u8, Keys)>,
}

/// The seq after which a commit's journal entries go: past the newest entry found
/// (and [`DIRTY_SKIP`] further on a filesystem not shut down cleanly).
fn journal_base_seq(ws: &WriteState) -> Option<u64> {
    let n = ws.journal_newest?;
    n.seq
        .max(ws.journal_seq)
        .checked_add(if ws.clean { 0 } else { DIRTY_SKIP })
}

/// The first seq the next commit writes to the journal of `fs`.
pub(crate) fn next_journal_seq(fs: &Fs) -> Option<u64> {
    journal_base_seq(&fs.wstate.lock())?.checked_add(1)
}

/// Writes `updates` and the superblock `changes` as the module comment says. An
/// error with `write_failed` set is a device write that failed, or any error once
/// the first journal entry is on disk (logged): the disks hold the old filesystem
/// or the repaired one, as after a crash, and the caller reads them afresh or stops
/// writing. Other errors come before anything is written (every node's bset is
/// composed before the first write), but for ECANCELED ([`stopped_errno`]: stopped
/// by `repair_writes_max`, as a crash would stop it).
///
/// `live`: the filesystem is mounted and read meanwhile (the gc thread's writes):
/// the roots readers see are replaced once the commit is done, and a filesystem
/// with a journal to replay is refused (its keys overlay the nodes in memory).
/// Commits are serialized by the write state's lock, held throughout; a frozen
/// filesystem, or one remounted read-only, starts none ([`Fs::writes_held`]).
pub(crate) fn commit(
    fs: &Arc<Fs>,
    updates: &[Update],
    rewrites: &[(u32, u8, Bpos, &'static str)],
    changes: &SbChanges,
    write_failed: &mut bool,
    live: bool,
) -> Result<Done> {
    let mut wf = WriteFailed(write_failed);
    if !fs.writable || fs.write_error.load(core::sync::atomic::Ordering::Acquire) {
        return Err(EROFS);
    }
    let mut ws = fs.wstate.lock();
    fs.writes_held()?;
    if live && !ws.clean {
        pr_err!(
            "{}: not written while mounted: the filesystem has a journal to replay (mount it again with fsck,fix_errors)\n",
            fs.uuid()
        );
        return Err(eopnotsupp());
    }
    let mut done = Done::default();
    let mut budget = Budget::from_param();
    if updates.is_empty() && rewrites.is_empty() {
        if !changes.is_empty() {
            done.sb_copies = wf.on(write_sb(fs, &mut ws, None, changes, None, &mut budget))?;
        }
        return Ok(done);
    }
    let mut journal = Journal::new(fs, &ws)?;
    let seq = journal.seq.checked_add(1).ok_or(EINVAL)?;
    done.seq = seq;
    // A dirty filesystem keeps its journal: our entries replay on top of it (their
    // last_seq is its replay start), after the seqs skipped are blacklisted; the
    // superblock's own changes go with the blacklist. A clean one needs nothing
    // older than our first entry.
    let clean = ws.clean;
    let last_seq = if clean { seq } else { fs.journal_start };
    // Planning, in rounds when nodes move: the triggers of the node pointers a
    // round inserts or removes write keys (alloc, backpointers, accounting...)
    // that go into nodes too, so the next round plans the caller's updates with
    // them, until they stop changing.
    let mut seqs = Seqs::default();
    let mut trig: KVec<Update> = KVec::new();
    let mut new_nodes: KVec<(u32, u64)> = KVec::new();
    let mut settled = None;
    for _ in 0..PLAN_ROUNDS {
        let all = with_triggers(updates, &trig)?;
        // Each round allocates afresh, in the order it takes nodes; the new
        // nodes' seqs are the same every round.
        seqs.rewind();
        let mut r = Round {
            fs,
            caller: updates,
            rewrites,
            seq,
            live,
            alloc: None,
            seqs: &mut seqs,
        };
        let p = refuse_damaged(fs, plan(&mut r, &all))?;
        let mut t = KVec::new();
        new_nodes.clear();
        if !p.changes.is_empty() {
            let a = r.alloc.as_ref().ok_or(EINVAL)?;
            refuse_damaged(
                fs,
                triggers(fs, &p.changes, updates, seq, a, &mut t, &mut new_nodes),
            )?;
        }
        if same_updates(&t, &trig) {
            settled = Some((all, p));
            break;
        }
        trig = t;
    }
    let Some((all, mut p)) = settled else {
        pr_err!(
            "{}: repair: planning the commit did not settle (its trigger keys kept changing); nothing written\n",
            fs.uuid()
        );
        return Err(eopnotsupp());
    };
    // Each member's bitmap, as the caller leaves it, marks every new node
    // (`bch2_dev_btree_bitmap_mark`).
    let mut sb_changes = SbChanges {
        bitmaps: KVec::new(),
        passes_done: changes.passes_done,
    };
    sb_changes
        .bitmaps
        .extend_from_slice(&changes.bitmaps, GFP_KERNEL)?;
    let ns = u64::from(fs.sb().btree_node_sectors());
    for &(dev, offset) in new_nodes.iter() {
        let m = fs.sb().member(dev as usize).ok_or(EINVAL)?;
        let cur = sb_changes
            .bitmaps
            .iter()
            .find(|(d, _)| *d == dev)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| m.btree_allocated_bitmap());
        let marked = bitmap_mark(cur, m.btree_bitmap_shift(), offset, ns).ok_or(EINVAL)?;
        if marked != cur {
            match sb_changes.bitmaps.iter_mut().find(|(d, _)| *d == dev) {
                Some(b) => b.1 = marked,
                None => sb_changes.bitmaps.push((dev, marked), GFP_KERNEL)?,
            }
        }
    }
    for &(btree, level, max, why, nodes) in p.rewritten.iter() {
        let to = p
            .changes
            .iter()
            .find(|c| {
                c.insert
                    && c.btree == btree
                    && c.holder == level.wrapping_add(1)
                    && c.ptr.k.p == max
            })
            .and_then(|c| first_offset(&c.ptr))
            .unwrap_or((0, 0));
        let uuid = fs.uuid();
        if nodes > 1 {
            pr_info!(
                "{}: repair: btree {} level {} node at {}:{}: {}: rewritten to new space, split in {} nodes (the last at {}:{})\n",
                uuid, btree, level, max.inode, max.offset, why, nodes, to.0, to.1
            );
        } else {
            pr_info!(
                "{}: repair: btree {} level {} node at {}:{}: {}: rewritten to new space at {}:{}\n",
                uuid, btree, level, max.inode, max.offset, why, to.0, to.1
            );
        }
    }
    let changes = &sb_changes;
    let updates = &all[..];
    let roots = core::mem::take(&mut p.roots);
    let touched = core::mem::take(&mut p.touched);
    let images = core::mem::take(&mut p.images);
    let extra = core::mem::take(&mut p.extra);
    // Every image is composed: nothing can refuse the commit any more. On a dirty
    // filesystem the skipped seqs are blacklisted first.
    if !clean {
        let skipped = (ws.journal_seq.checked_add(1).ok_or(EINVAL)?, seq);
        done.sb_copies += wf.on(write_sb(
            fs,
            &mut ws,
            None,
            changes,
            Some(skipped),
            &mut budget,
        ))?;
    }
    // The node images, each under its node's WRITE_IN_FLIGHT bit: new nodes in
    // free space, bsets past their nodes' sectors_written.
    for (i, mut imgs, typ) in images {
        let nr = imgs.len();
        let allowed = budget.allow(fs, nr);
        if allowed == 0 {
            return Err(stopped(fs));
        }
        imgs.truncate(allowed);
        budget.spend(allowed);
        done.node_bytes += imgs.iter().map(|i| i.data.len() as u64).sum::<u64>();
        let w = match i {
            Some(i) => {
                let t = &touched[i];
                let node = get_node(fs, t.btree, t.level, &t.ptr)?;
                write_node(fs, node.node(), typ, imgs)?
            }
            None => write_node(fs, &Node::new_detached()?, typ, imgs)?,
        };
        if allowed < nr {
            return Err(stopped(fs));
        }
        if w.failed != 0 {
            // Nothing is committed yet: the bsets written lie past their pointers'
            // `sectors_written` and are never read. Dropping the failed replica
            // from the pointer, as upstream does, is not done here yet.
            pr_err!(
                "{}: repair: a node write failed on {} of {} replica(s) (error {}): nothing committed\n",
                fs.uuid(),
                w.failed.count_ones(),
                nr,
                w.err
            );
            return wf.on(Err(EIO));
        }
        if i.is_some() {
            done.nodes += 1;
        } else {
            done.new_nodes += 1;
        }
    }
    for d in fs.devs.iter().flatten() {
        wf.on(d.flush().inspect_err(|e| {
            pr_err!(
                "{}: cache flush error on {}: error {}\n",
                fs.uuid(),
                d.name(),
                e.to_errno()
            )
        }))?;
    }
    // One journal entry with every key at every level, and the roots.
    budget.take(fs)?;
    let s1 = journal.write(fs, Some(last_seq), &mut wf, &mut |b| {
        for t in touched.iter() {
            let mut it = t.keys.iter().map(|(k, v)| {
                let jv = journal_form(updates, t, k).unwrap_or(v);
                (*k, jv)
            });
            b.btree_keys(t.btree, t.level, &mut it)
                .map_err(|_| ENOSPC)?;
        }
        for (btree, level, keys) in extra.iter() {
            let mut it = keys.iter().map(|(k, v)| (*k, &v[..]));
            b.btree_keys(*btree, *level, &mut it).map_err(|_| ENOSPC)?;
        }
        add_roots(b, &roots)
    })?;
    // From here on, the next commit starts after this entry, and any error leaves
    // the filesystem to be read afresh (write_failed).
    journal.record(&mut ws, s1);
    if s1.0 != seq {
        return wf.any(Err(EINVAL));
    }
    if !clean {
        // Every root in an entry of its own, the journal's keys left to replay:
        // the filesystem stays dirty.
        budget.take(fs)?;
        let r = journal.write(fs, Some(last_seq), &mut wf, &mut |b| add_roots(b, &roots));
        let end = wf.any(r)?;
        done.journal_entries = 2;
        journal.record(&mut ws, end);
        fs.set_roots_to(&roots);
        return Ok(done);
    }
    // The last entry: nothing left to replay, every root.
    budget.take(fs)?;
    let r = journal.write(fs, None, &mut wf, &mut |b| add_roots(b, &roots));
    let (end_seq, end_slot, end_sectors) = wf.any(r)?;
    journal.record(&mut ws, (end_seq, end_slot, end_sectors));
    done.journal_entries = 2;
    let cs = CleanState {
        roots: &roots,
        seq: end_seq,
        jdev: journal.dev,
        slot: end_slot,
        sectors: end_sectors,
    };
    let r = write_sb(fs, &mut ws, Some(&cs), changes, None, &mut budget);
    done.sb_copies += wf.any(r)?;
    fs.set_roots_to(&roots);
    Ok(done)
}

/// What a planning round of a commit works with.
struct Round<'a> {
    fs: &'a Arc<Fs>,
    /// The caller's updates: what the allocator (its busy buckets, its freespace)
    /// and the triggers start from.
    caller: &'a [Update],
    /// Nodes to rewrite: (btree, level, the node's max key, why).
    rewrites: &'a [(u32, u8, Bpos, &'static str)],
    /// The commit's journal seq.
    seq: u64,
    /// A gc pass's writes while mounted: nodes are not moved.
    live: bool,
    /// The round's allocator, made on first need.
    alloc: Option<Allocator>,
    /// New nodes' seqs, the same in every round.
    seqs: &'a mut Seqs,
}

/// Planning rounds a commit may take before its trigger keys settle (the offline
/// tool's limit).
const PLAN_ROUNDS: usize = 8;

/// A planning error that a damaged key caused (EINVAL: a pointer to a missing
/// device, an alloc key of another type, a counter too many...) refuses the
/// commit with nothing written, logged, instead of failing the mount.
fn refuse_damaged<T>(fs: &Fs, r: Result<T>) -> Result<T> {
    r.map_err(|e| {
        if e == EINVAL {
            pr_err!(
                "{}: repair: a key the commit must change cannot be planned (damaged: error {}); nothing written (repair offline: bcachefs-rs fsck -y)\n",
                fs.uuid(),
                e.to_errno()
            );
            eopnotsupp()
        } else {
            e
        }
    })
}

/// The caller's `updates` with the triggers' keys `trig` on top (a trigger key
/// replaces the caller's update of the same key, which it was computed over).
fn with_triggers(updates: &[Update], trig: &[Update]) -> Result<KVec<Update>> {
    let mut all = KVec::new();
    for u in updates.iter() {
        if trig
            .iter()
            .any(|t| t.btree == u.btree && t.level == u.level && t.k.p == u.k.p)
        {
            continue;
        }
        all.push(u.try_clone()?, GFP_KERNEL)?;
    }
    for t in trig.iter() {
        all.push(t.try_clone()?, GFP_KERNEL)?;
    }
    Ok(all)
}

/// Whether two lists of trigger keys are the same keys, in the same order.
fn same_updates(a: &[Update], b: &[Update]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.btree == y.btree
                && x.level == y.level
                && x.k == y.k
                && x.v[..] == y.v[..]
                && x.journal_v.as_deref() == y.journal_v.as_deref()
        })
}

/// Plans the commit of `all` (the caller's updates, and the triggers' keys of
/// the last round) and of the round's node rewrites, level by level from the
/// bottom: each touched node gets its keys as an appended bset, or is written
/// whole to new space (asked for, or when a bset cannot be appended: no room, a
/// damaged replica), and its new pointer goes to its parent (or becomes the
/// btree's root). Nothing is written. New nodes take space from the round's
/// allocator, made on first need.
fn plan(r: &mut Round<'_>, all: &[Update]) -> Result<Planned> {
    let (fs, rewrites, seq, live) = (r.fs, r.rewrites, r.seq, r.live);
    let mut touched: KVec<Touched> = KVec::new();
    // Registers the nodes of `path` (root first); returns the last one's index.
    let register = |touched: &mut KVec<Touched>, btree: u32, path: &[(u8, PtrKey)]| {
        let mut parent = None;
        for (level, ptr) in path.iter() {
            let at = match touched
                .iter()
                .position(|t| t.btree == btree && t.level == *level && same_node(&t.ptr, ptr))
            {
                Some(i) => i,
                None => {
                    touched.push(
                        Touched {
                            btree,
                            level: *level,
                            ptr: *ptr,
                            parent,
                            keys: KVec::new(),
                            rewrite: None,
                        },
                        GFP_KERNEL,
                    )?;
                    touched.len() - 1
                }
            };
            parent = Some(at);
        }
        parent.ok_or(EINVAL)
    };
    for u in all {
        let path = path_to(fs, u.btree, u.k.p, u.level)?;
        let leaf = register(&mut touched, u.btree, &path)?;
        touched[leaf].keys.push((u.k, bytes(&u.v)?), GFP_KERNEL)?;
    }
    for &(btree, level, max, why) in rewrites {
        let path = path_to(fs, btree, max, level)?;
        if path.last().map(|(_, p)| p.k.p) != Some(max) {
            pr_err!(
                "{}: repair: btree {} has no node at level {} ending at {}:{} to rewrite\n",
                fs.uuid(),
                btree,
                level,
                max.inode,
                max.offset
            );
            return Err(eopnotsupp());
        }
        let i = register(&mut touched, btree, &path)?;
        touched[i].rewrite = Some(why);
    }
    let mut roots = fs.roots()?;
    let mut images: KVec<(Option<usize>, KVec<Image>, WriteType)> = KVec::new();
    let mut changes: KVec<PtrChange> = KVec::new();
    let mut rewritten = KVec::new();
    let mut extra = KVec::new();
    let max_level = touched.iter().map(|t| t.level).max().unwrap_or(0);
    for level in 0..=max_level {
        // By btree, then position (the order the offline tool takes nodes in, and
        // so hands out new space in).
        let mut here = KVec::new();
        for (i, t) in touched.iter().enumerate() {
            if t.level == level && (!t.keys.is_empty() || t.rewrite.is_some()) {
                here.push(i, GFP_KERNEL)?;
            }
        }
        here.sort_unstable_by_key(|&i| (touched[i].btree, touched[i].ptr.k.p));
        for i in here {
            let keys = core::mem::take(&mut touched[i].keys);
            let t = &touched[i];
            let mut why = t.rewrite;
            let mut new_ptrs: KVec<PtrKey> = KVec::new();
            if why.is_none() {
                match append(fs, t, &keys, seq)? {
                    Ok((imgs, sectors)) => {
                        let mut v = bytes(t.ptr.val())?;
                        set_sectors_written(&mut v, sectors).ok_or(EINVAL)?;
                        new_ptrs.push(PtrKey::new(t.ptr.k, &v).ok_or(EINVAL)?, GFP_KERNEL)?;
                        let typ = if t.level > 0 {
                            WriteType::Interior
                        } else {
                            WriteType::InitNextBset
                        };
                        images.push((Some(i), imgs, typ), GFP_KERNEL)?;
                    }
                    Err(w) => why = Some(w),
                }
            }
            if let Some(why) = why {
                if live {
                    // Nodes are not moved under readers (a gc pass's writes
                    // while mounted): the next repair at mount moves it.
                    pr_err!(
                        "{}: btree {} level {} node at {}:{}: {}; not moved while mounted: nothing written\n",
                        fs.uuid(),
                        t.btree,
                        level,
                        t.ptr.k.p.inode,
                        t.ptr.k.p.offset,
                        why
                    );
                    return Err(eopnotsupp());
                }
                let holder = level.checked_add(1).ok_or(EINVAL)?;
                let nodes = rewrite_node(r, t, &keys, why)?;
                changes.push(
                    PtrChange {
                        btree: t.btree,
                        holder,
                        ptr: t.ptr,
                        insert: false,
                    },
                    GFP_KERNEL,
                )?;
                rewritten.push((t.btree, level, t.ptr.k.p, why, nodes.len()), GFP_KERNEL)?;
                for (ptr, imgs) in nodes {
                    changes.push(
                        PtrChange {
                            btree: t.btree,
                            holder,
                            ptr,
                            insert: true,
                        },
                        GFP_KERNEL,
                    )?;
                    images.push((None, imgs, WriteType::Initial), GFP_KERNEL)?;
                    new_ptrs.push(ptr, GFP_KERNEL)?;
                }
            }
            let (btree, parent) = (t.btree, t.parent);
            match (parent, new_ptrs.len()) {
                (Some(pi), _) => {
                    for ptr in new_ptrs.iter() {
                        touched[pi]
                            .keys
                            .push((ptr.k, bytes(ptr.val())?), GFP_KERNEL)?;
                    }
                }
                (None, 1) => {
                    roots[btree as usize] = Some(Root {
                        level,
                        ptr: new_ptrs[0],
                    })
                }
                (None, _) => {
                    // The root split: a new root over its halves.
                    let mut halves: KVec<(Bkey, KVec<u8>)> = KVec::new();
                    for ptr in new_ptrs.iter() {
                        halves.push((ptr.k, bytes(ptr.val())?), GFP_KERNEL)?;
                    }
                    let up = level.checked_add(1).ok_or(EINVAL)?;
                    let (rl, root, below) =
                        new_root(r, btree, up, &new_ptrs).map_err(|e| match e {
                            ComposeError::Err(e) => e,
                            _ => {
                                pr_err!(
                                    "{}: repair: btree {}: no new root could be made over its split root; nothing written\n",
                                    fs.uuid(),
                                    btree
                                );
                                eopnotsupp()
                            }
                        })?;
                    // For the journal: the keys of each new interior node.
                    extra.push((btree, up, halves), GFP_KERNEL)?;
                    for (l, (ptr, imgs)) in below {
                        let mut k = KVec::new();
                        k.push((ptr.k, bytes(ptr.val())?), GFP_KERNEL)?;
                        extra.push((btree, l + 1, k), GFP_KERNEL)?;
                        changes.push(
                            PtrChange {
                                btree,
                                holder: l + 1,
                                ptr,
                                insert: true,
                            },
                            GFP_KERNEL,
                        )?;
                        images.push((None, imgs, WriteType::Initial), GFP_KERNEL)?;
                    }
                    let (ptr, imgs) = root;
                    changes.push(
                        PtrChange {
                            btree,
                            holder: rl + 1,
                            ptr,
                            insert: true,
                        },
                        GFP_KERNEL,
                    )?;
                    images.push((None, imgs, WriteType::Initial), GFP_KERNEL)?;
                    roots[btree as usize] = Some(Root { level: rl, ptr });
                    pr_info!(
                        "{}: repair: btree {}: its root split: a new root at level {}\n",
                        fs.uuid(),
                        btree,
                        rl
                    );
                }
            }
            // Put back for the journal entry: the keys this node got.
            touched[i].keys = keys;
        }
    }
    Ok(Planned {
        touched,
        images,
        roots,
        changes,
        rewritten,
        extra,
    })
}

/// A new node: its pointer and its images (one per replica).
type NewNode = (PtrKey, KVec<Image>);

/// Keys and their values.
type Keys = KVec<(Bkey, KVec<u8>)>;

/// A new root: its level and node, and the other new interior nodes under it
/// with their level.
type NewRoot = (u8, NewNode, KVec<(u8, NewNode)>);

/// Node `t` with `pending` keys applied, written whole to new space (`why`: the
/// reason, logged): new nodes over the old one's range, from the keys its read
/// kept (a copy that failed its checksum salvaged, invalid keys dropped, as the
/// offline tool rewrites it), their headers' rewrite count one more, new random
/// seqs: one node, or as many as upstream's split rule cuts the keys into (the
/// core's `split_groups`). A node that cannot be read is refused (EOPNOTSUPP,
/// logged).
fn rewrite_node(
    r: &mut Round<'_>,
    t: &Touched,
    pending: &[(Bkey, KVec<u8>)],
    why: &str,
) -> Result<KVec<NewNode>> {
    let fs = r.fs;
    let refuse = |what: &str| {
        pr_err!(
            "{}: repair: btree {} level {} node at {}:{}: {}; {}: nothing written (repair offline: bcachefs-rs fsck -y)\n",
            fs.uuid(),
            t.btree,
            t.level,
            t.ptr.k.p.inode,
            t.ptr.k.p.offset,
            why,
            what
        );
        eopnotsupp()
    };
    let bp = BtreePtr::decode(t.ptr.k.typ, t.ptr.val()).ok_or(EINVAL)?;
    let (min, max) = (bp.min_key.unwrap_or(Bpos::MIN), t.ptr.k.p);
    let node = get_node(fs, t.btree, t.level, &t.ptr).map_err(|e| {
        if e == EIO {
            refuse("it cannot be read to be rewritten")
        } else {
            e
        }
    })?;
    let d = node.data().ok_or(EIO)?;
    if d.failed {
        return Err(refuse("it cannot be read to be rewritten"));
    }
    let h = NodeHeader::parse(&d.buf).ok_or_else(|| refuse("its header cannot be read"))?;
    // The node's keys, then each pending key over the one at its position.
    let mut keys: KVec<(Bkey, &[u8])> = KVec::new();
    for k in d.keys.iter() {
        keys.push((k.k, d.val(k)), GFP_KERNEL)?;
    }
    for (k, v) in pending {
        match keys.binary_search_by(|(x, _)| x.p.cmp(&k.p)) {
            Ok(i) => keys[i] = (*k, &v[..]),
            Err(i) => {
                keys.reserve(1, GFP_KERNEL)?;
                keys.insert_within_capacity(i, (*k, &v[..]))
                    .map_err(|_| ENOMEM)?;
            }
        }
    }
    keys.retain(|(k, _)| k.typ != KeyType::Deleted as u8 && k.p >= min && k.p <= max);
    let rewrites = ((h.flags >> 32) as u32).wrapping_add(1);
    let spec = Compose {
        btree: t.btree,
        level: t.level,
        min,
        max,
        old_format: h.format,
        rewrites,
    };
    compose_split(r, &spec, &keys).map_err(|e| match e {
        ComposeError::NoSpace => refuse("no free bucket for a new node"),
        ComposeError::NoFit => refuse("its keys do not fit new nodes"),
        ComposeError::Err(e) => e,
    })
}

/// What new nodes are made of: the btree and level, the range they fill, the
/// format the keys come in (their sizes are measured in it, as upstream measures
/// them, and it is the fallback format), the header's rewrite count.
struct Compose {
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    old_format: BkeyFormat,
    rewrites: u32,
}

/// Why new nodes could not be composed.
enum ComposeError {
    NoSpace,
    NoFit,
    Err(Error),
}

impl From<Error> for ComposeError {
    fn from(e: Error) -> ComposeError {
        ComposeError::Err(e)
    }
}

impl From<kernel::alloc::AllocError> for ComposeError {
    fn from(e: kernel::alloc::AllocError) -> ComposeError {
        ComposeError::Err(e.into())
    }
}

/// `keys` (sorted, over `c.min..=c.max`) in as many new nodes as upstream's split
/// rule makes of them, each in the format of its range and keys (or the old one
/// where that does not fit), in space from the round's allocator, made on first
/// need.
fn compose_split(
    r: &mut Round<'_>,
    c: &Compose,
    keys: &[(Bkey, &[u8])],
) -> core::result::Result<KVec<NewNode>, ComposeError> {
    let ns = r.fs.sb().btree_node_sectors();
    let mut sizes = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
    for (k, v) in keys.iter() {
        sizes.push(key_u64s(k, v.len(), &c.old_format), GFP_KERNEL)?;
    }
    let mut groups = KVec::from_elem(SplitGroup::default(), keys.len() + 1, GFP_KERNEL)?;
    let mut stack = KVec::from_elem(SplitGroup::default(), keys.len() + 1, GFP_KERNEL)?;
    let pos = |i: usize| keys.get(i).map_or(Bpos::MIN, |(k, _)| k.p);
    let n = split_groups(&sizes, &pos, c.min, c.max, ns, &mut groups, &mut stack)
        .ok_or(ComposeError::NoFit)?;
    let mut out = KVec::new();
    for g in groups.iter().take(n) {
        let ks = keys.get(g.first..g.end).ok_or(EINVAL)?;
        let f = new_node_format(
            g.lo,
            g.hi,
            ks.iter().map(|(k, v)| (k, v.len())),
            &c.old_format,
            ns,
        );
        out.push(compose_node(r, c, g.lo, g.hi, f, ks)?, GFP_KERNEL)?;
    }
    Ok(out)
}

/// One new node over `min..=max` of `c`'s btree and level holding `keys`, in
/// format `f`: space allocated on every replica, the node composed, its pointer
/// made.
fn compose_node(
    r: &mut Round<'_>,
    c: &Compose,
    min: Bpos,
    max: Bpos,
    f: BkeyFormat,
    keys: &[(Bkey, &[u8])],
) -> core::result::Result<NewNode, ComposeError> {
    let (fs, seq) = (r.fs, r.seq);
    let s = fs.sb();
    let ns = s.btree_node_sectors();
    if r.alloc.is_none() {
        r.alloc = Some(Allocator::new(fs, r.caller)?);
    }
    let a = r.alloc.as_mut().ok_or(EINVAL)?;
    let ptrs = a.node(fs).map_err(|e| {
        if e == ENOSPC {
            ComposeError::NoSpace
        } else {
            ComposeError::Err(e)
        }
    })?;
    let n = NodeSpec {
        btree: c.btree,
        level: c.level,
        min,
        max,
        format: f,
        seq: r.seqs.get()?,
        rewrites: c.rewrites,
    };
    let wctx = WriteCtx::new_node(&s, &KernelHashes);
    let mut buf = KVVec::from_elem(0u8, (ns as usize) << 9, GFP_KERNEL)?;
    let mut v = KVec::from_elem(0u8, 40 + ptrs.len() * 8, GFP_KERNEL)?;
    let mut it = keys.iter().map(|(k, v)| (*k, *v));
    let (sectors, vlen) = compose_new_node(&mut buf, &wctx, &n, seq, &mut it, &ptrs, &mut v)
        .map_err(|_| ComposeError::NoFit)?;
    v.truncate(vlen);
    let len = (sectors as usize) << 9;
    let k = Bkey {
        typ: KeyType::BtreePtrV2 as u8,
        p: max,
        ..Default::default()
    };
    let ptr = PtrKey::new(k, &v).ok_or(EINVAL)?;
    let mut imgs = KVec::new();
    for p in ptrs.iter() {
        let mut data = KVVec::new();
        data.extend_from_slice(buf.get(..len).ok_or(EINVAL)?, GFP_KERNEL)?;
        imgs.push(
            Image {
                dev: u32::from(p.dev),
                sector: p.offset,
                data,
            },
            GFP_KERNEL,
        )?;
    }
    Ok((ptr, imgs))
}

/// A new root of `btree` over `children` (the pointers of the old root's
/// halves, at `level`): one node over `POS_MIN..SPOS_MAX` in the bounds' format,
/// header seq 0, or, when they do not fit one, nodes split as any node is and
/// another root above them (upstream's `btree_split` of a root, the offline
/// tool's `new_root`). Returns the root's level and node, and the other new
/// interior nodes with their level.
fn new_root(
    r: &mut Round<'_>,
    btree: u32,
    level: u8,
    children: &[PtrKey],
) -> core::result::Result<NewRoot, ComposeError> {
    let mut ptrs: KVec<PtrKey> = KVec::new();
    ptrs.extend_from_slice(children, GFP_KERNEL)?;
    ptrs.sort_unstable_by_key(|p| p.k.p);
    let mut level = level;
    let mut below = KVec::new();
    loop {
        if level > 8 {
            return Err(ComposeError::NoFit);
        }
        let c = Compose {
            btree,
            level,
            min: Bpos::MIN,
            max: Bpos::MAX,
            old_format: root_format(),
            rewrites: 0,
        };
        let mut keys: KVec<(Bkey, &[u8])> = KVec::new();
        for p in ptrs.iter() {
            keys.push((p.k, p.val()), GFP_KERNEL)?;
        }
        let mut nodes = compose_split(r, &c, &keys)?;
        drop(keys);
        if nodes.len() == 1 {
            let n = nodes.pop().ok_or(EINVAL)?;
            return Ok((level, n, below));
        }
        ptrs.clear();
        for (p, _) in nodes.iter() {
            ptrs.push(*p, GFP_KERNEL)?;
        }
        for n in nodes {
            below.push((level, n), GFP_KERNEL)?;
        }
        level += 1;
    }
}

/// The journal's copy of leaf key `k` of node `t`, where it differs from the node's.
fn journal_form<'a>(updates: &'a [Update], t: &Touched, k: &Bkey) -> Option<&'a [u8]> {
    updates
        .iter()
        .find(|u| u.btree == t.btree && u.level == t.level && u.k.p == k.p)
        .and_then(|u| u.journal_v.as_deref())
}

fn first_offset(p: &PtrKey) -> Option<(u8, u64)> {
    BtreePtr::decode(p.k.typ, p.val())
        .and_then(|bp| bp.ptrs().next())
        .map(|e| (e.dev, e.offset))
}

fn same_node(a: &PtrKey, b: &PtrKey) -> bool {
    a.k.p == b.k.p && first_offset(a) == first_offset(b)
}

/// The node pointers from the root of `btree` down to the node at `level` whose
/// range holds `pos`.
pub(crate) fn path_to(
    fs: &Arc<Fs>,
    btree: u32,
    pos: Bpos,
    level: u8,
) -> Result<KVec<(u8, PtrKey)>> {
    let root = fs.root(btree).ok_or(EINVAL)?;
    if root.level < level || first_offset(&root.ptr).is_none() {
        pr_err!(
            "{}: repair: btree {} has no node at level {} (an empty btree gets its first node offline: bcachefs-rs fsck -y)\n",
            fs.uuid(),
            btree,
            level
        );
        return Err(eopnotsupp());
    }
    let mut path = KVec::new();
    path.push((root.level, root.ptr), GFP_KERNEL)?;
    let mut cur = root.ptr;
    let mut l = root.level;
    while l > level {
        let n = get_node(fs, btree, l, &cur)?;
        let d = n.data().ok_or(EIO)?;
        if d.failed {
            return Err(EIO);
        }
        let mut child = None;
        for_each_key(fs, btree, l, d, AcctView::Replayed, &mut |k, v| {
            if k.p >= pos {
                child = PtrKey::new(*k, v);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        cur = child.ok_or(EIO)?;
        l -= 1;
        path.push((l, cur), GFP_KERNEL)?;
    }
    Ok(path)
}

/// `keys` appended to node `t` as a new bset on every replica (images returned,
/// nothing written), and the node's new `sectors_written`; or why the node must
/// be rewritten to new space instead (no room, a replica unreadable or damaged).
fn append(
    fs: &Fs,
    t: &Touched,
    keys: &[(Bkey, KVec<u8>)],
    seq: u64,
) -> Result<core::result::Result<(KVec<Image>, u16), &'static str>> {
    let s = fs.sb();
    let bp = BtreePtr::decode(t.ptr.k.typ, t.ptr.val()).ok_or(EINVAL)?;
    if bp.written == 0 {
        return Ok(Err("its pointer has no sectors_written"));
    }
    if u32::from(bp.written) > s.btree_node_sectors() {
        return Ok(Err("its pointer says more sectors written than a node has"));
    }
    let node_sectors = s.btree_node_sectors();
    let bytes: usize = keys
        .iter()
        .map(|(_, v)| BKEY_BYTES + v.len().div_ceil(8) * 8)
        .sum();
    let mut store = KVVec::from_elem(0u8, bytes, GFP_KERNEL)?;
    let mut unwritten = Unwritten::new(&mut store);
    for (k, v) in keys {
        unwritten.insert(k, v).map_err(|_| EINVAL)?;
    }
    let mut out = KVec::new();
    let mut end = None;
    let mut bsets = KVec::from_elem(BsetRef::default(), s.max_bsets(), GFP_KERNEL)?;
    for p in bp.ptrs() {
        let dev = fs.dev(u32::from(p.dev)).ok_or(ENXIO)?;
        let mut buf = KVVec::from_elem(0u8, (node_sectors as usize) << 9, GFP_KERNEL)?;
        if dev
            .read(p.offset, &mut buf[..(usize::from(bp.written)) << 9])
            .is_err()
        {
            return Ok(Err("a replica is unreadable"));
        }
        let ctx = NodeCtx {
            magic: s.bset_magic(),
            block_sectors: s.block_sectors(),
            node_sectors,
            written: u32::from(bp.written),
            btree_id: Some(t.btree),
            level: Some(t.level),
            min_key: bp.min_key,
            max_key: Some(t.ptr.k.p),
            seq: Some(bp.seq),
            range_updated: bp.range_updated,
            csum: &KernelHashes,
            blacklisted: &|seq| fs.is_blacklisted(seq),
            accept_bad_csum: false,
        };
        let mut it = unwritten.iter();
        let r = match append_bset(&mut buf, &ctx, s.version(), seq, &mut it, &mut bsets) {
            Ok(r) => r,
            Err(AppendError::Damaged) => return Ok(Err("a replica is damaged")),
            Err(AppendError::WrittenElsewhere) => {
                return Ok(Err("its bsets end elsewhere than its pointer says"))
            }
            Err(
                AppendError::NoRoom
                | AppendError::Write(WriteError::NoRoom | WriteError::BadOffset),
            ) => return Ok(Err("no room left in the node")),
            Err(AppendError::Write(_)) => return Err(EINVAL),
        };
        let range = (r.offset as usize) << 9..((r.offset + r.sectors) as usize) << 9;
        let mut data = KVVec::new();
        data.extend_from_slice(&buf[range.clone()], GFP_KERNEL)?;
        out.push(
            Image {
                dev: u32::from(p.dev),
                sector: p.offset + u64::from(r.offset),
                data,
            },
            GFP_KERNEL,
        )?;
        end = Some(r.offset + r.sectors);
    }
    let w = u16::try_from(end.ok_or(EINVAL)?).map_err(|_| EINVAL)?;
    Ok(Ok((out, w)))
}

/// The journal ring and where its next entry goes.
struct Journal {
    dev: usize,
    buckets: KVec<u64>,
    bucket_sectors: u32,
    newest: Slot,
    newest_sectors: u32,
    seq: u64,
    /// Ring index of each bucket holding an entry that must stay readable: on a
    /// dirty filesystem the ones its replay needs, and this commit's own.
    in_use: KVec<u64>,
}

impl Journal {
    fn new(fs: &Fs, ws: &WriteState) -> Result<Journal> {
        let newest = ws.journal_newest.ok_or(EINVAL)?;
        let ds = ws
            .dev_sbs
            .get(newest.dev)
            .and_then(|d| d.as_ref())
            .ok_or(ENXIO)?;
        let s = Sb { b: ds };
        let mut buckets = KVec::new();
        for (start, nr) in s.journal_buckets() {
            for b in start..start.saturating_add(nr) {
                buckets.push(b, GFP_KERNEL)?;
            }
        }
        let m = s.member(newest.dev).ok_or(EINVAL)?;
        let mut in_use = KVec::new();
        if !ws.clean {
            for &(seq, dev, idx) in fs.journal_found.iter() {
                if dev == newest.dev && (fs.journal_start..=fs.journal_seq).contains(&seq) {
                    in_use.push(idx, GFP_KERNEL)?;
                }
            }
        }
        Ok(Journal {
            dev: newest.dev,
            buckets,
            bucket_sectors: u32::from(m.bucket_size()),
            newest: Slot {
                bucket_idx: newest.bucket_idx,
                offset: newest.offset,
            },
            newest_sectors: newest.sectors,
            seq: journal_base_seq(ws).ok_or(EINVAL)?,
            in_use,
        })
    }

    /// Where the journal now ends, for the next commit: the entry `end` (seq, slot,
    /// length) written last.
    fn record(&self, ws: &mut WriteState, end: (u64, Slot, u32)) {
        ws.journal_newest = Some(JournalPos {
            dev: self.dev,
            bucket_idx: end.1.bucket_idx,
            offset: end.1.offset,
            sectors: end.2,
            seq: end.0,
        });
        ws.journal_seq = end.0;
    }

    /// Writes a flush entry made by `fill` (PREFLUSH | FUA); returns its seq, slot
    /// and length.
    fn write(
        &mut self,
        fs: &Fs,
        last_seq: Option<u64>,
        wf: &mut WriteFailed<'_>,
        fill: &mut dyn FnMut(&mut JsetBuilder<'_>) -> Result,
    ) -> Result<(u64, Slot, u32)> {
        let s = fs.sb();
        let seq = self.seq.checked_add(1).ok_or(EINVAL)?;
        let mut buf = KVVec::from_elem(0u8, (self.bucket_sectors as usize) << 9, GFP_KERNEL)?;
        let mut b = JsetBuilder::new(&mut buf);
        fill(&mut b)?;
        let h = JsetHeader {
            magic: s.jset_magic(),
            seq,
            last_seq: last_seq.unwrap_or(seq),
            version: u32::from(s.version()),
            flags: jset_flags(s.meta_csum_type()),
        };
        let out = b.seal(&h, s.block_sectors(), &KernelHashes).map_err(|_| {
            pr_err!(
                "{}: journal entry {} does not fit a journal bucket\n",
                fs.uuid(),
                seq
            );
            ENOSPC
        })?;
        let sectors = (out.len() >> 9) as u32;
        let slot = next_slot(
            self.newest,
            self.newest_sectors,
            sectors,
            self.bucket_sectors,
            self.buckets.len() as u64,
        )
        .ok_or(ENOSPC)?;
        if slot.bucket_idx != self.newest.bucket_idx && self.in_use.contains(&slot.bucket_idx) {
            pr_err!("{}: the journal is full\n", fs.uuid());
            return Err(ENOSPC);
        }
        let bucket = *self.buckets.get(slot.bucket_idx as usize).ok_or(EINVAL)?;
        let sector = bucket
            .checked_mul(u64::from(self.bucket_sectors))
            .and_then(|s| s.checked_add(u64::from(slot.offset)))
            .ok_or(EINVAL)?;
        // Room to remember the bucket, before anything is written.
        self.in_use.reserve(1, GFP_KERNEL)?;
        let dev = fs.dev(self.dev as u32).ok_or(ENXIO)?;
        wf.on(dev.write(sector, out, WriteFlags::FLUSH_FUA))
            .inspect_err(|e| {
                pr_err!(
                    "{}: journal write error on {} at sector {}: error {}\n",
                    fs.uuid(),
                    dev.name(),
                    sector,
                    e.to_errno()
                )
            })?;
        self.newest = slot;
        self.newest_sectors = sectors;
        self.seq = seq;
        // Reserved above: cannot fail.
        let _ = self.in_use.push(slot.bucket_idx, GFP_KERNEL);
        Ok((seq, slot, sectors))
    }
}

fn add_roots(b: &mut JsetBuilder<'_>, roots: &[Option<Root>]) -> Result {
    for (id, r) in roots.iter().enumerate() {
        if let Some(r) = r {
            if first_offset(&r.ptr).is_some() {
                b.btree_root(id as u32, r.level, &r.ptr.k, r.ptr.val())
                    .map_err(|_| ENOSPC)?;
            }
        }
    }
    Ok(())
}

/// What a clean superblock records: the roots and the last journal entry (at
/// `slot` of the ring on `jdev`, `sectors` long).
struct CleanState<'a> {
    roots: &'a [Option<Root>],
    seq: u64,
    jdev: usize,
    slot: Slot,
    sectors: u32,
}

fn real_seconds() -> u64 {
    // SAFETY: reads the wall clock.
    unsafe { crate::shim::bch_rs_real_seconds() }
}

/// The superblock on every device with `changes`, the `blacklist` range added and
/// (given `clean`) marked clean with its roots; seq and members' seq advanced; copy
/// by copy, each with FUA. Returns the copies written.
fn write_sb(
    fs: &Fs,
    ws: &mut WriteState,
    clean: Option<&CleanState<'_>>,
    changes: &SbChanges,
    blacklist: Option<(u64, u64)>,
    budget: &mut Budget,
) -> Result<u32> {
    let (new_seq, blk, nr_copies, old) = {
        let sb = ws.sb().ok_or(EINVAL)?;
        let mut old = KVVec::new();
        old.extend_from_slice(sb.clean_field().map(|(_, e)| e).unwrap_or(&[]), GFP_KERNEL)?;
        (
            sb.seq().checked_add(1).ok_or(EINVAL)?,
            (sb.block_sectors().max(1) as usize) << 9,
            sb.layout().nr_superblocks() as usize,
            old,
        )
    };
    // Clean section: the old section's usage and clocks, then every root.
    let mut entries = KVVec::from_elem(0u8, 16 << 10, GFP_KERNEL)?;
    let mut b = JsetBuilder::new(&mut entries);
    for e in JsetEntries::new(&old) {
        if e.typ != entry::BTREE_ROOT && !(e.typ == entry::BTREE_KEYS && e.data.is_empty()) {
            b.raw(e.typ, e.btree_id, e.level, e.data)
                .map_err(|_| ENOSPC)?;
        }
    }
    if let Some(c) = clean {
        add_roots(&mut b, c.roots)?;
    }
    let n = b.len() - JSET_BYTES;
    let body = entries.get(JSET_BYTES..JSET_BYTES + n).ok_or(EINVAL)?;
    let now = real_seconds();
    let mut sbs: KVec<(usize, KVVec<u8>)> = KVec::new();
    for (idx, ds) in ws.dev_sbs.iter().enumerate() {
        let (Some(ds), Some(_)) = (ds, fs.dev(idx as u32)) else {
            continue;
        };
        let mut buf = KVVec::new();
        buf.extend_from_slice(ds, GFP_KERNEL)?;
        // Room for a clean section to grow into.
        buf.resize(buf.len() + body.len() + 1024, 0, GFP_KERNEL)?;
        let mut e = SbEdit::new(&mut buf, &KernelHashes).map_err(|_| EINVAL)?;
        e.set_seq(new_seq);
        e.set_write_time(now);
        changes.apply(&mut e)?;
        if let Some((start, end)) = blacklist {
            e.add_blacklist(start, end).map_err(|_| ENOSPC)?;
        }
        if let Some(c) = clean {
            e.set_clean(true);
            e.set_clean_section(c.seq, body).map_err(|_| ENOSPC)?;
            let ring = (u64::from(c.slot.offset + c.sectors) << 32) | c.slot.bucket_idx;
            let _ = e.set_member_u64(c.jdev, member::LAST_JOURNAL_BUCKET, ring);
        }
        for m in 0..fs.devs.len() {
            if fs.dev(m as u32).is_some() {
                let _ = e.set_member_u64(m, member::SEQ, new_seq);
            }
        }
        let off0 = e.sb().layout().sb_offset(0).unwrap_or(sbf::SB_SECTOR);
        e.seal(off0, &KernelHashes).map_err(|_| EINVAL)?;
        sbs.push((idx, buf), GFP_KERNEL)?;
    }
    let mut copies = 0u32;
    for i in 0..nr_copies {
        for (idx, buf) in sbs.iter_mut() {
            let ds = ws.dev_sbs[*idx].as_ref().ok_or(ENXIO)?;
            let off = Sb { b: ds }.layout().sb_offset(i).unwrap_or(sbf::SB_SECTOR);
            let mut e = SbEdit::new(buf, &KernelHashes).map_err(|_| EINVAL)?;
            let bytes = e.seal(off, &KernelHashes).map_err(|_| EINVAL)?;
            let mut padded = KVVec::new();
            padded.extend_from_slice(bytes, GFP_KERNEL)?;
            padded.resize(padded.len().div_ceil(blk) * blk, 0, GFP_KERNEL)?;
            let dev = fs.dev(*idx as u32).ok_or(ENXIO)?;
            budget.take(fs)?;
            dev.write(off, &padded, WriteFlags::FUA).inspect_err(|e| {
                pr_err!(
                    "{}: superblock write error on {} at sector {}: error {}\n",
                    fs.uuid(),
                    dev.name(),
                    off,
                    e.to_errno()
                )
            })?;
            copies += 1;
        }
    }
    // What the next commit starts from: each device's superblock as written (as
    // its first copy).
    for (idx, mut buf) in sbs {
        let off0 = ws.dev_sbs[idx]
            .as_ref()
            .and_then(|b| Sb { b }.layout().sb_offset(0))
            .unwrap_or(sbf::SB_SECTOR);
        let mut e = SbEdit::new(&mut buf, &KernelHashes).map_err(|_| EINVAL)?;
        let bytes = e.seal(off0, &KernelHashes).map_err(|_| EINVAL)?;
        let mut kept = KVVec::new();
        kept.extend_from_slice(bytes, GFP_KERNEL)?;
        ws.dev_sbs[idx] = Some(kept);
    }
    Ok(copies)
}
