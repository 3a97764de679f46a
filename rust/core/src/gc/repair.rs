// SPDX-License-Identifier: GPL-2.0
//! The repairs of gc findings that are one key's new value: the write twins of the
//! comparisons in [`super::buckets`] and [`super::accounting`]. The offline fsck
//! and the module's repair at mount both take their values from here.

use super::super::alloc::format::{write_accounting, AllocV4, Backpointer};
use super::super::bpos::Bpos;
use super::finding::{AllocField, Finding, Kind};

/// Sets the alloc field `f` names to its recounted value.
pub fn apply_field(a: &mut AllocV4, f: &Finding) {
    let w = f.want;
    match f.field {
        Some(AllocField::Gen) => a.gen = w as u8,
        Some(AllocField::DataType) => a.data_type = w as u8,
        Some(AllocField::DirtySectors) => a.dirty_sectors = w as u32,
        Some(AllocField::CachedSectors) => a.cached_sectors = w as u32,
        Some(AllocField::StripeRefcount) => a.stripe_refcount = w as u32,
        None => {}
    }
}

/// A gens pass's write (upstream's `bch2_alloc_write_oldest_gen`): alloc key `a`
/// with `oldest_gen` set to `target` and the data type the alloc trigger then gives
/// it (a bucket waiting for gc gens is free again once its gens are close).
pub fn with_oldest_gen(a: &AllocV4, target: u8) -> AllocV4 {
    let mut n = *a;
    n.oldest_gen = target;
    n.data_type = super::super::alloc::trigger::alloc_data_type(&n, a.data_type);
    n
}

/// The bversion of an accounting key a commit whose first journal entry is `seq`
/// writes: above every delta of that entry, so a replay over the new node skips the
/// journal's copy and one over the old node adds it.
pub fn accounting_version(seq: u64) -> u64 {
    (seq << 32) | 0xffff_ffff
}

/// The repair of accounting finding `f` with `n` counters: the recount as the node's
/// value into `node_v`, and the change as the journal's delta into `journal_v`
/// (each `n * 8` bytes). `None` when a buffer is short.
pub fn accounting_values(
    f: &Finding,
    n: usize,
    node_v: &mut [u8],
    journal_v: &mut [u8],
) -> Option<()> {
    let want = f.acct_want.get(..n)?;
    let got = f.acct_got.get(..n)?;
    write_accounting(node_v, want)?;
    let mut delta = [0i64; 3];
    for (d, (w, g)) in delta.iter_mut().zip(want.iter().zip(got)) {
        *d = w.wrapping_sub(*g);
    }
    write_accounting(journal_v, &delta[..n])?;
    Some(())
}

/// The pointer changes that repair a topology finding, as upstream's topology
/// repair (`bch2_btree_repair_topology_recurse`) makes them, all in the parent: at
/// level `parent` of the finding's btree. The nodes themselves are not rewritten: a
/// moved pointer says `BTREE_PTR_RANGE_UPDATED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyFix {
    /// An unreadable node (at `level`, range `min..=max`) dropped: its pointer at
    /// `max` deleted, with the backpointers that name it or a key below it
    /// ([`dropped_with_node`]).
    Drop {
        /// Level of the parent holding the pointer.
        parent: u8,
        /// Level of the node.
        level: u8,
        /// Start of the node's range.
        min: Bpos,
        /// End of the node's range (its pointer's position).
        max: Bpos,
    },
    /// The node whose pointer is at `at` starts at `min` (`set_node_min`); a node
    /// whose new start would lie past its end goes instead. With `scan`, the range
    /// `start..=end` is a gap that nodes a device scan finds may fill first (the
    /// node then starts after the last of them).
    SetMin {
        /// Level of the parent holding the pointer.
        parent: u8,
        /// The pointer's position (the node's max).
        at: Bpos,
        /// Where the node starts.
        min: Bpos,
        /// A gap a device scan may fill first.
        scan: Option<(Bpos, Bpos)>,
    },
    /// The parent's last child, whose pointer is at `last`, ends where the parent
    /// does, at `to` (`set_node_max`); with `scan`, nodes a device scan finds for
    /// `start..=end` may fill the parent's end first.
    SetMax {
        /// Level of the parent holding the pointer.
        parent: u8,
        /// The last child's pointer's position.
        last: Bpos,
        /// The parent's end, where the last child's pointer goes.
        to: Bpos,
        /// A gap a device scan may fill first.
        scan: Option<(Bpos, Bpos)>,
    },
}

