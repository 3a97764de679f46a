// SPDX-License-Identifier: GPL-2.0

//! Btree gc in the kernel: the format core's gc pass ([`crate::format::gc`]) over
//! the node cache, run by a per-filesystem kthread (gc.c) at mount, when kicked
//! through sysfs `internal/trigger_gc`, and every `gc_period_secs`. Findings go to
//! the kernel log (the first [`LOG_MAX`] of a pass) and, counted per kind, to
//! `internal/gc_status`. On a mount that writes (`fsck,fix_errors`), a pass after
//! the mount's own writes the oldest gens it computed (upstream's `gc_gens`)
//! through [`crate::commit`], while the filesystem is read; otherwise nothing is
//! written.

use core::fmt::Write as _;
use core::ops::ControlFlow;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::alloc::punch_freespace;
use crate::btree::cache::ReplicaError;
use crate::btree::io::get_node;
use crate::btree::iter::for_each_key;
use crate::btree::iter::for_each_leaf_key;
use crate::commit::{commit, SbChanges, Update};
use crate::format::alloc::format::AllocV4;
use crate::format::bkey::Bkey;
use crate::format::btree::read::NodeError;
use crate::format::gc::accounting::{Entry, Tally, EMPTY, TALLY_MAX};
use crate::format::gc::buckets::{oldest_gen_target, Bucket, DevBuckets};
use crate::format::gc::finding::{Finding, KINDS, KIND_NR};
use crate::format::gc::repair::with_oldest_gen;
use crate::format::gc::{sb_wants_bitmap_gc, Gc, NodeInfo, Source, Stats, Stopped};
use crate::format::ids::{self, KeyType};
use crate::format::journal::keys::AcctView;
use crate::format::printbuf::{FixedBuf, Printbuf};
use crate::format::sb::Sb;
use crate::format::text::{Pb, TextCtx};
use crate::fs::{frozen_errno, Fs, PtrKey};
use crate::repair::alloc_change;
use crate::shim;

/// Findings logged per pass; the rest are only counted.
pub(crate) const LOG_MAX: u32 = 32;

/// Nodes read through the node cache, keys with the journal replayed.
struct CacheSource<'a> {
    fs: &'a Arc<Fs>,
}

impl Source for CacheSource<'_> {
    fn root(&self, btree: u32, f: &mut dyn FnMut(u8, &Bkey, &[u8])) {
        if let Some(r) = self.fs.root(btree) {
            f(r.level, &r.ptr.k, r.ptr.val());
        }
    }

    fn node(
        &self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
        f: &mut dyn FnMut(&Bkey, &[u8]),
    ) -> core::result::Result<NodeInfo, Option<NodeError>> {
        let ptr = PtrKey::new(*k, v).ok_or(None)?;
        let n = get_node(self.fs, btree, level, &ptr).map_err(|_| None)?;
        let d = n.data().ok_or(None)?;
        let first = d.failures.iter().find_map(|(_, e)| match e {
            ReplicaError::Node(e) => Some(*e),
            _ => None,
        });
        if d.failed {
            return Err(first);
        }
        for_each_key(self.fs, btree, level, d, AcctView::Replayed, &mut |k, v| {
            f(k, v);
            ControlFlow::Continue(())
        })
        .map_err(|_| None)?;
        Ok(NodeInfo {
            min: d.min_key,
            max: d.max_key,
            bad_csum: if d.salvaged { first } else { None },
            dropped_keys: d.dropped_keys,
            data_missing: d.failures.iter().find_map(|(_, e)| match e {
                ReplicaError::Node(e @ NodeError::Incomplete { .. }) => Some(*e),
                _ => None,
            }),
        })
    }

    fn stopping(&self) -> bool {
        // SAFETY: only asks whether the current thread (the gc kthread running the
        // pass) is being stopped.
        unsafe { shim::bch_rs_gc_should_stop() != 0 }
    }
}

