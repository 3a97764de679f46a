// SPDX-License-Identifier: GPL-2.0
//! Key validation as the read path applies it (upstream's `bch2_bkey_validate`,
//! the checks that can be made from the key alone): typed errors that say what is
//! wrong. The merge drops keys that fail, and [`check_bset`] reports where.

use super::super::bkey::{Bkey, BkeyFormat};
use super::super::bpos::Bpos;
use super::super::data::extents_format::{entries_of, Entries, Entry};
use super::super::ids::{self, KeyType as T};
use super::read::{BsetRef, KeyError, KeyIter};

/// What is wrong with a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyInvalid {
    /// The key type is not one this btree holds.
    WrongTypeForBtree(u8),
    /// An interior node holds something other than a btree pointer.
    NotAPointer(u8),
    /// The value is shorter than the type's fixed part.
    ValueTooSmall {
        /// Bytes the type needs at least.
        min: usize,
        /// Bytes there are.
        got: usize,
    },
    /// A non-extent btree key with a nonzero size.
    NonzeroSize(u32),
    /// An extent's crc entry upstream's `bch2_bkey_ptrs_validate` refuses, and
    /// why.
    BadCrc(&'static str),
    /// Position before or equal to the previous key of the same bset.
    OutOfOrder {
        /// The previous key's position.
        prev: Bpos,
    },
    /// Position outside the node's `[min_key, max_key]`.
    OutsideNode,
    /// The key could not be decoded at all (the rest of its bset is lost).
    Undecodable(KeyError),
}

/// Types each btree may hold (`BCH_BTREE_IDS()`'s masks), by btree id; `deleted`
/// is allowed everywhere.
fn allowed_types(btree: u32) -> Option<u64> {
    let b = |ts: &[T]| ts.iter().fold(1u64, |m, &t| m | (1u64 << t as u8));
    Some(match btree {
        0 => b(&[
            T::Whiteout,
            T::ExtentWhiteout,
            T::Error,
            T::Cookie,
            T::Extent,
            T::Reservation,
            T::ReflinkP,
            T::InlineData,
        ]),
        1 => b(&[
            T::Whiteout,
            T::Inode,
            T::InodeV2,
            T::InodeV3,
            T::InodeGeneration,
        ]),
        2 => b(&[T::Whiteout, T::HashWhiteout, T::Dirent]),
        3 => b(&[T::Whiteout, T::Cookie, T::HashWhiteout, T::Xattr]),
        4 => b(&[T::Alloc, T::AllocV2, T::AllocV3, T::AllocV4]),
        5 => b(&[T::Quota]),
        6 => b(&[T::Stripe]),
        7 => b(&[T::ReflinkV, T::IndirectInlineData, T::Error]),
        8 => b(&[T::Subvolume]),
        9 => b(&[T::Snapshot]),
        10 | 11 | 12 | 16 | 19 | 21 | 22 | 24 | 25 | 26 => b(&[T::Set]),
        13 | 27 => b(&[T::Backpointer]),
        14 => b(&[T::BucketGens]),
        15 => b(&[T::SnapshotTree]),
        17 => b(&[
            T::LoggedOpTruncate,
            T::LoggedOpFinsert,
            T::LoggedOpStripeUpdate,
            T::LoggedOpInodeOptPropagate,
            T::InodeAllocCursor,
        ]),
        18 => b(&[T::Set, T::Cookie]),
        20 => b(&[T::Accounting]),
        23 => b(&[T::Cookie, T::Backpointer]),
        28 => b(&[T::Whiteout, T::Damage]),
        _ => return None,
    })
}

/// Fixed value bytes of types whose size this code is sure of.
fn min_val_bytes(t: u8) -> usize {
    match t {
        x if x == T::BtreePtrV2 as u8 => 40,
        x if x == T::AllocV4 as u8 => 48,
        _ => 0,
    }
}

/// Checks one key of btree `btree` at `level`.
pub fn validate_key(btree: u32, level: u8, k: &Bkey, v: &[u8]) -> Result<(), KeyInvalid> {
    let t = k.typ;
    if t == T::Deleted as u8 {
        return Ok(());
    }
    if level > 0 {
        if t != T::BtreePtr as u8 && t != T::BtreePtrV2 as u8 {
            return Err(KeyInvalid::NotAPointer(t));
        }
    } else if let Some(mask) = allowed_types(btree) {
        if t >= 64 || mask & (1u64 << t) == 0 {
            return Err(KeyInvalid::WrongTypeForBtree(t));
        }
    }
    let min = min_val_bytes(t);
    if v.len() < min {
        return Err(KeyInvalid::ValueTooSmall { min, got: v.len() });
    }
    if level == 0 && k.size != 0 && !ids::btree_is_extents(btree) {
        return Err(KeyInvalid::NonzeroSize(k.size));
    }
    if let Some(e) = entries_of(t, v) {
        check_crcs(e, k.size)?;
    }
    Ok(())
}

