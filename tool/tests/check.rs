// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs check` (the core's gc pass) against the reference's fsck verdicts:
//! on every fixture the findings are exactly what `fsck.txt` reports, kind for kind;
//! the damaged-topology hole is found with its range; and an alloc key edited through
//! the core's own encoder (node checksum resealed) is caught with its bucket named.

mod common;

use bcachefs_core::alloc::format::AllocV4;
use bcachefs_core::gc::finding::{AllocField, Kind};
use bcachefs_core::ids;
use bcachefs_rs::check::check;
use bcachefs_rs::fs::Fs;

const ALL: [&str; 13] = [
    "basic",
    "churn",
    "csum-crc64",
    "csum-none",
    "csum-xxhash",
    "damaged-csum",
    "damaged-keys",
    "damaged-topology",
    "lz4",
    "old-version",
    "replicas2",
    "unclean",
    "zstd",
];

use common::files;

/// What the reference's fsck reports that a gc pass covers, as text our finding
/// lines must contain (device `img.fsck` is `img` here).
fn expected(fsck: &str) -> Vec<String> {
    let lines: Vec<&str> = fsck.lines().collect();
    let mut want = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("superblock requires following recovery passes to be run:")
            && l.contains("btree_bitmap_gc")
        {
            want.push(
                "superblock requires following recovery passes to be run: btree_bitmap_gc".into(),
            );
        }
        if let Some(p) = l.find(" has ").filter(|_| l.contains(" marked in bitmap")) {
            let dev = l[..p].trim().trim_end_matches(".fsck");
            want.push(format!("{}{}", dev, &l[p..]));
        }
        if let Some(p) = l.find("btree node read error at btree ") {
            let what = l[p..].trim_end_matches(':').to_string();
            // The node's first pointer, as `dev:bucket:offset`.
            let ptr = lines[i..]
                .iter()
                .find_map(|x| x.trim().strip_prefix("ptr: img.fsck "))
                .and_then(|x| x.split_whitespace().next())
                .expect("ptr line after a read error");
            // Both parts must be on the finding's line.
            want.push(format!("{}\t at {}", what, ptr));
        }
        if let Some(p) = l.find("gap between btree nodes at ") {
            want.push(l[p..].trim_end_matches(':').to_string());
        }
        if l.starts_with("check_allocations(): error") {
            want.push("check_allocations: ".into());
        }
    }
    want
}

#[test]
fn reference_verdicts_are_parsed() {
    let Some(fx_dir) = common::fixtures() else {
        return;
    };
    let t = std::fs::read_to_string(fx_dir.join("damaged-topology/fsck.txt")).unwrap();
    assert_eq!(
        expected(&t),
        [
            "btree node read error at btree extents level 0/1\t at 0:358:192",
            "check_allocations: ",
            "gap between btree nodes at btree=extents level=1",
            "img has 6.75M btree buckets and 42.0M marked in bitmap",
        ]
    );
    let c = std::fs::read_to_string(fx_dir.join("churn/fsck.txt")).unwrap();
    assert_eq!(expected(&c).len(), 1);
    let b = std::fs::read_to_string(fx_dir.join("basic/fsck.txt")).unwrap();
    assert!(expected(&b).is_empty());
}

#[test]
fn findings_are_what_the_reference_fsck_reports() {
    let Some(fx_dir) = common::fixtures() else {
        return;
    };
    for fx in ALL {
        let fsck = std::fs::read_to_string(fx_dir.join(fx).join("fsck.txt")).unwrap();
        let mut want = expected(&fsck);
        let fs = Fs::open(&files(fx).unwrap()).unwrap();
        let r = check(&fs);
        let mut unmatched = Vec::new();
        for line in &r.lines {
            let hit = want
                .iter()
                .position(|w| w.split('\t').all(|part| line.contains(part)));
            match hit {
                Some(i) => {
                    want.remove(i);
                }
                None => unmatched.push(line.clone()),
            }
        }
        assert!(
            unmatched.is_empty() && want.is_empty(),
            "{}: findings the reference does not report: {:#?}\nreference findings not found: {:#?}",
            fx,
            unmatched,
            want
        );
        // A pass visits every node and key, whatever it finds.
        assert!(
            r.stats.nodes >= 16 && r.stats.keys > 1000,
            "{}: {:?}",
            fx,
            r.stats
        );
    }
}

