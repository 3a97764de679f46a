// SPDX-License-Identifier: GPL-2.0
//! On-disk layout of extent values: the entry list of `extent`, `btree_ptr`,
//! `btree_ptr_v2` and `reflink_v` values, and the fixed parts of the other data
//! values (reservation, reflink, inline data, stripes).
//!
//! An extent value is a list of entries packed one after the other. Each entry
//! starts with a little-endian u64 whose lowest set bit gives its type (like utf-8
//! encodes a length): bit 0 a pointer, bit 1 a crc32, bit 2 a crc64, ... A crc entry
//! applies to the pointers that follow it, until the next crc entry; a stripe entry
//! applies to the next pointer only.
//!
//! [`Entries`] walks the entries, [`DecodedPtrs`] the pointers with the crc and
//! stripe that apply to each (upstream's `bkey_for_each_ptr_decode`). Nothing here
//! can panic: bytes past the end of a value read as zero.

use super::super::bytes::{bits, le16z, le32z, le64z, u8z};
use super::super::ids::KeyType;

/// Entry type numbers (`enum bch_extent_entry_type`).
pub mod entry_type {
    /// `bch_extent_ptr`
    pub const PTR: u32 = 0;
    /// `bch_extent_crc32`
    pub const CRC32: u32 = 1;
    /// `bch_extent_crc64`
    pub const CRC64: u32 = 2;
    /// `bch_extent_crc128`
    pub const CRC128: u32 = 3;
    /// `bch_extent_stripe_ptr`
    pub const STRIPE_PTR: u32 = 4;
    /// `bch_extent_rebalance_v1`
    pub const REBALANCE_V1: u32 = 5;
    /// `bch_extent_flags`
    pub const FLAGS: u32 = 6;
    /// `bch_extent_reconcile`
    pub const RECONCILE: u32 = 7;
    /// `bch_extent_reconcile_bp`
    pub const RECONCILE_BP: u32 = 8;
    /// `BCH_EXTENT_ENTRY_MAX`
    pub const MAX: u32 = 9;
}

/// Upstream's `bch2_extent_entry_types[]`.
pub const ENTRY_TYPE_NAMES: [&str; 9] = [
    "ptr",
    "crc32",
    "crc64",
    "crc128",
    "stripe_ptr",
    "rebalance_v1",
    "flags",
    "reconcile",
    "reconcile_bp",
];

/// Size in u64s of each entry type (the default of the superblock's
/// `extent_type_u64s`).
pub const ENTRY_U64S: [usize; 9] = [1, 1, 2, 3, 1, 1, 1, 1, 1];

/// `BCH_SB_MEMBER_INVALID`: the device of a placeholder pointer.
pub const MEMBER_INVALID: u8 = 255;

/// `bch2_extent_flags_strs[]`.
pub const EXTENT_FLAG_NAMES: [&str; 1] = ["poisoned"];

/// `bch2_reconcile_opts[]` (`BCH_RECONCILE_OPTS()`).
pub const RECONCILE_OPT_NAMES: [&str; 6] = [
    "data_replicas",
    "data_checksum",
    "erasure_code",
    "background_compression",
    "background_target",
    "promote_target",
];

/// Bytes of `crc` per checksum type (`bch_crc_bytes[]`).
pub const CSUM_BYTES: [u32; 8] = [0, 4, 8, 10, 16, 4, 8, 8];

/// The type of the entry whose first word is `w` (`extent_entry_type`): the index
/// of its lowest set bit, or `None` for a zero word.
#[inline]
pub fn entry_type_of(w: u64) -> Option<u32> {
    if w == 0 {
        None
    } else {
        Some(w.trailing_zeros())
    }
}

/// The size in u64s of an entry of type `t`, `None` when the type is unknown.
#[inline]
pub fn entry_u64s(t: u32) -> Option<usize> {
    ENTRY_U64S.get(t as usize).copied()
}

/// `struct bch_extent_ptr`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ptr {
    /// Device index.
    pub dev: u8,
    /// Sector offset on the device.
    pub offset: u64,
    /// Bucket generation.
    pub gen: u8,
    /// Cached copy (may be dropped at any time).
    pub cached: bool,
    /// Allocated but never written (reads as zeroes).
    pub unwritten: bool,
}

