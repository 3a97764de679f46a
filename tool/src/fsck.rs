// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs fsck [-n|-y] [-v] DEVICE...`: the gc checks, and with `-y` their
//! repairs written to the image ([`crate::repair`]). Exit codes are upstream's:
//! 0 clean, 1 errors fixed, 4 errors left uncorrected (OR'ed), 8 operational error.

use std::collections::BTreeMap;
use std::io::Write;

use bcachefs_core::alloc::format::{accounting_nr_counters, AllocV4, Backpointer, BUCKET_GENS_NR};
use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::gc::finding::{Finding, Kind};
use bcachefs_core::ids::{self, KeyType};

use crate::check::check;
use crate::fs::Fs;
use crate::list::Walk;
use crate::repair::{
    commit, leaf_key, next_journal_seq, node_key, FileSink, SbChanges, Sink, Update,
};
use crate::update::{punch_freespace, Txn};
use bcachefs_core::alloc::buckets::bucket_backpointers;
use bcachefs_core::alloc::format::DATA_BTREE;
use bcachefs_core::alloc::trigger::derived_changes;
use bcachefs_core::btree::ptr::{set_min_key, set_range_updated};
use bcachefs_core::btree::ptr::{BtreePtr, ExtentPtr};
use bcachefs_core::btree::scan::{cover_gap, put_back_value, Found, Piece};
use bcachefs_core::data::extents_format::set_ptr_gens;
use bcachefs_core::gc::repair::{
    accounting_values, accounting_version, apply_field, dropped_with_node, is_topology,
    topology_fix as topology_rule, TopologyFix,
};
use bcachefs_core::gc::{sb_wants_bitmap_gc, PASS_BTREE_BITMAP_GC};
use bcachefs_core::journal::keys::AcctView;

/// Exit code bits.
pub const FIXED: u8 = 1;
pub const LEFT: u8 = 4;
pub const OPERATIONAL: u8 = 8;

/// What a finding's repair is, or why it is not made.
#[derive(Clone, Copy)]
enum Plan {
    /// An alloc key field set to the recount's value.
    AllocField { dev: u32, bucket: u64 },
    /// An alloc key's `oldest_gen` lowered to its oldest pointer's gen (what a
    /// gens pass would leave).
    OldestGen { dev: u32, bucket: u64 },
    /// The members' btree bitmaps rebuilt (`btree_bitmap_gc`).
    Bitmap,
    /// An accounting key set to the recount.
    Accounting,
    /// A dirty pointer's gen set to its bucket's (`bch2_check_fix_ptrs`: the data
    /// is trusted over a stale or future gen).
    PtrGen,
    /// A bucket's gen in its `bucket_gens` key set to the alloc key's.
    BucketGen { dev: u32, bucket: u64 },
    /// Counts that could not be compared: recounted in the next round, once this
    /// round's repairs make every node readable.
    Recount,
    /// Topology (upstream's `bch2_btree_repair_topology_recurse`): an unreadable
    /// node dropped from its parent, a node's range moved through its pointer
    /// (`set_node_min`, `set_node_max`: `BTREE_PTR_RANGE_UPDATED`).
    Topology,
    /// A node read with a bad checksum or bad keys, rewritten whole to new space
    /// from the keys that read well (upstream's "rewriting node").
    Rewrite,
    /// Not repaired, and why.
    No(&'static str),
}

/// The repair of `f`.
fn plan(f: &Finding) -> Plan {
    match (f.kind, f.bucket, f.field) {
        (Kind::AllocKeyWrong, Some((dev, bucket)), Some(_)) => Plan::AllocField { dev, bucket },
        (Kind::AllocKeyWrong, _, _) => Plan::No("alloc finding without a bucket"),
        (Kind::OldestGenTooNew, Some((dev, bucket)), _) => Plan::OldestGen { dev, bucket },
        (Kind::BtreeBitmapGc | Kind::BtreeBitmapNotMarked, _, _) => Plan::Bitmap,
        (Kind::AccountingMismatch, _, _) if f.acct.is_some() => Plan::Accounting,
        (Kind::BucketGensKeyWrong, Some((dev, bucket)), _) => Plan::BucketGen { dev, bucket },
        (Kind::CheckAllocationsIncomplete, _, _) => Plan::Recount,
        _ if is_topology(f) => Plan::Topology,
        (Kind::StaleDirtyPtr | Kind::PtrGenNewerThanBucketGen, Some(_), _)
            if f.level == 0 && f.pos.is_some() =>
        {
            Plan::PtrGen
        }
        (Kind::NodeBadChecksum | Kind::NodeBadKeys | Kind::NodeDataMissing, _, _)
            if f.btree.is_some() && f.node.is_some() =>
        {
            Plan::Rewrite
        }
        _ => Plan::No("repair not implemented yet"),
    }
}

/// The superblock side of a `btree_bitmap_gc` pass: each member's bitmap as the
/// nodes found need it, and the pass's request cleared. `Err` says why nothing
/// can be done.
fn bitmap_changes(fs: &Fs, r: &crate::check::Report) -> Result<SbChanges, &'static str> {
    let mut c = SbChanges::default();
    for &(dev, _, bitmap, after) in &r.bitmaps {
        match after {
            Some(a) if a != bitmap => c.bitmaps.push((dev, a)),
            Some(_) => {}
            None => return Err("a node lies past what the bitmap's shift can mark: growing the shift is not done yet"),
        }
    }
    if sb_wants_bitmap_gc(&fs.sb()) {
        c.passes_done |= 1u64 << PASS_BTREE_BITMAP_GC;
    }
    if c.is_empty() {
        return Err("the bitmap marks only what the btree uses: its granularity cannot shrink");
    }
    Ok(c)
}

