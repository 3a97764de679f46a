// SPDX-License-Identifier: GPL-2.0
//! Userspace hash primitives for the core's checksum trait, from well-kept crates.

use bcachefs_core::csum::Checksummer;

/// crc32c, crc64 (ECMA-182, MSB first) and xxh64 from crates.
pub struct Hashes;

static CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_ECMA_182);

impl Checksummer for Hashes {
    fn crc32c(&self, seed: u32, data: &[u8]) -> u32 {
        // The crate computes the standard (inverted) form; Linux's crc32c() is raw.
        !crc32c::crc32c_append(!seed, data)
    }
    fn crc64_be(&self, seed: u64, data: &[u8]) -> u64 {
        let mut d = CRC64.digest_with_initial(seed);
        d.update(data);
        d.finalize()
    }
    fn xxh64(&self, data: &[u8]) -> u64 {
        xxhash_rust::xxh64::xxh64(data, 0)
    }
}
