// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs list`: keys (with the journal overlaid), nodes, nodes-ondisk.

use std::io::Write;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::btree::text::ondisk_to_text;
use bcachefs_core::ids::{self, KeyType};
use bcachefs_core::printbuf::{Printbuf, TextOut};
use bcachefs_core::text::{bkey_val_to_text, DevNames, Pb, TextCtx};

use crate::fs::Fs;
use crate::hash::Hashes;
use bcachefs_core::journal::keys::{self as jkeys, Overlaid};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Keys,
    Nodes,
    NodesOndisk,
}

pub struct Opts {
    pub mode: Mode,
    pub btrees: Vec<u32>,
    pub level: u8,
    pub start: Bpos,
    pub end: Bpos,
}

/// A key with an owned value, as the walk yields it.
pub struct OwnedKey {
    pub k: Bkey,
    pub v: Vec<u8>,
}

/// Called per node: `(walk, level, pointer key, pointer value)`.
pub type NodeVisitor<'a, 'f> = dyn FnMut(&mut Walk<'a>, u8, &Bkey, &[u8]) + 'f;

/// Errors met while walking: printed to stderr, and the exit code becomes non-zero.
pub struct Walk<'a> {
    pub fs: &'a Fs,
    pub errors: u32,
}

impl<'a> Walk<'a> {
    fn node_error(
        &mut self,
        btree: u32,
        level: u8,
        k: &Bkey,
        errs: &[(bcachefs_core::btree::ptr::ExtentPtr, String)],
        salvaged: bool,
    ) {
        self.errors += 1;
        let mut msg = format!(
            "error reading btree node: btree {} level {} node {}:",
            ids::btree_name(btree).unwrap_or("?"),
            level,
            k.p
        );
        if errs.is_empty() {
            msg.push_str(" no pointers");
        }
        for (p, e) in errs {
            msg.push_str(&format!(" [dev {} offset {}: {}]", p.dev, p.offset, e));
        }
        if salvaged {
            msg.push_str("; no replica passed its checksum: listing its keys anyway");
        }
        eprintln!("{}", msg);
    }

    fn key_errors(
        &mut self,
        btree: u32,
        level: u8,
        k: &Bkey,
        st: &bcachefs_core::btree::sort::MergeStats,
    ) {
        self.errors += 1;
        eprintln!(
            "bad keys in btree node: btree {} level {} node {}: {} invalid (first: {:?}), {} undecodable (first: {:?}); dropped",
            ids::btree_name(btree).unwrap_or("?"),
            level,
            k.p,
            st.invalid,
            st.first_invalid,
            st.bad,
            st.first_bad
        );
    }

    /// Visits nodes in post order from the node `(k, v)` at `level`: nodes at
    /// `min_level` in key order, each parent right after its last child.
    /// `f(level, key, value, node bytes)` is called per node at or above
    /// `min_level`.
    pub fn nodes(
        &mut self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
        min_level: u8,
        f: &mut NodeVisitor<'a, '_>,
    ) {
        if level > min_level {
            let children = self.node_keys(btree, level, k, v);
            for c in children.iter() {
                if BtreePtr::decode(c.k.typ, &c.v).is_some() {
                    self.nodes(btree, level - 1, &c.k, &c.v, min_level, f);
                }
            }
        }
        if level >= min_level {
            f(self, level, k, v);
        }
    }

    /// The merged keys of one node, the journal overlaid (accounting deltas as
    /// the listing shows them); logs and returns nothing on a read error.
    pub fn node_keys(&mut self, btree: u32, level: u8, k: &Bkey, v: &[u8]) -> Vec<OwnedKey> {
        self.node_keys_view(btree, level, k, v, jkeys::AcctView::Listing)
    }

    /// [`Walk::node_keys`], with the journal's accounting deltas shown as `view`
    /// says.
    pub fn node_keys_view(
        &mut self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
        view: jkeys::AcctView,
    ) -> Vec<OwnedKey> {
        let nr = match self.fs.read_node(btree, level, k, v) {
            Ok(x) => x,
            Err(fail) => {
                if BtreePtr::decode(k.typ, v)
                    .map(|b| b.ptrs().count() > 0)
                    .unwrap_or(false)
                {
                    self.node_error(btree, level, k, &fail.errs, false);
                }
                return Vec::new();
            }
        };
        if !nr.errs.is_empty() {
            self.node_error(btree, level, k, &nr.errs, nr.salvaged);
        }
        let (keys, stats) = merged_keys(self.fs, btree, level, &nr, view);
        if stats.invalid > 0 || stats.bad > 0 {
            self.key_errors(btree, level, k, &stats);
        }
        keys
    }

