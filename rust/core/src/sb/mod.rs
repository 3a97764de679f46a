// SPDX-License-Identifier: GPL-2.0
//! The superblock: layout, header fields, variable-length fields, members.

pub mod format;
pub mod opts;
pub mod text;
pub mod write;

use super::bytes::{bits, le16, le32, le64, u8_at, Uuid};
use super::csum::{self, Checksummer, Csum};
use format::*;

/// Why a superblock was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SbError {
    /// Fewer bytes than the fixed header.
    TooShort,
    /// The magic is not bcachefs's.
    BadMagic,
    /// `u64s` runs past the buffer or the maximum size.
    BadSize,
    /// Version older than supported, or newer than this code knows.
    BadVersion(u16),
    /// The checksum does not match.
    BadChecksum,
    /// The checksum type is unknown or encrypted.
    BadChecksumType(u8),
    /// A variable-length field runs past the end.
    BadField,
    /// Block size or btree node size out of range.
    BadGeometry,
    /// No member entry for this device index.
    NoMember,
    /// The layout (its own sector or a copy's) is not one upstream accepts.
    BadLayout,
    /// No copy of the superblock passed its checks.
    NoValidCopy,
    /// The clean section is shorter than its header or an entry overruns it
    /// (upstream's `invalid_sb_clean`).
    BadClean,
    /// The journal bucket list names a bucket outside the device, twice, or a range
    /// of none (upstream's `invalid_sb_journal`).
    BadJournal,
}

impl SbError {
    /// A short description.
    pub fn as_str(&self) -> &'static str {
        match self {
            SbError::TooShort => "superblock too short",
            SbError::BadMagic => "not a bcachefs superblock (bad magic)",
            SbError::BadSize => "superblock size out of range",
            SbError::BadVersion(_) => "unsupported superblock version",
            SbError::BadChecksum => "superblock checksum mismatch",
            SbError::BadChecksumType(_) => "unsupported superblock checksum type",
            SbError::BadField => "superblock field out of bounds",
            SbError::BadGeometry => "invalid block or btree node size",
            SbError::NoMember => "device not listed in the members field",
            SbError::BadLayout => "invalid superblock layout",
            SbError::NoValidCopy => "no valid superblock copy",
            SbError::BadClean => "invalid clean section (an entry overruns it)",
            SbError::BadJournal => {
                "invalid journal bucket list (empty range, outside the device, or duplicated)"
            }
        }
    }
}

/// The largest superblock, in bytes (`1 << 16` sectors).
pub const SB_MAX_BYTES: usize = (1 << 16) * 512;

/// A validated superblock, borrowed from the caller's buffer.
#[derive(Clone, Copy)]
pub struct Sb<'a> {
    /// The whole superblock (header + fields), exactly `bytes()` long.
    pub b: &'a [u8],
}

impl<'a> Sb<'a> {
    /// How many bytes the superblock in `b` claims (header + fields); `b` needs only
    /// the fixed header.
    /// More than the largest superblock upstream allows (`1 << 16` sectors) is
    /// refused here, before a reader allocates for it.
    pub fn size_needed(b: &[u8]) -> Result<usize, SbError> {
        let u64s = le32(b, SB_U64S).ok_or(SbError::TooShort)? as usize;
        let n = SB_FIELDS + u64s * 8;
        if n > SB_MAX_BYTES {
            return Err(SbError::BadSize);
        }
        Ok(n)
    }

