// SPDX-License-Identifier: GPL-2.0
//! What a gc pass finds: one typed [`Finding`] per problem, named after upstream's
//! fsck error (`enum bch_sb_error_id`) so a report can be compared with the
//! reference's, with the repair upstream would make. Nothing here writes: a pass
//! reports, and the text says what a repair would do.

use core::fmt::Write;

use super::super::alloc::format::AccountingPos;
use super::super::alloc::text::{accounting_key_to_text, prt_data_type};
use super::super::bpos::Bpos;
use super::super::btree::read::NodeError;
use super::super::ids;
use super::super::sb::text::prt_human_readable_u64;
use super::super::text::{Pb, TextCtx};

/// Kinds of findings. The names are upstream's fsck error names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// No replica of a node could be read: its keys are lost (`btree_node_read_error`).
    NodeReadError = 0,
    /// A node's keys were used from a copy that failed its checksum
    /// (`bset_bad_csum`; upstream rewrites the node).
    NodeBadChecksum,
    /// Keys of a node failed validation and were dropped (`bkey_val_invalid`...).
    NodeBadKeys,
    /// Children of an interior node leave part of its range uncovered
    /// (`btree_node_topology_gap_between_nodes`).
    GapBetweenNodes,
    /// A child starts before its predecessor ends
    /// (`btree_node_topology_overwritten_by_prev_node`).
    OverlapBetweenNodes,
    /// A node does not start where it should: first child vs parent, a pointer's
    /// `min_key` vs the child's header, a root not at `POS_MIN`
    /// (`btree_node_topology_bad_min_key`).
    BadMinKey,
    /// A node does not end where it should: last child vs parent, root not at
    /// `SPOS_MAX` (`btree_node_topology_bad_max_key`).
    BadMaxKey,
    /// An interior node without children (`btree_node_topology_interior_node_empty`).
    EmptyInteriorNode,
    /// A pointer to a device that is not a member (`ptr_to_invalid_device`).
    PtrToInvalidDevice,
    /// A pointer outside the device's buckets (`ptr_after_last_bucket` /
    /// `ptr_before_first_bucket`).
    PtrBucketInvalid,
    /// A pointer into a bucket without an alloc key (`ptr_to_missing_alloc_key`).
    PtrToMissingAllocKey,
    /// A pointer's gen is newer than its bucket's (`ptr_gen_newer_than_bucket_gen`).
    PtrGenNewerThanBucketGen,
    /// A pointer's gen is too far behind its bucket's to compare (`ptr_too_stale`).
    PtrTooStale,
    /// A dirty pointer into a bucket that was reused (`stale_dirty_ptr`).
    StaleDirtyPtr,
    /// A bucket holds pointers of two data types (`ptr_bucket_data_type_mismatch`).
    PtrBucketDataTypeMismatch,
    /// An alloc key field differs from what the pointers say
    /// (`alloc_key_<field>_wrong`).
    AllocKeyWrong,
    /// A bucket's `oldest_gen` is newer than a pointer into it. Upstream has no fsck
    /// error for oldest gens; this is the direction that can lose data (the
    /// bucket may be reused while the pointer still counts).
    OldestGenTooNew,
    /// An accounting counter differs from the recount (`accounting_mismatch`).
    AccountingMismatch,
    /// A btree node lies outside the member's btree-allocated bitmap
    /// (`btree_bitmap_not_marked`).
    BtreeBitmapNotMarked,
    /// The superblock asks for the `btree_bitmap_gc` recovery pass, or the bitmap
    /// marks far more than the btree uses: the pass would shrink it.
    BtreeBitmapGc,
    /// The recount could not be compared: nodes holding pointers were unreadable
    /// (upstream's `check_allocations(): error`).
    CheckAllocationsIncomplete,
    /// A bucket's gen in the `bucket_gens` btree is not its alloc key's
    /// (`bucket_gens_key_wrong`, from upstream's `check_alloc_info`).
    BucketGensKeyWrong,
    /// A node holds fewer sectors of bsets than its pointer's `sectors_written`
    /// (`btree_node_data_missing`; upstream rewrites the node from what it read).
    NodeDataMissing,
}

/// Number of kinds.
pub const KIND_NR: usize = Kind::NodeDataMissing as usize + 1;

