// SPDX-License-Identifier: GPL-2.0
//! Btree node pointers: `btree_ptr` (v1: just extent pointers) and `btree_ptr_v2`
//! (seq, sectors written, min_key, then pointers).

use super::super::bpos::Bpos;
use super::super::bytes::{le16, le64};
use super::super::ids::KeyType;

/// Bytes before the pointers in a `btree_ptr_v2` value.
pub const BTREE_PTR_V2_HDR: usize = 40;
/// Offset of `sectors_written` in a `btree_ptr_v2` value.
pub const BTREE_PTR_V2_WRITTEN: usize = 16;
/// Offset of `flags` (bit 0: `BTREE_PTR_RANGE_UPDATED`).
pub const BTREE_PTR_V2_FLAGS: usize = 18;
/// Offset of `min_key`.
pub const BTREE_PTR_V2_MIN_KEY: usize = 20;

/// Moves the start of the node a `btree_ptr_v2` value `v` points to: `min_key`
/// set and `BTREE_PTR_RANGE_UPDATED` raised, as upstream's topology repair
/// (`set_node_min`) does; the node itself is not rewritten. `None` when `v` is too
/// short.
pub fn set_min_key(v: &mut [u8], min: Bpos) -> Option<()> {
    min.write(v, BTREE_PTR_V2_MIN_KEY)?;
    set_range_updated(v)
}

/// Raises `BTREE_PTR_RANGE_UPDATED` in a `btree_ptr_v2` value (for a pointer whose
/// key position, the node's max, moved: `set_node_max`).
pub fn set_range_updated(v: &mut [u8]) -> Option<()> {
    let f = super::super::bytes::le16(v, BTREE_PTR_V2_FLAGS)?;
    super::super::bytes::put_le16(v, BTREE_PTR_V2_FLAGS, f | 1)
}

/// Sets `sectors_written` of the `btree_ptr_v2` value `v` (the write side of
/// [`BtreePtr::decode`]'s `written`): after a bset is appended to the node, its
/// pointer says how far to read. `None` when `v` is too short.
pub fn set_sectors_written(v: &mut [u8], written: u16) -> Option<()> {
    super::super::bytes::put_le16(v, BTREE_PTR_V2_WRITTEN, written)
}

/// One `struct bch_extent_ptr` (the data side's decoder: one definition for both).
pub use super::super::data::extents_format::Ptr as ExtentPtr;

/// A decoded btree node pointer.
#[derive(Clone, Copy, Debug)]
pub struct BtreePtr<'a> {
    /// Node seq (v2; 0 for v1).
    pub seq: u64,
    /// Sectors written (v2; 0 = unknown).
    pub written: u16,
    /// Node min_key (v2; `None` for v1).
    pub min_key: Option<Bpos>,
    /// `BTREE_PTR_RANGE_UPDATED` (v2): the node's range is the pointer's
    /// (`min_key`..the key's position), not its header's, since topology repair
    /// moved it.
    pub range_updated: bool,
    ptrs: &'a [u8],
}

impl<'a> BtreePtr<'a> {
    /// Decodes a `btree_ptr` or `btree_ptr_v2` value; `None` for other types or a
    /// value too short for its header.
    pub fn decode(typ: u8, v: &'a [u8]) -> Option<BtreePtr<'a>> {
        if typ == KeyType::BtreePtrV2 as u8 {
            Some(BtreePtr {
                seq: le64(v, 8)?,
                written: le16(v, BTREE_PTR_V2_WRITTEN)?,
                min_key: Some(Bpos::read(v, BTREE_PTR_V2_MIN_KEY)?),
                range_updated: le16(v, BTREE_PTR_V2_FLAGS)? & 1 != 0,
                ptrs: v.get(BTREE_PTR_V2_HDR..)?,
            })
        } else if typ == KeyType::BtreePtr as u8 {
            Some(BtreePtr {
                seq: 0,
                written: 0,
                min_key: None,
                range_updated: false,
                ptrs: v,
            })
        } else {
            None
        }
    }

    /// The replicas (only pointer entries; anything else ends the list).
    pub fn ptrs(&self) -> impl Iterator<Item = ExtentPtr> + 'a {
        let p = self.ptrs;
        (0..p.len() / 8)
            .map(move |i| le64(p, i * 8).unwrap_or(0))
            .take_while(|w| w & 1 == 1)
            .map(ExtentPtr::from_u64)
    }
}
