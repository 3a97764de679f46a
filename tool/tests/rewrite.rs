// SPDX-License-Identifier: GPL-2.0
//! New btree nodes: nodes rewritten to new space (fsck's repair of a node read
//! with a bad checksum), leaves that split as keys go in, a root that splits and
//! the tree one level deeper; each checked against upstream's `fsck -n` and
//! `list`, and over a commit stopped after each of its writes.

mod common;

use common::{bin, reference, run};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bcachefs_core::alloc::format::{acct, AccountingPos};
use bcachefs_core::bkey::{Bkey, BKEY_U64S};
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::fs::inode_format;
use bcachefs_core::fs::str_hash::{str_hash, HashInfo};
use bcachefs_core::gc::accounting::pos as acct_pos;
use bcachefs_core::ids::{self, KeyType};
use bcachefs_rs::fs::Fs;
use bcachefs_rs::hash::Hashes;
use bcachefs_rs::repair::{commit, leaf_key, FileSink, SbChanges, Update};
use bcachefs_rs::update::{Stats, Txn};

/// A copy of fixture `fx`'s single device, in its own scratch directory.
fn copy_fixture(fx: &str, tag: &str) -> Option<PathBuf> {
    common::copy_fixture(fx, tag).map(|mut d| d.remove(0))
}

