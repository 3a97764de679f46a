// SPDX-License-Identifier: GPL-2.0
//! The core's bset writer against real nodes: every bset of every node of the
//! undamaged fixtures, decoded and written again by `btree::write::write_bset` at
//! its own offset, gives back the bytes upstream wrote (header, keys, checksum,
//! padding); and bsets appended to real nodes read back through the reader with
//! the new keys winning the merge.

mod common;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::btree::format::bset_csum_type;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::read::{read_bsets, BsetRef, KeyIter, NodeCtx, NodeHeader};
use bcachefs_core::btree::write::{write_bset, WriteCtx};
use bcachefs_core::ids;
use bcachefs_rs::fs::Fs;
use bcachefs_rs::hash::Hashes;
use bcachefs_rs::list::Walk;

use common::{open, UNDAMAGED};

/// One node as it is on disk: its bytes, header and bsets.
struct RawNode {
    buf: Vec<u8>,
    h: NodeHeader,
    bsets: Vec<BsetRef>,
}

/// Every node of every btree, its bsets read as the reader reads them.
fn nodes(fs: &Fs) -> Vec<RawNode> {
    let sb = fs.sb();
    let mut out = Vec::new();
    for btree in 0..ids::BTREE_ID_NR as u32 {
        let Some(Some(root)) = fs.roots.get(btree as usize).cloned() else {
            continue;
        };
        let mut w = Walk { fs, errors: 0 };
        let mut cb = |w: &mut Walk, level: u8, k: &Bkey, v: &[u8]| {
            let Some(bp) = BtreePtr::decode(k.typ, v) else {
                return;
            };
            let Some(p) = bp.ptrs().next() else { return };
            let buf = w.fs.read_raw(&p).unwrap();
            let ctx = NodeCtx {
                magic: sb.bset_magic(),
                block_sectors: sb.block_sectors(),
                node_sectors: sb.btree_node_sectors(),
                written: u32::from(bp.written),
                btree_id: Some(btree),
                level: Some(level),
                min_key: None,
                max_key: None,
                seq: None,
                range_updated: false,
                csum: &Hashes,
                blacklisted: &|_| false,
                accept_bad_csum: false,
            };
            let mut bsets = vec![BsetRef::default(); 1024];
            let (h, n) = read_bsets(&buf, &ctx, &mut bsets, &mut |_| {}).unwrap();
            bsets.truncate(n);
            out.push(RawNode { buf, h, bsets });
        };
        w.nodes(btree, root.level, &root.k, &root.v, 0, &mut cb);
    }
    out
}

#[test]
fn rewrite_every_bset_byte_for_byte() {
    for fx in UNDAMAGED {
        let Some(fs) = open(fx) else { return };
        let sb = fs.sb();
        let (mut bsets_n, mut same, mut keys_n) = (0usize, 0usize, 0usize);
        let mut first_diff = None;
        for RawNode { buf, h, bsets } in nodes(&fs) {
            for r in &bsets {
                let keys: Vec<(Bkey, Vec<u8>)> = KeyIter::new(r.keys(&buf), h.format)
                    .map(|x| x.unwrap())
                    .map(|(k, v, _)| (k, v.to_vec()))
                    .collect();
                keys_n += keys.len();
                let wctx = WriteCtx {
                    magic: sb.bset_magic(),
                    block_sectors: sb.block_sectors(),
                    node_sectors: sb.btree_node_sectors(),
                    csum_type: bset_csum_type(r.flags),
                    version: r.version,
                    csum: &Hashes,
                };
                let mut copy = buf.clone();
                let range = (r.offset as usize) << 9..((r.offset + r.sectors) as usize) << 9;
                copy[range.clone()].fill(0x5a);
                let mut it = keys.iter().map(|(k, v)| (*k, v.as_slice()));
                let w = write_bset(&mut copy, &wctx, &h, r.offset, r.journal_seq, &mut it)
                    .unwrap_or_else(|e| {
                        panic!("{} btree {} bset at {}: {}", fx, h.btree_id(), r.offset, e)
                    });
                assert_eq!((w.offset, w.sectors, w.len), (r.offset, r.sectors, r.len));
                bsets_n += 1;
                if copy[range.clone()] == buf[range.clone()] {
                    same += 1;
                } else if first_diff.is_none() {
                    let at = range.clone().find(|&i| copy[i] != buf[i]).unwrap();
                    first_diff = Some((h.btree_id(), h.level(), r.offset, at - range.start));
                }
            }
        }
        eprintln!(
            "{}: {} bsets, {} keys, {} byte-identical, first diff {:?}",
            fx, bsets_n, keys_n, same, first_diff
        );
        assert!(bsets_n > 0);
        assert_eq!(
            same, bsets_n,
            "{}: first differing bset {:?}",
            fx, first_diff
        );
    }
}

