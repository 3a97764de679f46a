// SPDX-License-Identifier: GPL-2.0

//! An opened filesystem: its devices, superblock, journal (btree roots and the keys
//! not yet in the btrees), node cache and read workqueue. All decisions are the
//! format core's; this file does the IO and keeps the results.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex};
use kernel::workqueue::{HasWork, Queue, WorkItem};

use crate::bdev::BlockDev;
use crate::btree::cache::NodeCache;
use crate::btree::write::{WriteType, WRITE_TYPES};
use crate::format::bkey::{Bkey, BKEY_U64S};
use crate::format::bpos::Bpos;
use crate::format::fs::tree::{Tree, ROOT_SUBVOL};
use crate::format::ids;
use crate::format::journal::keys::{self as jkeys, JournalKey};
use crate::format::journal::read as jread;
use crate::format::sb::{self, format as sbf, Sb};
use crate::format::text::DevNames;
use crate::hash::KernelHashes;
use crate::shim;

/// Bytes of a btree pointer value we keep (a `btree_ptr_v2` with four replicas
/// needs 72).
pub(crate) const PTR_VAL_MAX: usize = 128;

/// A btree pointer key with its value, held by value.
#[derive(Clone, Copy)]
pub(crate) struct PtrKey {
    pub(crate) k: Bkey,
    v: [u8; PTR_VAL_MAX],
    vlen: usize,
}

impl PtrKey {
    /// `None` when the value is too long to be a btree pointer.
    pub(crate) fn new(k: Bkey, v: &[u8]) -> Option<Self> {
        let mut p = PtrKey {
            k,
            v: [0; PTR_VAL_MAX],
            vlen: v.len(),
        };
        p.v.get_mut(..v.len())?.copy_from_slice(v);
        Some(p)
    }
    pub(crate) fn val(&self) -> &[u8] {
        &self.v[..self.vlen]
    }
}

/// A btree root: its level and pointer.
#[derive(Clone, Copy)]
pub(crate) struct Root {
    pub(crate) level: u8,
    pub(crate) ptr: PtrKey,
}

/// Where the newest journal entry found lies: the next one goes after it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JournalPos {
    /// Member index of the device holding it.
    pub(crate) dev: usize,
    /// Index of its bucket in that device's journal ring.
    pub(crate) bucket_idx: u64,
    /// Sector in the bucket where it starts.
    pub(crate) offset: u32,
    /// Its length in sectors.
    pub(crate) sectors: u32,
    pub(crate) seq: u64,
}

/// This filesystem's entry among those open (shim.c's claims): a filesystem that
/// writes is the only one open on its devices when it opens. Released once, at
/// shutdown or when dropped.
pub(crate) struct Claim(AtomicPtr<core::ffi::c_void>);

impl Claim {
    fn new(uuid: &[u8; 16], writable: bool) -> Result<Claim> {
        let mut err = 0;
        // SAFETY: `uuid` is 16 readable bytes; `err` a valid out pointer.
        let p = unsafe { shim::bch_rs_claim(uuid.as_ptr(), c_int::from(writable), &mut err) };
        if p.is_null() {
            return Err(Error::from_errno(err));
        }
        Ok(Claim(AtomicPtr::new(p)))
    }

    pub(crate) fn release(&self) {
        let p = self.0.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from bch_rs_claim and is released once (swapped out).
            unsafe { shim::bch_rs_unclaim(p) };
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release();
    }
}

/// A jset's bytes; journal keys name their values by index into these.
pub(crate) struct Jbuf(pub(crate) KVVec<u8>);

