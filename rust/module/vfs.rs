// SPDX-License-Identifier: GPL-2.0

//! The filesystem tree through the VFS: the Rust side of the trampolines in
//! vfs.c. Inodes, lookups, listings, file data and xattrs are read with the
//! format core's `fs::tree` and `data::read` over the node cache; this file does
//! the device IO and converts to the plain structs of shim.h.

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::btree::iter;
use crate::data;
use crate::eopnotsupp;
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::data::read::{self as dread, Piece};
use crate::format::fs::inode_format::field;
use crate::format::fs::str_hash::HashInfo;
use crate::format::fs::tree::{self, Keys, Tree, DT_SUBVOL};
use crate::format::fs::xattr_format::index as x_type;
use crate::format::ids::{self, KeyType};
use crate::fs::Fs;
use crate::hash::KernelHashes;
use crate::shim;
use crate::super_ops::fs_of;

/// The keys of a mounted filesystem, from the node cache with the journal overlaid.
pub(crate) struct FsKeys<'a>(pub(crate) &'a Arc<Fs>);

impl Keys for FsKeys<'_> {
    type Error = Error;
    fn range(
        &self,
        btree: u32,
        from: Bpos,
        to: Bpos,
        f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
    ) -> Result {
        iter::range(self.0, btree, from, to, f)
    }
}

/// Runs `f` on the tree of `fs`'s mounted subvolume, turning errors into errnos.
fn with_tree(fs: &Arc<Fs>, f: impl FnOnce(&Tree<'_, FsKeys<'_>>) -> Result) -> c_int {
    let keys = FsKeys(fs);
    let t = Tree::new(&keys, &KernelHashes, fs.snapshot());
    match f(&t) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The root directory's inode number.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_root(m: *mut c_void) -> u64 {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    unsafe { fs_of(m) }.root_inum()
}

/// Reads inode `inum` into `out`.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_inode_get(
    m: *mut c_void,
    inum: u64,
    out: *mut shim::bch_rs_attrs,
) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    // SAFETY: `out` points to a struct the caller owns for the call.
    let out = unsafe { &mut *out };
    with_tree(fs, |t| {
        let Some(u) = t.inode(inum)? else {
            pr_err!(
                "{}: inode {} not found (a directory entry names it)\n",
                fs.uuid(),
                inum
            );
            return Err(EIO);
        };
        let s = fs.sb();
        let time =
            |i: usize| tree::time_to_timespec(u.fields[i], s.time_base_lo(), s.time_precision());
        let (atime, mtime, ctime) = (time(field::ATIME), time(field::MTIME), time(field::CTIME));
        *out = shim::bch_rs_attrs {
            size: u.size,
            sectors: u.sectors,
            hash_seed: u.hash_seed,
            atime_sec: atime.0,
            atime_nsec: atime.1,
            mtime_sec: mtime.0,
            mtime_nsec: mtime.1,
            ctime_sec: ctime.0,
            ctime_nsec: ctime.1,
            mode: u32::from(u.mode),
            uid: u.fields[field::UID] as u32,
            gid: u.fields[field::GID] as u32,
            nlink: u.nlink().min(u64::from(u32::MAX)) as u32,
            rdev: u.fields[field::DEV] as u32,
            generation: u.fields[field::GENERATION] as u32,
            bi_flags: u.flags,
        };
        Ok(())
    })
}

/// Looks `name` up in directory `dir`: 0 and `*inum`, or -ENOENT.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_dir_lookup(
    m: *mut c_void,
    dir: u64,
    hash_seed: u64,
    bi_flags: u32,
    name: *const c_char,
    len: usize,
    inum: *mut u64,
) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    // SAFETY: the dentry's name is valid for `len` bytes during the call.
    let name = unsafe { core::slice::from_raw_parts(name.cast::<u8>(), len) };
    let info = HashInfo::new(bi_flags, hash_seed);
    with_tree(fs, |t| {
        let mut target: Option<(u64, u8)> = None;
        t.lookup(dir, &info, name, &mut |e| target = Some((e.inum, e.d_type)))?;
        match target {
            None => Err(ENOENT),
            Some((_, DT_SUBVOL)) => {
                pr_warn!(
                    "{}: directory {}: subvolumes cannot be entered yet\n",
                    fs.uuid(),
                    dir
                );
                Err(eopnotsupp())
            }
            Some((i, _)) => {
                // SAFETY: `inum` points to a u64 the caller owns for the call.
                unsafe { *inum = i };
                Ok(())
            }
        }
    })
}

