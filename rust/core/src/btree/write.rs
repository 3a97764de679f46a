// SPDX-License-Identifier: GPL-2.0
//! Writing a btree node: the write twin of [`super::read`]. A bset is composed from
//! sorted keys, packed with the node's format where they fit, checksummed, zero
//! padded to the block, and checked by the reader's own rules before anyone may
//! write it (`validate_bset_for_write`): a bset the reader would reject is never
//! handed out.
//!
//! The first bset of a node carries the `btree_node` header (magic, flags, min/max,
//! format); later ones go at the node's next block behind a `btree_node_entry`.
//! Sectors already written are never touched: an append writes only
//! `[offset, offset + sectors)` of the node buffer.
//!
//! Nothing here allocates: the caller hands the node buffer.

use super::super::bkey::{encode_key, Bkey, BkeyFormat};
use super::super::bpos::Bpos;
use super::super::bytes::{put_le16, put_le32, put_le64, set_bits};
use super::super::csum::{self, Checksummer, CsumError};
use super::super::data::extents_format::{BtreePtrV2, Ptr};
use super::format::*;
use super::read::{bset_at, check_header, read_bsets, BsetRef, NodeCtx, NodeError, NodeHeader};
use super::validate::{check_bset, KeyInvalid};

impl<'a> WriteCtx<'a> {
    /// The context of a new node of the filesystem whose superblock is `s`: its
    /// magic, block and node sizes, metadata checksum type and version.
    pub fn new_node(s: &super::super::sb::Sb<'_>, csum: &'a dyn Checksummer) -> WriteCtx<'a> {
        WriteCtx {
            magic: s.bset_magic(),
            block_sectors: s.block_sectors(),
            node_sectors: s.btree_node_sectors(),
            csum_type: s.meta_csum_type(),
            version: s.version(),
            csum,
        }
    }
}

/// What a writer needs to know about the filesystem and the node.
#[derive(Clone, Copy)]
pub struct WriteCtx<'a> {
    /// `bset_magic` of the filesystem.
    pub magic: u64,
    /// Block size in sectors.
    pub block_sectors: u32,
    /// Node size in sectors.
    pub node_sectors: u32,
    /// Checksum type of the bsets (`bch_csum_type`).
    pub csum_type: u8,
    /// Metadata version the bsets are written with.
    pub version: u16,
    /// Hash functions.
    pub csum: &'a dyn Checksummer,
}

/// Why a bset was not composed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteError {
    /// The keys do not fit in what is left of the node: it needs rewriting to
    /// new space.
    NoRoom,
    /// The offset is not where the node's next bset goes.
    BadOffset,
    /// A key is longer than a key can be.
    KeyTooBig,
    /// The checksum type cannot be computed here.
    Csum(CsumError),
    /// The composed bset fails the reader's bset checks.
    Invalid(NodeError),
    /// A key fails the reader's key checks (order, range, type, size).
    InvalidKey(KeyInvalid),
    /// A new node's pointer value does not fit the buffer given for it.
    PointerBuffer,
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::NoRoom => f.write_str("no room left in the node"),
            WriteError::BadOffset => f.write_str("bset offset is not the node's next block"),
            WriteError::KeyTooBig => f.write_str("key too big"),
            WriteError::Csum(e) => write!(f, "checksum: {:?}", e),
            WriteError::Invalid(e) => write!(f, "bset would not read back: {}", e),
            WriteError::InvalidKey(e) => write!(f, "invalid key: {:?}", e),
            WriteError::PointerBuffer => f.write_str("pointer value buffer too short"),
        }
    }
}

/// `btree_node.flags` for a node of `btree` at `level` with rewrite seq `seq`
/// (the write side of `node_btree_id`, `node_level`, `node_seq`).
pub fn node_flags(btree: u32, level: u8, seq: u32) -> u64 {
    let mut f = set_bits(0, 0, 4, u64::from(btree));
    f = set_bits(f, 9, 25, u64::from(btree >> 4));
    f = set_bits(f, 4, 8, u64::from(level));
    // Every node since 1.0 is written with new_extent_overwrite semantics.
    f = set_bits(f, 8, 9, 1);
    set_bits(f, 32, 64, u64::from(seq))
}