impl Ptr {
    /// Decodes a pointer word.
    pub fn from_u64(w: u64) -> Ptr {
        Ptr {
            cached: bits(w, 1, 2) != 0,
            unwritten: bits(w, 3, 4) != 0,
            offset: bits(w, 4, 48),
            dev: bits(w, 48, 56) as u8,
            gen: bits(w, 56, 64) as u8,
        }
    }

    /// Encodes the pointer word (the inverse of [`Ptr::from_u64`]): entry type bit 0
    /// set, `cached` bit 1, `unwritten` bit 3, offset, dev and gen.
    pub fn to_u64(&self) -> u64 {
        use super::super::bytes::set_bits;
        let mut w = 1u64;
        w = set_bits(w, 1, 2, u64::from(self.cached));
        w = set_bits(w, 3, 4, u64::from(self.unwritten));
        w = set_bits(w, 4, 48, self.offset);
        w = set_bits(w, 48, 56, u64::from(self.dev));
        set_bits(w, 56, 64, u64::from(self.gen))
    }
}

/// A crc entry, unpacked (`struct bch_extent_crc_unpacked`). Sizes are in sectors.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Crc {
    /// Size of the data as written (compressed).
    pub compressed_size: u32,
    /// Size of the data uncompressed.
    pub uncompressed_size: u32,
    /// Offset of the live data within the uncompressed data.
    pub offset: u32,
    /// Live size: the key's size.
    pub live_size: u32,
    /// Encryption nonce.
    pub nonce: u32,
    /// `enum bch_csum_type`.
    pub csum_type: u8,
    /// `enum bch_compression_type`.
    pub compression_type: u8,
    /// `csum.hi`.
    pub csum_hi: u64,
    /// `csum.lo`.
    pub csum_lo: u64,
}

impl Crc {
    /// The implicit crc of pointers with no crc entry before them
    /// (`bch2_extent_crc_unpack(k, NULL)`).
    pub fn none(key_size: u32) -> Crc {
        Crc {
            compressed_size: key_size,
            uncompressed_size: key_size,
            live_size: key_size,
            ..Default::default()
        }
    }

    /// Unpacks a crc entry of type `t` (crc32/64/128) from its words.
    pub fn unpack(t: u32, w0: u64, w1: u64, w2: u64, key_size: u32) -> Crc {
        let mut c = Crc {
            live_size: key_size,
            ..Default::default()
        };
        match t {
            entry_type::CRC32 => {
                c.compressed_size = bits(w0, 2, 9) as u32 + 1;
                c.uncompressed_size = bits(w0, 9, 16) as u32 + 1;
                c.offset = bits(w0, 16, 23) as u32;
                c.csum_type = bits(w0, 24, 28) as u8;
                c.compression_type = bits(w0, 28, 32) as u8;
                c.csum_lo = bits(w0, 32, 64);
            }
            entry_type::CRC64 => {
                c.compressed_size = bits(w0, 3, 12) as u32 + 1;
                c.uncompressed_size = bits(w0, 12, 21) as u32 + 1;
                c.offset = bits(w0, 21, 30) as u32;
                c.nonce = bits(w0, 30, 40) as u32;
                c.csum_type = bits(w0, 40, 44) as u8;
                c.compression_type = bits(w0, 44, 48) as u8;
                c.csum_hi = bits(w0, 48, 64);
                c.csum_lo = w1;
            }
            _ => {
                c.compressed_size = bits(w0, 4, 17) as u32 + 1;
                c.uncompressed_size = bits(w0, 17, 30) as u32 + 1;
                c.offset = bits(w0, 30, 43) as u32;
                c.nonce = bits(w0, 43, 56) as u32;
                c.csum_type = bits(w0, 56, 60) as u8;
                c.compression_type = bits(w0, 60, 64) as u8;
                c.csum_lo = w1;
                c.csum_hi = w2;
            }
        }
        c
    }

    /// `crc_is_compressed`: compressed with a real algorithm.
    pub fn is_compressed(&self) -> bool {
        self.compression_type != compression::NONE
            && self.compression_type != compression::INCOMPRESSIBLE
    }
}

/// `enum bch_compression_type`.
pub mod compression {
    /// None.
    pub const NONE: u8 = 0;
    /// `lz4_old`: lz4, as written by old versions.
    pub const LZ4_OLD: u8 = 1;
    /// `gzip`: a raw deflate stream.
    pub const GZIP: u8 = 2;
    /// `lz4`: one lz4 block.
    pub const LZ4: u8 = 3;
    /// `zstd`: a le32 length, then one zstd frame.
    pub const ZSTD: u8 = 4;
    /// `incompressible`: stored uncompressed, after compression did not help.
    pub const INCOMPRESSIBLE: u8 = 5;
}

