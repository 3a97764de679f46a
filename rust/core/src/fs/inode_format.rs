// SPDX-License-Identifier: GPL-2.0
//! On-disk inodes (`inode`, `inode_v2`, `inode_v3`, `inode_generation`) and their
//! unpacking into [`InodeUnpacked`].
//!
//! An inode value is a fixed header followed by a list of variable-length fields, in
//! a fixed order ([`FIELDS_V3`], or [`FIELDS_V2`] for v1/v2 inodes, which also carry
//! `bi_size` and `bi_sectors` there). `nr_fields` in the flags says how many are
//! present; the rest are zero. Fields are encoded as:
//! - v2/v3 and v1 with `NEW_VARINT`: [`varint_decode`], one varint per field, two for
//!   the 96-bit timestamps (the second must be zero);
//! - v1 otherwise: the old big-endian encoding of [`decode_field_v1`].
//!
//! Unpacking follows upstream `bch2_inode_unpack`: a field that fails to decode or
//! does not fit its type zeroes itself and every later field, and the rest of the
//! inode is still returned (see [`InodeUnpacked::error_field`]).

use super::super::bkey::Bkey;
use super::super::bytes::{bits, le16z, le32z, le64z, u8z};
use super::super::ids::KeyType;

/// Width in bits of each v3 field, which determines both its encoding (two varints
/// for 96) and the range of values it may hold (the unpacked struct's type: u96 is
/// a u64 in memory).
pub const FIELDS_V3: [(&str, u32); NR_FIELDS] = [
    ("bi_atime", 96),
    ("bi_ctime", 96),
    ("bi_mtime", 96),
    ("bi_otime", 96),
    ("bi_uid", 32),
    ("bi_gid", 32),
    ("bi_nlink", 32),
    ("bi_generation", 32),
    ("bi_dev", 32),
    ("bi_data_checksum", 8),
    ("bi_compression", 8),
    ("bi_project", 32),
    ("bi_background_compression", 8),
    ("bi_data_replicas", 8),
    ("bi_promote_target", 16),
    ("bi_foreground_target", 16),
    ("bi_background_target", 16),
    ("bi_erasure_code", 16),
    ("bi_fields_set", 16),
    ("bi_dir", 64),
    ("bi_dir_offset", 64),
    ("bi_subvol", 32),
    ("bi_parent_subvol", 32),
    ("bi_nocow", 8),
    ("bi_depth", 32),
    ("bi_inodes_32bit", 8),
    ("bi_casefold", 8),
    ("bi_unused_ec_max_data_blocks", 8),
];

/// Number of v3 fields.
pub const NR_FIELDS: usize = 28;

/// Where a v1/v2 field goes: a v3 field index, or one of the two fields v3 keeps in
/// its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum V2Slot {
    /// Index into [`FIELDS_V3`].
    Field(usize),
    /// `bi_size`.
    Size,
    /// `bi_sectors`.
    Sectors,
}