/// Whether `f` is a topology finding of a btree (a node read error, a gap, an
/// overlap, a bad min or max key), whose repair [`topology_fix`] gives.
pub fn is_topology(f: &Finding) -> bool {
    matches!(
        f.kind,
        Kind::NodeReadError
            | Kind::GapBetweenNodes
            | Kind::OverlapBetweenNodes
            | Kind::BadMinKey
            | Kind::BadMaxKey
    ) && f.btree.is_some()
}

/// The repair of topology finding `f` (a node read error, a gap, an overlap, a
/// bad min or max key), or why there is none.
pub fn topology_fix(f: &Finding) -> Result<TopologyFix, &'static str> {
    if f.btree.is_none() {
        return Err("topology finding without its btree");
    }
    if f.level >= f.root_level {
        return Err("the root itself: needs a new root (not done yet)");
    }
    let parent = f.level + 1;
    let range = f.range.ok_or("no range");
    match (f.kind, f.node) {
        (Kind::NodeReadError, Some(n)) => Ok(TopologyFix::Drop {
            parent,
            level: f.level,
            min: n.min,
            max: n.max,
        }),
        // A first child that starts after its parent: it starts where the parent
        // does.
        (Kind::BadMinKey, Some(n)) if f.err.is_none() => Ok(TopologyFix::SetMin {
            parent,
            at: n.max,
            min: range?.0,
            scan: None,
        }),
        (Kind::GapBetweenNodes, Some(n)) => {
            let (start, end) = range?;
            Ok(TopologyFix::SetMin {
                parent,
                at: n.max,
                min: start,
                scan: Some((start, end)),
            })
        }
        (Kind::OverlapBetweenNodes, Some(n)) => Ok(TopologyFix::SetMin {
            parent,
            at: n.max,
            min: range?.1.successor(),
            scan: None,
        }),
        // The end of the parent: the last child's end moves to the parent's.
        (Kind::GapBetweenNodes, None) => {
            let (a, b) = range?;
            if a.predecessor() > b {
                return Err("children past their parent's end: not repaired yet");
            }
            Ok(TopologyFix::SetMax {
                parent,
                last: a.predecessor(),
                to: b,
                scan: Some((a, b)),
            })
        }
        (Kind::BadMaxKey, None) => {
            let (a, b) = range?;
            if b > a {
                return Err("children past their parent's end: not repaired yet");
            }
            Ok(TopologyFix::SetMax {
                parent,
                last: b,
                to: a,
                scan: None,
            })
        }
        _ => Err("topology repair not implemented for this case"),
    }
}

/// Whether backpointer `bp` goes with a node of `btree` at `level`, range
/// `min..=max`, dropped from its parent at level `level + 1`: the node's own
/// backpointer, or one of a key the node or a node below it held.
pub fn dropped_with_node(bp: &Backpointer, btree: u32, level: u8, min: Bpos, max: Bpos) -> bool {
    u32::from(bp.btree_id) == btree
        && ((bp.level == level.wrapping_add(1) && bp.pos == max)
            || (bp.level <= level && (min..=max).contains(&bp.pos)))
}

#[cfg(test)]
mod tests {
    use super::super::super::alloc::format::accounting_counter;
    use super::super::finding::NodeAt;
    use super::*;

    #[test]
    fn accounting_repair_is_recount_and_delta() {
        let mut f = Finding::new(Kind::AccountingMismatch);
        f.acct_got = [10, 7, 0];
        f.acct_want = [13, 5, 0];
        let (mut v, mut j) = ([0u8; 16], [0u8; 16]);
        accounting_values(&f, 2, &mut v, &mut j).unwrap();
        assert_eq!(
            (accounting_counter(&v, 0), accounting_counter(&v, 1)),
            (13, 5)
        );
        assert_eq!(
            (accounting_counter(&j, 0), accounting_counter(&j, 1)),
            (3, -2)
        );
        assert!(accounting_values(&f, 2, &mut [0u8; 8], &mut j).is_none());
        assert!(accounting_values(&f, 4, &mut v, &mut j).is_none());
        assert_eq!(accounting_version(5), (5 << 32) | 0xffff_ffff);
    }

    #[test]
    fn gens_write_frees_a_bucket_waiting_for_gc_gens() {
        use super::super::super::alloc::format::{DATA_FREE, DATA_NEED_GC_GENS};
        let a = AllocV4 {
            gen: 200,
            oldest_gen: 50,
            data_type: DATA_NEED_GC_GENS,
            ..Default::default()
        };
        let n = with_oldest_gen(&a, 200);
        assert_eq!((n.oldest_gen, n.data_type), (200, DATA_FREE));
        // Still too far apart: it keeps waiting.
        assert_eq!(with_oldest_gen(&a, 60).data_type, DATA_NEED_GC_GENS);
    }

