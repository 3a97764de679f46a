// SPDX-License-Identifier: GPL-2.0

//! The kernel's hash primitives behind the format core's [`Checksummer`].

use crate::format::csum::Checksummer;
use crate::shim;

/// crc32c, crc64_be and xxh64 from the kernel's libraries (through C shims).
pub(crate) struct KernelHashes;

impl Checksummer for KernelHashes {
    fn crc32c(&self, seed: u32, data: &[u8]) -> u32 {
        // SAFETY: `data` is a valid slice for its length; the C function only reads it.
        unsafe { shim::bch_rs_crc32c(seed, data.as_ptr().cast(), data.len()) }
    }
    fn crc64_be(&self, seed: u64, data: &[u8]) -> u64 {
        // SAFETY: as above.
        unsafe { shim::bch_rs_crc64_be(seed, data.as_ptr().cast(), data.len()) }
    }
    fn xxh64(&self, data: &[u8]) -> u64 {
        // SAFETY: as above.
        unsafe { shim::bch_rs_xxh64(data.as_ptr().cast(), data.len()) }
    }
}
