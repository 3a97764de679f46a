// SPDX-License-Identifier: GPL-2.0
//! Committing key updates to an image: the write path of `fsck -y`. The decisions
//! (bset, jset and superblock layouts) are the core's; this file orders the IO.
//!
//! Order, one level of the btree at a time from the leaves up:
//! 1. a journal entry with this level's keys (the updates at level 0; the parents'
//!    new pointers above) and every btree's root;
//! 2. the bsets holding those keys, appended at each node's next block on every
//!    replica, tagged with that entry's seq. A bset past its pointer's
//!    `sectors_written` is not read, so it stays invisible until the pointer that
//!    covers it is committed;
//! 3. each written node's pointer, its `sectors_written` advanced, becomes a key of
//!    the next level up (or the btree's new root).
//!
//! Then a last, empty journal entry (`last_seq == seq`, all roots) and the
//! superblock: marked clean with the new roots in its clean section, seq and
//! members' seq advanced, every copy on every device. On a clean filesystem the
//! journal is not read at mount and the roots come from the clean section, so until
//! the first superblock copy lands nothing of the new state is visible: a stop
//! after any earlier write leaves the image as it was, a stop after it the repair
//! done (the other copies catch up at the next superblock write).
//!
//! A filesystem that was not shut down cleanly keeps its journal: the seqs past
//! its newest flush entry are blacklisted first (with the superblock's changes),
//! our entries replay on top of it, and it stays dirty; there the first of our
//! journal entries commits the keys.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::ids;
use bcachefs_core::journal::keys::AcctView;
use bcachefs_core::journal::read::entry;
use bcachefs_core::journal::write::{
    jset_flags, next_slot, JsetBuilder, JsetHeader, Slot, DIRTY_SKIP,
};
use bcachefs_core::sb::write::{member, SbEdit};
use bcachefs_core::sb::{format as sbf, JsetEntries, Sb};

use crate::fs::{Fs, Root};
use crate::hash::Hashes;
use crate::list::Walk;
use crate::update::{plan, Stats, Txn};
use bcachefs_core::alloc::foreground::bitmap_mark;

/// Where writes go: the image files, or a test's sink that fails on cue.
pub trait Sink {
    /// Writes `data` at byte `off` of device `dev`.
    fn write(&mut self, dev: usize, off: u64, data: &[u8]) -> Result<(), String>;
    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), String>;
}

/// The image files, opened for writing. `fail_after` (tests) makes every write
/// after that many fail, as a device that dies mid-repair would.
pub struct FileSink {
    files: Vec<Option<File>>,
    fail_after: Option<usize>,
    /// Writes done so far.
    pub writes: usize,
}

impl FileSink {
    /// Opens `paths` for writing, by device index of `fs`.
    pub fn open(fs: &Fs, paths: &[String]) -> Result<FileSink, String> {
        let mut files: Vec<Option<File>> = (0..fs.devs.len()).map(|_| None).collect();
        for p in paths {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("{}: {}", p, e))?;
            let sb = crate::fs::read_sb(&f, p)?;
            let idx = Sb { b: &sb }.dev_idx() as usize;
            if let Some(slot) = files.get_mut(idx) {
                *slot = Some(f);
            }
        }
        let fail_after = std::env::var("BCACHEFS_RS_FAIL_AFTER_WRITES")
            .ok()
            .and_then(|v| v.parse().ok());
        Ok(FileSink {
            files,
            fail_after,
            writes: 0,
        })
    }
}

impl FileSink {
    /// Makes every write after the first `n` fail (tests: a device that dies
    /// mid-commit), whatever the environment says.
    pub fn failing_after(mut self, n: usize) -> FileSink {
        self.fail_after = Some(n);
        self
    }
}

impl Sink for FileSink {
    fn write(&mut self, dev: usize, off: u64, data: &[u8]) -> Result<(), String> {
        if self.fail_after.is_some_and(|n| self.writes >= n) {
            return Err(format!(
                "write {} to device {} at sector {}: failed (BCACHEFS_RS_FAIL_AFTER_WRITES)",
                self.writes + 1,
                dev,
                off >> 9
            ));
        }
        let f = self
            .files
            .get(dev)
            .and_then(|f| f.as_ref())
            .ok_or_else(|| format!("device {} not open for writing", dev))?;
        f.write_all_at(data, off)
            .map_err(|e| format!("write to device {} at sector {}: {}", dev, off >> 9, e))?;
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        for f in self.files.iter().flatten() {
            f.sync_data().map_err(|e| format!("flush: {}", e))?;
        }
        Ok(())
    }
}