/// The accounting key `f` (a mismatch) should be: the recount, with a bversion
/// newer than the key's (`version`, from the journal seq the repair writes), and
/// its journal copy the delta from what is there.
fn accounting_update(
    f: &Finding,
    keys: &BTreeMap<Bpos, (Bkey, Vec<u8>)>,
    version: u64,
) -> Result<Update, &'static str> {
    let (p, n) = f.acct.ok_or("no accounting key")?;
    let n = usize::from(n);
    let at = p.to_bpos();
    let k = match keys.get(&at) {
        Some((k, v)) if accounting_nr_counters(v) == n => *k,
        Some(_) => return Err("accounting key with more counters than gc recounts"),
        None => Bkey {
            typ: KeyType::Accounting as u8,
            p: at,
            ..Default::default()
        },
    };
    if version == 0 {
        return Err("no journal to version the key from");
    }
    let k = Bkey {
        version_hi: 0,
        version_lo: version.max(k.version_lo),
        ..k
    };
    let (mut v, mut jv) = (vec![0u8; n * 8], vec![0u8; n * 8]);
    accounting_values(f, n, &mut v, &mut jv).ok_or("accounting value")?;
    Ok(Update {
        btree: ids::btree::ACCOUNTING,
        level: 0,
        k,
        v,
        journal_v: Some(jv),
    })
}

/// Adds to `keys` the fix of the pointer finding `f`: in the key at `f.pos`, the
/// dirty pointers into `f.bucket` with gen `f.ptr_gen` get the bucket's gen.
fn ptr_gen_fix(
    fs: &Fs,
    f: &Finding,
    keys: &mut BTreeMap<(u32, Bpos), (Bkey, Vec<u8>)>,
    bps: &mut Option<Vec<(Bkey, Vec<u8>)>>,
) -> Result<(), &'static str> {
    let (btree, pos, (dev, bucket)) = match (f.btree, f.pos, f.bucket) {
        (Some(b), Some(p), Some(d)) => (b, p, d),
        _ => return Err("pointer finding without its key"),
    };
    let bucket_size = u64::from(
        fs.sb()
            .member(dev as usize)
            .ok_or("no member")?
            .bucket_size(),
    );
    if let std::collections::btree_map::Entry::Vacant(e) = keys.entry((btree, pos)) {
        e.insert(leaf_key(fs, btree, pos).ok_or("the key is not readable")?);
    }
    let (k, v) = keys.get_mut(&(btree, pos)).ok_or("the key")?;
    let n = set_ptr_gens(k.typ, v, &mut |p| {
        (p.dev as u32 == dev
            && !p.cached
            && p.offset / bucket_size.max(1) == bucket
            && p.gen == f.ptr_gen)
            .then_some(f.gen)
    });
    if n == 0 {
        return Err("no such pointer in the key");
    }
    // The backpointers of those pointers name the bucket's gen too (upstream's
    // check_extents_to_backpointers fixes them after the pointers).
    let shift = fs.sb().extent_bp_shift_or_default();
    let (from, to) = bucket_backpointers(dev, bucket, bucket_size, shift)
        .ok_or("bucket past what backpointers can name")?;
    for (bk, bv) in backpointers(fs, bps) {
        if !(from..=to).contains(&bk.p) {
            continue;
        }
        let bp = Backpointer::read(bv);
        if bp.btree_id as u32 == btree
            && bp.level == f.level
            && bp.pos == pos
            && bp.bucket_gen == f.ptr_gen
        {
            let mut bv = bv.clone();
            Backpointer {
                bucket_gen: f.gen,
                ..bp
            }
            .write(&mut bv)
            .ok_or("short backpointer")?;
            keys.insert((ids::btree::BACKPOINTERS, bk.p), (*bk, bv));
        }
    }
    Ok(())
}

