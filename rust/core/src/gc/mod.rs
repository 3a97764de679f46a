// SPDX-License-Identifier: GPL-2.0
//! Btree gc, as checks: one pass walks every btree from its root and
//!
//! 1. checks each interior node's children cover its range exactly ([`topology`]),
//!    treating unreadable children as absent;
//! 2. marks every pointer (node pointers with the node size, extents with their
//!    disk sectors) into the caller's bucket tables, checking each pointer's gen
//!    against its bucket's as it goes ([`buckets`]);
//! 3. recounts the accounting the marking implies ([`accounting`]);
//! 4. sweeps: compares every alloc key and every recounted accounting key with the
//!    recount, and the members' btree-allocated bitmaps with where nodes are.
//!
//! Every problem is a [`finding::Finding`] handed to the caller. Nothing is written:
//! each finding names the repair upstream would make. How nodes are read is the
//! caller's ([`Source`]): the tool reads an image, the module its node cache.

pub mod accounting;
pub mod buckets;
pub mod finding;
pub mod repair;
pub mod topology;

use super::alloc::format::{acct, AllocV4, DATA_BTREE, DATA_CACHED, DATA_STRIPE, DATA_USER};
use super::bkey::{Bkey, BKEY_U64S};
use super::bpos::Bpos;
use super::btree::ptr::BtreePtr;
use super::btree::read::NodeError;
use super::data::extents_format::{
    entries_of, BtreePtrV2, DecodedPtrs, Reservation, MEMBER_INVALID,
};
use super::ids::{self, KeyType};

use accounting::{pos, replicas_pos, Tally};
use buckets::{compare_alloc, expected_alloc, DevBuckets, PtrRef};
use finding::{Finding, Kind, NodeAt, KIND_NR};
use topology::Children;

/// What the caller's reader says about a node it read.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeInfo {
    /// Header min_key.
    pub min: Bpos,
    /// Header max_key.
    pub max: Bpos,
    /// No replica passed its checksum: the keys come from a copy that failed it.
    pub bad_csum: Option<NodeError>,
    /// Keys the validating merge dropped.
    pub dropped_keys: u32,
    /// The node read ended before its pointer's `sectors_written`
    /// ([`NodeError::Incomplete`]).
    pub data_missing: Option<NodeError>,
}

/// How a gc pass reads btrees.
pub trait Source {
    /// Calls `f(level, key, value)` with the root pointer of `btree`, if it has one.
    fn root(&self, btree: u32, f: &mut dyn FnMut(u8, &Bkey, &[u8]));

    /// Reads the node `k`/`v` of `btree` at `level` and calls `f` for each of its
    /// keys in order (merged, journal overlaid). `Err` when no replica could be
    /// read, with the first replica's error when it was a node error.
    fn node(
        &self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
        f: &mut dyn FnMut(&Bkey, &[u8]),
    ) -> Result<NodeInfo, Option<NodeError>>;

    /// Whether the pass should stop now (unmount).
    fn stopping(&self) -> bool {
        false
    }
}

/// The pass was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped;

/// Counters of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Nodes read while marking.
    pub nodes: u64,
    /// Leaf keys marked.
    pub keys: u64,
    /// Findings per kind ([`finding::KINDS`] order).
    pub findings: [u32; KIND_NR],
    /// Unreadable nodes whose loss leaves buckets unaccounted.
    pub unreadable: u32,
    /// Alloc keys compared.
    pub buckets: u64,
    /// Buckets whose `oldest_gen` a gens pass would advance.
    pub oldest_gen_advance: u64,
    /// Stripe keys seen (not marked: erasure coding is not checked).
    pub stripes_skipped: u64,
}

impl Stats {
    /// Total findings.
    pub fn total(&self) -> u64 {
        self.findings.iter().map(|&n| u64::from(n)).sum()
    }
}

/// `ptr_disk_sectors`: sectors a pointer takes on disk for `sectors` of key.
pub fn ptr_disk_sectors(sectors: u32, crc: &super::data::extents_format::Crc) -> u32 {
    if crc.is_compressed() {
        let u = u64::from(crc.uncompressed_size.max(1));
        (u64::from(sectors) * u64::from(crc.compressed_size)).div_ceil(u) as u32
    } else {
        sectors
    }
}

/// Whether the superblock asks for the `btree_bitmap_gc` recovery pass.
pub fn sb_wants_bitmap_gc(sb: &super::sb::Sb<'_>) -> bool {
    sb.recovery_passes_required() & (1u64 << PASS_BTREE_BITMAP_GC) != 0
}

