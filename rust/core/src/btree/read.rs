// SPDX-License-Identifier: GPL-2.0
//! Reading a btree node: the header, then every bset in write order, each checked
//! (magic, checksum, version, size, keys) as upstream's `btree_node_read_done` does.
//!
//! Nothing here allocates: the caller hands a buffer holding the node's bytes and a
//! slice to describe the bsets in.

use super::super::bkey::{Bkey, BkeyFormat, Unpacker};
use super::super::bpos::Bpos;
use super::super::bytes::{le16, le32, le64};
use super::super::csum::{self, Checksummer, Csum, CsumError};
use super::format::*;

/// The fixed header of a node (`struct btree_node` minus its first bset).
#[derive(Clone, Copy, Debug)]
pub struct NodeHeader {
    /// Stored checksum of the first bset.
    pub csum: Csum,
    /// Magic.
    pub magic: u64,
    /// Flags (btree id, level, seq).
    pub flags: u64,
    /// Smallest key position the node covers.
    pub min_key: Bpos,
    /// Largest key position the node covers.
    pub max_key: Bpos,
    /// The node's key format.
    pub format: BkeyFormat,
    /// `keys.seq`: the node's random sequence number, shared by all its bsets.
    pub seq: u64,
}

impl NodeHeader {
    /// Parses the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<NodeHeader> {
        Some(NodeHeader {
            csum: Csum::read(b, 0)?,
            magic: le64(b, BN_MAGIC)?,
            flags: le64(b, BN_FLAGS)?,
            min_key: Bpos::read(b, BN_MIN_KEY)?,
            max_key: Bpos::read(b, BN_MAX_KEY)?,
            format: BkeyFormat::read(b, BN_FORMAT)?,
            seq: le64(b, BN_BSET + BSET_SEQ)?,
        })
    }
    /// Btree id recorded in the node.
    pub fn btree_id(&self) -> u32 {
        node_btree_id(self.flags)
    }
    /// Level recorded in the node.
    pub fn level(&self) -> u8 {
        node_level(self.flags)
    }
}

/// One bset of a node.
#[derive(Clone, Copy, Debug, Default)]
pub struct BsetRef {
    /// Sector offset of this bset's block within the node.
    pub offset: u32,
    /// Sectors it occupies (rounded up to the block size).
    pub sectors: u32,
    /// `seq`.
    pub seq: u64,
    /// Highest journal sequence this bset has keys from.
    pub journal_seq: u64,
    /// `flags`.
    pub flags: u32,
    /// On-disk format version of the bset.
    pub version: u16,
    /// Byte offset of the first key in the node buffer.
    pub start: u32,
    /// Bytes of keys.
    pub len: u32,
    /// Left out of the merge: its journal seq is blacklisted.
    pub blacklisted: bool,
}

impl BsetRef {
    /// The key bytes of this bset in `buf`.
    pub fn keys<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let s = self.start as usize;
        buf.get(s..s + self.len as usize).unwrap_or(&[])
    }
}

/// What is wrong with a node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NodeError {
    /// Buffer shorter than a node header.
    Short,
    /// Bad magic: not a btree node of this filesystem.
    BadMagic,
    /// The header names another btree.
    WrongBtree(u32),
    /// The header names another level.
    WrongLevel(u8),
    /// The header's min_key is not the pointer's.
    WrongMinKey,
    /// The header's max_key is not the pointer's.
    WrongMaxKey,
    /// The node's seq is not the pointer's: stale or overwritten node.
    WrongSeq,
    /// The key format cannot be unpacked safely.
    BadFormat(&'static str),
    /// The bset at this sector offset has a bad checksum.
    BadChecksum {
        /// Sector offset of the bset.
        offset: u32,
    },
    /// Unknown or unsupported checksum type.
    Csum(CsumError),
    /// The bset at this offset is malformed.
    BadBset {
        /// Sector offset of the bset.
        offset: u32,
        /// What.
        what: &'static str,
    },
    /// Fewer sectors hold bsets than the pointer says were written.
    Incomplete {
        /// Sectors found.
        found: u32,
        /// Sectors the pointer says.
        expected: u32,
    },
    /// More bsets than the caller's scratch slice holds.
    TooManyBsets,
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NodeError::Short => f.write_str("node shorter than its header"),
            NodeError::BadMagic => f.write_str("bad magic"),
            NodeError::WrongBtree(id) => write!(f, "node belongs to btree {}", id),
            NodeError::WrongLevel(l) => write!(f, "node is at level {}", l),
            NodeError::WrongMinKey => f.write_str("min_key does not match pointer"),
            NodeError::WrongMaxKey => f.write_str("max_key does not match pointer"),
            NodeError::WrongSeq => f.write_str("node seq does not match pointer (stale node)"),
            NodeError::BadFormat(w) => write!(f, "invalid key format: {}", w),
            NodeError::BadChecksum { offset } => {
                write!(f, "bad checksum in bset at offset {}", offset)
            }
            NodeError::Csum(CsumError::UnknownType(t)) => write!(f, "unknown checksum type {}", t),
            NodeError::Csum(CsumError::Encrypted(_)) => {
                f.write_str("encrypted metadata is not supported")
            }
            NodeError::BadBset { offset, what } => write!(f, "bset at offset {}: {}", offset, what),
            NodeError::Incomplete { found, expected } => {
                write!(
                    f,
                    "data missing: expected {} sectors, found {}",
                    expected, found
                )
            }
            NodeError::TooManyBsets => f.write_str("too many bsets"),
        }
    }
}

