// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs mutate` (the campaign's seeded damage): the same seed gives the
//! same bytes, every kind applies and changes the image, and the userspace tool
//! reads every mutated image of a seed range without panicking or hanging (the
//! host-side twin of the VM campaign). Also the regression cases the campaign
//! found in the shared superblock validation.

mod common;

use common::{bin, copy_fixture, run};

use std::path::{Path, PathBuf};
use std::process::Command;

use bcachefs_rs::mutate::MUTATIONS;

fn mutate(args: &[&str], imgs: &[PathBuf]) -> (Option<i32>, String) {
    run(Command::new(bin()).arg("mutate").args(args).args(imgs))
}

fn bytes(imgs: &[PathBuf]) -> Vec<Vec<u8>> {
    imgs.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn cleanup(imgs: &[PathBuf]) {
    std::fs::remove_dir_all(imgs[0].parent().unwrap()).unwrap();
}

#[test]
fn same_seed_same_bytes() {
    for fx in ["basic", "replicas2"] {
        for seed in [3u64, 11, 25] {
            let (Some(a), Some(b)) = (
                copy_fixture(fx, &format!("mut-a{}", seed)),
                copy_fixture(fx, &format!("mut-b{}", seed)),
            ) else {
                return;
            };
            let orig = bytes(&a);
            let (ca, oa) = mutate(&[&seed.to_string()], &a);
            let (cb, ob) = mutate(&[&seed.to_string()], &b);
            assert_eq!(
                (ca, cb),
                (Some(0), Some(0)),
                "{} {}: {} / {}",
                fx,
                seed,
                oa,
                ob
            );
            // The line names the same mutation; only the image paths differ.
            let strip = |s: &str, imgs: &[PathBuf]| {
                let mut s = s.to_string();
                for p in imgs {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    s = s.replace(p.parent().unwrap().to_str().unwrap(), "");
                    s = s.replace(name, "IMG");
                }
                s
            };
            assert_eq!(strip(&oa, &a), strip(&ob, &b));
            let (ba, bb) = (bytes(&a), bytes(&b));
            assert_eq!(
                ba, bb,
                "{} seed {}: copies differ after the same mutation",
                fx, seed
            );
            assert_ne!(ba, orig, "{} seed {}: nothing changed ({})", fx, seed, oa);
            cleanup(&a);
            cleanup(&b);
        }
    }
}

#[test]
fn every_kind_changes_the_image() {
    for (kind, _) in MUTATIONS {
        let Some(imgs) = copy_fixture("basic", &format!("mut-{}", kind)) else {
            return;
        };
        let orig = bytes(&imgs);
        let (code, out) = mutate(&["-k", kind, "7"], &imgs);
        assert_eq!(code, Some(0), "{}: {}", kind, out);
        assert!(out.starts_with(&format!("seed 7 {}: ", kind)), "{}", out);
        assert_ne!(bytes(&imgs), orig, "{}: nothing changed ({})", kind, out);
        cleanup(&imgs);
    }
}

#[test]
fn unknown_kind_is_refused() {
    let Some(imgs) = copy_fixture("basic", "mut-unknown") else {
        return;
    };
    let (code, out) = mutate(&["-k", "nonsense", "1"], &imgs);
    assert_eq!(code, Some(2), "{}", out);
    assert!(out.contains("unknown mutation nonsense"), "{}", out);
    cleanup(&imgs);
}

/// Runs the tool on `imgs` with a time limit: its exit code (124 on timeout).
fn tool_on(args: &[&str], imgs: &[PathBuf]) -> (Option<i32>, String) {
    run(Command::new("timeout")
        .args(["60", bin()])
        .args(args)
        .args(imgs))
}

/// The userspace half of the campaign: 60 seeds over basic and replicas2, each
/// image listed, checked and walked. Exit 101 is a Rust panic, 124 a hang (the
/// journal range past the device once read for hours): neither may happen.
#[test]
fn tool_survives_mutated_images() {
    let mut seen = std::collections::BTreeMap::new();
    for seed in 0..60u64 {
        let fx = if seed % 4 == 3 { "replicas2" } else { "basic" };
        let Some(imgs) = copy_fixture(fx, &format!("mut-tool{}", seed)) else {
            return;
        };
        let (code, out) = mutate(&[&seed.to_string()], &imgs);
        assert_eq!(code, Some(0), "seed {}: {}", seed, out);
        let kind = out
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .trim_end_matches(':');
        *seen.entry(kind.to_string()).or_insert(0) += 1;
        for args in [
            &["list", "-b", "extents", "-b", "dirents", "-b", "inodes"][..],
            &["list", "-m", "nodes-ondisk", "-b", "alloc"][..],
            &["check"][..],
            &["manifest"][..],
            &["list-journal"][..],
        ] {
            let (code, msg) = tool_on(args, &imgs);
            assert!(
                matches!(code, Some(0..=2)),
                "{} seed {} ({}): {:?} exited {:?}: {}",
                fx,
                seed,
                out.trim(),
                args,
                code,
                msg.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
        }
        cleanup(&imgs);
    }
    // The seeds cover most kinds.
    assert!(seen.len() >= 10, "kinds seen: {:?}", seen);
}

/// Campaign finding (seed 24 on basic): a journal_v2 range whose nr was made
/// huge had every reader walk billions of buckets past the device. The
/// superblock is now refused, as upstream refuses it (invalid_sb_journal).
#[test]
fn journal_range_past_the_device_is_refused() {
    let Some(imgs) = copy_fixture("basic", "mut-journal") else {
        return;
    };
    let path = &imgs[0];
    // basic's journal_v2 field: its first range's nr, high bytes set; resealed,
    // in every copy (upstream falls back to a good backup).
    let sb = read_sb(path);
    let s = bcachefs_core::sb::Sb { b: &sb };
    let f = s
        .field(bcachefs_core::sb::format::FIELD_JOURNAL_V2)
        .unwrap();
    let at = f.as_ptr() as usize - sb.as_ptr() as usize + 8 + 8 + 4;
    edit_every_sb_copy(path, &|c| c[at] += 2);
    refused_by_both(
        &imgs,
        "a journal range past the device",
        "invalid journal bucket list",
        "invalid_sb_journal",
    );
    cleanup(&imgs);
}

/// Applies `edit` to every superblock copy of the image at `path`, each copy
/// resealed for itself.
fn edit_every_sb_copy(path: &Path, edit: &dyn Fn(&mut [u8])) {
    let sb = read_sb(path);
    let layout = bcachefs_core::sb::Sb { b: &sb }.layout();
    for i in 0..layout.nr_superblocks() as usize {
        let off = layout.sb_offset(i).unwrap();
        let mut c = read_at(path, off, sb.len());
        edit(&mut c);
        reseal(&mut c);
        write_at(path, &c, off);
    }
}

/// Our `check` refuses the images (exit 2) saying `ours`, and upstream's `fsck -n`
/// (where present) refuses them naming `theirs`.
fn refused_by_both(imgs: &[PathBuf], what: &str, ours: &str, theirs: &str) {
    let (code, out) = tool_on(&["check"], imgs);
    assert_eq!(code, Some(2), "{}: {}", what, out);
    assert!(out.contains(ours), "{}: {}", what, out);
    if let Some(r) = common::reference() {
        let (code, out) = run(Command::new(r).args(["fsck", "-n"]).arg(&imgs[0]));
        assert_ne!(code, Some(0), "upstream took {}: {}", what, out);
        assert!(out.contains(theirs), "{}: {}", what, out);
    }
}

fn read_sb(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap();
    bcachefs_rs::fs::read_sb(&f, p.to_str().unwrap()).unwrap()
}

fn reseal(sb: &mut [u8]) {
    let t = bcachefs_core::sb::Sb { b: sb }.csum_type();
    let sum = bcachefs_core::csum::checksum(&bcachefs_rs::hash::Hashes, t, &sb[16..]).unwrap();
    sum.write(sb, 0);
}

fn read_at(p: &Path, sector: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len];
    std::fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut b, sector << 9)
        .unwrap();
    b
}