/// The crc entries of an extent's entry list `e` (key size `size`), as
/// `bch2_bkey_ptrs_validate` checks them.
fn check_crcs(e: &[u8], size: u32) -> Result<(), KeyInvalid> {
    /// `BCH_CSUM_NR`, `BCH_COMPRESSION_TYPE_NR`.
    const CSUM_NR: u8 = 8;
    const COMPRESSION_NR: u8 = 6;
    let mut crc_since_ptr = false;
    for entry in Entries::new(e, size) {
        match entry {
            Entry::Ptr(_) => crc_since_ptr = false,
            Entry::Crc { crc, .. } => {
                let bad = |w| Err(KeyInvalid::BadCrc(w));
                if crc.csum_type >= CSUM_NR {
                    return bad("invalid checksum type");
                }
                if crc.compression_type >= COMPRESSION_NR {
                    return bad("invalid compression type");
                }
                if u64::from(crc.offset) + u64::from(crc.live_size)
                    > u64::from(crc.uncompressed_size)
                {
                    return bad("checksum offset + key size > uncompressed size");
                }
                if !crc.is_compressed() && crc.compressed_size != crc.uncompressed_size {
                    return bad("not compressed but compressed != uncompressed size");
                }
                if crc_since_ptr {
                    return bad("redundant crc entry");
                }
                crc_since_ptr = true;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks every key of one bset: decoding, order, range, and [`validate_key`].
/// Calls `f(byte offset of the key in the bset, problem)` for each bad key.
#[allow(clippy::too_many_arguments)]
pub fn check_bset(
    buf: &[u8],
    bset: &BsetRef,
    f_: BkeyFormat,
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    f: &mut dyn FnMut(usize, KeyInvalid),
) {
    let mut prev: Option<Bpos> = None;
    for r in KeyIter::new(bset.keys(buf), f_) {
        match r {
            Err(e) => f(0, KeyInvalid::Undecodable(e)),
            Ok((k, v, at)) => {
                if let Some(p) = prev {
                    if k.p <= p {
                        f(at, KeyInvalid::OutOfOrder { prev: p });
                    }
                }
                prev = Some(k.p);
                if k.p < min || k.p > max {
                    f(at, KeyInvalid::OutsideNode);
                }
                if let Err(e) = validate_key(btree, level, &k, v) {
                    f(at, e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(typ: T, size: u32) -> Bkey {
        Bkey {
            typ: typ as u8,
            size,
            ..Default::default()
        }
    }

    #[test]
    fn extent_crc_checks() {
        // crc32 entry (compressed 95, uncompressed 79, none), then a pointer: the
        // sizes must agree when not compressed.
        let crc = |c: u64, u: u64, comp: u64| -> u64 {
            0b10 | ((c - 1) << 2) | ((u - 1) << 9) | (5 << 24) | (comp << 28)
        };
        let ptr: u64 = 1 | (4096 << 4);
        let v = |w0: u64| {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&w0.to_le_bytes());
            v[8..].copy_from_slice(&ptr.to_le_bytes());
            v
        };
        let k = key(T::Extent, 79);
        assert_eq!(validate_key(0, 0, &k, &v(crc(79, 79, 0))), Ok(()));
        assert_eq!(
            validate_key(0, 0, &k, &v(crc(95, 79, 0))),
            Err(KeyInvalid::BadCrc(
                "not compressed but compressed != uncompressed size"
            ))
        );
        // zstd: sizes may differ.
        assert_eq!(validate_key(0, 0, &k, &v(crc(40, 79, 4))), Ok(()));
        assert_eq!(
            validate_key(0, 0, &key(T::Extent, 80), &v(crc(79, 79, 0))),
            Err(KeyInvalid::BadCrc(
                "checksum offset + key size > uncompressed size"
            ))
        );
        assert!(validate_key(0, 0, &k, &v(crc(79, 79, 9))).is_err());
    }

    #[test]
    fn types_per_btree() {
        assert_eq!(validate_key(1, 0, &key(T::InodeV3, 0), &[0; 64]), Ok(()));
        assert_eq!(
            validate_key(1, 0, &key(T::Dirent, 0), &[0; 64]),
            Err(KeyInvalid::WrongTypeForBtree(10))
        );
        assert_eq!(validate_key(1, 0, &key(T::Deleted, 0), &[]), Ok(()));
        assert_eq!(
            validate_key(1, 1, &key(T::InodeV3, 0), &[0; 64]),
            Err(KeyInvalid::NotAPointer(29))
        );
        assert_eq!(validate_key(1, 1, &key(T::BtreePtrV2, 0), &[0; 48]), Ok(()));
        // unknown btrees are not second-guessed
        assert_eq!(validate_key(60, 0, &key(T::Dirent, 0), &[]), Ok(()));
        assert_eq!(validate_key(0, 0, &key(T::Extent, 8), &[0; 16]), Ok(()));
    }

    #[test]
    fn sizes() {
        assert_eq!(
            validate_key(4, 0, &key(T::AllocV4, 0), &[0; 40]),
            Err(KeyInvalid::ValueTooSmall { min: 48, got: 40 })
        );
        assert_eq!(
            validate_key(1, 1, &key(T::BtreePtrV2, 0), &[0; 8]),
            Err(KeyInvalid::ValueTooSmall { min: 40, got: 8 })
        );
        assert_eq!(
            validate_key(2, 0, &key(T::Dirent, 3), &[0; 16]),
            Err(KeyInvalid::NonzeroSize(3))
        );
    }
}
