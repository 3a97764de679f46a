// SPDX-License-Identifier: GPL-2.0
//! The filesystem tree of an image, read through the core's `fs::tree` and
//! `data::read`: `bcachefs-rs manifest` prints every path with its type, mode,
//! size, link count and sha256 (or symlink target), in the fixtures' `manifest.tsv`
//! form, so an image's contents can be checked offline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::rc::Rc;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::data::extents_format::{compression, BtreePtrV2};
use bcachefs_core::data::read::{self as dread, Decompressor, Piece};
use bcachefs_core::fs::inode_format::InodeUnpacked;
use bcachefs_core::fs::tree::{Keys, Tree, ROOT_SUBVOL};
use bcachefs_core::ids;
use sha2::Digest;

use crate::fs::Fs;
use crate::hash::Hashes;
use crate::list::{OwnedKey, Walk};

/// One btree's keys, and the ranges of nodes that could not be read.
struct Loaded {
    keys: Vec<OwnedKey>,
    failed: Vec<(Bpos, Bpos)>,
}

/// An image's keys, each btree loaded whole (journal overlaid) on first use.
/// Like the kernel's walk, a range that reaches an unreadable node fails.
pub struct ImageKeys<'a> {
    pub fs: &'a Fs,
    btrees: RefCell<HashMap<u32, Rc<Loaded>>>,
}

impl<'a> ImageKeys<'a> {
    pub fn new(fs: &'a Fs) -> Self {
        ImageKeys {
            fs,
            btrees: RefCell::new(HashMap::new()),
        }
    }

    fn btree(&self, id: u32) -> Rc<Loaded> {
        if let Some(b) = self.btrees.borrow().get(&id) {
            return b.clone();
        }
        let mut l = Loaded {
            keys: Vec::new(),
            failed: Vec::new(),
        };
        let mut walk = Walk {
            fs: self.fs,
            errors: 0,
        };
        if let Some(root) = self.fs.roots.get(id as usize).and_then(|r| r.clone()) {
            load(&mut walk, id, root.level, &root.k, &root.v, &mut l);
        }
        let b = Rc::new(l);
        self.btrees.borrow_mut().insert(id, b.clone());
        b
    }
}

/// Loads the subtree of node (`k`, `v`) at `level` into `l`.
fn load(w: &mut Walk<'_>, btree: u32, level: u8, k: &Bkey, v: &[u8], l: &mut Loaded) {
    let before = w.errors;
    let keys = w.node_keys(btree, level, k, v);
    if keys.is_empty() && w.errors > before {
        let min = BtreePtrV2::min_key_of(k.typ, v).unwrap_or(Bpos::MIN);
        l.failed.push((min, k.p));
        return;
    }
    if level == 0 {
        l.keys.extend(keys);
        return;
    }
    for c in keys {
        if BtreePtr::decode(c.k.typ, &c.v).is_some() {
            load(w, btree, level - 1, &c.k, &c.v, l);
        }
    }
}

impl Keys for ImageKeys<'_> {
    type Error = String;
    fn range(
        &self,
        btree: u32,
        from: Bpos,
        to: Bpos,
        f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), String> {
        let l = self.btree(btree);
        // The first unreadable node the iteration could reach.
        let lost = l.failed.iter().filter(|r| r.1 >= from).min_by_key(|r| r.0);
        let err = |r: &(Bpos, Bpos)| {
            format!(
                "btree {}: node {}..{} unreadable",
                ids::btree_name(btree).unwrap_or("?"),
                r.0,
                r.1
            )
        };
        let start = l.keys.partition_point(|k| k.k.p < from);
        for k in &l.keys[start..] {
            if k.k.p > to {
                break;
            }
            if let Some(r) = lost.filter(|r| r.0 <= k.k.p) {
                return Err(err(r));
            }
            if f(&k.k, &k.v).is_break() {
                return Ok(());
            }
        }
        match lost.filter(|r| r.0 <= to) {
            Some(r) => Err(err(r)),
            None => Ok(()),
        }
    }
}

/// zstd and gzip from crates (lz4 is the core's own).
pub struct Decompress;

impl Decompressor for Decompress {
    fn decompress(&self, typ: u8, src: &[u8], dst: &mut [u8]) -> bool {
        match typ {
            compression::ZSTD => matches!(
                ruzstd::decoding::FrameDecoder::new().decode_all(src, dst),
                Ok(n) if n == dst.len()
            ),
            compression::GZIP => matches!(
                miniz_oxide::inflate::decompress_slice_iter_to_slice(dst, std::iter::once(src), false, false),
                Ok(n) if n == dst.len()
            ),
            _ => false,
        }
    }
}