/// Every kind, in order.
pub const KINDS: [Kind; KIND_NR] = [
    Kind::NodeReadError,
    Kind::NodeBadChecksum,
    Kind::NodeBadKeys,
    Kind::GapBetweenNodes,
    Kind::OverlapBetweenNodes,
    Kind::BadMinKey,
    Kind::BadMaxKey,
    Kind::EmptyInteriorNode,
    Kind::PtrToInvalidDevice,
    Kind::PtrBucketInvalid,
    Kind::PtrToMissingAllocKey,
    Kind::PtrGenNewerThanBucketGen,
    Kind::PtrTooStale,
    Kind::StaleDirtyPtr,
    Kind::PtrBucketDataTypeMismatch,
    Kind::AllocKeyWrong,
    Kind::OldestGenTooNew,
    Kind::AccountingMismatch,
    Kind::BtreeBitmapNotMarked,
    Kind::BtreeBitmapGc,
    Kind::CheckAllocationsIncomplete,
    Kind::BucketGensKeyWrong,
    Kind::NodeDataMissing,
];

impl Kind {
    /// Upstream's fsck error name for this kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NodeReadError => "btree_node_read_error",
            Kind::NodeBadChecksum => "bset_bad_csum",
            Kind::NodeBadKeys => "bkey_invalid",
            Kind::GapBetweenNodes => "btree_node_topology_gap_between_nodes",
            Kind::OverlapBetweenNodes => "btree_node_topology_overwritten_by_prev_node",
            Kind::BadMinKey => "btree_node_topology_bad_min_key",
            Kind::BadMaxKey => "btree_node_topology_bad_max_key",
            Kind::EmptyInteriorNode => "btree_node_topology_interior_node_empty",
            Kind::PtrToInvalidDevice => "ptr_to_invalid_device",
            Kind::PtrBucketInvalid => "ptr_after_last_bucket",
            Kind::PtrToMissingAllocKey => "ptr_to_missing_alloc_key",
            Kind::PtrGenNewerThanBucketGen => "ptr_gen_newer_than_bucket_gen",
            Kind::PtrTooStale => "ptr_too_stale",
            Kind::StaleDirtyPtr => "stale_dirty_ptr",
            Kind::PtrBucketDataTypeMismatch => "ptr_bucket_data_type_mismatch",
            Kind::AllocKeyWrong => "alloc_key_wrong",
            Kind::OldestGenTooNew => "alloc_key_oldest_gen_too_new",
            Kind::AccountingMismatch => "accounting_mismatch",
            Kind::BtreeBitmapNotMarked => "btree_bitmap_not_marked",
            Kind::BtreeBitmapGc => "btree_bitmap_gc",
            Kind::CheckAllocationsIncomplete => "check_allocations_incomplete",
            Kind::BucketGensKeyWrong => "bucket_gens_key_wrong",
            Kind::NodeDataMissing => "btree_node_data_missing",
        }
    }
}

/// Which alloc key field differs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AllocField {
    /// `gen`.
    Gen,
    /// `data_type`.
    DataType,
    /// `dirty_sectors`.
    DirtySectors,
    /// `cached_sectors`.
    CachedSectors,
    /// `stripe_refcount`.
    StripeRefcount,
}

impl AllocField {
    /// Field name as upstream prints it.
    pub fn name(self) -> &'static str {
        match self {
            AllocField::Gen => "gen",
            AllocField::DataType => "data_type",
            AllocField::DirtySectors => "dirty_sectors",
            AllocField::CachedSectors => "cached_sectors",
            AllocField::StripeRefcount => "stripe_refcount",
        }
    }

    /// Upstream's fsck error name (`alloc_key_<field>_wrong`).
    pub fn err_name(self) -> &'static str {
        match self {
            AllocField::Gen => "alloc_key_gen_wrong",
            AllocField::DataType => "alloc_key_data_type_wrong",
            AllocField::DirtySectors => "alloc_key_dirty_sectors_wrong",
            AllocField::CachedSectors => "alloc_key_cached_sectors_wrong",
            AllocField::StripeRefcount => "alloc_key_stripe_refcount_wrong",
        }
    }
}

/// A node, as findings name it: its pointer key's position (max key), its min key
/// and where its first replica lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NodeAt {
    /// Max key (the pointer's position).
    pub max: Bpos,
    /// Min key (from a `btree_ptr_v2`, else the header, else `POS_MIN`).
    pub min: Bpos,
    /// Device of the first pointer.
    pub dev: u8,
    /// Sector of the first pointer.
    pub sector: u64,
}

