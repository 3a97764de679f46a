// SPDX-License-Identifier: GPL-2.0
//! Filesystem options stored in the superblock: where each lives (`flags[]` bits or
//! the `ext` field), how its stored value maps to the option value, and its choices.
//!
//! The table lists, in upstream's order, exactly the options that `show-super` prints
//! (those with a superblock or `ext` getter).

use super::super::bytes::{bits, le64z};
use super::format::{EXT_FLAGS0, FIELD_EXT};
use super::Sb;

/// `BCH_ERROR_ACTIONS()`.
pub const ERROR_ACTIONS: [&str; 4] = ["continue", "fix_safe", "panic", "ro"];
/// `BCH_CSUM_OPTS()`.
pub const CSUM_OPTS: [&str; 4] = ["none", "crc32c", "crc64", "xxhash"];
/// `BCH_STR_HASH_OPTS()`.
pub const STR_HASH_OPTS: [&str; 3] = ["crc32c", "crc64", "siphash"];
/// `BCH_COMPRESSION_OPTS()`.
pub const COMPRESSION_OPTS: [&str; 4] = ["none", "lz4", "gzip", "zstd"];
/// `BCH_DEGRADED_ACTIONS()`.
pub const DEGRADED_ACTIONS: [&str; 4] = ["ask", "yes", "very", "no"];
/// `BCH_SCRUB_JOURNAL_OPTS()`.
pub const SCRUB_JOURNAL_OPTS: [&str; 3] = ["unclean", "no", "always"];
/// `BCH_VERSION_UPGRADE_OPTS()`.
pub const VERSION_UPGRADE_OPTS: [&str; 3] = ["compatible", "incompatible", "none"];

/// How an option's value prints.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OptType {
    /// 0 or 1.
    Bool,
    /// A number (human readable when [`OPT_HUMAN_READABLE`] is set).
    Uint,
    /// An index into a list of choices.
    Str(&'static [&'static str]),
    /// A compression option: type in the low nibble, level in the high one.
    Compression,
    /// A target: 0 none, then devices, then disk groups.
    Target,
}

/// Where an option's stored value lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OptSrc {
    /// `sb->block_size` (`BCH_SB_BLOCK_SIZE`).
    BlockSize,
    /// Bits `[lo, hi)` of `flags[word]`.
    Flags(u8, u8, u8),
    /// Two `flags[]` bitfields: the low part and the high part (shifted by the low
    /// part's width), as the compression options are split.
    Split((u8, u8, u8), (u8, u8, u8)),
    /// Bits `[lo, hi)` of the `ext` field's `flags0`.
    Ext(u8, u8),
}

/// The option's value prints in human readable units.
pub const OPT_HUMAN_READABLE: u8 = 1 << 0;
/// The stored value is the option value >> 9.
pub const OPT_SB_FIELD_SECTORS: u8 = 1 << 1;
/// The stored value is ilog2 of the option value.
pub const OPT_SB_FIELD_ILOG2: u8 = 1 << 2;
/// The stored value is the option value + 1 (0 means the default).
pub const OPT_SB_FIELD_ONE_BIAS: u8 = 1 << 3;

/// One superblock option.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// Option name.
    pub name: &'static str,
    /// How it prints.
    pub typ: OptType,
    /// Where it is stored.
    pub src: OptSrc,
    /// `OPT_*` flags above.
    pub flags: u8,
}

const fn opt(name: &'static str, typ: OptType, src: OptSrc, flags: u8) -> Opt {
    Opt {
        name,
        typ,
        src,
        flags,
    }
}

const fn f(w: u8, lo: u8, hi: u8) -> OptSrc {
    OptSrc::Flags(w, lo, hi)
}

const HR_SECTORS: u8 = OPT_HUMAN_READABLE | OPT_SB_FIELD_SECTORS;