/// Every backpointer key, read once per round (`cache`) for the repairs that
/// need theirs.
fn backpointers<'c>(fs: &Fs, cache: &'c mut Option<Vec<(Bkey, Vec<u8>)>>) -> &'c [(Bkey, Vec<u8>)] {
    cache.get_or_insert_with(|| {
        let mut v = Vec::new();
        let mut w = Walk { fs, errors: 0 };
        w.leaf_keys(ids::btree::BACKPOINTERS, &mut |k| {
            if k.k.typ == KeyType::Backpointer as u8 {
                v.push((k.k, k.v.clone()));
            }
        });
        v
    })
}

/// A whiteout for the key at `p` (`bch2_journal_key_delete`).
fn deleted(p: Bpos) -> (Bkey, Vec<u8>) {
    (
        Bkey {
            typ: KeyType::Deleted as u8,
            p,
            ..Default::default()
        },
        Vec::new(),
    )
}

/// Adds to `keys` (by btree, level of the node holding the key, position) the
/// pointer updates that repair the topology finding `f`, as upstream's topology
/// repair makes them: an unreadable child is dropped from its parent; a gap is
/// closed by moving the next node's start back to where it should begin
/// (`set_node_min`), or at the end of the parent by moving the last child's end
/// to the parent's (`set_node_max`); a node overlapped by its predecessor starts
/// after it (`set_node_min`), or is dropped when wholly covered. The nodes are not
/// rewritten: their pointers say `BTREE_PTR_RANGE_UPDATED`.
fn topology_fix(
    fs: &Fs,
    f: &Finding,
    keys: &mut BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)>,
    bps: &mut Option<Vec<(Bkey, Vec<u8>)>>,
    scanned: &mut Option<Vec<Found>>,
) -> Result<(), &'static str> {
    let btree = f.btree.ok_or("no btree")?;
    let fix = topology_rule(f)?;
    let get = |keys: &mut BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)>, parent: u8, p: Bpos| {
        if let Some(kv) = keys.get(&(btree, parent, p)) {
            return Some(kv.clone());
        }
        node_key(fs, btree, parent, p)
    };
    match fix {
        TopologyFix::Drop {
            parent,
            level,
            min,
            max,
        } => {
            keys.insert((btree, parent, max), deleted(max));
            // What the pointer trigger would undo: the node's backpointer, and
            // those of the keys it held (upstream's backpointer checks drop them
            // after the node goes).
            for (k, v) in backpointers(fs, bps) {
                if dropped_with_node(&Backpointer::read(v), btree, level, min, max) {
                    keys.insert((ids::btree::BACKPOINTERS, 0, k.p), deleted(k.p));
                }
            }
            Ok(())
        }
        TopologyFix::SetMin {
            parent,
            at,
            min,
            scan,
        } => {
            let want = match scan {
                // Nodes the scan finds for the gap go back first; the next node
                // then starts after the last of them.
                Some((start, end)) => {
                    match put_back_scanned(fs, btree, f.level, start, end, keys, bps, scanned)? {
                        Some(last) if last == end => return Ok(()),
                        Some(last) => last.successor(),
                        None => min,
                    }
                }
                None => min,
            };
            if want > at {
                keys.insert((btree, parent, at), deleted(at));
                return Ok(());
            }
            let (k, mut v) = get(keys, parent, at).ok_or("the node's pointer is not readable")?;
            if k.typ != KeyType::BtreePtrV2 as u8 {
                return Err("a btree_ptr (v1) pointer: needs a rewrite (not done yet)");
            }
            set_min_key(&mut v, want).ok_or("short pointer")?;
            keys.insert((btree, parent, k.p), (k, v));
            Ok(())
        }
        TopologyFix::SetMax {
            parent,
            last,
            to,
            scan,
        } => {
            // Found nodes over the parent's missing end: the last of them reaches
            // to the parent's end.
            if let Some((a, b)) = scan {
                if let Some(l) = put_back_scanned(fs, btree, f.level, a, b, keys, bps, scanned)? {
                    if l != b {
                        let (k, mut v) = keys
                            .remove(&(btree, parent, l))
                            .ok_or("scanned node's pointer")?;
                        set_range_updated(&mut v).ok_or("short pointer")?;
                        keys.insert((btree, parent, b), (Bkey { p: b, ..k }, v));
                    }
                    return Ok(());
                }
            }
            let (k, mut v) =
                get(keys, parent, last).ok_or("the last child's pointer is not readable")?;
            if k.typ != KeyType::BtreePtrV2 as u8 {
                return Err("a btree_ptr (v1) pointer: needs a rewrite (not done yet)");
            }
            set_range_updated(&mut v).ok_or("short pointer")?;
            keys.insert((btree, parent, last), deleted(last));
            let k = Bkey { p: to, ..k };
            keys.insert((btree, parent, to), (k, v));
            Ok(())
        }
    }
}