    #[test]
    fn field_set_to_recount() {
        let mut f = Finding::new(Kind::AllocKeyWrong);
        f.field = Some(AllocField::DirtySectors);
        f.want = 96;
        let mut a = AllocV4::default();
        apply_field(&mut a, &f);
        assert_eq!(a.dirty_sectors, 96);
    }

    fn topo(kind: Kind, node: Option<(Bpos, Bpos)>, range: Option<(Bpos, Bpos)>) -> Finding {
        let mut f = Finding::new(kind);
        f.btree = Some(1);
        f.level = 0;
        f.root_level = 1;
        f.node = node.map(|(min, max)| NodeAt {
            min,
            max,
            ..NodeAt::default()
        });
        f.range = range;
        f
    }

    #[test]
    fn topology_fixes_are_upstreams() {
        let p = |o: u64| Bpos::new(1, o, 0);
        // An unreadable node goes from its parent.
        let f = topo(Kind::NodeReadError, Some((p(10), p(19))), None);
        assert_eq!(
            topology_fix(&f),
            Ok(TopologyFix::Drop {
                parent: 1,
                level: 0,
                min: p(10),
                max: p(19)
            })
        );
        // A gap before a node: it starts at the gap's start, after what a scan
        // may put back.
        let f = topo(
            Kind::GapBetweenNodes,
            Some((p(20), p(29))),
            Some((p(10), p(19))),
        );
        assert_eq!(
            topology_fix(&f),
            Ok(TopologyFix::SetMin {
                parent: 1,
                at: p(29),
                min: p(10),
                scan: Some((p(10), p(19)))
            })
        );
        // Overlapped: it starts after its predecessor.
        let f = topo(
            Kind::OverlapBetweenNodes,
            Some((p(15), p(29))),
            Some((p(15), p(19))),
        );
        assert_eq!(
            topology_fix(&f),
            Ok(TopologyFix::SetMin {
                parent: 1,
                at: p(29),
                min: p(19).successor(),
                scan: None
            })
        );
        // The parent's end missing: the last child reaches it.
        let f = topo(Kind::GapBetweenNodes, None, Some((p(30), p(39))));
        assert_eq!(
            topology_fix(&f),
            Ok(TopologyFix::SetMax {
                parent: 1,
                last: p(30).predecessor(),
                to: p(39),
                scan: Some((p(30), p(39)))
            })
        );
        // A last child that ends short of its parent's end (a bad max) is
        // stretched to it; one that ends past it is refused.
        let f = topo(Kind::BadMaxKey, None, Some((p(39), p(29))));
        assert_eq!(
            topology_fix(&f),
            Ok(TopologyFix::SetMax {
                parent: 1,
                last: p(29),
                to: p(39),
                scan: None
            })
        );
        let f = topo(Kind::BadMaxKey, None, Some((p(29), p(39))));
        assert!(topology_fix(&f).is_err());
        // The root has no parent to repair it in.
        let mut f = topo(Kind::NodeReadError, Some((p(10), p(19))), None);
        f.level = 1;
        assert!(topology_fix(&f).is_err());
        // Not a topology finding.
        assert!(topology_fix(&topo(Kind::AccountingMismatch, None, None)).is_err());
    }

    #[test]
    fn backpointers_go_with_a_dropped_node() {
        let bp = |btree_id: u8, level: u8, pos: Bpos| Backpointer {
            btree_id,
            level,
            pos,
            ..Backpointer::default()
        };
        let (min, max) = (Bpos::new(1, 10, 0), Bpos::new(1, 19, 0));
        // Its own, held by the parent at its max.
        assert!(dropped_with_node(&bp(1, 1, max), 1, 0, min, max));
        // A key it held.
        assert!(dropped_with_node(
            &bp(1, 0, Bpos::new(1, 12, 0)),
            1,
            0,
            min,
            max
        ));
        // Another btree's, another node's, a sibling's pointer.
        assert!(!dropped_with_node(
            &bp(2, 0, Bpos::new(1, 12, 0)),
            1,
            0,
            min,
            max
        ));
        assert!(!dropped_with_node(
            &bp(1, 0, Bpos::new(1, 20, 0)),
            1,
            0,
            min,
            max
        ));
        assert!(!dropped_with_node(
            &bp(1, 1, Bpos::new(1, 12, 0)),
            1,
            0,
            min,
            max
        ));
    }
}