impl AsRef<[u8]> for Jbuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The error of a commit refused because the filesystem is frozen (EAGAIN: a
/// later pass writes it).
pub(crate) fn frozen_errno() -> Error {
    EAGAIN
}

/// One mounted filesystem.
pub(crate) struct Fs {
    /// Devices by member index.
    pub(crate) devs: KVec<Option<BlockDev>>,
    /// Each device's own superblock by member index (its journal buckets).
    pub(crate) dev_sbs: KVec<Option<KVVec<u8>>>,
    /// The superblock with the highest seq.
    pub(crate) sb: KVVec<u8>,
    /// External UUID, as `show-super` prints it.
    pub(crate) uuid: CString,
    /// Btree roots by id; a commit replaces them (readers copy one out).
    roots: Pin<KBox<Mutex<KVec<Option<Root>>>>>,
    /// What the next commit starts from; held for a whole commit.
    pub(crate) wstate: Pin<KBox<Mutex<WriteState>>>,
    /// Jsets replayed, in seq order; journal keys point into them.
    pub(crate) jsets: KVec<Jbuf>,
    /// Keys not yet in the btrees: sorted, newest per position.
    pub(crate) journal_keys: KVec<JournalKey>,
    pub(crate) blacklist: KVec<(u64, u64)>,
    pub(crate) clean: bool,
    pub(crate) journal_seq: u64,
    /// The newest journal entry found, blacklisted or not.
    pub(crate) journal_newest: Option<JournalPos>,
    /// Every journal entry found: its seq, device and ring index of its bucket.
    pub(crate) journal_found: KVec<(u64, usize, u64)>,
    /// First seq replayed (a filesystem not shut down cleanly).
    pub(crate) journal_start: u64,
    /// The devices were opened for writing (a repair at mount).
    pub(crate) writable: bool,
    /// A write failed while mounted: nothing more is written (emergency read-only).
    pub(crate) write_error: AtomicBool,
    /// Freezes not yet thawed, and a remount read-only: while either holds, no
    /// commit starts (each is set under `wstate`, so a commit in progress ends
    /// first). See [`Fs::writes_held`].
    pub(crate) frozen: AtomicU32,
    pub(crate) remounted_ro: AtomicBool,
    /// Bucket generations per device, from the alloc btree; set once at open.
    gens: UnsafeCell<KVec<KVVec<u8>>>,
    gens_ready: AtomicBool,
    pub(crate) cache: NodeCache,
    /// Readahead's data bios.
    pub(crate) data_stats: crate::data::DataStats,
    /// The mounted subvolume's snapshot and root directory inode, set once at open.
    snapshot: AtomicU32,
    root_inum: AtomicU64,
    /// Where node reads complete; null once shut down.
    wq: AtomicPtr<shim::workqueue_struct>,
    /// Set at unmount: no new reads start.
    pub(crate) dying: AtomicBool,
    /// The mount's options.
    pub(crate) opts: MountOpts,
    claim: Claim,
    /// Node writes by type (`btree_write_stats`).
    pub(crate) write_stats: WriteStats,
}

/// Node writes per [`WriteType`]: how many and their bytes.
#[derive(Default)]
pub(crate) struct WriteStats {
    nr: [AtomicU64; 5],
    bytes: [AtomicU64; 5],
}

impl WriteStats {
    /// Adds `o`'s counts (a filesystem opened again after a repair keeps them).
    pub(crate) fn absorb(&self, o: &WriteStats) {
        for i in 0..self.nr.len() {
            let r = Ordering::Relaxed;
            self.nr[i].fetch_add(o.nr[i].load(r), r);
            self.bytes[i].fetch_add(o.bytes[i].load(r), r);
        }
    }

    pub(crate) fn add(&self, t: WriteType, bytes: u64) {
        self.nr[t as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[t as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Upstream's `btree_write_stats` text: per type, the number of writes and
    /// their average size.
    pub(crate) fn to_text(&self, pb: &mut crate::format::text::Pb<'_, '_>) {
        use core::fmt::Write as _;
        // Upstream's tabstops: 20 and 10 columns, left aligned.
        let _ = writeln!(pb, "{:<20}{:<10}size", "", "nr");
        for (t, name) in WRITE_TYPES {
            let nr = self.nr[t as usize].load(Ordering::Relaxed);
            let bytes = self.bytes[t as usize].load(Ordering::Relaxed);
            let avg = bytes.checked_div(nr).unwrap_or(0);
            let mut label = [0u8; 24];
            let n = name.len().min(23);
            label[..n].copy_from_slice(&name.as_bytes()[..n]);
            label[n] = b':';
            let label = core::str::from_utf8(&label[..=n]).unwrap_or("?");
            let _ = writeln!(pb, "{:<20}{:<10}{}", label, nr, Human(avg));
        }
    }
}

/// Bytes in upstream's human readable form (`prt_human_readable_u64`).
struct Human(u64);

impl core::fmt::Display for Human {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut b = [0u8; 24];
        let mut w = crate::format::printbuf::FixedBuf::new(&mut b);
        {
            let mut pb: crate::format::text::Pb<'_, '_> =
                crate::format::printbuf::Printbuf::new(&mut w);
            crate::format::sb::text::prt_human_readable_u64(&mut pb, self.0);
        }
        f.pad(core::str::from_utf8(w.as_bytes()).unwrap_or("?"))
    }
}

/// What commits change and the next one starts from: the superblocks as last
/// written and where the journal ends.
pub(crate) struct WriteState {
    /// Each device's superblock by member index, as last written (or read).
    pub(crate) dev_sbs: KVec<Option<KVVec<u8>>>,
    /// The newest journal entry written (or found).
    pub(crate) journal_newest: Option<JournalPos>,
    /// The newest seq replayed or written.
    pub(crate) journal_seq: u64,
    /// Marked clean: the journal is not replayed at mount.
    pub(crate) clean: bool,
}

impl WriteState {
    /// The superblock with the highest seq.
    pub(crate) fn sb(&self) -> Option<Sb<'_>> {
        self.dev_sbs
            .iter()
            .flatten()
            .map(|b| Sb { b })
            .max_by_key(|s| s.seq())
    }
}

/// Mount options the filesystem keeps (the `BCH_RS_OPT_*` bits of `shim.h`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MountOpts {
    /// `fsck`: a gc pass checks the filesystem as it is mounted, whatever the
    /// `gc_at_mount` parameter says.
    pub(crate) fsck: bool,
    /// `fix_errors`: what that pass finds is repaired before the mount completes.
    pub(crate) fix_errors: bool,
    /// `nochanges`: nothing is written, whatever else is asked.
    pub(crate) nochanges: bool,
}

impl MountOpts {
    /// From the option bits the C side collected.
    pub(crate) fn from_bits(b: u32) -> MountOpts {
        MountOpts {
            fsck: b & shim::BCH_RS_OPT_FSCK != 0,
            fix_errors: b & shim::BCH_RS_OPT_FIX_ERRORS != 0,
            nochanges: b & shim::BCH_RS_OPT_NOCHANGES != 0,
        }
    }

    /// Whether a mount with these options (read-only or not) writes, or why it is
    /// refused: only a repair writes, and only on a read-write mount.
    fn writes(&self, read_only: bool) -> Result<bool> {
        if self.fix_errors && !self.fsck {
            pr_err!("fix_errors repairs what the fsck pass finds: give it with fsck\n");
            return Err(EINVAL);
        }
        if self.fix_errors && read_only && !self.nochanges {
            pr_err!(
                "fix_errors writes its repairs: mount read-write (without ro), or add nochanges to only log them\n"
            );
            return Err(EINVAL);
        }
        let repairs = self.fix_errors && !self.nochanges;
        if !read_only && !repairs {
            pr_err!(
                "read-write mounts are not supported yet: mount with -o ro (or -o fsck,fix_errors to repair)\n"
            );
            return Err(EROFS);
        }
        Ok(!read_only)
    }
}

// SAFETY: `gens` is written once during `open`, before the filesystem is shared
// with any other thread (gens_ready orders it); everything else is Sync.
unsafe impl Sync for Fs {}
// SAFETY: all fields can move between threads.
unsafe impl Send for Fs {}

impl Fs {
    /// The external UUID as text.
    pub(crate) fn uuid(&self) -> &str {
        self.uuid.to_str().unwrap_or("?")
    }

    pub(crate) fn sb(&self) -> Sb<'_> {
        Sb { b: &self.sb }
    }

    /// The read completion workqueue.
    pub(crate) fn wq(&self) -> Option<&kernel::workqueue::Queue> {
        let p = self.wq.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from alloc_workqueue and is destroyed only by `shutdown`,
        // which first waits for every read to finish (no caller is left).
        Some(unsafe { kernel::workqueue::Queue::from_raw(p.cast()) })
    }

    /// From a bio's endio (interrupt context): queues the work item `op` of a
    /// read or write on the workqueue of its filesystem (`fs_of(op)`), taking no
    /// reference to the filesystem: dropping the last one here would shut it down
    /// in interrupt context.
    pub(crate) fn queue_io<T>(op: Arc<T>, fs_of: fn(&T) -> &Fs)
    where
        T: WorkItem<Pointer = Arc<T>> + HasWork<T> + Send + Sync + 'static,
    {
        let wq = fs_of(&op).wq().map(core::ptr::from_ref::<Queue>);
        match wq {
            Some(wq) => {
                // SAFETY: the queue is destroyed only at shutdown, after every IO
                // ended: each has a waiter until its work item has run (`get_node`
                // for a node read, the file read for data, the writer for a node
                // write: a VFS call, the mount, the gc thread or a debugfs reader,
                // all done by then).
                let _ = unsafe { &*wq }.enqueue(op);
            }
            // Cannot happen: the queue outlives every IO. Never drop the op here.
            None => {
                let _ = kernel::workqueue::system().enqueue(op);
            }
        }
    }

    pub(crate) fn is_blacklisted(&self, seq: u64) -> bool {
        self.blacklist.iter().any(|&(s, e)| seq >= s && seq < e)
    }

    pub(crate) fn dev(&self, i: u32) -> Option<&BlockDev> {
        self.devs.get(i as usize).and_then(|d| d.as_ref())
    }

    /// Unmount: no new reads, wait for the ones in flight, free the cache.
    pub(crate) fn shutdown(&self) {
        self.dying.store(true, Ordering::Release);
        let wq = self.wq.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !wq.is_null() {
            // SAFETY: allocated in `open`, swapped out above so destroyed once;
            // destroy_workqueue drains the read work still queued.
            unsafe { shim::bch_rs_destroy_workqueue(wq) };
        }
        self.cache.shrink_all();
        self.claim.release();
    }

    /// Opens the filesystem on the devices of `source` (paths separated by `:`).
    pub(crate) fn open(source: &CStr, read_only: bool, opts: MountOpts) -> Result<Arc<Fs>> {
        let writable = opts.writes(read_only)?;
        let src = source.to_str().map_err(|_| EINVAL)?;
        let mut devs: KVec<Option<BlockDev>> = KVec::new();
        // Each device's own superblock (its member index and journal buckets), and
        // which one has the highest seq.
        let mut dev_sbs: KVec<Option<KVVec<u8>>> = KVec::new();
        let mut best: Option<(usize, u64)> = None;
        let mut uuid: Option<[u8; 16]> = None;
        for path in src.split(':').filter(|p| !p.is_empty()) {
            let cpath = CString::try_from_fmt(fmt!("{}", path))?;
            let dev = BlockDev::open(&cpath, writable).inspect_err(|e| {
                pr_err!("{}: cannot open: error {}\n", path, e.to_errno());
            })?;
            let sbb = read_sb(&dev, path)?;
            let s = Sb { b: &sbb };
            if *uuid.get_or_insert(s.uuid().0) != s.uuid().0 {
                pr_err!("{}: belongs to another filesystem than {}\n", path, src);
                return Err(EINVAL);
            }
            let idx = s.dev_idx() as usize;
            while devs.len() <= idx {
                devs.push(None, GFP_KERNEL)?;
                dev_sbs.push(None, GFP_KERNEL)?;
            }
            if devs[idx].is_some() {
                pr_err!("{}: member {} given twice\n", path, idx);
                return Err(EINVAL);
            }
            if best.is_none_or(|(_, seq)| s.seq() > seq) {
                best = Some((idx, s.seq()));
            }
            devs[idx] = Some(dev);
            dev_sbs[idx] = Some(sbb);
        }
        let Some(best) = best.and_then(|(i, _)| dev_sbs[i].as_ref()) else {
            pr_err!("no device given\n");
            return Err(EINVAL);
        };
        let mut sbb = KVVec::new();
        sbb.extend_from_slice(best, GFP_KERNEL)?;
        let s = Sb { b: &sbb };
        let claim = Claim::new(&s.uuid().0, writable).inspect_err(|_| {
            pr_err!(
                "{}: busy: the filesystem is mounted already; a mount that repairs (fix_errors) must be its only one\n",
                src
            )
        })?;
        let mut ub = [0u8; 40];
        let mut w = crate::format::printbuf::FixedBuf::new(&mut ub);
        {
            use core::fmt::Write as _;
            let mut pb: crate::format::text::Pb<'_, '_> =
                crate::format::printbuf::Printbuf::new(&mut w);
            let _ = write!(pb, "{}", s.user_uuid());
        }
        let uuid_str = core::str::from_utf8(w.as_bytes()).map_err(|_| EINVAL)?;
        let uuid = CString::try_from_fmt(fmt!("{}", uuid_str))?;
        for i in 0..s.nr_devices() as usize {
            let present = devs.get(i).is_some_and(|d| d.is_some());
            if s.member(i).is_some_and(|m| m.exists()) && !present {
                pr_err!(
                    "{}: member device {} missing: give every device, separated by ':'\n",
                    uuid_str,
                    i
                );
                return Err(ENXIO);
            }
            // A device smaller than its member says (a truncated image) would fail
            // reads everywhere: refuse it once, by name.
            if let (Some(m), Some(Some(d))) = (s.member(i).filter(|m| m.exists()), devs.get(i)) {
                let need = m.nbuckets().saturating_mul(u64::from(m.bucket_size()));
                if d.sectors() < need {
                    pr_err!(
                        "{}: {}: device is {} sectors but member {} needs {} ({} buckets): truncated?\n",
                        uuid_str,
                        d.name(),
                        d.sectors(),
                        i,
                        need,
                        m.nbuckets()
                    );
                    return Err(EINVAL);
                }
            }
        }
        let mut roots = KVec::new();
        for _ in 0..ids::BTREE_ID_NR {
            roots.push(None, GFP_KERNEL)?;
        }
        let roots = KBox::pin_init(kernel::new_mutex!(roots), GFP_KERNEL)?;
        let wstate = KBox::pin_init(
            kernel::new_mutex!(WriteState {
                dev_sbs: KVec::new(),
                journal_newest: None,
                journal_seq: 0,
                clean: false,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: the name is a NUL-terminated literal; the queue is destroyed in
        // `shutdown` or below on failure.
        let wq = unsafe {
            shim::bch_rs_alloc_workqueue(kernel::c_str!("bcachefs_rs_read").as_char_ptr())
        };
        if wq.is_null() {
            return Err(ENOMEM);
        }
        let mut fs = Fs {
            devs,
            dev_sbs,
            sb: sbb,
            uuid,
            roots,
            wstate,
            jsets: KVec::new(),
            journal_keys: KVec::new(),
            blacklist: KVec::new(),
            clean: false,
            journal_seq: 0,
            journal_newest: None,
            journal_found: KVec::new(),
            journal_start: 0,
            writable,
            write_error: AtomicBool::new(false),
            frozen: AtomicU32::new(0),
            remounted_ro: AtomicBool::new(false),
            gens: UnsafeCell::new(KVec::new()),
            gens_ready: AtomicBool::new(false),
            cache: NodeCache::new().inspect_err(|_| {
                // SAFETY: allocated just above and not yet shared.
                unsafe { shim::bch_rs_destroy_workqueue(wq) };
            })?,
            data_stats: Default::default(),
            snapshot: AtomicU32::new(0),
            root_inum: AtomicU64::new(0),
            wq: AtomicPtr::new(wq),
            dying: AtomicBool::new(false),
            opts,
            claim,
            write_stats: WriteStats::default(),
        };
        let r = fs.read_journal();
        if let Err(e) = r {
            fs.shutdown();
            return Err(e);
        }
        fs.fake_empty_roots();
        if let Err(e) = fs.init_wstate() {
            fs.shutdown();
            return Err(e);
        }
        let fs = Arc::new(fs, GFP_KERNEL)?;
        if let Err(e) = fs.load_gens().and_then(|()| fs.open_subvol()) {
            fs.shutdown();
            return Err(e);
        }
        pr_info!(
            "{}: opened {} device(s), {} at journal seq {}, {} journal keys\n",
            fs.uuid(),
            fs.devs.iter().filter(|d| d.is_some()).count(),
            if fs.clean { "clean" } else { "unclean" },
            fs.journal_seq,
            fs.journal_keys.len()
        );
        Ok(fs)
    }

    /// A write failed while mounted: no more writes, one log line.
    pub(crate) fn emergency_read_only(&self) {
        if !self.write_error.swap(true, Ordering::AcqRel) {
            pr_err!(
                "{}: emergency read-only: a write failed; nothing more is written (what is on disk is consistent)\n",
                self.uuid()
            );
        }
    }

    /// Why no commit may start now, if one may not: the filesystem is frozen
    /// ([`frozen_errno`]) or was remounted read-only (EROFS). Called with `wstate`
    /// held, under which both are set.
    pub(crate) fn writes_held(&self) -> Result {
        if self.frozen.load(Ordering::Acquire) > 0 {
            return Err(frozen_errno());
        }
        if self.remounted_ro.load(Ordering::Acquire) {
            return Err(EROFS);
        }
        Ok(())
    }

    /// The root of `btree`.
    pub(crate) fn root(&self, btree: u32) -> Option<Root> {
        self.roots.lock().get(btree as usize).copied().flatten()
    }

    /// Every root, copied.
    pub(crate) fn roots(&self) -> Result<KVec<Option<Root>>> {
        let mut out = KVec::new();
        out.extend_from_slice(&self.roots.lock(), GFP_KERNEL)?;
        Ok(out)
    }

    /// Replaces the roots (a commit's new ones): walks that start afterwards use
    /// them; those in progress finish on the old nodes, which stay valid.
    pub(crate) fn set_roots_to(&self, new: &[Option<Root>]) {
        let mut g = self.roots.lock();
        for (slot, r) in g.iter_mut().zip(new) {
            *slot = *r;
        }
    }

    fn init_wstate(&mut self) -> Result {
        let mut dev_sbs = KVec::new();
        for d in self.dev_sbs.iter() {
            let copy = match d {
                Some(b) => {
                    let mut c = KVVec::new();
                    c.extend_from_slice(b, GFP_KERNEL)?;
                    Some(c)
                }
                None => None,
            };
            dev_sbs.push(copy, GFP_KERNEL)?;
        }
        let mut ws = self.wstate.lock();
        ws.dev_sbs = dev_sbs;
        ws.journal_newest = self.journal_newest;
        ws.journal_seq = self.journal_seq;
        ws.clean = self.clean;
        Ok(())
    }

    fn fake_empty_roots(&mut self) {
        for r in self.roots.lock().iter_mut().filter(|r| r.is_none()) {
            let k = Bkey {
                u64s: BKEY_U64S as u8,
                format: 1,
                typ: ids::KeyType::BtreePtr as u8,
                p: Bpos::MAX,
                ..Default::default()
            };
            *r = PtrKey::new(k, &[]).map(|ptr| Root { level: 0, ptr });
        }
    }

    fn set_roots(roots: &mut [Option<Root>], entries: &[u8]) {
        for (btree, level, k, v) in sb::btree_roots(entries) {
            if let (Some(slot), Some(ptr)) = (roots.get_mut(btree as usize), PtrKey::new(k, v)) {
                *slot = Some(Root { level, ptr });
            }
        }
    }

    /// Reads every device's journal buckets (as each device's own superblock lists
    /// them); keeps one copy of each jset, then replays as the core decides.
    fn read_journal(&mut self) -> Result {
        let s = Sb { b: &self.sb };
        let (magic, block) = (s.jset_magic(), s.block_sectors());
        for r in s.blacklist() {
            self.blacklist.push(r, GFP_KERNEL)?;
        }
        // (seq, last_seq, no_flush, bytes), sorted by seq.
        let mut found: KVec<(u64, u64, bool, KVVec<u8>)> = KVec::new();
        let mut newest: Option<JournalPos> = None;
        let mut buf = KVVec::new();
        for (dev, ds) in self.devs.iter().zip(&self.dev_sbs) {
            let (Some(dev), Some(ds)) = (dev, ds) else {
                continue;
            };
            let ds = Sb { b: ds };
            let Some(m) = ds.member(ds.dev_idx() as usize) else {
                continue;
            };
            let bytes = (m.bucket_size() as usize) << 9;
            buf.clear();
            buf.resize(bytes, 0u8, GFP_KERNEL)?;
            let dev_idx = ds.dev_idx() as usize;
            let mut ring_idx = 0u64;
            for (start, nr) in ds.journal_buckets() {
                for bucket in start..start.saturating_add(nr) {
                    let bucket_idx = ring_idx;
                    ring_idx += 1;
                    let sector = bucket.saturating_mul(u64::from(m.bucket_size()));
                    if let Err(e) = dev.read(sector, &mut buf) {
                        pr_err!(
                            "{}: {}: journal bucket {} unreadable: error {}\n",
                            self.uuid(),
                            dev.name(),
                            bucket,
                            e.to_errno()
                        );
                        continue;
                    }
                    let mut err = Ok(());
                    jread::walk_bucket(&buf, magic, block, &KernelHashes, &mut |off, j| {
                        if err.is_err() {
                            return;
                        }
                        if let Err(e) = self
                            .journal_found
                            .push((j.seq, dev_idx, bucket_idx), GFP_KERNEL)
                        {
                            err = Err(e.into());
                            return;
                        }
                        if newest.is_none_or(|n: JournalPos| j.seq > n.seq) {
                            newest = Some(JournalPos {
                                dev: dev_idx,
                                bucket_idx,
                                offset: off,
                                sectors: j.sectors,
                                seq: j.seq,
                            });
                        }
                        err = store_jset(&mut found, &mut self.blacklist, &buf, off, j);
                    });
                    err?;
                }
            }
        }
        self.journal_newest = newest;
        let bl = &self.blacklist;
        let is_bl = |seq: u64| bl.iter().any(|&(s, e)| seq >= s && seq < e);
        let range = jread::replay_range(
            found
                .iter()
                .filter(|j| !is_bl(j.0))
                .map(|j| (j.0, j.1, j.2)),
        );
        let clean = s.clean_section().map(|(seq, _)| seq);
        let r = match jread::plan_replay(clean, range) {
            Some(jread::Replay::Clean { seq }) => {
                self.clean = true;
                self.journal_seq = seq;
                if let Some((_, e)) = s.clean_section() {
                    Self::set_roots(&mut self.roots.lock(), e);
                }
                return Ok(());
            }
            Some(jread::Replay::Dirty(r)) => r,
            None => {
                pr_err!("{}: no valid journal entries found\n", self.uuid());
                return Err(EINVAL);
            }
        };
        self.journal_seq = r.end;
        self.journal_start = r.start;
        let mut keys = KVec::new();
        let mut order = 0u32;
        let mut roots_from = None;
        let mut err = Ok(());
        for (seq, _, _, raw) in found {
            if seq < r.start || seq > r.end || self.is_blacklisted(seq) {
                continue;
            }
            let idx = self.jsets.len() as u32;
            if let Ok(j) = jread::parse_jset(&raw, magic, block, None) {
                jkeys::jset_keys(&j, idx, 0, &mut order, &mut |k| {
                    if err.is_ok() {
                        err = keys.push(k, GFP_KERNEL);
                    }
                });
            }
            if seq == r.end {
                roots_from = Some(idx as usize);
            }
            self.jsets.push(Jbuf(raw), GFP_KERNEL)?;
        }
        err?;
        if let Some(raw) = roots_from.and_then(|i| self.jsets.get(i)) {
            if let Ok(j) = jread::parse_jset(&raw.0, magic, block, None) {
                Self::set_roots(&mut self.roots.lock(), j.entries);
            }
        }
        jkeys::sort(&mut keys);
        let n = jkeys::dedup_newest(&mut keys);
        keys.truncate(n);
        self.journal_keys = keys;
        Ok(())
    }

    /// Bucket generations from the alloc btree (journal overlaid): pointers into
    /// reused buckets print ` stale=`.
    fn load_gens(self: &Arc<Self>) -> Result {
        let s = self.sb();
        let mut gens: KVec<KVVec<u8>> = KVec::new();
        for d in 0..self.devs.len() {
            let n = s
                .member(d)
                .filter(|m| m.exists())
                .map(|m| m.nbuckets().min(1 << 32) as usize)
                .unwrap_or(0);
            gens.push(KVVec::from_elem(0u8, n, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        crate::btree::iter::for_each_leaf_key(self, ids::btree::ALLOC, &mut |k, v| {
            if k.typ == ids::KeyType::AllocV4 as u8 {
                let a = crate::format::alloc::format::AllocV4::read(v);
                if let Some(g) = gens
                    .get_mut(k.p.inode as usize)
                    .and_then(|g| g.get_mut(k.p.offset as usize))
                {
                    *g = a.gen;
                }
            }
        })?;
        // SAFETY: only `open` writes `gens`, once, before the filesystem is shared:
        // no reader exists yet (gens_ready is still false).
        unsafe { *self.gens.get() = gens };
        self.gens_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Finds the root subvolume: its snapshot and root directory.
    fn open_subvol(self: &Arc<Self>) -> Result {
        let keys = crate::vfs::FsKeys(self);
        match Tree::open(&keys, &KernelHashes, ROOT_SUBVOL)? {
            Some((t, root)) => {
                self.snapshot.store(t.snapshot, Ordering::Relaxed);
                self.root_inum.store(root, Ordering::Relaxed);
                Ok(())
            }
            None => {
                pr_err!(
                    "{}: no root subvolume (subvolume {})\n",
                    self.uuid(),
                    ROOT_SUBVOL
                );
                Err(EINVAL)
            }
        }
    }

    /// The mounted subvolume's snapshot.
    pub(crate) fn snapshot(&self) -> u32 {
        self.snapshot.load(Ordering::Relaxed)
    }

    /// The mounted subvolume's root directory.
    pub(crate) fn root_inum(&self) -> u64 {
        self.root_inum.load(Ordering::Relaxed)
    }

    fn gens(&self) -> Option<&KVec<KVVec<u8>>> {
        if !self.gens_ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: written once before gens_ready was set (release), seen set above
        // (acquire): no longer written.
        Some(unsafe { &*self.gens.get() })
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Keeps the first copy of jset `j` found at sector `off` of `buf`, and the
/// blacklist entries it carries.
fn store_jset(
    found: &mut KVec<(u64, u64, bool, KVVec<u8>)>,
    blacklist: &mut KVec<(u64, u64)>,
    buf: &[u8],
    off: u32,
    j: &jread::Jset<'_>,
) -> Result {
    for e in j.iter() {
        if let Some(r) = jread::entry_blacklist(&e) {
            blacklist.push(r, GFP_KERNEL)?;
        }
    }
    let at = match found.binary_search_by_key(&j.seq, |f| f.0) {
        Ok(_) => return Ok(()),
        Err(at) => at,
    };
    let start = (off as usize) << 9;
    let len = jread::JSET_BYTES + j.entries.len();
    let bytes = buf.get(start..start + len).ok_or(EINVAL)?;
    let mut copy = KVVec::new();
    copy.extend_from_slice(bytes, GFP_KERNEL)?;
    found.reserve(1, GFP_KERNEL)?;
    found
        .insert_within_capacity(at, (j.seq, j.last_seq, j.no_flush(), copy))
        .map_err(|_| ENOMEM)
}

/// Why one superblock copy could not be used.
enum CopyError {
    Io(Error),
    Bad(sb::SbError),
}

/// One copy of a device's superblock at `sector`, with the checks one copy gets
/// ([`Sb::parse_copy`]).
fn read_sb_copy(dev: &BlockDev, sector: u64) -> core::result::Result<KVVec<u8>, CopyError> {
    let round = |n: usize| (n + 511) & !511;
    let mut b = KVVec::from_elem(0u8, round(sbf::SB_FIELDS), GFP_KERNEL)
        .map_err(|e| CopyError::Io(e.into()))?;
    dev.read(sector, &mut b).map_err(CopyError::Io)?;
    let n = Sb::size_needed(&b).map_err(CopyError::Bad)?;
    b.resize(round(n), 0, GFP_KERNEL)
        .map_err(|e| CopyError::Io(e.into()))?;
    dev.read(sector, &mut b).map_err(CopyError::Io)?;
    b.truncate(n);
    Sb::parse_copy(&b, &KernelHashes).map_err(CopyError::Bad)?;
    Ok(b)
}

/// Reads a device's superblock as upstream's mount does: the primary copy, the
/// layout from it (or from its own sector when the primary fails), every backup
/// copy with the highest seq winning (the core's [`sb::SbPick`]), then the winner
/// validated. A failing primary is logged, and so is a backup taking over.
fn read_sb(dev: &BlockDev, name: &str) -> Result<KVVec<u8>> {
    let primary = read_sb_copy(dev, sbf::SB_SECTOR);
    match &primary {
        Err(CopyError::Io(e)) => {
            pr_err!("{}: superblock read failed: error {}\n", name, e.to_errno())
        }
        Err(CopyError::Bad(e)) => pr_err!("{}: bad superblock: {}\n", name, e.as_str()),
        Ok(_) => {}
    }
    let mut lb = [0u8; sbf::LAYOUT_BYTES];
    match &primary {
        Ok(b) => lb.copy_from_slice(&b[sbf::SB_LAYOUT..sbf::SB_LAYOUT + sbf::LAYOUT_BYTES]),
        Err(_) => {
            let mut sec = KVVec::from_elem(0u8, 512, GFP_KERNEL)?;
            if let Err(e) = dev.read(sbf::LAYOUT_SECTOR, &mut sec) {
                pr_err!(
                    "{}: superblock layout read failed: error {}\n",
                    name,
                    e.to_errno()
                );
                return Err(e);
            }
            lb.copy_from_slice(&sec[..sbf::LAYOUT_BYTES]);
        }
    }
    // The primary's own error code when no copy can be used.
    let fail = |primary: &core::result::Result<KVVec<u8>, CopyError>| match primary {
        Err(CopyError::Io(e)) => *e,
        _ => EINVAL,
    };
    let layout = match sb::Layout::parse(&lb) {
        Ok(l) => l,
        Err(e) => {
            pr_err!("{}: {}\n", name, e.as_str());
            return Err(fail(&primary));
        }
    };
    let seq = |b: &KVVec<u8>| Sb { b }.seq();
    let first = layout.sb_offset(0).unwrap_or(sbf::SB_SECTOR);
    let mut pick = sb::SbPick::new(first, primary.as_ref().ok().map(seq));
    let mut best = None;
    for i in 1..usize::from(layout.nr_superblocks()) {
        let Some(off) = layout.sb_offset(i) else {
            break;
        };
        match read_sb_copy(dev, off) {
            Ok(b) => {
                if pick.offer(off, Some(seq(&b))) {
                    best = Some(b);
                }
            }
            Err(CopyError::Io(e)) => pr_warn!(
                "{}: superblock copy at sector {}: read error {}\n",
                name,
                off,
                e.to_errno()
            ),
            Err(CopyError::Bad(e)) => {
                pr_warn!(
                    "{}: superblock copy at sector {}: {}\n",
                    name,
                    off,
                    e.as_str()
                )
            }
        }
    }
    let Ok(off) = pick.best() else {
        pr_err!("{}: no valid superblock copy\n", name);
        return Err(fail(&primary));
    };
    let b = match (best, primary) {
        (Some(b), primary) => {
            // Said when the primary failed or is older (a tie between good copies,
            // the common case, takes the last copy silently, as upstream does).
            if primary.as_ref().map_or(true, |p| seq(p) < seq(&b)) {
                pr_notice!("{}: using the superblock copy at sector {}\n", name, off);
            }
            b
        }
        (None, Ok(b)) => b,
        (None, Err(e)) => return Err(fail(&Err(e))),
    };
    if let Err(e) = (Sb { b: &b }).validate() {
        pr_err!("{}: bad superblock: {}\n", name, e.as_str());
        return Err(EINVAL);
    }
    Ok(b)
}

impl DevNames for Fs {
    fn dev_name(&self, dev: u32) -> Option<&str> {
        self.dev(dev).map(|d| d.name())
    }
    fn bucket_size(&self, dev: u32) -> Option<u32> {
        let m = self.sb().member(dev as usize)?;
        m.exists().then(|| u32::from(m.bucket_size()))
    }
    fn durability(&self, dev: u32) -> u32 {
        self.sb()
            .member(dev as usize)
            .filter(|m| m.exists())
            .map(|m| u32::from(m.durability()))
            .unwrap_or(1)
    }
    fn bucket_gen(&self, dev: u32, bucket: u64) -> Option<i32> {
        let g = self.gens()?.get(dev as usize)?;
        Some(g.get(bucket as usize).map(|&g| i32::from(g)).unwrap_or(-1))
    }
    fn extent_bp_shift(&self) -> u32 {
        self.sb().extent_bp_shift()
    }
    fn shard_inode_numbers_bits(&self) -> Option<u32> {
        Some(self.sb().shard_inode_numbers_bits())
    }
}
