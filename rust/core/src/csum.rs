// SPDX-License-Identifier: GPL-2.0
//! Checksums behind a small trait: the kernel hands in its own crc32c/crc64/xxhash,
//! userspace uses crates. Types follow `enum bch_csum_type`.

/// The hash primitives a caller provides, each in upstream's raw form.
pub trait Checksummer {
    /// Linux `crc32c(seed, data)`: CRC-32C with no pre/post inversion.
    fn crc32c(&self, seed: u32, data: &[u8]) -> u32;
    /// Linux `crc64_be(seed, data)`: CRC-64/ECMA-182, MSB first, no inversion.
    fn crc64_be(&self, seed: u64, data: &[u8]) -> u64;
    /// XXH64 of `data` with seed 0.
    fn xxh64(&self, data: &[u8]) -> u64;
}

/// `enum bch_csum_type`.
#[allow(missing_docs)]
pub mod ty {
    pub const NONE: u8 = 0;
    pub const CRC32C_NONZERO: u8 = 1;
    pub const CRC64_NONZERO: u8 = 2;
    pub const CHACHA20_POLY1305_80: u8 = 3;
    pub const CHACHA20_POLY1305_128: u8 = 4;
    pub const CRC32C: u8 = 5;
    pub const CRC64: u8 = 6;
    pub const XXHASH: u8 = 7;
    pub const NR: u8 = 8;
}

/// A 128-bit checksum as stored (`struct bch_csum`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Csum {
    /// Low word.
    pub lo: u64,
    /// High word.
    pub hi: u64,
}

impl Csum {
    /// Reads a `bch_csum` at `off`.
    pub fn read(b: &[u8], off: usize) -> Option<Csum> {
        Some(Csum {
            lo: super::bytes::le64(b, off)?,
            hi: super::bytes::le64(b, off + 8)?,
        })
    }

    /// Writes it at `off` (nothing when `b` is too short).
    pub fn write(&self, b: &mut [u8], off: usize) {
        if let Some(d) = b.get_mut(off..off + 16) {
            d[..8].copy_from_slice(&self.lo.to_le_bytes());
            d[8..].copy_from_slice(&self.hi.to_le_bytes());
        }
    }
}

/// Why a checksum could not be computed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CsumError {
    /// An unknown checksum type number.
    UnknownType(u8),
    /// Encrypted metadata (chacha20/poly1305): needs the key, not supported yet.
    Encrypted(u8),
}

/// Bytes of checksum a type stores (`bch_crc_bytes`).
pub fn csum_bytes(t: u8) -> usize {
    match t {
        ty::CRC32C_NONZERO | ty::CRC32C => 4,
        ty::CRC64_NONZERO | ty::CRC64 | ty::XXHASH => 8,
        ty::CHACHA20_POLY1305_80 => 10,
        ty::CHACHA20_POLY1305_128 => 16,
        _ => 0,
    }
}

/// `bch2_checksum`: the checksum of `data` with type `t` (unencrypted types only).
pub fn checksum(c: &dyn Checksummer, t: u8, data: &[u8]) -> Result<Csum, CsumError> {
    let lo = match t {
        ty::NONE => 0,
        ty::CRC32C_NONZERO => (c.crc32c(u32::MAX, data) ^ u32::MAX) as u64,
        ty::CRC32C => c.crc32c(0, data) as u64,
        ty::CRC64_NONZERO => c.crc64_be(u64::MAX, data) ^ u64::MAX,
        ty::CRC64 => c.crc64_be(0, data),
        ty::XXHASH => c.xxh64(data),
        ty::CHACHA20_POLY1305_80 | ty::CHACHA20_POLY1305_128 => {
            return Err(CsumError::Encrypted(t))
        }
        _ => return Err(CsumError::UnknownType(t)),
    };
    Ok(Csum { lo, hi: 0 })
}

/// A stand-in for the hash functions in the core's own tests: cheap folds, not
/// the real CRCs (tests that need the real ones live in the tool).
#[cfg(test)]
pub(crate) struct TestSum;

#[cfg(test)]
impl Checksummer for TestSum {
    fn crc32c(&self, seed: u32, d: &[u8]) -> u32 {
        d.iter().fold(seed, |a, &b| a.rotate_left(3) ^ u32::from(b))
    }
    fn crc64_be(&self, seed: u64, d: &[u8]) -> u64 {
        d.iter().fold(seed, |a, &b| a.rotate_left(5) ^ u64::from(b))
    }
    fn xxh64(&self, d: &[u8]) -> u64 {
        d.len() as u64
    }
}