/// `bset.flags` for a bset at sector `offset` with checksum type `csum_type`.
pub fn bset_flags(csum_type: u8, offset: u32) -> u32 {
    set_bits(
        set_bits(0, 0, 4, u64::from(csum_type)),
        16,
        32,
        u64::from(offset),
    ) as u32
}

fn round_up_block(bytes: usize, block_sectors: u32) -> usize {
    let blk = (block_sectors.max(1) as usize) << 9;
    bytes.div_ceil(blk) * blk
}

/// Writes the `btree_node` header fields of `h` (everything but the checksum and
/// the bset) at the start of `b`: the write side of [`NodeHeader::parse`].
pub fn write_node_header(h: &NodeHeader, b: &mut [u8]) -> Option<()> {
    put_le64(b, BN_MAGIC, h.magic)?;
    put_le64(b, BN_FLAGS, h.flags)?;
    h.min_key.write(b, BN_MIN_KEY)?;
    h.max_key.write(b, BN_MAX_KEY)?;
    h.format.write(b, BN_FORMAT)
}

/// Composes a bset at sector `offset` of the node in `buf` (the whole node, already
/// holding the bsets before `offset`) from `keys`, which must be sorted by position
/// with one key per position. At offset 0 the node header `h` is written first;
/// later bsets go behind a `btree_node_entry` and `h` must be the node's header as
/// read (its format packs the keys, its seq marks the bset).
///
/// Only `buf[offset << 9 .. (offset + sectors) << 9]` is written. The result is read
/// back by the reader's rules (checksum, size, key order, node range, key types)
/// before it is returned; on any error nothing in the returned range is valid.
pub fn write_bset(
    buf: &mut [u8],
    ctx: &WriteCtx<'_>,
    h: &NodeHeader,
    offset: u32,
    journal_seq: u64,
    keys: &mut dyn Iterator<Item = (Bkey, &[u8])>,
) -> Result<BsetRef, WriteError> {
    let node_bytes = (ctx.node_sectors as usize) << 9;
    let base = (offset as usize) << 9;
    if !offset.is_multiple_of(ctx.block_sectors.max(1)) || base >= node_bytes.min(buf.len()) {
        return Err(WriteError::BadOffset);
    }
    let end = node_bytes.min(buf.len());
    let area = &mut buf[base..end];
    let (hdr, bset) = if offset == 0 {
        (BN_BYTES, BN_BSET)
    } else {
        (BNE_BYTES, BNE_BSET)
    };
    if area.len() < hdr {
        return Err(WriteError::NoRoom);
    }
    // Keys first, so that running out of room leaves the header unwritten.
    let mut at = hdr;
    for (k, v) in keys {
        let dst = area.get_mut(at..).ok_or(WriteError::NoRoom)?;
        let n = match encode_key(&k, v, &h.format, dst) {
            Some(n) => n,
            None if v.len() + super::super::bkey::BKEY_BYTES > 255 * 8 => {
                return Err(WriteError::KeyTooBig)
            }
            None => return Err(WriteError::NoRoom),
        };
        at += n;
    }
    let u64s = u16::try_from((at - hdr) / 8).map_err(|_| WriteError::NoRoom)?;
    let padded = round_up_block(at, ctx.block_sectors);
    if padded > area.len() {
        return Err(WriteError::NoRoom);
    }
    area[at..padded].fill(0);
    area[..hdr].fill(0);
    if offset == 0 {
        write_node_header(h, area).ok_or(WriteError::NoRoom)?;
    }
    let put = |area: &mut [u8]| -> Option<()> {
        put_le64(area, bset + BSET_SEQ, h.seq)?;
        put_le64(area, bset + BSET_JOURNAL_SEQ, journal_seq)?;
        put_le32(area, bset + BSET_FLAGS, bset_flags(ctx.csum_type, offset))?;
        put_le16(area, bset + BSET_VERSION, ctx.version)?;
        put_le16(area, bset + BSET_U64S, u64s)
    };
    put(area).ok_or(WriteError::NoRoom)?;
    let sum = csum::checksum(ctx.csum, ctx.csum_type, &area[16..at]).map_err(WriteError::Csum)?;
    sum.write(area, 0);
    validate_for_write(buf, ctx, h, offset)
}

