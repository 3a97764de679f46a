// SPDX-License-Identifier: GPL-2.0
//! Fuzz the new-node rules against the reader: a btree grown in a scratch image in
//! memory by random batches of inserts and deletions (drawn from the input).
//! Every batch rewrites each node it reaches as upstream's rewrite does: live keys
//! in a format computed from the node's range and keys (`node_format`), split
//! where `must_split` says at `split_at`, the parent's pointers (`BtreePtrV2`)
//! replaced, a new root (`root_format`) when the root splits. Every node is
//! written by `write_bset` and read back through the reader: the tree's leaves
//! hold exactly the model's keys, each node's children tile its range, and no
//! read warns.
#![no_main]

use std::collections::BTreeMap;

use bcachefs_core::bkey::{Bkey, BkeyFormat};
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::interior::{key_u64s, must_split, node_format, root_format, split_at};
use bcachefs_core::btree::ptr::{BtreePtr, ExtentPtr};
use bcachefs_core::btree::read::{read_bsets, BsetRef, NodeCtx};
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::btree::write::{new_header, write_bset, WriteCtx};
use bcachefs_core::data::extents_format::BtreePtrV2;
use bcachefs_core::ids::KeyType;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// A btree id the validator leaves any key type in.
const BTREE: u32 = 60;
const NODE_SECTORS: u32 = 16;
const MAGIC: u64 = 0x1234;
/// Key types whose values the validator takes as they come (no pointers, no
/// fixed part): the random values below are all valid.
const TYPES: [u8; 13] = [2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17];

type Keys = Vec<(Bkey, Vec<u8>)>;

/// The scratch image: node-sized slots handed out in order.
struct Image {
    bytes: Vec<u8>,
    next: u64,
    seq: u64,
}