/// One problem found by a gc pass.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Finding {
    /// What is wrong.
    pub kind: Kind,
    /// Btree the finding belongs to (`alloc` for bucket findings, `accounting` for
    /// accounting findings); `None` for superblock findings.
    pub btree: Option<u32>,
    /// Level of the node concerned (the child's level for topology findings).
    pub level: u8,
    /// Level of the btree's root, for `level L/R`.
    pub root_level: u8,
    /// The node concerned (unreadable node, or the child that is misplaced).
    pub node: Option<NodeAt>,
    /// The range concerned: missing, overlapping, or (expected, found) bounds.
    pub range: Option<(Bpos, Bpos)>,
    /// Position of the key concerned (pointer findings).
    pub pos: Option<Bpos>,
    /// Device and bucket concerned.
    pub bucket: Option<(u32, u64)>,
    /// Bucket gen (pointer findings) or data type.
    pub gen: u8,
    /// Pointer gen.
    pub ptr_gen: u8,
    /// Data type of the bucket or pointer.
    pub data_type: u8,
    /// Alloc field that differs.
    pub field: Option<AllocField>,
    /// Accounting key concerned and how many counters it has.
    pub acct: Option<(AccountingPos, u8)>,
    /// Accounting counters: found on disk.
    pub acct_got: [i64; 3],
    /// Accounting counters: the recount.
    pub acct_want: [i64; 3],
    /// Value found on disk.
    pub got: i64,
    /// Value the recount says it should be.
    pub want: i64,
    /// The read error behind a node finding.
    pub err: Option<NodeError>,
}

impl Finding {
    /// A finding of `kind` with nothing else set.
    pub const fn new(kind: Kind) -> Finding {
        Finding {
            kind,
            btree: None,
            level: 0,
            root_level: 0,
            node: None,
            range: None,
            pos: None,
            bucket: None,
            gen: 0,
            ptr_gen: 0,
            data_type: 0,
            field: None,
            acct: None,
            acct_got: [0; 3],
            acct_want: [0; 3],
            got: 0,
            want: 0,
            err: None,
        }
    }

