// SPDX-License-Identifier: GPL-2.0
//! Damaging an image in place, for tests: a key's value changed in its leaf (the
//! bset resealed, so the node still reads cleanly and only the change is wrong),
//! a member's btree-allocated bitmap cleared in every superblock copy, or keys
//! written through the commit path (a bucket in use made free). The
//! `damage` subcommand and the tests use it; upstream has no such command.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use bcachefs_core::alloc::foreground::FREESPACE_BUCKET_MASK;
use bcachefs_core::alloc::format::{
    acct, AccountingPos, AllocV4, ACCOUNTING_TYPE_NAMES, BUCKET_GENS_NR, DATA_BTREE, DATA_FREE,
    DATA_USER,
};
use bcachefs_core::alloc::trigger::freespace_pos;
use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::interior::key_u64s;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::read::{seal_bset, KeyIter};
use bcachefs_core::data::extents_format::set_ptr_gens;
use bcachefs_core::ids::{self, KeyType};
use bcachefs_core::sb::write::SbEdit;
use bcachefs_core::sb::{format as sbf, Sb};

use crate::fs::{read_sb, Fs};
use crate::hash::Hashes;
use crate::list::Walk;
use crate::repair::{commit, leaf_key, FileSink, SbChanges, Sink, Update};
use crate::update::Txn;

/// Changes, in place in its leaf, the value of the first key of `btree` (leaf by leaf, bset
/// by bset) that `pick` accepts and that the journal does not overlay (so the edit is
/// what a reader sees), in the newest bset holding its position: `edit` gets the
/// value's bytes, the bset is resealed and the node written back over every
/// replica (replicas are copies of one node). `paths` are the filesystem's devices.
/// Returns the key's position; fails when no key fits or the node does not read
/// cleanly afterwards.
pub fn edit_leaf_key(
    paths: &[String],
    btree: u32,
    pick: &dyn Fn(&Bkey, &[u8]) -> bool,
    edit: &dyn Fn(&mut [u8]),
) -> Result<Bpos, String> {
    let name = || ids::btree_name(btree).unwrap_or("?");
    let fs = Fs::open(paths)?;
    let root = fs
        .roots
        .get(btree as usize)
        .and_then(|r| r.clone())
        .ok_or_else(|| format!("btree {} has no root", name()))?;
    let overlaid = |p: Bpos| {
        fs.journal_keys
            .iter()
            .any(|j| j.btree == btree && j.level == 0 && j.k.p == p)
    };
    let mut found = None;
    let mut err = None;
    let mut w = Walk { fs: &fs, errors: 0 };
    let mut visit = |w: &mut Walk, level: u8, k: &Bkey, v: &[u8]| {
        if level != 0 || found.is_some() || err.is_some() {
            return;
        }
        let nr = match w.fs.read_node(btree, 0, k, v) {
            Ok(nr) => nr,
            Err(e) => {
                err = Some(format!("leaf {}: {:?}", k.p, e.errs));
                return;
            }
        };
        // Every key of every bset: (key, bset, value offset in the node, length).
        let mut keys = Vec::new();
        for (i, b) in nr.bsets.iter().enumerate() {
            for (kk, vv, at) in KeyIter::new(b.keys(&nr.buf), nr.h.format).flatten() {
                let kb = usize::from(kk.u64s) * 8;
                let off = b.start as usize + at + kb - vv.len();
                keys.push((kk, i, off, vv.len()));
            }
        }
        let hit = keys.iter().find(|(kk, bi, off, len)| {
            !keys.iter().any(|x| x.0.p == kk.p && x.1 > *bi)
                && !overlaid(kk.p)
                && pick(kk, &nr.buf[*off..off + len])
        });
        if let Some(&(kk, bi, off, len)) = hit {
            let mut buf = nr.buf.clone();
            edit(&mut buf[off..off + len]);
            if let Err(e) = seal_bset(&mut buf, &nr.bsets[bi], &Hashes) {
                err = Some(format!("resealing leaf {}: {:?}", k.p, e));
                return;
            }
            let ptrs: Vec<(u8, u64)> = BtreePtr::decode(k.typ, v)
                .map(|bp| bp.ptrs().map(|p| (p.dev, p.offset)).collect())
                .unwrap_or_default();
            if ptrs.is_empty() {
                err = Some(format!("leaf {}: no pointer", k.p));
            } else {
                found = Some((kk.p, ptrs, buf, *k, v.to_vec()));
            }
        }
    };
    w.nodes(btree, root.level, &root.k, &root.v, 0, &mut visit);
    if let Some(e) = err {
        return Err(e);
    }
    let (p, ptrs, buf, nk, nv) =
        found.ok_or_else(|| format!("btree {}: no key to edit", name()))?;
    drop(fs);
    for (path, f, offset) in replica_files(paths, &ptrs)? {
        f.write_all_at(&buf, offset * 512)
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {}", path, e))?;
    }
    // The resealed node reads cleanly: nothing but the edit is wrong.
    let fs = Fs::open(paths)?;
    let nr = fs
        .read_node(btree, 0, &nk, &nv)
        .map_err(|e| format!("edited leaf {}: {:?}", nk.p, e.errs))?;
    if !nr.errs.is_empty() {
        return Err(format!("edited leaf {}: {:?}", nk.p, nr.errs));
    }
    Ok(p)
}