/// The v1/v2 field list (`BCH_INODE_FIELDS_v2()`): name, bits, destination.
pub const FIELDS_V2: [(&str, u32, V2Slot); 25] = [
    ("bi_atime", 96, V2Slot::Field(field::ATIME)),
    ("bi_ctime", 96, V2Slot::Field(field::CTIME)),
    ("bi_mtime", 96, V2Slot::Field(field::MTIME)),
    ("bi_otime", 96, V2Slot::Field(field::OTIME)),
    ("bi_size", 64, V2Slot::Size),
    ("bi_sectors", 64, V2Slot::Sectors),
    ("bi_uid", 32, V2Slot::Field(field::UID)),
    ("bi_gid", 32, V2Slot::Field(field::GID)),
    ("bi_nlink", 32, V2Slot::Field(field::NLINK)),
    ("bi_generation", 32, V2Slot::Field(field::GENERATION)),
    ("bi_dev", 32, V2Slot::Field(field::DEV)),
    ("bi_data_checksum", 8, V2Slot::Field(field::DATA_CHECKSUM)),
    ("bi_compression", 8, V2Slot::Field(field::COMPRESSION)),
    ("bi_project", 32, V2Slot::Field(field::PROJECT)),
    (
        "bi_background_compression",
        8,
        V2Slot::Field(field::BACKGROUND_COMPRESSION),
    ),
    ("bi_data_replicas", 8, V2Slot::Field(field::DATA_REPLICAS)),
    (
        "bi_promote_target",
        16,
        V2Slot::Field(field::PROMOTE_TARGET),
    ),
    (
        "bi_foreground_target",
        16,
        V2Slot::Field(field::FOREGROUND_TARGET),
    ),
    (
        "bi_background_target",
        16,
        V2Slot::Field(field::BACKGROUND_TARGET),
    ),
    ("bi_erasure_code", 16, V2Slot::Field(field::ERASURE_CODE)),
    ("bi_fields_set", 16, V2Slot::Field(field::FIELDS_SET)),
    ("bi_dir", 64, V2Slot::Field(field::DIR)),
    ("bi_dir_offset", 64, V2Slot::Field(field::DIR_OFFSET)),
    ("bi_subvol", 32, V2Slot::Field(field::SUBVOL)),
    ("bi_parent_subvol", 32, V2Slot::Field(field::PARENT_SUBVOL)),
];

/// Indices of the v3 fields in [`InodeUnpacked::fields`].
#[allow(missing_docs)]
pub mod field {
    pub const ATIME: usize = 0;
    pub const CTIME: usize = 1;
    pub const MTIME: usize = 2;
    pub const OTIME: usize = 3;
    pub const UID: usize = 4;
    pub const GID: usize = 5;
    pub const NLINK: usize = 6;
    pub const GENERATION: usize = 7;
    pub const DEV: usize = 8;
    pub const DATA_CHECKSUM: usize = 9;
    pub const COMPRESSION: usize = 10;
    pub const PROJECT: usize = 11;
    pub const BACKGROUND_COMPRESSION: usize = 12;
    pub const DATA_REPLICAS: usize = 13;
    pub const PROMOTE_TARGET: usize = 14;
    pub const FOREGROUND_TARGET: usize = 15;
    pub const BACKGROUND_TARGET: usize = 16;
    pub const ERASURE_CODE: usize = 17;
    pub const FIELDS_SET: usize = 18;
    pub const DIR: usize = 19;
    pub const DIR_OFFSET: usize = 20;
    pub const SUBVOL: usize = 21;
    pub const PARENT_SUBVOL: usize = 22;
    pub const NOCOW: usize = 23;
    pub const DEPTH: usize = 24;
    pub const INODES_32BIT: usize = 25;
    pub const CASEFOLD: usize = 26;
    pub const UNUSED_EC_MAX_DATA_BLOCKS: usize = 27;
}

/// `BCH_INODE_FLAGS()`: names of the flag bits below bit 20.
pub const INODE_FLAG_NAMES: [&str; 15] = [
    "sync",
    "immutable",
    "append",
    "nodump",
    "noatime",
    "i_size_dirty",
    "i_sectors_dirty",
    "unlinked",
    "backptr_untrusted",
    "has_child_snapshot",
    "has_case_insensitive",
    "31bit_dirent_offset",
    "has_inode_opts",
    "has_access_acl",
    "has_default_acl",
];

/// Inode flag bits.
pub mod flag {
    /// `BCH_INODE_unlinked`
    pub const UNLINKED: u32 = 1 << 7;
    /// `BCH_INODE_has_child_snapshot`
    pub const HAS_CHILD_SNAPSHOT: u32 = 1 << 9;
}

/// `bch2_str_hash_types[]`.
pub const STR_HASH_NAMES: [&str; 4] = ["crc32c", "crc64", "siphash_old", "siphash"];

