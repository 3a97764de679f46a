// SPDX-License-Identifier: GPL-2.0

//! Mount and unmount, called from the C fs_context and kill_sb trampolines in
//! shim.c: open the filesystem (superblock, journal, btree roots), its debugfs
//! tree and its gc thread; on unmount, remove debugfs first (it waits for
//! readers), stop the gc thread (a pass in progress stops at the next node), then
//! stop IO.

use core::sync::atomic::Ordering;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::debugfs::{self, DebugfsTree};
use crate::fs::{Fs, MountOpts};
use crate::gc::GcThread;
use crate::repair::Outcome;

/// What a mount holds: the filesystem, its debugfs files and its gc thread.
struct Mounted {
    fs: Arc<Fs>,
    debugfs: Option<DebugfsTree>,
    gc: Option<GcThread>,
    /// It became a super block (not a second open of a mounted filesystem).
    started: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Readers in the middle of a read() finish first; open files then get EIO.
        drop(self.debugfs.take());
        drop(self.gc.take());
        self.fs.shutdown();
        if self.started {
            pr_info!("{}: unmounted\n", self.fs.uuid());
        }
    }
}

/// The filesystem of a super block's `s_fs_info`.
///
/// # Safety
///
/// `m` must come from [`bch_rs_fs_open`] and stay alive for `'a` (a super block
/// holds it until `kill_sb`, after every inode is gone).
pub(crate) unsafe fn fs_of<'a>(m: *mut c_void) -> &'a Arc<Fs> {
    // SAFETY: the caller guarantees `m` is a live `Mounted`.
    unsafe { &(*m.cast::<Mounted>()).fs }
}