/// The device file of each replica `(member, sector)` of a node, opened for
/// reading and writing, with its path and the sector.
fn replica_files(
    paths: &[String],
    ptrs: &[(u8, u64)],
) -> Result<Vec<(String, std::fs::File, u64)>, String> {
    let devs = member_paths(paths)?;
    ptrs.iter()
        .map(|&(dev, offset)| {
            let path = devs
                .iter()
                .find(|(d, _)| *d == usize::from(dev))
                .map(|(_, p)| p.clone())
                .ok_or_else(|| format!("no device for member {}", dev))?;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| format!("{}: {}", path, e))?;
            Ok((path, f, offset))
        })
        .collect()
}

/// Each device path with its member index.
pub(crate) fn member_paths(paths: &[String]) -> Result<Vec<(usize, String)>, String> {
    paths
        .iter()
        .map(|p| {
            let f = OpenOptions::new()
                .read(true)
                .open(p)
                .map_err(|e| format!("{}: {}", p, e))?;
            let sb = read_sb(&f, p)?;
            Ok((Sb { b: &sb }.dev_idx() as usize, p.clone()))
        })
        .collect()
}

/// Clears member `dev`'s btree-allocated bitmap (its shift kept) in every copy of
/// the superblock of the device image at `path`, each copy sealed for its offset
/// as a repair writes it (from the first copy, nothing else changed: not even its
/// seq).
pub fn clear_member_bitmap(path: &str, dev: usize) -> Result<(), String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {}", path, e))?;
    let mut buf = read_sb(&f, path)?;
    let s = Sb { b: &buf };
    let shift = s
        .member(dev)
        .filter(|m| m.exists())
        .ok_or_else(|| format!("no member {}", dev))?
        .btree_bitmap_shift();
    let layout = s.layout();
    let offsets: Vec<u64> = (0..layout.nr_superblocks() as usize)
        .map(|i| layout.sb_offset(i).unwrap_or(sbf::SB_SECTOR))
        .collect();
    let block_sectors = s.block_sectors();
    // Sealed for the first copy now, so that each copy below starts from a valid one.
    SbEdit::new(&mut buf, &Hashes)
        .and_then(|mut e| {
            e.set_member_bitmap(dev, shift, 0)?;
            e.seal(offsets.first().copied().unwrap_or(sbf::SB_SECTOR), &Hashes)
                .map(|_| ())
        })
        .map_err(|e| format!("superblock: {:?}", e))?;
    for off in offsets {
        let bytes = crate::repair::sealed_copy(&mut buf, off, block_sectors)?;
        f.write_all_at(&bytes, off << 9)
            .map_err(|e| format!("{}: superblock at sector {}: {}", path, off, e))?;
    }
    f.sync_data().map_err(|e| format!("{}: {}", path, e))
}

