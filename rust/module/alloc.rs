// SPDX-License-Identifier: GPL-2.0

//! The allocator's side of a commit in the kernel: buckets cut out of the
//! freespace btree's extents, as the transaction layer's extent overwrite does
//! when the alloc trigger deletes one bucket's freespace key from a longer extent
//! (upstream's `bch2_btree_bit_mod_iter`; the offline tool's `Freespace::take`),
//! and space for new btree nodes ([`Allocator`], the offline tool's rules: a free
//! bucket from the freespace btree, marked in the member's btree bitmap first,
//! node-sized pieces of it, one per replica). The arithmetic and the bucket rules
//! are the core's ([`freespace_punch`], [`bucket_usable`]).

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::btree::iter::range;
use crate::commit::Update;
use crate::format::alloc::foreground::{freespace_punch, NodeSpace};
use crate::format::alloc::format::AllocV4;
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::ExtentPtr;
use crate::format::ids::{btree, KeyType};
use crate::fs::Fs;
use crate::repair::leaf_key;

/// Freespace extents a commit cuts: the pieces left so far, and the keys that
/// change.
#[derive(Default)]
pub(crate) struct Freespace {
    /// Extents `[start, end)` over `genbits | bucket`, as cut so far: (dev, start,
    /// end).
    pieces: KVec<(u32, u64, u64)>,
    /// The keys read from the btree (dev, end): a position no piece holds any
    /// more was taken already.
    read: KVec<(u32, u64)>,
    /// Keys the cuts write: (dev, end, size), size 0 when the key goes.
    changed: KVec<(u32, u64, u64)>,
    /// Positions taken out of an extent.
    cut: u32,
}

