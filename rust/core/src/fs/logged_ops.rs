// SPDX-License-Identifier: GPL-2.0
//! The logged_ops btree: logged operations (`logged_op_truncate`, `logged_op_finsert`,
//! `logged_op_stripe_update`, `logged_op_inode_opt_propagate`) at inode 0, and the
//! inode allocation cursors (`inode_alloc_cursor`) at inode 1. On-disk layouts in
//! [`format`], text forms below.

use core::fmt::Write;

use super::super::bkey::Bkey;
use super::super::ids::KeyType;
use super::super::text::{Pb, TextCtx};

/// On-disk layouts (`logged_ops_format.h`, `bch_inode_alloc_cursor`).
pub mod format {
    use super::super::super::bytes::{le32z, le64z, u8z};

    /// `BLOCKDEV_INODE_MAX`: first inode number of the 32-bit cursor (index 0).
    pub const BLOCKDEV_INODE_MAX: u64 = 4096;

    /// `struct bch_logged_op_truncate`: `subvol`, `inum`, `new_i_size`.
    pub fn truncate(v: &[u8]) -> (u32, u64, u64) {
        (le32z(v, 0), le64z(v, 8), le64z(v, 16))
    }

    /// `struct bch_logged_op_finsert`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
    pub struct Finsert {
        /// `state` (`logged_op_finsert_state`).
        pub state: u8,
        /// `subvol`.
        pub subvol: u32,
        /// `inum`.
        pub inum: u64,
        /// `dst_offset`.
        pub dst_offset: u64,
        /// `src_offset`.
        pub src_offset: u64,
        /// `pos`.
        pub pos: u64,
    }

    impl Finsert {
        /// Reads a finsert value.
        pub fn read(v: &[u8]) -> Finsert {
            Finsert {
                state: u8z(v, 0),
                subvol: le32z(v, 4),
                inum: le64z(v, 8),
                dst_offset: le64z(v, 16),
                src_offset: le64z(v, 24),
                pos: le64z(v, 32),
            }
        }
    }

    /// `struct bch_logged_op_stripe_update`: `old_idx`, `new_idx`, `old_blocks_nr`
    /// (`old_block_map[16]` follows).
    pub fn stripe_update(v: &[u8]) -> (u64, u64, u8) {
        (le64z(v, 0), le64z(v, 8), u8z(v, 16))
    }

    /// `struct bch_logged_op_inode_opt_propagate`: `inum`, `origin_snapshot`,
    /// `cursor_snapshot`.
    pub fn inode_opt_propagate(v: &[u8]) -> (u64, u32, u32) {
        (le64z(v, 0), le32z(v, 8), le32z(v, 12))
    }

    /// `struct bch_inode_alloc_cursor`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
    pub struct InodeAllocCursor {
        /// `bits`: `shard_inode_numbers_bits` when the cursor was last written.
        pub bits: u8,
        /// `generation`.
        pub gen: u32,
        /// `idx`: the next inode number to try.
        pub idx: u64,
    }

    impl InodeAllocCursor {
        /// Reads a cursor value.
        pub fn read(v: &[u8]) -> InodeAllocCursor {
            InodeAllocCursor {
                bits: u8z(v, 0),
                gen: le32z(v, 4),
                idx: le64z(v, 8),
            }
        }
    }

    /// `cursor_idx_min_max`: the inode number range of cursor `idx` (0: the 32-bit
    /// range; `n > 0`: shard `n - 1` of `2^shard_bits`).
    pub fn cursor_idx_min_max(idx: u32, shard_bits: u32) -> (u64, u64) {
        if idx == 0 {
            return (BLOCKDEV_INODE_MAX, i32::MAX as u64);
        }
        let shard = (idx - 1) as u64;
        let bits = 63u32.wrapping_sub(shard_bits);
        let base = shard.checked_shl(bits).unwrap_or(0);
        let min = core::cmp::max(base, i32::MAX as u64 + 1);
        let max = base | !u64::MAX.checked_shl(bits).unwrap_or(0);
        (min, max)
    }
}

use format::{cursor_idx_min_max, Finsert, InodeAllocCursor};

/// `bch2_inode_alloc_cursor_to_text`, with the filesystem's
/// `shard_inode_numbers_bits`.
pub fn inode_alloc_cursor_fields_to_text(pb: &mut Pb<'_, '_>, k: &Bkey, v: &[u8], shard_bits: u32) {
    let c = InodeAllocCursor::read(v);
    // the C function takes the cursor index as an unsigned int
    let (min, max) = cursor_idx_min_max(k.p.offset as u32, shard_bits);
    let _ = write!(
        pb,
        "min {} max {} consumed {} idx {} generation {}",
        min,
        max,
        c.idx.wrapping_sub(min),
        c.idx,
        c.gen
    );
}

/// `c->opts.shard_inode_numbers_bits`.
///
/// WIRING POINT: [`TextCtx`] does not carry superblock options yet; the cursor's own
/// `bits` field (the option's value when the cursor was last written) stands in.
fn shard_inode_numbers_bits(ctx: &TextCtx<'_>, v: &[u8]) -> u32 {
    ctx.devs
        .shard_inode_numbers_bits()
        .unwrap_or(InodeAllocCursor::read(v).bits as u32)
}

