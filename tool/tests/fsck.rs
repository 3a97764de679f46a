// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs fsck -y` against upstream's own fsck: edited copies of `basic`
//! are repaired through the core's writers, then upstream's `fsck -n` and our
//! `check` find nothing, a second `fsck -y` changes nothing, upstream's on-disk
//! listing shows the appended bset, and a repair stopped after each of its writes
//! leaves an image upstream finds as it was before.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bcachefs_core::alloc::format::AllocV4;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bcachefs-rs")
}

fn reference() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/bcachefs");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

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
    let (code, out) = run(Command::new(r).args(["fsck", "-n"]).arg(img));
    let lines = out
        .lines()
        .filter(|l| {
            !(l.ends_with(" done (0 seconds)")
                || l.contains("done (")
                || l.starts_with("Running ")
                || l.starts_with("Using encoding")
                || l.starts_with("starting version")
                || l.starts_with("  with options")
                || l.starts_with("recovering from clean shutdown")
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

fn repair_and_verify(name: &str, edit: fn(&mut AllocV4)) {
    let Some((bucket, img)) = common::edited_basic(name, edit) else {
        return;
    };
    let (code, out) = ours(&["fsck", "-n"], &img);
    assert_eq!(code, Some(4), "{}", out);
    assert!(out.contains(&format!("bucket 0:{} ", bucket)), "{}", out);
    let before = sha(&img);
    // -n wrote nothing.
    assert_eq!(sha(&img), before);
    let (code, out) = ours(&["fsck", "-y"], &img);
    assert_eq!(code, Some(1), "{}", out);
    assert!(out.lines().all(|l| l.ends_with(", fixing")), "{}", out);
    assert_ne!(sha(&img), before);
    let (code, out) = ours(&["check"], &img);
    assert_eq!(code, Some(0), "after the repair: {}", out);
    let after = sha(&img);
    let (code, out) = ours(&["fsck", "-y"], &img);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    assert_eq!(sha(&img), after, "a second fsck -y changed the image");
    if let Some(r) = reference() {
        let (code, lines) = upstream_fsck(&r, &img);
        assert_eq!(
            code,
            Some(0),
            "upstream fsck -n after our repair: {:#?}",
            lines
        );
        assert!(
            lines.is_empty(),
            "upstream fsck -n after our repair: {:#?}",
            lines
        );
    }
    if std::env::var_os("KEEP").is_none() {
        std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
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

/// The repair stopped after each of its writes in turn (a sink that fails from
/// then on): upstream's fsck sees each stopped image exactly as it saw the edited
/// one, and a rerun of `fsck -y` completes the repair.
#[test]
fn repair_stopped_after_each_write() {
    let Some((_, img)) = common::edited_basic("fsck-crash", |a| a.dirty_sectors += 8) else {
        return;
    };
    let r = reference();
    let before = r.as_ref().map(|r| upstream_fsck(r, &img));
    let copy = img.parent().unwrap().join("stopped").join("img");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let mut stops = 0;
    let mut uncommitted = 0;
    for n in 0.. {
        std::fs::copy(&img, &copy).unwrap();
        let (code, out) = run(Command::new(bin())
            .env("BCACHEFS_RS_FAIL_AFTER_WRITES", n.to_string())
            .args(["fsck", "-y"])
            .arg(&copy));
        if code == Some(1) {
            // Enough writes allowed: the repair completed.
            assert!(n > 3, "a repair takes more than {} writes", n);
            break;
        }
        assert_eq!(code, Some(4 | 8), "stopped after {} writes: {}", n, out);
        assert!(out.contains("(BCACHEFS_RS_FAIL_AFTER_WRITES)"), "{}", out);
        // The first superblock copy is the commit point: before it the image is
        // as it was, after it the repair is there.
        let committed = ours(&["check"], &copy) == (Some(0), String::new());
        if let (Some(r), Some(before)) = (&r, &before) {
            let now = upstream_fsck(r, &copy);
            if committed {
                assert_eq!(now, (Some(0), vec![]), "stopped after {} writes", n);
            } else {
                assert_eq!(&now, before, "stopped after {} writes", n);
            }
        }
        let (code, out) = ours(&["fsck", "-y"], &copy);
        assert_eq!(
            code,
            Some(if committed { 0 } else { 1 }),
            "rerun after {} writes: {}",
            n,
            out
        );
        assert_eq!(ours(&["check"], &copy), (Some(0), String::new()));
        if let Some(r) = &r {
            let (code, lines) = upstream_fsck(r, &copy);
            assert_eq!(
                (code, lines),
                (Some(0), vec![]),
                "after a rerun from {} writes",
                n
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
    if std::env::var_os("KEEP").is_none() {
        std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
    }
}