/// Lines of upstream's `fsck -n` that report anything: its exit code and those
/// lines, leaving out progress chatter and the bitmap message every churn copy
/// gets.
fn upstream_fsck(r: &Path, img: &Path) -> (Option<i32>, Vec<String>) {
    let (code, out) = run(Command::new("timeout")
        .arg("300")
        .arg(r)
        .args(["fsck", "-n"])
        .arg(img));
    assert_ne!(code, Some(124), "upstream fsck -n timed out");
    let lines = out
        .lines()
        .map(|l| match l.split_once("...") {
            Some((pass, rest)) if pass.chars().all(|c| c.is_ascii_lowercase() || c == '_') => rest,
            _ => l,
        })
        .filter(|l| !l.is_empty() && !l.contains("done ("))
        .filter(|l| {
            ![
                "Running ",
                "Using encoding",
                "starting version",
                "  with options",
                "recovering from clean shutdown",
                "Journal keys:",
                "going read-write",
                "clean shutdown complete",
                "WARNING: kernel does not have CONFIG_RUST",
                "         please alert",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .filter(|l| {
            !(l.contains(" marked in bitmap")
                || l.contains("scheduling recovery pass btree_bitmap_gc")
                || l.starts_with("mi_btree_bitmap sectors")
                || l.contains("requires following recovery passes to be run: btree_bitmap_gc"))
        })
        .map(String::from)
        .collect();
    (code, lines)
}

fn assert_upstream_clean(img: &Path, what: &str) {
    if let Some(r) = reference() {
        let (code, lines) = upstream_fsck(&r, img);
        assert_eq!(code, Some(0), "{}: {:#?}", what, lines);
        assert!(lines.is_empty(), "{}: upstream fsck -n: {:#?}", what, lines);
    }
}

/// Upstream's `list -m keys -b btree -l 0` (its standard output), or ours where
/// it is absent.
fn listing(img: &Path, btree: &str) -> String {
    let o = match reference() {
        Some(r) => Command::new(r)
            .args(["list", "-m", "keys", "-b", btree, "-l", "0"])
            .arg(img)
            .output(),
        None => Command::new(bin())
            .args(["list", "-b", btree])
            .arg(img)
            .output(),
    }
    .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The node of `btree` at `level` whose range holds `pos`: its pointer.
fn node_at(fs: &Fs, btree: u32, level: u8, pos: Bpos) -> (Bkey, Vec<u8>) {
    let root = fs.roots[btree as usize].clone().unwrap();
    let (mut k, mut v) = (root.k, root.v);
    let mut w = bcachefs_rs::list::Walk { fs, errors: 0 };
    for l in (level + 1..=root.level).rev() {
        let c = w
            .node_keys(btree, l, &k, &v)
            .into_iter()
            .find(|c| c.k.p >= pos)
            .unwrap();
        k = c.k;
        v = c.v;
    }
    (k, v)
}

/// damaged-csum (a dirents leaf) and damaged-keys (an inodes leaf): `fsck -y`
/// rewrites the node to a new bucket from the keys that read, upstream's fsck
/// then finds nothing and lists exactly what it listed for that btree before,
/// and a second `fsck -y` has nothing to do.
#[test]
fn damaged_nodes_rewritten() {
    for (fx, btree, name) in [
        ("damaged-csum", ids::btree::DIRENTS, "dirents"),
        ("damaged-keys", ids::btree::INODES, "inodes"),
    ] {
        let Some(img) = copy_fixture(fx, "rewrite") else {
            return;
        };
        let fs = Fs::open(&[img.display().to_string()]).unwrap();
        let r = bcachefs_rs::check::check(&fs);
        let f = r
            .findings
            .iter()
            .find(|f| f.btree == Some(btree) && f.node.is_some())
            .expect("the damaged node");
        let max = f.node.unwrap().max;
        let (_, old_v) = node_at(&fs, btree, 0, max);
        let old = BtreePtr::decode(KeyType::BtreePtrV2 as u8, &old_v).unwrap();
        let old_ptr = old.ptrs().next().unwrap();
        drop(fs);
        let (code, out) = run(Command::new(bin()).args(["fsck", "-y", "-v"]).arg(&img));
        assert_eq!(code, Some(1), "{}", out);
        let line = out
            .lines()
            .find(|l| l.contains("btree node read error"))
            .unwrap();
        assert!(line.ends_with(", fixing"), "{}", line);
        assert!(
            out.contains(" 1 rewritten, 0 split, 0 new roots"),
            "{}",
            out
        );
        // The node moved to a bucket of its own, with a new seq.
        let fs = Fs::open(&[img.display().to_string()]).unwrap();
        let (k, v) = node_at(&fs, btree, 0, max);
        assert_eq!(k.p, max);
        let new = BtreePtr::decode(k.typ, &v).unwrap();
        let new_ptr = new.ptrs().next().unwrap();
        let bs = u64::from(fs.sb().member(0).unwrap().bucket_size());
        assert_ne!(new_ptr.offset / bs, old_ptr.offset / bs, "{}", fx);
        assert_ne!(new.seq, old.seq);
        assert!(!new.range_updated);
        let r = bcachefs_rs::check::check(&fs);
        assert!(
            r.lines.iter().all(|l| l.contains(" marked in bitmap")),
            "{}: {:#?}",
            fx,
            r.lines
        );
        drop(fs);
        let (code, out) = run(Command::new(bin()).args(["fsck", "-y"]).arg(&img));
        assert_eq!(code, Some(0), "{}", out);
        assert_upstream_clean(&img, fx);
        let want = common::fixtures().map(|f| {
            std::fs::read_to_string(f.join(fx).join("list").join(format!("{}.txt", name))).unwrap()
        });
        if reference().is_some() {
            assert!(
                listing(&img, name) == want.unwrap(),
                "{}: {} listing differs",
                fx,
                name
            );
        }
        std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
    }
}

/// Xattrs of the root directory put into a copy of churn through the commit
/// path, with the accounting they count in: a model of the keys, and the batches
/// written so far.
struct Xattrs {
    img: PathBuf,
    info: HashInfo,
    keys: BTreeMap<Bpos, Vec<u8>>,
    next: usize,
}

const ROOT_INO: u64 = 4096;
/// `KEY_TYPE_XATTR_INDEX_USER`.
const XATTR_USER: u8 = 0;
/// Value bytes of each xattr: a big key, so that few of them fill a leaf.
const VAL_LEN: usize = 1500;

impl Xattrs {
    fn new(img: PathBuf) -> Xattrs {
        let fs = Fs::open(&[img.display().to_string()]).unwrap();
        let (k, v) = leaf_key(&fs, ids::btree::INODES, Bpos::new(0, ROOT_INO, u32::MAX)).unwrap();
        let u = inode_format::unpack(&k, &v).unwrap();
        Xattrs {
            img,
            info: HashInfo::of(&u),
            keys: BTreeMap::new(),
            next: 0,
        }
    }

    /// The transaction that adds the next `n` xattrs (and the model with them).
    fn batch(&mut self, n: usize) -> Txn {
        self.batch_sized(n, VAL_LEN)
    }

    /// The next `n` xattrs with values of `val_len` bytes.
    fn batch_sized(&mut self, n: usize, val_len: usize) -> Txn {
        let mut updates = Vec::new();
        let mut bytes = 0i64;
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let name = format!("k{:06}", i);
            let mut search = vec![XATTR_USER];
            search.extend_from_slice(name.as_bytes());
            let mut off = str_hash(&Hashes, &self.info, &search).unwrap();
            while self.keys.contains_key(&Bpos::new(ROOT_INO, off, u32::MAX)) {
                off += 1;
            }
            let p = Bpos::new(ROOT_INO, off, u32::MAX);
            let mut v = vec![0u8; (4 + name.len() + val_len).div_ceil(8) * 8];
            v[0] = XATTR_USER;
            v[1] = name.len() as u8;
            v[2..4].copy_from_slice(&(val_len as u16).to_le_bytes());
            v[4..4 + name.len()].copy_from_slice(name.as_bytes());
            v[4 + name.len()..4 + name.len() + val_len].fill(b'a' + (i % 26) as u8);
            bytes += ((BKEY_U64S + v.len() / 8) * 8) as i64;
            self.keys.insert(p, v.clone());
            updates.push(Update {
                btree: ids::btree::XATTRS,
                level: 0,
                k: Bkey {
                    typ: KeyType::Xattr as u8,
                    p,
                    ..Default::default()
                },
                v,
                journal_v: None,
            });
        }
        // Per-snapshot accounting: keys and their bytes in (U32_MAX, xattrs).
        let mut u = [0u8; 8];
        u[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        u[4..].copy_from_slice(&ids::btree::XATTRS.to_le_bytes());
        let at: AccountingPos = acct_pos(acct::SNAPSHOT, &u);
        Txn {
            updates,
            rewrite: Vec::new(),
            acct: vec![(at, [n as i64, bytes, 0])],
        }
    }

    /// A transaction of random inserts (values of 8..1500 bytes) and deletions
    /// of keys the model holds, drawn from `rng`.
    fn random_batch(&mut self, rng: &mut Rng) -> Txn {
        let mut updates: BTreeMap<Bpos, Update> = BTreeMap::new();
        let (mut keys, mut bytes) = (0i64, 0i64);
        for _ in 0..1 + rng.next() % 40 {
            let del = !self.keys.is_empty() && rng.next().is_multiple_of(3);
            if del {
                let i = (rng.next() % self.keys.len() as u64) as usize;
                let p = *self.keys.keys().nth(i).unwrap();
                if updates.contains_key(&p) {
                    continue;
                }
                let v = self.keys.remove(&p).unwrap();
                keys -= 1;
                bytes -= ((BKEY_U64S + v.len() / 8) * 8) as i64;
                updates.insert(
                    p,
                    Update {
                        btree: ids::btree::XATTRS,
                        level: 0,
                        k: Bkey {
                            typ: KeyType::Deleted as u8,
                            p,
                            ..Default::default()
                        },
                        v: Vec::new(),
                        journal_v: None,
                    },
                );
            } else {
                let len = 8 + (rng.next() % 1492) as usize;
                let mut t = self.batch_sized(1, len);
                let u = t.updates.pop().unwrap();
                keys += 1;
                bytes += ((BKEY_U64S + u.v.len() / 8) * 8) as i64;
                updates.insert(u.k.p, u);
            }
        }
        let mut t = self.batch(0);
        t.updates = updates.into_values().collect();
        t.acct[0].1 = [keys, bytes, 0];
        t
    }

    fn commit(&self, txn: &Txn, fail_after: Option<usize>) -> Result<Stats, String> {
        let paths = [self.img.display().to_string()];
        let fs = Fs::open(&paths).unwrap();
        let mut sink = FileSink::open(&fs, &paths).unwrap();
        if let Some(n) = fail_after {
            sink = sink.failing_after(n);
        }
        commit(&fs, txn, &SbChanges::default(), &mut sink)
    }

    /// Every btree node replica (dev, sector), and each bucket's data type.
    #[allow(clippy::type_complexity)]
    fn space(&self) -> (BTreeMap<(u8, u64), u32>, BTreeMap<(u32, u64), u8>) {
        let fs = Fs::open(&[self.img.display().to_string()]).unwrap();
        let mut nodes = BTreeMap::new();
        for (btree, root) in fs.roots.iter().enumerate() {
            let Some(root) = root else { continue };
            let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
            let mut cb = |_: &mut bcachefs_rs::list::Walk<'_>, _: u8, k: &Bkey, v: &[u8]| {
                if let Some(bp) = BtreePtr::decode(k.typ, v) {
                    for p in bp.ptrs() {
                        nodes.insert((p.dev, p.offset), btree as u32);
                    }
                }
            };
            w.nodes(btree as u32, root.level, &root.k, &root.v, 0, &mut cb);
        }
        let mut types = BTreeMap::new();
        let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
        w.leaf_keys(ids::btree::ALLOC, &mut |k| {
            if let Some(a) = bcachefs_core::alloc::format::AllocV4::from_key(k.k.typ, &k.v) {
                types.insert((k.k.p.inode as u32, k.k.p.offset), a.data_type);
            }
        });
        (nodes, types)
    }

    /// Every node the last commit made lies in a bucket the alloc btree said
    /// was free before it (`before` from [`Xattrs::space`]); after it, that bucket
    /// says btree.
    #[allow(clippy::type_complexity)]
    fn new_nodes_in_free_buckets(
        &self,
        before: &(BTreeMap<(u8, u64), u32>, BTreeMap<(u32, u64), u8>),
    ) {
        use bcachefs_core::alloc::format::{DATA_BTREE, DATA_FREE};
        let (after_nodes, after_types) = self.space();
        let fs = Fs::open(&[self.img.display().to_string()]).unwrap();
        let bs = u64::from(fs.sb().member(0).unwrap().bucket_size());
        let mut new = 0;
        for &(dev, off) in after_nodes.keys() {
            if before.0.contains_key(&(dev, off)) {
                continue;
            }
            new += 1;
            let b = (u32::from(dev), off / bs);
            let was = before.1.get(&b).copied().unwrap_or(DATA_FREE);
            // A bucket this commit opened holds several of its new nodes.
            let opened = before.0.keys().all(|&(d, o)| (u32::from(d), o / bs) != b);
            assert!(
                was == DATA_FREE && opened,
                "new node at {}:{} in bucket {:?} that was type {}",
                dev,
                off,
                b,
                was
            );
            assert_eq!(after_types.get(&b), Some(&DATA_BTREE));
        }
        assert!(new > 0, "the commit made no node");
    }

    fn depth(&self) -> u8 {
        let fs = Fs::open(&[self.img.display().to_string()]).unwrap();
        fs.roots[ids::btree::XATTRS as usize]
            .as_ref()
            .unwrap()
            .level
    }

    /// The xattr positions we list equal the model's, and upstream lists them
    /// exactly as we do (`user.` names: the index upstream numbers from 0).
    fn verify(&self, what: &str) {
        let positions = |out: &str| -> Vec<Bpos> {
            out.lines()
                .filter(|l| l.starts_with("u64s "))
                .map(|l| {
                    let p = l.split_whitespace().nth(4).unwrap();
                    let f: Vec<&str> = p.split(':').collect();
                    Bpos::new(
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        if f[2] == "U32_MAX" {
                            u32::MAX
                        } else {
                            f[2].parse().unwrap()
                        },
                    )
                })
                .collect()
        };
        let o = Command::new(bin())
            .args(["list", "-b", "xattrs"])
            .arg(&self.img)
            .output()
            .unwrap();
        let ours = String::from_utf8_lossy(&o.stdout).into_owned();
        let want: Vec<Bpos> = self.keys.keys().cloned().collect();
        assert_eq!(positions(&ours), want, "{}", what);
        if reference().is_some() {
            assert!(
                listing(&self.img, "xattrs") == ours,
                "{}: listings differ",
                what
            );
        }
        // churn asks for a btree_bitmap_gc pass from the start.
        let (_, out) = run(Command::new(bin()).arg("check").arg(&self.img));
        assert!(
            out.lines()
                .all(|l| l.contains(" marked in bitmap") || l.contains("(btree_bitmap_gc;")),
            "{}: {}",
            what,
            out
        );
        assert_upstream_clean(&self.img, what);
    }
}

/// Xattrs go into churn's (empty) xattrs btree, a root at level 1 over five
/// leaves, in batches: the root directory's leaf splits, leaves keep splitting
/// as more arrive, and when the root has more children than it may hold it
/// splits too: a new root one level up.
#[test]
fn leaves_and_root_split() {
    let Some(img) = copy_fixture("churn", "split") else {
        return;
    };
    let mut x = Xattrs::new(img);
    assert_eq!(x.depth(), 1);
    // Twelve keys of 1.5 KiB do not fit a 16 KiB leaf: it is rewritten, and
    // split, since they are more than it takes before it splits.
    let t = x.batch(12);
    let s = x.commit(&t, None).unwrap();
    assert_eq!((s.split, s.new_roots), (1, 0), "{:?}", s);
    x.verify("first leaf split");
    let mut splits = 1;
    let mut batches = 1;
    while x.depth() == 1 {
        let t = x.batch(48);
        let before = x.space();
        let s = x.commit(&t, None).unwrap();
        x.new_nodes_in_free_buckets(&before);
        splits += s.split;
        batches += 1;
        assert!(batches < 60, "the root never split");
    }
    assert_eq!(x.depth(), 2);
    eprintln!(
        "{} xattrs in {} batches: {} splits before the root split",
        x.keys.len(),
        batches,
        splits
    );
    x.verify("root split");
    // More keys into the deeper tree.
    let t = x.batch(48);
    x.commit(&t, None).unwrap();
    x.verify("after the root split");
    std::fs::remove_dir_all(x.img.parent().unwrap()).unwrap();
}

/// A commit that splits a leaf, stopped after each of its writes: every image
/// left behind is the old one for upstream's fsck (clean, the keys absent) or
/// the new one (clean, the keys there), and the commit made again completes.
#[test]
fn split_stopped_after_each_write() {
    let Some(img) = copy_fixture("churn", "split-crash") else {
        return;
    };
    let x = Xattrs::new(img.clone());
    let stopped = img.parent().unwrap().join("stopped");
    std::fs::create_dir_all(&stopped).unwrap();
    let copy = stopped.join("img");
    let (mut before, mut after) = (0, 0);
    for n in 0.. {
        std::fs::copy(&img, &copy).unwrap();
        let mut y = Xattrs::new(copy.clone());
        let t = y.batch(12);
        match y.commit(&t, Some(n)) {
            Ok(s) => {
                assert_eq!(s.split, 1);
                assert!(n > 5, "a split commit takes more than {} writes", n);
                break;
            }
            Err(e) => assert!(e.contains("BCACHEFS_RS_FAIL_AFTER_WRITES"), "{}", e),
        }
        let listed = run(Command::new(bin())
            .args(["list", "-b", "xattrs"])
            .arg(&copy))
        .1;
        let committed = listed.lines().any(|l| l.starts_with("u64s "));
        assert_upstream_clean(&copy, &format!("stopped after {} writes", n));
        if committed {
            y.verify(&format!("stopped after {} writes", n));
            after += 1;
        } else {
            // Made again from the start, it completes.
            let s = y.commit(&t, None).unwrap();
            assert_eq!(s.split, 1);
            y.verify(&format!("redone after {} writes", n));
            before += 1;
        }
    }
    eprintln!("{} stops before the commit point, {} after", before, after);
    assert!(
        before >= 5 && after >= 1,
        "{} before, {} after",
        before,
        after
    );
    drop(x);
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// A copy of churn whose extents leaf (one in the middle) is dropped from its
/// parent, the node left on disk: `fsck -y` finds the gap, scans the device,
/// finds the node (the backpointers btree still names it there) and puts it
/// back: upstream's fsck finds nothing and lists every extent churn had.
#[test]
fn dropped_leaf_found_by_scan() {
    let Some(img) = copy_fixture("churn", "scan") else {
        return;
    };
    let paths = [img.display().to_string()];
    let fs = Fs::open(&paths).unwrap();
    let btree = ids::btree::EXTENTS;
    let root = fs.roots[btree as usize].clone().unwrap();
    assert_eq!(root.level, 1);
    let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    let children = w.node_keys(btree, 1, &root.k, &root.v);
    let victim = children[children.len() / 2].k;
    drop(fs);
    // The middle leaf's pointer deleted through the commit path (damage drop-leaf).
    let dropped = bcachefs_rs::edit::drop_leaf(&paths, btree).unwrap();
    assert_eq!(dropped, victim.p);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-n"]).arg(&img));
    assert_eq!(code, Some(4), "{}", out);
    assert!(out.contains("gap between btree nodes"), "{}", out);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y"]).arg(&img));
    assert_eq!(code, Some(1), "{}", out);
    // The pointer is back as it was.
    let fs = Fs::open(&paths).unwrap();
    let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    let root = fs.roots[btree as usize].clone().unwrap();
    let now = w.node_keys(btree, 1, &root.k, &root.v);
    assert_eq!(now.len(), children.len());
    let back = now
        .iter()
        .find(|c| c.k.p == victim.p)
        .expect("the leaf's pointer");
    let was = children.iter().find(|c| c.k.p == victim.p).unwrap();
    // All but `mem_ptr`, which upstream leaves as it was in memory and readers
    // ignore.
    assert_eq!(back.v[8..], was.v[8..], "the pointer put back differs");
    drop(fs);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y"]).arg(&img));
    assert_eq!(code, Some(0), "{}", out);
    assert_upstream_clean(&img, "dropped leaf put back");
    if let Some(f) = common::fixtures() {
        if reference().is_some() {
            let want = std::fs::read_to_string(f.join("churn/list/extents.txt")).unwrap();
            assert!(listing(&img, "extents") == want, "extents listing differs");
        }
    }
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// xorshift, for reproducible random sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random inserts and deletions, batch after batch, through the real commit
/// path on a copy of churn (in /dev/shm where there is one: an image in memory):
/// after every batch the btree read back through the core holds exactly the
/// model's keys and `check` finds every node valid and every count right;
/// upstream's fsck and listing agree every few batches and at the end.
/// `BCACHEFS_RS_RANDOM_SEEDS=N` runs N seeds (default 3), `..._BATCHES` sets the
/// batches per seed (default 12).
#[test]
fn random_inserts_and_deletes() {
    let Some(src) = copy_fixture("churn", "random") else {
        return;
    };
    let seeds: u64 = std::env::var("BCACHEFS_RS_RANDOM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let batches: usize = std::env::var("BCACHEFS_RS_RANDOM_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.join(format!("bcachefs-rs-random-{}", std::process::id()))
    } else {
        src.parent().unwrap().join("work")
    };
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("img");
    let mut stats = Stats::default();
    for seed in 1..=seeds {
        let st = Command::new("cp")
            .args(["--sparse=always"])
            .arg(&src)
            .arg(&img)
            .status()
            .unwrap();
        assert!(st.success());
        let mut x = Xattrs::new(img.clone());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        for b in 0..batches {
            let t = x.random_batch(&mut rng);
            let s = x
                .commit(&t, None)
                .unwrap_or_else(|e| panic!("seed {} batch {}: {}", seed, b, e));
            stats.appended += s.appended;
            stats.rewritten += s.rewritten;
            stats.split += s.split;
            stats.new_roots += s.new_roots;
            let fs = Fs::open(&[img.display().to_string()]).unwrap();
            let mut got = Vec::new();
            let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
            w.leaf_keys(ids::btree::XATTRS, &mut |k| {
                if k.k.typ != KeyType::Deleted as u8 {
                    got.push((k.k.p, k.v.clone()));
                }
            });
            assert_eq!(w.errors, 0, "seed {} batch {}: node errors", seed, b);
            let want: Vec<(Bpos, Vec<u8>)> = x.keys.iter().map(|(p, v)| (*p, v.clone())).collect();
            assert!(
                got == want,
                "seed {} batch {}: keys differ from the model",
                seed,
                b
            );
            let r = bcachefs_rs::check::check(&fs);
            assert!(
                r.lines
                    .iter()
                    .all(|l| l.contains(" marked in bitmap") || l.contains("(btree_bitmap_gc;")),
                "seed {} batch {}: {:#?}",
                seed,
                b,
                r.lines
            );
            if b % 4 == 3 || b + 1 == batches {
                x.verify(&format!("seed {} batch {}", seed, b));
            }
        }
    }
    eprintln!("{} seeds x {} batches: {:?}", seeds, batches, stats);
    assert!(
        stats.split > 0 && stats.rewritten + stats.split > 0,
        "{:?}",
        stats
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(src.parent().unwrap()).unwrap();
}

/// churn asks for a `btree_bitmap_gc` pass; a copy with one extents leaf's key
/// bytes flipped (its checksum then fails) gets both in one commit: the node
/// rewritten to a new bucket and the bitmap rebuilt, marking the new node too.
#[test]
fn rewrite_and_bitmap_gc_in_one_commit() {
    let Some(img) = copy_fixture("churn", "rewrite-bitmap") else {
        return;
    };
    let paths = [img.display().to_string()];
    let fs = Fs::open(&paths).unwrap();
    let btree = ids::btree::EXTENTS;
    let root = fs.roots[btree as usize].clone().unwrap();
    let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    let children = w.node_keys(btree, root.level, &root.k, &root.v);
    let victim = &children[children.len() / 3];
    let bp = BtreePtr::decode(victim.k.typ, &victim.v).unwrap();
    let at = bp.ptrs().next().unwrap().offset * 512 + 400;
    drop(fs);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x40;
        f.write_all_at(&b, at).unwrap();
    }
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y", "-v"]).arg(&img));
    assert_eq!(code, Some(1), "{}", out);
    assert!(!out.contains(" 0 rewritten"), "{}", out);
    let (code, out) = run(Command::new(bin()).arg("check").arg(&img));
    assert!(
        out.lines().all(|l| l.contains(" marked in bitmap")),
        "{:?} {}",
        code,
        out
    );
    assert_upstream_clean(&img, "rewrite with btree_bitmap_gc");
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}

/// replicas2: a later bset of a dirents leaf fails its checksum (a header byte
/// flipped, its keys intact). On one device only, the other replica is read and
/// there is nothing to repair; on both, the node's keys are used from the bad
/// copies and `fsck -y` rewrites it to new buckets on both devices, after which
/// upstream's fsck finds nothing and lists the dirents the fixture had.
#[test]
fn replicated_node_rewritten_on_both_devices() {
    let Some(devs) = common::copy_fixture("replicas2", "rewrite") else {
        return;
    };
    let paths: Vec<String> = devs.iter().map(|d| d.display().to_string()).collect();
    let fs = Fs::open(&paths).unwrap();
    let btree = ids::btree::DIRENTS;
    let (k, v) = node_at(&fs, btree, 0, Bpos::MIN);
    let old = BtreePtr::decode(k.typ, &v).unwrap();
    let old_ptrs: Vec<_> = old.ptrs().collect();
    assert_eq!(old_ptrs.len(), 2);
    // The second bset's header, past the checksum: a bit of its journal seq.
    let second = fs.read_node(btree, 0, &k, &v).unwrap().bsets[1].offset;
    drop(fs);
    let flip = |d: &Path, sector: u64| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(d)
            .unwrap();
        let at = (sector + u64::from(second)) * 512 + 16 + 8;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 1;
        f.write_all_at(&b, at).unwrap();
    };
    flip(&devs[1], old_ptrs[1].offset);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-n"]).args(&devs));
    assert_eq!(code, Some(0), "one bad replica: {}", out);
    flip(&devs[0], old_ptrs[0].offset);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y", "-v"]).args(&devs));
    assert_eq!(code, Some(1), "{}", out);
    assert!(out.contains("bad checksum in bset at offset"), "{}", out);
    assert!(!out.contains(" 0 rewritten"), "{}", out);
    let fs = Fs::open(&paths).unwrap();
    let (k, v) = node_at(&fs, btree, 0, Bpos::MIN);
    let new = BtreePtr::decode(k.typ, &v).unwrap();
    let new_devs: Vec<u8> = new.ptrs().map(|p| p.dev).collect();
    assert_eq!(new_devs, [0, 1]);
    assert_ne!(new.seq, old.seq);
    drop(fs);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y"]).args(&devs));
    assert_eq!(code, Some(0), "{}", out);
    if let Some(r) = reference() {
        let (code, out) = run(Command::new(&r).args(["fsck", "-n"]).args(&devs));
        assert_eq!(code, Some(0), "{}", out);
        for l in out.lines().filter(|l| !l.starts_with("  with options")) {
            assert!(
                !l.contains("error") && !l.contains("fixing") && !l.contains("mismatch"),
                "upstream fsck -n: {}",
                l
            );
        }
        let o = Command::new(&r)
            .args(["list", "-b", "dirents", "-m", "keys", "-l", "0"])
            .args(&devs)
            .output()
            .unwrap();
        let want = common::fixtures()
            .map(|f| std::fs::read_to_string(f.join("replicas2/list/dirents.txt")).unwrap())
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout) == want,
            "dirents listing differs"
        );
    }
    std::fs::remove_dir_all(devs[0].parent().unwrap()).unwrap();
}

/// A user bucket of basic whose alloc key says free, and the freespace extent
/// just after it stretched over it (as if the bucket had been freed): `fsck -y`
/// puts the alloc key back and cuts the bucket out of that extent, leaving the
/// rest of the extent free; upstream's fsck then finds nothing.
#[test]
fn bucket_cut_out_of_a_freespace_extent() {
    use bcachefs_core::alloc::format::{AllocV4, DATA_BTREE, DATA_FREE, DATA_USER};
    use bcachefs_core::alloc::trigger::freespace_genbits;
    let Some(img) = copy_fixture("basic", "punch") else {
        return;
    };
    let paths = [img.display().to_string()];
    let fs = Fs::open(&paths).unwrap();
    let mut extents = Vec::new();
    let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    w.leaf_keys(ids::btree::FREESPACE, &mut |k| {
        if k.k.typ == KeyType::Set as u8 {
            extents.push((k.k.p.inode, k.k.p.offset, k.k.size));
        }
    });
    // An extent of two or more buckets that starts right after a user bucket.
    let mask = (1u64 << 56) - 1;
    let (dev, end, size, bk, bv) = extents
        .iter()
        .filter(|e| e.2 >= 2)
        .find_map(|&(dev, end, size)| {
            let before = end - u64::from(size) - 1;
            let (k, v) = leaf_key(&fs, ids::btree::ALLOC, Bpos::new(dev, before & mask, 0))?;
            let a = AllocV4::from_key(k.typ, &v)?;
            ((a.data_type == DATA_USER || a.data_type == DATA_BTREE)
                && freespace_genbits(&a) == before & !mask)
                .then_some((dev, end, size, k, v))
        })
        .expect("a used bucket right before a freespace extent");
    let bucket = (end - u64::from(size) - 1) & mask;
    let mut a = AllocV4::read(&bv);
    a.data_type = DATA_FREE;
    a.dirty_sectors = 0;
    let mut v = bv.clone();
    a.write(&mut v);
    let set = |p: u64, size: u32, typ: KeyType| Update {
        btree: ids::btree::FREESPACE,
        level: 0,
        k: Bkey {
            typ: typ as u8,
            p: Bpos::new(dev, p, 0),
            size,
            ..Default::default()
        },
        v: Vec::new(),
        journal_v: None,
    };
    let txn = Txn {
        updates: vec![
            Update {
                btree: ids::btree::ALLOC,
                level: 0,
                k: bk,
                v,
                journal_v: None,
            },
            set(end, size + 1, KeyType::Set),
        ],
        ..Default::default()
    };
    let mut sink = FileSink::open(&fs, &paths).unwrap();
    commit(&fs, &txn, &SbChanges::default(), &mut sink).unwrap();
    drop(fs);
    let (code, out) = run(Command::new(bin()).args(["fsck", "-y"]).arg(&img));
    assert_eq!(code, Some(1), "{}", out);
    assert!(
        out.contains(&format!("bucket {}:{} ", dev, bucket)),
        "{}",
        out
    );
    let fs = Fs::open(&paths).unwrap();
    let mut now = Vec::new();
    let mut w = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    w.leaf_keys(ids::btree::FREESPACE, &mut |k| {
        if k.k.typ == KeyType::Set as u8 && k.k.p.inode == dev {
            now.push((k.k.p.offset, k.k.size));
        }
    });
    // The extent is as it was: the bucket is out of it, its other buckets in.
    assert!(now.contains(&(end, size)), "{:?}", now);
    assert!(
        !now.iter().any(|&(e, s)| e > end && e - u64::from(s) <= end),
        "{:?}",
        now
    );
    drop(fs);
    assert_upstream_clean(&img, "bucket cut out of a freespace extent");
    std::fs::remove_dir_all(img.parent().unwrap()).unwrap();
}