/// `validate_bset_for_write`: the bset at `offset` of `buf` read back exactly as the
/// reader reads it (header against `h`, checksum, size, then every key within
/// `h`'s range, which may be the pointer's rather than the header's).
pub fn validate_for_write(
    buf: &[u8],
    ctx: &WriteCtx<'_>,
    h: &NodeHeader,
    offset: u32,
) -> Result<BsetRef, WriteError> {
    let rctx = NodeCtx {
        magic: ctx.magic,
        block_sectors: ctx.block_sectors,
        node_sectors: ctx.node_sectors,
        written: 0,
        btree_id: Some(h.btree_id()),
        level: Some(h.level()),
        min_key: Some(h.min_key),
        max_key: Some(h.max_key),
        seq: Some(h.seq),
        // `h`'s range is the one the keys must fit: a node whose pointer moved its
        // range keeps its old header range on disk.
        range_updated: true,
        csum: ctx.csum,
        blacklisted: &|_| false,
        accept_bad_csum: false,
    };
    let on_disk = NodeHeader::parse(buf).ok_or(WriteError::Invalid(NodeError::Short))?;
    check_header(&rctx, &on_disk).map_err(WriteError::Invalid)?;
    let r = bset_at(buf, offset, h.seq, ctx.block_sectors, Some(ctx.csum))
        .map_err(WriteError::Invalid)?
        .ok_or(WriteError::Invalid(NodeError::BadBset {
            offset,
            what: "bset not found where it was written",
        }))?;
    if offset + r.sectors > ctx.node_sectors {
        return Err(WriteError::Invalid(NodeError::BadBset {
            offset,
            what: "bset past end of node",
        }));
    }
    let mut bad = None;
    check_bset(
        buf,
        &r,
        on_disk.format,
        h.btree_id(),
        h.level(),
        h.min_key,
        h.max_key,
        &mut |_, e| {
            bad.get_or_insert(e);
        },
    );
    match bad {
        Some(e) => Err(WriteError::InvalidKey(e)),
        None => Ok(r),
    }
}

/// Why [`append_bset`] composed nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AppendError {
    /// The replica does not read cleanly (an error, or a warning the reader would
    /// log): it is not appended to.
    Damaged,
    /// Its bsets end elsewhere than its pointer's `sectors_written` says.
    WrittenElsewhere,
    /// No block is left after the bsets written: the node needs rewriting to new
    /// space.
    NoRoom,
    /// Composing the bset failed.
    Write(WriteError),
}

