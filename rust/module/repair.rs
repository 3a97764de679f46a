// SPDX-License-Identifier: GPL-2.0

//! Repair at mount (`-o fsck,fix_errors`): a gc pass on the mounting task, each
//! finding turned into the repair the offline `fsck -y` makes for it (the values
//! come from the core's [`crate::format::gc::repair`] and alloc trigger rules), and
//! one commit ([`crate::commit`]). Every finding gets a log line saying whether it
//! is being fixed, and if not, why. What the kernel repairs today:
//!
//! - accounting counters set to the recount (`accounting_mismatch`);
//! - a bucket's gen in its `bucket_gens` key (`bucket_gens_key_wrong`);
//! - alloc key fields and oldest gens (`alloc_key_*_wrong`), with the need_discard,
//!   fragmentation LRU and freespace keys they move (a bucket that leaves the
//!   freespace btree is cut out of the extent holding it: [`crate::alloc`]);
//! - the members' btree-allocated bitmaps (`btree_bitmap_not_marked`, the
//!   `btree_bitmap_gc` pass), a superblock-only change;
//! - a leaf key's pointer gens (`ptr_gen_newer_than_bucket_gen`, `stale_dirty_ptr`):
//!   set to the bucket's, with the backpointers that name the old gen. The counts
//!   (alloc keys, accounting) wait for a recount over the fixed pointers, as the
//!   offline tool's rounds do: the repair commits the pointers alone and asks for a
//!   second repair ([`Outcome::Repaired`]'s `recount`), which the mount runs once
//!   the filesystem is opened again.
//!
//! - a node read with a bad checksum (`bset_bad_csum`), or a leaf whose read
//!   dropped keys that failed validation (`bkey_invalid`): rewritten to new space
//!   from the keys that read ([`crate::commit`]), with the backpointers of the
//!   dropped keys deleted (the counts they held are the pass's own findings).
//!
//! - topology ([`crate::topology`]): an unreadable node dropped from its parent
//!   (with the backpointers that name it or what it held), gaps and overlaps
//!   closed by moving a node's start or a parent's last child's end through its
//!   pointer, lost leaves a device scan finds put back into a gap. Pointers
//!   first: the counts wait for the recount, as for pointer gens.
//!
//! The rest (interior nodes' dropped pointers, a lost root) is logged as left.

use core::fmt::Write as _;
use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::alloc::punch_freespace;
use crate::btree::iter::{range, range_view};
use crate::commit::{commit, next_journal_seq, SbChanges, Update};
use crate::eopnotsupp;
use crate::format::alloc::buckets::bucket_backpointers;
use crate::format::alloc::format::{accounting_nr_counters, AllocV4, Backpointer, BUCKET_GENS_NR};
use crate::format::alloc::trigger::derived_changes;
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::scan::Found;
use crate::format::data::extents_format::set_ptr_gens;
use crate::format::gc::finding::{Finding, Kind};
use crate::format::gc::repair::{accounting_values, accounting_version, apply_field, is_topology};
use crate::format::gc::{sb_wants_bitmap_gc, PASS_BTREE_BITMAP_GC};
use crate::format::ids::{btree, KeyType};
use crate::format::journal::keys::AcctView;
use crate::format::printbuf::{FixedBuf, Printbuf};
use crate::format::text::{Pb, TextCtx};
use crate::fs::Fs;
use crate::gc::{run_pass, Collected};
use crate::topology::plan_topology;

/// The key at `pos` of `btree`'s leaves, if any (accounting deltas in the
/// journal shown as the listing shows them).
pub(crate) fn leaf_key(fs: &Arc<Fs>, btree: u32, pos: Bpos) -> Result<Option<(Bkey, KVec<u8>)>> {
    leaf_key_view(fs, btree, pos, AcctView::Listing)
}

