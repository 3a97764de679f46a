// SPDX-License-Identifier: GPL-2.0
//! Merging a node's bsets into one sorted view (upstream's
//! `bch2_key_sort_fix_overlapping` as the read path uses it): keys ordered by
//! position; where several bsets hold the same position the newest bset wins; a
//! winning `deleted` key hides the position; keys outside the node's range and
//! bsets from blacklisted journal seqs are left out. Zero-copy: values borrow the
//! node buffer, and the caller provides one cursor per bset.

use super::super::bkey::{Bkey, BkeyFormat};
use super::super::bpos::Bpos;
use super::read::{BsetRef, KeyError, KeyIter};

/// Per-bset merge cursor. Callers provide `[Cursor::default(); nr_bsets]`.
#[derive(Clone, Copy, Default)]
pub struct Cursor {
    start: u32,
    len: u32,
    off: u32,
    cur: Option<(Bkey, u32, u32)>, // key, value offset in buf, value len
}

/// A merged key: header and value (borrowing the node buffer).
#[derive(Clone, Copy, Debug)]
pub struct MergedKey<'a> {
    /// Header.
    pub k: Bkey,
    /// Value bytes.
    pub v: &'a [u8],
}

/// Counters of what the merge left out.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct MergeStats {
    /// Keys replaced by a newer bset's key at the same position.
    pub overwritten: u32,
    /// Positions hidden by a `deleted` key.
    pub deleted: u32,
    /// Keys outside the node's min/max.
    pub outside: u32,
    /// Keys that could not be decoded (the rest of their bset is lost).
    pub bad: u32,
    /// Keys dropped by validation ([`Merge::validating`]).
    pub invalid: u32,
    /// First validation failure.
    pub first_invalid: Option<super::validate::KeyInvalid>,
    /// First bad key's error.
    pub first_bad: Option<KeyError>,
}

/// The k-way merge over a node's bsets.
pub struct Merge<'a, 'c> {
    buf: &'a [u8],
    f: BkeyFormat,
    min: Bpos,
    max: Bpos,
    cursors: &'c mut [Cursor],
    validate: Option<(u32, u8)>,
    /// What was left out so far.
    pub stats: MergeStats,
}

impl<'a, 'c> Merge<'a, 'c> {
    /// Merges the non-blacklisted `bsets` of the node in `buf` with key format `f`
    /// and range `[min, max]`. `cursors` must be at least `bsets.len()` long (extra
    /// bsets are ignored).
    pub fn new(
        buf: &'a [u8],
        f: BkeyFormat,
        min: Bpos,
        max: Bpos,
        bsets: &[BsetRef],
        cursors: &'c mut [Cursor],
    ) -> Self {
        let mut m = Merge {
            buf,
            f,
            min,
            max,
            cursors,
            validate: None,
            stats: MergeStats::default(),
        };
        let n = bsets.len().min(m.cursors.len());
        for (i, b) in bsets.iter().enumerate().take(n) {
            m.cursors[i] = if b.blacklisted {
                Cursor::default()
            } else {
                Cursor {
                    start: b.start,
                    len: b.len,
                    off: 0,
                    cur: None,
                }
            };
            m.fill(i);
        }
        for c in m.cursors[n..].iter_mut() {
            *c = Cursor::default();
        }
        m
    }

    /// Drops (and counts) keys that fail [`super::validate::validate_key`] for
    /// `btree` at `level`, as upstream's read path does.
    pub fn validating(mut self, btree: u32, level: u8) -> Self {
        self.validate = Some((btree, level));
        self
    }

    /// Decodes cursor `i`'s next key into `cur`.
    fn fill(&mut self, i: usize) {
        let c = self.cursors[i];
        let s = c.start as usize;
        let keys = match self.buf.get(s..s + c.len as usize) {
            Some(k) => k,
            None => {
                self.cursors[i].cur = None;
                return;
            }
        };
        let mut it = KeyIter::new(keys.get(c.off as usize..).unwrap_or(&[]), self.f);
        match it.next() {
            Some(Ok((k, v, at))) => {
                let voff = s + c.off as usize + at + (k.u64s as usize * 8 - v.len());
                let klen = k.u64s as usize * 8;
                self.cursors[i].off = c.off + (at + klen) as u32;
                self.cursors[i].cur = Some((k, voff as u32, v.len() as u32));
            }
            Some(Err(e)) => {
                self.stats.bad += 1;
                if self.stats.first_bad.is_none() {
                    self.stats.first_bad = Some(e);
                }
                self.cursors[i].cur = None;
            }
            None => self.cursors[i].cur = None,
        }
    }
}

impl<'a> Iterator for Merge<'a, '_> {
    type Item = MergedKey<'a>;
    fn next(&mut self) -> Option<MergedKey<'a>> {
        loop {
            // Smallest position; among equals the newest (last) bset wins.
            let mut best: Option<(usize, Bpos)> = None;
            for (i, c) in self.cursors.iter().enumerate() {
                if let Some((k, _, _)) = c.cur {
                    match best {
                        Some((_, p)) if k.p > p => {}
                        _ => best = Some((i, k.p)),
                    }
                }
            }
            let (win, pos) = best?;
            let (k, voff, vlen) = self.cursors[win].cur?;
            for i in 0..self.cursors.len() {
                if let Some((ki, _, _)) = self.cursors[i].cur {
                    if ki.p == pos {
                        if i != win {
                            self.stats.overwritten += 1;
                        }
                        self.fill(i);
                    }
                }
            }
            if k.typ == super::super::ids::KeyType::Deleted as u8 {
                self.stats.deleted += 1;
                continue;
            }
            if pos < self.min || pos > self.max {
                self.stats.outside += 1;
                continue;
            }
            let v = self
                .buf
                .get(voff as usize..(voff + vlen) as usize)
                .unwrap_or(&[]);
            if let Some((btree, level)) = self.validate {
                if let Err(e) = super::validate::validate_key(btree, level, &k, v) {
                    self.stats.invalid += 1;
                    self.stats.first_invalid.get_or_insert(e);
                    continue;
                }
            }
            return Some(MergedKey { k, v });
        }
    }
}
