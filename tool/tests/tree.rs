// SPDX-License-Identifier: GPL-2.0
//! The filesystem tree read offline through the core's `fs::tree` and `data::read`:
//! every fixture's tree equals the reference's manifest.tsv, every directory entry is
//! found again by a hashed lookup, and an unreadable extents leaf makes exactly the
//! files behind it fail.

mod common;

use std::ops::ControlFlow;

use bcachefs_core::fs::str_hash::{dirent_hash, HashInfo};
use bcachefs_core::fs::tree::{Tree, ROOT_SUBVOL};
use bcachefs_rs::hash::Hashes;
use bcachefs_rs::tree::{manifest, ImageKeys};

/// Every undamaged fixture has a manifest.
const WITH_MANIFEST: [&str; 10] = common::UNDAMAGED;

use common::open;

#[test]
fn tree_equals_every_manifest() {
    for fx in WITH_MANIFEST {
        let Some(fs) = open(fx) else { return };
        let mut out = Vec::new();
        let errors = manifest(&fs, &mut out).expect("manifest");
        let want =
            std::fs::read(common::fixtures().unwrap().join(fx).join("manifest.tsv")).unwrap();
        assert_eq!(errors, 0, "{}: errors", fx);
        assert!(out == want, "{}: the tree differs from manifest.tsv", fx);
    }
}

#[test]
fn every_entry_is_found_by_its_hash() {
    for fx in ["basic", "churn", "old-version"] {
        let Some(fs) = open(fx) else { return };
        let keys = ImageKeys::new(&fs);
        let (tree, root) = Tree::open(&keys, &Hashes, ROOT_SUBVOL).unwrap().unwrap();
        let (mut dirs, mut found, mut probed) = (vec![root], 0, 0);
        while let Some(d) = dirs.pop() {
            let u = tree.inode(d).unwrap().expect("directory inode");
            let info = HashInfo::of(&u);
            let mut entries = Vec::new();
            tree.readdir(d, 0, &mut |e| {
                entries.push((e.name.to_vec(), e.inum, e.offset, e.d_type));
                ControlFlow::Continue(())
            })
            .unwrap();
            for (name, inum, offset, d_type) in entries {
                let h = dirent_hash(&Hashes, &info, &name).expect("hash type supported");
                assert!(
                    h <= offset,
                    "{}: {:?} at {} hashes past it ({})",
                    fx,
                    name,
                    offset,
                    h
                );
                probed += usize::from(h != offset);
                let mut hit = None;
                assert!(tree
                    .lookup(d, &info, &name, &mut |e| hit = Some((e.inum, e.offset)))
                    .unwrap());
                assert_eq!(hit, Some((inum, offset)), "{}: lookup of {:?}", fx, name);
                found += 1;
                if d_type == 4 {
                    dirs.push(inum);
                }
            }
            let mut none = false;
            assert!(!tree
                .lookup(d, &info, b"no such name here", &mut |_| none = true)
                .unwrap());
            assert!(!none);
        }
        eprintln!(
            "{}: {} entries found by hash ({} after a collision)",
            fx, found, probed
        );
        assert!(found > 600, "{}: only {} entries", fx, found);
    }
}

#[test]
fn lost_extents_leaf_fails_exactly_its_files() {
    let Some(fs) = open("damaged-topology") else {
        return;
    };
    let mut out = Vec::new();
    let errors = manifest(&fs, &mut out).expect("manifest");
    let text = String::from_utf8(out).unwrap();
    let eio = text.lines().filter(|l| l.ends_with("\tEIO")).count();
    assert!(
        eio > 0 && errors as usize == eio,
        "{} EIO rows, {} errors",
        eio,
        errors
    );
    assert_eq!(text.lines().count(), 2844);
}