/// The accounting key at `pos` as journal replay leaves it (the node's value and
/// the journal's deltas newer than it), what a commit's accounting change goes on
/// top of; [`leaf_key`] shows the listing's view, which on a filesystem with a
/// journal to replay is not that total.
pub(crate) fn accounting_key(fs: &Arc<Fs>, pos: Bpos) -> Result<Option<(Bkey, KVec<u8>)>> {
    leaf_key_view(fs, btree::ACCOUNTING, pos, AcctView::Replayed)
}

/// The key at `pos` of `btree`'s leaves, accounting deltas shown as `view` says.
fn leaf_key_view(
    fs: &Arc<Fs>,
    btree: u32,
    pos: Bpos,
    view: AcctView,
) -> Result<Option<(Bkey, KVec<u8>)>> {
    let mut out = None;
    let mut err = Ok(());
    range_view(fs, btree, pos, pos, view, &mut |k, v| {
        if k.p == pos {
            let mut val = KVec::new();
            err = val.extend_from_slice(v, GFP_KERNEL);
            out = Some((*k, val));
        }
        ControlFlow::Break(())
    })?;
    err?;
    Ok(out)
}

/// Why a finding is not repaired when the leaf that holds its key cannot be read
/// (its repair would be appended to that leaf).
const LEAF_UNREADABLE: &str = "the leaf holding its key cannot be read";

/// A leaf key and its value, if there is one, or why it could not be read.
type KeyRead = core::result::Result<Option<(Bkey, KVec<u8>)>, &'static str>;

/// [`leaf_key`], with a leaf that cannot be read (EIO) given as `Err(why)`: that
/// finding is left, the others are repaired.
fn readable_key(fs: &Arc<Fs>, btree: u32, pos: Bpos) -> Result<KeyRead> {
    match leaf_key(fs, btree, pos) {
        Ok(kv) => Ok(Ok(kv)),
        Err(e) if e == EIO => Ok(Err(LEAF_UNREADABLE)),
        Err(e) => Err(e),
    }
}

/// One alloc key being repaired: as found, and as it will be.
struct AllocFix {
    k: Bkey,
    v: KVec<u8>,
    old: AllocV4,
    new: AllocV4,
}

