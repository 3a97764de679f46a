// SPDX-License-Identifier: GPL-2.0
//! Writing the superblock: the write twin of [`super::Sb::parse`]. An [`SbEdit`]
//! changes fields of a superblock held in a caller buffer (seq, write time, the
//! clean flag and section, members' seq and btree bitmap, required recovery
//! passes), then seals each copy: its `offset`, the checksum, and a read back by
//! the parser before anyone may write it.

use core::ops::Range;

use super::super::bytes::{le32, le64z, put, put_le32, put_le64, set_bits};
use super::super::csum::{self, Checksummer};
use super::format::*;
use super::{Sb, SbError};

/// Bytes of `struct bch_sb_field_clean` before its entries.
pub const CLEAN_HDR: usize = 24;

/// Offsets inside a `bch_member` entry.
pub mod member {
    /// `seq`: the superblock seq of the last write that included this device.
    pub const SEQ: usize = 120;
    /// `last_mount` (seconds).
    pub const LAST_MOUNT: usize = 32;
    /// `btree_bitmap_shift`.
    pub const BTREE_BITMAP_SHIFT: usize = 28;
    /// `btree_allocated_bitmap`.
    pub const BTREE_ALLOCATED_BITMAP: usize = 128;
    /// `last_journal_bucket` (le32, ring index) and `last_journal_bucket_offset`
    /// (le32, sectors used in it) after it: where a clean mount resumes the journal.
    pub const LAST_JOURNAL_BUCKET: usize = 136;
}

/// Why an edit was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SbWriteError {
    /// The superblock does not parse.
    Parse(SbError),
    /// The field or member is not there.
    NoField,
    /// What is to be written does not fit (the field, the buffer, the layout).
    NoRoom,
}

impl From<SbError> for SbWriteError {
    fn from(e: SbError) -> Self {
        SbWriteError::Parse(e)
    }
}

/// A superblock being changed, in `b[..len]` (`b` may be longer: room to grow).
pub struct SbEdit<'a> {
    b: &'a mut [u8],
    len: usize,
}

/// Byte ranges of the fields of the superblock in `b[..len]`.
fn field_range(b: &[u8], len: usize, t: u32) -> Option<Range<usize>> {
    let mut off = SB_FIELDS;
    while off + 8 <= len {
        let u64s = le32(b, off)? as usize;
        if u64s == 0 {
            return None;
        }
        let end = off.checked_add(u64s.checked_mul(8)?)?;
        if end > len {
            return None;
        }
        if le32(b, off + 4)? == t {
            return Some(off..end);
        }
        off = end;
    }
    None
}

impl<'a> SbEdit<'a> {
    /// The superblock at the start of `b` (checked as the reader checks it).
    pub fn new(b: &'a mut [u8], c: &dyn Checksummer) -> Result<Self, SbWriteError> {
        let len = Sb::parse(b, c)?.b.len();
        Ok(SbEdit { b, len })
    }

    /// The superblock as it stands (its checksum is stale until [`Self::seal`]).
    pub fn bytes(&self) -> &[u8] {
        &self.b[..self.len]
    }