/// Byte offsets of the fixed headers.
pub mod layout {
    /// v1: `bi_hash_seed`.
    pub const V1_HASH_SEED: usize = 0;
    /// v1: `bi_flags` (le32).
    pub const V1_FLAGS: usize = 8;
    /// v1: `bi_mode` (le16).
    pub const V1_MODE: usize = 12;
    /// v1: fields.
    pub const V1_FIELDS: usize = 14;
    /// v2: `bi_journal_seq`.
    pub const V2_JOURNAL_SEQ: usize = 0;
    /// v2: `bi_hash_seed`.
    pub const V2_HASH_SEED: usize = 8;
    /// v2: `bi_flags` (le64).
    pub const V2_FLAGS: usize = 16;
    /// v2: `bi_mode` (le16).
    pub const V2_MODE: usize = 24;
    /// v2: fields.
    pub const V2_FIELDS: usize = 26;
    /// v3: `bi_journal_seq`.
    pub const V3_JOURNAL_SEQ: usize = 0;
    /// v3: `bi_hash_seed`.
    pub const V3_HASH_SEED: usize = 8;
    /// v3: `bi_flags` (le64; mode in bits 36..52).
    pub const V3_FLAGS: usize = 16;
    /// v3: `bi_sectors`.
    pub const V3_SECTORS: usize = 24;
    /// v3: `bi_size`.
    pub const V3_SIZE: usize = 32;
    /// v3: `bi_version`.
    pub const V3_VERSION: usize = 40;
    /// v3: fields.
    pub const V3_FIELDS: usize = 48;
    /// `inode_generation`: `bi_generation` (le32).
    pub const GENERATION: usize = 0;
}

/// `INODEv*_STR_HASH`: bits 20..24 of the flags.
pub fn flags_str_hash(flags: u64) -> u8 {
    bits(flags, 20, 24) as u8
}
/// `INODEv*_NR_FIELDS`: bits 24..31 of the flags.
pub fn flags_nr_fields(flags: u64) -> usize {
    bits(flags, 24, 31) as usize
}
/// `INODEv1_NEW_VARINT`: bit 31 of a v1 inode's flags.
pub fn flags_v1_new_varint(flags: u64) -> bool {
    bits(flags, 31, 32) != 0
}
/// `INODEv3_FIELDS_START`: bits 31..36 of a v3 inode's flags, in u64s.
pub fn flags_v3_fields_start(flags: u64) -> usize {
    bits(flags, 31, 36) as usize
}
/// `INODEv3_MODE`: bits 36..52 of a v3 inode's flags.
pub fn flags_v3_mode(flags: u64) -> u16 {
    bits(flags, 36, 52) as u16
}

/// `bch2_varint_decode_fast`: the varint at `pos` of `b`, and its length in bytes.
/// The number of trailing one bits of the first byte gives the extra bytes; nine
/// bytes (`0xff` then a full u64) for values of 57 bits and more. `None` when it
/// runs past the end of `b`.
pub fn varint_decode(b: &[u8], pos: usize) -> Option<(u64, usize)> {
    let first = u8z(b, pos);
    let bytes = first.trailing_ones() as usize + 1;
    if pos.checked_add(bytes)? > b.len() {
        return None;
    }
    let v = if bytes < 9 {
        (le64z(b, pos) >> bytes) & (u64::MAX >> (64 - 7 * bytes))
    } else {
        le64z(b, pos.checked_add(1)?)
    };
    Some((v, bytes))
}

/// The old inode field encoding (`inode_decode_field`): a big-endian number whose
/// first byte's highest set bit gives the length (`1, 2, 3, 4, 6, 8, 10, 13` bytes)
/// and is cleared. Returns `(hi, lo, bits, bytes)`: the 128-bit value, its width in
/// bits and the encoded length; `None` when malformed or running past the end.
pub fn decode_field_v1(b: &[u8], pos: usize) -> Option<(u64, u64, u32, usize)> {
    const BYTE_TABLE: [usize; 8] = [1, 2, 3, 4, 6, 8, 10, 13];
    let first = *b.get(pos)?;
    if first == 0 {
        return None;
    }
    let shift = 8 - (7 - first.leading_zeros()) as usize; // 1..=8
    let bytes = *BYTE_TABLE.get(shift - 1)?;
    let src = b.get(pos..pos.checked_add(bytes)?)?;
    let mut be = [0u8; 16];
    let start = 16 - bytes;
    be[start..].copy_from_slice(src);
    be[start] ^= ((1u32 << 8) >> shift) as u8;
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&be[..8]);
    lo.copy_from_slice(&be[8..]);
    let hi = u64::from_be_bytes(hi);
    let lo = u64::from_be_bytes(lo);
    let fls = |x: u64| 64 - x.leading_zeros();
    let nbits = if hi != 0 { 64 + fls(hi) } else { fls(lo) };
    Some((hi, lo, nbits, bytes))
}