/// Everything one repair writes.
#[derive(Default)]
struct Plan {
    updates: KVec<Update>,
    alloc: KVec<AllocFix>,
    gens: KVec<(Bkey, KVec<u8>)>,
    changes: SbChanges,
    /// Nodes to rewrite to new space: (btree, level, the node's max key, why).
    rewrites: KVec<(u32, u8, Bpos, &'static str)>,
    /// The bitmaps' repair, decided once for every bitmap finding: `Some(why)`
    /// when it is not made.
    bitmap: Option<Option<&'static str>>,
    /// Keys whose pointer gens are reset (btree, key, value), and the
    /// backpointers that named the old gens.
    ptr_keys: KVec<(u32, Bkey, KVec<u8>)>,
    bps: KVec<(Bkey, KVec<u8>)>,
    /// The pass could not read every node.
    unreadable: bool,
    /// The nodes a device scan found, once a gap needed them.
    scanned: Option<KVec<Found>>,
    fixing: u32,
    /// Counts left for the recount after the pointer fixes.
    deferred: u32,
    left: u32,
}

/// A pointer gen finding on a leaf key, whose repair resets the pointer's gen.
fn is_ptr_gen_fix(f: &Finding) -> bool {
    matches!(f.kind, Kind::StaleDirtyPtr | Kind::PtrGenNewerThanBucketGen)
        && f.level == 0
        && f.btree.is_some()
        && f.pos.is_some()
        && f.bucket.is_some()
}

/// A repair of pointers (a pointer gen, or topology: [`crate::topology`]): the
/// counts wait for a recount over them.
fn is_pointer_fix(f: &Finding) -> bool {
    is_ptr_gen_fix(f) || is_topology(f)
}

/// A count that a pass over unfixed pointers gets wrong (or could not make, over
/// nodes it could not read): repaired after the recount, once the pointers are
/// fixed.
fn is_count(f: &Finding) -> bool {
    matches!(
        f.kind,
        Kind::AllocKeyWrong
            | Kind::OldestGenTooNew
            | Kind::AccountingMismatch
            | Kind::CheckAllocationsIncomplete
    )
}

/// The repair of a pointer gen finding ([`is_ptr_gen_fix`]): the pointer's gen
/// set to its bucket's, as upstream's check_fix_ptrs resets it, and each
/// backpointer of that pointer that names the pointer's gen given the bucket's, as
/// the offline `fsck -y` does (upstream's check_extents_to_backpointers, after the
/// pointers).
fn ptr_gen_fix(fs: &Arc<Fs>, f: &Finding, p: &mut Plan) -> Result<Option<&'static str>> {
    let (Some(bt), Some(pos), Some((dev, bucket))) = (f.btree, f.pos, f.bucket) else {
        return Ok(Some("pointer finding without its key"));
    };
    let (bucket_size, shift) = {
        let sb = fs.sb();
        let Some(m) = sb.member(dev as usize) else {
            return Ok(Some("pointer to a missing device"));
        };
        (
            u64::from(m.bucket_size()).max(1),
            sb.extent_bp_shift_or_default(),
        )
    };
    // The key as planned so far (another of its pointers may be fixed already),
    // or as it is.
    let at = p
        .ptr_keys
        .iter()
        .position(|(b, k, _)| *b == bt && k.p == pos);
    let (k, mut v) = match at {
        Some(i) => {
            let (_, k, v) = &p.ptr_keys[i];
            let mut c = KVec::new();
            c.extend_from_slice(v, GFP_KERNEL)?;
            (*k, c)
        }
        None => match readable_key(fs, bt, pos)? {
            Err(why) => return Ok(Some(why)),
            Ok(Some(kv)) => kv,
            Ok(None) => return Ok(Some("the key is not in its btree")),
        },
    };
    let n = set_ptr_gens(k.typ, &mut v, &mut |ptr| {
        (u32::from(ptr.dev) == dev
            && !ptr.cached
            && ptr.offset / bucket_size == bucket
            && ptr.gen == f.ptr_gen)
            .then_some(f.gen)
    });
    if n == 0 {
        return Ok(Some("no such pointer in the key"));
    }
    let Some((from, to)) = bucket_backpointers(dev, bucket, bucket_size, shift) else {
        return Ok(Some("bucket past what backpointers can name"));
    };
    let mut found: KVec<(Bkey, KVec<u8>)> = KVec::new();
    let mut err = Ok(());
    let r = range(fs, btree::BACKPOINTERS, from, to, &mut |bk, bv| {
        if bk.typ != KeyType::Backpointer as u8 {
            return ControlFlow::Continue(());
        }
        let bp = Backpointer::read(bv);
        if u32::from(bp.btree_id) != bt
            || bp.level != f.level
            || bp.pos != pos
            || bp.bucket_gen != f.ptr_gen
        {
            return ControlFlow::Continue(());
        }
        let mut nv = KVec::new();
        let r = nv
            .extend_from_slice(bv, GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|()| {
                Backpointer {
                    bucket_gen: f.gen,
                    ..bp
                }
                .write(&mut nv)
                .ok_or(EINVAL)
            })
            .and_then(|()| found.push((*bk, nv), GFP_KERNEL).map_err(Error::from));
        match r {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                err = Err(e);
                ControlFlow::Break(())
            }
        }
    });
    match r {
        Err(e) if e == EIO => return Ok(Some("a leaf of its backpointers cannot be read")),
        r => r?,
    }
    err?;
    // Planned only now, with everything it needs read.
    match at {
        Some(i) => p.ptr_keys[i].2 = v,
        None => p.ptr_keys.push((bt, k, v), GFP_KERNEL)?,
    }
    for (k, v) in found {
        match p.bps.iter().position(|(b, _)| b.p == k.p) {
            Some(j) => p.bps[j] = (k, v),
            None => p.bps.push((k, v), GFP_KERNEL)?,
        }
    }
    Ok(None)
}