    /// All leaf keys of a btree in order, with the journal overlaid.
    pub fn leaf_keys(&mut self, btree: u32, f: &mut dyn FnMut(&OwnedKey)) {
        let root = match self.fs.roots.get(btree as usize).and_then(|r| r.clone()) {
            Some(r) => r,
            None => return,
        };
        let mut cb = |w: &mut Self, level: u8, k: &Bkey, v: &[u8]| {
            if level == 0 {
                for key in w.node_keys(btree, 0, k, v) {
                    f(&key);
                }
            }
        };
        self.nodes(btree, root.level, &root.k, &root.v, 0, &mut cb);
    }
}

/// The keys of a node that was read, its bsets merged (newest wins, invalid keys
/// dropped; no journal overlaid), and what the validating merge dropped.
pub fn node_merged(
    nr: &crate::fs::NodeRead,
    btree: u32,
    level: u8,
) -> (Vec<(Bkey, &[u8])>, bcachefs_core::btree::sort::MergeStats) {
    let mut cursors = vec![Cursor::default(); nr.bsets.len()];
    let mut m = Merge::new(
        &nr.buf,
        nr.h.format,
        nr.h.min_key,
        nr.h.max_key,
        &nr.bsets,
        &mut cursors,
    )
    .validating(btree, level);
    let merged = m.by_ref().map(|mk| (mk.k, mk.v)).collect();
    (merged, m.stats)
}

/// The merged keys of a node that was read, the journal overlaid, and what the
/// validating merge dropped. Accounting deltas in the journal show as `view` says.
pub fn merged_keys(
    fs: &Fs,
    btree: u32,
    level: u8,
    nr: &crate::fs::NodeRead,
    view: jkeys::AcctView,
) -> (Vec<OwnedKey>, bcachefs_core::btree::sort::MergeStats) {
    let (merged, stats) = node_merged(nr, btree, level);
    let jk = jkeys::keys_in(&fs.journal_keys, btree, level, nr.h.min_key, nr.h.max_key);
    let mut acct = [0u8; 8 * 256];
    let keys = jkeys::Overlay::new(merged.into_iter(), jk)
        .filter_map(|o| match o {
            Overlaid::Node(k, v) => Some(OwnedKey { k, v: v.to_vec() }),
            Overlaid::Journal(j) => Some(OwnedKey {
                k: j.k,
                v: j.val(&fs.jsets).to_vec(),
            }),
            Overlaid::Accounting(node, deltas) => view
                .value(node, deltas, &fs.jsets, &mut acct)
                .map(|(k, n)| OwnedKey {
                    k,
                    v: acct[..n].to_vec(),
                }),
        })
        .collect();
    (keys, stats)
}

fn is_whiteout(t: u8) -> bool {
    t == KeyType::Deleted as u8 || t == KeyType::Whiteout as u8
}

