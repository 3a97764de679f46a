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
/// `BCACHE_MAGIC` as bytes (uuid c68573f6-4e1a-45ca-8265-f57f48ba6d81): the old
/// magic, which upstream still accepts in a layout.
pub const BCACHE_MAGIC: [u8; 16] = [
    0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81,
];
/// The largest `sb_max_size_bits` a layout may give (`BCH_SB_LAYOUT_SIZE_BITS_MAX`).
pub const LAYOUT_SIZE_BITS_MAX: u8 = 16;
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

/// `BCH_SB_FIELD_disk_groups`.
pub const FIELD_DISK_GROUPS: u32 = 5;
/// `BCH_SB_FIELD_errors` (v1 error log).
pub const FIELD_ERRORS: u32 = 12;

/// Offsets in `struct bch_sb_field_ext` (from the start of the field, header included).
pub const EXT_RECOVERY_PASSES_REQUIRED: usize = 8;
#[allow(missing_docs)]
pub const EXT_ERRORS_SILENT: usize = 24;
#[allow(missing_docs)]
pub const EXT_BTREES_LOST_DATA: usize = 88;
#[allow(missing_docs)]
pub const EXT_FLAGS0: usize = 96;
#[allow(missing_docs)]
pub const EXT_BTREES_LOST_DATA_EVER: usize = 104;
#[allow(missing_docs)]
pub const EXT_BTREES_CLEAN: usize = 112;

/// Offsets in `struct bch_member` past the ones [`super::Member`] names.
pub const MEMBER_FLUSH_ERRORS: usize = 224;
#[allow(missing_docs)]
pub const MEMBER_FAILURE_DOMAIN: usize = 296;
/// Bytes of `bch_member.failure_domain`.
pub const MEMBER_FAILURE_DOMAIN_BYTES: usize = 32;

/// UUID of a deleted member slot (`BCH_SB_MEMBER_DELETED_UUID`).
pub const MEMBER_DELETED_UUID: [u8; 16] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef,
];

/// Bytes of a `struct bch_disk_group` entry.
pub const DISK_GROUP_BYTES: usize = 48;

/// `BCH_METADATA_VERSIONS()`: `(BCH_VERSION(major, minor), name)`.
pub const METADATA_VERSIONS: [(u16, &str); 60] = [
    (10, "bkey_renumber"),
    (11, "inode_btree_change"),
    (12, "snapshot"),
    (13, "inode_backpointers"),
    (14, "btree_ptr_sectors_written"),
    (15, "snapshot_2"),
    (16, "reflink_p_fix"),
    (17, "subvol_dirent"),
    (18, "inode_v2"),
    (19, "freespace"),
    (20, "alloc_v4"),
    (21, "new_data_types"),
    (22, "backpointers"),
    (23, "inode_v3"),
    (24, "unwritten_extents"),
    (25, "bucket_gens"),
    (26, "lru_v2"),
    (27, "fragmentation_lru"),
    (28, "no_bps_in_alloc_keys"),
    (29, "snapshot_trees"),
    (1 << 10, "major_minor"),
    ((1 << 10) | 1, "snapshot_skiplists"),
    ((1 << 10) | 2, "deleted_inodes"),
    ((1 << 10) | 3, "rebalance_work"),
    ((1 << 10) | 4, "member_seq"),
    ((1 << 10) | 5, "subvolume_fs_parent"),
    ((1 << 10) | 6, "btree_subvolume_children"),
    ((1 << 10) | 7, "mi_btree_bitmap"),
    ((1 << 10) | 8, "bucket_stripe_sectors"),
    ((1 << 10) | 9, "disk_accounting_v2"),
    ((1 << 10) | 10, "disk_accounting_v3"),
    ((1 << 10) | 11, "disk_accounting_inum"),
    ((1 << 10) | 12, "rebalance_work_acct_fix"),
    ((1 << 10) | 13, "inode_has_child_snapshots"),
    ((1 << 10) | 14, "backpointer_bucket_gen"),
    ((1 << 10) | 15, "disk_accounting_big_endian"),
    ((1 << 10) | 16, "reflink_p_may_update_opts"),
    ((1 << 10) | 17, "inode_depth"),
    ((1 << 10) | 18, "persistent_inode_cursors"),
    ((1 << 10) | 19, "autofix_errors"),
    ((1 << 10) | 20, "directory_size"),
    ((1 << 10) | 21, "cached_backpointers"),
    ((1 << 10) | 22, "stripe_backpointers"),
    ((1 << 10) | 23, "stripe_lru"),
    ((1 << 10) | 24, "casefolding"),
    ((1 << 10) | 25, "extent_flags"),
    ((1 << 10) | 26, "snapshot_deletion_v2"),
    ((1 << 10) | 27, "fast_device_removal"),
    ((1 << 10) | 28, "inode_has_case_insensitive"),
    ((1 << 10) | 29, "extent_snapshot_whiteouts"),
    ((1 << 10) | 30, "31bit_dirent_offset"),
    ((1 << 10) | 31, "btree_node_accounting"),
    ((1 << 10) | 32, "sb_field_extent_type_u64s"),
    ((1 << 10) | 33, "reconcile"),
    ((1 << 10) | 34, "extented_key_type_error"),
    ((1 << 10) | 35, "bucket_stripe_index"),
    ((1 << 10) | 36, "no_sb_user_data_replicas"),
    ((1 << 10) | 37, "erasure_coding"),
    ((1 << 10) | 38, "need_discard_by_journal_seq"),
    ((1 << 10) | 39, "per_dev_fragmentation_lru"),
];