/// Text of a logged_ops btree value: `inode_alloc_cursor` and the `logged_op_*` types.
pub fn logged_op_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    let t = k.typ;
    if t == KeyType::InodeAllocCursor as u8 {
        inode_alloc_cursor_fields_to_text(pb, k, v, shard_inode_numbers_bits(ctx, v));
    } else if t == KeyType::LoggedOpTruncate as u8 {
        let (subvol, inum, new_i_size) = format::truncate(v);
        let _ = write!(pb, "subvol={}", subvol);
        let _ = write!(pb, " inum={}", inum);
        let _ = write!(pb, " new_i_size={}", new_i_size);
    } else if t == KeyType::LoggedOpFinsert as u8 {
        let f = Finsert::read(v);
        let _ = write!(pb, "subvol={}", f.subvol);
        let _ = write!(pb, " inum={}", f.inum);
        let _ = write!(pb, " dst_offset={}", f.dst_offset as i64);
        let _ = write!(pb, " src_offset={}", f.src_offset);
    } else if t == KeyType::LoggedOpStripeUpdate as u8 {
        let (old_idx, new_idx, old_blocks_nr) = format::stripe_update(v);
        let _ = write!(pb, "old_idx={}", old_idx);
        let _ = write!(pb, " new_idx={}", new_idx);
        let _ = write!(pb, " old_blocks_nr={}", old_blocks_nr);
    } else if t == KeyType::LoggedOpInodeOptPropagate as u8 {
        let (inum, origin, cursor) = format::inode_opt_propagate(v);
        let _ = write!(pb, "inum={} origin={} cursor={}", inum, origin, cursor);
    } else {
        super::super::text::opaque_to_text(pb, v);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::bpos::Bpos;
    use super::super::super::printbuf::{FixedBuf, Printbuf, TextOut};
    use super::super::super::text::NoDevs;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn show(t: KeyType, p: Bpos, v: &[u8]) -> String {
        let mut buf = [0u8; 1024];
        let mut out = FixedBuf::new(&mut buf);
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut out);
            let k = Bkey {
                typ: t as u8,
                p,
                ..Default::default()
            };
            logged_op_to_text(&mut pb, &TextCtx { devs: &NoDevs }, &k, v);
        }
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    fn cursor(bits: u8, gen: u32, idx: u64) -> Vec<u8> {
        let mut v = std::vec![bits, 0, 0, 0];
        v.extend_from_slice(&gen.to_le_bytes());
        v.extend_from_slice(&idx.to_le_bytes());
        v
    }

    #[test]
    fn cursors() {
        let c = |bits, off, idx| {
            show(
                KeyType::InodeAllocCursor,
                Bpos::new(1, off, 0),
                &cursor(bits, 0, idx),
            )
        };
        assert_eq!(
            c(0, 1, 2147484268),
            "min 2147483648 max 9223372036854775807 consumed 620 idx 2147484268 generation 0"
        );
        assert_eq!(
            c(2, 1, 2147489668),
            "min 2147483648 max 2305843009213693951 consumed 6020 idx 2147489668 generation 0"
        );
        assert_eq!(
            c(2, 3, 4611686018427387905),
            "min 4611686018427387904 max 6917529027641081855 consumed 1 idx 4611686018427387905 generation 0"
        );
        assert_eq!(
            c(1, 2, 4611686018427387905),
            "min 4611686018427387904 max 9223372036854775807 consumed 1 idx 4611686018427387905 generation 0"
        );
        assert_eq!(
            c(0, 0, 4097),
            "min 4096 max 2147483647 consumed 1 idx 4097 generation 0"
        );
        for bits in [0u8, 8, 63, 64, 200, 255] {
            let _ = c(bits, u64::MAX, 0);
        }
        let _ = show(KeyType::InodeAllocCursor, Bpos::MIN, &[]);
    }

    #[test]
    fn ops() {
        let mut v = Vec::new();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&4096u64.to_le_bytes());
        v.extend_from_slice(&100u64.to_le_bytes());
        assert_eq!(
            show(KeyType::LoggedOpTruncate, Bpos::MIN, &v),
            "subvol=1 inum=4096 new_i_size=100"
        );
        let mut v = std::vec![0u8, 0, 0, 0];
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&4096u64.to_le_bytes());
        v.extend_from_slice(&(-8i64).to_le_bytes());
        v.extend_from_slice(&16u64.to_le_bytes());
        v.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            show(KeyType::LoggedOpFinsert, Bpos::MIN, &v),
            "subvol=1 inum=4096 dst_offset=-8 src_offset=16"
        );
        let mut v = Vec::new();
        v.extend_from_slice(&5u64.to_le_bytes());
        v.extend_from_slice(&6u64.to_le_bytes());
        v.extend_from_slice(&[3u8; 24]);
        assert_eq!(
            show(KeyType::LoggedOpStripeUpdate, Bpos::MIN, &v),
            "old_idx=5 new_idx=6 old_blocks_nr=3"
        );
        let mut v = Vec::new();
        v.extend_from_slice(&7u64.to_le_bytes());
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            show(KeyType::LoggedOpInodeOptPropagate, Bpos::MIN, &v),
            "inum=7 origin=8 cursor=9"
        );
        assert_eq!(
            show(KeyType::LoggedOpTruncate, Bpos::MIN, &[]),
            "subvol=0 inum=0 new_i_size=0"
        );
    }
}