    /// A read view (fields, members) of the superblock as it stands.
    pub fn sb(&self) -> Sb<'_> {
        Sb { b: self.bytes() }
    }

    /// Sets `seq`.
    pub fn set_seq(&mut self, seq: u64) {
        let _ = put_le64(self.b, SB_SEQ, seq);
    }

    /// Sets `write_time` (seconds since the epoch).
    pub fn set_write_time(&mut self, secs: u64) {
        let _ = put_le64(self.b, SB_WRITE_TIME, secs);
    }

    /// Sets or clears `BCH_SB_CLEAN` (bit 1 of `flags[0]`).
    pub fn set_clean(&mut self, clean: bool) {
        let f = le64z(self.b, SB_FLAGS);
        let _ = put_le64(self.b, SB_FLAGS, set_bits(f, 1, 2, u64::from(clean)));
    }

    /// The byte range of member `dev`'s entry (members_v2).
    fn member_range(&self, dev: usize) -> Option<Range<usize>> {
        let f = field_range(self.b, self.len, FIELD_MEMBERS_V2)?;
        let mb = super::super::bytes::le16(self.b, f.start + 8)? as usize;
        let start = f.start.checked_add(16)?.checked_add(dev.checked_mul(mb)?)?;
        let end = start.checked_add(mb)?;
        (mb > 0 && end <= f.end).then_some(start..end)
    }

    /// Writes `v` at `off` of member `dev`'s entry.
    pub fn set_member_u64(&mut self, dev: usize, off: usize, v: u64) -> Result<(), SbWriteError> {
        let r = self.member_range(dev).ok_or(SbWriteError::NoField)?;
        if off + 8 > r.len() {
            return Err(SbWriteError::NoField);
        }
        put_le64(self.b, r.start + off, v).ok_or(SbWriteError::NoRoom)
    }

    /// Sets member `dev`'s btree-allocated bitmap and its shift.
    pub fn set_member_bitmap(
        &mut self,
        dev: usize,
        shift: u8,
        bitmap: u64,
    ) -> Result<(), SbWriteError> {
        self.set_member_u64(dev, member::BTREE_ALLOCATED_BITMAP, bitmap)?;
        let r = self.member_range(dev).ok_or(SbWriteError::NoField)?;
        put(self.b, r.start + member::BTREE_BITMAP_SHIFT, &[shift]).ok_or(SbWriteError::NoRoom)
    }

    /// Sets the `ext` field's `recovery_passes_required[0]`.
    pub fn set_recovery_passes_required(&mut self, passes: u64) -> Result<(), SbWriteError> {
        let r = field_range(self.b, self.len, FIELD_EXT).ok_or(SbWriteError::NoField)?;
        if r.start + EXT_RECOVERY_PASSES_REQUIRED + 8 > r.end {
            return Err(SbWriteError::NoField);
        }
        put_le64(self.b, r.start + EXT_RECOVERY_PASSES_REQUIRED, passes).ok_or(SbWriteError::NoRoom)
    }

    /// Writes the clean section: `journal_seq` and the jset entries `entries`
    /// (roots, usage, clocks). An existing section keeps its size, the rest filled
    /// with empty entries as upstream pads it; without one, a section just large
    /// enough is appended (the buffer must have room).
    pub fn set_clean_section(
        &mut self,
        journal_seq: u64,
        entries: &[u8],
    ) -> Result<(), SbWriteError> {
        if !entries.len().is_multiple_of(8) {
            return Err(SbWriteError::NoRoom);
        }
        let need = CLEAN_HDR + entries.len();
        let r = match field_range(self.b, self.len, FIELD_CLEAN) {
            Some(r) if r.len() >= need => r,
            Some(_) => return Err(SbWriteError::NoRoom),
            None => self.append_field(FIELD_CLEAN, need / 8)?,
        };
        let f = &mut self.b[r.clone()];
        f[8..].fill(0);
        put_le64(f, 16, journal_seq).ok_or(SbWriteError::NoRoom)?;
        put(f, CLEAN_HDR, entries).ok_or(SbWriteError::NoRoom)?;
        // Upstream pads with empty entries: a zero header is one (u64s 0, btree_keys).
        Ok(())
    }

    /// Adds the journal seqs `[start, end)` to the blacklist (the
    /// `journal_seq_blacklist` field, rebuilt at the end of the superblock with its
    /// ranges sorted and merged) and sets the feature bit
    /// `journal_seq_blacklist_v3`, as upstream's `bch2_journal_seq_blacklist_add`.
    pub fn add_blacklist(&mut self, start: u64, end: u64) -> Result<(), SbWriteError> {
        let mut ranges = [(0u64, 0u64); 64];
        let mut n = 0usize;
        for r in self.sb().blacklist() {
            *ranges.get_mut(n).ok_or(SbWriteError::NoRoom)? = r;
            n += 1;
        }
        *ranges.get_mut(n).ok_or(SbWriteError::NoRoom)? = (start, end);
        n += 1;
        // Sorted, overlapping and touching ranges merged (the reader refuses
        // ranges out of order).
        ranges[..n].sort_unstable();
        let mut m = 0usize;
        for i in 0..n {
            let (s, e) = ranges[i];
            if m > 0 && s <= ranges[m - 1].1 {
                ranges[m - 1].1 = ranges[m - 1].1.max(e);
            } else {
                ranges[m] = (s, e);
                m += 1;
            }
        }
        let n = m;
        self.remove_field(FIELD_JOURNAL_SEQ_BLACKLIST);
        let r = self.append_field(FIELD_JOURNAL_SEQ_BLACKLIST, 1 + 2 * n)?;
        for (i, (s, e)) in ranges[..n].iter().enumerate() {
            put_le64(self.b, r.start + 8 + 16 * i, *s).ok_or(SbWriteError::NoRoom)?;
            put_le64(self.b, r.start + 16 + 16 * i, *e).ok_or(SbWriteError::NoRoom)?;
        }
        let f = le64z(self.b, SB_FEATURES);
        put_le64(self.b, SB_FEATURES, f | (1 << 5)).ok_or(SbWriteError::NoRoom)
    }

    /// Removes every field of type `t`, closing up the fields after it.
    fn remove_field(&mut self, t: u32) {
        while let Some(r) = field_range(self.b, self.len, t) {
            let n = r.len();
            self.b.copy_within(r.end..self.len, r.start);
            self.len -= n;
            let total = ((self.len - SB_FIELDS) / 8) as u32;
            let _ = put_le32(self.b, SB_U64S, total);
        }
    }

    /// Appends an empty field of `u64s` (header included) and returns its range.
    fn append_field(&mut self, t: u32, u64s: usize) -> Result<Range<usize>, SbWriteError> {
        let start = self.len;
        let end = start + u64s * 8;
        let max = 512usize << self.sb().layout().sb_max_size_bits().min(16);
        if end > self.b.len() || end > max {
            return Err(SbWriteError::NoRoom);
        }
        self.b[start..end].fill(0);
        put_le32(self.b, start, u64s as u32).ok_or(SbWriteError::NoRoom)?;
        put_le32(self.b, start + 4, t).ok_or(SbWriteError::NoRoom)?;
        self.len = end;
        let total = u32::try_from((end - SB_FIELDS) / 8).map_err(|_| SbWriteError::NoRoom)?;
        put_le32(self.b, SB_U64S, total).ok_or(SbWriteError::NoRoom)?;
        Ok(start..end)
    }

    /// Seals the copy that goes at sector `offset`: sets `offset`, computes the
    /// checksum, and reads it back. Returns the bytes to write there.
    pub fn seal(&mut self, offset: u64, c: &dyn Checksummer) -> Result<&[u8], SbWriteError> {
        put_le64(self.b, SB_OFFSET, offset).ok_or(SbWriteError::NoRoom)?;
        let t = self.sb().csum_type();
        let sum = csum::checksum(c, t, &self.b[16..self.len])
            .map_err(|_| SbWriteError::Parse(SbError::BadChecksumType(t)))?;
        sum.write(self.b, 0);
        let out = &self.b[..self.len];
        Sb::parse(out, c)?;
        Ok(out)
    }
}