#[test]
fn topology_hole_is_found_with_its_range() {
    let Some(files) = files("damaged-topology") else {
        return;
    };
    let r = check(&Fs::open(&files).unwrap());
    let read = r
        .findings
        .iter()
        .find(|f| f.kind == Kind::NodeReadError)
        .expect("read error");
    assert_eq!(read.btree, Some(ids::btree::EXTENTS));
    assert_eq!((read.level, read.root_level), (0, 1));
    let gap = r
        .findings
        .iter()
        .find(|f| f.kind == Kind::GapBetweenNodes)
        .expect("gap");
    assert_eq!(gap.btree, Some(ids::btree::EXTENTS));
    let (a, b) = gap.range.unwrap();
    assert_eq!(a.to_string(), "2147488093:19:0");
    assert_eq!(b.to_string(), "2147488439:1:U32_MAX");
    let line = r.lines.iter().find(|l| l.contains("gap between")).unwrap();
    assert!(line.starts_with("extents: "), "{}", line);
    let line = r.lines.iter().find(|l| l.contains("read error")).unwrap();
    assert!(line.contains(" at 0:358:192"), "{}", line);
}

/// Copies `basic`, changes one user bucket's alloc key with `edit` and returns the
/// bucket and the check's findings on the copy.
fn edited_basic(name: &str, edit: fn(&mut AllocV4)) -> Option<(u64, bcachefs_rs::check::Report)> {
    let (bucket, dst) = common::edited_basic(&format!("check-{}", name), edit)?;
    let fs = Fs::open(&[dst.display().to_string()]).unwrap();
    let r = check(&fs);
    std::fs::remove_dir_all(dst.parent().unwrap()).unwrap();
    Some((bucket, r))
}

#[test]
fn edited_dirty_sectors_are_caught_with_the_bucket() {
    let Some((bucket, r)) = edited_basic("dirty", |a| a.dirty_sectors += 8) else {
        return;
    };
    assert_eq!(r.findings.len(), 1, "{:#?}", r.lines);
    let f = &r.findings[0];
    assert_eq!(f.kind, Kind::AllocKeyWrong);
    assert_eq!(f.field, Some(AllocField::DirtySectors));
    assert_eq!(f.bucket, Some((0, bucket)));
    assert_eq!(f.got, f.want + 8);
    assert!(
        r.lines[0].starts_with(&format!("alloc: bucket 0:{} gen ", bucket))
            && r.lines[0].contains("has wrong dirty_sectors"),
        "{}",
        r.lines[0]
    );
}

#[test]
fn edited_gen_is_caught_with_the_bucket() {
    let Some((bucket, r)) = edited_basic("gen", |a| a.gen = a.gen.wrapping_add(1)) else {
        return;
    };
    // Every pointer into the bucket is now stale, so the bucket is empty.
    assert!(!r.findings.is_empty());
    assert!(
        r.findings
            .iter()
            .filter(|f| f.kind == Kind::StaleDirtyPtr)
            .all(|f| f.bucket == Some((0, bucket))),
        "{:#?}",
        r.lines
    );
    assert!(r.findings.iter().any(|f| f.kind == Kind::StaleDirtyPtr));
    assert!(r.findings.iter().any(|f| f.kind == Kind::AllocKeyWrong
        && f.bucket == Some((0, bucket))
        && f.field == Some(AllocField::DirtySectors)
        && f.want == 0));
}

#[test]
fn exit_codes() {
    let Some(basic) = files("basic") else { return };
    let Some(churn) = files("churn") else { return };
    let bin = env!("CARGO_BIN_EXE_bcachefs-rs");
    let run = |args: &[String]| {
        std::process::Command::new(bin)
            .arg("check")
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&basic);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let o = run(&churn);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("superblock: "));
    let junk = std::env::temp_dir().join(format!("bcachefs-rs-junk-{}", std::process::id()));
    std::fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    let o = run(&[junk.display().to_string()]);
    std::fs::remove_file(&junk).unwrap();
    assert_eq!(o.status.code(), Some(2));
}