/// Stable id of the `btree_bitmap_gc` recovery pass.
pub const PASS_BTREE_BITMAP_GC: u32 = 46;

/// A pass over one filesystem.
pub struct Gc<'a, 'b> {
    /// Bucket tables by device index (`None`: not a member).
    pub devs: &'a mut [Option<DevBuckets<'b>>],
    /// The accounting recount.
    pub tally: Tally<'a>,
    /// This pass's counters.
    pub stats: Stats,
    node_sectors: u32,
    wants_bitmap_gc: bool,
    gens_known: bool,
    /// The `bucket_gens` btree could be read and has keys: gens are compared.
    bucket_gens: bool,
    out: &'a mut dyn FnMut(&Finding),
}

impl<'a, 'b> Gc<'a, 'b> {
    /// A pass over devices `devs` (made by [`DevBuckets::new`], their superblock
    /// and journal buckets marked), with btree nodes of `node_sectors`;
    /// `wants_bitmap_gc` from [`sb_wants_bitmap_gc`]. Findings go to `out`.
    pub fn new(
        devs: &'a mut [Option<DevBuckets<'b>>],
        tally: Tally<'a>,
        node_sectors: u32,
        wants_bitmap_gc: bool,
        out: &'a mut dyn FnMut(&Finding),
    ) -> Self {
        Gc {
            devs,
            tally,
            stats: Stats::default(),
            node_sectors,
            wants_bitmap_gc,
            gens_known: false,
            bucket_gens: false,
            out,
        }
    }

    fn emit(&mut self, f: &Finding) {
        counted(&mut self.stats, &mut *self.out)(f);
    }

    /// Runs the whole pass.
    pub fn run(&mut self, src: &dyn Source) -> Result<(), Stopped> {
        self.tally.clear();
        self.gens_known = self.load_gens(src)?;
        self.bucket_gens = self.load_bucket_gens(src)?;
        for id in 0..ids::BTREE_ID_NR as u32 {
            self.walk_btree(src, id)?;
        }
        if self.stats.unreadable > 0 || !self.gens_known || self.tally.overflow > 0 {
            let mut f = Finding::new(Kind::CheckAllocationsIncomplete);
            f.btree = Some(ids::btree::ALLOC);
            f.got = i64::from(self.stats.unreadable);
            self.emit(&f);
        } else {
            self.sweep(src)?;
            self.compare_accounting(src)?;
        }
        self.check_bitmaps();
        Ok(())
    }

    /// Gens of every bucket from the alloc btree; false when part of it could not
    /// be read.
    fn load_gens(&mut self, src: &dyn Source) -> Result<bool, Stopped> {
        let devs = &mut *self.devs;
        leaf_keys(src, ids::btree::ALLOC, &mut |k, v| {
            if let Some(a) = AllocV4::from_key(k.typ, v) {
                if let Some(Some(d)) = devs.get_mut(k.p.inode as usize) {
                    d.set_gen(k.p.offset, a.gen);
                }
            }
        })
    }

    /// Each bucket's gen in the `bucket_gens` btree; whether it could be read and
    /// has keys (filesystems from before it have none).
    fn load_bucket_gens(&mut self, src: &dyn Source) -> Result<bool, Stopped> {
        use super::alloc::format::{bucket_gen, BUCKET_GENS_NR};
        let devs = &mut *self.devs;
        let mut any = false;
        let ok = leaf_keys(src, ids::btree::BUCKET_GENS, &mut |k, v| {
            if k.typ != KeyType::BucketGens as u8 {
                return;
            }
            any = true;
            let Some(Some(d)) = devs.get_mut(k.p.inode as usize) else {
                return;
            };
            let base = k.p.offset.saturating_mul(BUCKET_GENS_NR as u64);
            for i in 0..BUCKET_GENS_NR {
                if let Some(b) = d.buckets.get_mut((base + i as u64) as usize) {
                    b.bucket_gens_gen = bucket_gen(v, i);
                }
            }
        })?;
        Ok(ok && any)
    }

    fn walk_btree(&mut self, src: &dyn Source, btree: u32) -> Result<(), Stopped> {
        let mut r = Ok(());
        src.root(btree, &mut |level, k, v| {
            // An empty btree: upstream keeps a root without a node.
            if has_ptrs(k, v) {
                r = self.walk_root(src, btree, level, k, v);
            }
        });
        r
    }

    fn walk_root(
        &mut self,
        src: &dyn Source,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
    ) -> Result<(), Stopped> {
        self.mark_btree_ptr(btree, level + 1, k, v);
        // Findings name levels as `level/root level`.
        if let Some(info) = self.walk_node(src, btree, level, level, k, v, Bpos::MIN)? {
            let at = node_at(k, v, Some(info.min));
            topology::check_root(
                btree,
                level,
                at,
                &mut counted(&mut self.stats, &mut *self.out),
            );
        }
        Ok(())
    }

    /// Reads and marks one node and everything under it; `None` when it could not
    /// be read.
    #[allow(clippy::too_many_arguments)]
    fn walk_node(
        &mut self,
        src: &dyn Source,
        btree: u32,
        level: u8,
        root_level: u8,
        k: &Bkey,
        v: &[u8],
        min: Bpos,
    ) -> Result<Option<NodeInfo>, Stopped> {
        if src.stopping() {
            return Err(Stopped);
        }
        self.stats.nodes += 1;
        let mut stopped = false;
        let mut children = Children::new(btree, level.saturating_sub(1), root_level, min, k.p);
        let r = src.node(btree, level, k, v, &mut |ck, cv| {
            if stopped {
                return;
            }
            if level == 0 {
                self.stats.keys += 1;
                self.mark_leaf_key(btree, ck, cv);
                return;
            }
            if BtreePtr::decode(ck.typ, cv).is_none() {
                return;
            }
            self.mark_btree_ptr(btree, level, ck, cv);
            let cmin = BtreePtrV2::min_key_of(ck.typ, cv).unwrap_or(min);
            match self.walk_node(src, btree, level - 1, root_level, ck, cv, cmin) {
                Ok(info) => {
                    let at = info.map(|i| node_at(ck, cv, Some(i.min)));
                    children.child(at, &mut counted(&mut self.stats, &mut *self.out));
                }
                Err(Stopped) => stopped = true,
            }
        });
        if stopped {
            return Err(Stopped);
        }
        let at = node_at(k, v, None);
        match r {
            Ok(info) => {
                let node = Some(NodeAt {
                    min: info.min,
                    ..at
                });
                if let Some(e) = info.bad_csum {
                    let mut f = node_finding(Kind::NodeBadChecksum, btree, level, root_level, node);
                    f.err = Some(e);
                    self.emit(&f);
                }
                if let Some(e) = info.data_missing {
                    let mut f = node_finding(Kind::NodeDataMissing, btree, level, root_level, node);
                    f.err = Some(e);
                    self.emit(&f);
                }
                if info.dropped_keys > 0 {
                    let mut f = node_finding(Kind::NodeBadKeys, btree, level, root_level, node);
                    f.got = i64::from(info.dropped_keys);
                    self.emit(&f);
                }
                if level > 0 {
                    children.finish(node, &mut counted(&mut self.stats, &mut *self.out));
                }
                Ok(Some(info))
            }
            Err(e) => {
                // A header that does not match its pointer is a misplaced node (the
                // read error says which end); anything else an unreadable one.
                let kind = match e {
                    Some(NodeError::WrongMinKey) => Kind::BadMinKey,
                    Some(NodeError::WrongMaxKey) => Kind::BadMaxKey,
                    _ => Kind::NodeReadError,
                };
                let mut f =
                    node_finding(kind, btree, level, root_level, Some(NodeAt { min, ..at }));
                f.err = e;
                self.emit(&f);
                if level > 0 || holds_data(btree) {
                    self.stats.unreadable += 1;
                }
                Ok(None)
            }
        }
    }

    /// Marks pointer `p` into device `dev`'s buckets: whether its sectors counted.
    fn mark(&mut self, p: &PtrRef, dev: u8) -> bool {
        let mut emit = counted(&mut self.stats, &mut *self.out);
        match self.devs.get_mut(dev as usize) {
            Some(Some(d)) => d.mark_ptr(p, self.gens_known, &mut emit),
            _ => {
                let mut f = Finding::new(Kind::PtrToInvalidDevice);
                f.btree = Some(p.btree);
                f.level = p.level;
                f.pos = Some(p.pos);
                f.bucket = Some((u32::from(dev), 0));
                emit(&f);
                false
            }
        }
    }

    /// A pointer to a node (held at `level`, so the node is at `level - 1`).
    fn mark_btree_ptr(&mut self, btree: u32, level: u8, k: &Bkey, v: &[u8]) {
        let Some(bp) = BtreePtr::decode(k.typ, v) else {
            return;
        };
        let ns = self.node_sectors;
        let mut devs = [0u8; 16];
        let mut n = 0usize;
        let mut sectors = 0i64;
        for p in bp.ptrs() {
            if n < devs.len() {
                devs[n] = p.dev;
                n += 1;
            }
            sectors += i64::from(ns);
            if p.dev == MEMBER_INVALID {
                continue;
            }
            let r = PtrRef {
                btree,
                level,
                pos: k.p,
                offset: p.offset,
                gen: p.gen,
                cached: false,
                data_type: DATA_BTREE,
                sectors: ns,
            };
            self.mark(&r, p.dev);
            let in_bitmap = match self.devs.get_mut(p.dev as usize) {
                Some(Some(d)) => d.bitmap_mark(p.offset, ns),
                _ => true,
            };
            if !in_bitmap && !self.wants_bitmap_gc {
                let mut f = Finding::new(Kind::BtreeBitmapNotMarked);
                f.btree = Some(btree);
                f.level = level - 1;
                f.node = Some(node_at(k, v, None));
                self.emit(&f);
            }
        }
        if n > 0 {
            self.tally
                .add(replicas_pos(DATA_BTREE, 1, &devs[..n]), [sectors, 0, 0]);
        }
        let interior = i64::from(level >= 2);
        self.tally.add(
            pos(acct::BTREE, &btree.to_le_bytes()),
            [sectors, 1, interior],
        );
    }

    fn mark_leaf_key(&mut self, btree: u32, k: &Bkey, v: &[u8]) {
        let t = k.typ;
        // Per-(snapshot, btree) accounting: [keys, key bytes, sectors]; extents
        // count their dirty sectors, reservations their reserved ones.
        let mut snapshot_sectors = 0i64;
        if t == KeyType::Extent as u8 || t == KeyType::ReflinkV as u8 {
            if let Some(e) = entries_of(t, v) {
                snapshot_sectors = self.mark_extent(btree, k, e);
            }
        } else if t == KeyType::Reservation as u8 {
            let r = Reservation::read(v);
            snapshot_sectors = i64::from(k.size) * i64::from(r.nr_replicas);
            self.tally.add(
                pos(acct::PERSISTENT_RESERVED, &[r.nr_replicas]),
                [snapshot_sectors, 0, 0],
            );
        } else if btree == ids::btree::INODES
            && (t == KeyType::Inode as u8
                || t == KeyType::InodeV2 as u8
                || t == KeyType::InodeV3 as u8)
        {
            self.tally.add(pos(acct::NR_INODES, &[]), [1, 0, 0]);
        } else if t == KeyType::Stripe as u8 {
            self.stats.stripes_skipped += 1;
        }
        if snapshot_counted(btree, k) {
            let mut u = [0u8; 8];
            u[..4].copy_from_slice(&k.p.snapshot.to_le_bytes());
            u[4..].copy_from_slice(&btree.to_le_bytes());
            let bytes = (BKEY_U64S + v.len().div_ceil(8)) as i64 * 8;
            self.tally
                .add(pos(acct::SNAPSHOT, &u), [1, bytes, snapshot_sectors]);
        }
    }

    /// Marks an extent's pointers; returns its dirty sectors (pointers neither
    /// cached nor erasure coded), as the snapshot accounting counts them.
    fn mark_extent(&mut self, btree: u32, k: &Bkey, entries: &[u8]) -> i64 {
        let mut devs = [0u8; 16];
        let mut n = 0usize;
        let mut dirty = 0i64;
        let mut snapshot_dirty = 0i64;
        // Runs of pointers with one compression type: (type, uncompressed, compressed).
        let mut run: Option<(u8, i64, i64)> = None;
        for dp in DecodedPtrs::new(entries, k.size) {
            let p = dp.ptr;
            let sectors = ptr_disk_sectors(k.size, &dp.crc);
            let data_type = if dp.ec.is_some() {
                DATA_STRIPE
            } else if p.cached {
                DATA_CACHED
            } else {
                DATA_USER
            };
            let counted = if p.dev == MEMBER_INVALID {
                !p.cached
            } else {
                let r = PtrRef {
                    btree,
                    level: 0,
                    pos: k.p,
                    offset: p.offset,
                    gen: p.gen,
                    cached: p.cached,
                    data_type,
                    sectors,
                };
                self.mark(&r, p.dev)
            };
            if !p.cached {
                if n < devs.len() {
                    devs[n] = p.dev;
                    n += 1;
                }
                dirty += i64::from(sectors);
                if dp.ec.is_none() {
                    snapshot_dirty += i64::from(sectors);
                }
            } else if counted {
                self.tally.add(
                    replicas_pos(DATA_CACHED, 1, &[p.dev]),
                    [i64::from(sectors), 0, 0],
                );
            }
            if !p.cached || counted {
                let ct = dp.crc.compression_type;
                match &mut run {
                    Some((t, u, c)) if *t == ct => {
                        *u += i64::from(dp.crc.uncompressed_size);
                        *c += i64::from(dp.crc.compressed_size);
                    }
                    _ => {
                        self.flush_compression(run.take());
                        run = Some((
                            ct,
                            i64::from(dp.crc.uncompressed_size),
                            i64::from(dp.crc.compressed_size),
                        ));
                    }
                }
            }
        }
        self.flush_compression(run);
        if n > 0 {
            self.tally
                .add(replicas_pos(DATA_USER, 1, &devs[..n]), [dirty, 0, 0]);
        }
        snapshot_dirty
    }

    fn flush_compression(&mut self, run: Option<(u8, i64, i64)>) {
        if let Some((t, u, c)) = run {
            if t != 0 {
                self.tally.add(pos(acct::COMPRESSION, &[t]), [1, u, c]);
            }
        }
    }

    /// Compares every alloc key with the marking; recounts the per-device counters.
    fn sweep(&mut self, src: &dyn Source) -> Result<(), Stopped> {
        let devs = &mut *self.devs;
        let tally = &mut self.tally;
        let stats = &mut self.stats;
        let out = &mut *self.out;
        let bucket_gens = self.bucket_gens;
        leaf_keys(src, ids::btree::ALLOC, &mut |k, v| {
            let Some(a) = AllocV4::from_key(k.typ, v) else {
                return;
            };
            let Some(Some(d)) = devs.get_mut(k.p.inode as usize) else {
                return;
            };
            let b = k.p.offset;
            let Some(g) = d.buckets.get(b as usize).copied() else {
                return;
            };
            if b < d.first_bucket {
                return;
            }
            stats.buckets += 1;
            let want = compare_alloc(d.dev, b, &a, &g, &mut counted(stats, out));
            if bucket_gens && g.bucket_gens_gen != a.gen {
                let mut f = Finding::new(Kind::BucketGensKeyWrong);
                f.btree = Some(ids::btree::BUCKET_GENS);
                f.bucket = Some((d.dev, b));
                f.got = i64::from(g.bucket_gens_gen);
                f.want = i64::from(a.gen);
                counted(stats, out)(&f);
            }
            if a.oldest_gen != buckets::oldest_gen_target(&a, &g) {
                stats.oldest_gen_advance += 1;
            }
            dev_usage(tally, d.dev, &want, d.bucket_size);
        })?;
        // Buckets without an alloc key count as empty keys.
        for d in self.devs.iter().flatten() {
            for (b, g) in d.buckets.iter().enumerate() {
                if (b as u64) < d.first_bucket || g.gen_valid {
                    continue;
                }
                let want = expected_alloc(&AllocV4::default(), g);
                dev_usage(&mut self.tally, d.dev, &want, d.bucket_size);
            }
        }
        Ok(())
    }

    fn compare_accounting(&mut self, src: &dyn Source) -> Result<(), Stopped> {
        let tally = &mut self.tally;
        let mut emit = counted(&mut self.stats, &mut *self.out);
        leaf_keys(src, ids::btree::ACCOUNTING, &mut |k, v| {
            if k.typ == KeyType::Accounting as u8 {
                tally.compare_key(
                    super::alloc::format::AccountingPos::from_bpos(k.p),
                    v,
                    &mut emit,
                );
            }
        })?;
        tally.finish(&mut emit);
        Ok(())
    }

    fn check_bitmaps(&mut self) {
        if self.wants_bitmap_gc {
            let mut f = Finding::new(Kind::BtreeBitmapGc);
            f.got = -1;
            self.emit(&f);
            return;
        }
        let mut emit = counted(&mut self.stats, &mut *self.out);
        for d in self.devs.iter().flatten() {
            let btree_buckets = d
                .buckets
                .iter()
                .filter(|g| g.data_type == DATA_BTREE && g.dirty != 0)
                .count() as u64;
            let btree_sectors = btree_buckets * u64::from(d.bucket_size);
            let bitmap_sectors = d.bitmap_sectors();
            if btree_sectors * 4 < bitmap_sectors {
                let mut f = Finding::new(Kind::BtreeBitmapGc);
                f.bucket = Some((d.dev, 0));
                f.want = btree_sectors as i64;
                f.got = bitmap_sectors as i64;
                emit(&f);
            }
        }
    }
}

