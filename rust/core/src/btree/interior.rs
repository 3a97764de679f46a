// SPDX-License-Identifier: GPL-2.0
//! New nodes (upstream's `btree/interior.c` decisions): what a node rewritten to
//! new space holds, when a node must split and where, and a new root's shape.
//! The writes themselves are [`super::write::write_bset`] at offset 0 of a fresh
//! node with [`super::write::new_header`]; the read twin is the node reader, which
//! checks every rule here (range, format, key order) on what was written.
//!
//! - A rewrite keeps the node's range and live keys (`deleted` keys dropped; snapshot
//!   `whiteout`s are keys and stay), in a format computed from its range and keys
//!   ([`node_format`]); its header seq is the old one + 1, its bset seq new.
//! - A node splits when its live keys exceed 3/4 of what a node holds, or do not
//!   fit one node at all ([`must_split`]); the first half is the shortest prefix
//!   holding 3/5 of the live u64s ([`split_at`]); its last key is the pivot: the
//!   first node ends there and the second starts at its successor.
//! - A root that splits gets a new root one level up over `POS_MIN..SPOS_MAX`, in
//!   the format of those bounds alone ([`root_format`]), header seq 0.

use super::super::bkey::{Bkey, BkeyFormat, FormatState, BKEY_U64S};
use super::super::bpos::Bpos;
use super::format::BN_BYTES;
use super::update::max_u64s;

/// A key's u64s (header and value) stored in a node of format `f`: packed when
/// its fields fit, unpacked otherwise.
pub fn key_u64s(k: &Bkey, val_bytes: usize, f: &BkeyFormat) -> usize {
    let hdr = if f.packed_fields(k).is_some() {
        usize::from(f.key_u64s)
    } else {
        BKEY_U64S
    };
    hdr + val_bytes.div_ceil(8)
}

/// `bch2_btree_calc_format`: the format of a node over `min..=max` holding `keys`.
pub fn node_format(min: Bpos, max: Bpos, keys: &mut dyn Iterator<Item = &Bkey>) -> BkeyFormat {
    let mut s = FormatState::new();
    s.add_pos(min);
    s.add_pos(max);
    for k in keys {
        s.add_key(k);
    }
    s.done()
}

/// The format of a new root (`__btree_root_alloc`): the bounds alone.
pub fn root_format() -> BkeyFormat {
    node_format(Bpos::MIN, Bpos::MAX, &mut core::iter::empty())
}

/// `bch2_btree_node_format_fits` on the sizes: keys of `u64s` (in the new format)
/// fit one node of `node_sectors`.
pub fn fits_one_node(u64s: usize, node_sectors: u32) -> bool {
    BN_BYTES + u64s * 8 < (node_sectors as usize) << 9
}

/// The format of a new node over `lo..=hi` holding `keys` (each key and its
/// value's bytes): the one its range and keys give ([`node_format`]), or `old`,
/// the format they come in, where theirs would not fit one node of
/// `node_sectors` (`bch2_btree_node_format_fits`).
pub fn new_node_format<'k, I>(
    lo: Bpos,
    hi: Bpos,
    keys: I,
    old: &BkeyFormat,
    node_sectors: u32,
) -> BkeyFormat
where
    I: Iterator<Item = (&'k Bkey, usize)> + Clone,
{
    let f = node_format(lo, hi, &mut keys.clone().map(|(k, _)| k));
    let u64s: usize = keys.map(|(k, n)| key_u64s(k, n, &f)).sum();
    if fits_one_node(u64s, node_sectors) {
        f
    } else {
        *old
    }
}

/// `BTREE_SPLIT_THRESHOLD`.
pub fn split_threshold(node_sectors: u32) -> usize {
    max_u64s(node_sectors) * 3 / 4
}

/// Whether a node whose live keys take `live_u64s` must be split rather than
/// compacted into one new node (`btree_split`'s choice).
pub fn must_split(live_u64s: usize, node_sectors: u32) -> bool {
    live_u64s > split_threshold(node_sectors) || !fits_one_node(live_u64s, node_sectors)
}

/// `find_balanced_split`: how many keys (of the sizes `sizes`, in order, their
/// total `live_u64s`) go to the first node: the shortest prefix that reaches 3/5
/// of the total. At least one key goes to each side when there are two or more.
pub fn split_at(sizes: &mut dyn Iterator<Item = usize>, live_u64s: usize) -> usize {
    let target = live_u64s * 3 / 5;
    let mut before = 0usize;
    let mut n = 0usize;
    let mut total = 0usize;
    for s in sizes {
        if before < target || n == 0 {
            n += 1;
            before += s;
        }
        total += 1;
    }
    if total >= 2 && n == total {
        n = total - 1;
    }
    n
}

/// One node of a split: its range `lo..=hi` and its keys, `first..end` of the
/// keys split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SplitGroup {
    /// Start of the node's range.
    pub lo: Bpos,
    /// End of the node's range (its pointer's position).
    pub hi: Bpos,
    /// Index of its first key.
    pub first: usize,
    /// Index past its last key.
    pub end: usize,
}