/// What `internal/gc_status` shows: the last finished pass, and whether one runs.
struct Status {
    passes: AtomicU64,
    stopped: AtomicU64,
    running: AtomicBool,
    start_ns: AtomicU64,
    duration_ns: AtomicU64,
    nodes: AtomicU64,
    keys: AtomicU64,
    buckets: AtomicU64,
    oldest_gen_advance: AtomicU64,
    /// Alloc keys whose oldest gen passes have written.
    oldest_gen_written: AtomicU64,
    findings: [AtomicU32; KIND_NR],
}

/// What the gc thread and the sysfs files reach through their `void *`.
struct GcState {
    fs: Arc<Fs>,
    st: Status,
    /// The next pass is the mount's `fsck` check: it writes nothing.
    fsck_pass: AtomicBool,
}

/// A running gc thread; dropping it stops the thread (waiting for a pass in
/// progress to notice) and removes the sysfs files.
pub(crate) struct GcThread {
    g: NonNull<shim::bch_rs_gc>,
    /// Pointed to by the thread and the files until `g` is stopped.
    _state: Pin<KBox<GcState>>,
}

// SAFETY: the handle is used only to stop the thread, from any thread.
unsafe impl Send for GcThread {}
// SAFETY: no method takes `&self`.
unsafe impl Sync for GcThread {}

impl GcThread {
    /// Starts the gc thread of `fs`; its first pass begins at once.
    pub(crate) fn start(fs: &Arc<Fs>) -> Result<Self> {
        let st = Status {
            passes: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            running: AtomicBool::new(false),
            start_ns: AtomicU64::new(0),
            duration_ns: AtomicU64::new(0),
            nodes: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            buckets: AtomicU64::new(0),
            oldest_gen_advance: AtomicU64::new(0),
            oldest_gen_written: AtomicU64::new(0),
            findings: core::array::from_fn(|_| AtomicU32::new(0)),
        };
        let state = KBox::pin(
            GcState {
                fs: fs.clone(),
                st,
                fsck_pass: AtomicBool::new(fs.opts.fsck),
            },
            GFP_KERNEL,
        )?;
        let mut uuid = KVec::new();
        uuid.extend_from_slice(fs.uuid().as_bytes(), GFP_KERNEL)?;
        uuid.push(0, GFP_KERNEL)?;
        let mut name = KVec::new();
        let dev = fs
            .devs
            .iter()
            .flatten()
            .next()
            .map(|d| d.name())
            .unwrap_or("?");
        name.extend_from_slice(dev.as_bytes(), GFP_KERNEL)?;
        name.push(0, GFP_KERNEL)?;
        let mut err: c_int = 0;
        let p: *const GcState = &*state;
        // SAFETY: the strings are NUL terminated and only read during the call;
        // `p` stays valid until `bch_rs_gc_stop` returns (see Drop), which is the
        // last time C can use it.
        let g = unsafe {
            shim::bch_rs_gc_start(
                p.cast_mut().cast(),
                uuid.as_ptr().cast(),
                name.as_ptr().cast(),
                c_int::from(fs.opts.fsck),
                &mut err,
            )
        };
        match NonNull::new(g) {
            Some(g) => Ok(GcThread { g, _state: state }),
            None => Err(Error::from_errno(if err < 0 { err } else { -12 })),
        }
    }
}

impl Drop for GcThread {
    fn drop(&mut self) {
        // SAFETY: `g` came from `bch_rs_gc_start` and is stopped once, here; after
        // this the thread has exited and the files are gone, so `_state` may go.
        unsafe { shim::bch_rs_gc_stop(self.g.as_ptr()) };
    }
}

fn ktime_ns() -> u64 {
    // SAFETY: reads the monotonic clock.
    unsafe { shim::bch_rs_ktime_ns() }
}

