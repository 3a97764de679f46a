// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs fsck -y` against upstream's own fsck: edited copies of `basic`
//! are repaired through the core's writers, then upstream's `fsck -n` and our
//! `check` find nothing, a second `fsck -y` changes nothing, upstream's on-disk
//! listing shows the appended bset, and a repair stopped after each of its writes
//! leaves an image upstream finds as it was before.

mod common;

use common::{bin, copy_fixture, reference, run};

use std::path::{Path, PathBuf};
use std::process::Command;

use bcachefs_core::alloc::format::AllocV4;
use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;

fn ours(args: &[&str], img: &Path) -> (Option<i32>, String) {
    run(Command::new(bin()).args(args).arg(img))
}

fn sha(p: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

/// Upstream's `fsck -n` on `img`: its exit code and the lines that report
/// something, leaving out its progress chatter.
fn upstream_fsck(r: &Path, img: &Path) -> (Option<i32>, Vec<String>) {
    // Bounded: an image can hang upstream's fsck.
    let (code, out) = run(Command::new("timeout")
        .arg("300")
        .arg(r)
        .args(["fsck", "-n"])
        .arg(img));
    assert_ne!(
        code,
        Some(124),
        "upstream fsck -n timed out on {}",
        img.display()
    );
    let lines = out
        .lines()
        // A recovery pass's name is printed before its messages on the same line.
        .map(|l| match l.split_once("...") {
            Some((pass, rest)) if pass.chars().all(|c| c.is_ascii_lowercase() || c == '_') => rest,
            _ => l,
        })
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !(l.ends_with(" done (0 seconds)")
                || l.contains("done (")
                || l.starts_with("Running ")
                || l.starts_with("Using encoding")
                || l.starts_with("starting version")
                || l.starts_with("  with options")
                || l.starts_with("recovering from clean shutdown")
                || l.starts_with("recovering from unclean shutdown")
                || l.starts_with("journal read done, replaying entries")
                || l.starts_with("Journal keys:")
                || l.starts_with("going read-write")
                || l.starts_with("clean shutdown complete")
                || l.starts_with("WARNING: kernel does not have CONFIG_RUST")
                || l.trim_start().starts_with("please alert"))
        })
        .map(String::from)
        .collect();
    (code, lines)
}

/// The error counts upstream's fsck closes with (`errors this recovery:`), as
/// `name count` lines.
fn upstream_errors(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .skip_while(|l| !l.starts_with("errors this recovery:"))
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn repair_and_verify(name: &str, edit: fn(&mut AllocV4)) {
    let Some((bucket, img)) = common::edited_basic(name, edit) else {
        return;
    };
    verify_repair(&img, &format!("bucket 0:{} ", bucket));
}

/// `fsck -n` on the edited copy `img` names `what` and writes nothing; `fsck -y`
/// repairs every finding; then `check` and upstream's `fsck -n` find nothing and
/// a second `fsck -y` changes nothing.
fn verify_repair(img: &Path, what: &str) {
    let before = sha(img);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}", out);
    assert!(out.contains(what), "{}", out);
    let (code, _) = ours(&["check"], img);
    assert_eq!(code, Some(1));
    assert_eq!(sha(img), before, "fsck -n or check wrote to the image");
    // Upstream's own repair of the same copy: the yardstick, shown when ours
    // falls short.
    let theirs = img.parent().unwrap().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let theirs = theirs.join("img");
    std::fs::copy(img, &theirs).unwrap();
    let theirs_after = reference().map(|r| {
        let y = run(Command::new(&r).args(["fsck", "-y"]).arg(&theirs)).1;
        (y, upstream_fsck(&r, &theirs))
    });
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!(
        code,
        Some(1),
        "{}\nupstream's repair: {:#?}",
        out,
        theirs_after
    );
    assert!(out.lines().all(|l| l.ends_with(", fixing")), "{}", out);
    assert_ne!(sha(img), before);
    let (code, out) = ours(&["check"], img);
    assert_eq!(code, Some(0), "after the repair: {}", out);
    let after = sha(img);
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    assert_eq!(sha(img), after, "a second fsck -y changed the image");
    if let Some(r) = reference() {
        let (code, lines) = upstream_fsck(&r, img);
        assert!(
            code == Some(0) && lines.is_empty(),
            "upstream fsck -n after our repair: {:?} {:#?}\nupstream's repair: {:#?}",
            code,
            lines,
            theirs_after
        );
        // Upstream's own repair leaves nothing either.
        let (_, (code, lines)) = theirs_after.unwrap();
        assert_eq!((code, lines), (Some(0), vec![]), "upstream's own repair");
    }
    if std::env::var_os("KEEP").is_none() {
        std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
    }
}