/// Why a finding is not repaired here, or `None` when its repair was planned.
fn plan_one(
    fs: &Arc<Fs>,
    c: &Collected,
    f: &Finding,
    p: &mut Plan,
    acct_version: u64,
) -> Result<Option<&'static str>> {
    match f.kind {
        Kind::NodeBadChecksum | Kind::NodeBadKeys => {
            let (Some(b), Some(n)) = (f.btree, f.node) else {
                return Ok(Some("no node to rewrite"));
            };
            let bad_keys = f.kind == Kind::NodeBadKeys;
            if bad_keys && f.level > 0 {
                return Ok(Some(
                    "an interior node's dropped pointers are topology work, not repaired in the kernel yet (repair offline: bcachefs-rs fsck -y)",
                ));
            }
            if bad_keys {
                // The keys the read dropped go for good: so do the backpointers
                // that name them (the offline tool's dropped_keys_backpointers).
                if let Err(why) = dropped_keys_backpointers(fs, b, n.min, n.max, p)? {
                    return Ok(Some(why));
                }
            }
            if !p
                .rewrites
                .iter()
                .any(|&(rb, rl, rm, _)| (rb, rl, rm) == (b, f.level, n.max))
            {
                let why = if bad_keys {
                    "keys failed validation"
                } else {
                    "read with a bad checksum"
                };
                p.rewrites.push((b, f.level, n.max, why), GFP_KERNEL)?;
            }
            Ok(None)
        }
        Kind::AccountingMismatch => {
            let Some((ap, n)) = f.acct else {
                return Ok(Some("accounting finding without its key"));
            };
            let n = usize::from(n);
            let at = ap.to_bpos();
            let k = match readable_key(fs, btree::ACCOUNTING, at)? {
                Err(why) => return Ok(Some(why)),
                Ok(Some((k, v))) if accounting_nr_counters(&v) == n => k,
                Ok(Some(_)) => {
                    return Ok(Some("accounting key with more counters than gc recounts"))
                }
                Ok(None) => Bkey {
                    typ: KeyType::Accounting as u8,
                    p: at,
                    ..Default::default()
                },
            };
            let k = Bkey {
                version_hi: 0,
                version_lo: acct_version.max(k.version_lo),
                ..k
            };
            let mut v = KVec::from_elem(0u8, n * 8, GFP_KERNEL)?;
            let mut jv = KVec::from_elem(0u8, n * 8, GFP_KERNEL)?;
            if accounting_values(f, n, &mut v, &mut jv).is_none() {
                return Ok(Some("accounting value"));
            }
            p.updates.push(
                Update {
                    btree: btree::ACCOUNTING,
                    level: 0,
                    k,
                    v,
                    journal_v: Some(jv),
                },
                GFP_KERNEL,
            )?;
            Ok(None)
        }
        Kind::BucketGensKeyWrong => {
            let Some((dev, bucket)) = f.bucket else {
                return Ok(Some("bucket finding without its bucket"));
            };
            let at = Bpos::new(u64::from(dev), bucket / BUCKET_GENS_NR as u64, 0);
            let i = match p.gens.iter().position(|(k, _)| k.p == at) {
                Some(i) => i,
                None => {
                    let kv = match readable_key(fs, btree::BUCKET_GENS, at)? {
                        Err(why) => return Ok(Some(why)),
                        Ok(Some(kv)) => kv,
                        Ok(None) => (
                            Bkey {
                                typ: KeyType::BucketGens as u8,
                                p: at,
                                ..Default::default()
                            },
                            KVec::from_elem(0u8, BUCKET_GENS_NR, GFP_KERNEL)?,
                        ),
                    };
                    p.gens.push(kv, GFP_KERNEL)?;
                    p.gens.len() - 1
                }
            };
            match p.gens[i]
                .1
                .get_mut((bucket % BUCKET_GENS_NR as u64) as usize)
            {
                Some(g) => {
                    *g = f.want as u8;
                    Ok(None)
                }
                None => Ok(Some("bucket_gens key too short")),
            }
        }
        Kind::AllocKeyWrong | Kind::OldestGenTooNew => {
            let Some((dev, bucket)) = f.bucket else {
                return Ok(Some("alloc finding without a bucket"));
            };
            if f.kind == Kind::AllocKeyWrong && f.field.is_none() {
                return Ok(Some("alloc finding without its field"));
            }
            let at = Bpos::new(u64::from(dev), bucket, 0);
            let i = match p.alloc.iter().position(|a| a.k.p == at) {
                Some(i) => i,
                None => match readable_key(fs, btree::ALLOC, at)? {
                    Err(why) => return Ok(Some(why)),
                    Ok(Some((k, v))) if k.typ == KeyType::AllocV4 as u8 => {
                        let old = AllocV4::read(&v);
                        p.alloc.push(
                            AllocFix {
                                k,
                                v,
                                old,
                                new: old,
                            },
                            GFP_KERNEL,
                        )?;
                        p.alloc.len() - 1
                    }
                    Ok(Some(_)) => {
                        return Ok(Some("alloc key older than alloc_v4: not rewritten yet"))
                    }
                    Ok(None) => return Ok(Some("no alloc key for the bucket")),
                },
            };
            let a = &mut p.alloc[i].new;
            if f.kind == Kind::OldestGenTooNew {
                a.oldest_gen = f.ptr_gen;
            } else {
                apply_field(a, f);
            }
            Ok(None)
        }
        Kind::StaleDirtyPtr | Kind::PtrGenNewerThanBucketGen if is_ptr_gen_fix(f) => {
            ptr_gen_fix(fs, f, p)
        }
        _ if is_topology(f) => plan_topology(fs, f, &mut p.updates, &mut p.scanned),
        Kind::CheckAllocationsIncomplete => Ok(Some(
            "the pass could not count over nodes it could not read, and no repair here drops them",
        )),
        Kind::BtreeBitmapNotMarked | Kind::BtreeBitmapGc => {
            // One change covers every bitmap finding, all devices or none.
            if let Some(why) = p.bitmap {
                return Ok(why);
            }
            let why = bitmap_changes(fs, c, p.unreadable, &mut p.changes)?;
            p.bitmap = Some(why);
            Ok(why)
        }
        _ => Ok(Some(
            "not repaired in the kernel yet (repair offline: bcachefs-rs fsck -y)",
        )),
    }
}

