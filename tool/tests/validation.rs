// SPDX-License-Identifier: GPL-2.0
//! Each node validation error, from a hand-corrupted copy of a real node (the root
//! of basic's inodes btree), fixed up where needed so that only the intended check
//! fails.

mod common;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::format::*;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::read::{read_bsets, BsetRef, KeyError, NodeCtx, NodeError};
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::csum::checksum;
use bcachefs_core::ids;
use bcachefs_rs::fs::Fs;
use bcachefs_rs::hash::Hashes;
use std::os::unix::fs::FileExt;

struct Node {
    buf: Vec<u8>,
    k: Bkey,
    seq: u64,
    min: Bpos,
    written: u32,
    magic: u64,
    level: u8,
    node_sectors: u32,
}

fn real_node() -> Option<Node> {
    let img = common::image("basic", "img")?;
    let fs = Fs::open(&[img.to_string_lossy().into_owned()]).unwrap();
    // The first leaf of the inodes btree (many keys, several bsets).
    let root = fs.roots[ids::btree::INODES as usize].clone().unwrap();
    let mut walk = bcachefs_rs::list::Walk { fs: &fs, errors: 0 };
    let first = walk
        .node_keys(ids::btree::INODES, root.level, &root.k, &root.v)
        .remove(0);
    let root = bcachefs_rs::fs::Root {
        level: root.level - 1,
        k: first.k,
        v: first.v,
    };
    let bp = BtreePtr::decode(root.k.typ, &root.v).unwrap();
    let p = bp.ptrs().next().unwrap();
    let mut buf = vec![0u8; bp.written as usize * 512];
    let f = std::fs::File::open(&img).unwrap();
    f.read_exact_at(&mut buf, p.offset * 512).unwrap();
    Some(Node {
        buf,
        k: root.k,
        seq: bp.seq,
        min: bp.min_key.unwrap(),
        written: bp.written as u32,
        magic: fs.sb().bset_magic(),
        level: root.level,
        node_sectors: fs.sb().btree_node_sectors(),
    })
}

impl Node {
    /// A context that checks nothing about the node's identity (btree, level,
    /// keys, seq): for tests of what lies inside it.
    fn unchecked_ctx<'a>(&self, bl: &'a dyn Fn(u64) -> bool, accept_bad_csum: bool) -> NodeCtx<'a> {
        NodeCtx {
            magic: self.magic,
            block_sectors: 1,
            node_sectors: self.node_sectors,
            written: self.written,
            btree_id: None,
            level: None,
            min_key: None,
            max_key: None,
            seq: None,
            range_updated: false,
            csum: &Hashes,
            blacklisted: bl,
            accept_bad_csum,
        }
    }

    fn read(&self, buf: &[u8]) -> Result<usize, NodeError> {
        self.read_with(buf, |_| {})
    }
    fn read_with(&self, buf: &[u8], tweak: impl Fn(&mut NodeCtx)) -> Result<usize, NodeError> {
        let bl = |_| false;
        let mut ctx = NodeCtx {
            magic: self.magic,
            block_sectors: 1,
            node_sectors: self.node_sectors,
            written: self.written,
            btree_id: Some(ids::btree::INODES),
            level: Some(self.level),
            min_key: Some(self.min),
            max_key: Some(self.k.p),
            seq: Some(self.seq),
            range_updated: false,
            csum: &Hashes,
            blacklisted: &bl,
            accept_bad_csum: false,
        };
        tweak(&mut ctx);
        let mut bsets = vec![BsetRef::default(); 256];
        read_bsets(buf, &ctx, &mut bsets, &mut |_| {}).map(|(_, n)| n)
    }
}

/// Recomputes the first bset's checksum after an edit.
fn fix_csum(buf: &mut [u8]) {
    let flags = u32::from_le_bytes(buf[BN_BSET + BSET_FLAGS..][..4].try_into().unwrap());
    let u64s = u16::from_le_bytes(buf[BN_BSET + BSET_U64S..][..2].try_into().unwrap()) as usize;
    let end = (BN_BYTES + u64s * 8).min(buf.len());
    let c = checksum(&Hashes, bset_csum_type(flags), &buf[16..end]).unwrap();
    buf[0..8].copy_from_slice(&c.lo.to_le_bytes());
    buf[8..16].copy_from_slice(&c.hi.to_le_bytes());
}

#[test]
fn intact_node_reads() {
    let Some(n) = real_node() else { return };
    assert!(n.read(&n.buf).unwrap() >= 1);
}

#[test]
fn bad_magic() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_MAGIC] ^= 1;
    assert_eq!(n.read(&b), Err(NodeError::BadMagic));
}

#[test]
fn bad_checksum() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_BYTES + 40] ^= 0x10; // inside the first bset's keys
    assert_eq!(n.read(&b), Err(NodeError::BadChecksum { offset: 0 }));
}

#[test]
fn unknown_checksum_type() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_BSET + BSET_FLAGS] |= 0x0f; // csum type 15
    assert!(matches!(n.read(&b), Err(NodeError::Csum(_))));
}