/// Upstream's split rule over keys of `sizes` u64s each (in order, measured in the
/// format of the node they come from) whose positions `pos` gives, filling
/// `min..=max`: a range that [`must_split`] is cut at [`split_at`] (the first
/// half ending at its last key, the second starting at that key's successor),
/// each half again as needed; the ranges into `out` in key order, the first
/// composed first. `stack` is the caller's room, as long as `out`. Returns how
/// many, or `None` when `out` or `stack` is too short.
pub fn split_groups(
    sizes: &[usize],
    pos: &dyn Fn(usize) -> Bpos,
    min: Bpos,
    max: Bpos,
    node_sectors: u32,
    out: &mut [SplitGroup],
    stack: &mut [SplitGroup],
) -> Option<usize> {
    let (mut n, mut top) = (0usize, 0usize);
    *stack.get_mut(top)? = SplitGroup {
        lo: min,
        hi: max,
        first: 0,
        end: sizes.len(),
    };
    top += 1;
    while top > 0 {
        top -= 1;
        let g = *stack.get(top)?;
        let part = sizes.get(g.first..g.end)?;
        let live: usize = part.iter().sum();
        if must_split(live, node_sectors) && part.len() >= 2 {
            let n1 = g.first + split_at(&mut part.iter().copied(), live);
            let pivot = pos(n1.checked_sub(1)?);
            // The second half below the first: the first is taken first.
            *stack.get_mut(top)? = SplitGroup {
                lo: pivot.successor(),
                first: n1,
                ..g
            };
            *stack.get_mut(top + 1)? = SplitGroup {
                hi: pivot,
                end: n1,
                ..g
            };
            top += 2;
        } else {
            *out.get_mut(n)? = g;
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_format_is_three_u64s() {
        let f = root_format();
        assert_eq!(f.key_u64s, 3);
        let k = Bkey {
            p: Bpos::new(4096, 77, 0xffff_ffff),
            ..Default::default()
        };
        assert_eq!(key_u64s(&k, 48, &f), 3 + 6);
    }

    #[test]
    fn split_rules() {
        // 32-sector (16 KiB) nodes hold (16384 - 160) / 8 = 2028 u64s.
        assert_eq!(max_u64s(32), 2028);
        assert!(!must_split(1521, 32));
        assert!(must_split(1522, 32));
        // Ten keys of 10 u64s: 3/5 of 100 is reached by the sixth.
        assert_eq!(split_at(&mut [10usize; 10].into_iter(), 100), 6);
        assert_eq!(split_at(&mut [1usize, 100].into_iter(), 101), 1);
        assert_eq!(split_at(&mut [100usize, 1].into_iter(), 101), 1);
        assert_eq!(split_at(&mut [5usize].into_iter(), 5), 1);
        let max = Bpos::new(10, 0, 0);
        let keys = [Bkey {
            p: Bpos::new(3, 4, 0),
            ..Default::default()
        }];
        let f = node_format(Bpos::MIN, max, &mut keys.iter());
        assert!(f.packed_fields(&keys[0]).is_some());
        assert!(fits_one_node(2027, 32) && !fits_one_node(2028, 32));
    }

    #[test]
    fn split_groups_cut_as_upstream_splits() {
        let pos = |i: usize| Bpos::new(1, i as u64, 0);
        let mut out = [SplitGroup::default(); 8];
        let mut stack = [SplitGroup::default(); 8];
        // Under the threshold: one node over the whole range.
        let n = split_groups(
            &[100; 8],
            &pos,
            Bpos::MIN,
            Bpos::MAX,
            32,
            &mut out,
            &mut stack,
        );
        assert_eq!(n, Some(1));
        assert_eq!(
            (out[0].lo, out[0].hi, out[0].first, out[0].end),
            (Bpos::MIN, Bpos::MAX, 0, 8)
        );
        // 8 keys of 200 u64s (1600 > 1521): the first half takes 3/5 (960 u64s:
        // 5 keys), ending at key 4; the second starts after it.
        let n = split_groups(
            &[200; 8],
            &pos,
            Bpos::MIN,
            Bpos::MAX,
            32,
            &mut out,
            &mut stack,
        );
        assert_eq!(n, Some(2));
        assert_eq!(
            (out[0].lo, out[0].hi, out[0].first, out[0].end),
            (Bpos::MIN, pos(4), 0, 5)
        );
        assert_eq!(
            (out[1].lo, out[1].hi, out[1].first, out[1].end),
            (pos(4).successor(), Bpos::MAX, 5, 8)
        );
        // Keys that need three nodes: halves split again, in key order.
        // 6 keys of 500: 4 (2000 u64s) then 2; the 4 again 3 and 1.
        let n = split_groups(
            &[500; 6],
            &pos,
            Bpos::MIN,
            Bpos::MAX,
            32,
            &mut out,
            &mut stack,
        );
        assert_eq!(n, Some(3));
        assert_eq!((out[0].end, out[1].end), (3, 4));
        assert!(out[..3]
            .windows(2)
            .all(|w| w[0].end == w[1].first && w[0].hi.successor() == w[1].lo));
        assert_eq!((out[0].first, out[2].end, out[2].hi), (0, 6, Bpos::MAX));
        // Room too short for the groups.
        assert_eq!(
            split_groups(
                &[500; 6],
                &pos,
                Bpos::MIN,
                Bpos::MAX,
                32,
                &mut out[..2],
                &mut stack
            ),
            None
        );
        // No keys: one empty node.
        assert_eq!(
            split_groups(&[], &pos, Bpos::MIN, Bpos::MAX, 32, &mut out, &mut stack),
            Some(1)
        );
    }
}