/// `struct bch_extent_stripe_ptr`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StripePtr {
    /// Block of the stripe the data is in.
    pub block: u8,
    /// Parity blocks of the stripe.
    pub redundancy: u8,
    /// Stripe index (position in the stripes btree).
    pub idx: u64,
}

impl StripePtr {
    /// Decodes a stripe entry word.
    pub fn from_u64(w: u64) -> StripePtr {
        StripePtr {
            block: bits(w, 5, 13) as u8,
            redundancy: bits(w, 13, 17) as u8,
            idx: bits(w, 17, 64),
        }
    }
}

/// The io options of `bch_extent_rebalance_v1` and `bch_extent_reconcile`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RebalanceOpts {
    /// Target replicas.
    pub data_replicas: u8,
    /// `enum bch_csum_opt`.
    pub data_checksum: u8,
    /// Erasure coding wanted.
    pub erasure_code: bool,
    /// `union bch_compression_opt` (type:4, level:4).
    pub background_compression: u8,
    /// Background target.
    pub background_target: u32,
    /// Promote target.
    pub promote_target: u32,
    /// Option came from the inode (bit per option, in `RECONCILE_OPT_NAMES` order).
    pub from_inode: u8,
}

/// Bits of [`RebalanceOpts::from_inode`].
pub mod from_inode {
    /// data_replicas
    pub const DATA_REPLICAS: u8 = 1 << 0;
    /// data_checksum
    pub const DATA_CHECKSUM: u8 = 1 << 1;
    /// erasure_code
    pub const ERASURE_CODE: u8 = 1 << 2;
    /// background_compression
    pub const BACKGROUND_COMPRESSION: u8 = 1 << 3;
    /// background_target
    pub const BACKGROUND_TARGET: u8 = 1 << 4;
    /// promote_target
    pub const PROMOTE_TARGET: u8 = 1 << 5;
}

impl RebalanceOpts {
    /// Decodes `bch_extent_rebalance_v1`.
    pub fn from_rebalance_v1(w: u64) -> RebalanceOpts {
        let f = |b: u32| bits(w, b, b + 1) != 0;
        let mut from = 0u8;
        if f(9) {
            from |= from_inode::PROMOTE_TARGET;
        }
        if f(10) {
            from |= from_inode::ERASURE_CODE;
        }
        if f(11) {
            from |= from_inode::DATA_CHECKSUM;
        }
        if f(12) {
            from |= from_inode::BACKGROUND_COMPRESSION;
        }
        if f(13) {
            from |= from_inode::DATA_REPLICAS;
        }
        if f(14) {
            from |= from_inode::BACKGROUND_TARGET;
        }
        RebalanceOpts {
            promote_target: bits(w, 15, 31) as u32,
            erasure_code: f(31),
            data_checksum: bits(w, 32, 36) as u8,
            data_replicas: bits(w, 36, 40) as u8,
            background_compression: bits(w, 40, 48) as u8,
            background_target: bits(w, 48, 64) as u32,
            from_inode: from,
        }
    }
}

/// `struct bch_extent_reconcile`: pending background work of an extent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Reconcile {
    /// Pointers being moved (bit per pointer).
    pub ptrs_moving: u8,
    /// High priority (degraded data).
    pub hipri: bool,
    /// Work can't be done now (target full).
    pub pending: bool,
    /// Which options need work (bit per `RECONCILE_OPT_NAMES`).
    pub need_rb: u8,
    /// The io options.
    pub opts: RebalanceOpts,
}

impl Reconcile {
    /// Decodes a reconcile entry word.
    pub fn from_u64(w: u64) -> Reconcile {
        let f = |b: u32| bits(w, b, b + 1) != 0;
        let mut from = 0u8;
        for i in 0..6u32 {
            if f(22 + i) {
                from |= 1 << i;
            }
        }
        Reconcile {
            ptrs_moving: bits(w, 10, 15) as u8,
            hipri: f(15),
            pending: f(16),
            need_rb: bits(w, 17, 22) as u8,
            opts: RebalanceOpts {
                data_replicas: bits(w, 28, 31) as u8,
                data_checksum: bits(w, 31, 35) as u8,
                erasure_code: f(35),
                background_compression: bits(w, 36, 44) as u8,
                background_target: bits(w, 44, 54) as u32,
                promote_target: bits(w, 54, 64) as u32,
                from_inode: from,
            },
        }
    }
}