#[test]
fn wrong_btree_level_keys_seq() {
    let Some(n) = real_node() else { return };
    assert_eq!(
        n.read_with(&n.buf, |c| c.btree_id = Some(2)),
        Err(NodeError::WrongBtree(1))
    );
    assert_eq!(
        n.read_with(&n.buf, |c| c.level = Some(n.level + 1)),
        Err(NodeError::WrongLevel(n.level))
    );
    assert_eq!(
        n.read_with(&n.buf, |c| c.min_key = Some(Bpos::new(9, 9, 9))),
        Err(NodeError::WrongMinKey)
    );
    assert_eq!(
        n.read_with(&n.buf, |c| c.max_key = Some(Bpos::new(9, 9, 9))),
        Err(NodeError::WrongMaxKey)
    );
    assert_eq!(
        n.read_with(&n.buf, |c| c.seq = Some(n.seq ^ 1)),
        Err(NodeError::WrongSeq)
    );
}

#[test]
fn bad_key_format() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_FORMAT + 2] = 65; // 65 bits for the inode field
    fix_csum(&mut b);
    assert!(matches!(n.read(&b), Err(NodeError::BadFormat(_))));
}

#[test]
fn bset_past_end() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_BSET + BSET_U64S..][..2].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        n.read(&b),
        Err(NodeError::BadBset { offset: 0, .. })
    ));
}

#[test]
fn key_with_zero_size_stops_its_bset() {
    let Some(n) = real_node() else { return };
    let mut b = n.buf.clone();
    b[BN_BYTES] = 0; // first key's u64s
    fix_csum(&mut b);
    let bl = |_| false;
    let ctx = n.unchecked_ctx(&bl, false);
    let mut bsets = vec![BsetRef::default(); 256];
    let (h, nb) = read_bsets(&b, &ctx, &mut bsets, &mut |_| {}).unwrap();
    let mut cur = vec![Cursor::default(); nb];
    let mut m = Merge::new(&b, h.format, h.min_key, h.max_key, &bsets[..nb], &mut cur);
    let keys = m.by_ref().count();
    assert_eq!(m.stats.bad, 1);
    assert_eq!(m.stats.first_bad, Some(KeyError::BadSize));
    // later bsets still contribute keys, the first bset's are lost
    let intact = {
        let mut bsets2 = vec![BsetRef::default(); 256];
        let (h2, nb2) = read_bsets(&n.buf, &ctx, &mut bsets2, &mut |_| {}).unwrap();
        let mut cur2 = vec![Cursor::default(); nb2];
        Merge::new(
            &n.buf,
            h2.format,
            h2.min_key,
            h2.max_key,
            &bsets2[..nb2],
            &mut cur2,
        )
        .count()
    };
    assert!(keys < intact);
}

#[test]
fn torn_later_bset_is_dropped_with_a_warning() {
    let Some(n) = real_node() else { return };
    if n.read(&n.buf).unwrap() < 2 {
        return;
    }
    let mut b = n.buf.clone();
    // corrupt a key of the last bset: its checksum fails
    let bl = |_| false;
    let ctx = n.unchecked_ctx(&bl, false);
    let mut bsets = vec![BsetRef::default(); 256];
    let (_, nb) = read_bsets(&n.buf, &ctx, &mut bsets, &mut |_| {}).unwrap();
    let last = bsets[nb - 1];
    assert!(last.len > 8);
    b[last.start as usize + 4] ^= 0xff;
    let mut warned = vec![];
    let r = read_bsets(&b, &ctx, &mut bsets, &mut |e| warned.push(e));
    assert!(r.is_ok());
    assert!(
        warned
            .iter()
            .any(|e| matches!(e, NodeError::BadChecksum { .. })),
        "{:?}",
        warned
    );
}

#[test]
fn key_of_the_wrong_type_is_reported_and_dropped() {
    use bcachefs_core::btree::validate::{check_bset, KeyInvalid};
    let Some(n) = real_node() else { return };
    let bl = |_| false;
    let ctx = n.unchecked_ctx(&bl, true);
    let mut bsets = vec![BsetRef::default(); 256];
    let (_, nb) = read_bsets(&n.buf, &ctx, &mut bsets, &mut |_| {}).unwrap();
    // the first key of the newest non-empty bset: nothing overrides it
    let last = *bsets[..nb].iter().rev().find(|b| b.len > 0).unwrap();
    let mut b = n.buf.clone();
    b[last.start as usize + 2] = ids::KeyType::Dirent as u8;
    let (h, nb) = read_bsets(&b, &ctx, &mut bsets, &mut |_| {}).unwrap();
    let last = *bsets[..nb].iter().rev().find(|b| b.len > 0).unwrap();
    let mut found = vec![];
    check_bset(
        &b,
        &last,
        h.format,
        ids::btree::INODES,
        0,
        h.min_key,
        h.max_key,
        &mut |at, e| found.push((at, e)),
    );
    assert_eq!(
        found,
        vec![(0, KeyInvalid::WrongTypeForBtree(ids::KeyType::Dirent as u8))]
    );
    // a range that excludes everything: every key is outside the node
    let mut outside = 0;
    check_bset(
        &b,
        &last,
        h.format,
        ids::btree::INODES,
        0,
        Bpos::MAX,
        Bpos::MAX,
        &mut |_, e| outside += u32::from(e == KeyInvalid::OutsideNode),
    );
    assert!(outside >= 1);
    let mut cur = vec![Cursor::default(); nb];
    let mut m = Merge::new(&b, h.format, h.min_key, h.max_key, &bsets[..nb], &mut cur)
        .validating(ids::btree::INODES, 0);
    let _ = m.by_ref().count();
    assert_eq!(
        m.stats.invalid, 1,
        "{:?} last={:?} nb={}",
        m.stats, last, nb
    );
    assert_eq!(
        m.stats.first_invalid,
        Some(KeyInvalid::WrongTypeForBtree(ids::KeyType::Dirent as u8))
    );
}
