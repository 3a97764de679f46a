// SPDX-License-Identifier: GPL-2.0

//! debugfs, upstream's layout: `<root>/<uuid>/btrees/<btree>/{keys,nodes,
//! nodes.levelN,ondisk}` print through the format core's text form, a node at a
//! time as the reader asks for more; `<root>/<uuid>/btree_cache` prints counters.

use core::fmt::Write as _;
use core::ops::ControlFlow;
use core::sync::atomic::Ordering;

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, ArcBorrow, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::btree::iter::{for_each_key, read_leaf, Walk};
use crate::format::btree::ptr::BtreePtr;
use crate::format::btree::read::NodeHeader;
use crate::format::btree::text::ondisk_to_text;
use crate::format::ids::{self, KeyType};
use crate::format::journal::keys::AcctView;
use crate::format::printbuf::{Printbuf, TextOut};
use crate::format::text::{bkey_val_to_text, Pb, TextCtx};
use crate::fs::{Fs, PtrKey};
use crate::hash::KernelHashes;
use crate::shim;

/// Text appended to a growable buffer; an allocation failure is remembered.
struct KText<'a> {
    v: &'a mut KVVec<u8>,
    oom: bool,
}

impl TextOut for KText<'_> {
    fn push(&mut self, s: &[u8]) {
        if self.v.extend_from_slice(s, GFP_KERNEL).is_err() {
            self.oom = true;
        }
    }
    fn len(&self) -> usize {
        self.v.len()
    }
    fn truncate(&mut self, len: usize) {
        self.v.truncate(len);
    }
    fn insert_spaces(&mut self, at: usize, n: usize) {
        let old = self.v.len();
        if at > old {
            return;
        }
        if self.v.resize(old + n, b' ', GFP_KERNEL).is_err() {
            self.oom = true;
            return;
        }
        self.v.copy_within(at..old, at + n);
        self.v[at..at + n].fill(b' ');
    }
}

/// What a file prints.
#[derive(Clone, Copy)]
enum Kind {
    Keys,
    /// Node pointers at this level and above.
    Nodes(u8),
    Ondisk,
    CacheStats,
    DataStats,
}

/// What a debugfs file is: handed to the C side as its `i_private`.
struct FileDesc {
    /// Borrowed: the mount's reference outlives every file (removed first).
    fs: *const Fs,
    btree: u32,
    kind: Kind,
}

/// The debugfs tree of one mounted filesystem; removed on drop.
pub(crate) struct DebugfsTree {
    dir: *mut shim::dentry,
    _descs: KVec<KBox<FileDesc>>,
}

// SAFETY: the dentry pointer is only passed to debugfs_remove, which may be called
// from any thread; the descriptors are immutable.
unsafe impl Send for DebugfsTree {}
// SAFETY: as above.
unsafe impl Sync for DebugfsTree {}

impl Drop for DebugfsTree {
    fn drop(&mut self) {
        // SAFETY: `dir` came from bch_rs_debugfs_dir and is removed once. Removal
        // waits for reads in progress; later reads of open files fail with EIO.
        unsafe { shim::bch_rs_debugfs_remove(self.dir) };
    }
}

fn mkdir(name: &CStr, parent: *mut shim::dentry) -> Option<*mut shim::dentry> {
    // SAFETY: `name` is NUL terminated; `parent` is null (module root) or a live
    // directory of this tree.
    let d = unsafe { shim::bch_rs_debugfs_dir(name.as_char_ptr(), parent) };
    (!d.is_null()).then_some(d)
}

/// Creates the debugfs tree of `fs`; `None` when debugfs is unavailable.
pub(crate) fn create(fs: &Arc<Fs>) -> Result<Option<DebugfsTree>> {
    let Some(dir) = mkdir(&fs.uuid, core::ptr::null_mut()) else {
        return Ok(None);
    };
    let mut tree = DebugfsTree {
        dir,
        _descs: KVec::new(),
    };
    let fsp: *const Fs = &**fs;
    let file = |tree: &mut DebugfsTree, name: &CStr, parent, btree, kind| -> Result {
        let desc = KBox::new(
            FileDesc {
                fs: fsp,
                btree,
                kind,
            },
            GFP_KERNEL,
        )?;
        let data: *const FileDesc = &*desc;
        tree._descs.push(desc, GFP_KERNEL)?;
        // SAFETY: `data` lives in `tree` until after the file is removed with it.
        unsafe { shim::bch_rs_debugfs_file(name.as_char_ptr(), parent, data.cast_mut().cast()) };
        Ok(())
    };
    file(&mut tree, c"btree_cache", dir, 0, Kind::CacheStats)?;
    file(&mut tree, c"data_reads", dir, 0, Kind::DataStats)?;
    let Some(btrees) = mkdir(c"btrees", dir) else {
        return Ok(Some(tree));
    };
    for id in 0..ids::BTREE_ID_NR as u32 {
        let Some(name) = ids::btree_name(id) else {
            continue;
        };
        let cname = CString::try_from_fmt(fmt!("{}", name))?;
        let Some(bdir) = mkdir(&cname, btrees) else {
            continue;
        };
        file(&mut tree, c"keys", bdir, id, Kind::Keys)?;
        file(&mut tree, c"nodes", bdir, id, Kind::Nodes(0))?;
        file(&mut tree, c"ondisk", bdir, id, Kind::Ondisk)?;
        let root_level = fs.root(id).map_or(0, |r| r.level);
        for l in 1..=root_level {
            let n = CString::try_from_fmt(fmt!("nodes.level{}", l))?;
            file(&mut tree, &n, bdir, id, Kind::Nodes(l))?;
        }
    }
    Ok(Some(tree))
}