/// An accounting counter off by some: the key is rewritten with the recount.
#[test]
fn wrong_accounting_repaired() {
    use bcachefs_core::alloc::format::{acct, AccountingPos};
    use bcachefs_core::ids::{btree, KeyType};
    for (name, typ) in [
        ("fsck-acct-dev", acct::DEV_DATA_TYPE),
        ("fsck-acct-btree", acct::BTREE),
        ("fsck-acct-inodes", acct::NR_INODES),
    ] {
        let Some((_, img)) = common::edited_basic_key(
            name,
            btree::ACCOUNTING,
            &|k, _| {
                k.typ == KeyType::Accounting as u8 && AccountingPos::from_bpos(k.p).typ() == typ
            },
            &|v| {
                let c = u64::from_le_bytes(v[..8].try_into().unwrap());
                v[..8].copy_from_slice(&(c + 3).to_le_bytes());
            },
        ) else {
            return;
        };
        verify_repair(&img, "accounting: ");
    }
}

#[test]
fn wrong_dirty_sectors_repaired() {
    repair_and_verify("fsck-dirty", |a| a.dirty_sectors += 8);
}

#[test]
fn wrong_cached_sectors_repaired() {
    repair_and_verify("fsck-cached", |a| a.cached_sectors += 16);
}

#[test]
fn wrong_data_type_repaired() {
    repair_and_verify("fsck-type", |a| {
        a.data_type = bcachefs_core::alloc::format::DATA_CACHED
    });
}

/// The repair of `devs` stopped after each of its writes in turn (a sink that
/// fails from then on): upstream's fsck sees each stopped image exactly as it saw
/// it before, or (past the commit point, the first superblock copy) repaired; a
/// rerun of `fsck -y` completes the repair. `leftover` says which lines of our
/// check and upstream's fsck may remain after a repair (messages upstream prints
/// after its own).
fn stop_after_each_write(devs: &[PathBuf], leftover: &dyn Fn(&str) -> bool) {
    let r = reference();
    let before = r.as_ref().map(|r| upstream_fsck(r, &devs[0]));
    let dir = devs[0].parent().unwrap().join("stopped");
    std::fs::create_dir_all(&dir).unwrap();
    let copies: Vec<PathBuf> = devs
        .iter()
        .map(|d| dir.join(d.file_name().unwrap()))
        .collect();
    let repaired = |c: &(Option<i32>, String)| c.1.lines().all(leftover);
    let upstream_repaired =
        |u: &(Option<i32>, Vec<String>)| u.0 == Some(0) && u.1.iter().all(|l| leftover(l));
    let (mut stops, mut uncommitted) = (0, 0);
    for n in 0.. {
        for (d, c) in devs.iter().zip(&copies) {
            std::fs::copy(d, c).unwrap();
        }
        let (code, out) = run(Command::new(bin())
            .env("BCACHEFS_RS_FAIL_AFTER_WRITES", n.to_string())
            .args(["fsck", "-y"])
            .args(&copies));
        if code == Some(1) {
            // Enough writes allowed: the repair completed.
            assert!(n > 3, "a repair takes more than {} writes", n);
            break;
        }
        assert_eq!(code, Some(4 | 8), "stopped after {} writes: {}", n, out);
        assert!(out.contains("(BCACHEFS_RS_FAIL_AFTER_WRITES)"), "{}", out);
        let committed = repaired(&ours_on(&["check"], &copies));
        if let (Some(r), Some(before)) = (&r, &before) {
            let now = upstream_fsck(r, &copies[0]);
            if committed {
                assert!(
                    upstream_repaired(&now),
                    "stopped after {} writes: {:?}",
                    n,
                    upstream_errors(&now.1)
                );
            } else {
                // The same verdict: exit code and the errors it counts (its text
                // differs from run to run where it scans for nodes).
                assert_eq!(
                    (now.0, upstream_errors(&now.1)),
                    (before.0, upstream_errors(&before.1)),
                    "stopped after {} writes",
                    n
                );
            }
        }
        let (code, out) = ours_on(&["fsck", "-y"], &copies);
        assert_eq!(
            code,
            Some(if committed { 0 } else { 1 }),
            "rerun after {} writes: {}",
            n,
            out
        );
        assert!(repaired(&ours_on(&["check"], &copies)));
        if let Some(r) = &r {
            let now = upstream_fsck(r, &copies[0]);
            assert!(
                upstream_repaired(&now),
                "after a rerun from {} writes: {:?}",
                n,
                upstream_errors(&now.1)
            );
        }
        uncommitted += usize::from(!committed);
        stops += 1;
    }
    eprintln!(
        "{} stop points checked, {} before the commit",
        stops, uncommitted
    );
    assert!(uncommitted >= 3, "{} stops before the commit", uncommitted);
}