/// One decoded extent entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    /// A pointer.
    Ptr(Ptr),
    /// A crc32/crc64/crc128 entry (`ty` says which), unpacked.
    Crc {
        /// `entry_type::CRC32`, `CRC64` or `CRC128`.
        ty: u32,
        /// The unpacked fields.
        crc: Crc,
    },
    /// An erasure coding stripe pointer, for the next pointer.
    StripePtr(StripePtr),
    /// Old rebalance options.
    RebalanceV1(RebalanceOpts),
    /// Extent flags (`EXTENT_FLAG_NAMES` bits).
    Flags(u64),
    /// Reconcile state.
    Reconcile(Reconcile),
    /// Reconcile backpointer index.
    ReconcileBp(u64),
    /// An entry of unknown type: its first word. Iteration stops after it.
    Unknown(u64),
}

/// Iterator over the entries of an entry list (`bkey_extent_entry_for_each`).
///
/// An entry of unknown type is yielded as [`Entry::Unknown`] and ends the walk, as
/// upstream's `extent_entry_next_safe` does. An entry running past the end of the
/// list reads the missing words as zero.
#[derive(Clone)]
pub struct Entries<'a> {
    b: &'a [u8],
    pos: usize,
    key_size: u32,
}

impl<'a> Entries<'a> {
    /// Entries of the list `b` (the part of the value holding entries), for a key of
    /// size `key_size` (crc entries take their live size from it).
    pub fn new(b: &'a [u8], key_size: u32) -> Entries<'a> {
        Entries {
            b,
            pos: 0,
            key_size,
        }
    }

    /// Byte offset of the next entry within the list.
    pub fn pos(&self) -> usize {
        self.pos
    }
}

impl Iterator for Entries<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.pos >= self.b.len() {
            return None;
        }
        let b = self.b;
        let p = self.pos;
        let w0 = le64z(b, p);
        let t = entry_type_of(w0);
        let u64s = match t.and_then(entry_u64s) {
            Some(n) => n,
            None => {
                self.pos = b.len();
                return Some(Entry::Unknown(w0));
            }
        };
        self.pos = p.saturating_add(u64s * 8);
        let w = |i: usize| le64z(b, p.saturating_add(i * 8));
        Some(match t.unwrap_or(u32::MAX) {
            entry_type::PTR => Entry::Ptr(Ptr::from_u64(w0)),
            ty @ (entry_type::CRC32 | entry_type::CRC64 | entry_type::CRC128) => Entry::Crc {
                ty,
                crc: Crc::unpack(ty, w0, w(1), w(2), self.key_size),
            },
            entry_type::STRIPE_PTR => Entry::StripePtr(StripePtr::from_u64(w0)),
            entry_type::REBALANCE_V1 => Entry::RebalanceV1(RebalanceOpts::from_rebalance_v1(w0)),
            entry_type::FLAGS => Entry::Flags(bits(w0, 7, 64)),
            entry_type::RECONCILE => Entry::Reconcile(Reconcile::from_u64(w0)),
            _ => Entry::ReconcileBp(bits(w0, 9, 64)),
        })
    }
}

/// A pointer with what applies to it (`struct extent_ptr_decoded`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DecodedPtr {
    /// The pointer.
    pub ptr: Ptr,
    /// The crc of the data it points to ([`Crc::none`] when there is no crc entry).
    pub crc: Crc,
    /// The stripe it belongs to, if erasure coded.
    pub ec: Option<StripePtr>,
}

/// Iterator over the pointers of an entry list with their crc and stripe
/// (`bkey_for_each_ptr_decode`).
#[derive(Clone)]
pub struct DecodedPtrs<'a> {
    e: Entries<'a>,
    crc: Crc,
}

impl<'a> DecodedPtrs<'a> {
    /// Decoded pointers of the entry list `b` of a key of size `key_size`.
    pub fn new(b: &'a [u8], key_size: u32) -> DecodedPtrs<'a> {
        DecodedPtrs {
            e: Entries::new(b, key_size),
            crc: Crc::none(key_size),
        }
    }
}

impl Iterator for DecodedPtrs<'_> {
    type Item = DecodedPtr;

