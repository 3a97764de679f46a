// SPDX-License-Identifier: GPL-2.0
//! Writing journal entries: the write twin of [`super::read`]. A [`JsetBuilder`]
//! fills a caller buffer with entries (`btree_keys`, `btree_root`, `datetime`,
//! `usage`, `clock`), then seals it: header, checksum, zero padding to the block,
//! and a read back by [`parse_jset`] before anyone may write it. [`next_slot`]
//! says where in the journal ring the next entry goes.

use super::super::bkey::{encode_key_unpacked, Bkey};
use super::super::bytes::{bits, put, put_le16, put_le32, put_le64, set_bits};
use super::super::csum::{self, Checksummer, CsumError};
use super::read::*;

/// Entry types this writer makes (`bch_jset_entry_type`).
pub mod ty {
    /// `btree_keys`.
    pub const BTREE_KEYS: u8 = 0;
    /// `btree_root`.
    pub const BTREE_ROOT: u8 = 1;
    /// `usage`.
    pub const USAGE: u8 = 5;
    /// `clock`.
    pub const CLOCK: u8 = 7;
    /// `datetime`.
    pub const DATETIME: u8 = 12;
}

/// `BCH_FS_USAGE_key_version`: the usage entry every jset carries.
pub const USAGE_KEY_VERSION: u8 = 2;

/// Bytes of a `jset_entry` header.
pub const ENTRY_HDR: usize = 8;

/// Why a jset was not built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JsetWriteError {
    /// The entries do not fit the buffer (or a journal bucket).
    NoRoom,
    /// The checksum type cannot be computed here.
    Csum(CsumError),
    /// The sealed jset does not read back.
    Invalid(JsetError),
}

/// The header fields of a jset to seal.
#[derive(Clone, Copy, Debug)]
pub struct JsetHeader {
    /// `jset_magic` of the filesystem.
    pub magic: u64,
    /// Sequence number.
    pub seq: u64,
    /// Oldest seq whose keys are not all in btree nodes yet.
    pub last_seq: u64,
    /// Metadata version.
    pub version: u32,
    /// `flags`: checksum type and the rest ([`jset_flags`] for a flush entry).
    pub flags: u32,
}

/// `jset.flags` of a flush write with checksum type `csum_type`, little endian,
/// without overwrite entries.
pub fn jset_flags(csum_type: u8) -> u32 {
    set_bits(0, 0, 4, u64::from(csum_type)) as u32
}