/// One key to write: `btree` at `level` (0 for the repairs; parents' pointers are
/// made here).
#[derive(Clone, Debug)]
pub struct Update {
    pub btree: u32,
    pub level: u8,
    pub k: Bkey,
    pub v: Vec<u8>,
    /// What the journal gets instead of `v`, where the two differ: an accounting
    /// key's journal copy is a delta (with the node key's bversion, so a replay
    /// over the new node skips it and one over the old node adds it).
    pub journal_v: Option<Vec<u8>>,
}

/// The seq of the first journal entry [`commit`] writes.
pub fn next_journal_seq(fs: &Fs) -> Result<u64, String> {
    Ok(Journal::new(fs)?.seq + 1)
}

/// Node identity: btree, level, pointer position and first replica's sector.
pub(crate) type NodeId = (u32, u8, Bpos, u64);

pub(crate) fn node_id(btree: u32, level: u8, k: &Bkey, v: &[u8]) -> NodeId {
    let off = BtreePtr::decode(k.typ, v)
        .and_then(|bp| bp.ptrs().next())
        .map(|p| p.offset)
        .unwrap_or(0);
    (btree, level, k.p, off)
}

/// The nodes from the root of `btree` down to the node at `level` whose range
/// holds `pos`.
pub(crate) fn path_to(
    fs: &Fs,
    btree: u32,
    pos: Bpos,
    level: u8,
) -> Result<Vec<(u8, Bkey, Vec<u8>)>, String> {
    let root = fs
        .roots
        .get(btree as usize)
        .and_then(|r| r.clone())
        .ok_or("no root")?;
    let mut path = vec![(root.level, root.k, root.v)];
    let mut w = Walk { fs, errors: 0 };
    if root.level < level {
        return Err(format!(
            "btree {} has no level {}",
            ids::btree_name(btree).unwrap_or("?"),
            level
        ));
    }
    while let Some((l, k, v)) = path.last().cloned() {
        if l == level {
            break;
        }
        let children = w.node_keys(btree, l, &k, &v);
        let c = children
            .into_iter()
            .find(|c| c.k.p >= pos && BtreePtr::decode(c.k.typ, &c.v).is_some())
            .ok_or_else(|| format!("no child for {} at level {}", pos, l))?;
        path.push((l - 1, c.k, c.v));
    }
    if w.errors > 0 {
        return Err(format!(
            "btree {}: unreadable node on the way to {}",
            ids::btree_name(btree).unwrap_or("?"),
            pos
        ));
    }
    Ok(path)
}

/// The key at `pos` of `btree`'s leaves, as the node holds it (merged).
pub fn leaf_key(fs: &Fs, btree: u32, pos: Bpos) -> Option<(Bkey, Vec<u8>)> {
    node_key(fs, btree, 0, pos)
}

/// The accounting key at `pos` as journal replay leaves it (the node's value and
/// the journal's deltas newer than it: `AcctView::Replayed`), what a commit's
/// accounting change goes on top of. `leaf_key` shows the listing's view, which
/// on a filesystem with a journal to replay is not that total.
pub fn accounting_key(fs: &Fs, pos: Bpos) -> Option<(Bkey, Vec<u8>)> {
    node_key_view(fs, ids::btree::ACCOUNTING, 0, pos, AcctView::Replayed)
}

/// The key at `pos` held by `btree`'s nodes at `level` (merged).
pub fn node_key(fs: &Fs, btree: u32, level: u8, pos: Bpos) -> Option<(Bkey, Vec<u8>)> {
    node_key_view(fs, btree, level, pos, AcctView::Listing)
}

/// [`node_key`], accounting deltas in the journal shown as `view` says.
fn node_key_view(
    fs: &Fs,
    btree: u32,
    level: u8,
    pos: Bpos,
    view: AcctView,
) -> Option<(Bkey, Vec<u8>)> {
    let path = path_to(fs, btree, pos, level).ok()?;
    let (level, k, v) = path.last()?;
    let mut w = Walk { fs, errors: 0 };
    w.node_keys_view(btree, *level, k, v, view)
        .into_iter()
        .find(|x| x.k.p == pos)
        .map(|x| (x.k, x.v))
}

/// The journal ring and where its next entry goes.
struct Journal {
    dev: usize,
    buckets: Vec<u64>,
    bucket_sectors: u32,
    newest: Slot,
    newest_sectors: u32,
    seq: u64,
    /// Ring index of each bucket holding an entry that must stay readable: on a
    /// dirty filesystem the ones its replay needs, and the repair's own.
    in_use: Vec<u64>,
}