    /// Parses and validates the superblock at the start of `b`: [`Sb::parse_copy`]
    /// then [`Sb::validate`].
    pub fn parse(b: &'a [u8], c: &dyn Checksummer) -> Result<Sb<'a>, SbError> {
        let sb = Self::parse_copy(b, c)?;
        sb.validate()?;
        Ok(sb)
    }

    /// What upstream's `read_one_super` checks of one copy before it takes part
    /// in the choice of a copy ([`SbPick`]): magic, version, size (within its
    /// layout's maximum), checksum type and checksum.
    pub fn parse_copy(b: &'a [u8], c: &dyn Checksummer) -> Result<Sb<'a>, SbError> {
        if b.len() < SB_FIELDS {
            return Err(SbError::TooShort);
        }
        if b.get(SB_MAGIC..SB_MAGIC + 16) != Some(&BCHFS_MAGIC[..]) {
            return Err(SbError::BadMagic);
        }
        let len = Self::size_needed(b)?;
        if len > b.len() {
            return Err(SbError::BadSize);
        }
        let sb = Sb { b: &b[..len] };
        let v = sb.version();
        if v < VERSION_MIN_SUPPORTED || (v >> 10) > 1 {
            return Err(SbError::BadVersion(v));
        }
        let max_bits = sb.layout().sb_max_size_bits().min(LAYOUT_SIZE_BITS_MAX);
        if len > 512usize << max_bits {
            return Err(SbError::BadSize);
        }
        let t = sb.csum_type();
        let want = Csum::read(b, 0).ok_or(SbError::TooShort)?;
        let got = csum::checksum(c, t, &b[16..len]).map_err(|_| SbError::BadChecksumType(t))?;
        if got != want {
            return Err(SbError::BadChecksum);
        }
        Ok(sb)
    }

    /// The checks of the copy a mount uses (the part of upstream's
    /// `bch2_sb_validate` this code knows): its layout, fields tile the
    /// superblock, block and node sizes, the journal bucket list, the clean
    /// section.
    pub fn validate(&self) -> Result<(), SbError> {
        let (b, len) = (self.b, self.b.len());
        let sb = *self;
        sb.layout().validate()?;
        // Fields must tile the remaining space exactly.
        let mut off = SB_FIELDS;
        while off < len {
            let fu64s = le32(b, off).ok_or(SbError::BadField)? as usize;
            if fu64s == 0 {
                return Err(SbError::BadField);
            }
            off = off.checked_add(fu64s * 8).ok_or(SbError::BadField)?;
            if off > len {
                return Err(SbError::BadField);
            }
        }
        let bs = sb.block_sectors();
        if bs == 0 || !bs.is_power_of_two() || bs > 128 {
            return Err(SbError::BadGeometry);
        }
        let ns = sb.btree_node_sectors();
        if ns == 0 || !ns.is_power_of_two() || ns < bs || ns > 4096 {
            return Err(SbError::BadGeometry);
        }
        sb.validate_journal()?;
        sb.validate_clean()
    }

    /// The clean section as upstream's `bch2_sb_clean_validate` checks it: its
    /// header whole, and every entry ending inside it.
    fn validate_clean(&self) -> Result<(), SbError> {
        let Some(f) = self.field(FIELD_CLEAN) else {
            return Ok(());
        };
        if f.len() < 24 {
            return Err(SbError::BadClean);
        }
        let mut off = 24usize;
        while off < f.len() {
            let u64s = usize::from(le16(f, off).ok_or(SbError::BadClean)?);
            off = off + 8 + u64s * 8;
            if off > f.len() {
                return Err(SbError::BadClean);
            }
        }
        Ok(())
    }

    /// The journal bucket ranges, as upstream's `bch2_sb_journal_v2_validate` (and
    /// the v1 list's) check them: each range holds at least one bucket, all lie in
    /// `first_bucket..nbuckets` of this device's member entry, none overlap, and
    /// there are no more than `u32::MAX` buckets. A reader walks every bucket
    /// listed, so a range past the device would have it read for hours.
    fn validate_journal(&self) -> Result<(), SbError> {
        let ranges = || self.journal_buckets().map(|(s, n)| (s, s.wrapping_add(n)));
        if ranges().next().is_none() {
            return Ok(());
        }
        let m = self
            .member(self.dev_idx() as usize)
            .ok_or(SbError::NoMember)?;
        let (first, nbuckets) = (u64::from(m.first_bucket()), m.nbuckets());
        let mut sum = 0u64;
        let mut n = 0usize;
        let mut sorted = true;
        let mut prev_end = 0u64;
        for (start, end) in ranges() {
            if end <= start || start == 0 || start < first || end > nbuckets {
                return Err(SbError::BadJournal);
            }
            sum = sum.saturating_add(end - start);
            sorted &= start >= prev_end;
            prev_end = end;
            n += 1;
        }
        if sum > u64::from(u32::MAX) {
            return Err(SbError::BadJournal);
        }
        // Overlaps: ranges written in order need one pass; others are compared
        // pairwise (upstream sorts a copy, which needs memory this code does not
        // own), up to a bound no real list comes near.
        if !sorted {
            if n > 4096 {
                return Err(SbError::BadJournal);
            }
            for (i, (s1, e1)) in ranges().enumerate() {
                if ranges().skip(i + 1).any(|(s2, e2)| s1 < e2 && s2 < e1) {
                    return Err(SbError::BadJournal);
                }
            }
        }
        Ok(())
    }

    /// Superblock checksum type (`BCH_SB_CSUM_TYPE`).
    pub fn csum_type(&self) -> u8 {
        bits(self.flags(0), 2, 8) as u8
    }
    /// `version`.
    pub fn version(&self) -> u16 {
        le16(self.b, SB_VERSION).unwrap_or(0)
    }
    /// `version_min`.
    pub fn version_min(&self) -> u16 {
        le16(self.b, SB_VERSION_MIN).unwrap_or(0)
    }
    /// Internal UUID (`uuid`): seeds the jset and bset magics.
    pub fn uuid(&self) -> Uuid {
        Uuid(super::bytes::arr(self.b, SB_UUID).unwrap_or_default())
    }
    /// External UUID (`user_uuid`).
    pub fn user_uuid(&self) -> Uuid {
        Uuid(super::bytes::arr(self.b, SB_USER_UUID).unwrap_or_default())
    }
    /// Label bytes (NUL padded).
    pub fn label(&self) -> &'a [u8] {
        self.b.get(SB_LABEL..SB_LABEL + 32).unwrap_or(&[])
    }
    /// Sequence number.
    pub fn seq(&self) -> u64 {
        le64(self.b, SB_SEQ).unwrap_or(0)
    }
    /// Sector this copy was written at.
    pub fn offset(&self) -> u64 {
        le64(self.b, SB_OFFSET).unwrap_or(0)
    }
    /// Block size in sectors.
    pub fn block_sectors(&self) -> u32 {
        le16(self.b, SB_BLOCK_SIZE).unwrap_or(0) as u32
    }
    /// This device's index.
    pub fn dev_idx(&self) -> u8 {
        u8_at(self.b, SB_DEV_IDX).unwrap_or(0)
    }
    /// Number of devices.
    pub fn nr_devices(&self) -> u8 {
        u8_at(self.b, SB_NR_DEVICES).unwrap_or(0)
    }
    /// `flags[i]`.
    pub fn flags(&self, i: usize) -> u64 {
        le64(self.b, SB_FLAGS + 8 * i).unwrap_or(0)
    }
    /// `features[i]`.
    pub fn features(&self, i: usize) -> u64 {
        le64(self.b, SB_FEATURES + 8 * i).unwrap_or(0)
    }
    /// `compat[i]`.
    pub fn compat(&self, i: usize) -> u64 {
        le64(self.b, SB_COMPAT + 8 * i).unwrap_or(0)
    }
    /// `time_base_lo` (ns since epoch of time 0).
    pub fn time_base_lo(&self) -> u64 {
        le64(self.b, SB_TIME_BASE_LO).unwrap_or(0)
    }
    /// `time_precision` (ns per time unit).
    pub fn time_precision(&self) -> u32 {
        le32(self.b, SB_TIME_PRECISION).unwrap_or(0)
    }
    /// `write_time`.
    pub fn write_time(&self) -> u64 {
        le64(self.b, SB_WRITE_TIME).unwrap_or(0)
    }
    /// Clean flag.
    pub fn clean(&self) -> bool {
        bits(self.flags(0), 1, 2) != 0
    }
    /// Btree node size in sectors.
    pub fn btree_node_sectors(&self) -> u32 {
        bits(self.flags(0), 12, 28) as u32
    }
    /// The most bsets a btree node can hold (one per block, and one more): the
    /// room a node read's bset list needs.
    pub fn max_bsets(&self) -> usize {
        (self.btree_node_sectors() / self.block_sectors().max(1)) as usize + 1
    }
    /// Metadata checksum type option (`BCH_SB_META_CSUM_TYPE`, an opt, not a type).
    pub fn meta_csum_opt(&self) -> u8 {
        bits(self.flags(0), 40, 44) as u8
    }

    /// `bch2_meta_checksum_type` for an unencrypted filesystem: the metadata
    /// checksum option as the checksum type new metadata is written with.
    pub fn meta_csum_type(&self) -> u8 {
        use super::csum::ty;
        match self.meta_csum_opt() {
            0 => ty::NONE,
            1 => ty::CRC32C_NONZERO,
            2 => ty::CRC64_NONZERO,
            _ => ty::XXHASH,
        }
    }
    /// `BCH_SB_VERSION_UPGRADE_COMPLETE`.
    pub fn version_upgrade_complete(&self) -> u16 {
        bits(self.flags(5), 0, 16) as u16
    }
    /// `BCH_SB_VERSION_INCOMPAT`: the newest incompatible feature in use.
    pub fn version_incompat(&self) -> u16 {
        bits(self.flags(5), 32, 48) as u16
    }
    /// `BCH_SB_VERSION_INCOMPAT_ALLOWED`.
    pub fn version_incompat_allowed(&self) -> u16 {
        bits(self.flags(5), 48, 64) as u16
    }
    /// `BCH_SB_DIRENTS_SANITIZED`.
    pub fn dirents_sanitized(&self) -> bool {
        bits(self.flags(6), 59, 60) != 0
    }
    /// `BCH_SB_EXTENT_BP_SHIFT`, 0 when unset.
    pub fn extent_bp_shift(&self) -> u32 {
        bits(self.flags(6), 40, 48) as u32
    }
    /// `c->sb.extent_bp_shift`, the shift backpointer positions are made with:
    /// [`Sb::extent_bp_shift`], or `BCH_SB_EXTENT_BP_SHIFT_DEFAULT` when unset, as
    /// upstream's superblock read sets it.
    pub fn extent_bp_shift_or_default(&self) -> u32 {
        match self.extent_bp_shift() {
            0 => super::alloc::format::EXTENT_BP_SHIFT_DEFAULT,
            s => s,
        }
    }
    /// `BCH_SB_SHARD_INUMS_NBITS`.
    pub fn shard_inode_numbers_bits(&self) -> u32 {
        bits(self.flags(6), 0, 4) as u32
    }
    /// First 8 bytes of the internal UUID, little-endian (`__bch2_sb_magic`).
    pub fn magic_base(&self) -> u64 {
        le64(self.b, SB_UUID).unwrap_or(0)
    }
    /// Magic of a journal entry.
    pub fn jset_magic(&self) -> u64 {
        self.magic_base() ^ JSET_MAGIC
    }
    /// Magic of a btree node.
    pub fn bset_magic(&self) -> u64 {
        self.magic_base() ^ BSET_MAGIC
    }
    /// The layout (`sb_offset[]`, `nr_superblocks`, `sb_max_size_bits`).
    pub fn layout(&self) -> Layout<'a> {
        Layout {
            b: self
                .b
                .get(SB_LAYOUT..SB_LAYOUT + LAYOUT_BYTES)
                .unwrap_or(&[]),
        }
    }