/// What the caller knows about the node being read (from its parent's pointer and
/// the superblock).
#[derive(Clone, Copy)]
pub struct NodeCtx<'a> {
    /// `bset_magic` of the filesystem.
    pub magic: u64,
    /// Block size in sectors.
    pub block_sectors: u32,
    /// Node size in sectors.
    pub node_sectors: u32,
    /// Sectors written per the pointer (btree_ptr_v2), 0 when unknown.
    pub written: u32,
    /// Expected btree id, level, min and max key, seq (`None` = unchecked).
    pub btree_id: Option<u32>,
    /// Expected level.
    pub level: Option<u8>,
    /// Expected min_key.
    pub min_key: Option<Bpos>,
    /// Expected max_key.
    pub max_key: Option<Bpos>,
    /// Expected node seq.
    pub seq: Option<u64>,
    /// The pointer has `BTREE_PTR_RANGE_UPDATED`: its `min_key`/`max_key` above
    /// replace the header's (not checked against it), and keys outside them are
    /// dropped by the merge, as upstream reads a node whose range topology repair
    /// moved.
    pub range_updated: bool,
    /// Hash functions.
    pub csum: &'a dyn Checksummer,
    /// Whether a journal seq is blacklisted.
    pub blacklisted: &'a dyn Fn(u64) -> bool,
    /// Use bsets whose checksum fails (reporting each through `warn`): the last
    /// resort when no replica has a good copy, as upstream's repair keeps the keys.
    pub accept_bad_csum: bool,
}

fn round_up_sectors(bytes: usize, block_sectors: u32) -> u32 {
    // A block size of 0 (a caller's bad context) reads as one sector, not as a
    // division by zero.
    let blk = (block_sectors.max(1) as usize) << 9;
    ((bytes.div_ceil(blk) * blk) >> 9) as u32
}

/// Checks the node header against the pointer.
pub fn check_header(ctx: &NodeCtx<'_>, h: &NodeHeader) -> Result<(), NodeError> {
    if h.magic != ctx.magic {
        return Err(NodeError::BadMagic);
    }
    if let Some(s) = ctx.seq {
        if h.seq != s {
            return Err(NodeError::WrongSeq);
        }
    }
    if let Some(id) = ctx.btree_id {
        if h.btree_id() != id {
            return Err(NodeError::WrongBtree(h.btree_id()));
        }
    }
    if let Some(l) = ctx.level {
        if h.level() != l {
            return Err(NodeError::WrongLevel(h.level()));
        }
    }
    if !ctx.range_updated {
        if let Some(k) = ctx.min_key {
            if h.min_key != k {
                return Err(NodeError::WrongMinKey);
            }
        }
        if let Some(k) = ctx.max_key {
            if h.max_key != k {
                return Err(NodeError::WrongMaxKey);
            }
        }
    }
    h.format.validate().map_err(NodeError::BadFormat)
}