/// Appends a bset of `keys` (sorted, one per position; journal seq `seq`,
/// metadata `version`) to the node replica in `buf`, the whole node with its
/// written sectors read. The replica is first read by the reader's rules under
/// `ctx`, whose `written` is the pointer's `sectors_written` (a copy whose
/// checksum fails is damaged here, whatever `ctx` says); the bset goes at its next
/// block with the checksum type of its last bset. `bsets` is the reader's scratch
/// (a node's worth of [`BsetRef`]s). Returns the new bset: only its sectors of
/// `buf` changed.
pub fn append_bset(
    buf: &mut [u8],
    ctx: &NodeCtx<'_>,
    version: u16,
    seq: u64,
    keys: &mut dyn Iterator<Item = (Bkey, &[u8])>,
    bsets: &mut [BsetRef],
) -> Result<BsetRef, AppendError> {
    let ctx = NodeCtx {
        accept_bad_csum: false,
        ..*ctx
    };
    let mut warned = false;
    let (h, n) =
        read_bsets(buf, &ctx, bsets, &mut |_| warned = true).map_err(|_| AppendError::Damaged)?;
    let last = match bsets.get(..n).and_then(|b| b.last()) {
        Some(last) if !warned => *last,
        _ => return Err(AppendError::Damaged),
    };
    let at = written(&bsets[..n]);
    if at != ctx.written {
        return Err(AppendError::WrittenElsewhere);
    }
    if at >= ctx.node_sectors {
        return Err(AppendError::NoRoom);
    }
    let wctx = WriteCtx {
        magic: ctx.magic,
        block_sectors: ctx.block_sectors,
        node_sectors: ctx.node_sectors,
        csum_type: bset_csum_type(last.flags),
        version,
        csum: ctx.csum,
    };
    write_bset(buf, &wctx, &h, at, seq, keys).map_err(AppendError::Write)
}

/// Sectors the bsets of a node take, from its [`BsetRef`]s: where the next bset
/// goes (`b->written`).
pub fn written(bsets: &[BsetRef]) -> u32 {
    bsets.last().map(|b| b.offset + b.sectors).unwrap_or(0)
}

/// A new node's header: `btree` at `level` over `[min, max]`, keys packed with
/// `format`, random node seq `seq` (shared by its bsets), rewrite count `rewrites`.
#[allow(clippy::too_many_arguments)]
pub fn new_header(
    magic: u64,
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    format: BkeyFormat,
    seq: u64,
    rewrites: u32,
) -> NodeHeader {
    NodeHeader {
        csum: Default::default(),
        magic,
        flags: node_flags(btree, level, rewrites),
        min_key: min,
        max_key: max,
        format,
        seq,
    }
}

/// What a new node is (its rewrite count one more than the node it replaces, as
/// upstream counts them).
#[derive(Clone, Copy, Debug)]
pub struct NodeSpec {
    /// Btree id.
    pub btree: u32,
    /// Level (0: a leaf).
    pub level: u8,
    /// Smallest position the node covers.
    pub min: Bpos,
    /// Largest position the node covers (its pointer's position).
    pub max: Bpos,
    /// The format its keys are packed with.
    pub format: BkeyFormat,
    /// Random node seq, shared by its bsets and named by its pointer.
    pub seq: u64,
    /// Rewrite count, kept in the header's flags.
    pub rewrites: u32,
}

/// A new node (upstream's node allocation and its first write): `keys` (sorted,
/// within its range) as its first bset, of journal seq `journal_seq`, into `buf`
/// (a whole node's bytes, zeroed), and its `btree_ptr_v2` value (all of it
/// written, `min_key` the node's) over the replicas `ptrs` into `ptr_v`, which
/// needs 40 bytes and 8 per replica. Returns the sectors written and the pointer
/// value's length.
pub fn compose_new_node(
    buf: &mut [u8],
    ctx: &WriteCtx<'_>,
    n: &NodeSpec,
    journal_seq: u64,
    keys: &mut dyn Iterator<Item = (Bkey, &[u8])>,
    ptrs: &[Ptr],
    ptr_v: &mut [u8],
) -> Result<(u32, usize), WriteError> {
    let h = new_header(
        ctx.magic, n.btree, n.level, n.min, n.max, n.format, n.seq, n.rewrites,
    );
    let r = write_bset(buf, ctx, &h, 0, journal_seq, keys)?;
    let sectors_written = u16::try_from(r.sectors).map_err(|_| WriteError::NoRoom)?;
    let len = BtreePtrV2 {
        seq: n.seq,
        sectors_written,
        flags: 0,
        min_key: n.min,
    }
    .write(ptrs, ptr_v)
    .ok_or(WriteError::PointerBuffer)?;
    Ok((r.sectors, len))
}

