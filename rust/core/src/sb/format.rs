// SPDX-License-Identifier: GPL-2.0
//! On-disk superblock layout (`struct bch_sb`, `struct bch_sb_layout`, field types).

/// Sector of the first superblock.
pub const SB_SECTOR: u64 = 8;
/// Sector of the layout copy.
pub const LAYOUT_SECTOR: u64 = 7;
/// Bytes of `struct bch_sb_layout`.
pub const LAYOUT_BYTES: usize = 512;

/// Offsets in `struct bch_sb`.
pub const SB_VERSION: usize = 16;
#[allow(missing_docs)]
pub const SB_VERSION_MIN: usize = 18;
#[allow(missing_docs)]
pub const SB_MAGIC: usize = 24;
#[allow(missing_docs)]
pub const SB_UUID: usize = 40;
#[allow(missing_docs)]
pub const SB_USER_UUID: usize = 56;
#[allow(missing_docs)]
pub const SB_LABEL: usize = 72;
#[allow(missing_docs)]
pub const SB_OFFSET: usize = 104;
#[allow(missing_docs)]
pub const SB_SEQ: usize = 112;
#[allow(missing_docs)]
pub const SB_BLOCK_SIZE: usize = 120;
#[allow(missing_docs)]
pub const SB_DEV_IDX: usize = 122;
#[allow(missing_docs)]
pub const SB_NR_DEVICES: usize = 123;
#[allow(missing_docs)]
pub const SB_U64S: usize = 124;
#[allow(missing_docs)]
pub const SB_TIME_BASE_LO: usize = 128;
#[allow(missing_docs)]
pub const SB_TIME_BASE_HI: usize = 136;
#[allow(missing_docs)]
pub const SB_TIME_PRECISION: usize = 140;
#[allow(missing_docs)]
pub const SB_FLAGS: usize = 144;
#[allow(missing_docs)]
pub const SB_WRITE_TIME: usize = 200;
#[allow(missing_docs)]
pub const SB_FEATURES: usize = 208;
#[allow(missing_docs)]
pub const SB_COMPAT: usize = 224;
#[allow(missing_docs)]
pub const SB_LAYOUT: usize = 240;
/// Start of the variable-length fields.
pub const SB_FIELDS: usize = 752;

/// `BCHFS_MAGIC` as bytes (uuid c68573f6-66ce-90a9-d96a-60cf803df7ef).
pub const BCHFS_MAGIC: [u8; 16] = [
    0xc6, 0x85, 0x73, 0xf6, 0x66, 0xce, 0x90, 0xa9, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef,
];
/// `JSET_MAGIC`.
pub const JSET_MAGIC: u64 = 0x245235c1a3625032;
/// `BSET_MAGIC`.
pub const BSET_MAGIC: u64 = 0x90135c78b99e07f5;

/// Oldest metadata version this code reads (`bcachefs_metadata_version_min` is 9;
/// btree_ptr_v2 and new varints came later, so we require 0.11+).
pub const VERSION_MIN_SUPPORTED: u16 = 11;

/// Field types (`enum bch_sb_field_type`).
pub const FIELD_JOURNAL: u32 = 0;
#[allow(missing_docs)]
pub const FIELD_MEMBERS_V1: u32 = 1;
#[allow(missing_docs)]
pub const FIELD_CRYPT: u32 = 2;
#[allow(missing_docs)]
pub const FIELD_REPLICAS_V0: u32 = 3;
#[allow(missing_docs)]
pub const FIELD_CLEAN: u32 = 6;
#[allow(missing_docs)]
pub const FIELD_REPLICAS: u32 = 7;
#[allow(missing_docs)]
pub const FIELD_JOURNAL_SEQ_BLACKLIST: u32 = 8;
#[allow(missing_docs)]
pub const FIELD_JOURNAL_V2: u32 = 9;
#[allow(missing_docs)]
pub const FIELD_MEMBERS_V2: u32 = 11;
#[allow(missing_docs)]
pub const FIELD_EXT: u32 = 13;

/// Names of field types, indexed by type.
pub const FIELD_NAMES: [&str; 18] = [
    "journal",
    "members_v1",
    "crypt",
    "replicas_v0",
    "quota",
    "disk_groups",
    "clean",
    "replicas",
    "journal_seq_blacklist",
    "journal_v2",
    "counters",
    "members_v2",
    "errors",
    "ext",
    "downgrade",
    "recovery_passes",
    "extent_type_u64s",
    "errors_v2",
];

/// Bytes of a v1 member entry.
pub const MEMBER_V1_BYTES: usize = 56;
