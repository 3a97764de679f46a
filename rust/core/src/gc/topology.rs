// SPDX-License-Identifier: GPL-2.0
//! Topology of one interior node: its children must cover its range exactly, the
//! first starting at its `min_key`, each next one right after its predecessor's
//! max, the last ending at its `max_key`. Unreadable children count as absent (upstream
//! drops them first), so the range they covered shows up as a gap.

use super::super::bpos::Bpos;
use super::finding::{Finding, Kind, NodeAt};

/// Checks the children of one interior node, fed in key order.
pub struct Children {
    btree: u32,
    /// Level of the children.
    level: u8,
    root_level: u8,
    min: Bpos,
    max: Bpos,
    /// Max key of the last readable child.
    prev: Option<Bpos>,
    /// Children seen (readable or not).
    seen: u32,
    /// Readable children seen.
    readable: u32,
}

impl Children {
    /// Children at `level` of a node of `btree` spanning `min..=max`.
    pub fn new(btree: u32, level: u8, root_level: u8, min: Bpos, max: Bpos) -> Children {
        Children {
            btree,
            level,
            root_level,
            min,
            max,
            prev: None,
            seen: 0,
            readable: 0,
        }
    }

    fn finding(&self, kind: Kind) -> Finding {
        let mut f = Finding::new(kind);
        f.btree = Some(self.btree);
        f.level = self.level;
        f.root_level = self.root_level;
        f
    }

    fn expected_start(&self) -> Bpos {
        match self.prev {
            Some(p) => p.successor(),
            None => self.min,
        }
    }

    /// The next child: `node` as its pointer and header place it, `None` when it
    /// could not be read (it is then treated as absent).
    pub fn child(&mut self, node: Option<NodeAt>, out: &mut dyn FnMut(&Finding)) {
        self.seen += 1;
        let Some(n) = node else { return };
        let want = self.expected_start();
        if n.min != want {
            // The first child is measured against the parent's start (expected,
            // found); later ones name the range missing or covered twice.
            let (kind, range) = if self.prev.is_none() {
                (Kind::BadMinKey, (want, n.min))
            } else if n.min > want {
                (Kind::GapBetweenNodes, (want, n.min.predecessor()))
            } else {
                (
                    Kind::OverlapBetweenNodes,
                    (n.min, want.predecessor().min(n.max)),
                )
            };
            let mut f = self.finding(kind);
            f.node = Some(n);
            f.range = Some(range);
            out(&f);
        }
        if n.max < n.min {
            let mut f = self.finding(Kind::BadMaxKey);
            f.node = Some(n);
            f.range = Some((n.min, n.max));
            out(&f);
        }
        self.prev = Some(match self.prev {
            Some(p) => p.max(n.max),
            None => n.max,
        });
        self.readable += 1;
    }

    /// After the last child: the range left uncovered at the end, or an empty node.
    pub fn finish(&self, parent: Option<NodeAt>, out: &mut dyn FnMut(&Finding)) {
        if self.seen == 0 {
            let mut f = self.finding(Kind::EmptyInteriorNode);
            f.level = self.level + 1;
            f.node = parent;
            out(&f);
            return;
        }
        match self.prev {
            None => {
                // Every child unreadable: the whole range is a gap.
                let mut f = self.finding(Kind::GapBetweenNodes);
                f.range = Some((self.min, self.max));
                out(&f);
            }
            Some(p) if p < self.max => {
                // Short of the end: the last child ends early, or the unreadable
                // children after it leave the rest as a gap.
                let (kind, range) = if self.readable == self.seen {
                    (Kind::BadMaxKey, (self.max, p))
                } else {
                    (Kind::GapBetweenNodes, (p.successor(), self.max))
                };
                let mut f = self.finding(kind);
                f.range = Some(range);
                out(&f);
            }
            Some(p) if p > self.max => {
                let mut f = self.finding(Kind::BadMaxKey);
                f.range = Some((self.max, p));
                out(&f);
            }
            _ => {}
        }
    }
}

/// A root must span `POS_MIN..=SPOS_MAX`.
pub fn check_root(btree: u32, level: u8, n: NodeAt, out: &mut dyn FnMut(&Finding)) {
    let mut f = Finding::new(Kind::BadMinKey);
    f.btree = Some(btree);
    f.level = level;
    f.root_level = level;
    f.node = Some(n);
    if n.min != Bpos::MIN {
        f.range = Some((Bpos::MIN, n.min));
        out(&f);
    }
    if n.max != Bpos::MAX {
        f.kind = Kind::BadMaxKey;
        f.range = Some((Bpos::MAX, n.max));
        out(&f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn at(min: (u64, u64), max: (u64, u64)) -> Option<NodeAt> {
        Some(NodeAt {
            min: Bpos::new(min.0, min.1, 0),
            max: Bpos::new(max.0, max.1, u32::MAX),
            dev: 0,
            sector: 0,
        })
    }

    fn run(children: &[Option<NodeAt>]) -> Vec<Finding> {
        let mut v = Vec::new();
        let mut c = Children::new(0, 0, 2, Bpos::MIN, Bpos::MAX);
        for ch in children {
            c.child(*ch, &mut |f| v.push(*f));
        }
        c.finish(None, &mut |f| v.push(*f));
        v
    }

    #[test]
    fn exact_cover_is_clean() {
        let v = run(&[at((0, 0), (5, 5)), at((5, 6), (u64::MAX, u64::MAX))]);
        assert!(v.is_empty(), "{:?}", v);
    }

    #[test]
    fn unreadable_child_is_a_gap_with_its_range() {
        let first = at((0, 0), (5, 5));
        let last = at((9, 2), (u64::MAX, u64::MAX));
        let v = run(&[first, None, last]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, Kind::GapBetweenNodes);
        assert_eq!(
            v[0].range,
            Some((Bpos::new(5, 6, 0), Bpos::new(9, 1, u32::MAX)))
        );
    }

    #[test]
    fn overlap_end_and_empty() {
        let v = run(&[at((0, 0), (5, 5)), at((4, 0), (7, 0))]);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].kind, Kind::OverlapBetweenNodes);
        assert_eq!(v[1].kind, Kind::BadMaxKey);
        assert_eq!(run(&[]).len(), 1);
        assert_eq!(run(&[])[0].kind, Kind::EmptyInteriorNode);
        let v = run(&[at((1, 0), (9, 9))]);
        assert_eq!(v[0].kind, Kind::BadMinKey);
    }
}