impl Image {
    fn ctx(&self) -> WriteCtx<'static> {
        WriteCtx {
            magic: MAGIC,
            block_sectors: 1,
            node_sectors: NODE_SECTORS,
            csum_type: 5,
            version: 1063,
            csum: &common::FakeHash,
        }
    }

    /// Writes a node over `min..=max` at `level` holding `keys`; its pointer.
    fn write(&mut self, level: u8, min: Bpos, max: Bpos, f: BkeyFormat, keys: &[(Bkey, Vec<u8>)]) -> Option<(Bkey, Vec<u8>)> {
        let node_bytes = (NODE_SECTORS as usize) << 9;
        let off = self.next * u64::from(NODE_SECTORS);
        self.next += 1;
        let at = (off as usize) << 9;
        if self.bytes.len() < at + node_bytes {
            self.bytes.resize(at + node_bytes, 0);
        }
        self.seq = self.seq.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
        let h = new_header(MAGIC, BTREE, level, min, max, f, self.seq, 0);
        let mut it = keys.iter().map(|(k, v)| (*k, v.as_slice()));
        let ctx = self.ctx();
        let r = write_bset(&mut self.bytes[at..at + node_bytes], &ctx, &h, 0, 1, &mut it)
            .unwrap_or_else(|e| panic!("a node the split rules sized does not write: {}", e));
        let ptr = ExtentPtr { dev: 0, offset: off, gen: 0, cached: false, unwritten: false };
        let mut v = vec![0u8; 48];
        BtreePtrV2 { seq: self.seq, sectors_written: r.sectors as u16, flags: 0, min_key: min }.write(&[ptr], &mut v)?;
        Some((Bkey { typ: KeyType::BtreePtrV2 as u8, p: max, ..Default::default() }, v))
    }

    /// The keys of the node a pointer names, read back and checked.
    fn read(&self, level: u8, k: &Bkey, v: &[u8]) -> (Bpos, Keys) {
        let bp = BtreePtr::decode(k.typ, v).expect("pointer");
        let p = bp.ptrs().next().expect("replica");
        let at = (p.offset as usize) << 9;
        let buf = &self.bytes[at..at + ((NODE_SECTORS as usize) << 9)];
        let ctx = NodeCtx {
            magic: MAGIC,
            block_sectors: 1,
            node_sectors: NODE_SECTORS,
            written: u32::from(bp.written),
            btree_id: Some(BTREE),
            level: Some(level),
            min_key: bp.min_key,
            max_key: Some(k.p),
            seq: Some(bp.seq),
            range_updated: false,
            csum: &common::FakeHash,
            blacklisted: &|_| false,
            accept_bad_csum: false,
        };
        let mut bsets = [BsetRef::default(); 17];
        let (h, n) = read_bsets(buf, &ctx, &mut bsets, &mut |e| panic!("read warns: {}", e)).expect("node reads back");
        let mut cursors = [Cursor::default(); 17];
        let mut m = Merge::new(buf, h.format, h.min_key, h.max_key, &bsets[..n], &mut cursors).validating(BTREE, level);
        let keys: Keys = m.by_ref().map(|mk| (mk.k, mk.v.to_vec())).collect();
        assert_eq!((m.stats.invalid, m.stats.bad), (0, 0), "a written key does not validate");
        (h.min_key, keys)
    }

    /// Writes `keys` over `min..=max` as the split rules cut them; the pointers.
    fn compose(&mut self, level: u8, min: Bpos, max: Bpos, keys: &[(Bkey, Vec<u8>)], old: &BkeyFormat) -> Keys {
        let sizes: Vec<usize> = keys.iter().map(|(k, v)| key_u64s(k, v.len(), old)).collect();
        let live: usize = sizes.iter().sum();
        if must_split(live, NODE_SECTORS) && keys.len() >= 2 {
            let n1 = split_at(&mut sizes.iter().copied(), live);
            let pivot = keys[n1 - 1].0.p;
            let mut a = self.compose(level, min, pivot, &keys[..n1], old);
            a.extend(self.compose(level, pivot.successor(), max, &keys[n1..], old));
            return a;
        }
        let f = node_format(min, max, &mut keys.iter().map(|(k, _)| k));
        self.write(level, min, max, f, keys).into_iter().collect()
    }

    /// Applies `upd` (sorted; deletions as `deleted` keys) under the node a
    /// pointer names; returns the pointers that replace it.
    fn apply(&mut self, level: u8, k: &Bkey, v: &[u8], upd: &[(Bkey, Vec<u8>)]) -> Keys {
        let (min, keys) = self.read(level, k, v);
        let mut by_pos: BTreeMap<Bpos, (Bkey, Vec<u8>)> = keys.into_iter().map(|(k, v)| (k.p, (k, v))).collect();
        if level == 0 {
            for (uk, uv) in upd {
                by_pos.insert(uk.p, (*uk, uv.clone()));
            }
        } else {
            let children: Keys = by_pos.values().cloned().collect();
            let mut from = 0;
            for (ck, cv) in &children {
                let to = from + upd[from..].iter().take_while(|(u, _)| u.p <= ck.p).count();
                if to > from {
                    by_pos.remove(&ck.p);
                    for (nk, nv) in self.apply(level - 1, ck, cv, &upd[from..to]) {
                        by_pos.insert(nk.p, (nk, nv));
                    }
                }
                from = to;
            }
        }
        let live: Keys = by_pos.into_values().filter(|(k, _)| k.typ != KeyType::Deleted as u8).collect();
        self.compose(level, min, k.p, &live, &BkeyFormat::CURRENT)
    }

    /// Every leaf key under a pointer, checking that children tile each range.
    fn walk(&self, level: u8, k: &Bkey, v: &[u8], out: &mut Keys) {
        let (min, keys) = self.read(level, k, v);
        if level == 0 {
            out.extend(keys);
            return;
        }
        assert!(!keys.is_empty(), "an empty interior node");
        let mut next = min;
        for (ck, cv) in &keys {
            let cb = BtreePtr::decode(ck.typ, cv).expect("child pointer");
            assert_eq!(cb.min_key, Some(next), "children do not tile the node");
            next = ck.p.successor();
            self.walk(level - 1, ck, cv, out);
        }
        assert_eq!(keys.last().map(|(k, _)| k.p), Some(k.p), "last child ends early");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut img = Image { bytes: Vec::new(), next: 0, seq: 7 };
    let mut model: BTreeMap<Bpos, Vec<u8>> = BTreeMap::new();
    let Some((mut rk, mut rv)) = img.write(0, Bpos::MIN, Bpos::MAX, root_format(), &[]) else { return };
    let mut level = 0u8;
    let mut d = data.iter().copied();
    let mut byte = move || d.next();
    'batches: for _ in 0..24 {
        let Some(n) = byte() else { break };
        let mut upd: BTreeMap<Bpos, (Bkey, Vec<u8>)> = BTreeMap::new();
        for _ in 0..(n % 48) {
            let (Some(a), Some(b), Some(c)) = (byte(), byte(), byte()) else { break 'batches };
            let p = Bpos::new(u64::from(a % 8), u64::from(b) << 4 | u64::from(c & 15), 0);
            if c & 0x80 != 0 && !model.is_empty() {
                let q = *model.keys().nth(usize::from(b) % model.len()).unwrap();
                upd.insert(q, (Bkey { typ: KeyType::Deleted as u8, p: q, ..Default::default() }, Vec::new()));
            } else {
                let v = vec![a ^ c; usize::from(c % 40) * 8];
                upd.insert(p, (Bkey { typ: TYPES[usize::from(a) % TYPES.len()], p, ..Default::default() }, v));
            }
        }
        let upd: Keys = upd.into_values().collect();
        for (k, v) in &upd {
            if k.typ == KeyType::Deleted as u8 {
                model.remove(&k.p);
            } else {
                model.insert(k.p, v.clone());
            }
        }
        let mut top = img.apply(level, &rk, &rv, &upd);
        while top.len() > 1 {
            level += 1;
            top = img.compose(level, Bpos::MIN, Bpos::MAX, &top, &root_format());
        }
        let Some((k, v)) = top.pop() else { return };
        (rk, rv) = (k, v);
        let mut got = Vec::new();
        img.walk(level, &rk, &rv, &mut got);
        let got: Vec<(Bpos, Vec<u8>)> = got.into_iter().map(|(k, v)| (k.p, v)).collect();
        let want: Vec<(Bpos, Vec<u8>)> = model.iter().map(|(p, v)| (*p, v.clone())).collect();
        assert!(got == want, "the tree's keys differ from the model's");
    }
});