/// Sectors of the [`known_answer_node`] (in 512-byte blocks).
pub const KNOWN_ANSWER_SECTORS: u32 = 8;

/// The FNV-1a digest of each [`known_answer_node`], by bset checksum type: what
/// every build of this code (the kernel module with the kernel's hash functions,
/// the tool with its own) must compose byte for byte.
pub const KNOWN_ANSWER_DIGESTS: [(u8, u64); 3] = [
    (csum::ty::CRC32C, 0xb01a_697a_0c50_afeb),
    (csum::ty::CRC64, 0x8be6_06d1_bf71_654e),
    (csum::ty::XXHASH, 0x6e59_4038_a846_8bd3),
];

/// Composes a fixed two-bset node in `buf` (at least [`KNOWN_ANSWER_SECTORS`]
/// sectors): an extents leaf whose first bset ([`write_bset`]) holds three cookies
/// packed with a small format, and whose second, appended by [`append_bset`] from
/// an [`super::update::Unwritten`] set kept in `store` (as the kernel's commit
/// does), replaces one, deletes one and adds one whose position does not fit the
/// format (written unpacked). Both bsets are checksummed with `csum_type`.
pub fn known_answer_node(
    buf: &mut [u8],
    store: &mut [u8],
    csum_type: u8,
    csum: &dyn Checksummer,
) -> Result<BsetRef, AppendError> {
    const MAGIC: u64 = 0x6c1e_57a9_0b3d_2f11;
    let format = BkeyFormat {
        key_u64s: 2,
        nr_fields: 6,
        bits_per_field: [8, 16, 32, 0, 0, 0],
        field_offset: [4096, 0, 0, 0, 0, 0],
    };
    let h = new_header(
        MAGIC,
        0,
        0,
        Bpos::MIN,
        Bpos::MAX,
        format,
        0x5eed_0123_4567_89ab,
        2,
    );
    let wctx = WriteCtx {
        magic: MAGIC,
        block_sectors: 1,
        node_sectors: KNOWN_ANSWER_SECTORS,
        csum_type,
        version: 0x0400,
        csum,
    };
    let cookie = |inode: u64, offset: u64, snapshot: u32| Bkey {
        u64s: 0,
        format: 0,
        needs_whiteout: false,
        typ: super::super::ids::KeyType::Cookie as u8,
        version_hi: 0,
        version_lo: 0,
        size: 0,
        p: Bpos::new(inode, offset, snapshot),
    };
    let first = [
        (cookie(4096, 8, u32::MAX), [1u8; 8]),
        (cookie(4097, 16, u32::MAX), [2u8; 8]),
        (cookie(4100, 24, u32::MAX), [3u8; 8]),
    ];
    let mut it = first.iter().map(|(k, v)| (*k, &v[..]));
    let b0 = write_bset(buf, &wctx, &h, 0, 100, &mut it).map_err(AppendError::Write)?;
    let mut unwritten = super::update::Unwritten::new(store);
    let full = |_| AppendError::Write(WriteError::NoRoom);
    unwritten
        .insert(&cookie(1 << 40, 1, 1), &[9u8; 16])
        .map_err(full)?;
    unwritten
        .insert(&cookie(4097, 16, u32::MAX), &[7u8; 8])
        .map_err(full)?;
    unwritten
        .delete(Bpos::new(4100, 24, u32::MAX))
        .map_err(full)?;
    let ctx = NodeCtx {
        magic: MAGIC,
        block_sectors: 1,
        node_sectors: KNOWN_ANSWER_SECTORS,
        written: b0.offset + b0.sectors,
        btree_id: Some(0),
        level: Some(0),
        min_key: Some(Bpos::MIN),
        max_key: Some(Bpos::MAX),
        seq: Some(h.seq),
        range_updated: false,
        csum,
        blacklisted: &|_| false,
        accept_bad_csum: false,
    };
    let mut bsets = [BsetRef::default(); KNOWN_ANSWER_SECTORS as usize + 1];
    let mut it = unwritten.iter();
    append_bset(buf, &ctx, 0x0400, 101, &mut it, &mut bsets)
}