/// Puts back into the parent (at `level + 1` of `btree`) the nodes the device
/// scan finds for the missing range `start..=end` of `level` (upstream's topology
/// repair from scanned nodes): the newest first, each in one piece, laid end to
/// end from `start` (the core's `cover_gap`). Only leaves are put back, as
/// upstream does, and only a node the backpointers btree still names at that
/// place, i.e. one the allocation info still counts as live: an older copy of a
/// range, left behind by a rewrite in a bucket since reused, would bring back
/// keys the filesystem has since changed or deleted. Returns where the last
/// piece ends, or `None` when nothing was found.
#[allow(clippy::too_many_arguments)]
fn put_back_scanned(
    fs: &Fs,
    btree: u32,
    level: u8,
    start: Bpos,
    end: Bpos,
    keys: &mut BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)>,
    bps: &mut Option<Vec<(Bkey, Vec<u8>)>>,
    scanned: &mut Option<Vec<Found>>,
) -> Result<Option<Bpos>, &'static str> {
    if level != 0 {
        return Ok(None);
    }
    let found = scanned.get_or_insert_with(|| crate::scan::scan(fs));
    let shift = fs.sb().extent_bp_shift_or_default();
    let live: BTreeMap<Bpos, Backpointer> = backpointers(fs, bps)
        .iter()
        .map(|(k, v)| (k.p, Backpointer::read(v)))
        .collect();
    let named = |c: &Found| {
        live.get(&Bpos::new(u64::from(c.dev), c.offset << shift, 0))
            .is_some_and(|bp| {
                u32::from(bp.btree_id) == btree
                    && bp.level == level + 1
                    && bp.data_type == DATA_BTREE
                    && bp.pos == c.max
            })
    };
    // Nodes the tree still points to are not lost: their seqs, at this level,
    // less the pointers this repair drops.
    let mut reachable = std::collections::BTreeSet::new();
    if let Some(root) = fs.roots.get(btree as usize).and_then(|r| r.clone()) {
        let mut w = Walk { fs, errors: 0 };
        let mut cb = |w: &mut Walk<'_>, l: u8, k: &Bkey, v: &[u8]| {
            if l == level + 1 {
                for c in w.node_keys(btree, l, k, v) {
                    let dropped = keys
                        .get(&(btree, l, c.k.p))
                        .is_some_and(|(k, _)| k.typ == KeyType::Deleted as u8);
                    if let (Some(bp), false) = (BtreePtr::decode(c.k.typ, &c.v), dropped) {
                        reachable.insert(bp.seq);
                    }
                }
            }
        };
        w.nodes(btree, root.level, &root.k, &root.v, level + 1, &mut cb);
    }
    // One candidate per node (its first replica found); the others join its
    // pointer.
    let mut cands: Vec<Found> = Vec::new();
    for c in found
        .iter()
        .filter(|c| c.btree == btree && c.level == level && named(c) && !reachable.contains(&c.seq))
    {
        if !cands.iter().any(|x| x.seq == c.seq) {
            cands.push(*c);
        }
    }
    let mut considered = vec![false; cands.len()];
    let mut pieces = vec![Piece::default(); cands.len()];
    let n = cover_gap(&cands, start, end, &mut considered, &mut pieces);
    if n == 0 {
        return Ok(None);
    }
    let mut last = start;
    for p in &pieces[..n] {
        let c = &cands[p.node];
        let mut ptrs = Vec::new();
        for r in found.iter().filter(|r| r.seq == c.seq && named(r)) {
            let bs = u64::from(
                fs.sb()
                    .member(r.dev as usize)
                    .ok_or("no member")?
                    .bucket_size(),
            )
            .max(1);
            let at = Bpos::new(u64::from(r.dev), r.offset / bs, 0);
            let gen = leaf_key(fs, ids::btree::ALLOC, at)
                .and_then(|(k, v)| AllocV4::from_key(k.typ, &v))
                .map(|a| a.gen)
                .unwrap_or(0);
            ptrs.push(ExtentPtr {
                dev: r.dev,
                offset: r.offset,
                gen,
                cached: false,
                unwritten: false,
            });
        }
        let mut v = vec![0u8; 40 + ptrs.len() * 8];
        put_back_value(c, p, &ptrs, &mut v).ok_or("node too big")?;
        let k = Bkey {
            typ: KeyType::BtreePtrV2 as u8,
            p: p.max,
            ..Default::default()
        };
        keys.insert((btree, level + 1, p.max), (k, v));
        last = p.max;
    }
    Ok(Some(last))
}