/// Lists directory `dir` from position `pos` into the `dir_context` `ctx` (the dot
/// entries are the caller's). Positions are dirent offsets: stable across calls.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_dir_read(
    m: *mut c_void,
    dir: u64,
    pos: u64,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    with_tree(fs, |t| {
        t.readdir(dir, pos.max(2), &mut |e| {
            if e.d_type == DT_SUBVOL {
                return ControlFlow::Continue(());
            }
            // SAFETY: `ctx` is the dir_context of this readdir call; the name is
            // valid for its length.
            let more = unsafe {
                shim::bch_rs_dir_emit(
                    ctx,
                    e.name.as_ptr().cast(),
                    e.name.len(),
                    e.inum,
                    u32::from(e.d_type),
                    e.offset,
                )
            };
            if more != 0 {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
    })
}

/// Logs that `inum` has an extent of key type `typ`, which cannot be read.
fn unsupported(fs: &Fs, inum: u64, typ: u8) -> Error {
    pr_err!(
        "{}: inode {}: extents of type {} cannot be read yet\n",
        fs.uuid(),
        inum,
        ids::KEY_TYPE_NAMES
            .get(typ as usize)
            .copied()
            .unwrap_or("?")
    );
    eopnotsupp()
}

/// Reads `len` bytes of file `inum` at byte `pos` into `buf` (holes as zeros),
/// for `read_folio`: one extent after another.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_file_read(
    m: *mut c_void,
    inum: u64,
    pos: u64,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    file_read(m, inum, pos, buf, len, false)
}

/// [`bch_rs_file_read`] for a readahead window: every extent's read is started
/// before the first is waited for (see [`data::WindowReader`]).
#[no_mangle]
pub(crate) extern "C" fn bch_rs_file_read_window(
    m: *mut c_void,
    inum: u64,
    pos: u64,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    file_read(m, inum, pos, buf, len, true)
}

fn file_read(
    m: *mut c_void,
    inum: u64,
    pos: u64,
    buf: *mut c_void,
    len: usize,
    parallel: bool,
) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    // SAFETY: `buf` is the caller's buffer (a mapped folio, or readahead's), valid
    // for `len` bytes and untouched by it until this call returns.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    let mut win = match data::WindowReader::new(fs, parallel) {
        Ok(w) => w,
        Err(e) => return e.to_errno(),
    };
    let r = with_tree(fs, |t| {
        let mut err: Option<Error> = None;
        dread::fill(t, inum, pos, out, &mut |piece, dst| match piece {
            Piece::Data(x) => {
                // SAFETY: `dst` is a part of `out` that `fill` hands out once and
                // never touches again (its parts do not overlap), and `out` lives
                // until `win.wait()` below has returned.
                unsafe { win.read(inum, &x, dst) };
                // A failed extent fails the range: nothing after it is read.
                if win.failed() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Piece::Unsupported(typ) => {
                err = Some(unsupported(fs, inum, typ));
                ControlFlow::Break(())
            }
        })?;
        err.map_or(Ok(()), Err)
    });
    // Every read started is waited for, whatever happened since.
    let w = win.wait();
    if r != 0 {
        return r;
    }
    match w {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

const USER_PREFIX: &[u8] = b"user.";

/// `listxattr`: the `user.` xattrs of `inum`, NUL separated; the size needed when
/// `size` is 0.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_xattr_list(
    m: *mut c_void,
    inum: u64,
    buf: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    let out: &mut [u8] = if size == 0 || buf.is_null() {
        &mut []
    } else {
        // SAFETY: the VFS hands a buffer of `size` bytes.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) }
    };
    let mut n = 0usize;
    let mut short = false;
    let r = with_tree(fs, |t| {
        t.xattrs(inum, &mut |x| {
            if x.x_type() != x_type::USER {
                return ControlFlow::Continue(());
            }
            let len = USER_PREFIX.len() + x.name().len() + 1;
            if size != 0 {
                let Some(d) = out.get_mut(n..n + len) else {
                    short = true;
                    return ControlFlow::Break(());
                };
                d[..USER_PREFIX.len()].copy_from_slice(USER_PREFIX);
                d[USER_PREFIX.len()..len - 1].copy_from_slice(x.name());
                d[len - 1] = 0;
            }
            n += len;
            ControlFlow::Continue(())
        })
    });
    if r != 0 {
        r as isize
    } else if short {
        ERANGE.to_errno() as isize
    } else {
        n as isize
    }
}

/// `getxattr` of `user.<name>` on `inum`: the value's length, -ENODATA or -ERANGE.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_xattr_get(
    m: *mut c_void,
    inum: u64,
    name: *const c_char,
    len: usize,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    // SAFETY: the VFS hands the name without its prefix, valid for `len` bytes.
    let name = unsafe { core::slice::from_raw_parts(name.cast::<u8>(), len) };
    let mut ret: c_int = -(kernel::bindings::ENODATA as c_int);
    let r = with_tree(fs, |t| {
        t.xattrs(inum, &mut |x| {
            if x.x_type() != x_type::USER || x.name() != name {
                return ControlFlow::Continue(());
            }
            let v = x.value();
            ret = if size == 0 {
                v.len() as c_int
            } else if v.len() > size {
                ERANGE.to_errno()
            } else {
                // SAFETY: the VFS hands a buffer of `size` bytes, at least `v.len()`.
                unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), buf.cast::<u8>(), v.len()) };
                v.len() as c_int
            };
            ControlFlow::Break(())
        })
    });
    if r != 0 {
        r
    } else {
        ret
    }
}