/// The bset at sector `offset` of a node whose first bset has seq `node_seq`:
/// `Ok(None)` where the node's bsets end (another node's leftovers, or the end of
/// the buffer); its checksum is checked when `c` is given (`Err(BadChecksum)` when
/// it fails).
pub(super) fn bset_at(
    buf: &[u8],
    offset: u32,
    node_seq: u64,
    block_sectors: u32,
    c: Option<&dyn Checksummer>,
) -> Result<Option<BsetRef>, NodeError> {
    let base = (offset as usize) << 9;
    let (hdr_bytes, bset_at) = if offset == 0 {
        (BN_BYTES, BN_BSET)
    } else {
        (BNE_BYTES, BNE_BSET)
    };
    let bs = base + bset_at;
    let Some(seq) = le64(buf, bs + BSET_SEQ) else {
        return Ok(None);
    };
    if offset != 0 && seq != node_seq {
        return Ok(None);
    }
    let flags = le32(buf, bs + BSET_FLAGS).unwrap_or(0);
    let u64s = le16(buf, bs + BSET_U64S).unwrap_or(0) as usize;
    let bytes = hdr_bytes + u64s * 8;
    if base + bytes > buf.len() {
        return Err(NodeError::BadBset {
            offset,
            what: "bset past end of node",
        });
    }
    let r = BsetRef {
        offset,
        sectors: round_up_sectors(bytes, block_sectors),
        seq,
        journal_seq: le64(buf, bs + BSET_JOURNAL_SEQ).unwrap_or(0),
        flags,
        version: le16(buf, bs + BSET_VERSION).unwrap_or(0),
        start: (base + hdr_bytes) as u32,
        len: (u64s * 8) as u32,
        blacklisted: false,
    };
    if let Some(c) = c {
        let want = Csum::read(buf, base).ok_or(NodeError::Short)?;
        let got = csum::checksum(c, bset_csum_type(flags), &buf[base + 16..base + bytes])
            .map_err(NodeError::Csum)?;
        if got != want {
            return Err(NodeError::BadChecksum { offset });
        }
    }
    Ok(Some(r))
}

/// Recomputes and stores the checksum of the bset `r` (from [`read_bsets`]) after
/// its keys were changed in `buf`: the write side of the check in `bset_at`.
pub fn seal_bset(buf: &mut [u8], r: &BsetRef, c: &dyn Checksummer) -> Result<(), NodeError> {
    let base = (r.offset as usize) << 9;
    let end = (r.start + r.len) as usize;
    let data = buf.get(base + 16..end).ok_or(NodeError::Short)?;
    let sum = csum::checksum(c, bset_csum_type(r.flags), data).map_err(NodeError::Csum)?;
    sum.write(buf, base);
    Ok(())
}

/// Reads every bset of the node in `buf` into `out`, checking checksums and sizes.
/// Returns the header and the number of bsets. An error in the first bset fails the
/// node; a later bad bset ends the node there (its keys are not used) and is reported
/// through `warn`, as upstream does for a torn write.
pub fn read_bsets(
    buf: &[u8],
    ctx: &NodeCtx<'_>,
    out: &mut [BsetRef],
    warn: &mut dyn FnMut(NodeError),
) -> Result<(NodeHeader, usize), NodeError> {
    let mut h = NodeHeader::parse(buf).ok_or(NodeError::Short)?;
    check_header(ctx, &h)?;
    if ctx.range_updated {
        h.min_key = ctx.min_key.unwrap_or(h.min_key);
        h.max_key = ctx.max_key.unwrap_or(h.max_key);
    }
    let limit = if ctx.written != 0 {
        ctx.written
    } else {
        ctx.node_sectors
    };
    let limit = limit.min((buf.len() >> 9) as u32);
    let mut offset = 0u32;
    let mut n = 0usize;
    while offset < limit {
        let r = match bset_at(buf, offset, h.seq, ctx.block_sectors, Some(ctx.csum)) {
            Ok(None) => break,
            Ok(Some(r)) => Ok(r),
            // Salvage: use the bset anyway, once the failure is reported.
            Err(NodeError::BadChecksum { offset }) if ctx.accept_bad_csum => {
                warn(NodeError::BadChecksum { offset });
                match bset_at(buf, offset, h.seq, ctx.block_sectors, None) {
                    Ok(Some(r)) => Ok(r),
                    _ => break,
                }
            }
            Err(e) => Err(e),
        };
        let r = r.and_then(|r| {
            if offset + r.sectors > ctx.node_sectors {
                Err(NodeError::BadBset {
                    offset,
                    what: "bset past end of node",
                })
            } else if bset_big_endian(r.flags) {
                Err(NodeError::BadBset {
                    offset,
                    what: "big endian bset",
                })
            } else {
                Ok(r)
            }
        });
        let mut r = match r {
            Ok(r) => r,
            Err(e) if n == 0 => return Err(e),
            Err(e) => {
                warn(e);
                break;
            }
        };
        r.blacklisted = n != 0 && (ctx.blacklisted)(r.journal_seq);
        *out.get_mut(n).ok_or(NodeError::TooManyBsets)? = r;
        n += 1;
        offset += r.sectors;
    }
    if ctx.written != 0 && offset < ctx.written {
        warn(NodeError::Incomplete {
            found: offset,
            expected: ctx.written,
        });
    }
    Ok((h, n))
}

