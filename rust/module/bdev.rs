// SPDX-License-Identifier: GPL-2.0

//! Block devices: opened by path (read-only, or writable for a repair), read and
//! written synchronously (superblock, journal) or asynchronously with a completion
//! callback (btree nodes).

use kernel::prelude::*;

use crate::shim;
use kernel::error::to_result;

/// The most one bio reads or writes (shim.c's `BCH_RS_BIO_MAX_BYTES`).
pub(crate) const BIO_MAX_BYTES: usize = 1 << 20;

/// An open block device.
pub(crate) struct BlockDev {
    file: *mut shim::file,
    name: [u8; 32],
    name_len: usize,
    /// Size in 512-byte sectors.
    pub(crate) sectors: u64,
    /// Opened for writing.
    writable: bool,
}

/// Write flags (`BCH_RS_WRITE_*` of shim.h).
#[derive(Clone, Copy)]
pub(crate) struct WriteFlags(u32);

impl WriteFlags {
    /// REQ_FUA: on stable media when it completes.
    pub(crate) const FUA: WriteFlags = WriteFlags(shim::BCH_RS_WRITE_FUA);
    /// REQ_PREFLUSH | REQ_FUA: after everything written before it, and stable.
    pub(crate) const FLUSH_FUA: WriteFlags =
        WriteFlags(shim::BCH_RS_WRITE_FUA | shim::BCH_RS_WRITE_PREFLUSH);
}

// SAFETY: the `struct file` is reference counted by the kernel and used only through
// thread-safe block layer calls; `BlockDev` owns one reference.
unsafe impl Send for BlockDev {}
// SAFETY: as above: every method takes the file read-only.
unsafe impl Sync for BlockDev {}

impl BlockDev {
    /// Opens the block device at `path` for reading, and for writing if `write`.
    pub(crate) fn open(path: &CStr, write: bool) -> Result<Self> {
        let mut err: c_int = 0;
        // SAFETY: `path` is NUL terminated; `err` is a valid out pointer.
        let file =
            unsafe { shim::bch_rs_bdev_open(path.as_char_ptr(), c_int::from(write), &mut err) };
        if file.is_null() {
            return Err(Error::from_errno(err));
        }
        let mut name = [0u8; 32];
        // SAFETY: `file` is an open block device file; `name` is writable for its length.
        unsafe { shim::bch_rs_bdev_name(file, name.as_mut_ptr().cast(), name.len()) };
        let name_len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        // SAFETY: as above.
        let sectors = unsafe { shim::bch_rs_bdev_sectors(file) };
        Ok(BlockDev {
            file,
            name,
            name_len,
            sectors,
            writable: write,
        })
    }

    /// The device's size in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        self.sectors
    }

    /// A read past the end of the device (a corrupt pointer) is refused here.
    fn check_range(&self, sector: u64, len: usize) -> Result {
        let end = sector
            .checked_add((len as u64).div_ceil(512))
            .ok_or(ERANGE)?;
        if end > self.sectors {
            return Err(ERANGE);
        }
        Ok(())
    }

    /// The kernel's name of the device (`vda`).
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    /// Reads `buf.len()` bytes (a multiple of 512) at `sector` and waits.
    pub(crate) fn read(&self, sector: u64, buf: &mut [u8]) -> Result {
        self.check_range(sector, buf.len())?;
        // SAFETY: `buf` is valid for writes of its length and outlives the call,
        // which waits for the IO.
        let ret = unsafe {
            shim::bch_rs_bdev_read_sync(self.file, sector, buf.as_mut_ptr().cast(), buf.len())
        };
        to_result(ret)
    }

    /// Starts a read of `len` bytes at `sector` into `buf`; the endio of `kind`
    /// (`bch_rs_read_endio` for a node, `bch_rs_data_read_endio` for file data) is
    /// called with `private` when it completes.
    ///
    /// # Safety
    ///
    /// `buf` must stay valid for writes of `len` bytes, and `private` valid, until
    /// the completion has run. Nothing else may access `buf` until then.
    pub(crate) unsafe fn read_async(
        &self,
        sector: u64,
        buf: *mut u8,
        len: usize,
        private: *const c_void,
        kind: ReadKind,
    ) -> Result {
        self.check_range(sector, len)?;
        let data = c_int::from(kind == ReadKind::Data);
        // SAFETY: the caller guarantees `buf` and `private` stay valid until endio.
        let ret = unsafe {
            shim::bch_rs_bdev_read_async(
                self.file,
                sector,
                buf.cast(),
                len,
                private.cast_mut(),
                data,
            )
        };
        to_result(ret)
    }
}

/// What an asynchronous read is for: it picks the bio's flags and its endio.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadKind {
    /// A btree node (REQ_META; `bch_rs_read_endio`).
    Node,
    /// File data (`bch_rs_data_read_endio`).
    Data,
}

impl BlockDev {
    fn check_write(&self, sector: u64, len: usize) -> Result {
        if !self.writable {
            return Err(EROFS);
        }
        self.check_range(sector, len)
    }

    /// Writes `buf` (a multiple of 512 bytes) at `sector` and waits.
    pub(crate) fn write(&self, sector: u64, buf: &[u8], flags: WriteFlags) -> Result {
        self.check_write(sector, buf.len())?;
        // SAFETY: `buf` is valid for reads of its length and outlives the call,
        // which waits for the IO.
        let ret = unsafe {
            shim::bch_rs_bdev_write_sync(self.file, sector, buf.as_ptr().cast(), buf.len(), flags.0)
        };
        to_result(ret)
    }

    /// Starts a write of `len` bytes (at most 1 MiB) of `buf` at `sector`;
    /// `bch_rs_write_endio` is called with `private` when it completes.
    ///
    /// # Safety
    ///
    /// `buf` must stay valid and unchanged for `len` bytes, and `private` valid,
    /// until the completion has run.
    pub(crate) unsafe fn write_async(
        &self,
        sector: u64,
        buf: *const u8,
        len: usize,
        flags: WriteFlags,
        private: *const c_void,
    ) -> Result {
        self.check_write(sector, len)?;
        // SAFETY: the caller guarantees `buf` and `private` stay valid until endio.
        let ret = unsafe {
            shim::bch_rs_bdev_write_async(
                self.file,
                sector,
                buf.cast(),
                len,
                flags.0,
                private.cast_mut(),
            )
        };
        to_result(ret)
    }

    /// Flushes the device's write cache and waits.
    pub(crate) fn flush(&self) -> Result {
        if !self.writable {
            return Err(EROFS);
        }
        // SAFETY: `file` is an open block device file.
        to_result(unsafe { shim::bch_rs_bdev_flush(self.file) })
    }
}

impl Drop for BlockDev {
    fn drop(&mut self) {
        // SAFETY: `file` was opened by `open` and is released exactly once, here.
        unsafe { shim::bch_rs_bdev_close(self.file) };
    }
}

/// Makes the CPU's view of a buffer a device just wrote coherent (vmalloc aliases).
pub(crate) fn read_done(buf: &[u8]) {
    // SAFETY: `buf` is a valid slice; the call only flushes cache lines covering it.
    unsafe { shim::bch_rs_read_done(buf.as_ptr().cast_mut().cast(), buf.len()) };
}