/// The bucket in use (user data or btree nodes) just below a freespace extent:
/// its alloc key made free (data type and dirty sectors 0) and the extent grown
/// down over it, both written through the commit path, as if the allocator had
/// lost the bucket's data. Returns the bucket (device, index).
fn free_a_used_bucket(paths: &[String]) -> Result<(u64, u64), String> {
    let fs = Fs::open(paths)?;
    let mut extents = Vec::new();
    Walk { fs: &fs, errors: 0 }.leaf_keys(ids::btree::FREESPACE, &mut |key| {
        if key.k.typ == KeyType::Set as u8 && key.k.size > 0 {
            extents.push(key.k);
        }
    });
    for e in extents {
        let start = e.p.offset.saturating_sub(u64::from(e.size));
        if start & FREESPACE_BUCKET_MASK == 0 {
            continue;
        }
        let (dev, bucket) = (e.p.inode, (start & FREESPACE_BUCKET_MASK) - 1);
        let at = Bpos::new(dev, bucket, 0);
        let Some((k, v)) = leaf_key(&fs, ids::btree::ALLOC, at) else {
            continue;
        };
        let a = AllocV4::read(&v);
        if k.typ != KeyType::AllocV4 as u8 || !matches!(a.data_type, DATA_USER | DATA_BTREE) {
            continue;
        }
        let free = AllocV4 {
            data_type: DATA_FREE,
            dirty_sectors: 0,
            ..a
        };
        // The freed bucket's freespace key must end where the extent starts
        // (the same gen bits).
        if freespace_pos(dev as u32, bucket, &free).offset != start {
            continue;
        }
        let mut nv = v.clone();
        free.write(&mut nv);
        let updates = vec![
            Update {
                btree: ids::btree::ALLOC,
                level: 0,
                k,
                v: nv,
                journal_v: None,
            },
            Update {
                btree: ids::btree::FREESPACE,
                level: 0,
                k: Bkey {
                    size: e.size + 1,
                    ..e
                },
                v: Vec::new(),
                journal_v: None,
            },
        ];
        let txn = Txn {
            updates,
            ..Txn::default()
        };
        let mut sink = FileSink::open(&fs, paths)?;
        commit(&fs, &txn, &SbChanges::default(), &mut sink)?;
        sink.flush()?;
        return Ok((dev, bucket));
    }
    Err("no bucket in use just below a freespace extent".into())
}

/// A leaf found: its live keys' u64s, btree, max key and replicas (device,
/// sector).
type Leaf = (usize, u32, Bpos, Vec<(u8, u64)>);

/// A leaf's first bset's stored checksum gets one bit flipped on every replica,
/// so that its keys read only from a copy that failed its checksum (upstream's
/// `bset_bad_csum`: the node is rewritten): the first leaf of `btree` (leaf
/// order), or with `btree` `None` the leaf of any btree whose live keys take the
/// most room, which a rewrite must split when they pass upstream's split
/// threshold. Returns the leaf's btree and max key.
fn flip_bset_csum(paths: &[String], btree: Option<u32>) -> Result<(u32, Bpos), String> {
    let fs = Fs::open(paths)?;
    let mut leaf: Option<Leaf> = None;
    let ids: Vec<u32> = match btree {
        Some(b) => vec![b],
        None => (0..ids::BTREE_ID_NR as u32).collect(),
    };
    for id in ids {
        let Some(root) = fs.roots.get(id as usize).and_then(|r| r.clone()) else {
            continue;
        };
        let mut w = Walk { fs: &fs, errors: 0 };
        w.nodes(
            id,
            root.level,
            &root.k,
            &root.v,
            0,
            &mut |w, level, k, v| {
                if level != 0 || (btree.is_some() && leaf.is_some()) {
                    return;
                }
                let Some(bp) = BtreePtr::decode(k.typ, v) else {
                    return;
                };
                let live = match btree {
                    Some(_) => 0,
                    None => match w.fs.read_node(id, 0, k, v) {
                        Ok(nr) => crate::list::node_merged(&nr, id, 0)
                            .0
                            .iter()
                            .filter(|(k, _)| k.typ != KeyType::Deleted as u8)
                            .map(|(k, v)| key_u64s(k, v.len(), &nr.h.format))
                            .sum(),
                        Err(_) => return,
                    },
                };
                if leaf.as_ref().is_none_or(|l| live > l.0) {
                    leaf = Some((
                        live,
                        id,
                        k.p,
                        bp.ptrs().map(|p| (p.dev, p.offset)).collect(),
                    ));
                }
            },
        );
    }
    drop(fs);
    let (_, id, max, ptrs) = leaf.ok_or("no leaf")?;
    for (path, f, offset) in replica_files(paths, &ptrs)? {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset * 512)
            .and_then(|_| {
                b[0] ^= 1;
                f.write_all_at(&b, offset * 512)
            })
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {}", path, e))?;
    }
    Ok((id, max))
}