/// Walks the bsets in an on-disk node image the way the reference's `nodes-ondisk`
/// listing does: no validation beyond what it takes to step, stopping at the first
/// block whose seq differs or whose checksum fails. Calls `f` for each bset.
pub fn walk_ondisk(
    buf: &[u8],
    block_sectors: u32,
    node_sectors: u32,
    c: &dyn Checksummer,
    f: &mut dyn FnMut(&BsetRef),
) -> Result<(), NodeError> {
    let h = NodeHeader::parse(buf).ok_or(NodeError::Short)?;
    let mut offset = 0u32;
    let limit = node_sectors.min((buf.len() >> 9) as u32);
    while offset < limit {
        let Some(r) = bset_at(buf, offset, h.seq, block_sectors, Some(c))? else {
            break;
        };
        f(&r);
        offset += r.sectors;
    }
    Ok(())
}

/// Why a key in a bset is bad.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyError {
    /// `u64s` is zero or runs past the end of the bset.
    BadSize,
    /// Unknown key format.
    BadFormat,
    /// The key is smaller than its header.
    TooSmall,
}

/// Iterates the keys of one bset: `(header, value, byte offset of the key)`.
/// Stops (yielding an error once) at a key that cannot be stepped over.
pub struct KeyIter<'a> {
    b: &'a [u8],
    off: usize,
    f: Unpacker,
    done: bool,
}

impl<'a> KeyIter<'a> {
    /// Keys of `b` (a bset's key bytes) packed with `f`.
    pub fn new(b: &'a [u8], f: BkeyFormat) -> Self {
        KeyIter {
            b,
            off: 0,
            f: Unpacker::new(&f),
            done: false,
        }
    }
}

/// Decodes the key at the start of `rest` (a bset's remaining key bytes) into `k`:
/// returns the header's length and the key's whole length in bytes.
#[inline(always)]
pub(crate) fn key_at(rest: &[u8], f: &Unpacker, k: &mut Bkey) -> Result<(usize, usize), KeyError> {
    let u64s = rest.first().copied().unwrap_or(0) as usize;
    let kb = u64s * 8;
    if u64s == 0 || kb > rest.len() {
        return Err(KeyError::BadSize);
    }
    let kbytes = rest.get(..kb).unwrap_or(&[]);
    let hdr = match f.decode_into(kbytes, k) {
        Some(x) => x,
        None => {
            return Err(if rest.get(1).map(|f| f & 0x7f > 1) == Some(true) {
                KeyError::BadFormat
            } else {
                KeyError::TooSmall
            })
        }
    };
    if hdr > kb {
        return Err(KeyError::TooSmall);
    }
    Ok((hdr, kb))
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = Result<(Bkey, &'a [u8], usize), KeyError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.off >= self.b.len() {
            return None;
        }
        let rest = self.b.get(self.off..).unwrap_or(&[]);
        let mut k = Bkey::default();
        match key_at(rest, &self.f, &mut k) {
            Ok((hdr, kb)) => {
                let at = self.off;
                self.off += kb;
                Some(Ok((k, rest.get(hdr..kb).unwrap_or(&[]), at)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_size_of_zero_rounds_to_sectors() {
        assert_eq!(round_up_sectors(100, 0), 1);
        assert_eq!(round_up_sectors(1025, 0), 3);
        assert_eq!(round_up_sectors(1025, 8), 8);
    }
}