/// FNV-1a over `b`: the digest [`KNOWN_ANSWER_DIGESTS`] holds (no hash function
/// of the host or the kernel takes part in it).
pub fn known_answer_digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::ptr::BtreePtr;
    use super::super::read::{read_bsets, BsetRef, NodeCtx};
    use super::*;
    use crate::ids::KeyType;

    use super::super::super::csum::TestSum as Sum;

    /// A new node reads back through its own pointer: its keys, its range, the
    /// pointer's seq, `sectors_written` and `min_key`; a pointer buffer too short
    /// for its replicas is an error, not a panic.
    #[test]
    fn new_node_reads_back_through_its_pointer() {
        const MAGIC: u64 = 0x1234_5678_9abc_def0;
        let ctx = WriteCtx {
            magic: MAGIC,
            block_sectors: 1,
            node_sectors: 16,
            csum_type: 1,
            version: 0x0400,
            csum: &Sum,
        };
        let (min, max) = (Bpos::new(1, 0, 0), Bpos::new(1, 100, u32::MAX));
        let keys: std::vec::Vec<Bkey> = (1..=20u64)
            .map(|i| Bkey {
                typ: KeyType::Set as u8,
                p: Bpos::new(1, i * 4, u32::MAX),
                ..Default::default()
            })
            .collect();
        // need_discard: a btree of `set` keys.
        let btree = 12;
        let n = NodeSpec {
            btree,
            level: 0,
            min,
            max,
            format: crate::btree::interior::node_format(min, max, &mut keys.iter()),
            seq: 0x5eed,
            rewrites: 3,
        };
        let ptrs = [
            Ptr {
                dev: 0,
                offset: 4096,
                gen: 2,
                cached: false,
                unwritten: false,
            },
            Ptr {
                dev: 1,
                offset: 8192,
                gen: 0,
                cached: false,
                unwritten: false,
            },
        ];
        let mut buf = [0u8; 16 << 9];
        let mut v = [0u8; 56];
        let mut it = keys.iter().map(|k| (*k, &[][..]));
        let (sectors, len) =
            compose_new_node(&mut buf, &ctx, &n, 77, &mut it, &ptrs, &mut v).unwrap();
        assert_eq!(len, 56);
        let bp = BtreePtr::decode(KeyType::BtreePtrV2 as u8, &v[..len]).unwrap();
        assert_eq!(
            (bp.seq, u32::from(bp.written), bp.min_key),
            (0x5eed, sectors, Some(min))
        );
        assert_eq!(bp.ptrs().count(), 2);
        let rctx = NodeCtx {
            magic: MAGIC,
            block_sectors: 1,
            node_sectors: 16,
            written: sectors,
            btree_id: Some(btree),
            level: Some(0),
            min_key: bp.min_key,
            max_key: Some(max),
            seq: Some(bp.seq),
            range_updated: false,
            csum: &Sum,
            blacklisted: &|_| false,
            accept_bad_csum: false,
        };
        let mut bsets = [BsetRef::default(); 4];
        let (h, nb) = read_bsets(&buf, &rctx, &mut bsets, &mut |_| {}).unwrap();
        assert_eq!((nb, h.min_key, h.max_key, h.flags >> 32), (1, min, max, 3));
        let mut short = [0u8; 48];
        let mut it = keys.iter().map(|k| (*k, &[][..]));
        assert_eq!(
            compose_new_node(
                &mut [0u8; 16 << 9],
                &ctx,
                &n,
                77,
                &mut it,
                &ptrs,
                &mut short
            ),
            Err(WriteError::PointerBuffer)
        );
    }
}
