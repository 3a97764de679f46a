// SPDX-License-Identifier: GPL-2.0
//! Names and numbers: btree ids, key types, data types, checksum and compression types.

/// Upstream's `BCH_BKEY_TYPES()` names, indexed by type number.
pub const KEY_TYPE_NAMES: [&str; 40] = [
    "deleted",
    "whiteout",
    "error",
    "cookie",
    "hash_whiteout",
    "btree_ptr",
    "extent",
    "reservation",
    "inode",
    "inode_generation",
    "dirent",
    "xattr",
    "alloc",
    "quota",
    "stripe",
    "reflink_p",
    "reflink_v",
    "inline_data",
    "btree_ptr_v2",
    "indirect_inline_data",
    "alloc_v2",
    "subvolume",
    "snapshot",
    "inode_v2",
    "alloc_v3",
    "set",
    "lru",
    "alloc_v4",
    "backpointer",
    "inode_v3",
    "bucket_gens",
    "snapshot_tree",
    "logged_op_truncate",
    "logged_op_finsert",
    "accounting",
    "inode_alloc_cursor",
    "extent_whiteout",
    "logged_op_stripe_update",
    "damage",
    "logged_op_inode_opt_propagate",
];

/// Key type numbers (`enum bch_bkey_type`).
#[allow(missing_docs)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum KeyType {
    Deleted = 0,
    Whiteout = 1,
    Error = 2,
    Cookie = 3,
    HashWhiteout = 4,
    BtreePtr = 5,
    Extent = 6,
    Reservation = 7,
    Inode = 8,
    InodeGeneration = 9,
    Dirent = 10,
    Xattr = 11,
    Alloc = 12,
    Quota = 13,
    Stripe = 14,
    ReflinkP = 15,
    ReflinkV = 16,
    InlineData = 17,
    BtreePtrV2 = 18,
    IndirectInlineData = 19,
    AllocV2 = 20,
    Subvolume = 21,
    Snapshot = 22,
    InodeV2 = 23,
    AllocV3 = 24,
    Set = 25,
    Lru = 26,
    AllocV4 = 27,
    Backpointer = 28,
    InodeV3 = 29,
    BucketGens = 30,
    SnapshotTree = 31,
    LoggedOpTruncate = 32,
    LoggedOpFinsert = 33,
    Accounting = 34,
    InodeAllocCursor = 35,
    ExtentWhiteout = 36,
    LoggedOpStripeUpdate = 37,
    Damage = 38,
    LoggedOpInodeOptPropagate = 39,
}

/// The name of key type `t`, or `None` when unknown.
pub fn key_type_name(t: u8) -> Option<&'static str> {
    KEY_TYPE_NAMES.get(t as usize).copied()
}

/// Upstream's `BCH_BTREE_IDS()` names, indexed by btree id.
pub const BTREE_NAMES: [&str; 29] = [
    "extents",
    "inodes",
    "dirents",
    "xattrs",
    "alloc",
    "quotas",
    "stripes",
    "reflink",
    "subvolumes",
    "snapshots",
    "lru",
    "freespace",
    "need_discard",
    "backpointers",
    "bucket_gens",
    "snapshot_trees",
    "deleted_inodes",
    "logged_ops",
    "reconcile_work",
    "subvolume_children",
    "accounting",
    "reconcile_hipri",
    "reconcile_pending",
    "reconcile_scan",
    "reconcile_work_phys",
    "reconcile_hipri_phys",
    "bucket_to_stripe",
    "stripe_backpointers",
    "damage",
];

/// Number of known btrees.
pub const BTREE_ID_NR: usize = BTREE_NAMES.len();

/// Btree ids used by name in the code.
#[allow(missing_docs)]
pub mod btree {
    pub const EXTENTS: u32 = 0;
    pub const INODES: u32 = 1;
    pub const DIRENTS: u32 = 2;
    pub const XATTRS: u32 = 3;
    pub const ALLOC: u32 = 4;
    pub const STRIPES: u32 = 6;
    pub const REFLINK: u32 = 7;
    pub const SUBVOLUMES: u32 = 8;
    pub const SNAPSHOTS: u32 = 9;
    pub const FREESPACE: u32 = 11;
    pub const BACKPOINTERS: u32 = 13;
    pub const BUCKET_GENS: u32 = 14;
    pub const ACCOUNTING: u32 = 20;
}

/// The name of btree `id`, or `None` when unknown.
pub fn btree_name(id: u32) -> Option<&'static str> {
    BTREE_NAMES.get(id as usize).copied()
}

/// The id of the btree called `name`.
pub fn btree_by_name(name: &str) -> Option<u32> {
    BTREE_NAMES
        .iter()
        .position(|&n| n == name)
        .map(|i| i as u32)
}

/// Btrees whose keys are extents (`BTREE_IS_extents`): positions are the end of a
/// range and `size` is its length.
pub fn btree_is_extents(id: u32) -> bool {
    matches!(id, 0 | 7 | 11)
}

/// Btrees whose positions carry a snapshot (`BTREE_IS_snapshots`).
pub fn btree_has_snapshots(id: u32) -> bool {
    matches!(id, 0 | 1 | 2 | 3 | 28)
}

/// Upstream's `BCH_DATA_TYPES()` names (`BCH_DATA_NR` = 12).
pub const DATA_TYPE_NAMES: [&str; 12] = [
    "free",
    "sb",
    "journal",
    "btree",
    "user",
    "cached",
    "parity",
    "stripe",
    "need_gc_gens",
    "need_discard",
    "unstriped",
    "multiple",
];

/// The name of data type `t`.
pub fn data_type_name(t: u8) -> Option<&'static str> {
    DATA_TYPE_NAMES.get(t as usize).copied()
}

/// Checksum type numbers (`enum bch_csum_type`).
pub const CSUM_TYPE_NAMES: [&str; 8] = [
    "none",
    "crc32c_nonzero",
    "crc64_nonzero",
    "chacha20_poly1305_80",
    "chacha20_poly1305_128",
    "crc32c",
    "crc64",
    "xxhash",
];

/// Compression type names (`enum bch_compression_type`).
pub const COMPRESSION_TYPE_NAMES: [&str; 6] =
    ["none", "lz4_old", "gzip", "lz4", "zstd", "incompressible"];