fn dev_usage(tally: &mut Tally<'_>, dev: u32, a: &AllocV4, bucket_size: u16) {
    tally.add(
        pos(acct::DEV_DATA_TYPE, &[dev as u8, a.data_type]),
        [1, a.sectors(), a.sectors_fragmented(bucket_size)],
    );
}

/// Whether a leaf key counts in the per-snapshot accounting (upstream's
/// `snapshot_key_counted` over the snapshot btrees): in a snapshot, and not a
/// whiteout.
fn snapshot_counted(btree: u32, k: &Bkey) -> bool {
    let snapshot_btree = matches!(
        btree,
        ids::btree::EXTENTS | ids::btree::INODES | ids::btree::DIRENTS | ids::btree::XATTRS | 28
    );
    let whiteout = k.typ == KeyType::Deleted as u8
        || k.typ == KeyType::Whiteout as u8
        || k.typ == KeyType::ExtentWhiteout as u8;
    snapshot_btree && k.p.snapshot != 0 && !whiteout
}

/// Whether losing a leaf of `btree` loses pointers to data.
fn holds_data(btree: u32) -> bool {
    btree == ids::btree::EXTENTS || btree == ids::btree::REFLINK || btree == ids::btree::STRIPES
}

/// A sink that counts each finding into `stats` by kind, then hands it to `out`.
fn counted<'s>(
    stats: &'s mut Stats,
    out: &'s mut dyn FnMut(&Finding),
) -> impl FnMut(&Finding) + 's {
    move |f| {
        stats.findings[f.kind as usize] += 1;
        out(f)
    }
}

