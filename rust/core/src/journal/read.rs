// SPDX-License-Identifier: GPL-2.0
//! Journal entries (`struct jset`): finding them in a journal bucket, checking them,
//! and choosing which ones replay.

use super::super::bytes::{bits, le32, le64};
use super::super::csum::{self, Checksummer, Csum, CsumError};
use super::super::sb::JsetEntries;

/// Offset of `magic` in a jset.
pub const JSET_MAGIC_OFF: usize = 16;
/// Offset of `seq`.
pub const JSET_SEQ: usize = 24;
/// Offset of `version`.
pub const JSET_VERSION: usize = 32;
/// Offset of `flags`.
pub const JSET_FLAGS: usize = 36;
/// Offset of `u64s`.
pub const JSET_U64S: usize = 40;
/// Offset of `last_seq`.
pub const JSET_LAST_SEQ: usize = 48;
/// `sizeof(struct jset)`: entries start here.
pub const JSET_BYTES: usize = 56;

/// Journal entry types used here (`bch_jset_entry_type`).
#[allow(missing_docs)]
pub mod entry {
    pub const BTREE_KEYS: u8 = 0;
    pub const BTREE_ROOT: u8 = 1;
    pub const BLACKLIST: u8 = 3;
    pub const BLACKLIST_V2: u8 = 4;
    pub const WRITE_BUFFER_KEYS: u8 = 11;
    pub const OVERWRITE: u8 = 10;
}

/// A checked journal entry.
#[derive(Clone, Copy, Debug)]
pub struct Jset<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Oldest seq still needed when this was written.
    pub last_seq: u64,
    /// On-disk version.
    pub version: u32,
    /// Flags.
    pub flags: u32,
    /// The entries area (`d[]`).
    pub entries: &'a [u8],
    /// Sectors the jset occupies (rounded up to the block size).
    pub sectors: u32,
}

impl<'a> Jset<'a> {
    /// `JSET_NO_FLUSH`: a write that did not flush; entries after the last flush
    /// are not replayed.
    pub fn no_flush(&self) -> bool {
        bits(self.flags as u64, 5, 6) != 0
    }
    /// `JSET_CSUM_TYPE`.
    pub fn csum_type(&self) -> u8 {
        bits(self.flags as u64, 0, 4) as u8
    }
    /// The entries.
    pub fn iter(&self) -> JsetEntries<'a> {
        JsetEntries::new(self.entries)
    }
}

/// Why bytes are not a usable jset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JsetError {
    /// No jset magic here: the end of the written part of the bucket.
    NoMagic,
    /// The jset runs past the bucket.
    TooBig,
    /// Checksum mismatch.
    BadChecksum,
    /// Unknown or encrypted checksum type.
    Csum(CsumError),
    /// `last_seq` after `seq`.
    BadLastSeq,
}

/// Parses the jset at the start of `b` (the rest of a journal bucket), checking its
/// checksum when `c` is given (`None` for bytes a walk already verified).
pub fn parse_jset<'a>(
    b: &'a [u8],
    magic: u64,
    block_sectors: u32,
    c: Option<&dyn Checksummer>,
) -> Result<Jset<'a>, JsetError> {
    if le64(b, JSET_MAGIC_OFF) != Some(magic) {
        return Err(JsetError::NoMagic);
    }
    let u64s = le32(b, JSET_U64S).ok_or(JsetError::TooBig)? as usize;
    let bytes = JSET_BYTES
        .checked_add(u64s.checked_mul(8).ok_or(JsetError::TooBig)?)
        .ok_or(JsetError::TooBig)?;
    if bytes > b.len() {
        return Err(JsetError::TooBig);
    }
    let flags = le32(b, JSET_FLAGS).unwrap_or(0);
    if let Some(c) = c {
        let want = Csum::read(b, 0).ok_or(JsetError::TooBig)?;
        let got = csum::checksum(c, bits(flags as u64, 0, 4) as u8, &b[16..bytes])
            .map_err(JsetError::Csum)?;
        if got != want {
            return Err(JsetError::BadChecksum);
        }
    }
    let seq = le64(b, JSET_SEQ).unwrap_or(0);
    let last_seq = le64(b, JSET_LAST_SEQ).unwrap_or(0);
    if last_seq > seq {
        return Err(JsetError::BadLastSeq);
    }
    let blk = (block_sectors.max(1) as usize) << 9;
    let sectors = ((bytes.div_ceil(blk) * blk) >> 9) as u32;
    Ok(Jset {
        seq,
        last_seq,
        version: le32(b, JSET_VERSION).unwrap_or(0),
        flags,
        entries: &b[JSET_BYTES..bytes],
        sectors,
    })
}

