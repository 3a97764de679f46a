// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs damage KIND IMAGE` on copies of `basic` (or another fixture where
//! a test says): our `fsck -n` then reports
//! the finding the damage is meant to cause, `fsck -y` repairs it, and after that
//! our `fsck -n` (and upstream's, where present) finds nothing.

mod common;

use common::{bin, copy_fixture, reference, run};

use std::path::Path;
use std::process::Command;

fn ours(args: &[&str], img: &Path) -> (Option<i32>, String) {
    run(Command::new(bin()).args(args).arg(img))
}

/// Damages a copy of `basic` as `kind`; every line of our `fsck -n` then names the
/// fsck error `finding` and contains `what`.
fn damaged_then_repaired(kind: &str, finding: &str, what: &str) {
    let Some(devs) = copy_fixture("basic", &format!("damage-{}", kind)) else {
        return;
    };
    let img = &devs[0];
    let (code, out) = ours(&["damage", kind], img);
    assert_eq!(code, Some(0), "damage {}: {}", kind, out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}: {}", kind, out);
    assert!(!out.is_empty(), "{}: no finding", kind);
    assert!(
        out.lines()
            .all(|l| l.contains(&format!("({};", finding)) && l.contains(what)),
        "{}: {}",
        kind,
        out
    );
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!(code, Some(1), "{}: {}", kind, out);
    assert!(out.lines().all(|l| l.ends_with(", fixing")), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "{} after the repair",
        kind
    );
    upstream_clean(img, kind);
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// Upstream's `fsck -n` (where the reference tool is present) finds nothing on
/// `img`, repaired from the damage `kind`.
fn upstream_clean(img: &Path, kind: &str) {
    if let Some(r) = reference() {
        let (code, out) = run(Command::new("timeout")
            .arg("300")
            .arg(r)
            .args(["fsck", "-n"])
            .arg(img));
        assert_eq!(code, Some(0), "upstream fsck -n after {}: {}", kind, out);
    }
}

#[test]
fn acct_dev() {
    damaged_then_repaired("acct-dev", "accounting_mismatch", "dev_data_type");
}

#[test]
fn acct_btree() {
    damaged_then_repaired("acct-btree", "accounting_mismatch", "for btree btree=");
}

#[test]
fn bucket_gen() {
    damaged_then_repaired(
        "bucket-gen",
        "bucket_gens_key_wrong",
        "bucket_gens: bucket 0:",
    );
}

#[test]
fn bitmap() {
    damaged_then_repaired(
        "bitmap",
        "btree_bitmap_not_marked",
        "not marked in member info btree allocated bitmap",
    );
}

#[test]
fn alloc_dirty() {
    damaged_then_repaired(
        "alloc-dirty",
        "alloc_key_dirty_sectors_wrong",
        "wrong dirty_sectors",
    );
}

#[test]
fn alloc_type() {
    damaged_then_repaired("alloc-type", "alloc_key_data_type_wrong", "wrong data_type");
}

/// alloc-free: a bucket in use (basic's last btree bucket below the free ones)
/// made free in its alloc key, the freespace extent above it grown over it. Our
/// fsck finds the alloc key's data type and dirty sectors wrong; `fsck -y` puts
/// them back and cuts the bucket out of the extent (upstream calls the extent
/// `freespace_key_wrong`), leaving the alloc, freespace, LRU and need_discard keys
/// exactly as basic has them, and upstream's fsck clean.
#[test]
fn alloc_free() {
    let Some(devs) = copy_fixture("basic", "damage-alloc-free") else {
        return;
    };
    let img = &devs[0];
    let (code, out) = ours(&["damage", "alloc-free"], img);
    assert_eq!(code, Some(0), "{}", out);
    assert!(out.contains("made free"), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}", out);
    assert!(
        out.contains("(alloc_key_data_type_wrong;") && out.contains("got free, should be"),
        "{}",
        out
    );
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!(code, Some(1), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!((code, out.as_str()), (Some(0), ""), "after the repair");
    let basic = common::image("basic", "img").unwrap();
    for bt in ["alloc", "freespace", "lru", "need_discard"] {
        let (_, want) = ours(&["list", "-b", bt], &basic);
        let (_, got) = ours(&["list", "-b", bt], img);
        assert!(got == want, "{}: not as basic has it", bt);
    }
    upstream_clean(img, "alloc-free");
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// bset-csum: the first extents leaf's first bset checksum flipped. Our fsck
/// finds the node read with a bad checksum (its keys used from that copy, nothing
/// dropped); `fsck -y` rewrites it to new space (on churn with a leaf of the
/// triggers' keys that has no room left), after which upstream's fsck is clean and
/// the extents are churn's.
/// Our listing of `img`'s extents is churn's (its device name read as DEV).
fn extents_as_churns(img: &Path) {
    let churn = common::image("churn", "img").unwrap();
    let (_, want) = ours(&["list", "-b", "extents"], &churn);
    let (_, got) = ours(&["list", "-b", "extents"], img);
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        got.replace(&name(img), "DEV") == want.replace(&name(&churn), "DEV"),
        "extents not as churn has them"
    );
}

#[test]
fn bset_csum() {
    let Some(devs) = copy_fixture("churn", "damage-bset-csum") else {
        return;
    };
    let img = &devs[0];
    let (code, out) = ours(&["damage", "bset-csum"], img);
    assert_eq!(code, Some(0), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}", out);
    let line = out
        .lines()
        .find(|l| l.starts_with("extents: btree node read error"))
        .unwrap_or_else(|| panic!("{}", out));
    assert!(
        line.contains("keys used from the copy that failed it (bset_bad_csum;"),
        "{}",
        line
    );
    assert!(!out.contains("bkey_invalid"), "{}", out);
    let (code, out) = ours(&["fsck", "-y", "-v"], img);
    assert_eq!(code, Some(1), "{}", out);
    // The leaf, and on churn a leaf of the triggers' keys that has no room left.
    assert!(
        out.contains(" 2 rewritten, 0 split") || out.contains(" 1 rewritten, 0 split"),
        "{}",
        out
    );
    upstream_clean(img, "bset-csum");
    extents_as_churns(img);
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// drop-leaf (on churn, whose extents btree is one level deep): the middle leaf's
/// pointer deleted from the root, the leaf left on disk. Our fsck finds the gap;
/// `fsck -y` scans the device, puts the leaf back (the backpointers btree still
/// names it there), and the extents are churn's again, upstream clean.
#[test]
fn drop_leaf() {
    let Some(devs) = copy_fixture("churn", "damage-drop-leaf") else {
        return;
    };
    let img = &devs[0];
    let (code, out) = ours(&["damage", "drop-leaf"], img);
    assert_eq!(code, Some(0), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}", out);
    assert!(
        out.lines()
            .any(|l| l.starts_with("extents: gap between btree nodes at btree=extents level=1")),
        "{}",
        out
    );
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!(code, Some(1), "{}", out);
    upstream_clean(img, "drop-leaf");
    extents_as_churns(img);
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// bset-csum-full on a copy of `fixture`: the fullest leaf (of btree `btree`)
/// gets its checksum flipped, and its live keys pass upstream's split threshold,
/// so that `fsck -y` rewrites it split in two; upstream clean after, and ours.
fn full_leaf_split(fixture: &str, btree: &str) {
    let Some(devs) = copy_fixture(fixture, "damage-bset-csum-full") else {
        return;
    };
    let img = &devs[0];
    let (code, out) = ours(&["damage", "bset-csum-full"], img);
    assert_eq!(code, Some(0), "{}", out);
    assert!(
        out.contains(&format!("{}: the fullest leaf", btree)),
        "{}",
        out
    );
    let (code, out) = ours(&["fsck", "-y", "-v"], img);
    assert_eq!(code, Some(1), "{}", out);
    assert!(out.contains(" 1 split, 0 new roots"), "{}", out);
    upstream_clean(img, &format!("bset-csum-full on {}", fixture));
    let (code, out) = ours(&["fsck", "-n"], img);
    assert!(
        code == Some(0) && !out.contains("accounting mismatch"),
        "{}",
        out
    );
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// On damaged-csum (whose dirents leaf already reads with a bad checksum): a
/// backpointers leaf.
#[test]
fn bset_csum_full() {
    full_leaf_split("damaged-csum", "backpointers");
}

/// On unclean (not shut down cleanly): an accounting leaf, split over a journal
/// that still replays. The accounting keys the split's triggers change get their
/// new totals on top of what replay leaves (before, on top of the listing's
/// view, they lost the journal's deltas: upstream then found an accounting
/// underflow and three mismatches).
#[test]
fn bset_csum_full_unclean() {
    full_leaf_split("unclean", "accounting");
}

/// oldest-gen is no finding (on churn: basic has no alloc key of a free bucket;
/// churn's one finding is its bitmap, as its fsck.txt says): each call puts one
/// more free bucket's oldest gen one behind, which only a gens pass advances.
#[test]
fn oldest_gen() {
    let Some(devs) = copy_fixture("churn", "damage-oldest-gen") else {
        return;
    };
    let img = &devs[0];
    for _ in 0..3 {
        let (code, out) = ours(&["damage", "oldest-gen"], img);
        assert_eq!(code, Some(0), "{}", out);
    }
    let (_, out) = ours(&["check", "-v"], img);
    assert!(
        out.contains(", 1 findings, 3 buckets whose oldest_gen would advance")
            && out.contains("btree_bitmap_gc: 1"),
        "{}",
        out
    );
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// An unknown kind is refused and leaves the image as it was.
#[test]
fn unknown_kind_refused() {
    let Some(devs) = copy_fixture("basic", "damage-unknown") else {
        return;
    };
    let before = std::fs::read(&devs[0]).unwrap();
    let (code, out) = ours(&["damage", "nonsense"], &devs[0]);
    assert_eq!(code, Some(2), "{}", out);
    assert!(out.contains("unknown damage kind"), "{}", out);
    assert!(std::fs::read(&devs[0]).unwrap() == before);
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

/// ptr-gen: an extent pointer's gen one past its bucket's. The pass does not count
/// that pointer, so the bucket's alloc key and the accounting look wrong too; the
/// repair fixes the pointer and recounts over it (its rounds), leaving the image
/// as it was before the damage.
#[test]
fn ptr_gen() {
    let Some(devs) = copy_fixture("basic", "damage-ptr-gen") else {
        return;
    };
    let img = &devs[0];
    let (_, before) = ours(&["list", "-b", "extents"], img);
    let (code, out) = ours(&["damage", "ptr-gen"], img);
    assert_eq!(code, Some(0), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!(code, Some(4), "{}", out);
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.contains("ptr gen in the future: 1 > 0")
            && first.contains("(ptr_gen_newer_than_bucket_gen;"),
        "{}",
        out
    );
    assert!(out.contains("(alloc_key_dirty_sectors_wrong;"), "{}", out);
    let (code, out) = ours(&["fsck", "-y"], img);
    assert_eq!(code, Some(1), "{}", out);
    assert_eq!(
        out.lines().count(),
        1,
        "only the pointer is a repair: {}",
        out
    );
    assert!(out.ends_with(", fixing\n"), "{}", out);
    let (code, out) = ours(&["fsck", "-n"], img);
    assert_eq!((code, out.as_str()), (Some(0), ""), "after the repair");
    let (_, after) = ours(&["list", "-b", "extents"], img);
    assert_eq!(before, after, "the extents as before the damage");
    upstream_clean(img, "ptr-gen");
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}
