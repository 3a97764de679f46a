// SPDX-License-Identifier: GPL-2.0
//! Merging a node's bsets into one sorted view (upstream's
//! `bch2_key_sort_fix_overlapping` as the read path uses it): keys ordered by
//! position; where several bsets hold the same position the newest bset wins; a
//! winning `deleted` key hides the position; keys outside the node's range and
//! bsets from blacklisted journal seqs are left out. Zero-copy: values borrow the
//! node buffer, and the caller provides one cursor per bset.
//!
//! The cursors are kept sorted by their next key (as upstream's `sort_iter` keeps
//! its iterators): the front one is the next key, and a cursor that stepped on
//! sinks past those before it. Bsets written one after another mostly hold
//! disjoint ranges, so a step costs one comparison, whatever the number of bsets.
//! The order is a permutation kept in the cursors' `ord` fields, so a cursor's
//! decoded key never moves: sinking swaps two indices.

use super::super::bkey::{Bkey, BkeyFormat, Unpacker};
use super::super::bpos::Bpos;
use super::read::{key_at, BsetRef, KeyError};

/// Per-bset merge cursor. Callers provide `[Cursor::default(); nr_bsets]`.
#[derive(Clone, Copy, Default)]
pub struct Cursor {
    /// Byte offsets in the buffer of the next key and of the bset's end.
    pos: u32,
    end: u32,
    /// The bset's index: among keys at one position the newest (highest) wins.
    idx: u32,
    /// Whether `k` holds the cursor's next key (kept apart from it, not an
    /// `Option`: the merge moves keys less).
    live: bool,
    /// Value offset in the buffer and length.
    voff: u32,
    vlen: u32,
    /// In slot `i`: the index of the cursor that comes out `i`-th.
    ord: u32,
    k: Bkey,
}

impl Cursor {
    /// Whether this cursor's key comes out before `o`'s: live before done, then by
    /// position, then the newer bset first.
    fn before(&self, o: &Cursor) -> bool {
        if !self.live || !o.live {
            return self.live && !o.live;
        }
        match self.k.p.cmp(&o.k.p) {
            core::cmp::Ordering::Less => true,
            core::cmp::Ordering::Greater => false,
            core::cmp::Ordering::Equal => self.idx > o.idx,
        }
    }
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
    f: Unpacker,
    min: Bpos,
    max: Bpos,
    /// The bsets' cursors (the ones in use: as many as there are bsets), in the
    /// order of their `ord` fields sorted by [`Cursor::before`].
    cursors: &'c mut [Cursor],
    /// How many cursors at the front of the order the last key used: they step
    /// on first.
    used: usize,
    /// Whether the front cursor is in a run (see [`Merge::next`]) ...
    run: bool,
    /// ... that ends at this position (`None`: at the cursor's end).
    run_end: Option<Bpos>,
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
        let n = bsets.len().min(cursors.len());
        let (cursors, rest) = cursors.split_at_mut(n);
        for c in rest.iter_mut() {
            *c = Cursor::default();
        }
        let mut m = Merge {
            buf,
            f: Unpacker::new(&f),
            min,
            max,
            cursors,
            used: 0,
            run: false,
            run_end: None,
            validate: None,
            stats: MergeStats::default(),
        };
        for (i, b) in bsets.iter().enumerate().take(n) {
            m.cursors[i] = Cursor {
                idx: i as u32,
                ord: i as u32,
                ..Cursor::default()
            };
            let (s, e) = (b.start as usize, b.start as usize + b.len as usize);
            // A bset that does not lie in the buffer has no keys.
            if !b.blacklisted && e <= m.buf.len() {
                if let (Ok(s), Ok(e)) = (u32::try_from(s), u32::try_from(e)) {
                    m.cursors[i].pos = s;
                    m.cursors[i].end = e;
                    m.fill(i);
                }
            }
        }
        // Insertion sort, from the back: each cursor sinks into the sorted tail.
        for i in (0..n).rev() {
            m.sink(i);
        }
        m
    }

    /// Drops (and counts) keys that fail [`super::validate::validate_key`] for
    /// `btree` at `level`, as upstream's read path does.
    pub fn validating(mut self, btree: u32, level: u8) -> Self {
        self.validate = Some((btree, level));
        self
    }

    /// The cursor that comes out `i`-th.
    fn at(&self, i: usize) -> Option<&Cursor> {
        let o = self.cursors.get(i)?.ord as usize;
        self.cursors.get(o)
    }

    /// Moves the `i`-th cursor of the order back past the cursors after it that
    /// come out before it (those after it are sorted).
    fn sink(&mut self, mut i: usize) {
        while let (Some(a), Some(b)) = (self.at(i), self.at(i + 1)) {
            if !b.before(a) {
                break;
            }
            if let Some([x, y, ..]) = self.cursors.get_mut(i..) {
                core::mem::swap(&mut x.ord, &mut y.ord);
            }
            i += 1;
        }
    }

    /// Decodes cursor `i`'s next key into it.
    fn fill(&mut self, i: usize) {
        let mut k = Bkey::default();
        if self.step(i, &mut k) {
            if let Some(c) = self.cursors.get_mut(i) {
                c.k = k;
            }
        }
    }

    /// Decodes cursor `i`'s next key into `k` and moves the cursor past it
    /// (its value's place kept in the cursor): whether there was one. A key that
    /// does not decode ends the cursor, counted.
    #[inline(always)]
    fn step(&mut self, i: usize, k: &mut Bkey) -> bool {
        let Some(c) = self.cursors.get_mut(i) else {
            return false;
        };
        let rest = self.buf.get(c.pos as usize..c.end as usize).unwrap_or(&[]);
        if rest.is_empty() {
            c.live = false;
            return false;
        }
        match key_at(rest, &self.f, k) {
            Ok((hdr, kb)) => {
                c.voff = c.pos + hdr as u32;
                c.vlen = (kb - hdr) as u32;
                c.pos += kb as u32;
                c.live = true;
                true
            }
            Err(e) => {
                c.live = false;
                self.stats.bad += 1;
                if self.stats.first_bad.is_none() {
                    self.stats.first_bad = Some(e);
                }
                false
            }
        }
    }

    /// Key `k` with the value of cursor `o` as the merge gives it, or `None`
    /// (counted) when it is a deletion, outside the node or invalid.
    #[inline(always)]
    fn emit(&mut self, k: &Bkey, o: usize) -> Option<MergedKey<'a>> {
        let c = self.cursors.get(o)?;
        let (voff, vlen) = (c.voff, c.vlen);
        if k.typ == super::super::ids::KeyType::Deleted as u8 {
            self.stats.deleted += 1;
            return None;
        }
        if k.p < self.min || k.p > self.max {
            self.stats.outside += 1;
            return None;
        }
        let v = self
            .buf
            .get(voff as usize..(voff + vlen) as usize)
            .unwrap_or(&[]);
        if let Some((btree, level)) = self.validate {
            // A copy goes to the validator, so that `k` itself never has its
            // address taken and can stay in registers (a key stored field by
            // field and reloaded whole stalls on store forwarding).
            let kc = *k;
            if let Err(e) = super::validate::validate_key(btree, level, &kc, v) {
                self.stats.invalid += 1;
                self.stats.first_invalid.get_or_insert(e);
                return None;
            }
        }
        Some(MergedKey { k: *k, v })
    }
}