/// The name of metadata version `v`.
pub fn version_name(v: u16) -> Option<&'static str> {
    METADATA_VERSIONS
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, s)| *s)
}

/// `BCH_SB_FEATURES()` names, by bit of `features[0]`.
pub const FEATURE_NAMES: [&str; 24] = [
    "lz4",
    "gzip",
    "zstd",
    "atomic_nlink",
    "ec",
    "journal_seq_blacklist_v3",
    "reflink",
    "new_siphash",
    "inline_data",
    "new_extent_overwrite",
    "incompressible",
    "btree_ptr_v2",
    "extents_above_btree_updates",
    "btree_updates_journalled",
    "reflink_inline_data",
    "new_varint",
    "journal_no_flush",
    "alloc_v2",
    "extents_across_btree_nodes",
    "incompat_version_field",
    "casefolding",
    "no_alloc_info",
    "small_image",
    "no_default_sb",
];

/// `BCH_SB_COMPAT()` names, by bit of `compat[0]`.
pub const COMPAT_NAMES: [&str; 7] = [
    "alloc_info",
    "alloc_metadata",
    "extents_above_btree_updates_done",
    "bformat_overflow_done",
    "no_stale_ptrs",
    "stripe_frag_accounting",
    "inode_opts_propagated",
];

/// `BCH_MEMBER_STATES()` names.
pub const MEMBER_STATE_NAMES: [&str; 4] = ["rw", "ro", "evacuating", "spare"];

/// `BCH_RECOVERY_PASSES()` in run (enum) order: `(stable id, name)`. The superblock
/// stores passes by stable id; upstream prints them in enum order.
pub const RECOVERY_PASSES: [(u8, &str); 51] = [
    (41, "recovery_pass_empty"),
    (37, "scan_for_btree_nodes"),
    (4, "check_topology"),
    (39, "accounting_read"),
    (0, "alloc_read"),
    (1, "stripes_read"),
    (2, "initialize_subvolumes"),
    (3, "snapshots_read"),
    (5, "check_allocations"),
    (6, "trans_mark_dev_sbs"),
    (7, "fs_journal_alloc"),
    (8, "set_may_go_rw"),
    (9, "journal_replay"),
    (45, "merge_btree_nodes"),
    (48, "presplit_shard_boundaries"),
    (10, "check_alloc_info"),
    (11, "check_lrus"),
    (12, "check_btree_backpointers"),
    (13, "check_backpointers_to_extents"),
    (14, "check_extents_to_backpointers"),
    (15, "check_alloc_to_lru_refs"),
    (16, "fs_freespace_init"),
    (17, "bucket_gens_init"),
    (38, "reconstruct_snapshots"),
    (44, "delete_dead_interior_snapshots"),
    (18, "check_snapshot_trees"),
    (19, "check_snapshots"),
    (50, "resume_logged_ops_early"),
    (20, "check_subvols"),
    (35, "check_subvol_children"),
    (21, "delete_dead_snapshots"),
    (22, "fs_upgrade_for_subvolumes"),
    (24, "check_inodes"),
    (25, "check_extents"),
    (26, "check_indirect_extents"),
    (27, "check_dirents"),
    (28, "check_xattrs"),
    (49, "check_damage"),
    (29, "check_root"),
    (40, "check_unreachable_inodes"),
    (36, "check_subvolume_structure"),
    (30, "check_directory_structure"),
    (31, "check_nlinks"),
    (43, "check_reconcile_work"),
    (23, "resume_logged_ops"),
    (32, "delete_dead_inodes"),
    (47, "kill_i_generation_keys"),
    (33, "fix_reflink_p"),
    (34, "set_fs_needs_reconcile"),
    (46, "btree_bitmap_gc"),
    (42, "lookup_root_inode"),
];