/// The options stored in the superblock, in upstream's `BCH_OPTS()` order.
pub const SB_OPTS: [Opt; 49] = [
    opt("block_size", OptType::Uint, OptSrc::BlockSize, HR_SECTORS),
    opt("btree_node_size", OptType::Uint, f(0, 12, 28), HR_SECTORS),
    opt("errors", OptType::Str(&ERROR_ACTIONS), f(0, 8, 12), 0),
    opt("write_error_timeout", OptType::Uint, f(6, 4, 14), 0),
    opt("metadata_replicas", OptType::Uint, f(0, 48, 52), 0),
    opt("data_replicas", OptType::Uint, f(0, 52, 56), 0),
    opt(
        "encoded_extent_max",
        OptType::Uint,
        f(1, 14, 20),
        HR_SECTORS | OPT_SB_FIELD_ILOG2,
    ),
    opt(
        "metadata_checksum",
        OptType::Str(&CSUM_OPTS),
        f(0, 40, 44),
        0,
    ),
    opt("data_checksum", OptType::Str(&CSUM_OPTS), f(0, 44, 48), 0),
    opt("checksum_err_retry_nr", OptType::Uint, f(6, 14, 20), 0),
    opt(
        "compression",
        OptType::Compression,
        OptSrc::Split((1, 4, 8), (4, 56, 60)),
        0,
    ),
    opt(
        "background_compression",
        OptType::Compression,
        OptSrc::Split((2, 0, 4), (4, 60, 64)),
        0,
    ),
    opt("str_hash", OptType::Str(&STR_HASH_OPTS), f(1, 0, 4), 0),
    opt("metadata_target", OptType::Target, f(3, 16, 28), 0),
    opt("foreground_target", OptType::Target, f(1, 40, 52), 0),
    opt("background_target", OptType::Target, f(1, 52, 64), 0),
    opt("promote_target", OptType::Target, f(1, 28, 40), 0),
    opt("erasure_code", OptType::Bool, f(3, 0, 16), 0),
    opt("ec_max_data_blocks", OptType::Uint, f(6, 50, 58), 0),
    opt("casefold", OptType::Bool, f(6, 22, 23), 0),
    opt("inodes_32bit", OptType::Bool, f(1, 8, 9), 0),
    opt("shard_inode_numbers_bits", OptType::Uint, f(6, 0, 4), 0),
    opt("gc_reserve_percent", OptType::Uint, f(0, 28, 33), 0),
    opt("gc_reserve_bytes", OptType::Uint, f(2, 4, 64), HR_SECTORS),
    opt("root_reserve_percent", OptType::Uint, f(0, 33, 40), 0),
    opt("wide_macs", OptType::Bool, f(1, 9, 10), 0),
    opt("promote_whole_extents", OptType::Bool, f(0, 63, 64), 0),
    opt("acl", OptType::Bool, f(0, 56, 57), 0),
    opt("usrquota", OptType::Bool, f(0, 57, 58), 0),
    opt("grpquota", OptType::Bool, f(0, 58, 59), 0),
    opt("prjquota", OptType::Bool, f(0, 59, 60), 0),
    opt("degraded", OptType::Str(&DEGRADED_ACTIONS), f(6, 20, 22), 0),
    opt("missing_dev_timeout", OptType::Uint, OptSrc::Ext(49, 61), 0),
    opt("journal_flush_delay", OptType::Uint, f(3, 30, 62), 0),
    opt("journal_flush_disabled", OptType::Bool, f(3, 62, 63), 0),
    opt("move_writes_fua", OptType::Bool, f(6, 58, 59), 0),
    opt("journal_reclaim_delay", OptType::Uint, f(4, 0, 32), 0),
    opt("writeback_timeout", OptType::Uint, f(6, 24, 40), 0),
    opt(
        "journal_rewind_discard_buffer_percent",
        OptType::Uint,
        OptSrc::Ext(38, 42),
        0,
    ),
    opt(
        "scrub_recent_journal_entries",
        OptType::Str(&SCRUB_JOURNAL_OPTS),
        f(6, 48, 50),
        0,
    ),
    opt(
        "scrub_journal_max_rewind_secs",
        OptType::Uint,
        OptSrc::Ext(26, 38),
        0,
    ),
    opt("journal_transaction_names", OptType::Bool, f(4, 32, 33), 0),
    opt("allocator_stuck_timeout", OptType::Uint, f(5, 16, 32), 0),
    opt(
        "version_upgrade",
        OptType::Str(&VERSION_UPGRADE_OPTS),
        f(4, 54, 56),
        0,
    ),
    opt("nocow", OptType::Bool, f(4, 33, 34), 0),
    opt("reconcile_on_ac_only", OptType::Bool, f(6, 23, 24), 0),
    opt(
        "btree_cache_shrinker_seeks",
        OptType::Uint,
        OptSrc::Ext(42, 49),
        0,
    ),
    opt(
        "dev_readahead",
        OptType::Uint,
        OptSrc::Ext(0, 20),
        HR_SECTORS,
    ),
    opt("ec_stripe_buf_limit", OptType::Uint, OptSrc::Ext(20, 26), 0),
];

fn field_bits(sb: &Sb<'_>, (w, lo, hi): (u8, u8, u8)) -> u64 {
    if lo >= hi || hi > 64 {
        return 0;
    }
    bits(sb.flags(w as usize), lo as u32, hi as u32)
}

impl Opt {
    /// The value as stored in the superblock.
    pub fn stored(&self, sb: &Sb<'_>) -> u64 {
        match self.src {
            OptSrc::BlockSize => sb.block_sectors() as u64,
            OptSrc::Flags(w, lo, hi) => field_bits(sb, (w, lo, hi)),
            OptSrc::Split(a, b) => {
                let w = a.2.saturating_sub(a.1) as u32;
                let hi = field_bits(sb, b);
                field_bits(sb, a) | hi.checked_shl(w).unwrap_or(0)
            }
            OptSrc::Ext(lo, hi) => match sb.field(FIELD_EXT) {
                Some(e) if lo < hi && hi <= 64 => bits(le64z(e, EXT_FLAGS0), lo as u32, hi as u32),
                _ => 0,
            },
        }
    }

    /// `bch2_opt_from_sb`: the option's value.
    pub fn from_sb(&self, sb: &Sb<'_>) -> u64 {
        let mut v = self.stored(sb);
        if self.flags & OPT_SB_FIELD_ONE_BIAS != 0 {
            v = v.wrapping_sub(1);
        }
        if self.flags & OPT_SB_FIELD_ILOG2 != 0 {
            v = 1u64.wrapping_shl(v as u32);
        }
        if self.flags & OPT_SB_FIELD_SECTORS != 0 {
            v <<= 9;
        }
        v
    }
}