    /// The btree name the finding's line starts with.
    pub fn btree_name(&self) -> &'static str {
        match self.btree {
            Some(b) => ids::btree_name(b).unwrap_or("(unknown btree)"),
            None => "superblock",
        }
    }

    /// One line, starting with the btree name, in upstream's words, ending with the
    /// fsck error name and the repair: `BTREE: MESSAGE (ERR_NAME; repair: REPAIR)`.
    pub fn to_text(&self, pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>) {
        let _ = write!(pb, "{}: ", self.btree_name());
        let bt = self.btree_name();
        let node = |pb: &mut Pb<'_, '_>, n: &Option<NodeAt>| {
            if let Some(n) = n {
                let _ = write!(pb, " node {}..{}", n.min, n.max);
                match ctx.devs.bucket_size(n.dev as u32).filter(|&b| b != 0) {
                    Some(bs) => {
                        let bs = bs as u64;
                        let _ = write!(pb, " at {}:{}:{}", n.dev, n.sector / bs, n.sector % bs);
                    }
                    None => {
                        let _ = write!(pb, " at {}:{}", n.dev, n.sector);
                    }
                }
            }
        };
        let repair = match self.kind {
            Kind::NodeReadError | Kind::NodeBadChecksum | Kind::NodeDataMissing => {
                let _ = write!(
                    pb,
                    "btree node read error at btree {} level {}/{}:",
                    bt, self.level, self.root_level
                );
                node(pb, &self.node);
                if let Some(e) = self.err {
                    let _ = write!(pb, ": {}", e);
                }
                match self.kind {
                    Kind::NodeReadError => {
                        "drop the node, then scan for btree nodes to fill the gap"
                    }
                    Kind::NodeBadChecksum => {
                        pb.str(", keys used from the copy that failed it");
                        "rewrite the node"
                    }
                    _ => "rewrite the node",
                }
            }
            Kind::NodeBadKeys => {
                let _ = write!(
                    pb,
                    "invalid keys in btree node at btree {} level {}/{}:",
                    bt, self.level, self.root_level
                );
                node(pb, &self.node);
                let _ = write!(pb, ": {} keys dropped", self.got);
                "rewrite the node without them"
            }
            Kind::GapBetweenNodes => {
                let _ = write!(
                    pb,
                    "gap between btree nodes at btree={} level={}",
                    bt,
                    self.level + 1
                );
                if let Some((a, b)) = self.range {
                    let _ = write!(pb, ": missing {}..{}", a, b);
                }
                "scan for btree nodes covering the range"
            }
            Kind::OverlapBetweenNodes => {
                let _ = write!(
                    pb,
                    "btree node overwritten by prev node at btree={} level={}:",
                    bt,
                    self.level + 1
                );
                node(pb, &self.node);
                if let Some((a, b)) = self.range {
                    let _ = write!(pb, ": overlap {}..{}", a, b);
                }
                "move the node's min_key past its predecessor"
            }
            Kind::BadMinKey | Kind::BadMaxKey => {
                let (end, verb, repair) = if self.kind == Kind::BadMinKey {
                    ("min_key", "start", "set the node's min_key")
                } else {
                    ("max_key", "end", "set the node's max_key")
                };
                let what = if self.level == self.root_level {
                    "btree root"
                } else {
                    "btree node"
                };
                let _ = write!(
                    pb,
                    "{} with incorrect {} at btree={} level={}:",
                    what, end, bt, self.level
                );
                node(pb, &self.node);
                if let Some((want, got)) = self.range {
                    let _ = write!(pb, ": {}s at {}, should {} at {}", verb, got, verb, want);
                }
                if let Some(e) = self.err {
                    let _ = write!(pb, ": {}", e);
                }
                repair
            }
            Kind::EmptyInteriorNode => {
                let _ = write!(
                    pb,
                    "empty interior btree node at btree={} level={}:",
                    bt, self.level
                );
                node(pb, &self.node);
                "drop the node"
            }
            Kind::PtrToInvalidDevice
            | Kind::PtrBucketInvalid
            | Kind::PtrToMissingAllocKey
            | Kind::PtrGenNewerThanBucketGen
            | Kind::PtrTooStale
            | Kind::StaleDirtyPtr
            | Kind::PtrBucketDataTypeMismatch => self.ptr_text(pb),
            Kind::AllocKeyWrong => {
                let (dev, b) = self.bucket.unwrap_or((0, 0));
                let f = self.field.unwrap_or(AllocField::Gen);
                let _ = write!(pb, "bucket {}:{} gen {}", dev, b, self.gen);
                if f == AllocField::DataType {
                    pb.str(" has wrong data_type: got ");
                    prt_data_type(pb, self.got as u8);
                    pb.str(", should be ");
                    prt_data_type(pb, self.want as u8);
                } else {
                    pb.str(" data type ");
                    prt_data_type(pb, self.data_type);
                    let _ = write!(
                        pb,
                        " has wrong {}: got {}, should be {}",
                        f.name(),
                        self.got,
                        self.want
                    );
                }
                let _ = write!(pb, " ({}; repair: update the alloc key)", f.err_name());
                return;
            }
            Kind::OldestGenTooNew => {
                let (dev, b) = self.bucket.unwrap_or((0, 0));
                let _ = write!(
                    pb,
                    "bucket {}:{} oldest_gen {} is newer than pointer gen {}",
                    dev, b, self.gen, self.ptr_gen
                );
                "lower oldest_gen"
            }
            Kind::AccountingMismatch => {
                pb.str("accounting mismatch for ");
                let n = match self.acct {
                    Some((a, n)) => {
                        accounting_key_to_text(pb, ctx, &a);
                        (n as usize).min(3)
                    }
                    None => 0,
                };
                pb.str(": got");
                for v in &self.acct_got[..n] {
                    let _ = write!(pb, " {}", v);
                }
                pb.str(" should be");
                for v in &self.acct_want[..n] {
                    let _ = write!(pb, " {}", v);
                }
                "rewrite the accounting key"
            }
            Kind::BtreeBitmapNotMarked => {
                let _ = write!(
                    pb,
                    "btree ptr not marked in member info btree allocated bitmap at btree={} level={}:",
                    bt, self.level
                );
                node(pb, &self.node);
                "mark the region in the bitmap"
            }
            Kind::BtreeBitmapGc => {
                let dev = self.bucket.map(|b| b.0).unwrap_or(0);
                let name = ctx.devs.dev_name(dev).unwrap_or("?");
                if self.got < 0 {
                    pb.str(
                        "superblock requires following recovery passes to be run: btree_bitmap_gc",
                    );
                } else {
                    let _ = write!(pb, "{} has ", name);
                    prt_human_sectors(pb, self.want as u64);
                    pb.str(" btree buckets and ");
                    prt_human_sectors(pb, self.got as u64);
                    pb.str(" marked in bitmap");
                }
                "run btree_bitmap_gc"
            }
            Kind::CheckAllocationsIncomplete => {
                let _ = write!(
                    pb,
                    "check_allocations: {} nodes holding pointers could not be read; buckets and accounting not compared",
                    self.got
                );
                "repair the btrees, then run check_allocations again"
            }
            Kind::BucketGensKeyWrong => {
                let (dev, b) = self.bucket.unwrap_or((0, 0));
                let _ = write!(
                    pb,
                    "bucket {}:{} incorrect gen in bucket_gens btree (got {} should be {})",
                    dev, b, self.got, self.want
                );
                "set the gen in the bucket_gens key"
            }
        };
        let _ = write!(pb, " ({}; repair: {})", self.kind.name(), repair);
    }

    fn ptr_text(&self, pb: &mut Pb<'_, '_>) -> &'static str {
        let (dev, b) = self.bucket.unwrap_or((0, 0));
        let repair = match self.kind {
            Kind::PtrToInvalidDevice => {
                let _ = write!(pb, "pointer to missing device {}", dev);
                "drop the pointer"
            }
            Kind::PtrBucketInvalid => {
                let _ = write!(
                    pb,
                    "pointer to invalid bucket on device {}: bucket {}",
                    dev, b
                );
                "drop the pointer"
            }
            Kind::PtrToMissingAllocKey => {
                let _ = write!(pb, "bucket {}:{} data type ", dev, b);
                prt_data_type(pb, self.data_type);
                let _ = write!(pb, " ptr gen {} missing in alloc btree", self.ptr_gen);
                "create the alloc key with the pointer's gen"
            }
            Kind::PtrGenNewerThanBucketGen => {
                let _ = write!(pb, "bucket {}:{} data type ", dev, b);
                prt_data_type(pb, self.data_type);
                let _ = write!(
                    pb,
                    " ptr gen in the future: {} > {}",
                    self.ptr_gen, self.gen
                );
                "set the pointer's gen to the bucket's"
            }
            Kind::PtrTooStale => {
                let _ = write!(pb, "bucket {}:{} gen {} data type ", dev, b, self.gen);
                prt_data_type(pb, self.data_type);
                let _ = write!(pb, ": ptr gen {} too stale", self.ptr_gen);
                "drop the pointer"
            }
            Kind::StaleDirtyPtr => {
                let _ = write!(pb, "bucket {}:{} data type ", dev, b);
                prt_data_type(pb, self.data_type);
                let _ = write!(pb, " stale dirty ptr: {} < {}", self.ptr_gen, self.gen);
                "set the pointer's gen to the bucket's"
            }
            _ => {
                let _ = write!(
                    pb,
                    "bucket {}:{} gen {} different types of data in same bucket: ",
                    dev, b, self.gen
                );
                prt_data_type(pb, self.data_type);
                pb.str(", ");
                prt_data_type(pb, self.got as u8);
                "drop the pointer"
            }
        };
        let _ = write!(
            pb,
            ", while marking {} at level {}",
            self.pos.unwrap_or_default(),
            self.level
        );
        repair
    }
}

/// Sectors as bytes in upstream's `prt_human_readable_u64` spelling (`7.00M`,
/// `10.3M`, `46.0M`), as fsck prints the bitmap figures.
pub fn prt_human_sectors(pb: &mut Pb<'_, '_>, sectors: u64) {
    prt_human_readable_u64(pb, sectors.saturating_mul(512));
}

#[cfg(test)]
mod tests {
    use super::super::super::printbuf::{Printbuf, TextOut};
    use super::*;
    use std::vec::Vec;

    fn h(v: u64) -> std::string::String {
        let mut buf: Vec<u8> = Vec::new();
        let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
        prt_human_readable_u64(&mut pb, v);
        std::string::String::from_utf8(buf).unwrap()
    }

    #[test]
    fn human_readable_like_the_reference() {
        // Figures from the fixtures' fsck.txt.
        assert_eq!(h(82 * 128 * 1024), "10.3M");
        assert_eq!(h(7 << 20), "7.00M");
        assert_eq!(h(54 * 128 * 1024), "6.75M");
        assert_eq!(h(46 << 20), "46.0M");
        assert_eq!(h(512), "512");
        assert_eq!(h(688128), "672k");
    }
}