impl Journal {
    fn new(fs: &Fs) -> Result<Journal, String> {
        let newest = fs
            .found_jsets
            .iter()
            .max_by_key(|j| j.seq)
            .ok_or("no journal entries found")?;
        let dev = newest.dev as usize;
        let d = fs.devs[dev].as_ref().ok_or("journal device missing")?;
        let s = Sb { b: &d.sb };
        let buckets: Vec<u64> = s
            .journal_buckets()
            .flat_map(|(start, nr)| start..start.saturating_add(nr))
            .collect();
        let m = s.member(dev).ok_or("no member")?;
        Ok(Journal {
            dev,
            buckets,
            bucket_sectors: m.bucket_size() as u32,
            newest: Slot {
                bucket_idx: newest.bucket,
                offset: newest.offset,
            },
            newest_sectors: newest.sectors,
            seq: newest.seq.max(fs.journal_seq) + if fs.clean { 0 } else { DIRTY_SKIP },
            in_use: fs
                .found_jsets
                .iter()
                .filter(|j| {
                    j.dev as usize == dev
                        && !fs.clean
                        && (fs.journal_start..=fs.journal_seq).contains(&j.seq)
                })
                .map(|j| j.bucket)
                .collect(),
        })
    }

    /// The seqs a repair of a filesystem that was not shut down cleanly skips:
    /// `[newest flush entry + 1, first new seq)`, blacklisted first, as upstream's
    /// recovery does, so that no bset a crashed kernel wrote past the journal's end
    /// is taken for one of ours.
    fn skipped(&self, fs: &Fs) -> Option<(u64, u64)> {
        (!fs.clean).then_some((fs.journal_seq + 1, self.seq + 1))
    }

    /// Writes a flush entry made by `fill`; returns its seq.
    fn write(
        &mut self,
        fs: &Fs,
        sink: &mut dyn Sink,
        last_seq: Option<u64>,
        fill: &mut dyn FnMut(&mut JsetBuilder) -> Result<(), String>,
    ) -> Result<(u64, Slot, u32), String> {
        let s = fs.sb();
        let seq = self.seq + 1;
        let mut buf = vec![0u8; (self.bucket_sectors as usize) << 9];
        let mut b = JsetBuilder::new(&mut buf);
        fill(&mut b)?;
        let h = JsetHeader {
            magic: s.jset_magic(),
            seq,
            last_seq: last_seq.unwrap_or(seq),
            version: u32::from(s.version()),
            flags: jset_flags(s.meta_csum_type()),
        };
        let out = b
            .seal(&h, s.block_sectors(), &Hashes)
            .map_err(|e| format!("journal entry {}: {:?}", seq, e))?;
        let sectors = (out.len() >> 9) as u32;
        let slot = next_slot(
            self.newest,
            self.newest_sectors,
            sectors,
            self.bucket_sectors,
            self.buckets.len() as u64,
        )
        .ok_or("journal entry does not fit a journal bucket")?;
        // A new bucket must hold nothing that is still needed: the old journal's
        // entries that replay, or this repair's own.
        if slot.bucket_idx != self.newest.bucket_idx && self.in_use.contains(&slot.bucket_idx) {
            return Err(
                "the journal is full: its next bucket still holds entries that replay".into(),
            );
        }
        let bucket = self.buckets[slot.bucket_idx as usize];
        let off = (bucket * u64::from(self.bucket_sectors) + u64::from(slot.offset)) << 9;
        sink.write(self.dev, off, out)?;
        sink.flush()?;
        self.newest = slot;
        self.newest_sectors = sectors;
        self.seq = seq;
        self.in_use.push(slot.bucket_idx);
        Ok((seq, slot, sectors))
    }
}

fn add_roots(b: &mut JsetBuilder, roots: &[Option<Root>]) -> Result<(), String> {
    for (id, r) in roots.iter().enumerate() {
        if let Some(r) = r {
            if BtreePtr::decode(r.k.typ, &r.v).is_some_and(|bp| bp.ptrs().next().is_some()) {
                b.btree_root(id as u32, r.level, &r.k, &r.v)
                    .map_err(|e| format!("journal entry: {:?}", e))?;
            }
        }
    }
    Ok(())
}

/// Superblock changes a repair makes, on every device's superblock.
#[derive(Clone, Debug, Default)]
pub struct SbChanges {
    /// A new btree-allocated bitmap, by device.
    pub bitmaps: Vec<(u32, u64)>,
    /// Recovery passes (bits of `recovery_passes_required[0]`) that ran.
    pub passes_done: u64,
}

impl SbChanges {
    pub fn is_empty(&self) -> bool {
        self.bitmaps.is_empty() && self.passes_done == 0
    }