/// What a pass leaves for a repair: every finding, and each member's btree bitmap
/// (device, shift, bitmap, what `btree_bitmap_gc` would make of it).
#[derive(Default)]
pub(crate) struct Collected {
    pub(crate) findings: KVec<Finding>,
    pub(crate) bitmaps: KVec<(u32, u8, u64, Option<u64>)>,
    /// A finding could not be kept (no memory): the list is incomplete.
    pub(crate) incomplete: bool,
}

/// One pass over `fs`: findings are logged and counted into `Stats`, and kept in
/// `collect` when given; with `gens`, the alloc keys whose oldest gen the pass
/// computed differently go there with it set (a gens pass's writes). A stopped pass
/// gives the counters it had reached.
pub(crate) fn run_pass(
    fs: &Arc<Fs>,
    collect: Option<&mut Collected>,
    gens: Option<&mut KVec<Update>>,
) -> Result<(core::result::Result<(), Stopped>, Stats)> {
    let sb = fs.sb();
    let nr = sb.nr_devices() as usize;
    let mut tables: KVec<KVVec<Bucket>> = KVec::with_capacity(nr, GFP_KERNEL)?;
    for i in 0..nr {
        let n = DevBuckets::nbuckets_of(&sb, i as u32) as usize;
        tables.push(
            KVVec::from_elem(Bucket::default(), n, GFP_KERNEL)?,
            GFP_KERNEL,
        )?;
    }
    let mut devs: KVec<Option<DevBuckets<'_>>> = KVec::with_capacity(nr, GFP_KERNEL)?;
    for (i, t) in tables.iter_mut().enumerate() {
        let dev_sb = fs.dev_sbs.get(i).and_then(|b| b.as_ref()).map(|b| Sb { b });
        devs.push(
            DevBuckets::new(&sb, i as u32, &mut t[..], dev_sb.as_ref()),
            GFP_KERNEL,
        )?;
    }
    let mut slots: KVVec<Entry> = KVVec::from_elem(EMPTY, TALLY_MAX, GFP_KERNEL)?;
    let mut logged = 0u32;
    let mut kept: KVec<Finding> = KVec::new();
    let mut incomplete = false;
    let keep = collect.is_some();
    let mut out = |f: &Finding| {
        if keep && kept.push(*f, GFP_KERNEL).is_err() {
            incomplete = true;
        }
        logged += 1;
        // A repair logs every finding with what it does about it.
        if !keep && logged <= LOG_MAX {
            let mut b = [0u8; 640];
            let mut w = FixedBuf::new(&mut b);
            {
                let mut pb: Pb<'_, '_> = Printbuf::new(&mut w);
                f.to_text(&mut pb, &TextCtx { devs: &**fs });
            }
            let line = core::str::from_utf8(w.as_bytes()).unwrap_or("?");
            pr_warn!("{}: gc: {}\n", fs.uuid(), line);
        }
    };
    let (r, stats) = {
        let mut gc = Gc::new(
            &mut devs,
            Tally::new(&mut slots),
            sb.btree_node_sectors(),
            sb_wants_bitmap_gc(&sb),
            &mut out,
        );
        (gc.run(&CacheSource { fs }), gc.stats)
    };
    // Gens only from a pass that saw every pointer: a bucket whose pointers sit in
    // an unreadable node would get an oldest gen past them.
    let complete = r.is_ok() && stats.unreadable == 0;
    if let (Some(out), true) = (gens, complete) {
        let mut err = Ok(());
        let mut holes: KVec<(u32, u64)> = KVec::new();
        for_each_leaf_key(fs, ids::btree::ALLOC, &mut |k, v| {
            if k.typ != KeyType::AllocV4 as u8 || err.is_err() {
                return;
            }
            let Some(Some(d)) = devs.get(k.p.inode as usize) else {
                return;
            };
            let Some(g) = d.buckets.get(k.p.offset as usize) else {
                return;
            };
            let a = AllocV4::read(v);
            let target = oldest_gen_target(&a, g);
            if k.p.offset < d.first_bucket || a.oldest_gen == target {
                return;
            }
            let n = with_oldest_gen(&a, target);
            // A free bucket whose gen bits change moves in the freespace btree:
            // its old position is cut out once the walk is done.
            match alloc_change(fs, k, v, &a, &n, out) {
                Ok(Some(hole)) => err = holes.push(hole, GFP_KERNEL).map_err(Into::into),
                Ok(None) => {}
                Err(e) => err = Err(e),
            }
        })?;
        err?;
        if let Err(e) = punch_freespace(fs, &holes, out) {
            // The pass stands; its gens wait for a pass that can move them.
            pr_warn!(
                "{}: gc: a freespace leaf cannot be read to move a free bucket (error {}): no gens written this pass\n",
                fs.uuid(),
                e.to_errno()
            );
            out.clear();
        }
    }
    if let Some(c) = collect {
        c.findings = kept;
        c.incomplete = incomplete;
        for d in devs.iter().flatten() {
            c.bitmaps.push(
                (d.dev, d.bitmap_shift, d.bitmap, d.bitmap_after_gc()),
                GFP_KERNEL,
            )?;
        }
    }
    if !keep && logged > LOG_MAX {
        pr_warn!(
            "{}: gc: {} more findings not logged (see internal/gc_status)\n",
            fs.uuid(),
            logged - LOG_MAX
        );
    }
    Ok((r, stats))
}