impl Freespace {
    /// Reads every extent of device `dev` (journal overlaid), with the caller's
    /// freespace `updates` on top, so that [`Freespace::take`] never reads the
    /// btree for it again.
    fn load(&mut self, fs: &Arc<Fs>, dev: u32, updates: &[Update]) -> Result {
        let d = u64::from(dev);
        let mut err = Ok(());
        let mut found: KVec<(u64, u64)> = KVec::new();
        range(
            fs,
            btree::FREESPACE,
            Bpos::new(d, 0, 0),
            Bpos::new(d, u64::MAX, u32::MAX),
            &mut |k, _| {
                if k.typ == KeyType::Set as u8 && k.size > 0 {
                    let start = k.p.offset.saturating_sub(u64::from(k.size));
                    if let Err(e) = found.push((start, k.p.offset), GFP_KERNEL) {
                        err = Err(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
        )?;
        err?;
        for u in updates
            .iter()
            .filter(|u| u.btree == btree::FREESPACE && u.level == 0 && u.k.p.inode == d)
        {
            found.retain(|&mut (_, e)| e != u.k.p.offset);
            if u.k.typ == KeyType::Set as u8 && u.k.size > 0 {
                let start = u.k.p.offset.saturating_sub(u64::from(u.k.size));
                found.push((start, u.k.p.offset), GFP_KERNEL)?;
            }
        }
        found.sort_unstable();
        for &(start, end) in found.iter() {
            self.read.push((dev, end), GFP_KERNEL)?;
            self.pieces.push((dev, start, end), GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Device `dev`'s extents as cut so far, lowest first.
    fn extents_of(&self, dev: u32) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        for &(d, s, e) in self.pieces.iter() {
            if d == dev {
                out.push((s, e), GFP_KERNEL)?;
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Takes position `pos` (`genbits | bucket`) of device `dev` out of the extent
    /// holding it, if any (a position no extent holds needs nothing). A freespace
    /// leaf that cannot be read fails with EIO.
    pub(crate) fn take(&mut self, fs: &Arc<Fs>, dev: u32, pos: u64) -> Result {
        let at = match self
            .pieces
            .iter()
            .position(|&(d, s, e)| d == dev && s <= pos && pos < e)
        {
            Some(i) => i,
            None => {
                let Some((start, end)) = holding(fs, dev, pos)? else {
                    return Ok(());
                };
                if self.read.iter().any(|&(d, e)| d == dev && e == end) {
                    // Its pieces are known, and none holds `pos`: taken already.
                    return Ok(());
                }
                self.read.push((dev, end), GFP_KERNEL)?;
                self.pieces.push((dev, start, end), GFP_KERNEL)?;
                self.pieces.len() - 1
            }
        };
        let (_, start, end) = self.pieces.remove(at)?;
        self.cut += 1;
        let (front, back) = freespace_punch(start, end, pos);
        match back {
            Some((e, size)) => {
                self.pieces.push((dev, e - size, e), GFP_KERNEL)?;
                self.change(dev, e, size)?;
            }
            None => self.change(dev, end, 0)?,
        }
        if let Some((e, size)) = front {
            self.pieces.push((dev, e - size, e), GFP_KERNEL)?;
            self.change(dev, e, size)?;
        }
        Ok(())
    }

    fn change(&mut self, dev: u32, end: u64, size: u64) -> Result {
        match self
            .changed
            .iter_mut()
            .find(|(d, e, _)| *d == dev && *e == end)
        {
            Some(c) => c.2 = size,
            None => self.changed.push((dev, end, size), GFP_KERNEL)?,
        }
        Ok(())
    }

    /// The keys that say what was taken, pushed to `out`: each changed extent's key
    /// with its new size, or deleted.
    pub(crate) fn updates(&self, out: &mut KVec<Update>) -> Result {
        for &(dev, end, size) in self.changed.iter() {
            let (typ, size) = match u32::try_from(size) {
                Ok(s) if s > 0 => (KeyType::Set, s),
                _ => (KeyType::Deleted, 0),
            };
            let k = Bkey {
                typ: typ as u8,
                p: Bpos::new(u64::from(dev), end, 0),
                size,
                ..Default::default()
            };
            out.push(Update::leaf(btree::FREESPACE, k, KVec::new()), GFP_KERNEL)?;
        }
        Ok(())
    }
}

/// The freespace keys that take every position of `holes` (dev, `genbits |
/// bucket`) out of the extents holding them, pushed to `out` (the offline tool's
/// `punch_freespace`); returns how many were cut. Call it with no btree walk in
/// progress.
pub(crate) fn punch_freespace(
    fs: &Arc<Fs>,
    holes: &[(u32, u64)],
    out: &mut KVec<Update>,
) -> Result<u32> {
    let mut cuts = Freespace::default();
    for &(dev, pos) in holes {
        cuts.take(fs, dev, pos)?;
    }
    cuts.updates(out)?;
    Ok(cuts.cut)
}

/// The freespace extent `[start, end)` of device `dev` that holds `pos`, as the
/// btree has it (journal overlaid): the first extent key past `pos`, if it starts
/// at or before `pos`.
fn holding(fs: &Arc<Fs>, dev: u32, pos: u64) -> Result<Option<(u64, u64)>> {
    let Some(from) = pos.checked_add(1) else {
        return Ok(None);
    };
    let dev = u64::from(dev);
    let mut found = None;
    range(
        fs,
        btree::FREESPACE,
        Bpos::new(dev, from, 0),
        Bpos::new(dev, u64::MAX, u32::MAX),
        &mut |k, _| {
            // The first extent past `pos` (whiteouts skipped) is the only one that
            // can hold it.
            if k.typ != KeyType::Set as u8 || k.size == 0 {
                return ControlFlow::Continue(());
            }
            let start = k.p.offset.saturating_sub(u64::from(k.size));
            if start <= pos {
                found = Some((start, k.p.offset));
            }
            ControlFlow::Break(())
        },
    )?;
    Ok(found)
}

/// Space for new btree nodes (the offline tool's `Allocator`): buckets from the
/// freespace btree, node-sized pieces of each, one piece per replica. Planning a
/// commit runs more than once (the pointer triggers' keys may land in nodes too):
/// each round has an allocator of its own, handing out space in the order the
/// round takes nodes, as the offline tool's rounds do.
pub(crate) struct Allocator {
    devs: KVec<NodeSpace>,
    replicas: usize,
    node_sectors: u32,
    /// Buckets whose alloc keys the caller's updates change: never handed out.
    busy: KVec<(u32, u64)>,
    flushed_seq: u64,
    /// The freespace btree with the caller's updates, less what was handed out.
    pub(crate) free: Freespace,
}

impl Allocator {
    /// The allocator of a commit of `updates` (the caller's: their alloc keys
    /// are busy, their freespace keys are the freespace btree's).
    pub(crate) fn new(fs: &Arc<Fs>, updates: &[Update]) -> Result<Allocator> {
        let s = fs.sb();
        let mut devs = KVec::new();
        let mut free = Freespace::default();
        for (i, d) in fs.devs.iter().enumerate() {
            if d.is_none() {
                continue;
            }
            let m = s.member(i).ok_or(EINVAL)?;
            let dev = u32::try_from(i).map_err(|_| EINVAL)?;
            devs.push(NodeSpace::of_member(dev, &m), GFP_KERNEL)?;
            free.load(fs, dev, updates)?;
        }
        let mut busy = KVec::new();
        for u in updates.iter().filter(|u| u.btree == btree::ALLOC) {
            busy.push((u.k.p.inode as u32, u.k.p.offset), GFP_KERNEL)?;
        }
        Ok(Allocator {
            devs,
            // Metadata replicas wanted (BCH_SB_META_REPLICAS_WANT).
            replicas: (((s.flags(0) >> 48) & 0xf) as usize).max(1),
            node_sectors: s.btree_node_sectors(),
            busy,
            flushed_seq: fs.journal_seq,
            free,
        })
    }

    /// Space for one node: a pointer on each of `replicas` devices (fewer when
    /// fewer devices have space, as upstream accepts). ENOSPC when no device has
    /// a free bucket.
    pub(crate) fn node(&mut self, fs: &Arc<Fs>) -> Result<KVec<ExtentPtr>> {
        let mut ptrs = KVec::new();
        for i in 0..self.devs.len() {
            if ptrs.len() == self.replicas {
                break;
            }
            if let Some(p) = self.piece(fs, i)? {
                ptrs.push(p, GFP_KERNEL)?;
            }
        }
        if ptrs.is_empty() {
            return Err(ENOSPC);
        }
        Ok(ptrs)
    }

    /// The next node-sized piece on device `i`.
    fn piece(&mut self, fs: &Arc<Fs>, i: usize) -> Result<Option<ExtentPtr>> {
        let ns = self.node_sectors;
        let d = self.devs.get(i).ok_or(EINVAL)?;
        if !d.holds_nodes(ns) {
            return Ok(None);
        }
        if d.needs_bucket(ns) {
            let Some((bucket, gen)) = self.bucket(fs, i)? else {
                return Ok(None);
            };
            self.devs[i].open = Some((bucket, gen, 0));
        }
        Ok(self.devs[i].next_piece(ns))
    }

    /// A free bucket of device `i` (the core's choice), taken out of the
    /// freespace btree.
    fn bucket(&mut self, fs: &Arc<Fs>, i: usize) -> Result<Option<(u64, u8)>> {
        let d = *self.devs.get(i).ok_or(EINVAL)?;
        let extents = self.free.extents_of(d.dev)?;
        let busy = &self.busy;
        let found = d.find_bucket(
            &extents,
            self.flushed_seq,
            &|b| busy.contains(&(d.dev, b)),
            &mut |b| alloc_key(fs, d.dev, b),
        )?;
        let Some((pos, bucket, gen)) = found else {
            return Ok(None);
        };
        self.free.take(fs, d.dev, pos)?;
        Ok(Some((bucket, gen)))
    }
}

/// The alloc key of a bucket as it is on disk (none reads as a free bucket of gen
/// 0, as the offline tool reads it).
fn alloc_key(fs: &Arc<Fs>, dev: u32, bucket: u64) -> Result<AllocV4> {
    let at = Bpos::new(u64::from(dev), bucket, 0);
    Ok(leaf_key(fs, btree::ALLOC, at)?
        .and_then(|(k, v)| AllocV4::from_key(k.typ, &v))
        .unwrap_or_default())
}

/// New nodes' random seqs, handed out in order: every planning round of a
/// commit gets the same ones (the offline tool's `Seqs`).
#[derive(Default)]
pub(crate) struct Seqs {
    made: KVec<u64>,
    next: usize,
}

impl Seqs {
    /// A planning round starts: the seqs handed out so far come again.
    pub(crate) fn rewind(&mut self) {
        self.next = 0;
    }

    /// The next seq.
    pub(crate) fn get(&mut self) -> Result<u64> {
        if self.next == self.made.len() {
            self.made.push(random_seq(), GFP_KERNEL)?;
        }
        let s = self.made.get(self.next).copied().ok_or(EINVAL)?;
        self.next += 1;
        Ok(s)
    }
}

/// A new node's random seq (never 0).
fn random_seq() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: `b` is a live buffer of 8 bytes, written by get_random_bytes alone.
    unsafe { kernel::bindings::get_random_bytes(b.as_mut_ptr().cast(), b.len()) };
    u64::from_le_bytes(b).max(1)
}