/// The backpointers of keys a node held that its read dropped (keys that failed
/// validation): deleted with the node's rewrite, which leaves those keys out, as
/// upstream's backpointer check deletes a backpointer to a missing key. A
/// backpointer names a key of `btree` held at `level` in `min..=max` that the node
/// read no longer has.
fn dropped_keys_backpointers(
    fs: &Fs,
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    keys: &mut BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)>,
    bps: &mut Option<Vec<(Bkey, Vec<u8>)>>,
) {
    let Ok(path) = crate::repair::path_to(fs, btree, max, level) else {
        return;
    };
    let Some((_, k, v)) = path.last() else {
        return;
    };
    let Ok(nr) = fs.read_node(btree, level, k, v) else {
        return;
    };
    let held: std::collections::BTreeSet<Bpos> =
        crate::list::merged_keys(fs, btree, level, &nr, AcctView::Listing)
            .0
            .into_iter()
            .filter(|x| x.k.typ != KeyType::Deleted as u8)
            .map(|x| x.k.p)
            .collect();
    for (bk, bv) in backpointers(fs, bps) {
        let bp = Backpointer::read(bv);
        if u32::from(bp.btree_id) == btree
            && bp.level == level
            && (min..=max).contains(&bp.pos)
            && !held.contains(&bp.pos)
        {
            keys.insert((ids::btree::BACKPOINTERS, 0, bk.p), deleted(bk.p));
        }
    }
}