/// Whether `v` fits the in-memory type of a field of `bits` bits (u96 is a u64).
fn fits(v: u64, bits: u32) -> bool {
    match bits {
        8 => v <= u8::MAX as u64,
        16 => v <= u16::MAX as u64,
        32 => v <= u32::MAX as u64,
        _ => true,
    }
}

/// `struct bch_inode_unpacked`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct InodeUnpacked {
    /// Inode number (`k.p.offset`).
    pub inum: u64,
    /// Snapshot (`k.p.snapshot`).
    pub snapshot: u32,
    /// Journal sequence number of the last update (0 for v1).
    pub journal_seq: u64,
    /// Hash seed (raw little-endian u64).
    pub hash_seed: u64,
    /// `bi_size`.
    pub size: u64,
    /// `bi_sectors`.
    pub sectors: u64,
    /// `bi_version`.
    pub version: u64,
    /// `bi_flags`: the low 32 bits of the on-disk flags.
    pub flags: u32,
    /// `bi_mode`.
    pub mode: u16,
    /// The fields in [`FIELDS_V3`] order.
    pub fields: [u64; NR_FIELDS],
    /// Index (in the on-disk field list) of the field that failed to unpack, if any:
    /// it and every later field read as zero.
    pub error_field: Option<usize>,
}

impl InodeUnpacked {
    /// A field by its name in [`FIELDS_V3`] (`"bi_nlink"`), or one of `bi_size`,
    /// `bi_sectors`, `bi_version`, `bi_journal_seq`.
    pub fn get(&self, name: &str) -> Option<u64> {
        match name {
            "bi_size" => return Some(self.size),
            "bi_sectors" => return Some(self.sectors),
            "bi_version" => return Some(self.version),
            "bi_journal_seq" => return Some(self.journal_seq),
            _ => {}
        }
        FIELDS_V3
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| self.fields[i])
    }

    /// `INODE_STR_HASH`: the string hash type.
    pub fn str_hash(&self) -> u8 {
        flags_str_hash(self.flags as u64)
    }

    /// File type bits of the mode (`mode_to_type`, a `DT_*` value).
    pub fn d_type(&self) -> u8 {
        ((self.mode >> 12) & 15) as u8
    }

    /// `bi_nlink` with the bias of directories (2) or files (1) added, 0 when
    /// unlinked (`bch2_inode_nlink_get`).
    pub fn nlink(&self) -> u64 {
        if self.flags & flag::UNLINKED != 0 {
            return 0;
        }
        let bias = if self.mode & 0o170000 == 0o040000 {
            2
        } else {
            1
        };
        self.fields[field::NLINK].wrapping_add(bias)
    }
}

/// Whether key type `typ` is an inode (`bkey_is_inode`).
pub fn is_inode(typ: u8) -> bool {
    typ == KeyType::Inode as u8 || typ == KeyType::InodeV2 as u8 || typ == KeyType::InodeV3 as u8
}

/// Varint-encoded fields (`bch2_inode_unpack_v2` / `_v3`): `list` gives each
/// field's width and destination.
fn unpack_varint_fields(
    u: &mut InodeUnpacked,
    b: &[u8],
    start: usize,
    nr_fields: usize,
    list: &[(u32, V2Slot)],
) {
    let mut pos = start;
    for (i, &(nbits, slot)) in list.iter().enumerate() {
        if i >= nr_fields {
            break;
        }
        let mut ok = false;
        if let Some((v0, n0)) = varint_decode(b, pos) {
            pos += n0;
            let mut v1 = 0;
            let mut good = true;
            if nbits > 64 {
                match varint_decode(b, pos) {
                    Some((x, n1)) => {
                        v1 = x;
                        pos += n1;
                    }
                    None => good = false,
                }
            }
            if good && v1 == 0 && fits(v0, nbits) {
                set_slot(u, slot, v0);
                ok = true;
            }
        }
        if !ok {
            error_from(u, i, list);
            return;
        }
    }
}