    fn next(&mut self) -> Option<DecodedPtr> {
        let mut ec = None;
        loop {
            match self.e.next()? {
                Entry::Ptr(ptr) => {
                    return Some(DecodedPtr {
                        ptr,
                        crc: self.crc,
                        ec,
                    })
                }
                Entry::Crc { crc, .. } => self.crc = crc,
                Entry::StripePtr(s) => ec = Some(s),
                Entry::Unknown(_) => return None,
                _ => {}
            }
        }
    }
}

/// Bytes before the pointers in a `btree_ptr_v2` value.
pub const BTREE_PTR_V2_PTRS: usize = 40;
/// Bytes before the entries in a `reflink_v` value (the refcount).
pub const REFLINK_V_ENTRIES: usize = 8;

/// The entry list of a value of key type `typ` (`bch2_bkey_ptrs_c`): the whole value
/// of an extent or btree_ptr, past the header of a btree_ptr_v2 or reflink_v. `None`
/// for types without an entry list (stripes keep plain pointers: see
/// [`Stripe::ptr`]).
pub fn entries_of(typ: u8, v: &[u8]) -> Option<&[u8]> {
    let t = |x: KeyType| typ == x as u8;
    if t(KeyType::Extent) || t(KeyType::BtreePtr) {
        Some(v)
    } else if t(KeyType::BtreePtrV2) {
        Some(v.get(BTREE_PTR_V2_PTRS..).unwrap_or(&[]))
    } else if t(KeyType::ReflinkV) {
        Some(v.get(REFLINK_V_ENTRIES..).unwrap_or(&[]))
    } else {
        None
    }
}

/// Byte offset of the entry list in a value of key type `typ` (the write side of
/// [`entries_of`]).
pub fn entries_offset(typ: u8) -> Option<usize> {
    let t = |x: KeyType| typ == x as u8;
    if t(KeyType::Extent) || t(KeyType::BtreePtr) {
        Some(0)
    } else if t(KeyType::BtreePtrV2) {
        Some(BTREE_PTR_V2_PTRS)
    } else if t(KeyType::ReflinkV) {
        Some(REFLINK_V_ENTRIES)
    } else {
        None
    }
}

/// Sets pointer gens in the value `v` of a key of type `typ`: each pointer `f`
/// gives a gen for gets it (`bch2_check_fix_ptrs`'s `ptr->gen = g->gen`). Entries
/// are stepped as [`Entries`] steps them; an unknown entry ends the list. Returns
/// how many pointers changed.
pub fn set_ptr_gens(typ: u8, v: &mut [u8], f: &mut dyn FnMut(&Ptr) -> Option<u8>) -> usize {
    let Some(start) = entries_offset(typ) else {
        return 0;
    };
    let mut p = start;
    let mut n = 0;
    while p + 8 <= v.len() {
        let w0 = le64z(v, p);
        let Some(t) = entry_type_of(w0) else { break };
        let Some(u64s) = entry_u64s(t) else { break };
        if t == entry_type::PTR {
            if let Some(g) = f(&Ptr::from_u64(w0)) {
                let w = super::super::bytes::set_bits(w0, 56, 64, u64::from(g));
                if super::super::bytes::put_le64(v, p, w).is_some() {
                    n += 1;
                }
            }
        }
        p += u64s * 8;
    }
    n
}

/// `struct bch_btree_ptr_v2`'s header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BtreePtrV2 {
    /// Node sequence number (random, identifies the node).
    pub seq: u64,
    /// Sectors of the node written so far.
    pub sectors_written: u16,
    /// Flags (`BTREE_PTR_RANGE_UPDATED` in bit 0).
    pub flags: u16,
    /// Smallest key the node may hold.
    pub min_key: super::super::bpos::Bpos,
}

impl BtreePtrV2 {
    /// The `min_key` of a pointer of key type `typ`, when it is a `btree_ptr_v2`.
    pub fn min_key_of(typ: u8, v: &[u8]) -> Option<super::super::bpos::Bpos> {
        (typ == KeyType::BtreePtrV2 as u8).then(|| BtreePtrV2::read(v).min_key)
    }

    /// Reads the header of a `btree_ptr_v2` value (missing bytes read as zero).
    pub fn read(v: &[u8]) -> BtreePtrV2 {
        BtreePtrV2 {
            seq: le64z(v, 8),
            sectors_written: le16z(v, 16),
            flags: le16z(v, 18),
            min_key: super::super::bpos::Bpos {
                snapshot: le32z(v, 20),
                offset: le64z(v, 24),
                inode: le64z(v, 32),
            },
        }
    }

