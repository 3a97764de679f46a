// SPDX-License-Identifier: GPL-2.0
//! String hashes of the hashed btrees (dirents, xattrs): where a name's key lives.
//!
//! A directory's inode picks the hash (`INODE_STR_HASH`: crc32c, crc64 or siphash)
//! and carries the seed (`bi_hash_seed`). A name's key sits at offset
//! `hash(name)` in its directory, or, after collisions, at the next free offset
//! (linear probing); a lookup walks forward from the hash until it meets a hole.

use super::super::csum::Checksummer;
use super::inode_format::{flags_str_hash, InodeUnpacked};

/// `enum bch_str_hash_type`.
pub mod ty {
    /// `BCH_STR_HASH_crc32c`.
    pub const CRC32C: u8 = 0;
    /// `BCH_STR_HASH_crc64`.
    pub const CRC64: u8 = 1;
    /// `BCH_STR_HASH_siphash_old`: keyed by a sha256 of the seed.
    pub const SIPHASH_OLD: u8 = 2;
    /// `BCH_STR_HASH_siphash`.
    pub const SIPHASH: u8 = 3;
}

/// `BCH_INODE_31bit_dirent_offset`: dirent offsets of this directory fit in 31 bits.
pub const FLAG_31BIT_DIRENT_OFFSET: u32 = 1 << 11;

/// What a directory's (or file's, for xattrs) hashes depend on (`bch_hash_info`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HashInfo {
    /// `enum bch_str_hash_type`.
    pub typ: u8,
    /// `bi_hash_seed`: the crc hashes' seed and siphash's k0 (k1 is zero).
    pub seed: u64,
    /// Dirent offsets are masked to 31 bits.
    pub is_31bit: bool,
}

impl HashInfo {
    /// The hash info of an inode with flags `bi_flags` and seed `bi_hash_seed`.
    pub fn new(bi_flags: u32, bi_hash_seed: u64) -> HashInfo {
        HashInfo {
            typ: flags_str_hash(u64::from(bi_flags)),
            seed: bi_hash_seed,
            is_31bit: bi_flags & FLAG_31BIT_DIRENT_OFFSET != 0,
        }
    }

    /// The hash info of inode `u`.
    pub fn of(u: &InodeUnpacked) -> HashInfo {
        HashInfo::new(u.flags, u.hash_seed)
    }
}

/// SipHash-2-4 of `data` with key (`k0`, `k1`).
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    let full = data.len() / 8 * 8;
    let mut i = 0;
    while i < full {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[i..i + 8]);
        compress(&mut v, u64::from_le_bytes(w));
        i += 8;
    }
    let mut last = [0u8; 8];
    last[..data.len() - full].copy_from_slice(&data[full..]);
    let m = u64::from_le_bytes(last) | ((data.len() as u64 & 0xff) << 56);
    compress(&mut v, m);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// `bch2_str_hash_end` over `name` (before the dirent's adjustments); `None` for a
/// hash type this code cannot compute (`siphash_old` needs sha256, unknown types).
pub fn str_hash(c: &dyn Checksummer, info: &HashInfo, name: &[u8]) -> Option<u64> {
    let seed = info.seed.to_le_bytes();
    match info.typ {
        ty::CRC32C => Some(c.crc32c(c.crc32c(!0, &seed), name) as u64),
        ty::CRC64 => Some(c.crc64_be(c.crc64_be(!0, &seed), name) >> 1),
        ty::SIPHASH => Some(siphash24(info.seed, 0, name) >> 1),
        _ => None,
    }
}

/// `bch2_dirent_hash`: the offset a dirent named `name` hashes to (0 and 1 are
/// kept for `.` and `..`).
pub fn dirent_hash(c: &dyn Checksummer, info: &HashInfo, name: &[u8]) -> Option<u64> {
    let mask = if info.is_31bit {
        i32::MAX as u64
    } else {
        u64::MAX
    };
    str_hash(c, info, name).map(|h| (h & mask).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vectors() {
        // The SipHash paper's key 00..0f and messages 00, 00 01, ... (vectors 0, 1, 7, 8, 15).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(k0, k1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(k0, k1, &msg[..7]), 0xab02_00f5_8b01_d137);
        assert_eq!(siphash24(k0, k1, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(k0, k1, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    struct NoCrc;
    impl Checksummer for NoCrc {
        fn crc32c(&self, _: u32, _: &[u8]) -> u32 {
            0
        }
        fn crc64_be(&self, _: u64, _: &[u8]) -> u64 {
            0
        }
        fn xxh64(&self, _: &[u8]) -> u64 {
            0
        }
    }

    #[test]
    fn dirent_hash_keeps_dots_free_and_masks_31bit() {
        let mut info = HashInfo {
            typ: ty::CRC32C,
            seed: 0,
            is_31bit: false,
        };
        // A zero hash is moved up to 2.
        assert_eq!(dirent_hash(&NoCrc, &info, b"x"), Some(2));
        info.typ = ty::SIPHASH;
        let h = dirent_hash(&NoCrc, &info, b"name").unwrap();
        info.is_31bit = true;
        assert_eq!(
            dirent_hash(&NoCrc, &info, b"name"),
            Some((h & 0x7fff_ffff).max(2))
        );
        info.typ = ty::SIPHASH_OLD;
        assert_eq!(dirent_hash(&NoCrc, &info, b"name"), None);
    }
}