/// One open file: its walk and the text made but not yet read.
struct Dump {
    fs: Arc<Fs>,
    btree: u32,
    kind: Kind,
    walk: Walk,
    out: KVVec<u8>,
    off: usize,
    done: bool,
    /// A node could not be read: returned by the next read, once; the walk then
    /// goes on after it.
    err: Option<Error>,
}

impl Dump {
    /// Appends the next piece of text (a node's worth); sets `done` at the end.
    fn fill(&mut self) -> Result {
        let mut out = KText {
            v: &mut self.out,
            oom: false,
        };
        let fs = &self.fs;
        let ctx = TextCtx { devs: &**fs };
        let mut visited: KVec<(u8, PtrKey)> = KVec::new();
        match self.kind {
            Kind::CacheStats => {
                cache_stats(fs, &mut out);
                self.done = true;
            }
            Kind::DataStats => {
                data_stats(fs, &mut out);
                self.done = true;
            }
            Kind::Keys | Kind::Nodes(_) | Kind::Ondisk => {
                let mut oom = false;
                let failed = self.walk.failed;
                let more = self.walk.step(fs, &mut |l, p| {
                    oom |= visited.push((l, *p), GFP_KERNEL).is_err();
                })?;
                if oom {
                    return Err(ENOMEM);
                }
                self.done = !more;
                if self.walk.failed != failed {
                    self.err = Some(EIO);
                }
            }
        }
        for (level, p) in visited.iter() {
            match self.kind {
                Kind::Nodes(_) => {
                    let mut pb: Pb<'_, '_> = Printbuf::new(&mut out);
                    bkey_val_to_text(&mut pb, &ctx, &p.k, p.val());
                    pb.raw(b"\n");
                }
                Kind::Ondisk => ondisk(fs, &ctx, &mut Printbuf::new(&mut out), p),
                Kind::Keys => {
                    if !leaf_keys(fs, self.btree, *level, p, &ctx, &mut out)? {
                        self.err = Some(EIO);
                    }
                }
                Kind::CacheStats | Kind::DataStats => {}
            }
        }
        if out.oom {
            return Err(ENOMEM);
        }
        Ok(())
    }
}

/// The keys of one leaf, whiteouts left out, as `list -m keys` prints them.
/// `false` when the leaf could not be read.
fn leaf_keys(
    fs: &Arc<Fs>,
    btree: u32,
    level: u8,
    p: &PtrKey,
    ctx: &TextCtx<'_>,
    out: &mut KText<'_>,
) -> Result<bool> {
    let Some(node) = read_leaf(fs, btree, level, p)? else {
        return Ok(true);
    };
    let Some(d) = node.data().filter(|d| !d.failed) else {
        return Ok(false);
    };
    for_each_key(fs, btree, 0, d, AcctView::Listing, &mut |k, v| {
        if k.typ != KeyType::Deleted as u8 && k.typ != KeyType::Whiteout as u8 {
            let mut pb: Pb<'_, '_> = Printbuf::new(out);
            bkey_val_to_text(&mut pb, ctx, k, v);
            pb.raw(b"\n");
        }
        ControlFlow::Continue(())
    })?;
    Ok(true)
}

/// A node as it is on disk, read whole (not cached) from the first replica whose
/// header is this node's: a replica with a clobbered header is passed over, as a
/// read retries on another.
fn ondisk(fs: &Fs, ctx: &TextCtx<'_>, pb: &mut Pb<'_, '_>, p: &PtrKey) {
    let s = fs.sb();
    let Some(bp) = BtreePtr::decode(p.k.typ, p.val()) else {
        pb.str("error getting device to read from: invalid device\n\n");
        return;
    };
    let len = (s.btree_node_sectors() as usize) << 9;
    let mut best: Option<KVVec<u8>> = None;
    let mut err = None;
    for ptr in bp.ptrs() {
        let Some(dev) = fs.dev(u32::from(ptr.dev)) else {
            continue;
        };
        let mut buf = match KVVec::from_elem(0u8, len, GFP_KERNEL) {
            Ok(b) => b,
            Err(_) => {
                err = Some(ENOMEM);
                break;
            }
        };
        if let Err(e) = dev.read(ptr.offset, &mut buf) {
            err.get_or_insert(e);
            continue;
        }
        let ours = NodeHeader::parse(&buf)
            .is_some_and(|h| h.magic == s.bset_magic() && (bp.seq == 0 || h.seq == bp.seq));
        if ours || best.is_none() {
            best = Some(buf);
        }
        if ours {
            break;
        }
    }
    match (best, err) {
        (Some(buf), _) => ondisk_to_text(
            pb,
            ctx,
            &buf,
            s.block_sectors(),
            s.btree_node_sectors(),
            &KernelHashes,
        ),
        (None, Some(e)) => {
            let _ = write!(pb, "error reading node: error {}\n\n", e.to_errno());
        }
        (None, None) => pb.str("error getting device to read from: invalid device\n\n"),
    }
}