fn write_at(p: &Path, b: &[u8], sector: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(b, sector << 9).unwrap();
}

/// Campaign finding: a primary superblock failing its checksum made the device
/// unreadable, where upstream reads the backup copies (and takes the one with the
/// highest seq). Now both read the backup; a copy whose embedded layout is
/// broken is refused by both.
#[test]
fn backup_superblock_serves_a_bad_primary() {
    let Some(imgs) = copy_fixture("basic", "mut-sb-backup") else {
        return;
    };
    let path = &imgs[0];
    // A byte of the primary's label flipped, not resealed.
    let mut b = read_at(path, 8, 512);
    b[0x60] ^= 0x40;
    write_at(path, &b, 8);
    let (code, out) = tool_on(&["check"], &imgs);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "ours with a bad primary"
    );
    let (code, out) = tool_on(&["show-super"], &imgs);
    assert_eq!(code, Some(0), "{}", out);
    if let Some(r) = common::reference() {
        let (code, out) = run(Command::new(r).args(["fsck", "-n"]).arg(path));
        assert_eq!(code, Some(0), "upstream with a bad primary: {}", out);
    }
    cleanup(&imgs);

    // Every copy's embedded layout magic broken, each copy resealed.
    let Some(imgs) = copy_fixture("basic", "mut-sb-layout") else {
        return;
    };
    edit_every_sb_copy(&imgs[0], &|c| {
        c[bcachefs_core::sb::format::SB_LAYOUT + 3] ^= 1
    });
    refused_by_both(
        &imgs,
        "a broken layout",
        "invalid superblock layout",
        "invalid_sb_layout",
    );
    cleanup(&imgs);
}