/// An alloc repair stopped after each of its writes.
#[test]
fn repair_stopped_after_each_write() {
    let Some((_, img)) = common::edited_basic("fsck-crash", |a| a.dirty_sectors += 8) else {
        return;
    };
    stop_after_each_write(std::slice::from_ref(&img), &|_| false);
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// damaged-topology's repair (a node dropped, a range moved, alloc keys with
/// their derived keys, accounting, backpointers: two levels of several btrees)
/// stopped after each of its writes.
#[test]
fn topology_repair_stopped_after_each_write() {
    let Some(devs) = copy_fixture("damaged-topology", "fsck-topology-crash") else {
        return;
    };
    stop_after_each_write(&devs, &|l| {
        l.contains(" marked in bitmap") || l.contains("scheduling recovery pass btree_bitmap_gc")
    });
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

/// damaged-csum's repair (the dirents leaf rewritten to a new bucket: the node,
/// its parent, alloc keys of both buckets with their derived keys, backpointers,
/// accounting) stopped after each of its writes.
#[test]
fn rewrite_stopped_after_each_write() {
    let Some(devs) = copy_fixture("damaged-csum", "fsck-rewrite-crash") else {
        return;
    };
    stop_after_each_write(&devs, &|l| {
        l.contains(" marked in bitmap") || l.contains("scheduling recovery pass btree_bitmap_gc")
    });
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

fn ours_on(args: &[&str], devs: &[PathBuf]) -> (Option<i32>, String) {
    run(Command::new(bin()).args(args).args(devs))
}

fn shas(devs: &[PathBuf]) -> Vec<Vec<u8>> {
    devs.iter().map(|d| sha(d)).collect()
}

/// The member bitmap lines of upstream's `show-super`.
fn bitmap_lines(r: &Path, dev: &Path) -> Vec<String> {
    let (_, out) = run(Command::new(r)
        .args(["show-super", "-f", "members_v2"])
        .arg(dev));
    out.lines()
        .filter(|l| l.contains("Btree allocated bitmap"))
        .map(String::from)
        .collect()
}

/// On every undamaged fixture `fsck -y` changes nothing unless `check` finds
/// something, and then only to repair it: `churn` asks for `btree_bitmap_gc`
/// and `unclean`'s bitmap marks far more than its btree uses. After the repair,
/// upstream's `fsck -n` prints nothing but the bitmap figures it prints after its
/// own repair, the bitmap is the one upstream's own repair leaves, and a second
/// `fsck -y` changes nothing.
#[test]
fn undamaged_fixtures_change_only_to_repair() {
    let r = reference();
    for fx in common::UNDAMAGED {
        let Some(devs) = copy_fixture(fx, "fsck-undamaged") else {
            return;
        };
        let before = shas(&devs);
        let paths: Vec<String> = devs.iter().map(|d| d.display().to_string()).collect();
        let clean = bcachefs_rs::fs::Fs::open(&paths).unwrap().clean;
        let (findings, _) = ours_on(&["check"], &devs);
        let (code, out) = ours_on(&["fsck", "-y"], &devs);
        if findings == Some(0) {
            assert_eq!((code, out.as_str()), (Some(0), ""), "{}", fx);
            assert_eq!(shas(&devs), before, "{}: fsck -y changed a clean image", fx);
        } else {
            assert_eq!(code, Some(1), "{}: {}", fx, out);
            assert!(
                out.lines().all(|l| l.ends_with(", fixing")),
                "{}: {}",
                fx,
                out
            );
            assert!(out.contains("btree_bitmap_gc"), "{}: {}", fx, out);
            let after = shas(&devs);
            let (code, out) = ours_on(&["fsck", "-y"], &devs);
            assert_eq!(code, Some(0), "{}: second fsck -y: {}", fx, out);
            assert_eq!(
                shas(&devs),
                after,
                "{}: a second fsck -y changed the image",
                fx
            );
            if let Some(r) = &r {
                let (code, lines) = upstream_fsck(r, &devs[0]);
                assert_eq!(code, Some(0), "{}: {:#?}", fx, lines);
                for l in &lines {
                    assert!(
                        l.contains(" btree buckets and ") && l.contains(" marked in bitmap")
                            || l.contains("scheduling recovery pass btree_bitmap_gc"),
                        "{}: upstream after our repair: {}",
                        fx,
                        l
                    );
                }
                // Upstream's own repair of another copy leaves the same bitmap,
                // where its repair moves no node: on a clean image. (On an unclean
                // one it writes the replayed keys to new nodes first.)
                if clean {
                    let theirs = copy_fixture(fx, "fsck-upstream").unwrap();
                    run(Command::new(r).args(["fsck", "-y"]).args(&theirs));
                    assert_eq!(
                        bitmap_lines(r, &devs[0]),
                        bitmap_lines(r, &theirs[0]),
                        "{}",
                        fx
                    );
                    assert!(!bitmap_lines(r, &devs[0]).is_empty());
                    std::fs::remove_dir_all(theirs[0].parent().unwrap()).unwrap();
                }
            }
        }
        std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
    }
}

/// An alloc key's gen one ahead of every pointer into its bucket: the pointers
/// are stale and the bucket_gens key is behind. Upstream trusts the data, gives
/// the pointers the bucket's gen and sets the bucket_gens key; so do we, and the
/// recount then finds the bucket's sectors as they were.
#[test]
fn wrong_gen_repaired() {
    let Some((bucket, img)) = common::edited_basic("fsck-gen", |a| a.gen = a.gen.wrapping_add(1))
    else {
        return;
    };
    let (_, out) = ours(&["fsck", "-n"], &img);
    assert!(out.contains("stale dirty ptr"), "{}", out);
    assert!(
        out.contains("incorrect gen in bucket_gens btree"),
        "{}",
        out
    );
    verify_repair(&img, &format!("bucket 0:{} ", bucket));
}

/// An alloc key's gen one behind its pointers (0 becomes 255): every pointer is
/// from the future. Upstream gives them the bucket's gen; so do we.
#[test]
fn future_gen_repaired() {
    let Some((bucket, img)) =
        common::edited_basic("fsck-future", |a| a.gen = a.gen.wrapping_sub(1))
    else {
        return;
    };
    let (_, out) = ours(&["fsck", "-n"], &img);
    assert!(out.contains("ptr gen in the future"), "{}", out);
    verify_repair(&img, &format!("bucket 0:{} ", bucket));
}

/// `damaged-topology`: the zeroed extents leaf is dropped from its parent and the
/// next node's range moved back over the hole (`set_node_min`); its backpointers
/// go with it; the recount then sets the alloc keys, their derived keys and the
/// accounting. Upstream's fsck afterwards reports none of the topology, alloc or
/// accounting kinds its `fsck.txt` listed (nor anything else: the extents the
/// leaf held are gone, and with them everything that referred to them).
#[test]
fn damaged_topology_repaired() {
    let Some(devs) = copy_fixture("damaged-topology", "fsck-topology") else {
        return;
    };
    let (code, out) = ours_on(&["fsck", "-y"], &devs);
    assert_eq!(code, Some(1), "{}", out);
    for kind in [
        "btree_node_read_error",
        "btree_node_topology_gap_between_nodes",
        "check_allocations_incomplete",
        "alloc_key_dirty_sectors_wrong",
        "accounting_mismatch",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("{}: {}", kind, out));
        assert!(line.ends_with(", fixing"), "{}", line);
    }
    // What is left is the bitmap message upstream prints after its own repair.
    for l in out.lines().filter(|l| !l.ends_with(", fixing")) {
        assert!(
            l.contains(" marked in bitmap") && l.contains("(nothing to do: "),
            "{}",
            l
        );
    }
    let (_, out) = ours_on(&["check"], &devs);
    assert!(
        out.lines().all(|l| l.contains(" marked in bitmap")),
        "{}",
        out
    );
    let after = shas(&devs);
    let (code, _) = ours_on(&["fsck", "-y"], &devs);
    assert_eq!(code, Some(0));
    assert_eq!(shas(&devs), after, "a second fsck -y changed the image");
    if let Some(r) = reference() {
        let (code, lines) = upstream_fsck(&r, &devs[0]);
        assert_eq!(code, Some(0), "{:#?}", lines);
        for l in &lines {
            assert!(
                l.contains(" marked in bitmap")
                    || l.contains("scheduling recovery pass btree_bitmap_gc"),
                "upstream after our repair: {}",
                l
            );
        }
    }
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

/// A moved node boundary between two neighbouring children.
enum Move {
    /// The first child's start moves here (only offered for the root's first
    /// child, whose predecessor is the parent's start).
    FirstStart(Bpos),
    /// The first child's end moves here.
    End(Bpos),
    /// The second child's start moves here.
    Start(Bpos),
}

/// Moves a boundary between two children of `btree`'s root in a copy of `fx`
/// (written through the tool's own commit path, as a topology repair would move
/// it, with `BTREE_PTR_RANGE_UPDATED`): `to(last key of the first child, its end,
/// first key of the second)` says how, or `None` to try the next pair. Returns the
/// copy.
fn moved_node_end(
    fx: &str,
    tag: &str,
    btree: u32,
    to: &dyn Fn(Bpos, Bpos, Bpos) -> Option<Move>,
) -> Option<Vec<PathBuf>> {
    use bcachefs_core::btree::ptr::{set_min_key, set_range_updated};
    use bcachefs_rs::list::Walk;
    use bcachefs_rs::repair::{commit, FileSink, SbChanges, Update};
    use bcachefs_rs::update::Txn;
    let devs = copy_fixture(fx, tag)?;
    let paths: Vec<String> = devs.iter().map(|d| d.display().to_string()).collect();
    let fs = bcachefs_rs::fs::Fs::open(&paths).unwrap();
    let root = fs.roots[btree as usize].clone().unwrap();
    assert!(root.level >= 1, "{} {} has one node", fx, btree);
    let mut w = Walk { fs: &fs, errors: 0 };
    let children = w.node_keys(btree, root.level, &root.k, &root.v);
    // The moved pointers, through the tool's own commit path.
    let write = |updates: Vec<Update>| {
        let mut sink = FileSink::open(&fs, &paths).unwrap();
        let txn = Txn {
            updates,
            ..Default::default()
        };
        commit(&fs, &txn, &SbChanges::default(), &mut sink).unwrap();
    };
    if let Some(first) = children.first() {
        let keys = w.node_keys(btree, root.level - 1, &first.k, &first.v);
        if let Some(Move::FirstStart(start)) = keys
            .first()
            .and_then(|k| to(Bpos::MIN, Bpos::MIN, k.k.p))
            .filter(|m| matches!(m, Move::FirstStart(_)))
        {
            let mut v = first.v.clone();
            set_min_key(&mut v, start).unwrap();
            let updates = vec![Update {
                btree,
                level: root.level,
                k: first.k,
                v,
                journal_v: None,
            }];
            write(updates);
            return Some(devs);
        }
    }
    for pair in children.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let ka = w.node_keys(btree, root.level - 1, &a.k, &a.v);
        let kb = w.node_keys(btree, root.level - 1, &b.k, &b.v);
        let (Some(last), Some(first)) = (ka.last(), kb.first()) else {
            continue;
        };
        let Some(m) = to(last.k.p, a.k.p, first.k.p) else {
            continue;
        };
        let updates = match m {
            Move::End(end) => {
                let mut v = a.v.clone();
                set_range_updated(&mut v).unwrap();
                let del = Bkey {
                    typ: 0,
                    p: a.k.p,
                    ..Default::default()
                };
                vec![
                    Update {
                        btree,
                        level: root.level,
                        k: del,
                        v: vec![],
                        journal_v: None,
                    },
                    Update {
                        btree,
                        level: root.level,
                        k: Bkey { p: end, ..a.k },
                        v,
                        journal_v: None,
                    },
                ]
            }
            Move::FirstStart(_) => continue,
            Move::Start(start) => {
                let mut v = b.v.clone();
                set_min_key(&mut v, start).unwrap();
                vec![Update {
                    btree,
                    level: root.level,
                    k: b.k,
                    v,
                    journal_v: None,
                }]
            }
        };
        write(updates);
        return Some(devs);
    }
    panic!("{}: no two children to move between", fx);
}

/// The repair of a moved node end, verified against upstream's fsck and its own
/// repair of the same copy.
fn verify_topology_repair(devs: &[PathBuf], what: &str) {
    let (code, out) = ours_on(&["fsck", "-n"], devs);
    assert_eq!(code, Some(4), "{}", out);
    assert!(out.contains(what), "{}", out);
    let r = reference();
    if let Some(r) = &r {
        let (code, lines) = upstream_fsck(r, &devs[0]);
        assert_ne!(
            (code, lines.is_empty()),
            (Some(0), true),
            "upstream sees no damage"
        );
    }
    let (code, out) = ours_on(&["fsck", "-y"], devs);
    assert_eq!(code, Some(1), "{}", out);
    assert!(out.lines().all(|l| l.ends_with(", fixing")), "{}", out);
    assert_eq!(ours_on(&["check"], devs), (Some(0), String::new()));
    let after = shas(devs);
    assert_eq!(ours_on(&["fsck", "-y"], devs), (Some(0), String::new()));
    assert_eq!(shas(devs), after);
    if let Some(r) = &r {
        let (code, lines) = upstream_fsck(r, &devs[0]);
        assert_eq!(
            (code, lines),
            (Some(0), vec![]),
            "upstream after our repair"
        );
    }
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

/// A leaf whose start is moved on to its first key leaves a gap after its
/// neighbour's end (no key lost; the same gap as a neighbour's max_key short of
/// it); upstream's repair moves the start back.
#[test]
fn node_gap_between_neighbours_repaired() {
    let Some(devs) = moved_node_end(
        "basic",
        "fsck-gap",
        bcachefs_core::ids::btree::INODES,
        &|_, end, first| (end.successor() < first).then_some(Move::Start(first)),
    ) else {
        return;
    };
    verify_topology_repair(&devs, "gap between btree nodes");
}

/// A leaf whose end is moved past its neighbour's start, short of the neighbour's
/// first key: the two overlap (no key lost); the neighbour's start moves on.
#[test]
fn node_overlapping_neighbour_repaired() {
    let Some(devs) = moved_node_end(
        "basic",
        "fsck-overlap",
        bcachefs_core::ids::btree::INODES,
        &|_, end, first| {
            let next_start = end.successor();
            (next_start < first).then(|| Move::End(first.predecessor()))
        },
    ) else {
        return;
    };
    verify_topology_repair(&devs, "btree_node_topology_overwritten_by_prev_node");
}

/// A repair of one alloc key appends to the node in place: upstream's on-disk
/// listing of the alloc node shows every bset it had, unchanged, then one more at
/// the next block holding the repaired key; its key listing shows the key merged.
#[test]
fn repair_appends_one_bset_in_place() {
    let Some(r) = reference() else { return };
    let Some((bucket, img)) = common::edited_basic("fsck-append", |a| a.dirty_sectors += 8) else {
        return;
    };
    let list = |mode: &str| {
        let o = Command::new(&r)
            .args(["list", "-b", "alloc", "-m", mode])
            .arg(&img)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = list("nodes-ondisk");
    let (code, out) = ours(&["fsck", "-y"], &img);
    assert_eq!(code, Some(1), "{}", out);
    let after = list("nodes-ondisk");
    // basic's alloc btree is one node: the old listing is a prefix of the new.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("CONFIG_RUST") && !l.trim().is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (b, a) = (strip(&before), strip(&after));
    if let Some(i) = (0..b.len()).find(|&i| a.get(i) != b.get(i)) {
        panic!(
            "line {} of the on-disk listing changed: {:?} -> {:?}",
            i,
            b[i],
            a.get(i)
        );
    }
    let new = &a[b.len()..];
    let last_offset = |v: &[String]| {
        v.iter()
            .rev()
            .filter_map(|l| l.trim().strip_prefix("offset "))
            .find_map(|l| l.split_whitespace().next()?.parse::<u32>().ok())
    };
    assert!(new[0].trim().starts_with("offset "), "{:#?}", new);
    assert_eq!(
        last_offset(new),
        last_offset(&b).map(|o| o + 1),
        "{:#?}",
        new
    );
    assert_eq!(
        new.iter()
            .filter(|l| l.trim().starts_with("offset "))
            .count(),
        1
    );
    assert!(
        new[1].contains(&format!("type alloc_v4 0:{}:0", bucket)),
        "{:#?}",
        new
    );
    // The merged key carries the recount's dirty sectors.
    let (code, check) = ours(&["check"], &img);
    assert_eq!((code, check.as_str()), (Some(0), ""));
    let keys = list("keys");
    let at = keys.find(&format!("type alloc_v4 0:{}:0", bucket)).unwrap();
    let dirty_new = keys[at..]
        .lines()
        .find(|l| l.contains("dirty_sectors"))
        .unwrap()
        .to_string();
    let new_dirty = new.iter().find(|l| l.contains("dirty_sectors")).unwrap();
    assert_eq!(dirty_new.trim(), new_dirty.trim());
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// The first child of a node starting after its parent (moved on to its first
/// key): upstream's repair moves its start back to the parent's.
#[test]
fn first_child_bad_min_key_repaired() {
    let Some(devs) = moved_node_end(
        "basic",
        "fsck-first",
        bcachefs_core::ids::btree::INODES,
        &|last, _, first| {
            (last == Bpos::MIN && first > Bpos::MIN).then_some(Move::FirstStart(first))
        },
    ) else {
        return;
    };
    verify_topology_repair(&devs, "btree_node_topology_bad_min_key");
}

/// A filesystem that was not shut down cleanly (`unclean`: keys only in its
/// journal) with an alloc key's dirty sectors edited in a leaf: the repair keeps
/// the journal (its entries replay on top of it, after the seqs a crashed kernel
/// may have used are blacklisted) and leaves the filesystem dirty. Upstream's
/// fsck then replays it and finds nothing; the repair stopped after each write
/// leaves what upstream saw before, or the repair.
#[test]
fn dirty_filesystem_repaired_over_its_journal() {
    use bcachefs_core::alloc::format::DATA_USER;
    use bcachefs_core::ids::{btree, KeyType};
    let Some((p, img)) = common::edited_key(
        "unclean",
        "fsck-dirty-fs",
        btree::ALLOC,
        &|k, v| k.typ == KeyType::AllocV4 as u8 && AllocV4::read(v).data_type == DATA_USER,
        &|v| {
            let mut a = AllocV4::read(v);
            a.dirty_sectors += 8;
            a.write(v);
        },
    ) else {
        return;
    };
    let bitmap = |l: &str| {
        l.contains(" marked in bitmap") || l.contains("scheduling recovery pass btree_bitmap_gc")
    };
    let (code, out) = ours(&["fsck", "-n"], &img);
    assert_eq!(code, Some(4), "{}", out);
    assert!(out.contains(&format!("bucket 0:{} ", p.offset)), "{}", out);
    stop_after_each_write(std::slice::from_ref(&img), &bitmap);
    let (code, out) = ours(&["fsck", "-y"], &img);
    assert_eq!(code, Some(1), "{}", out);
    let (_, out) = ours(&["check"], &img);
    assert!(out.lines().all(bitmap), "{}", out);
    if let Some(r) = reference() {
        let (code, lines) = upstream_fsck(&r, &img);
        assert_eq!(code, Some(0), "{:#?}", lines);
        assert!(lines.iter().all(|l| bitmap(l)), "{:#?}", lines);
    }
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}