/// Walks a journal bucket's bytes, calling `f(sector offset, jset)` for each jset
/// until the first block with no valid jset.
pub fn walk_bucket<'a>(
    b: &'a [u8],
    magic: u64,
    block_sectors: u32,
    c: &dyn Checksummer,
    f: &mut dyn FnMut(u32, &Jset<'a>),
) {
    let blk = (block_sectors.max(1) as usize) << 9;
    let mut off = 0usize;
    while off + JSET_BYTES <= b.len() {
        match parse_jset(&b[off..], magic, block_sectors, Some(c)) {
            Ok(j) => {
                f((off >> 9) as u32, &j);
                off += (j.sectors as usize) << 9;
            }
            Err(JsetError::BadChecksum) => {
                // A torn write: skip one block and look again, as upstream does.
                off += blk;
            }
            Err(_) => break,
        }
    }
}

/// Blacklisted ranges recorded inside journal entries: `(start, end)` half-open.
pub fn entry_blacklist(e: &super::super::sb::JsetEntry<'_>) -> Option<(u64, u64)> {
    match e.typ {
        entry::BLACKLIST => {
            let s = le64(e.data, 0)?;
            Some((s, s.saturating_add(1)))
        }
        entry::BLACKLIST_V2 => {
            // v2 stores an inclusive end
            Some((le64(e.data, 0)?, le64(e.data, 8)?.saturating_add(1)))
        }
        _ => None,
    }
}

/// Summary of the journal: which seqs replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayRange {
    /// First seq to replay (the newest flush entry's `last_seq`).
    pub start: u64,
    /// Last seq to replay (the newest flush entry).
    pub end: u64,
}

/// Picks the replay range from `(seq, last_seq, no_flush)` of every jset found:
/// entries after the newest flush write are not replayed, nor those older than its
/// `last_seq`.
pub fn replay_range(entries: impl Iterator<Item = (u64, u64, bool)>) -> Option<ReplayRange> {
    let mut best: Option<(u64, u64)> = None;
    for (seq, last, no_flush) in entries {
        if no_flush {
            continue;
        }
        if best.map(|(s, _)| seq > s).unwrap_or(true) {
            best = Some((seq, last));
        }
    }
    best.map(|(end, start)| ReplayRange {
        start: if start == 0 { end } else { start },
        end,
    })
}

/// What mounting replays: nothing past a clean shutdown, or a range of the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Clean at `seq`: btree roots come from the superblock's clean section and no
    /// journal keys are replayed.
    Clean {
        /// The clean section's journal seq.
        seq: u64,
    },
    /// Replay `range`: roots from its newest entry, keys from all of it.
    Dirty(ReplayRange),
}

/// Decides between the clean section and the journal's replay range, as upstream's
/// recovery does: a superblock marked clean (`clean_seq`, from
/// [`super::super::sb::Sb::clean_section`]) is used and the journal is not read at
/// all, whatever it holds; otherwise the journal's range replays. `None` when
/// there is neither.
pub fn plan_replay(clean_seq: Option<u64>, range: Option<ReplayRange>) -> Option<Replay> {
    match (clean_seq, range) {
        (Some(seq), _) => Some(Replay::Clean { seq }),
        (None, Some(r)) => Some(Replay::Dirty(r)),
        (None, None) => None,
    }
}