/// `statfs`: capacity from the members, free space from the freespace btree.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_fs_statfs(m: *mut c_void, out: *mut shim::bch_rs_statfs) -> c_int {
    // SAFETY: `m` is a super block's `s_fs_info`, alive while the super block is.
    let fs = unsafe { fs_of(m) };
    let s = fs.sb();
    let bsize = u64::from(s.block_sectors().max(1)) * dread::SECTOR;
    let mut capacity = 0u64;
    for d in 0..fs.devs.len() {
        if let Some(mb) = s.member(d).filter(|mb| mb.exists()) {
            let buckets = mb.nbuckets().saturating_sub(u64::from(mb.first_bucket()));
            capacity = capacity.saturating_add(buckets.saturating_mul(u64::from(mb.bucket_size())));
        }
    }
    let mut free = 0u64;
    let keys = FsKeys(fs);
    let r = keys.range(ids::btree::FREESPACE, Bpos::MIN, Bpos::MAX, &mut |k, _| {
        if k.typ == KeyType::Set as u8 {
            let bs = s
                .member(k.p.inode as usize)
                .map(|mb| u64::from(mb.bucket_size()))
                .unwrap_or(0);
            free = free.saturating_add(u64::from(k.size).saturating_mul(bs));
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = r {
        return e.to_errno();
    }
    let uuid = s.uuid().0;
    let mut fsid = [0u8; 8];
    fsid.copy_from_slice(&uuid[..8]);
    let fsid = u64::from_le_bytes(fsid)
        ^ u64::from_le_bytes([
            uuid[8], uuid[9], uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15],
        ]);
    // SAFETY: `out` points to a struct the caller owns for the call.
    unsafe {
        *out = shim::bch_rs_statfs {
            blocks: capacity * dread::SECTOR / bsize,
            bfree: free.min(capacity) * dread::SECTOR / bsize,
            files: 0,
            ffree: 0,
            fsid,
            bsize: bsize as u32,
            namelen: 512,
        }
    };
    0
}
