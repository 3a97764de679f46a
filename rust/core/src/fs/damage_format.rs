// SPDX-License-Identifier: GPL-2.0
//! On-disk damage records (`struct bch_damage`): the errors that damaged an inode,
//! as the superblock's `errors_v2` section keeps them, 16 bytes each.

use super::super::bytes::le64z;

/// Bytes per entry (`bch_sb_field_error_entry_v2`).
pub const ENTRY_BYTES: usize = 16;
/// `BCH_SB_ERROR_ENTRY_V2_NR_MAX`: a saturated count.
pub const NR_MAX: u64 = 0xffff_ffff;

/// One `bch_sb_field_error_entry_v2`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ErrorEntry {
    /// `enum bch_sb_error_id`.
    pub id: u16,
    /// Occurrences (saturating at [`NR_MAX`]).
    pub nr: u64,
    /// First occurrence, seconds since the epoch.
    pub first: u64,
    /// Last occurrence, seconds since the epoch.
    pub last: u64,
}

impl ErrorEntry {
    /// Decodes the entry at `off` of `b`.
    pub fn read(b: &[u8], off: usize) -> ErrorEntry {
        let v0 = le64z(b, off);
        let v1 = le64z(b, off.saturating_add(8));
        ErrorEntry {
            id: v0 as u16,
            nr: (v0 >> 16) & 0xffff_ffff,
            last: (v0 >> 48) | ((v1 & 0xff_ffff) << 16),
            first: v1 >> 24,
        }
    }
}

/// The entries of damage value `v` (a trailing partial entry is ignored).
pub fn entries(v: &[u8]) -> impl Iterator<Item = ErrorEntry> + '_ {
    (0..v.len() / ENTRY_BYTES).map(move |i| ErrorEntry::read(v, i * ENTRY_BYTES))
}