    /// `BTREE_PTR_RANGE_UPDATED`.
    pub fn range_updated(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Writes a `btree_ptr_v2` value (the inverse of [`BtreePtrV2::read`] plus the
    /// pointers): `mem_ptr` 0, this header, then one word per replica. Returns its
    /// length, or `None` when `out` is too short.
    pub fn write(&self, ptrs: &[Ptr], out: &mut [u8]) -> Option<usize> {
        use super::super::bytes::{put_le16, put_le64};
        let n = 40 + ptrs.len() * 8;
        out.get_mut(..n)?.fill(0);
        put_le64(out, 8, self.seq)?;
        put_le16(out, 16, self.sectors_written)?;
        put_le16(out, 18, self.flags)?;
        self.min_key.write(out, 20)?;
        for (i, p) in ptrs.iter().enumerate() {
            put_le64(out, 40 + i * 8, p.to_u64())?;
        }
        Some(n)
    }
}

/// `struct bch_reservation`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Reservation {
    /// Generation.
    pub generation: u32,
    /// Replicas reserved.
    pub nr_replicas: u8,
}

impl Reservation {
    /// Reads a reservation value.
    pub fn read(v: &[u8]) -> Reservation {
        Reservation {
            generation: le32z(v, 0),
            nr_replicas: u8z(v, 4),
        }
    }
}

/// `struct bch_reflink_p`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReflinkP {
    /// Start of the referenced range in the reflink btree (`REFLINK_P_IDX`).
    pub idx: u64,
    /// `REFLINK_P_ERROR`: the indirect extent is missing.
    pub error: bool,
    /// `REFLINK_P_MAY_UPDATE_OPTIONS`.
    pub may_update_options: bool,
    /// Referenced sectors before `idx`.
    pub front_pad: u32,
    /// Referenced sectors after the end.
    pub back_pad: u32,
}

impl ReflinkP {
    /// Reads a reflink_p value.
    pub fn read(v: &[u8]) -> ReflinkP {
        let f = le64z(v, 0);
        ReflinkP {
            idx: bits(f, 0, 56),
            error: bits(f, 56, 57) != 0,
            may_update_options: bits(f, 57, 58) != 0,
            front_pad: le32z(v, 8),
            back_pad: le32z(v, 12),
        }
    }
}

/// Refcount of a `reflink_v` or `indirect_inline_data` value.
pub fn refcount(v: &[u8]) -> u64 {
    le64z(v, 0)
}

/// Bytes before the data in an `inline_data` value.
pub const INLINE_DATA_OFFSET: usize = 0;
/// Bytes before the data in an `indirect_inline_data` value.
pub const INDIRECT_INLINE_DATA_OFFSET: usize = 8;

/// `struct bch_stripe`: the fixed header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stripe {
    /// Sectors per block.
    pub sectors: u16,
    /// Algorithm (low 4 bits of the byte).
    pub algorithm: u8,
    /// Needs reconcile.
    pub needs_reconcile: bool,
    /// Additional data blocks it could widen to.
    pub can_widen: u8,
    /// Blocks (data + parity).
    pub nr_blocks: u8,
    /// Parity blocks.
    pub nr_redundant: u8,
    /// log2 of the checksum granularity in sectors.
    pub csum_granularity_bits: u8,
    /// `enum bch_csum_type`.
    pub csum_type: u8,
    /// Disk label + 1, 0 for none.
    pub disk_label: u8,
}

/// Bytes of the stripe header (pointers follow).
pub const STRIPE_HDR: usize = 8;

impl Stripe {
    /// Reads the stripe header (missing bytes read as zero).
    pub fn read(v: &[u8]) -> Stripe {
        let a = u8z(v, 2);
        Stripe {
            sectors: le16z(v, 0),
            algorithm: a & 15,
            needs_reconcile: a & 16 != 0,
            can_widen: a >> 5,
            nr_blocks: u8z(v, 3),
            nr_redundant: u8z(v, 4),
            csum_granularity_bits: u8z(v, 5),
            csum_type: u8z(v, 6),
            disk_label: u8z(v, 7),
        }
    }

