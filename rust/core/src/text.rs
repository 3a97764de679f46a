// SPDX-License-Identifier: GPL-2.0
//! The text form of keys, exactly as the reference `bcachefs list` prints them.
//!
//! [`bkey_val_to_text`] prints the header (`bkey_to_text`) and, for keys with a value,
//! `"  : "` and the value through the per-type printer of the subsystem that owns the
//! type (alloc/, data/, fs/, snapshots/).

use super::bkey::{Bkey, BKEY_U64S};
use super::bpos::Bpos;
use super::printbuf::{Printbuf, TextOut};

/// The printbuf type every printer takes.
pub type Pb<'a, 'b> = Printbuf<'a, dyn TextOut + 'b>;

/// What printers need to know beyond the key: device names for pointers.
pub trait DevNames {
    /// The name of device `dev` (`img`, `vda`, ...), if it is a member.
    fn dev_name(&self, dev: u32) -> Option<&str>;

    /// Bucket size of member `dev` in sectors: pointers to a member print as
    /// `dev:bucket:offset_in_bucket`. `None` prints them as `dev:sector`.
    fn bucket_size(&self, _dev: u32) -> Option<u32> {
        None
    }

    /// Durability of member `dev` (`BCH_MEMBER_DURABILITY`, 1 unless set): counted in
    /// an extent's `durability:`, and printed as ` d=N` after pointers when not 1.
    fn durability(&self, _dev: u32) -> u32 {
        1
    }

    /// `c->sb.extent_bp_shift` as stored (`BCH_SB_EXTENT_BP_SHIFT`), 0 when unset.
    fn extent_bp_shift(&self) -> u32 {
        0
    }

    /// `c->opts.shard_inode_numbers_bits`, when known.
    fn shard_inode_numbers_bits(&self) -> Option<u32> {
        None
    }

    /// Current generation of bucket `bucket` of member `dev` (from the alloc info),
    /// so pointers into reused buckets print ` stale=N`: `None` when bucket gens are
    /// not known (nothing printed), `Some(-1)` for a bucket the device doesn't have
    /// (printed as ` stale=-1`, as upstream does).
    fn bucket_gen(&self, _dev: u32, _bucket: u64) -> Option<i32> {
        None
    }

    /// `dev_ptr_stale`: how many generations the bucket of a pointer at sector
    /// `offset` of `dev` with generation `gen` has moved on (0: current; -1: the
    /// device has no such bucket). `None` when bucket sizes or gens are not known.
    fn ptr_stale(&self, dev: u32, offset: u64, gen: u8) -> Option<i32> {
        let bs = u64::from(self.bucket_size(dev).filter(|&b| b != 0)?);
        let g = self.bucket_gen(dev, offset / bs)?;
        // gen_after(g, ptr.gen), with -1 for a bad bucket.
        Some(if g < 0 {
            g
        } else {
            ((g as u8).wrapping_sub(gen) as i8).max(0) as i32
        })
    }
}

/// No device names known: pointers print their device as invalid.
pub struct NoDevs;

impl DevNames for NoDevs {
    fn dev_name(&self, _dev: u32) -> Option<&str> {
        None
    }
}

/// Context for printers.
pub struct TextCtx<'a> {
    /// Device index to name.
    pub devs: &'a dyn DevNames,
}

/// `bch2_bkey_to_text`: `u64s U type T POS len L ver V`. `u64s` is the unpacked size
/// (value u64s + 5), as upstream prints a disassembled key.
pub fn bkey_to_text(pb: &mut Pb<'_, '_>, k: &Bkey, val_u64s: usize) {
    pb.str("u64s ");
    pb.u64((val_u64s + BKEY_U64S) as u64);
    pb.str(" type ");
    match super::ids::key_type_name(k.typ) {
        Some(n) => pb.str(n),
        None => pb.u64(k.typ as u64),
    }
    pb.str(" ");
    bpos_to_text(pb, k.p);
    pb.str(" len ");
    pb.u64(k.size as u64);
    pb.str(" ver ");
    pb.u64(k.version_lo);
}