    /// Iterates `(type, field bytes including its 8-byte header)`.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            b: self.b,
            off: SB_FIELDS,
        }
    }

    /// The first field of type `t`.
    pub fn field(&self, t: u32) -> Option<&'a [u8]> {
        self.fields().find(|(ft, _)| *ft == t).map(|(_, f)| f)
    }

    /// Member entry `i` from members_v2 (or members_v1).
    pub fn member(&self, i: usize) -> Option<Member<'a>> {
        if let Some(f) = self.field(FIELD_MEMBERS_V2) {
            let mb = le16(f, 8)? as usize;
            if mb == 0 {
                return None;
            }
            let start = 16usize.checked_add(i.checked_mul(mb)?)?;
            let end = start.checked_add(mb)?;
            return f.get(start..end).map(|b| Member { b });
        }
        let f = self.field(FIELD_MEMBERS_V1)?;
        let start = 8usize.checked_add(i.checked_mul(MEMBER_V1_BYTES)?)?;
        f.get(start..start + MEMBER_V1_BYTES).map(|b| Member { b })
    }

    /// Journal buckets of this device as `(start, nr)` ranges (journal_v2, or v1
    /// bucket lists as ranges of one).
    pub fn journal_buckets(&self) -> JournalBuckets<'a> {
        if let Some(f) = self.field(FIELD_JOURNAL_V2) {
            return JournalBuckets {
                b: f,
                off: 8,
                v2: true,
            };
        }
        if let Some(f) = self.field(FIELD_JOURNAL) {
            return JournalBuckets {
                b: f,
                off: 8,
                v2: false,
            };
        }
        JournalBuckets {
            b: &[],
            off: 0,
            v2: true,
        }
    }

    /// The `clean` field's journal entries and journal seq, when the fs was shut down
    /// cleanly.
    pub fn clean_field(&self) -> Option<(u64, &'a [u8])> {
        let f = self.field(FIELD_CLEAN)?;
        let seq = le64(f, 16)?;
        Some((seq, f.get(24..)?))
    }

    /// The io clocks (read, write) the `clean` field's `clock` entries recorded
    /// (the read twin of [`super::journal::write::JsetBuilder::clock`]); 1 for a
    /// clock it does not have. A bucket that fills stamps them in its io times.
    pub fn io_clocks(&self) -> [u64; 2] {
        let mut t = [1u64, 1];
        let entries = self.clean_field().map(|(_, e)| e).unwrap_or(&[]);
        for e in JsetEntries::new(entries) {
            if e.typ == super::journal::write::ty::CLOCK {
                if let (Some(&rw), Some(time)) = (e.data.first(), le64(e.data, 8)) {
                    t[usize::from(rw & 1)] = time;
                }
            }
        }
        t
    }

    /// `ext.recovery_passes_required[0]`: the recovery passes (by stable id) the
    /// filesystem asks to be run.
    pub fn recovery_passes_required(&self) -> u64 {
        self.field(FIELD_EXT)
            .map(|f| super::bytes::le64z(f, EXT_RECOVERY_PASSES_REQUIRED))
            .unwrap_or(0)
    }

    /// The clean section a mount uses: only when the superblock is marked clean
    /// (`BCH_SB_CLEAN`); a dirty superblock keeps a stale section that recovery
    /// ignores.
    pub fn clean_section(&self) -> Option<(u64, &'a [u8])> {
        if self.clean() {
            self.clean_field()
        } else {
            None
        }
    }

    /// Blacklisted journal sequence ranges `[start, end)` from the superblock.
    pub fn blacklist(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let f = self.field(FIELD_JOURNAL_SEQ_BLACKLIST).unwrap_or(&[]);
        let n = f.len().saturating_sub(8) / 16;
        (0..n).filter_map(move |i| Some((le64(f, 8 + 16 * i)?, le64(f, 16 + 16 * i)?)))
    }
}