/// A finding about one node.
fn node_finding(
    kind: Kind,
    btree: u32,
    level: u8,
    root_level: u8,
    node: Option<NodeAt>,
) -> Finding {
    let mut f = Finding::new(kind);
    f.btree = Some(btree);
    f.level = level;
    f.root_level = root_level;
    f.node = node;
    f
}

fn has_ptrs(k: &Bkey, v: &[u8]) -> bool {
    BtreePtr::decode(k.typ, v).is_some_and(|bp| bp.ptrs().next().is_some())
}

fn node_at(k: &Bkey, v: &[u8], min: Option<Bpos>) -> NodeAt {
    let first = BtreePtr::decode(k.typ, v).and_then(|bp| bp.ptrs().next());
    NodeAt {
        max: k.p,
        min: min
            .or_else(|| BtreePtrV2::min_key_of(k.typ, v))
            .unwrap_or(Bpos::MIN),
        dev: first.map(|p| p.dev).unwrap_or(0),
        sector: first.map(|p| p.offset).unwrap_or(0),
    }
}

/// Calls `f` for every leaf key of `btree`; `Ok(false)` when a node could not be
/// read (its keys are missing).
pub fn leaf_keys(
    src: &dyn Source,
    btree: u32,
    f: &mut dyn FnMut(&Bkey, &[u8]),
) -> Result<bool, Stopped> {
    let mut ok = true;
    let mut r = Ok(());
    src.root(btree, &mut |level, k, v| {
        if has_ptrs(k, v) {
            r = leaf_keys_under(src, btree, level, k, v, f, &mut ok);
        }
    });
    r.map(|()| ok)
}

fn leaf_keys_under(
    src: &dyn Source,
    btree: u32,
    level: u8,
    k: &Bkey,
    v: &[u8],
    f: &mut dyn FnMut(&Bkey, &[u8]),
    ok: &mut bool,
) -> Result<(), Stopped> {
    if src.stopping() {
        return Err(Stopped);
    }
    let mut r = Ok(());
    let res = src.node(btree, level, k, v, &mut |ck, cv| {
        if r.is_err() {
            return;
        }
        if level == 0 {
            f(ck, cv);
        } else if BtreePtr::decode(ck.typ, cv).is_some() {
            r = leaf_keys_under(src, btree, level - 1, ck, cv, f, ok);
        }
    });
    if res.is_err() {
        *ok = false;
    }
    r
}