impl<'a> Iterator for Merge<'a, '_> {
    type Item = MergedKey<'a>;
    fn next(&mut self) -> Option<MergedKey<'a>> {
        loop {
            let front = self.cursors.first().map_or(usize::MAX, |c| c.ord as usize);
            // A run: while the front cursor's keys stay before the next cursor's
            // key (which does not move meanwhile), they come out one after another
            // with one comparison each. Bsets that hold disjoint ranges, and a node
            // of one bset, merge this way.
            if self.run && self.used == 1 {
                // The key is decoded straight into what is returned, and only
                // kept in the cursor when it ends the run.
                let mut k = Bkey::default();
                if self.step(front, &mut k) {
                    if self.run_end.is_none_or(|e| k.p < e) {
                        match self.emit(&k, front) {
                            Some(m) => return Some(m),
                            None => continue,
                        }
                    }
                    if let Some(c) = self.cursors.get_mut(front) {
                        c.k = k;
                    }
                }
                // The run ended: the front cursor (already stepped on) sinks to
                // its place.
                self.run = false;
                self.sink(0);
                self.used = 0;
            }
            // The cursors the last key used step on, and sink to their places
            // (the last first: those after each are sorted by then). The winner's
            // key stayed in its cursor until now, so it was copied once, into what
            // was returned.
            for i in (0..self.used).rev() {
                let o = self.cursors.get(i).map_or(usize::MAX, |c| c.ord as usize);
                self.fill(o);
                self.sink(i);
            }
            self.used = 0;
            // The front cursor holds the smallest position, from the newest bset
            // holding it; the others at that position follow it.
            let first = self.at(0)?;
            if !first.live {
                return None;
            }
            let pos = first.k.p;
            let mut same = 0;
            while let Some(c) = self.at(1 + same) {
                if !c.live || c.k.p != pos {
                    break;
                }
                same += 1;
            }
            self.stats.overwritten += same as u32;
            self.used = 1 + same;
            // A run starts when the front key stands alone: it lasts until the
            // front cursor reaches the second cursor's key (or, if none is left,
            // to its end).
            self.run = same == 0;
            self.run_end = self.at(1).filter(|c| c.live).map(|c| c.k.p);
            let front = self.cursors.first().map_or(usize::MAX, |c| c.ord as usize);
            let k = self.cursors.get(front).map(|c| c.k).unwrap_or_default();
            if let Some(m) = self.emit(&k, front) {
                return Some(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::super::super::bkey::encode_key_unpacked;
    use super::super::super::ids::KeyType;
    use super::super::read::KeyIter;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// The merge as it was first written, kept as the model: every round scans all
    /// cursors for the smallest position (the last bset among equals) and steps on
    /// every cursor at it.
    fn model(
        buf: &[u8],
        f: BkeyFormat,
        min: Bpos,
        max: Bpos,
        bsets: &[BsetRef],
    ) -> (Vec<(Bkey, Vec<u8>)>, MergeStats) {
        let mut st = MergeStats::default();
        let mut its: Vec<_> = bsets
            .iter()
            .map(|b| {
                let keys = if b.blacklisted { &[][..] } else { b.keys(buf) };
                KeyIter::new(keys, f)
            })
            .collect();
        let step = |it: &mut KeyIter<'_>, st: &mut MergeStats| match it.next() {
            Some(Ok((k, v, _))) => Some((k, v.to_vec())),
            Some(Err(e)) => {
                st.bad += 1;
                st.first_bad.get_or_insert(e);
                None
            }
            None => None,
        };
        let mut cur: Vec<_> = its.iter_mut().map(|it| step(it, &mut st)).collect();
        let mut out = Vec::new();
        loop {
            let mut best: Option<usize> = None;
            for (i, c) in cur.iter().enumerate() {
                if let Some((k, _)) = c {
                    match best {
                        Some(b) if k.p > cur[b].as_ref().unwrap().0.p => {}
                        _ => best = Some(i),
                    }
                }
            }
            let Some(win) = best else { break };
            let (k, v) = cur[win].clone().unwrap();
            for i in 0..cur.len() {
                if cur[i].as_ref().map(|c| c.0.p) == Some(k.p) {
                    if i != win {
                        st.overwritten += 1;
                    }
                    cur[i] = step(&mut its[i], &mut st);
                }
            }
            if k.typ == KeyType::Deleted as u8 {
                st.deleted += 1;
            } else if k.p < min || k.p > max {
                st.outside += 1;
            } else {
                out.push((k, v));
            }
        }
        (out, st)
    }

    #[test]
    fn merge_equals_the_model_on_random_bsets() {
        let mut rnd = super::super::super::bytes::pseudo_random_below(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let nb = 1 + rnd(7) as usize;
            let mut buf = vec![0u8; 0];
            let mut bsets = Vec::new();
            for _ in 0..nb {
                let start = buf.len();
                let nk = rnd(12);
                let mut pos = rnd(4);
                // Mostly sorted bsets over overlapping or disjoint ranges, now and
                // then unsorted, and one in a few ending in a bad key.
                let sorted = rnd(5) != 0;
                for _ in 0..nk {
                    pos = if sorted { pos + rnd(3) } else { rnd(20) };
                    let k = Bkey {
                        typ: if rnd(6) == 0 {
                            KeyType::Deleted as u8
                        } else {
                            KeyType::Cookie as u8
                        },
                        p: Bpos {
                            inode: 1,
                            offset: pos,
                            snapshot: rnd(2) as u32,
                        },
                        ..Bkey::default()
                    };
                    let v = [round as u8, bsets.len() as u8, pos as u8, 0, 0, 0, 0, 0];
                    let mut kb = [0u8; 64];
                    let n = encode_key_unpacked(&k, &v, &mut kb).unwrap();
                    buf.extend_from_slice(&kb[..n]);
                }
                if rnd(10) == 0 {
                    buf.extend_from_slice(&[0u8; 8]); // u64s 0: a bad key
                }
                bsets.push(BsetRef {
                    start: start as u32,
                    len: (buf.len() - start) as u32,
                    blacklisted: rnd(8) == 0,
                    ..BsetRef::default()
                });
            }
            let min = Bpos {
                inode: 1,
                offset: rnd(5),
                snapshot: 0,
            };
            let max = Bpos {
                inode: 1,
                offset: 10 + rnd(30),
                snapshot: 1,
            };
            let f = BkeyFormat::CURRENT;
            let (want, want_st) = model(&buf, f, min, max, &bsets);
            let mut cursors = vec![Cursor::default(); nb + 2];
            let mut m = Merge::new(&buf, f, min, max, &bsets, &mut cursors);
            let got: Vec<_> = m.by_ref().map(|mk| (mk.k, mk.v.to_vec())).collect();
            // Done stays done, and counts nothing twice.
            assert!(m.next().is_none() && m.next().is_none());
            assert_eq!(got.len(), want.len(), "round {}", round);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0.p, w.0.p, "round {}", round);
                assert_eq!(g.1, w.1, "round {}", round);
            }
            assert_eq!(m.stats, want_st, "round {}", round);
        }
    }
}