/// Reads `out.len()` bytes of file `inum` at `pos`, trying each replica of an
/// extent in turn; the error names what no replica could give.
pub fn read_file(
    tree: &Tree<'_, ImageKeys<'_>>,
    fs: &Fs,
    inum: u64,
    pos: u64,
    out: &mut [u8],
) -> Result<(), String> {
    let mut err: Option<String> = None;
    dread::fill(tree, inum, pos, out, &mut |piece, dst| {
        let e = match piece {
            Piece::Unsupported(t) => Some(format!("key type {} cannot be read", t)),
            Piece::Data(x) => {
                let mut why = String::from("no pointers");
                let mut done = false;
                for p in dread::replicas(&x, fs) {
                    if p.ptr.unwritten {
                        done = true;
                        break;
                    }
                    let plan = dread::plan(&p, x.skip, dst.len());
                    let Some(dev) = fs.devs.get(plan.dev as usize).and_then(|d| d.as_ref()) else {
                        why = format!("device {} missing", plan.dev);
                        continue;
                    };
                    let mut raw = vec![0u8; plan.bytes];
                    use std::os::unix::fs::FileExt;
                    if let Err(e) = dev.file.read_exact_at(&mut raw, plan.sector * 512) {
                        why = format!("dev {} sector {}: {}", plan.dev, plan.sector, e);
                        continue;
                    }
                    let mut scratch = vec![0u8; plan.scratch];
                    match dread::decode(&p, &plan, &raw, &mut scratch, &Hashes, &Decompress) {
                        Ok(b) => {
                            dst.copy_from_slice(b);
                            done = true;
                            break;
                        }
                        Err(e) => why = format!("dev {} sector {}: {:?}", plan.dev, plan.sector, e),
                    }
                }
                (!done).then(|| format!("extent {}: {}", x.k.p, why))
            }
        };
        match e {
            Some(e) => {
                err = Some(e);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    })?;
    err.map_or(Ok(()), Err)
}

/// `manifest`: one line per path under the root, sorted by path.
pub fn manifest(fs: &Fs, w: &mut dyn Write) -> Result<u32, String> {
    let keys = ImageKeys::new(fs);
    let (tree, root) =
        Tree::open(&keys, &Hashes, ROOT_SUBVOL)?.ok_or_else(|| "no root subvolume".to_string())?;
    let mut rows: Vec<(Vec<u8>, String)> = Vec::new();
    let mut errors = 0u32;
    let mut stack: Vec<(Vec<u8>, u64)> = vec![(Vec::new(), root)];
    while let Some((path, dir)) = stack.pop() {
        let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
        tree.readdir(dir, 0, &mut |e| {
            entries.push((e.name.to_vec(), e.inum));
            ControlFlow::Continue(())
        })?;
        for (name, inum) in entries {
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&name);
            let Some(u) = tree.inode(inum)? else {
                eprintln!("{}: inode {} missing", String::from_utf8_lossy(&p), inum);
                errors += 1;
                continue;
            };
            let r = row(&tree, fs, &u, &mut |e| {
                eprintln!("{}: {}", String::from_utf8_lossy(&p), e);
                errors += 1;
            });
            rows.push((p.clone(), r));
            if u.mode & 0o170000 == 0o040000 {
                stack.push((p, inum));
            }
        }
    }
    rows.sort();
    writeln!(w, "path\ttype\tmode\tsize\tnlink\tsha256_or_target").map_err(|e| e.to_string())?;
    for (p, r) in rows {
        w.write_all(&p).map_err(|e| e.to_string())?;
        writeln!(w, "\t{}", r).map_err(|e| e.to_string())?;
    }
    Ok(errors)
}

/// A manifest row after the path; a file or symlink that cannot be read shows
/// `EIO` where its digest or target would be (and `err` is told why).
fn row(
    tree: &Tree<'_, ImageKeys<'_>>,
    fs: &Fs,
    u: &InodeUnpacked,
    err: &mut dyn FnMut(&str),
) -> String {
    let perm = u.mode & 0o7777;
    let nlink = u.nlink();
    let mut read = |pos: u64, buf: &mut [u8]| match read_file(tree, fs, u.inum, pos, buf) {
        Ok(()) => true,
        Err(e) => {
            err(&e);
            false
        }
    };
    match u.mode & 0o170000 {
        0o040000 => format!("dir\t0o{:o}\t-\t{}\t-", perm, nlink),
        0o120000 => {
            let mut t = vec![0u8; u.size as usize];
            if !read(0, &mut t) {
                return format!("symlink\t0o{:o}\t{}\t{}\tEIO", perm, u.size, nlink);
            }
            // The stored target ends with a NUL that the size counts.
            let end = t.iter().position(|&b| b == 0).unwrap_or(t.len());
            t.truncate(end);
            format!(
                "symlink\t0o{:o}\t{}\t{}\t{}",
                perm,
                u.size,
                nlink,
                String::from_utf8_lossy(&t)
            )
        }
        _ => {
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            while pos < u.size {
                let n = (u.size - pos).min(buf.len() as u64) as usize;
                if !read(pos, &mut buf[..n]) {
                    return format!("file\t0o{:o}\t{}\t{}\tEIO", perm, u.size, nlink);
                }
                h.update(&buf[..n]);
                pos += n as u64;
            }
            let d = h.finalize();
            let hex: String = d.iter().map(|b| format!("{:02x}", b)).collect();
            format!("file\t0o{:o}\t{}\t{}\t{}", perm, u.size, nlink, hex)
        }
    }
}