/// The superblock side of a `btree_bitmap_gc` pass into `changes`: each member's
/// bitmap as the nodes found need it, and the pass's request cleared; all or
/// nothing. `Some(why)` when nothing is changed.
fn bitmap_changes(
    fs: &Fs,
    c: &Collected,
    unreadable: bool,
    changes: &mut SbChanges,
) -> Result<Option<&'static str>> {
    if unreadable {
        return Ok(Some(
            "the pass could not read every node: a rebuilt bitmap would drop what it did not see",
        ));
    }
    let mut bitmaps = KVec::new();
    for &(dev, _, bitmap, after) in c.bitmaps.iter() {
        match after {
            Some(a) if a != bitmap => bitmaps.push((dev, a), GFP_KERNEL)?,
            Some(_) => {}
            None => return Ok(Some("a node lies past what the bitmap's shift can mark")),
        }
    }
    let passes = if sb_wants_bitmap_gc(&fs.sb()) {
        1u64 << PASS_BTREE_BITMAP_GC
    } else {
        0
    };
    if bitmaps.is_empty() && passes == 0 {
        return Ok(Some("the bitmap marks only what the btree uses"));
    }
    changes.bitmaps = bitmaps;
    changes.passes_done |= passes;
    Ok(None)
}

/// The updates an alloc key's change from `old` to `new` writes, as the alloc
/// trigger moves them: the derived keys (need_discard, fragmentation LRU, a
/// freespace key set), then the key itself, pushed to `out`. A bucket that leaves
/// the freespace btree is returned, (dev, `genbits | bucket`): the caller cuts it
/// out of the extent holding it ([`punch_freespace`]), once no walk is in
/// progress.
pub(crate) fn alloc_change(
    fs: &Fs,
    k: &Bkey,
    v: &[u8],
    old: &AllocV4,
    new: &AllocV4,
    out: &mut KVec<Update>,
) -> Result<Option<(u32, u64)>> {
    let (dev, bucket) = (k.p.inode as u32, k.p.offset);
    let bucket_size = fs
        .sb()
        .member(dev as usize)
        .map(|m| m.bucket_size())
        .unwrap_or(0);
    let mut hole = None;
    let mut err = Ok(());
    derived_changes(dev, bucket, bucket_size, old, new, &mut |d| {
        if err.is_err() {
            return;
        }
        // A freespace key's position is its bucket's plus one (it ends there).
        if d.btree == btree::FREESPACE && !d.set {
            hole = Some((dev, d.pos.offset.saturating_sub(1)));
            return;
        }
        let k = Bkey {
            typ: if d.set {
                KeyType::Set as u8
            } else {
                KeyType::Deleted as u8
            },
            p: d.pos,
            size: d.size,
            ..Default::default()
        };
        err = out.push(Update::leaf(d.btree, k, KVec::new()), GFP_KERNEL);
    });
    err?;
    let mut nv = KVec::new();
    nv.extend_from_slice(v, GFP_KERNEL)?;
    new.write(&mut nv);
    out.push(Update::leaf(btree::ALLOC, *k, nv), GFP_KERNEL)?;
    Ok(hole)
}