/// `get_tree`: opens the filesystem on `source`; `*out` receives the mount's state.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_open(
    source: *const c_char,
    read_only: c_int,
    opts: c_uint,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: the VFS hands a NUL-terminated source string that outlives the call.
    let source = unsafe { CStr::from_char_ptr(source) };
    let r = (|| -> Result<KBox<Mounted>> {
        let opts = MountOpts::from_bits(opts);
        let mut fs = Fs::open(source, read_only != 0, opts)?;
        // A repair that fixed pointers leaves the counts to a second repair, over
        // the filesystem opened again with them fixed.
        let mut repairs = 0;
        while fs.opts.fix_errors && repairs < 2 {
            repairs += 1;
            // On an error the filesystem is shut down here, in the mount's
            // context, not by whichever completion drops the last reference.
            let outcome = crate::repair::repair_at_mount(&fs).inspect_err(|_| fs.shutdown())?;
            if outcome == Outcome::Unchanged {
                break;
            }
            // Everything read so far (cache, journal, roots) predates the writes:
            // the filesystem is opened again from what is now on disk; after a
            // failed write, read-only (emergency read-only), which ends the loop.
            let (ro, o) = match outcome {
                Outcome::WriteFailed => {
                    pr_err!(
                        "{}: emergency read-only: a repair write failed; mounting read-only from what is on disk\n",
                        fs.uuid()
                    );
                    (
                        true,
                        MountOpts {
                            fix_errors: false,
                            ..opts
                        },
                    )
                }
                _ => (read_only != 0, opts),
            };
            let old = fs;
            // Done with: no reads or writes left (the repair waited for its own),
            // and its claim goes before the new one is made.
            old.shutdown();
            fs = Fs::open(source, ro, o)?;
            fs.write_stats.absorb(&old.write_stats);
            fs.cache.stats.absorb_writes(&old.cache.stats);
            drop(old);
            match outcome {
                Outcome::Repaired { recount: true } if repairs < 2 => pr_info!(
                    "{}: repaired pointers at mount; a second repair recounts over them\n",
                    fs.uuid()
                ),
                Outcome::Repaired { .. } => {
                    pr_info!(
                        "{}: repaired at mount; files stay read-only (no file writes yet)\n",
                        fs.uuid()
                    );
                    break;
                }
                _ => break,
            }
        }
        KBox::new(
            Mounted {
                fs,
                debugfs: None,
                gc: None,
                started: false,
            },
            GFP_KERNEL,
        )
        .map_err(|e| e.into())
    })();
    match r {
        Ok(m) => {
            // SAFETY: `out` is a valid pointer from the C side.
            unsafe { *out = KBox::into_raw(m).cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Whether two opened filesystems are the same one.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_same(a: *mut c_void, b: *mut c_void) -> c_int {
    // SAFETY: both came from `bch_rs_fs_open` and are alive (held by a super block
    // and an fs_context).
    let (a, b) = unsafe { (&*a.cast::<Mounted>(), &*b.cast::<Mounted>()) };
    c_int::from(a.fs.sb().uuid().0 == b.fs.sb().uuid().0)
}

/// A new super block: the filesystem becomes visible in debugfs and sysfs, and its
/// gc thread starts (with a first pass).
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_start(m: *mut c_void) -> c_int {
    // SAFETY: `m` came from `bch_rs_fs_open`; the super block owns it and the VFS
    // calls this once, before anyone else can reach it.
    let m = unsafe { &mut *m.cast::<Mounted>() };
    m.started = true;
    match debugfs::create(&m.fs) {
        Ok(d) => m.debugfs = d,
        Err(e) => return e.to_errno(),
    }
    match GcThread::start(&m.fs) {
        Ok(g) => {
            m.gc = Some(g);
            0
        }
        Err(e) => {
            pr_err!("{}: cannot start the gc thread: {:?}\n", m.fs.uuid(), e);
            e.to_errno()
        }
    }
}

/// `kill_sb`, before the super block is shut down: stops the gc thread, so a
/// pass in progress ends at its next node instead of holding up the unmount.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_stop_gc(m: *mut c_void) {
    // SAFETY: `m` came from `bch_rs_fs_open` and is alive until `bch_rs_fs_close`;
    // kill_sb runs once, so nothing else touches `gc` meanwhile (the thread and
    // the sysfs files reach the filesystem through their own state, not `m`).
    let m = unsafe { &mut *m.cast::<Mounted>() };
    drop(m.gc.take());
}

/// `reconfigure` (shim.c): a remount. Files are read-only whatever the mount, so
/// one that asks for read-write (`ro` 0) is refused with EROFS. One that asks for
/// read-only (`ro` 1) stops the writes a mount makes itself (a `fix_errors`
/// mount's gc thread): a commit in progress ends first, and none starts again
/// while the filesystem stays mounted. One that asks for neither (`ro` -1, a
/// reconfigure of options alone) changes nothing. The mount options (`opts`) are
/// taken at mount only: given again, they change nothing, and the log says so.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_remount(m: *mut c_void, ro: c_int, opts: c_uint) -> c_int {
    // SAFETY: `m` is the super block's `s_fs_info`, alive while it is mounted.
    let fs = unsafe { fs_of(m) };
    if ro == 0 {
        pr_err!(
            "{}: remount read-write refused: files are read-only (no file writes yet)\n",
            fs.uuid()
        );
        return EROFS.to_errno();
    }
    if opts != 0 {
        pr_notice!(
            "{}: remount: fsck, fix_errors and nochanges are taken at mount only; not changed\n",
            fs.uuid()
        );
    }
    if ro < 0 {
        return 0;
    }
    let _ws = fs.wstate.lock();
    if fs.writable && !fs.remounted_ro.swap(true, Ordering::AcqRel) {
        pr_info!(
            "{}: remounted read-only: nothing more is written while it stays mounted\n",
            fs.uuid()
        );
    }
    0
}

/// `freeze_super` and `thaw_super` (vfs.c): `hold` 1 before the VFS freezes the
/// super block (a commit in progress ends first; none starts while frozen), -1
/// once it thawed it. Freezes nest as the VFS's do (one count per freeze that
/// succeeded).
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_hold_writes(m: *mut c_void, hold: c_int) {
    // SAFETY: `m` is the super block's `s_fs_info`, alive while it is mounted.
    let fs = unsafe { fs_of(m) };
    let _ws = fs.wstate.lock();
    if hold > 0 {
        fs.frozen.fetch_add(1, Ordering::AcqRel);
    } else {
        let _ = fs
            .frozen
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// `kill_sb` (or a mount that failed after opening): releases the mount.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_close(m: *mut c_void) {
    // SAFETY: `m` came from `bch_rs_fs_open` and the C side releases it once.
    drop(unsafe { KBox::from_raw(m.cast::<Mounted>()) });
}