    fn apply(&self, e: &mut SbEdit) -> Result<(), String> {
        for &(dev, bitmap) in &self.bitmaps {
            let shift = e
                .sb()
                .member(dev as usize)
                .ok_or("no member")?
                .btree_bitmap_shift();
            e.set_member_bitmap(dev as usize, shift, bitmap)
                .map_err(|e| format!("superblock: {:?}", e))?;
        }
        if self.passes_done != 0 {
            let p = e.sb().recovery_passes_required() & !self.passes_done;
            e.set_recovery_passes_required(p)
                .map_err(|e| format!("superblock: {:?}", e))?;
        }
        Ok(())
    }
}

/// Writes the transaction `txn` (key updates at level 0, node pointers for
/// topology repairs, node rewrites, accounting deltas) and the superblock
/// `changes` into the image, as the module comment says. Returns what the commit did to
/// the btrees.
pub fn commit(
    fs: &Fs,
    txn: &Txn,
    changes: &SbChanges,
    sink: &mut dyn Sink,
) -> Result<Stats, String> {
    if txn.is_empty() {
        // Only the superblock changes: one write per copy, nothing else moves.
        if !changes.is_empty() {
            write_sb(fs, sink, None, changes, None)?;
        }
        return Ok(Stats::default());
    }
    let mut journal = Journal::new(fs)?;
    let seq = journal.seq + 1;
    let p = plan(fs, txn, seq)?;
    // Each member's bitmap, as the caller leaves it, marks every new node
    // (`bch2_dev_btree_bitmap_mark`).
    let mut changes = changes.clone();
    let ns = u64::from(fs.sb().btree_node_sectors());
    for &(dev, offset) in &p.new_nodes {
        let m = fs.sb().member(dev as usize).ok_or("no member")?;
        let shift = m.btree_bitmap_shift();
        let cur = changes
            .bitmaps
            .iter()
            .find(|(d, _)| *d == dev)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| m.btree_allocated_bitmap());
        let marked =
            bitmap_mark(cur, shift, offset, ns).ok_or("a new node past the btree bitmap")?;
        if marked != cur {
            match changes.bitmaps.iter_mut().find(|(d, _)| *d == dev) {
                Some(b) => b.1 = marked,
                None => changes.bitmaps.push((dev, marked)),
            }
        }
    }
    // A dirty filesystem keeps its journal: every entry of ours replays on top of
    // it (last_seq stays its replay start), after the skipped seqs are
    // blacklisted. A clean one needs nothing older than our first entry.
    let blacklist = journal.skipped(fs);
    let last_seq = if fs.clean { seq } else { fs.journal_start };
    if blacklist.is_some() {
        // The superblock's own changes go with the blacklist: the journal entry
        // after it is what commits the keys.
        write_sb(fs, sink, None, &changes, blacklist)?;
    }
    // Every node image first: appended bsets lie past their pointers'
    // `sectors_written` and new nodes in free buckets, so none is read until the
    // keys that point at them are committed.
    for w in &p.writes {
        sink.write(w.dev, w.off, &w.data)?;
    }
    sink.flush()?;
    // One journal entry with every key, at every level, and the new roots.
    type Keys = Vec<(Bkey, Vec<u8>)>;
    let mut groups: BTreeMap<(u32, u8), Keys> = BTreeMap::new();
    for ((btree, level, _), (k, v)) in &p.keys {
        groups
            .entry((*btree, *level))
            .or_default()
            .push((*k, v.clone()));
    }
    let (s1, _, _) = journal.write(fs, sink, Some(last_seq), &mut |b| {
        for ((btree, level), keys) in &groups {
            let mut it = keys.iter().map(|(k, v)| (*k, v.as_slice()));
            b.btree_keys(*btree, *level, &mut it)
                .map_err(|e| format!("journal entry: {:?}", e))?;
        }
        add_roots(b, &p.roots)?;
        Ok(())
    })?;
    if s1 != seq {
        return Err(format!("journal entry {} written as {}", seq, s1));
    }
    if !fs.clean {
        // Every root in an entry of its own, the journal's keys left to replay:
        // the filesystem stays dirty.
        journal.write(fs, sink, Some(last_seq), &mut |b| add_roots(b, &p.roots))?;
        return Ok(p.stats);
    }
    // The last entry: nothing left to replay, every root.
    let (end_seq, end_slot, end_sectors) =
        journal.write(fs, sink, None, &mut |b| add_roots(b, &p.roots))?;
    let clean = CleanState {
        roots: &p.roots,
        seq: end_seq,
        jdev: journal.dev,
        slot: end_slot,
        sectors: end_sectors,
    };
    write_sb(fs, sink, Some(&clean), &changes, None)?;
    Ok(p.stats)
}