/// `struct bch_sb_layout`.
#[derive(Clone, Copy)]
pub struct Layout<'a> {
    b: &'a [u8],
}

impl Layout<'_> {
    /// Layout type.
    pub fn layout_type(&self) -> u8 {
        u8_at(self.b, 16).unwrap_or(0)
    }
    /// log2 of the maximum superblock size in sectors.
    pub fn sb_max_size_bits(&self) -> u8 {
        u8_at(self.b, 17).unwrap_or(0)
    }
    /// Number of superblock copies.
    pub fn nr_superblocks(&self) -> u8 {
        u8_at(self.b, 18).unwrap_or(0)
    }
    /// Sector of copy `i`.
    pub fn sb_offset(&self, i: usize) -> Option<u64> {
        if i >= self.nr_superblocks() as usize || i >= 61 {
            return None;
        }
        le64(self.b, 24 + 8 * i)
    }
}

impl<'a> Layout<'a> {
    /// The layout in `b` (its own sector, [`LAYOUT_SECTOR`]), checked as upstream's
    /// `validate_sb_layout` checks it: magic, type 0, 1 to 61 copies, a maximum
    /// size of at most `1 << 16` sectors, and copies that do not overlap.
    pub fn parse(b: &'a [u8]) -> Result<Layout<'a>, SbError> {
        let l = Layout {
            b: b.get(..LAYOUT_BYTES).ok_or(SbError::BadLayout)?,
        };
        l.validate()?;
        Ok(l)
    }

    /// [`Layout::parse`]'s checks.
    pub fn validate(&self) -> Result<(), SbError> {
        if self.b.get(..16) != Some(&BCHFS_MAGIC[..]) && self.b.get(..16) != Some(&BCACHE_MAGIC[..])
        {
            return Err(SbError::BadLayout);
        }
        let n = self.nr_superblocks() as usize;
        if self.layout_type() != 0 || n == 0 || n > 61 {
            return Err(SbError::BadLayout);
        }
        if self.sb_max_size_bits() > LAYOUT_SIZE_BITS_MAX {
            return Err(SbError::BadLayout);
        }
        let max = 1u64 << self.sb_max_size_bits();
        let mut prev = self.sb_offset(0).ok_or(SbError::BadLayout)?;
        for i in 1..n {
            let off = self.sb_offset(i).ok_or(SbError::BadLayout)?;
            if off < prev.saturating_add(max) {
                return Err(SbError::BadLayout);
            }
            prev = off;
        }
        Ok(())
    }
}

/// The choice of the superblock copy a mount uses, as upstream's
/// `read_backup_supers` makes it: the primary (when it passed
/// [`Sb::parse_copy`]) and then every backup in layout order, each passing copy
/// taking over when its seq is at least the best so far (so on a tie the last
/// copy wins).
#[derive(Clone, Copy, Debug)]
pub struct SbPick {
    best: Option<(u64, u64)>,
}

impl SbPick {
    /// Starts from the primary copy at `offset`: `seq` when it passed.
    pub fn new(offset: u64, seq: Option<u64>) -> SbPick {
        SbPick {
            best: seq.map(|s| (offset, s)),
        }
    }
    /// Offers the backup at `offset` (`seq` when it passed); true when it is the
    /// best copy now (the caller keeps its bytes).
    pub fn offer(&mut self, offset: u64, seq: Option<u64>) -> bool {
        match seq {
            Some(s) if self.best.is_none_or(|(_, b)| s >= b) => {
                self.best = Some((offset, s));
                true
            }
            _ => false,
        }
    }
    /// The offset of the copy to use, or [`SbError::NoValidCopy`].
    pub fn best(&self) -> Result<u64, SbError> {
        self.best.map(|(o, _)| o).ok_or(SbError::NoValidCopy)
    }
}

/// Iterator over superblock fields: `(type, bytes)`, bytes including the header.
pub struct Fields<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let u64s = le32(self.b, self.off)? as usize;
        let t = le32(self.b, self.off + 4)?;
        if u64s == 0 {
            return None;
        }
        let end = self.off.checked_add(u64s.checked_mul(8)?)?;
        let f = self.b.get(self.off..end)?;
        self.off = end;
        Some((t, f))
    }
}