/// Differential findings against upstream's fsck on mutated images (seeds 302
/// and 311 on basic): a clean section whose entry overruns it, and a device cut
/// shorter than its member entry, were read on; upstream refuses both
/// (`invalid_sb_clean`, `device_size_too_small`), and now so does the tool.
#[test]
fn overrunning_clean_section_and_truncated_device_are_refused() {
    for (seed, kind, ours, theirs) in [
        (
            302u64,
            "sb-backup",
            "invalid clean section",
            "invalid_sb_clean",
        ),
        (311, "truncate", "device too small", "device_size_too_small"),
    ] {
        let Some(imgs) = copy_fixture("basic", &format!("mut-diff{}", seed)) else {
            return;
        };
        let (code, out) = mutate(&[&seed.to_string()], &imgs);
        assert_eq!(code, Some(0), "{}", out);
        assert!(
            out.starts_with(&format!("seed {} {}:", seed, kind)),
            "{}",
            out
        );
        refused_by_both(&imgs, &format!("seed {}", seed), ours, theirs);
        cleanup(&imgs);
    }
}

/// Differential finding (seed 315 on basic: snapshot_trees' later bset zeroed): a
/// node holding fewer sectors than its pointer's `sectors_written` read without
/// a finding, where upstream reports `btree_node_data_missing` and rewrites the
/// node. Now `check` reports it, `fsck -y` rewrites the node, and upstream's fsck
/// no longer finds a node read error (what the lost bset held, a snapshot tree,
/// is for upstream's later passes).
#[test]
fn node_with_data_missing_is_found_and_rewritten() {
    let Some(imgs) = copy_fixture("basic", "mut-missing") else {
        return;
    };
    let (code, out) = mutate(&["315"], &imgs);
    assert!(
        code == Some(0) && out.starts_with("seed 315 node-stale:"),
        "{}",
        out
    );
    let (code, out) = tool_on(&["check"], &imgs);
    assert_eq!(code, Some(1), "{}", out);
    assert!(
        out.contains("data missing: expected 2 sectors, found 1 (btree_node_data_missing;"),
        "{}",
        out
    );
    if let Some(r) = common::reference() {
        let (_, out) = run(Command::new(r).args(["fsck", "-n"]).arg(&imgs[0]));
        assert!(out.contains("btree node data missing"), "{}", out);
    }
    let (code, out) = tool_on(&["fsck", "-y"], &imgs);
    assert_eq!(code, Some(1), "{}", out);
    let (code, out) = tool_on(&["fsck", "-n"], &imgs);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    if let Some(r) = common::reference() {
        let (_, out) = run(Command::new(r).args(["fsck", "-n"]).arg(&imgs[0]));
        assert!(
            !out.contains("btree node read error") && !out.contains("data missing"),
            "{}",
            out
        );
    }
    cleanup(&imgs);
}