/// The updates of every alloc key being repaired, with the freespace extents cut
/// where a bucket leaves the freespace btree.
fn alloc_updates(fs: &Arc<Fs>, p: &mut Plan) -> Result {
    let mut holes = KVec::new();
    for a in p.alloc.iter() {
        if let Some(hole) = alloc_change(fs, &a.k, &a.v, &a.old, &a.new, &mut p.updates)? {
            holes.push(hole, GFP_KERNEL)?;
        }
    }
    let cut = punch_freespace(fs, &holes, &mut p.updates)?;
    if cut > 0 {
        pr_info!(
            "{}: repair: cutting {} bucket(s) out of the freespace btree\n",
            fs.uuid(),
            cut
        );
    }
    Ok(())
}

/// The positions of every backpointer that `pick` accepts, or why they could not
/// all be read (a backpointers leaf that cannot be read).
pub(crate) fn backpointers_where(
    fs: &Arc<Fs>,
    pick: &dyn Fn(&Backpointer) -> bool,
) -> Result<core::result::Result<KVec<Bpos>, &'static str>> {
    let mut found: KVec<Bpos> = KVec::new();
    let mut err = Ok(());
    let r = range(
        fs,
        btree::BACKPOINTERS,
        Bpos::MIN,
        Bpos::MAX,
        &mut |k, v| {
            if k.typ == KeyType::Backpointer as u8 && pick(&Backpointer::read(v)) {
                if let Err(e) = found.push(k.p, GFP_KERNEL) {
                    err = Err(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    );
    match r {
        Err(e) if e == EIO => return Ok(Err("a backpointers leaf cannot be read")),
        r => r?,
    }
    err?;
    Ok(Ok(found))
}

/// The backpointers of leaf keys of `btree` in `min..=max` that no key holds any
/// more (the read of their leaf dropped them), deleted in `p`: each names its
/// btree, level 0 and the key's position. `Err(why)` when a leaf could not be
/// read.
fn dropped_keys_backpointers(
    fs: &Arc<Fs>,
    btree: u32,
    min: Bpos,
    max: Bpos,
    p: &mut Plan,
) -> Result<core::result::Result<(), &'static str>> {
    let mut held: KVec<Bpos> = KVec::new();
    let mut err = Ok(());
    let r = range(fs, btree, min, max, &mut |k, _| {
        if k.typ == KeyType::Deleted as u8 {
            return ControlFlow::Continue(());
        }
        if let Err(e) = held.push(k.p, GFP_KERNEL) {
            err = Err(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match r {
        Err(e) if e == EIO => return Ok(Err(LEAF_UNREADABLE)),
        r => r?,
    }
    err?;
    let gone = match backpointers_where(fs, &|bp| {
        u32::from(bp.btree_id) == btree
            && bp.level == 0
            && (min..=max).contains(&bp.pos)
            && held.binary_search(&bp.pos).is_err()
    })? {
        Ok(g) => g,
        Err(why) => return Ok(Err(why)),
    };
    for at in gone {
        if p.updates
            .iter()
            .any(|u| u.btree == btree::BACKPOINTERS && u.k.p == at)
        {
            continue;
        }
        let k = Bkey {
            typ: KeyType::Deleted as u8,
            p: at,
            ..Default::default()
        };
        p.updates.push(
            Update::leaf(btree::BACKPOINTERS, k, KVec::new()),
            GFP_KERNEL,
        )?;
    }
    Ok(Ok(()))
}

/// What became of a finding, for its log line.
enum Fate<'a> {
    Fixing,
    /// Repaired by the next repair, after the recount.
    Deferred,
    NotFixed(&'a str),
}

fn log_finding(fs: &Fs, f: &Finding, fate: Fate<'_>) {
    let mut b = [0u8; 640];
    let mut w = FixedBuf::new(&mut b);
    {
        let mut pb: Pb<'_, '_> = Printbuf::new(&mut w);
        f.to_text(&mut pb, &TextCtx { devs: fs });
    }
    let line = core::str::from_utf8(w.as_bytes()).unwrap_or("?");
    let line = line.trim_end();
    match fate {
        Fate::Fixing => pr_info!("{}: repair: fixing: {}\n", fs.uuid(), line),
        Fate::Deferred => pr_info!(
            "{}: repair: after the recount over the fixed pointers: {}\n",
            fs.uuid(),
            line
        ),
        Fate::NotFixed(why) => {
            pr_warn!("{}: repair: not fixed ({}): {}\n", fs.uuid(), why, line)
        }
    }
}

/// What a repair at mount did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    /// Nothing written (nothing to repair, nochanges, or a repair the kernel cannot
    /// write yet: logged).
    Unchanged,
    /// Committed: the filesystem is to be opened afresh; with `recount`, pointers
    /// were fixed and the counts wait for a repair of their own over them.
    Repaired { recount: bool },
    /// A device write failed (logged): the disks hold the old filesystem or the
    /// repaired one, as after a crash; the mount goes on read-only (emergency
    /// read-only), from what is on disk.
    WriteFailed,
}

/// Runs the repair. An error fails the mount.
pub(crate) fn repair_at_mount(fs: &Arc<Fs>) -> Result<Outcome> {
    let mut c = Collected::default();
    let (r, stats) = run_pass(fs, Some(&mut c), None)?;
    if r.is_err() || c.incomplete {
        pr_err!("{}: repair: the gc pass did not complete\n", fs.uuid());
        return Err(EIO);
    }
    if c.findings.is_empty() {
        pr_info!(
            "{}: repair: gc pass over {} nodes, {} keys, {} buckets found nothing to repair\n",
            fs.uuid(),
            stats.nodes,
            stats.keys,
            stats.buckets
        );
        return Ok(Outcome::Unchanged);
    }
    let acct_version = next_journal_seq(fs).map(accounting_version).unwrap_or(0);
    let mut p = Plan {
        unreadable: stats.unreadable > 0,
        ..Plan::default()
    };
    // Pointers first: when any is fixed, the counts wait for a recount over the
    // fixed pointers.
    let mut recount = false;
    for ptrs in [true, false] {
        for f in c.findings.iter().filter(|f| is_pointer_fix(f) == ptrs) {
            if recount && is_count(f) {
                p.deferred += 1;
                log_finding(fs, f, Fate::Deferred);
                continue;
            }
            let why = plan_one(fs, &c, f, &mut p, acct_version)?;
            recount |= ptrs && why.is_none();
            match why {
                None => {
                    p.fixing += 1;
                    log_finding(fs, f, Fate::Fixing);
                }
                Some(why) => {
                    p.left += 1;
                    log_finding(fs, f, Fate::NotFixed(why));
                }
            }
        }
    }
    match alloc_updates(fs, &mut p) {
        Ok(()) => {}
        Err(e) if e == EIO => {
            pr_err!(
                "{}: repair: a freespace leaf to cut a bucket out of cannot be read; nothing written\n",
                fs.uuid()
            );
            return Ok(Outcome::Unchanged);
        }
        Err(e) => return Err(e),
    }
    for (k, v) in core::mem::take(&mut p.gens) {
        p.updates
            .push(Update::leaf(btree::BUCKET_GENS, k, v), GFP_KERNEL)?;
    }
    for (bt, k, v) in core::mem::take(&mut p.ptr_keys) {
        p.updates.push(Update::leaf(bt, k, v), GFP_KERNEL)?;
    }
    for (k, v) in core::mem::take(&mut p.bps) {
        p.updates
            .push(Update::leaf(btree::BACKPOINTERS, k, v), GFP_KERNEL)?;
    }
    p.updates
        .sort_unstable_by_key(|u| (u.btree, u.level, u.k.p));
    let mut summary = [0u8; 192];
    let mut w = FixedBuf::new(&mut summary);
    {
        let mut pb: Pb<'_, '_> = Printbuf::new(&mut w);
        let _ = write!(pb, "{} findings: fixing {}, ", c.findings.len(), p.fixing);
        if p.deferred > 0 {
            let _ = write!(pb, "{} after a recount, ", p.deferred);
        }
        let _ = write!(
            pb,
            "leaving {}; {} keys, {} node(s) to rewrite and {} superblock change(s) to write",
            p.left,
            p.updates.len(),
            p.rewrites.len(),
            p.changes.bitmaps.len() + usize::from(p.changes.passes_done != 0)
        );
    }
    let summary = core::str::from_utf8(w.as_bytes()).unwrap_or("?");
    if fs.opts.nochanges {
        pr_info!(
            "{}: repair: {}; nochanges: nothing written\n",
            fs.uuid(),
            summary
        );
        return Ok(Outcome::Unchanged);
    }
    if p.updates.is_empty() && p.rewrites.is_empty() && p.changes.is_empty() {
        pr_info!("{}: repair: {}\n", fs.uuid(), summary);
        return Ok(Outcome::Unchanged);
    }
    pr_info!("{}: repair: {}\n", fs.uuid(), summary);
    let mut write_failed = false;
    let done = match commit(
        fs,
        &p.updates,
        &p.rewrites,
        &p.changes,
        &mut write_failed,
        false,
    ) {
        Ok(d) => d,
        Err(_) if write_failed => return Ok(Outcome::WriteFailed),
        // Refused before anything was written (logged where refused).
        Err(e) if e == eopnotsupp() => {
            pr_err!("{}: repair: nothing written\n", fs.uuid());
            return Ok(Outcome::Unchanged);
        }
        // A node the commit had to read could not be: nothing is committed (what
        // it may have written lies past its nodes' sectors_written), and the mount
        // goes on as it found the filesystem.
        Err(e) if e == EIO => {
            pr_err!(
                "{}: repair: a node on the way to a key to repair cannot be read: nothing committed\n",
                fs.uuid()
            );
            return Ok(Outcome::Unchanged);
        }
        Err(e) => return Err(e),
    };
    pr_info!(
        "{}: repair: wrote {} node bset(s) and {} new node(s) ({} bytes), {} journal entries from seq {}, {} superblock copies; filesystem {}\n",
        fs.uuid(),
        done.nodes,
        done.new_nodes,
        done.node_bytes,
        done.journal_entries,
        done.seq,
        done.sb_copies,
        if fs.clean {
            "clean"
        } else {
            "still dirty: its journal replays, the repair's entries last"
        }
    );
    // Fixed pointers count where the pass did not count them: a recount over
    // them, whether or not this pass found counts to put off (a stale pointer
    // into a bucket used since finds none, and is counted there once fixed).
    Ok(Outcome::Repaired { recount })
}