/// A member entry (`struct bch_member`), possibly shorter than this code's struct:
/// missing fields read as zero.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    /// Entry bytes.
    pub b: &'a [u8],
}

impl Member<'_> {
    /// Device UUID.
    pub fn uuid(&self) -> Uuid {
        Uuid(super::bytes::arr(self.b, 0).unwrap_or_default())
    }
    /// Whether the slot is in use (UUID not all zero).
    pub fn exists(&self) -> bool {
        self.uuid().0 != [0u8; 16]
    }
    /// Number of buckets.
    pub fn nbuckets(&self) -> u64 {
        super::bytes::le64z(self.b, 16)
    }
    /// First usable bucket.
    pub fn first_bucket(&self) -> u16 {
        super::bytes::le16z(self.b, 24)
    }
    /// Bucket size in sectors.
    pub fn bucket_size(&self) -> u16 {
        super::bytes::le16z(self.b, 26)
    }
    /// `btree_bitmap_shift`.
    pub fn btree_bitmap_shift(&self) -> u8 {
        super::bytes::u8z(self.b, 28)
    }
    /// `last_mount`.
    pub fn last_mount(&self) -> u64 {
        super::bytes::le64z(self.b, 32)
    }
    /// `flags`.
    pub fn flags(&self) -> u64 {
        super::bytes::le64z(self.b, 40)
    }
    /// `iops[i]`.
    pub fn iops(&self, i: usize) -> u32 {
        super::bytes::le32z(self.b, 48 + 4 * i)
    }
    /// `errors[i]` (read, write, checksum).
    pub fn errors(&self, i: usize) -> u64 {
        super::bytes::le64z(self.b, 64 + 8 * i)
    }
    /// `errors_at_reset[i]`.
    pub fn errors_at_reset(&self, i: usize) -> u64 {
        super::bytes::le64z(self.b, 88 + 8 * i)
    }
    /// `errors_reset_time`.
    pub fn errors_reset_time(&self) -> u64 {
        super::bytes::le64z(self.b, 112)
    }
    /// `seq`.
    pub fn seq(&self) -> u64 {
        super::bytes::le64z(self.b, 120)
    }
    /// `btree_allocated_bitmap`.
    pub fn btree_allocated_bitmap(&self) -> u64 {
        super::bytes::le64z(self.b, 128)
    }
    /// A fixed-size NUL-padded string field at `off`.
    pub fn str_field(&self, off: usize, len: usize) -> &[u8] {
        let s = self
            .b
            .get(off..off + len)
            .or_else(|| self.b.get(off..))
            .unwrap_or(&[]);
        let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        &s[..n]
    }
    /// `device_name`.
    pub fn device_name(&self) -> &[u8] {
        self.str_field(144, 16)
    }
    /// `device_model`.
    pub fn device_model(&self) -> &[u8] {
        self.str_field(160, 64)
    }
    /// `device_serial`.
    pub fn device_serial(&self) -> &[u8] {
        self.str_field(232, 64)
    }
    /// `bch2_member_alive`: the slot is in use and not a deleted device.
    pub fn alive(&self) -> bool {
        self.exists() && self.uuid().0 != MEMBER_DELETED_UUID
    }
    /// `flush_errors`.
    pub fn flush_errors(&self) -> u64 {
        super::bytes::le64z(self.b, MEMBER_FLUSH_ERRORS)
    }
    /// `failure_domain` (NUL padded, up to 32 bytes).
    pub fn failure_domain(&self) -> &[u8] {
        self.str_field(MEMBER_FAILURE_DOMAIN, MEMBER_FAILURE_DOMAIN_BYTES)
    }
    /// `BCH_MEMBER_STATE`.
    pub fn state(&self) -> u8 {
        bits(self.flags(), 0, 4) as u8
    }
    /// `BCH_MEMBER_DISCARD`.
    pub fn discard(&self) -> bool {
        bits(self.flags(), 14, 15) != 0
    }
    /// `BCH_MEMBER_DATA_ALLOWED` bitmask of data types.
    pub fn data_allowed(&self) -> u8 {
        bits(self.flags(), 15, 20) as u8
    }
    /// `BCH_MEMBER_GROUP`.
    pub fn group(&self) -> u8 {
        bits(self.flags(), 20, 28) as u8
    }
    /// `BCH_MEMBER_DURABILITY` (stored +1; 0 means the default of 1).
    pub fn durability_raw(&self) -> u8 {
        bits(self.flags(), 28, 30) as u8
    }
    /// Effective durability.
    pub fn durability(&self) -> u8 {
        match self.durability_raw() {
            0 => 1,
            d => d - 1,
        }
    }
    /// `BCH_MEMBER_FREESPACE_INITIALIZED`.
    pub fn freespace_initialized(&self) -> bool {
        bits(self.flags(), 30, 31) != 0
    }
    /// `BCH_MEMBER_RESIZE_ON_MOUNT`.
    pub fn resize_on_mount(&self) -> bool {
        bits(self.flags(), 31, 32) != 0
    }
    /// `BCH_MEMBER_ROTATIONAL`.
    pub fn rotational(&self) -> bool {
        bits(self.flags(), 32, 33) != 0
    }
}