/// `bch2_bpos_to_text`: what [`Bpos`]'s `Display` prints, without `core::fmt`.
pub fn bpos_to_text(pb: &mut Pb<'_, '_>, p: Bpos) {
    if p == Bpos::MIN {
        return pb.str("POS_MIN");
    }
    if p == Bpos::POS_MAX {
        return pb.str("POS_MAX");
    }
    if p == Bpos::MAX {
        return pb.str("SPOS_MAX");
    }
    match p.inode {
        u64::MAX => pb.str("U64_MAX"),
        i => pb.u64(i),
    }
    pb.str(":");
    match p.offset {
        u64::MAX => pb.str("U64_MAX"),
        o => pb.u64(o),
    }
    pb.str(":");
    match p.snapshot {
        u32::MAX => pb.str("U32_MAX"),
        s => pb.u64(s as u64),
    }
}

/// `bch2_bkey_val_to_text`: header, then `": "` and the value (indented by 2) when
/// there is one.
pub fn bkey_val_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    bkey_to_text(pb, k, v.len() / 8);
    if !v.is_empty() {
        // The value prints inside a 2-space indent: the spaces before ':' and the
        // indentation of every continuation line both come from it.
        pb.indent_add(2);
        pb.str(": ");
        val_to_text(pb, ctx, k, v);
        pb.indent_sub(2);
    }
}

/// `bch2_val_to_text`: the value of `k`, by type.
pub fn val_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    use super::ids::KeyType as T;
    let t = k.typ;
    let is = |x: T| t == x as u8;
    if is(T::AllocV4) {
        super::alloc::text::alloc_v4_to_text(pb, ctx, k, v)
    } else if is(T::Accounting) {
        super::alloc::text::accounting_to_text(pb, ctx, k, v)
    } else if is(T::Backpointer) {
        super::alloc::text::backpointer_to_text(pb, ctx, k, v)
    } else if is(T::BucketGens) {
        super::alloc::text::bucket_gens_to_text(pb, ctx, k, v)
    } else if is(T::Lru) {
        super::alloc::text::lru_to_text(pb, ctx, k, v)
    } else if is(T::Alloc) || is(T::AllocV2) || is(T::AllocV3) {
        super::alloc::text::alloc_old_to_text(pb, ctx, k, v)
    } else if is(T::Cookie) {
        super::alloc::text::cookie_to_text(pb, ctx, k, v)
    } else if is(T::Snapshot) {
        super::snapshots::text::snapshot_to_text(pb, ctx, k, v)
    } else if is(T::SnapshotTree) {
        super::snapshots::text::snapshot_tree_to_text(pb, ctx, k, v)
    } else if is(T::Subvolume) {
        super::snapshots::text::subvolume_to_text(pb, ctx, k, v)
    } else if is(T::InodeAllocCursor)
        || is(T::LoggedOpTruncate)
        || is(T::LoggedOpFinsert)
        || is(T::LoggedOpStripeUpdate)
        || is(T::LoggedOpInodeOptPropagate)
    {
        super::fs::text::logged_op_to_text(pb, ctx, k, v)
    } else if is(T::Quota) {
        super::fs::text::quota_to_text(pb, ctx, k, v)
    } else if is(T::Inode) || is(T::InodeV2) || is(T::InodeV3) || is(T::InodeGeneration) {
        super::fs::text::inode_to_text(pb, ctx, k, v)
    } else if is(T::Dirent) {
        super::fs::text::dirent_to_text(pb, ctx, k, v)
    } else if is(T::Xattr) {
        super::fs::text::xattr_to_text(pb, ctx, k, v)
    } else if is(T::Damage) {
        super::fs::text::damage_to_text(pb, ctx, k, v)
    } else {
        super::data::text::val_to_text(pb, ctx, k, v)
    }
}

/// Fallback for a value no printer knows: its bytes in hex.
pub fn opaque_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    use core::fmt::Write;
    for b in v {
        let _ = write!(pb, "{:02x}", b);
    }
}