/// Runs fsck on `paths`; `fix` writes the repairs. Returns the exit code.
///
/// Repairs go in rounds, as upstream's gc fixes pointers while it marks: when a
/// pass finds pointers to fix, that round fixes them (and what does not depend on
/// the counts) and a new pass recounts before alloc keys and accounting are
/// repaired, so they are set from the fixed pointers.
pub fn run(paths: &[String], fix: bool, verbose: bool, out: &mut dyn Write) -> u8 {
    let mut fs = match Fs::open(paths) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "bcachefs-rs fsck: {}", e);
            return OPERATIONAL;
        }
    };
    let mut r = check(&fs);
    if r.findings.is_empty() {
        if verbose {
            let _ = writeln!(out, "no errors found");
        }
        return 0;
    }
    if !fix {
        for l in &r.lines {
            let _ = writeln!(out, "{}", l);
        }
        // Lines that are messages upstream (an oversized bitmap that cannot
        // shrink) leave nothing to repair.
        let only_info = r.findings.iter().all(|f| {
            f.kind == Kind::BtreeBitmapGc && f.got >= 0 && bitmap_changes(&fs, &r).is_err()
        });
        return if only_info { 0 } else { LEFT };
    }
    // Plan round by round, each on top of the last (staged in memory), then
    // write everything in one commit.
    let mut lines: Vec<(String, Outcome)> = Vec::new();
    let mut printed: std::collections::BTreeSet<String> = Default::default();
    let mut all: BTreeMap<(u32, u8, Bpos), Update> = BTreeMap::new();
    let mut rewrites: std::collections::BTreeSet<(u32, u8, Bpos)> = Default::default();
    let mut changes = SbChanges::default();
    for round in 0..ROUNDS {
        let p = plan_round(&fs, &r);
        for (l, o) in p.lines {
            // Counts wait for the next round's recount; a line is printed once.
            if !matches!(o, Outcome::Deferred) && printed.insert(l.clone()) {
                lines.push((l, o));
            }
        }
        let staged: Vec<(u32, u8, Bkey, Vec<u8>)> = p
            .updates
            .iter()
            .map(|u| {
                (
                    u.btree,
                    u.level,
                    u.k,
                    u.journal_v.clone().unwrap_or_else(|| u.v.clone()),
                )
            })
            .collect();
        for u in p.updates {
            all.insert((u.btree, u.level, u.k.p), u);
        }
        rewrites.extend(p.rewrites);
        changes.bitmaps = if p.changes.bitmaps.is_empty() {
            changes.bitmaps
        } else {
            p.changes.bitmaps
        };
        changes.passes_done |= p.changes.passes_done;
        if !p.again || round + 1 == ROUNDS {
            break;
        }
        fs.stage(&staged);
        r = check(&fs);
        if r.findings.is_empty() {
            break;
        }
    }
    let updates: Vec<Update> = all.into_values().collect();
    let rewrites: Vec<(u32, u8, Bpos)> = rewrites.into_iter().collect();
    let written = if updates.is_empty() && rewrites.is_empty() && changes.is_empty() {
        Ok((Default::default(), 0))
    } else {
        // The image as it is on disk, not as staged.
        Fs::open(paths).and_then(|fs| {
            let mut sink = FileSink::open(&fs, paths)?;
            let txn = Txn {
                updates,
                rewrite: rewrites,
                acct: Vec::new(),
            };
            let r = commit(&fs, &txn, &changes, &mut sink);
            let _ = sink.flush();
            r.map(|n| (n, sink.writes))
        })
    };
    let mut code = 0u8;
    for (l, o) in &lines {
        match o {
            Outcome::Fixing if written.is_ok() => {
                let _ = writeln!(out, "{}, fixing", l);
                code |= FIXED;
            }
            Outcome::Info(why) => {
                let _ = writeln!(out, "{} (nothing to do: {})", l, why);
            }
            Outcome::Left(why) => {
                let _ = writeln!(out, "{} (not repaired: {})", l, why);
                code |= LEFT;
            }
            _ => {
                let _ = writeln!(out, "{} (not repaired: write failed)", l);
                code |= LEFT;
            }
        }
    }
    match written {
        Ok((n, w)) if verbose => {
            let _ = writeln!(
                out,
                "{} btree nodes appended to, {} rewritten, {} split, {} new roots; {} writes",
                n.appended, n.rewritten, n.split, n.new_roots, w
            );
        }
        Err(e) => {
            let _ = writeln!(out, "bcachefs-rs fsck: {}", e);
            code |= OPERATIONAL;
        }
        _ => {}
    }
    code
}

