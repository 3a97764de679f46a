// SPDX-License-Identifier: GPL-2.0

//! File data reads from the devices: an extent is read from its first replica
//! whose read and checksum (or decompression) pass, each failure logged.
//!
//! Both go through a [`WindowReader`]. `read_folio`'s reads one extent after
//! another, each waited for by the reader. A readahead window has every extent's
//! bio in flight at once: each endio only queues its extent's work item on the
//! filesystem's workqueue, which verifies or decompresses the data into the
//! window's buffer, or submits the next replica; the reader sleeps on a bit that
//! the last extent to finish clears, as node reads do. A window of one extent is
//! read by its reader, as `read_folio` would.

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

use crate::bdev::{self, ReadKind, BIO_MAX_BYTES};
use crate::format::bpos::Bpos;
use crate::format::data::extents_format::{compression, DecodedPtr};
use crate::format::data::read::{self as dread, DataError, DataExtent, Decompressor};
use crate::format::ids;
use crate::fs::Fs;
use crate::hash::KernelHashes;
use crate::shim;

/// zstd and gzip through the kernel's libraries (lz4 is the core's own).
struct KernelDecompress;

// vfs.c names the compression types itself: they must be the core's.
const _: () = assert!(
    shim::BCH_RS_COMPRESSION_GZIP == compression::GZIP as u32
        && shim::BCH_RS_COMPRESSION_ZSTD == compression::ZSTD as u32
);

impl Decompressor for KernelDecompress {
    fn decompress(&self, typ: u8, src: &[u8], dst: &mut [u8]) -> bool {
        // SAFETY: both slices are valid for their lengths; the C function reads
        // `src` and writes at most `dst.len()` bytes to `dst`.
        let r = unsafe {
            shim::bch_rs_decompress(
                u32::from(typ),
                src.as_ptr().cast(),
                src.len(),
                dst.as_mut_ptr().cast(),
                dst.len(),
            )
        };
        r == 0
    }
}

/// Why a replica of an extent could not be used.
enum Failure {
    Data(DataError),
    Io(Error),
}

impl kernel::fmt::Display for Failure {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            Failure::Data(DataError::Csum(want, got)) => write!(
                f,
                "data checksum mismatch: stored {:x}:{:x}, computed {:x}:{:x}",
                want.hi, want.lo, got.hi, got.lo
            ),
            Failure::Data(DataError::CsumType(_)) => f.write_str("checksum type not supported"),
            Failure::Data(DataError::Decompress(t)) => write!(
                f,
                "{} decompression failed",
                ids::COMPRESSION_TYPE_NAMES
                    .get(*t as usize)
                    .copied()
                    .unwrap_or("?")
            ),
            Failure::Data(DataError::CompressionType(t)) => {
                write!(f, "unknown compression type {}", t)
            }
            Failure::Data(DataError::BadSize) => f.write_str("extent sizes do not fit its data"),
            Failure::Io(e) => write!(f, "read error {}", e.to_errno()),
        }
    }
}

/// A position printed as the reference prints it.
struct Pos(Bpos);