/// Journal bucket ranges of a device.
pub struct JournalBuckets<'a> {
    b: &'a [u8],
    off: usize,
    v2: bool,
}

impl Iterator for JournalBuckets<'_> {
    /// `(first bucket, number of buckets)`.
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        if self.v2 {
            let s = le64(self.b, self.off)?;
            let n = le64(self.b, self.off + 8)?;
            self.off += 16;
            Some((s, n))
        } else {
            let s = le64(self.b, self.off)?;
            self.off += 8;
            Some((s, 1))
        }
    }
}

/// A btree root or key list from a journal entry region (`struct jset_entry`s).
#[derive(Clone, Copy, Debug)]
pub struct JsetEntry<'a> {
    /// Entry type (`bch_jset_entry_type`).
    pub typ: u8,
    /// Btree id.
    pub btree_id: u8,
    /// Level.
    pub level: u8,
    /// Payload after the 8-byte header (`u64s * 8` bytes).
    pub data: &'a [u8],
}

/// Iterates jset entries packed in `b` (a jset's `d[]` or the clean field).
pub struct JsetEntries<'a> {
    /// Remaining bytes.
    pub b: &'a [u8],
    /// Set when an entry ran past the end.
    pub truncated: bool,
}

impl<'a> JsetEntries<'a> {
    /// Entries in `b`.
    pub fn new(b: &'a [u8]) -> Self {
        JsetEntries {
            b,
            truncated: false,
        }
    }
}