/// What became of a finding.
enum Outcome {
    /// Repaired by the commit.
    Fixing,
    /// Waits for the next round's recount.
    Deferred,
    /// A message, nothing to repair.
    Info(&'static str),
    /// Not repaired, and why.
    Left(&'static str),
}

/// One round's plan.
struct RoundPlan {
    lines: Vec<(String, Outcome)>,
    updates: Vec<Update>,
    /// Nodes to rewrite: (btree, level, max key).
    rewrites: Vec<(u32, u8, Bpos)>,
    changes: SbChanges,
    /// Counts were deferred: plan again over this round's repairs.
    again: bool,
}

/// Most repair rounds: pointers, then counts; a third would mean a repair that
/// did not hold.
const ROUNDS: usize = 3;

/// One round: a repair planned for each finding of `r` (nothing written).
fn plan_round(fs: &Fs, r: &crate::check::Report) -> RoundPlan {
    // Pointers first: counts wait for a recount over the fixed pointers.
    let defer = r
        .findings
        .iter()
        .any(|f| matches!(plan(f), Plan::PtrGen | Plan::Topology));
    // The alloc keys the repairs start from: the current ones, by bucket.
    let mut alloc: BTreeMap<(u32, u64), (bcachefs_core::bkey::Bkey, Vec<u8>)> = BTreeMap::new();
    let wants_alloc = r
        .findings
        .iter()
        .any(|f| matches!(plan(f), Plan::AllocField { .. } | Plan::OldestGen { .. }));
    if wants_alloc {
        let mut w = Walk { fs, errors: 0 };
        w.leaf_keys(ids::btree::ALLOC, &mut |k| {
            alloc.insert((k.k.p.inode as u32, k.k.p.offset), (k.k, k.v.clone()));
        });
    }
    let mut changed: BTreeMap<(u32, u64), (bcachefs_core::bkey::Bkey, AllocV4)> = BTreeMap::new();
    let mut fixing = vec![false; r.findings.len()];
    let mut why: Vec<&'static str> = vec![""; r.findings.len()];
    // Lines that report without asking for a repair (upstream logs them and
    // exits 0).
    let mut info = vec![false; r.findings.len()];
    let mut changes = SbChanges::default();
    let mut updates: Vec<Update> = Vec::new();
    // Accounting: the keys as they are, by position.
    let mut acct: BTreeMap<Bpos, (Bkey, Vec<u8>)> = BTreeMap::new();
    if r.findings
        .iter()
        .any(|f| matches!(plan(f), Plan::Accounting))
    {
        let mut w = Walk { fs, errors: 0 };
        w.leaf_keys(ids::btree::ACCOUNTING, &mut |k| {
            acct.insert(k.k.p, (k.k, k.v.clone()));
        });
    }
    let acct_version = match next_journal_seq(fs) {
        Ok(seq) => accounting_version(seq),
        Err(_) => 0,
    };
    // Pointer fixes, by key: the key as it is, then each pointer's new gen.
    let mut ptr_keys: BTreeMap<(u32, Bpos), (Bkey, Vec<u8>)> = BTreeMap::new();
    let mut deferred = vec![false; r.findings.len()];
    let mut gens_keys: BTreeMap<Bpos, (Bkey, Vec<u8>)> = BTreeMap::new();
    let mut topo: BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)> = BTreeMap::new();
    // Every backpointer, read once when a repair needs some of them.
    let mut bps: Option<Vec<(Bkey, Vec<u8>)>> = None;
    // The devices scanned for lost nodes, once, when a gap needs them.
    let mut scanned: Option<Vec<Found>> = None;
    let mut rewrites = Vec::new();
    for (i, f) in r.findings.iter().enumerate() {
        match plan(f) {
            Plan::AllocField { .. } | Plan::OldestGen { .. } | Plan::Accounting if defer => {
                deferred[i] = true
            }
            Plan::Recount if defer => fixing[i] = true,
            Plan::Recount => why[i] = "unreadable nodes that no repair here drops",
            Plan::Topology => match topology_fix(fs, f, &mut topo, &mut bps, &mut scanned) {
                Ok(()) => fixing[i] = true,
                Err(w) => why[i] = w,
            },
            Plan::PtrGen => match ptr_gen_fix(fs, f, &mut ptr_keys, &mut bps) {
                Ok(()) => fixing[i] = true,
                Err(w) => why[i] = w,
            },
            Plan::BucketGen { dev, bucket } => {
                let at = Bpos::new(u64::from(dev), bucket / BUCKET_GENS_NR as u64, 0);
                let e = gens_keys.entry(at).or_insert_with(|| {
                    match leaf_key(fs, ids::btree::BUCKET_GENS, at) {
                        Some(kv) => kv,
                        None => (
                            Bkey {
                                typ: KeyType::BucketGens as u8,
                                p: at,
                                ..Default::default()
                            },
                            vec![0u8; BUCKET_GENS_NR],
                        ),
                    }
                });
                match e.1.get_mut((bucket % BUCKET_GENS_NR as u64) as usize) {
                    Some(g) => {
                        *g = f.want as u8;
                        fixing[i] = true;
                    }
                    None => why[i] = "bucket_gens key too short",
                }
            }
            Plan::Accounting => match accounting_update(f, &acct, acct_version) {
                Ok(u) => {
                    updates.push(u);
                    fixing[i] = true;
                }
                Err(w) => why[i] = w,
            },
            Plan::Bitmap => match bitmap_changes(fs, r) {
                Ok(c) => {
                    changes = c;
                    fixing[i] = true;
                }
                Err(w) => {
                    why[i] = w;
                    // An oversized bitmap nobody asked to shrink is a message.
                    info[i] = f.kind == Kind::BtreeBitmapGc && f.got >= 0;
                }
            },
            Plan::AllocField { dev, bucket } | Plan::OldestGen { dev, bucket } => {
                match alloc.get(&(dev, bucket)) {
                    Some((k, v)) if k.typ == KeyType::AllocV4 as u8 => {
                        let e = changed
                            .entry((dev, bucket))
                            .or_insert_with(|| (*k, AllocV4::read(v)));
                        if f.kind == Kind::OldestGenTooNew {
                            e.1.oldest_gen = f.ptr_gen;
                        } else {
                            apply_field(&mut e.1, f);
                        }
                        fixing[i] = true;
                    }
                    Some(_) => why[i] = "alloc key older than alloc_v4: not rewritten yet",
                    None => why[i] = "no alloc key for the bucket",
                }
            }
            Plan::Rewrite => match (f.btree, f.node) {
                (Some(b), Some(n)) => {
                    rewrites.push((b, f.level, n.max));
                    dropped_keys_backpointers(fs, b, f.level, n.min, n.max, &mut topo, &mut bps);
                    fixing[i] = true;
                }
                _ => why[i] = "no node to rewrite",
            },
            Plan::No(w) => why[i] = w,
        }
    }
    // The keys derived from each changed alloc key follow it, as the alloc
    // trigger would move them.
    let mut holes: Vec<(u32, u64)> = Vec::new();
    for (&(dev, bucket), (_, a)) in &changed {
        let old = AllocV4::read(&alloc[&(dev, bucket)].1);
        let bucket_size = fs
            .sb()
            .member(dev as usize)
            .map(|m| m.bucket_size())
            .unwrap_or(0);
        derived_changes(dev, bucket, bucket_size, &old, a, &mut |d| {
            // A bucket leaving the freespace btree is cut out of the extent that
            // holds it.
            if d.btree == ids::btree::FREESPACE && !d.set {
                holes.push((dev, d.pos.offset.saturating_sub(1)));
                return;
            }
            updates.push(Update {
                btree: d.btree,
                level: 0,
                k: Bkey {
                    typ: if d.set {
                        KeyType::Set as u8
                    } else {
                        KeyType::Deleted as u8
                    },
                    p: d.pos,
                    size: d.size,
                    ..Default::default()
                },
                v: Vec::new(),
                journal_v: None,
            })
        });
    }
    updates.extend(punch_freespace(fs, &holes));
    updates.extend(changed.into_iter().map(|((dev, bucket), (k, a))| {
        let mut v = alloc[&(dev, bucket)].1.clone();
        a.write(&mut v);
        Update {
            btree: ids::btree::ALLOC,
            level: 0,
            k: bcachefs_core::bkey::Bkey {
                p: Bpos::new(u64::from(dev), bucket, 0),
                ..k
            },
            v,
            journal_v: None,
        }
    }));
    updates.extend(topo.into_iter().map(|((btree, level, _), (k, v))| Update {
        btree,
        level,
        k,
        v,
        journal_v: None,
    }));
    updates.extend(gens_keys.into_values().map(|(k, v)| Update {
        btree: ids::btree::BUCKET_GENS,
        level: 0,
        k,
        v,
        journal_v: None,
    }));
    updates.extend(ptr_keys.into_iter().map(|((btree, _), (k, v))| Update {
        btree,
        level: 0,
        k,
        v,
        journal_v: None,
    }));
    let lines = r
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let o = if deferred[i] {
                Outcome::Deferred
            } else if fixing[i] {
                Outcome::Fixing
            } else if info[i] {
                Outcome::Info(why[i])
            } else {
                Outcome::Left(why[i])
            };
            (l.clone(), o)
        })
        .collect();
    RoundPlan {
        lines,
        updates,
        rewrites,
        changes,
        again: defer,
    }
}