    /// Data blocks, as upstream computes it (unsigned: wraps when corrupt).
    pub fn nr_data(&self) -> u32 {
        (self.nr_blocks as u32).wrapping_sub(self.nr_redundant as u32)
    }

    /// Pointer `i` of the stripe value `v`, if it is inside the value.
    pub fn ptr(v: &[u8], i: usize) -> Option<Ptr> {
        let off = STRIPE_HDR.checked_add(i.checked_mul(8)?)?;
        if off >= v.len() {
            return None;
        }
        Some(Ptr::from_u64(le64z(v, off)))
    }

    /// Checksums per block (`stripe_csums_per_device`).
    pub fn csums_per_device(&self) -> u64 {
        let g = 1u64
            .checked_shl(self.csum_granularity_bits as u32)
            .unwrap_or(0);
        if g == 0 {
            return (self.sectors != 0) as u64;
        }
        (self.sectors as u64).div_ceil(g)
    }

    /// Byte offset of block `i`'s sector count (`stripe_blockcount_offset`), when the
    /// checksum type is known.
    pub fn blockcount_offset(&self, i: u32) -> Option<u64> {
        let csum_bytes = *CSUM_BYTES.get(self.csum_type as usize)? as u64;
        let nr = self.nr_blocks as u64;
        Some(
            (STRIPE_HDR as u64)
                .saturating_add(nr.saturating_mul(8))
                .saturating_add(
                    nr.saturating_mul(self.csums_per_device())
                        .saturating_mul(csum_bytes),
                )
                .saturating_add(2 * i as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btree_ptr_v2_write_reads_back() {
        let p = Ptr {
            dev: 1,
            offset: 503 * 128 + 32,
            gen: 7,
            ..Default::default()
        };
        assert_eq!(Ptr::from_u64(p.to_u64()), p);
        let h = BtreePtrV2 {
            seq: 0x2e5f_f6eb_8852_b3e0,
            sectors_written: 23,
            flags: 0,
            min_key: super::super::super::bpos::Bpos::new(4096, 2, 0xffff_ffff),
        };
        let mut v = [0xaau8; 56];
        assert_eq!(h.write(&[p, p], &mut v), Some(56));
        assert_eq!(BtreePtrV2::read(&v), h);
        let bp = super::super::super::btree::ptr::BtreePtr::decode(KeyType::BtreePtrV2 as u8, &v)
            .unwrap();
        assert_eq!(bp.ptrs().collect::<std::vec::Vec<_>>(), [p, p]);
        assert_eq!(h.write(&[p, p], &mut v[..55]), None);
    }

    #[test]
    fn ptr_and_crc32() {
        // crc32: c_size 128 size 128 offset 0 nonce 0 csum crc32c 0:a55e8b81, then
        // ptr 0:62*128 gen 0 (bucket size 128 sectors)
        let crc: u64 = 0b10 | (127 << 2) | (127 << 9) | (5 << 24) | (0xa55e8b81u64 << 32);
        let ptr: u64 = 1 | ((62 * 128) << 4);
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&crc.to_le_bytes());
        v[8..].copy_from_slice(&ptr.to_le_bytes());
        let e: std::vec::Vec<_> = Entries::new(&v, 128).collect();
        assert_eq!(e.len(), 2);
        match e[0] {
            Entry::Crc { ty, crc } => {
                assert_eq!(ty, entry_type::CRC32);
                assert_eq!(crc.compressed_size, 128);
                assert_eq!(crc.uncompressed_size, 128);
                assert_eq!(crc.csum_type, 5);
                assert_eq!(crc.csum_lo, 0xa55e8b81);
            }
            _ => panic!(),
        }
        let d: std::vec::Vec<_> = DecodedPtrs::new(&v, 128).collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].ptr.offset, 62 * 128);
        assert_eq!(d[0].crc.csum_lo, 0xa55e8b81);
    }

    #[test]
    fn garbage_never_panics() {
        let mut v = [0u8; 64];
        for seed in 0..2000u64 {
            super::super::super::bytes::fill_pseudo_random(&mut v, seed);
            for len in [0usize, 1, 7, 8, 9, 23, 64] {
                let s = &v[..len];
                let _ = Entries::new(s, 5).count();
                let _ = DecodedPtrs::new(s, 5).count();
                let st = Stripe::read(s);
                let _ = st.blockcount_offset(3);
                let _ = Stripe::ptr(s, usize::MAX);
            }
        }
    }
}