/// The old encoding (`bch2_inode_unpack_v1`).
fn unpack_v1_fields(u: &mut InodeUnpacked, b: &[u8], start: usize, nr_fields: usize) {
    let mut pos = start;
    for (i, &(_, nbits, slot)) in FIELDS_V2.iter().enumerate() {
        if i == nr_fields {
            return;
        }
        match decode_field_v1(b, pos) {
            Some((_, lo, w, n)) if w <= nbits.min(64) => {
                set_slot(u, slot, lo);
                pos += n;
            }
            _ => {
                error_from(u, i, &V2_LIST);
                return;
            }
        }
    }
}

fn set_slot(u: &mut InodeUnpacked, slot: V2Slot, v: u64) {
    match slot {
        V2Slot::Field(i) => {
            if let Some(f) = u.fields.get_mut(i) {
                *f = v;
            }
        }
        V2Slot::Size => u.size = v,
        V2Slot::Sectors => u.sectors = v,
    }
}

/// `bch2_inode_unpack_v*_error`: zero field `i` of `list` and every later one.
fn error_from(u: &mut InodeUnpacked, i: usize, list: &[(u32, V2Slot)]) {
    u.error_field = Some(i);
    for &(_, slot) in list.iter().skip(i) {
        set_slot(u, slot, 0);
    }
}

const V2_LIST: [(u32, V2Slot); 25] = {
    let mut l = [(0u32, V2Slot::Size); 25];
    let mut i = 0;
    while i < 25 {
        l[i] = (FIELDS_V2[i].1, FIELDS_V2[i].2);
        i += 1;
    }
    l
};

const V3_LIST: [(u32, V2Slot); NR_FIELDS] = {
    let mut l = [(0u32, V2Slot::Size); NR_FIELDS];
    let mut i = 0;
    while i < NR_FIELDS {
        l[i] = (FIELDS_V3[i].1, V2Slot::Field(i));
        i += 1;
    }
    l
};

/// `bch2_inode_unpack`: unpacks an `inode`, `inode_v2` or `inode_v3` value. `None`
/// for other key types. Never fails otherwise: a short or corrupt value unpacks to
/// zeroes where it is missing (see [`InodeUnpacked::error_field`]).
pub fn unpack(k: &Bkey, v: &[u8]) -> Option<InodeUnpacked> {
    let mut u = InodeUnpacked {
        inum: k.p.offset,
        snapshot: k.p.snapshot,
        ..Default::default()
    };
    if k.typ == KeyType::InodeV3 as u8 {
        let flags = le64z(v, layout::V3_FLAGS);
        u.journal_seq = le64z(v, layout::V3_JOURNAL_SEQ);
        u.hash_seed = le64z(v, layout::V3_HASH_SEED);
        u.flags = flags as u32;
        u.sectors = le64z(v, layout::V3_SECTORS);
        u.size = le64z(v, layout::V3_SIZE);
        u.version = le64z(v, layout::V3_VERSION);
        u.mode = flags_v3_mode(flags);
        unpack_varint_fields(
            &mut u,
            v,
            layout::V3_FIELDS,
            flags_nr_fields(flags),
            &V3_LIST,
        );
    } else if k.typ == KeyType::InodeV2 as u8 {
        let flags = le64z(v, layout::V2_FLAGS);
        u.journal_seq = le64z(v, layout::V2_JOURNAL_SEQ);
        u.hash_seed = le64z(v, layout::V2_HASH_SEED);
        u.flags = flags as u32;
        u.mode = le16z(v, layout::V2_MODE);
        unpack_varint_fields(
            &mut u,
            v,
            layout::V2_FIELDS,
            flags_nr_fields(flags),
            &V2_LIST,
        );
    } else if k.typ == KeyType::Inode as u8 {
        let flags = le32z(v, layout::V1_FLAGS) as u64;
        u.hash_seed = le64z(v, layout::V1_HASH_SEED);
        u.flags = flags as u32;
        u.mode = le16z(v, layout::V1_MODE);
        if flags_v1_new_varint(flags) {
            unpack_varint_fields(
                &mut u,
                v,
                layout::V1_FIELDS,
                flags_nr_fields(flags),
                &V2_LIST,
            );
        } else {
            unpack_v1_fields(&mut u, v, layout::V1_FIELDS, flags_nr_fields(flags));
        }
    } else {
        return None;
    }
    Some(u)
}