/// The middle child of `btree`'s root (a btree one level deep): its pointer
/// deleted from the root through the commit path, the node left where it is, so
/// that the tree has a gap the node would fill and the backpointers btree still
/// names the node. Returns the leaf's max key.
pub fn drop_leaf(paths: &[String], btree: u32) -> Result<Bpos, String> {
    let fs = Fs::open(paths)?;
    let root = fs
        .roots
        .get(btree as usize)
        .and_then(|r| r.clone())
        .ok_or("the btree has no root")?;
    if root.level != 1 {
        return Err(format!("the root is at level {}, not 1", root.level));
    }
    let mut w = Walk { fs: &fs, errors: 0 };
    let children = w.node_keys(btree, 1, &root.k, &root.v);
    if children.len() < 3 {
        return Err("fewer than 3 leaves".into());
    }
    let max = children[children.len() / 2].k.p;
    let txn = Txn {
        updates: vec![Update {
            btree,
            level: 1,
            k: Bkey {
                typ: KeyType::Deleted as u8,
                p: max,
                ..Default::default()
            },
            v: Vec::new(),
            journal_v: None,
        }],
        ..Txn::default()
    };
    let mut sink = FileSink::open(&fs, paths)?;
    commit(&fs, &txn, &SbChanges::default(), &mut sink)?;
    sink.flush()?;
    Ok(max)
}

/// The kinds of [`damage`], in the order the tests use them.
pub const KINDS: [&str; 12] = [
    "acct-dev",
    "acct-btree",
    "bucket-gen",
    "bitmap",
    "oldest-gen",
    "alloc-dirty",
    "alloc-type",
    "ptr-gen",
    "alloc-free",
    "bset-csum",
    "drop-leaf",
    "bset-csum-full",
];

/// Adds 3 to the first counter of the first accounting key of type `typ`.
fn bump_accounting(paths: &[String], typ: u8) -> Result<Bpos, String> {
    edit_leaf_key(
        paths,
        ids::btree::ACCOUNTING,
        &|k, _| k.typ == KeyType::Accounting as u8 && AccountingPos::from_bpos(k.p).typ() == typ,
        &|v| {
            let c = u64::from_le_bytes(v[..8].try_into().unwrap());
            v[..8].copy_from_slice(&c.wrapping_add(3).to_le_bytes());
        },
    )
}

/// In the first `bucket_gens` key covering a bucket that holds user data (its
/// alloc key's data type, journal overlaid), that bucket's gen +1. Returns the
/// bucket (device, index).
fn bump_bucket_gen(paths: &[String]) -> Result<(u64, u64), String> {
    let fs = Fs::open(paths)?;
    let mut user = Vec::new();
    Walk { fs: &fs, errors: 0 }.leaf_keys(ids::btree::ALLOC, &mut |key| {
        if key.k.typ == KeyType::AllocV4 as u8 && AllocV4::read(&key.v).data_type == DATA_USER {
            user.push((key.k.p.inode, key.k.p.offset));
        }
    });
    drop(fs);
    let nr = BUCKET_GENS_NR as u64;
    // The bucket the picked key covers, for the edit.
    let bucket = Cell::new(None);
    let p = edit_leaf_key(
        paths,
        ids::btree::BUCKET_GENS,
        &|k, v| {
            let b = user
                .iter()
                .find(|&&(dev, b)| dev == k.p.inode && b / nr == k.p.offset)
                .map(|&(_, b)| b);
            let ok = k.typ == KeyType::BucketGens as u8
                && b.is_some_and(|b| ((b % nr) as usize) < v.len());
            if ok {
                bucket.set(b);
            }
            ok
        },
        &|v| {
            if let Some(b) = bucket.get() {
                let i = (b % nr) as usize;
                v[i] = v[i].wrapping_add(1);
            }
        },
    )?;
    let b = bucket.get().ok_or("no bucket picked")?;
    Ok((p.inode, b))
}