impl kernel::fmt::Display for Pos {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Checks (or decompresses) a replica's bytes `raw` as `plan` says, into `dst`.
fn decode(
    p: &DecodedPtr,
    plan: &dread::Plan,
    raw: &[u8],
    dst: &mut [u8],
) -> core::result::Result<(), Failure> {
    let mut scratch =
        KVVec::from_elem(0u8, plan.scratch, GFP_KERNEL).map_err(|e| Failure::Io(e.into()))?;
    let b = dread::decode(p, plan, raw, &mut scratch, &KernelHashes, &KernelDecompress)
        .map_err(Failure::Data)?;
    if b.len() != dst.len() {
        return Err(Failure::Data(DataError::BadSize));
    }
    dst.copy_from_slice(b);
    Ok(())
}

fn log_failure(fs: &Fs, inum: u64, pos: Bpos, plan: &dread::Plan, e: &Failure) {
    pr_err!(
        "{}: inode {} extent {}: dev {} sector {}: {}\n",
        fs.uuid(),
        inum,
        Pos(pos),
        plan.dev,
        plan.sector,
        e
    );
}

fn log_other_replica(fs: &Fs, inum: u64, pos: Bpos, dev: u8) {
    pr_warn!(
        "{}: inode {} extent {}: read from another replica (dev {})\n",
        fs.uuid(),
        inum,
        Pos(pos),
        dev
    );
}

fn log_no_pointer(fs: &Fs, inum: u64, pos: Bpos) {
    pr_err!(
        "{}: inode {} extent {}: no pointer to read\n",
        fs.uuid(),
        inum,
        Pos(pos)
    );
}

/// Counters of a filesystem's data reads (the debugfs file `data_reads`).
#[derive(Default)]
pub(crate) struct DataStats {
    /// Replica reads of file data (in flight or waited for).
    pub(crate) reads: AtomicU64,
    /// Bios in flight not completed yet, and the most there were at once.
    pub(crate) in_flight: AtomicU64,
    pub(crate) max_in_flight: AtomicU64,
    /// Replicas that failed (each logged).
    pub(crate) failures: AtomicU64,
}

impl DataStats {
    /// A replica read by the window's reader itself, waited for.
    fn read_here(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn started(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(n, Ordering::Relaxed);
    }

    fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bit of [`Window`]'s `flags` set while its extents are being read.
const WINDOW_IN_FLIGHT: u32 = 0;

/// What the reads of one [`WindowReader`] share: the extents not finished, the
/// first error, and the bit the reader sleeps on.
struct Window {
    fs: Arc<Fs>,
    /// Extents not finished, plus one held by the reader while it submits.
    pending: AtomicUsize,
    /// The first extent's error (an errno), or 0.
    err: AtomicI32,
    flags: AtomicUsize,
}

impl Window {
    /// A window of `fs` with nothing in flight yet.
    fn new(fs: &Arc<Fs>) -> Result<Arc<Window>> {
        Ok(Arc::new(
            Window {
                fs: fs.clone(),
                pending: AtomicUsize::new(1),
                err: AtomicI32::new(0),
                flags: AtomicUsize::new(1 << WINDOW_IN_FLIGHT),
            },
            GFP_KERNEL,
        )?)
    }

    /// The read of extent `x` into `dst`, counted in the window but not started:
    /// `None` when there is nothing to read (unwritten space) or it failed (the
    /// window's error).
    ///
    /// # Safety
    ///
    /// `dst` must stay valid for writes, and not be accessed by anyone else, until
    /// [`Window::wait`] on this window has returned.
    unsafe fn prepare(
        self: &Arc<Self>,
        inum: u64,
        x: &DataExtent<'_>,
        dst: &mut [u8],
    ) -> Option<Arc<ExtentRead>> {
        let mut ptrs = KVec::new();
        let mut unwritten = false;
        for p in dread::replicas(x, &*self.fs) {
            if p.ptr.unwritten {
                unwritten = true;
                break;
            }
            if ptrs.push(p, GFP_KERNEL).is_err() {
                self.fail(ENOMEM);
                return None;
            }
        }
        if ptrs.is_empty() {
            // Unwritten space reads as the zeros `dst` holds.
            if !unwritten {
                log_no_pointer(&self.fs, inum, x.k.p);
                self.fail(EIO);
            }
            return None;
        }
        let op = Arc::pin_init(
            pin_init!(ExtentRead {
                win: self.clone(),
                inum,
                pos: x.k.p,
                skip: x.skip,
                ptrs,
                unwritten,
                dst: Dst(dst.as_mut_ptr(), dst.len()),
                io_err: AtomicI32::new(0),
                st <- kernel::new_mutex!(ExtentState {
                    replica: 0,
                    failures: 0,
                    raw: KVVec::new(),
                }),
                work <- new_work!("bcachefs_rs::ExtentRead::work"),
            }),
            GFP_KERNEL,
        );
        match op {
            Ok(op) => {
                self.pending.fetch_add(1, Ordering::AcqRel);
                Some(op)
            }
            Err(_) => {
                self.fail(ENOMEM);
                None
            }
        }
    }

    /// Records `e` as the window's error, unless it has one already.
    fn fail(&self, e: Error) {
        let _ = self
            .err
            .compare_exchange(0, e.to_errno(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// One extent (or the reader's submission) is finished: the last one wakes
    /// the reader.
    fn put(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: `flags` is an atomic word of this window, which the caller's
            // reference keeps alive; the C side only does atomic bit operations.
            unsafe {
                shim::bch_rs_clear_bit_unlock_wake(
                    self.flags.as_ptr().cast(),
                    WINDOW_IN_FLIGHT as c_int,
                )
            };
        }
    }

    /// Waits until every extent started is read (or failed): the window's result.
    fn wait(&self) -> Result {
        self.put();
        // SAFETY: as in `put`; wait_on_bit only reads the word atomically.
        unsafe {
            shim::bch_rs_wait_on_bit_io(self.flags.as_ptr().cast(), WINDOW_IN_FLIGHT as c_int)
        };
        match self.err.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(Error::from_errno(e)),
        }
    }
}

/// The reads of a range of a file: a readahead window's, every bio in flight at
/// once (`parallel`), or a folio's, each extent read and waited for in turn by
/// the reader. A parallel window of one extent (most of a small file's) is read
/// by the reader itself too: a work item would only add a hop to the workqueue and
/// back. Its first extent is held until a second shows the window needs more.
pub(crate) struct WindowReader {
    win: Arc<Window>,
    parallel: bool,
    held: Option<Arc<ExtentRead>>,
    started: bool,
}

impl WindowReader {
    /// A window of `fs` with nothing read yet.
    pub(crate) fn new(fs: &Arc<Fs>, parallel: bool) -> Result<WindowReader> {
        Ok(WindowReader {
            win: Window::new(fs)?,
            parallel,
            held: None,
            started: false,
        })
    }

    /// Whether an extent of the window failed (as far as the reader knows yet).
    pub(crate) fn failed(&self) -> bool {
        self.win.err.load(Ordering::Acquire) != 0
    }

    /// Reads extent `x` into `dst` (which the caller keeps, untouched, until
    /// [`WindowReader::wait`] returned); a failure is the window's error.
    ///
    /// # Safety
    ///
    /// `dst` must stay valid for writes, and not be accessed by anyone else, until
    /// [`WindowReader::wait`] has returned.
    pub(crate) unsafe fn read(&mut self, inum: u64, x: &DataExtent<'_>, dst: &mut [u8]) {
        // SAFETY: the caller's guarantee, until `wait`, which waits for the window.
        let Some(op) = (unsafe { self.win.prepare(inum, x, dst) }) else {
            return;
        };
        if !self.parallel {
            submit(op, true);
            return;
        }
        if !self.started && self.held.is_none() {
            self.held = Some(op);
            return;
        }
        if let Some(h) = self.held.take() {
            submit(h, false);
        }
        self.started = true;
        submit(op, false);
    }

    /// Reads a held extent here, then waits for every read started: the window's
    /// result.
    pub(crate) fn wait(mut self) -> Result {
        if let Some(h) = self.held.take() {
            submit(h, true);
        }
        self.win.wait()
    }
}

/// Where an extent's bytes go in the window's buffer.
struct Dst(*mut u8, usize);

// SAFETY: `Dst` is a part of the window's buffer that only its extent's read
// writes (`dread::fill` hands out disjoint parts), and only until the window's
// reader, which owns the buffer, has stopped waiting; the raw pointer is not tied
// to a thread.
unsafe impl Send for Dst {}
// SAFETY: as for `Send`: it is written only by whoever holds its op's mutex (the
// work item, or the reader submitting a read over a bio's size).
unsafe impl Sync for Dst {}

struct ExtentState {
    /// Index in `ptrs` of the replica being read.
    replica: usize,
    failures: u32,
    /// The replica's bytes as read.
    raw: KVVec<u8>,
}

/// One extent of a window, handed along submit -> endio -> work -> (next replica).
#[pin_data]
struct ExtentRead {
    win: Arc<Window>,
    inum: u64,
    pos: Bpos,
    skip: u64,
    /// The replicas to try, in order.
    ptrs: KVec<DecodedPtr>,
    /// An unwritten pointer followed them: the extent reads as zeros once they
    /// all failed.
    unwritten: bool,
    dst: Dst,
    /// The bio's status, set by the endio.
    io_err: AtomicI32,
    #[pin]
    st: Mutex<ExtentState>,
    #[pin]
    work: Work<ExtentRead>,
}

impl_has_work! {
    impl HasWork<Self> for ExtentRead { self.work }
}

impl ExtentRead {
    /// The extent is done: read (`ok`), or failed with every failure logged. Its
    /// buffer goes now, not when the last reference does.
    fn finish(&self, st: &mut ExtentState, ok: bool) {
        st.raw = KVVec::new();
        if !ok {
            self.win.fail(EIO);
        }
        self.win.put();
    }

    /// Replica `st.replica` was read after others failed: say so.
    fn recovered(&self, st: &ExtentState) {
        if st.failures > 0 {
            let dev = self.ptrs.get(st.replica).map_or(0, |p| p.ptr.dev);
            log_other_replica(&self.win.fs, self.inum, self.pos, dev);
        }
    }

    /// Checks the current replica's bytes into the window's buffer.
    fn decode(
        &self,
        p: &DecodedPtr,
        plan: &dread::Plan,
        raw: &[u8],
    ) -> core::result::Result<(), Failure> {
        // SAFETY: `dst` is this extent's part of the window's buffer, valid and
        // written by no one else until the window's reader stops waiting, which
        // it does only after `finish` (this op holds the mutex meanwhile).
        let dst = unsafe { core::slice::from_raw_parts_mut(self.dst.0, self.dst.1) };
        decode(p, plan, raw, dst)
    }
}

/// Submits the read of the current replica; replicas that cannot be read are
/// logged and skipped, and the extent finishes when none is left. With `here`, or
/// for a replica of over a bio's size, the read is done here and waited for.
fn submit(op: Arc<ExtentRead>, here: bool) {
    let mut st = op.st.lock();
    let fs = &op.win.fs;
    loop {
        let Some(p) = op.ptrs.get(st.replica).copied() else {
            // Every written replica failed: an unwritten pointer after them reads
            // as the zeros the buffer holds.
            let ok = op.unwritten;
            op.finish(&mut st, ok);
            return;
        };
        let plan = dread::plan(&p, op.skip, op.dst.1);
        let r = match fs.dev(u32::from(plan.dev)) {
            None => Err(Failure::Io(ENXIO)),
            Some(dev) => {
                let len = if st.raw.len() == plan.bytes {
                    Ok(())
                } else {
                    st.raw.clear();
                    st.raw.resize(plan.bytes, 0, GFP_KERNEL)
                };
                match len {
                    Err(e) => Err(Failure::Io(e.into())),
                    Ok(()) if here || plan.bytes > BIO_MAX_BYTES => {
                        fs.data_stats.read_here();
                        let r = dev.read(plan.sector, &mut st.raw).map_err(Failure::Io);
                        r.and_then(|()| op.decode(&p, &plan, &st.raw))
                    }
                    Ok(()) => {
                        let private = Arc::into_raw(op.clone());
                        fs.data_stats.started();
                        // SAFETY: `st.raw` is not touched until the work item runs
                        // after the endio; the op owning it is kept alive by the
                        // reference passed as private, taken back in the endio.
                        let r = unsafe {
                            dev.read_async(
                                plan.sector,
                                st.raw.as_mut_ptr(),
                                plan.bytes,
                                private.cast(),
                                ReadKind::Data,
                            )
                        };
                        match r {
                            Ok(()) => return,
                            Err(e) => {
                                // SAFETY: not submitted: no endio takes it back.
                                drop(unsafe { Arc::from_raw(private) });
                                fs.data_stats.ended();
                                Err(Failure::Io(e))
                            }
                        }
                    }
                }
            }
        };
        match r {
            Ok(()) => {
                op.recovered(&st);
                op.finish(&mut st, true);
                return;
            }
            Err(e) => {
                log_failure(fs, op.inum, op.pos, &plan, &e);
                fs.data_stats.failures.fetch_add(1, Ordering::Relaxed);
                st.failures += 1;
                st.replica += 1;
            }
        }
    }
}

/// Bio completion, in interrupt context: only queues the extent's work item.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_data_read_endio(private: *mut c_void, err: c_int) {
    // SAFETY: `private` is the reference `submit` leaked for this read.
    let op = unsafe { Arc::from_raw(private.cast::<ExtentRead>().cast_const()) };
    op.io_err.store(err, Ordering::Release);
    Fs::queue_io(op, |op| &op.win.fs);
}

impl WorkItem for ExtentRead {
    type Pointer = Arc<ExtentRead>;

    fn run(op: Arc<ExtentRead>) {
        op.win.fs.data_stats.ended();
        let mut st = op.st.lock();
        let Some(p) = op.ptrs.get(st.replica).copied() else {
            op.finish(&mut st, false);
            return;
        };
        let plan = dread::plan(&p, op.skip, op.dst.1);
        let err = op.io_err.swap(0, Ordering::Acquire);
        let r = if err != 0 {
            Err(Failure::Io(Error::from_errno(err)))
        } else {
            bdev::read_done(&st.raw);
            op.decode(&p, &plan, &st.raw)
        };
        match r {
            Ok(()) => {
                op.recovered(&st);
                op.finish(&mut st, true);
            }
            Err(e) => {
                log_failure(&op.win.fs, op.inum, op.pos, &plan, &e);
                op.win
                    .fs
                    .data_stats
                    .failures
                    .fetch_add(1, Ordering::Relaxed);
                st.failures += 1;
                st.replica += 1;
                drop(st);
                submit(op, false);
            }
        }
    }
}