/// `bi_generation` of an `inode_generation` value.
pub fn generation(v: &[u8]) -> u32 {
    le32z(v, layout::GENERATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> std::vec::Vec<u8> {
        // bch2_varint_encode_fast
        let bits = 64 - (v | 1).leading_zeros();
        let bytes = bits.div_ceil(7);
        if bytes < 9 {
            let w = (v << bytes) | !(!0u64 << (bytes - 1));
            w.to_le_bytes()[..bytes as usize].to_vec()
        } else {
            let mut o = std::vec![255u8];
            o.extend_from_slice(&v.to_le_bytes());
            o
        }
    }

    #[test]
    fn varint_roundtrip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            1 << 20,
            413588203,
            u32::MAX as u64,
            1 << 56,
            u64::MAX,
        ] {
            let e = enc(v);
            assert_eq!(varint_decode(&e, 0), Some((v, e.len())), "{v}");
        }
        assert_eq!(varint_decode(&[0xff, 1, 2], 0), None);
        assert_eq!(varint_decode(&[], 0), None);
    }

    #[test]
    fn v3_unpack() {
        let mut v = std::vec![0u8; 48];
        let nr = 3u64;
        let mode = 0o40755u64;
        let flags = (3u64 << 20) | (nr << 24) | (6 << 31) | (mode << 36);
        v[16..24].copy_from_slice(&flags.to_le_bytes());
        v.extend(enc(13588197));
        v.push(0);
        v.extend(enc(413588203));
        v.push(0);
        v.extend(enc(5));
        v.push(0);
        let k = Bkey {
            typ: KeyType::InodeV3 as u8,
            ..Default::default()
        };
        let u = unpack(&k, &v).unwrap();
        assert_eq!(u.mode, 0o40755);
        assert_eq!(u.fields[0], 13588197);
        assert_eq!(u.fields[1], 413588203);
        assert_eq!(u.fields[2], 5);
        assert_eq!(u.error_field, None);
        assert_eq!(u.str_hash(), 3);
        assert_eq!(u.flags, (flags as u32));
        // truncated: error at field 2, zeroed from there
        let u = unpack(&k, &v[..v.len() - 2]).unwrap();
        assert_eq!(u.error_field, Some(2));
        assert_eq!(u.fields[1], 413588203);
        assert_eq!(u.fields[2], 0);
    }

    #[test]
    fn v1_field() {
        // one byte: 0x80 | value (7 bits)
        assert_eq!(decode_field_v1(&[0x85], 0), Some((0, 5, 3, 1)));
        // two bytes: 0x40 marker
        assert_eq!(decode_field_v1(&[0x41, 0x02], 0), Some((0, 0x102, 9, 2)));
        assert_eq!(decode_field_v1(&[0x00], 0), None);
        assert_eq!(decode_field_v1(&[0x01], 0), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut v = [0u8; 80];
        for seed in 0..3000u64 {
            super::super::super::bytes::fill_pseudo_random(&mut v, seed);
            for typ in [8u8, 23, 29] {
                for len in [0usize, 5, 14, 26, 48, 60, 80] {
                    let k = Bkey {
                        typ,
                        ..Default::default()
                    };
                    let _ = unpack(&k, &v[..len]);
                }
            }
        }
    }
}