/// Builds one jset in a caller buffer.
pub struct JsetBuilder<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> JsetBuilder<'a> {
    /// An empty jset in `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        JsetBuilder {
            buf,
            at: JSET_BYTES,
        }
    }

    /// Bytes used so far (header and entries).
    pub fn len(&self) -> usize {
        self.at
    }

    /// Whether no entry was added yet.
    pub fn is_empty(&self) -> bool {
        self.at == JSET_BYTES
    }

    /// Starts an entry of `typ`; the payload follows from [`Self::payload_mut`].
    fn start(&mut self, typ: u8, btree: u8, level: u8) -> Result<usize, JsetWriteError> {
        let hdr = self.at;
        let b = self
            .buf
            .get_mut(hdr..hdr + ENTRY_HDR)
            .ok_or(JsetWriteError::NoRoom)?;
        b.fill(0);
        b[2] = btree;
        b[3] = level;
        b[4] = typ;
        self.at += ENTRY_HDR;
        Ok(hdr)
    }

    fn end(&mut self, hdr: usize) -> Result<(), JsetWriteError> {
        let u64s =
            u16::try_from((self.at - hdr - ENTRY_HDR) / 8).map_err(|_| JsetWriteError::NoRoom)?;
        put_le16(self.buf, hdr, u64s).ok_or(JsetWriteError::NoRoom)
    }

    fn push_key(&mut self, k: &Bkey, v: &[u8]) -> Result<(), JsetWriteError> {
        let dst = self.buf.get_mut(self.at..).ok_or(JsetWriteError::NoRoom)?;
        // Journal keys are never packed.
        let n = encode_key_unpacked(k, v, dst).ok_or(JsetWriteError::NoRoom)?;
        self.at += n;
        Ok(())
    }

    /// An entry of raw payload `data` (zero padded to u64s).
    pub fn raw(
        &mut self,
        typ: u8,
        btree: u8,
        level: u8,
        data: &[u8],
    ) -> Result<(), JsetWriteError> {
        let hdr = self.start(typ, btree, level)?;
        let n = data.len().div_ceil(8) * 8;
        let dst = self
            .buf
            .get_mut(self.at..self.at + n)
            .ok_or(JsetWriteError::NoRoom)?;
        dst.fill(0);
        dst[..data.len()].copy_from_slice(data);
        self.at += n;
        self.end(hdr)
    }

    /// A `btree_keys` entry for `btree` at `level` holding `keys` (unpacked).
    pub fn btree_keys(
        &mut self,
        btree: u32,
        level: u8,
        keys: &mut dyn Iterator<Item = (Bkey, &[u8])>,
    ) -> Result<(), JsetWriteError> {
        let hdr = self.start(ty::BTREE_KEYS, btree as u8, level)?;
        for (k, v) in keys {
            self.push_key(&k, v)?;
        }
        self.end(hdr)
    }

    /// A `btree_root` entry: the root of `btree` is the node at `level` that the
    /// pointer `k`/`v` names.
    pub fn btree_root(
        &mut self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
    ) -> Result<(), JsetWriteError> {
        let hdr = self.start(ty::BTREE_ROOT, btree as u8, level)?;
        self.push_key(k, v)?;
        self.end(hdr)
    }

    /// A `datetime` entry: seconds since the epoch.
    pub fn datetime(&mut self, secs: u64) -> Result<(), JsetWriteError> {
        self.raw(ty::DATETIME, 0, 0, &secs.to_le_bytes())
    }

    /// A `usage` entry of type `t` with value `v`.
    pub fn usage(&mut self, t: u8, v: u64) -> Result<(), JsetWriteError> {
        self.raw(ty::USAGE, t, 0, &v.to_le_bytes())
    }

    /// A `clock` entry: the read (`rw` 0) or write (1) clock at `time`.
    pub fn clock(&mut self, rw: u8, time: u64) -> Result<(), JsetWriteError> {
        let mut d = [0u8; 16];
        d[0] = rw;
        d[8..].copy_from_slice(&time.to_le_bytes());
        self.raw(ty::CLOCK, 0, 0, &d)
    }

    /// Seals the jset: header fields, checksum, zero padding to the block. Returns
    /// the bytes to write (a whole number of blocks), after reading them back.
    pub fn seal(
        self,
        h: &JsetHeader,
        block_sectors: u32,
        c: &dyn Checksummer,
    ) -> Result<&'a [u8], JsetWriteError> {
        let at = self.at;
        let blk = (block_sectors.max(1) as usize) << 9;
        let padded = at.div_ceil(blk) * blk;
        let buf = self.buf;
        if padded > buf.len() {
            return Err(JsetWriteError::NoRoom);
        }
        buf[at..padded].fill(0);
        let u64s = u32::try_from((at - JSET_BYTES) / 8).map_err(|_| JsetWriteError::NoRoom)?;
        let hdr = |b: &mut [u8]| -> Option<()> {
            put(b, 0, &[0u8; 16])?;
            put_le64(b, JSET_MAGIC_OFF, h.magic)?;
            put_le64(b, JSET_SEQ, h.seq)?;
            put_le32(b, JSET_VERSION, h.version)?;
            put_le32(b, JSET_FLAGS, h.flags)?;
            put_le32(b, JSET_U64S, u64s)?;
            // `_read_clock`, `_write_clock` (unused since clocks moved to entries).
            put_le32(b, JSET_U64S + 4, 0)?;
            put_le64(b, JSET_LAST_SEQ, h.last_seq)
        };
        hdr(buf).ok_or(JsetWriteError::NoRoom)?;
        let t = bits(u64::from(h.flags), 0, 4) as u8;
        let sum = csum::checksum(c, t, &buf[16..at]).map_err(JsetWriteError::Csum)?;
        sum.write(buf, 0);
        let out = &buf[..padded];
        let j =
            parse_jset(out, h.magic, block_sectors, Some(c)).map_err(JsetWriteError::Invalid)?;
        if j.seq != h.seq || j.sectors as usize * 512 != padded {
            return Err(JsetWriteError::Invalid(JsetError::TooBig));
        }
        Ok(out)
    }
}