/// The gc thread's pass (called from gc.c).
#[no_mangle]
pub(crate) extern "C" fn bch_rs_gc_pass(p: *mut c_void) {
    // SAFETY: `p` is the `GcState` given to `bch_rs_gc_start`, alive until the
    // thread calling this has been stopped.
    let s = unsafe { &*p.cast::<GcState>() };
    let st = &s.st;
    let t0 = ktime_ns();
    st.running.store(true, Ordering::Release);
    // The mount's fsck pass checks; later passes on a mount that writes also write
    // the oldest gens.
    let fsck_pass = s.fsck_pass.swap(false, Ordering::AcqRel);
    let write_gens = s.fs.writable
        && !s.fs.opts.nochanges
        && !fsck_pass
        && !s.fs.write_error.load(Ordering::Acquire)
        && s.fs.wstate.lock().clean;
    let mut gens = KVec::new();
    match run_pass(&s.fs, None, write_gens.then_some(&mut gens)) {
        Ok((Ok(()), stats)) => {
            let dt = ktime_ns().saturating_sub(t0);
            st.start_ns.store(t0, Ordering::Relaxed);
            st.duration_ns.store(dt, Ordering::Relaxed);
            st.nodes.store(stats.nodes, Ordering::Relaxed);
            st.keys.store(stats.keys, Ordering::Relaxed);
            st.buckets.store(stats.buckets, Ordering::Relaxed);
            st.oldest_gen_advance
                .store(stats.oldest_gen_advance, Ordering::Relaxed);
            for (a, n) in st.findings.iter().zip(stats.findings) {
                a.store(n, Ordering::Relaxed);
            }
            st.passes.fetch_add(1, Ordering::Release);
            pr_info!(
                "{}: gc pass: {} nodes, {} keys, {} buckets, {} findings in {} ms\n",
                s.fs.uuid(),
                stats.nodes,
                stats.keys,
                stats.buckets,
                stats.total(),
                dt / 1_000_000
            );
            if !gens.is_empty() {
                write_oldest_gens(&s.fs, &gens, st);
            }
        }
        Ok((Err(Stopped), stats)) => {
            st.stopped.fetch_add(1, Ordering::Relaxed);
            pr_info!(
                "{}: gc pass stopped (unmount) after {} nodes, {} ms\n",
                s.fs.uuid(),
                stats.nodes,
                ktime_ns().saturating_sub(t0) / 1_000_000
            );
        }
        Err(e) => pr_err!("{}: gc pass failed: {:?}\n", s.fs.uuid(), e),
    }
    st.running.store(false, Ordering::Release);
}

