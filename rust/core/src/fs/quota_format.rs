// SPDX-License-Identifier: GPL-2.0
//! On-disk quota limits (`struct bch_quota`): per counter (space, inodes) a hard
//! and a soft limit.

use super::super::bytes::le64z;

/// `bch2_quota_counters[]`.
pub const QUOTA_COUNTER_NAMES: [&str; 2] = ["space", "inodes"];
/// `bch2_quota_types[]` (the key's `p.inode`).
pub const QUOTA_TYPE_NAMES: [&str; 3] = ["user", "group", "project"];

/// `(hardlimit, softlimit)` of counter `i` of quota value `v`.
pub fn limits(v: &[u8], i: usize) -> (u64, u64) {
    let off = i.saturating_mul(16);
    (le64z(v, off), le64z(v, off.saturating_add(8)))
}