/// How far past the newest journal entry found a writer of a filesystem that was
/// not shut down cleanly starts its own (upstream's recovery skips as far:
/// `cur_seq += 4096`); the seqs skipped are blacklisted first.
pub const DIRTY_SKIP: u64 = 4096;

/// Where a jset goes in the journal ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Index of the bucket in the device's journal bucket list.
    pub bucket_idx: u64,
    /// Sector offset within that bucket.
    pub offset: u32,
}

/// The slot after the newest entry, which sits at `offset` of journal bucket
/// `bucket_idx` and takes `sectors`: in the same bucket when `sectors_needed` still
/// fit in its `bucket_sectors`, else at the start of the next bucket of the ring
/// (`nr_buckets` long), which the entry then starts afresh.
pub fn next_slot(
    newest: Slot,
    newest_sectors: u32,
    sectors_needed: u32,
    bucket_sectors: u32,
    nr_buckets: u64,
) -> Option<Slot> {
    if sectors_needed > bucket_sectors || nr_buckets == 0 {
        return None;
    }
    let end = newest.offset.checked_add(newest_sectors)?;
    if end.checked_add(sectors_needed)? <= bucket_sectors {
        Some(Slot {
            bucket_idx: newest.bucket_idx,
            offset: end,
        })
    } else {
        Some(Slot {
            bucket_idx: (newest.bucket_idx + 1) % nr_buckets,
            offset: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_slot_fills_a_bucket_then_wraps() {
        let at = |b, o| Slot {
            bucket_idx: b,
            offset: o,
        };
        // Room after the newest entry: right behind it.
        assert_eq!(next_slot(at(2, 10), 3, 4, 32, 8), Some(at(2, 13)));
        assert_eq!(next_slot(at(2, 10), 3, 19, 32, 8), Some(at(2, 13)));
        // No room: the start of the next bucket, around the ring.
        assert_eq!(next_slot(at(2, 10), 3, 20, 32, 8), Some(at(3, 0)));
        assert_eq!(next_slot(at(7, 30), 2, 1, 32, 8), Some(at(0, 0)));
        // Larger than a bucket, or no ring: nowhere.
        assert_eq!(next_slot(at(0, 0), 1, 33, 32, 8), None);
        assert_eq!(next_slot(at(0, 0), 1, 1, 32, 0), None);
    }

    #[test]
    fn sealed_jset_reads_back() {
        use super::super::super::csum::TestSum as Sum;
        let mut buf = [0xffu8; 4096];
        let mut b = JsetBuilder::new(&mut buf);
        let k = Bkey {
            typ: 25,
            p: super::super::super::bpos::Bpos::new(1, 2, 3),
            ..Default::default()
        };
        b.btree_keys(12, 0, &mut [(k, &[][..])].into_iter())
            .unwrap();
        b.datetime(1_700_000_000).unwrap();
        b.usage(USAGE_KEY_VERSION, 7).unwrap();
        b.clock(1, 99).unwrap();
        let h = JsetHeader {
            magic: 0xabcd,
            seq: 42,
            last_seq: 40,
            version: 1063,
            flags: jset_flags(1),
        };
        let out = b.seal(&h, 1, &Sum).unwrap();
        assert_eq!(out.len() % 512, 0);
        let j = parse_jset(out, 0xabcd, 1, Some(&Sum)).unwrap();
        assert_eq!(
            (j.seq, j.last_seq, j.version, j.no_flush()),
            (42, 40, 1063, false)
        );
        let types: std::vec::Vec<u8> = j.iter().map(|e| e.typ).collect();
        assert_eq!(types, [ty::BTREE_KEYS, ty::DATETIME, ty::USAGE, ty::CLOCK]);
        let e = j.iter().next().unwrap();
        let rk = Bkey::read_unpacked(e.data).unwrap();
        assert_eq!((rk.typ, rk.p, rk.u64s), (25, k.p, 5));
        // A buffer too small for the padding is refused, never overrun.
        let mut small = [0u8; 100];
        let b = JsetBuilder::new(&mut small);
        assert_eq!(b.seal(&h, 1, &Sum).err(), Some(JsetWriteError::NoRoom));
    }
}