/// Damages the filesystem on the device images `paths` in place as `kind` says
/// (one of [`KINDS`]); returns a line saying what changed.
pub fn damage(kind: &str, paths: &[String]) -> Result<String, String> {
    Ok(match kind {
        "acct-dev" | "acct-btree" => {
            let typ = if kind == "acct-dev" {
                acct::DEV_DATA_TYPE
            } else {
                acct::BTREE
            };
            let p = bump_accounting(paths, typ)?;
            format!(
                "accounting: first {} key ({}): first counter +3",
                ACCOUNTING_TYPE_NAMES[usize::from(typ)],
                p
            )
        }
        "bucket-gen" => {
            let (dev, b) = bump_bucket_gen(paths)?;
            format!("bucket_gens: bucket {}:{} gen +1", dev, b)
        }
        "alloc-dirty" | "alloc-type" => {
            let dirty = kind == "alloc-dirty";
            let p = edit_leaf_key(
                paths,
                ids::btree::ALLOC,
                &|k, v| k.typ == KeyType::AllocV4 as u8 && AllocV4::read(v).data_type == DATA_USER,
                &|v| {
                    let mut a = AllocV4::read(v);
                    if dirty {
                        a.dirty_sectors += 8;
                    } else {
                        a.data_type = bcachefs_core::alloc::format::DATA_CACHED;
                    }
                    a.write(v);
                },
            )?;
            format!(
                "alloc: bucket {}:{} (user data): {}",
                p.inode,
                p.offset,
                if dirty {
                    "dirty_sectors +8"
                } else {
                    "data_type cached"
                }
            )
        }
        "oldest-gen" => {
            let p = edit_leaf_key(
                paths,
                ids::btree::ALLOC,
                &|k, v| {
                    let a = AllocV4::read(v);
                    k.typ == KeyType::AllocV4 as u8
                        && a.data_type == 0
                        && a.dirty_sectors == 0
                        && a.cached_sectors == 0
                        && a.oldest_gen == a.gen
                },
                &|v| {
                    let mut a = AllocV4::read(v);
                    a.oldest_gen = a.gen.wrapping_sub(1);
                    a.write(v);
                },
            )?;
            format!(
                "alloc: bucket {}:{} (free): oldest_gen one behind its gen (a gens pass advances it; fsck finds nothing)",
                p.inode, p.offset
            )
        }
        "ptr-gen" => {
            // The first dirty pointer of the first extent that has one: its gen
            // +1, past its bucket's (ptr_gen_newer_than_bucket_gen).
            let first_dirty = |v: &mut [u8]| {
                let mut seen = false;
                set_ptr_gens(KeyType::Extent as u8, v, &mut |p| {
                    if seen || p.cached {
                        return None;
                    }
                    seen = true;
                    Some(p.gen.wrapping_add(1))
                })
            };
            let p = edit_leaf_key(
                paths,
                ids::btree::EXTENTS,
                &|k, v| k.typ == KeyType::Extent as u8 && first_dirty(&mut v.to_vec()) == 1,
                &|v| {
                    first_dirty(v);
                },
            )?;
            format!("extents: {}: first dirty pointer's gen +1", p)
        }
        "alloc-free" => {
            let (dev, b) = free_a_used_bucket(paths)?;
            format!(
                "alloc: bucket {}:{} (in use): made free, and the freespace extent above it grown over it",
                dev, b
            )
        }
        "bset-csum" | "bset-csum-full" => {
            let which = (kind == "bset-csum").then_some(ids::btree::EXTENTS);
            let (id, max) = flip_bset_csum(paths, which)?;
            format!(
                "{}: the {}leaf ending at {}: its first bset's checksum flipped on every replica",
                ids::btree_name(id).unwrap_or("?"),
                if which.is_some() {
                    "first "
                } else {
                    "fullest "
                },
                max
            )
        }
        "drop-leaf" => {
            let max = drop_leaf(paths, ids::btree::EXTENTS)?;
            format!(
                "extents: the leaf ending at {}: its pointer deleted from its parent, the node left on disk (a gap a device scan fills)",
                max
            )
        }
        "bitmap" => {
            for path in paths {
                clear_member_bitmap(path, 0)?;
            }
            "member 0: btree allocated bitmap cleared in every superblock copy of every device"
                .to_string()
        }
        k => return Err(format!("unknown damage kind {} ({})", k, KINDS.join(", "))),
    })
}