/// What a clean superblock records: the roots and the last journal entry (at `slot`
/// of the ring on `jdev`, `sectors` long).
struct CleanState<'a> {
    roots: &'a [Option<Root>],
    seq: u64,
    jdev: usize,
    slot: Slot,
    sectors: u32,
}

/// The superblock, on every device, with `changes`, the `blacklist` range added
/// and (given `clean`) marked clean with its roots; seq and members' seq
/// advanced; copy by copy.
fn write_sb(
    fs: &Fs,
    sink: &mut dyn Sink,
    clean: Option<&CleanState>,
    changes: &SbChanges,
    blacklist: Option<(u64, u64)>,
) -> Result<(), String> {
    // Clean section: the old section's usage and clocks, then every root.
    let old = fs
        .sb()
        .clean_field()
        .map(|(_, e)| e.to_vec())
        .unwrap_or_default();
    let mut entries = vec![0u8; 16 << 10];
    let mut b = JsetBuilder::new(&mut entries);
    for e in JsetEntries::new(&old) {
        if e.typ != entry::BTREE_ROOT && !(e.typ == entry::BTREE_KEYS && e.data.is_empty()) {
            b.raw(e.typ, e.btree_id, e.level, e.data)
                .map_err(|e| format!("clean section: {:?}", e))?;
        }
    }
    if let Some(c) = clean {
        add_roots(&mut b, c.roots)?;
    }
    let n = b.len() - bcachefs_core::journal::read::JSET_BYTES;
    let body = entries[bcachefs_core::journal::read::JSET_BYTES..][..n].to_vec();
    let new_seq = fs.sb().seq() + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Every device's superblock, then each copy in layout order.
    let mut sbs = Vec::new();
    for (idx, d) in fs.devs.iter().enumerate() {
        let Some(d) = d else { continue };
        let mut buf = d.sb.clone();
        // Room for a clean section or a blacklist to grow into.
        buf.resize(buf.len() + body.len() + 1024, 0);
        let mut e = SbEdit::new(&mut buf, &Hashes).map_err(|e| format!("superblock: {:?}", e))?;
        e.set_seq(new_seq);
        e.set_write_time(now);
        changes.apply(&mut e)?;
        if let Some((start, end)) = blacklist {
            e.add_blacklist(start, end)
                .map_err(|e| format!("superblock blacklist: {:?}", e))?;
        }
        if let Some(c) = clean {
            e.set_clean(true);
            e.set_clean_section(c.seq, &body)
                .map_err(|e| format!("superblock clean section: {:?}", e))?;
            let ring = (u64::from(c.slot.offset + c.sectors) << 32) | c.slot.bucket_idx;
            let _ = e.set_member_u64(c.jdev, member::LAST_JOURNAL_BUCKET, ring);
        }
        for m in 0..fs.devs.len() {
            if fs.devs[m].is_some() {
                let _ = e.set_member_u64(m, member::SEQ, new_seq);
            }
        }
        // Sealed for copy 0 now so that each copy below starts from a valid one.
        let off0 = e.sb().layout().sb_offset(0).unwrap_or(sbf::SB_SECTOR);
        e.seal(off0, &Hashes)
            .map_err(|e| format!("superblock: {:?}", e))?;
        sbs.push((idx, buf));
    }
    let copies = fs.sb().layout().nr_superblocks() as usize;
    for i in 0..copies {
        for (idx, buf) in sbs.iter_mut() {
            let off = Sb {
                b: &fs.devs[*idx].as_ref().unwrap().sb,
            }
            .layout()
            .sb_offset(i)
            .unwrap_or(sbf::SB_SECTOR);
            let padded = sealed_copy(buf, off, fs.sb().block_sectors())?;
            sink.write(*idx, off << 9, &padded)?;
        }
        sink.flush()?;
    }
    Ok(())
}

/// The superblock in `buf` sealed for its copy at sector `off`, padded with zeroes
/// to whole blocks of `block_sectors`: the bytes that go there.
pub(crate) fn sealed_copy(buf: &mut [u8], off: u64, block_sectors: u32) -> Result<Vec<u8>, String> {
    let mut e = SbEdit::new(buf, &Hashes).map_err(|e| format!("superblock: {:?}", e))?;
    let bytes = e
        .seal(off, &Hashes)
        .map_err(|e| format!("superblock: {:?}", e))?;
    let mut padded = bytes.to_vec();
    let blk = (block_sectors.max(1) as usize) << 9;
    padded.resize(padded.len().div_ceil(blk) * blk, 0);
    Ok(padded)
}