#[test]
fn rewrite_every_jset_byte_for_byte() {
    use bcachefs_core::journal::read::parse_jset;
    use bcachefs_core::journal::write::{JsetBuilder, JsetHeader};
    use bcachefs_core::sb::JsetEntries;
    for fx in ["basic", "unclean", "churn"] {
        let Some(fs) = open(fx) else { return };
        let sb = fs.sb();
        let mut n = 0;
        for idx in 0..fs.jsets.len() {
            let j = &fs.jset(idx).unwrap()[..];
            let p = parse_jset(j, sb.jset_magic(), sb.block_sectors(), Some(&Hashes)).unwrap();
            let mut buf = vec![0x5au8; j.len() + 4096];
            let mut b = JsetBuilder::new(&mut buf);
            for e in JsetEntries::new(p.entries) {
                b.raw(e.typ, e.btree_id, e.level, e.data).unwrap();
            }
            let h = JsetHeader {
                magic: sb.jset_magic(),
                seq: p.seq,
                last_seq: p.last_seq,
                version: p.version,
                flags: p.flags,
            };
            let out = b.seal(&h, sb.block_sectors(), &Hashes).unwrap();
            let len = (p.sectors as usize) << 9;
            assert_eq!(out.len(), len);
            if let Some(i) = (0..len.min(j.len())).find(|&i| out[i] != j[i]) {
                panic!(
                    "{}: jset {} differs at byte {} of {} (stored {}): {:02x?} vs {:02x?}",
                    fx,
                    p.seq,
                    i,
                    len,
                    j.len(),
                    &out[..64],
                    &j[..64]
                );
            }
            n += 1;
        }
        eprintln!("{}: {} jsets byte-identical", fx, n);
        assert!(n > 0);
    }
}

/// Every superblock copy of every fixture device, resealed by the core's writer at
/// its own offset, is the copy upstream wrote.
#[test]
fn reseal_every_superblock_copy() {
    use bcachefs_core::sb::write::SbEdit;
    use bcachefs_core::sb::Sb;
    use std::os::unix::fs::FileExt;
    for fx in UNDAMAGED {
        let Some(fs) = open(fx) else { return };
        for dev in fs.devs.iter().flatten() {
            let sb = Sb { b: &dev.sb };
            let layout = sb.layout();
            let mut copies = 0;
            for i in 0..layout.nr_superblocks() as usize {
                let off = layout.sb_offset(i).unwrap();
                let mut orig = vec![0u8; dev.sb.len()];
                dev.file.read_exact_at(&mut orig, off * 512).unwrap();
                let mut buf = dev.sb.clone();
                let mut e = SbEdit::new(&mut buf, &Hashes).unwrap();
                let out = e.seal(off, &Hashes).unwrap();
                assert!(
                    out == &orig[..],
                    "{} {}: copy {} at {}",
                    fx,
                    dev.name,
                    i,
                    off
                );
                copies += 1;
            }
            assert!(copies >= 2, "{}: {} copies", fx, copies);
        }
    }
}

/// The core's format computation (`bch2_bkey_format`) against the formats
/// upstream gave its nodes: every node with a single bset (its keys as the node
/// was made) has exactly the format computed from its range and keys, and for
/// every node the computed format packs every key.
#[test]
fn computed_formats_match_upstream() {
    use bcachefs_core::bkey::FormatState;
    let (mut single, mut same, mut packs) = (0, 0, 0);
    for fx in UNDAMAGED {
        let Some(fs) = open(fx) else { return };
        for RawNode { buf, h, bsets } in nodes(&fs) {
            let mut st = FormatState::new();
            st.add_pos(h.min_key);
            st.add_pos(h.max_key);
            let mut keys = Vec::new();
            for r in &bsets {
                for (k, _, _) in KeyIter::new(r.keys(&buf), h.format).map(|x| x.unwrap()) {
                    if k.typ != 0 {
                        st.add_key(&k);
                    }
                    keys.push(k);
                }
            }
            let f = st.done();
            assert_eq!(f.validate(), Ok(()));
            assert!(keys
                .iter()
                .filter(|k| k.typ != 0)
                .all(|k| f.packed_fields(k).is_some()));
            packs += 1;
            if bsets.len() == 1 {
                single += 1;
                same += usize::from(f == h.format);
            }
        }
    }
    eprintln!(
        "{} nodes: formats pack every key; {} of {} single-bset nodes have upstream's format",
        packs, same, single
    );
    assert!(packs > 0 && single > 0);
    assert_eq!(
        same, single,
        "single-bset nodes whose format differs from upstream's"
    );
}
