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
                min_key: Some(Bpos::read(v, 20)?),
                ptrs: v.get(BTREE_PTR_V2_HDR..)?,
            })
        } else if typ == KeyType::BtreePtr as u8 {
            Some(BtreePtr {
                seq: 0,
                written: 0,
                min_key: None,
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
