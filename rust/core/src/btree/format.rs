// SPDX-License-Identifier: GPL-2.0
//! On-disk btree node layout: `struct btree_node`, `struct btree_node_entry`,
//! `struct bset`.

use super::super::bytes::bits;

/// Offset of `magic` in `btree_node`.
pub const BN_MAGIC: usize = 16;
/// Offset of `flags`.
pub const BN_FLAGS: usize = 24;
/// Offset of `min_key`.
pub const BN_MIN_KEY: usize = 32;
/// Offset of `max_key`.
pub const BN_MAX_KEY: usize = 52;
/// Offset of `format`.
pub const BN_FORMAT: usize = 80;
/// Offset of the first bset (`keys`) in `btree_node`.
pub const BN_BSET: usize = 136;
/// `sizeof(struct btree_node)`: keys start here.
pub const BN_BYTES: usize = 160;
/// Offset of the bset in `btree_node_entry`.
pub const BNE_BSET: usize = 16;
/// `sizeof(struct btree_node_entry)`.
pub const BNE_BYTES: usize = 40;

/// Offsets inside `struct bset`.
pub const BSET_SEQ: usize = 0;
#[allow(missing_docs)]
pub const BSET_JOURNAL_SEQ: usize = 8;
#[allow(missing_docs)]
pub const BSET_FLAGS: usize = 16;
#[allow(missing_docs)]
pub const BSET_VERSION: usize = 20;
#[allow(missing_docs)]
pub const BSET_U64S: usize = 22;

/// `BTREE_NODE_ID` from `btree_node.flags`.
pub fn node_btree_id(flags: u64) -> u32 {
    (bits(flags, 0, 4) | (bits(flags, 9, 25) << 4)) as u32
}
/// `BTREE_NODE_LEVEL`.
pub fn node_level(flags: u64) -> u8 {
    bits(flags, 4, 8) as u8
}
/// `BTREE_NODE_SEQ`.
pub fn node_seq(flags: u64) -> u32 {
    bits(flags, 32, 64) as u32
}
/// `BSET_CSUM_TYPE`.
pub fn bset_csum_type(flags: u32) -> u8 {
    bits(flags as u64, 0, 4) as u8
}
/// `BSET_BIG_ENDIAN`.
pub fn bset_big_endian(flags: u32) -> bool {
    bits(flags as u64, 4, 5) != 0
}
/// `BSET_SEPARATE_WHITEOUTS`.
pub fn bset_separate_whiteouts(flags: u32) -> bool {
    bits(flags as u64, 5, 6) != 0
}
/// `BSET_OFFSET` (sector offset within the node).
pub fn bset_offset(flags: u32) -> u32 {
    bits(flags as u64, 16, 32) as u32
}