fn cache_stats(fs: &Fs, out: &mut KText<'_>) {
    let st = &fs.cache.stats;
    let mut pb: Pb<'_, '_> = Printbuf::new(out);
    let get = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = write!(
        pb,
        "nodes cached\t{}\nmax cached\t{}\nlimit\t{}\nhits\t{}\nmisses\t{}\nreads issued\t{}\nread waits\t{}\nreplica retries\t{}\nread errors\t{}\nevictions\t{}\nuncached reads\t{}\nwrites issued\t{}\nwrite bytes\t{}\nwrite waits\t{}\nwrite errors\t{}\n",
        fs.cache.len(),
        get(&st.max_cached),
        crate::btree_cache_max(),
        get(&st.hits),
        get(&st.misses),
        get(&st.reads),
        get(&st.read_waits),
        get(&st.retries),
        get(&st.read_errors),
        get(&st.evictions),
        get(&st.uncached),
        get(&st.writes),
        get(&st.write_bytes),
        get(&st.write_waits),
        get(&st.write_errors),
    );
}

fn data_stats(fs: &Fs, out: &mut KText<'_>) {
    let st = &fs.data_stats;
    let mut pb: Pb<'_, '_> = Printbuf::new(out);
    let get = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = write!(
        pb,
        "reads issued\t{}\nin flight\t{}\nmost in flight\t{}\nreplica failures\t{}\n",
        get(&st.reads),
        get(&st.in_flight),
        get(&st.max_in_flight),
        get(&st.failures),
    );
}

#[no_mangle]
pub(crate) extern "C" fn bch_rs_dump_open(data: *mut c_void, private: *mut *mut c_void) -> c_int {
    // SAFETY: `data` is the FileDesc this file was created with; debugfs keeps the
    // file (and so the tree holding the desc) alive during open.
    let desc = unsafe { &*data.cast::<FileDesc>() };
    // SAFETY: `desc.fs` points into the mount's Arc, alive while the file exists.
    let fs: Arc<Fs> = unsafe { ArcBorrow::from_raw(desc.fs) }.into();
    let level = match desc.kind {
        Kind::Nodes(l) => l,
        _ => 0,
    };
    let ancestors = !matches!(desc.kind, Kind::Keys);
    let dump = Dump {
        fs,
        btree: desc.btree,
        kind: desc.kind,
        walk: Walk::new(desc.btree, level, ancestors),
        out: KVVec::new(),
        off: 0,
        done: false,
        err: None,
    };
    match KBox::pin_init(kernel::new_mutex!(dump), GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: the box is never moved out of; `bch_rs_dump_release` pins it
            // again.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
            // SAFETY: `private` is a valid out pointer from the C side.
            unsafe { *private = raw.cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

#[no_mangle]
pub(crate) extern "C" fn bch_rs_dump_read(
    private: *mut c_void,
    ubuf: *mut c_char,
    len: usize,
) -> isize {
    // SAFETY: `private` is the box `bch_rs_dump_open` made; release has not run.
    let m = unsafe { &*private.cast::<Mutex<Dump>>() };
    let mut d = m.lock();
    let mut w = UserSlice::new(UserPtr::from_ptr(ubuf.cast()), len).writer();
    let mut copied = 0usize;
    while copied < len {
        if d.off == d.out.len() {
            d.out.clear();
            d.off = 0;
            if let Some(e) = d.err {
                if copied == 0 {
                    d.err = None;
                    return e.to_errno() as isize;
                }
                break;
            }
            if d.done {
                break;
            }
            if let Err(e) = d.fill() {
                // Out of memory, or unmounting: the walk cannot go on.
                d.done = true;
                d.err = Some(e);
            }
            continue;
        }
        let n = (d.out.len() - d.off).min(len - copied);
        let off = d.off;
        if let Err(e) = w.write_slice(&d.out[off..off + n]) {
            return if copied == 0 {
                e.to_errno() as isize
            } else {
                copied as isize
            };
        }
        d.off += n;
        copied += n;
    }
    copied as isize
}

#[no_mangle]
pub(crate) extern "C" fn bch_rs_dump_release(private: *mut c_void) {
    // SAFETY: made by `bch_rs_dump_open`; released once by the C side.
    drop(unsafe { KBox::from_raw(private.cast::<Mutex<Dump>>()) });
}