impl<'a> Iterator for JsetEntries<'a> {
    type Item = JsetEntry<'a>;
    fn next(&mut self) -> Option<JsetEntry<'a>> {
        if self.b.len() < 8 {
            return None;
        }
        let u64s = le16(self.b, 0)? as usize;
        let end = 8 + u64s * 8;
        if end > self.b.len() {
            self.truncated = true;
            self.b = &[];
            return None;
        }
        let e = JsetEntry {
            btree_id: self.b[2],
            level: self.b[3],
            typ: self.b[4],
            data: &self.b[8..end],
        };
        self.b = &self.b[end..];
        Some(e)
    }
}

/// The btree roots in jset entries (a jset's `d[]` or the clean section): for each
/// well-formed `btree_root` entry, `(btree id, level, pointer key, pointer value)`.
pub fn btree_roots(
    entries: &[u8],
) -> impl Iterator<Item = (u32, u8, super::bkey::Bkey, &[u8])> + '_ {
    JsetEntries::new(entries)
        .filter(|e| e.typ == super::journal::read::entry::BTREE_ROOT)
        .filter_map(|e| {
            let k = super::bkey::Bkey::read_unpacked(e.data)?;
            let n = (k.u64s as usize) * 8;
            if n < super::bkey::BKEY_BYTES || n > e.data.len() {
                return None;
            }
            Some((
                u32::from(e.btree_id),
                e.level,
                k,
                &e.data[super::bkey::BKEY_BYTES..n],
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::format::SB_FLAGS;
    use super::Sb;

    #[test]
    fn extent_bp_shift_default_when_unset() {
        let mut b = [0u8; 1024];
        assert_eq!(Sb { b: &b }.extent_bp_shift(), 0);
        assert_eq!(Sb { b: &b }.extent_bp_shift_or_default(), 10);
        // flags[6] bits 40..48.
        b[SB_FLAGS + 8 * 6 + 5] = 16;
        assert_eq!(Sb { b: &b }.extent_bp_shift(), 16);
        assert_eq!(Sb { b: &b }.extent_bp_shift_or_default(), 16);
    }
}