/// `internal/gc_status` (called from gc.c): the last finished pass.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_gc_status(p: *mut c_void, buf: *mut c_char, size: usize) -> isize {
    // SAFETY: `p` is the `GcState` given to `bch_rs_gc_start`; sysfs calls this only
    // while the file exists, which ends before the state is freed.
    let s = unsafe { &*p.cast::<GcState>() };
    // SAFETY: sysfs hands a buffer of `size` (PAGE_SIZE) bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    let mut w = FixedBuf::new(out);
    {
        let st = &s.st;
        let mut pb: Pb<'_, '_> = Printbuf::new(&mut w);
        let r = Ordering::Relaxed;
        let _ = write!(
            pb,
            "passes: {}\nstopped: {}\nrunning: {}\nlast_start_ns: {}\nlast_duration_ns: {}\nnodes: {}\nkeys: {}\nbuckets: {}\noldest_gen_advance: {}\noldest_gen_written: {}\n",
            st.passes.load(Ordering::Acquire),
            st.stopped.load(r),
            u8::from(st.running.load(r)),
            st.start_ns.load(r),
            st.duration_ns.load(r),
            st.nodes.load(r),
            st.keys.load(r),
            st.buckets.load(r),
            st.oldest_gen_advance.load(r),
            st.oldest_gen_written.load(r)
        );
        let total: u64 = st.findings.iter().map(|a| u64::from(a.load(r))).sum();
        let _ = writeln!(pb, "findings: {}", total);
        for (k, a) in KINDS.iter().zip(st.findings.iter()) {
            let _ = writeln!(pb, "  {}: {}", k.name(), a.load(r));
        }
    }
    w.as_bytes().len() as isize
}

/// `<uuid>/btree_write_stats` (called from gc.c): node writes by type, in
/// upstream's layout.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_write_stats(
    p: *mut c_void,
    buf: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: `p` is the `GcState` given to `bch_rs_gc_start`; sysfs calls this only
    // while the file exists, which ends before the state is freed.
    let s = unsafe { &*p.cast::<GcState>() };
    // SAFETY: sysfs hands a buffer of `size` (PAGE_SIZE) bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    let mut w = FixedBuf::new(out);
    {
        let mut pb: Pb<'_, '_> = Printbuf::new(&mut w);
        s.fs.write_stats.to_text(&mut pb);
    }
    w.as_bytes().len() as isize
}

/// Writes the oldest gens a pass computed (`gens`: the alloc keys with theirs set),
/// as upstream's gc thread does, while the filesystem is mounted and read.
fn write_oldest_gens(fs: &Arc<Fs>, gens: &[Update], st: &Status) {
    let mut write_failed = false;
    let n = gens.iter().filter(|u| u.btree == ids::btree::ALLOC).count();
    match commit(fs, gens, &[], &SbChanges::default(), &mut write_failed, true) {
        Ok(done) => {
            st.oldest_gen_written.fetch_add(n as u64, Ordering::Relaxed);
            pr_info!(
                "{}: gc: wrote the oldest gens of {} bucket(s): {} node bset(s), journal seq {}\n",
                fs.uuid(),
                n,
                done.nodes,
                done.seq
            );
        }
        Err(_) if write_failed => {
            fs.emergency_read_only();
        }
        Err(e) if e == frozen_errno() => pr_info!(
            "{}: gc: the filesystem is frozen: the oldest gens of {} bucket(s) left for a pass after the thaw\n",
            fs.uuid(),
            n
        ),
        Err(e) if e == EROFS && fs.remounted_ro.load(Ordering::Acquire) => pr_info!(
            "{}: gc: remounted read-only: the oldest gens of {} bucket(s) not written\n",
            fs.uuid(),
            n
        ),
        Err(e) => pr_err!(
            "{}: gc: the oldest gens of {} bucket(s) not written: error {}\n",
            fs.uuid(),
            n,
            e.to_errno()
        ),
    }
}