pub fn run(fs: &Fs, o: &Opts, w: &mut dyn Write) -> Result<u32, String> {
    let ctx = TextCtx { devs: fs };
    let mut walk = Walk { fs, errors: 0 };
    for &btree in &o.btrees {
        match o.mode {
            Mode::Keys => {
                // Text goes out in chunks: memory stays bounded on large btrees.
                let mut buf = Vec::<u8>::new();
                let mut werr: Option<std::io::Error> = None;
                walk.leaf_keys(btree, &mut |key| {
                    if is_whiteout(key.k.typ) || key.k.p < o.start || key.k.p > o.end {
                        return;
                    }
                    let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
                    bkey_val_to_text(&mut pb, &ctx, &key.k, &key.v);
                    buf.push(b'\n');
                    if buf.len() >= 1 << 20 && werr.is_none() {
                        werr = w.write_all(&buf).err();
                        buf.clear();
                    }
                });
                if let Some(e) = werr {
                    return Err(e.to_string());
                }
                w.write_all(&buf).map_err(|e| e.to_string())?;
            }
            Mode::Nodes | Mode::NodesOndisk => {
                let root = match fs.roots.get(btree as usize).and_then(|r| r.clone()) {
                    Some(r) => r,
                    None => continue,
                };
                if root.level < o.level {
                    continue;
                }
                let mut buf = Vec::<u8>::new();
                let mode = o.mode;
                let mut cb = |wk: &mut Walk, _level: u8, k: &Bkey, v: &[u8]| {
                    if k.p < o.start {
                        return;
                    }
                    match mode {
                        Mode::Nodes => {
                            let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
                            bkey_val_to_text(&mut pb, &ctx, k, v);
                            buf.push(b'\n');
                        }
                        Mode::NodesOndisk => print_ondisk(wk, &ctx, k, v, &mut buf),
                        Mode::Keys => {}
                    }
                };
                walk.nodes(btree, root.level, &root.k, &root.v, o.level, &mut cb);
                w.write_all(&buf).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(walk.errors)
}

fn print_ondisk(wk: &mut Walk, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8], buf: &mut Vec<u8>) {
    let fs = wk.fs;
    let p = BtreePtr::decode(k.typ, v).and_then(|bp| bp.ptrs().next());
    let p = match p {
        Some(p) => p,
        None => {
            buf.extend_from_slice(b"error getting device to read from: invalid device\n\n");
            return;
        }
    };
    let node = match fs.read_raw(&p) {
        Ok(n) => n,
        Err(e) => {
            buf.extend_from_slice(format!("error reading node: {}\n\n", e).as_bytes());
            wk.errors += 1;
            return;
        }
    };
    let s = fs.sb();
    let mut pb: Pb = Printbuf::new(buf as &mut dyn TextOut);
    ondisk_to_text(
        &mut pb,
        ctx,
        &node,
        s.block_sectors(),
        s.btree_node_sectors(),
        &Hashes,
    );
}

/// Every bucket's generation, per device, from the alloc btree (journal overlaid);
/// buckets without an alloc key have generation 0.
pub fn bucket_gens(fs: &Fs) -> Vec<Vec<u8>> {
    let s = fs.sb();
    let mut gens: Vec<Vec<u8>> = (0..fs.devs.len())
        .map(|d| match s.member(d).filter(|m| m.exists()) {
            Some(m) => vec![0u8; m.nbuckets().min(1 << 32) as usize],
            None => Vec::new(),
        })
        .collect();
    let mut walk = Walk { fs, errors: 0 };
    walk.leaf_keys(ids::btree::ALLOC, &mut |key| {
        if key.k.typ == KeyType::AllocV4 as u8 {
            let a = bcachefs_core::alloc::format::AllocV4::read(&key.v);
            if let Some(g) = gens
                .get_mut(key.k.p.inode as usize)
                .and_then(|g| g.get_mut(key.k.p.offset as usize))
            {
                *g = a.gen;
            }
        }
    });
    gens
}

/// `list-journal`: every journal entry found, oldest first, with its entries.
pub fn list_journal(fs: &Fs, w: &mut dyn Write) -> Result<(), String> {
    use std::fmt::Write as _;
    // The reference reads no alloc info for this listing: no ` stale=` on pointers.
    struct NoGens<'a>(&'a Fs);
    impl DevNames for NoGens<'_> {
        fn dev_name(&self, dev: u32) -> Option<&str> {
            self.0.dev_name(dev)
        }
        fn bucket_size(&self, dev: u32) -> Option<u32> {
            self.0.bucket_size(dev)
        }
        fn durability(&self, dev: u32) -> u32 {
            self.0.durability(dev)
        }
        fn extent_bp_shift(&self) -> u32 {
            self.0.extent_bp_shift()
        }
        fn shard_inode_numbers_bits(&self) -> Option<u32> {
            self.0.shard_inode_numbers_bits()
        }
    }
    let nogens = NoGens(fs);
    let ctx = TextCtx { devs: &nogens };
    let s = fs.sb();
    let mut buf = Vec::<u8>::new();
    for (idx, seq) in fs.jset_seqs.iter().enumerate() {
        let raw = fs.jset(idx)?;
        let raw = &raw[..];
        let j = match bcachefs_core::journal::read::parse_jset(
            raw,
            s.jset_magic(),
            s.block_sectors(),
            None,
        ) {
            Ok(j) => j,
            Err(_) => continue,
        };
        let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
        let _ = writeln!(pb, "\njournal entry     {}", seq);
        let _ = writeln!(pb, "  bytes           {}", raw.len());
        let _ = writeln!(pb, "  sectors         {}", j.sectors);
        let _ = writeln!(pb, "  version         {}", j.version);
        let _ = writeln!(pb, "  last seq        {}", j.last_seq);
        let _ = writeln!(pb, "  flush           {}", u8::from(!j.no_flush()));
        pb.str("  written at     ");
        for f in fs.found_jsets.iter().filter(|f| f.seq == *seq) {
            let _ = write!(
                pb,
                " {} {}:{}:{} (sector {})",
                fs.dev_name(f.dev).unwrap_or("(invalid device)"),
                f.dev,
                f.bucket,
                f.offset,
                f.sector
            );
        }
        pb.str("\n");
        // Each entry on a fresh printbuf whose indentation is left as it ends.
        for e in j.iter() {
            let at = buf.len();
            let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
            pb.indent_add(bcachefs_core::journal::text::entry_indent(e.typ));
            if bcachefs_core::journal::text::entry_to_text(&mut pb, &ctx, &e) {
                pb.raw(b"\n");
            } else {
                buf.truncate(at);
            }
        }
    }
    w.write_all(&buf).map_err(|e| e.to_string())
}
