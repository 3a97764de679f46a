// SPDX-License-Identifier: GPL-2.0
//! Fuzz the bset writer against the reader: the input's node (when it parses; a
//! fresh empty node otherwise) is rewritten from its merged keys as a first bset,
//! then random updates (inserts, overwrites, deletions as `deleted` keys) drawn
//! from the input are appended as later bsets. The node read back and merged must
//! hold exactly the model's keys.
#![no_main]

use std::collections::BTreeMap;

use bcachefs_core::bkey::{Bkey, BkeyFormat};
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::read::{read_bsets, BsetRef, NodeCtx, NodeHeader};
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::btree::write::{new_header, write_bset, written, WriteCtx};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// A btree id the validator does not second-guess, so any key type is allowed.
const BTREE: u32 = 60;
const NODE_SECTORS: u32 = 64;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let mut model: BTreeMap<Bpos, (Bkey, Vec<u8>)> = BTreeMap::new();
    let mut format = BkeyFormat::CURRENT;
    if let Some(h) = NodeHeader::parse(data) {
        let ctx = NodeCtx {
            magic: h.magic,
            block_sectors: 1,
            node_sectors: NODE_SECTORS,
            written: 0,
            btree_id: None,
            level: None,
            min_key: None,
            max_key: None,
            seq: None,
            range_updated: false,
            csum: &common::FakeHash,
            blacklisted: &|_| false,
            accept_bad_csum: true,
        };
        let mut bsets = [BsetRef::default(); 65];
        if let Ok((h, n)) = read_bsets(data, &ctx, &mut bsets, &mut |_| {}) {
            if h.format.validate().is_ok() {
                format = h.format;
            }
            let mut cursors = [Cursor::default(); 65];
            for mk in Merge::new(
                data,
                h.format,
                Bpos::MIN,
                Bpos::MAX,
                &bsets[..n],
                &mut cursors,
            ) {
                if mk.k.typ != 0 && mk.k.size == 0 && mk.k.p != Bpos::MAX && mk.v.len() <= 1024 {
                    let mut v = mk.v.to_vec();
                    v.resize(v.len().div_ceil(8) * 8, 0);
                    model.insert(
                        mk.k.p,
                        (
                            Bkey {
                                needs_whiteout: false,
                                ..mk.k
                            },
                            v,
                        ),
                    );
                }
            }
        }
    }
    let seed = data.iter().fold(0x9e3779b97f4a7c15u64, |a, &b| {
        a.rotate_left(9) ^ u64::from(b)
    }) | 1;
    let mut rng = Rng(seed);
    let h = new_header(
        0x1234,
        BTREE,
        0,
        Bpos::MIN,
        Bpos::MAX,
        format,
        rng.next() | 1,
        0,
    );
    let ctx = WriteCtx {
        magic: 0x1234,
        block_sectors: 1,
        node_sectors: NODE_SECTORS,
        csum_type: 5,
        version: 1063,
        csum: &common::FakeHash,
    };
    let mut buf = vec![0u8; (NODE_SECTORS as usize) << 9];
    let mut first = model.values().map(|(k, v)| (*k, v.as_slice()));
    let Ok(r) = write_bset(&mut buf, &ctx, &h, 0, 1, &mut first) else {
        return;
    };
    let mut bsets = vec![r];
    let existing: Vec<Bpos> = model.keys().copied().collect();
    for round in 0..(rng.next() % 6) {
        let mut upd: BTreeMap<Bpos, (Bkey, Vec<u8>)> = BTreeMap::new();
        for _ in 0..(rng.next() % 12) {
            let x = rng.next();
            let p = if x % 3 == 0 && !existing.is_empty() {
                existing[(x >> 8) as usize % existing.len()]
            } else {
                Bpos::new(rng.next() % 64, rng.next() % 4096, (rng.next() % 3) as u32)
            };
            let del = x % 5 == 0;
            let k = Bkey {
                typ: if del { 0 } else { (1 + rng.next() % 40) as u8 },
                p,
                version_lo: rng.next() % 1000,
                ..Default::default()
            };
            let v = if del {
                vec![]
            } else {
                vec![(x >> 16) as u8; (rng.next() % 5) as usize * 8]
            };
            upd.insert(p, (k, v));
        }
        if upd.is_empty() {
            continue;
        }
        let at = written(&bsets);
        let mut it = upd.values().map(|(k, v)| (*k, v.as_slice()));
        match write_bset(&mut buf, &ctx, &h, at, 2 + round, &mut it) {
            Ok(r) => bsets.push(r),
            Err(_) => break,
        }
        for (p, (k, v)) in upd {
            if k.typ == 0 {
                model.remove(&p);
            } else {
                model.insert(p, (k, v));
            }
        }
    }
    // Read back: every bset checks out, and the merge is the model.
    let rctx = NodeCtx {
        magic: 0x1234,
        block_sectors: 1,
        node_sectors: NODE_SECTORS,
        written: written(&bsets),
        btree_id: Some(BTREE),
        level: Some(0),
        min_key: Some(Bpos::MIN),
        max_key: Some(Bpos::MAX),
        seq: Some(h.seq),
        range_updated: false,
        csum: &common::FakeHash,
        blacklisted: &|_| false,
        accept_bad_csum: false,
    };
    let mut got = [BsetRef::default(); 65];
    let (rh, n) = read_bsets(&buf, &rctx, &mut got, &mut |e| {
        panic!("warning on read back: {}", e)
    })
    .expect("written node reads back");
    assert_eq!(n, bsets.len());
    let mut cursors = [Cursor::default(); 65];
    let merged: Vec<(Bkey, Vec<u8>)> = Merge::new(
        &buf,
        rh.format,
        rh.min_key,
        rh.max_key,
        &got[..n],
        &mut cursors,
    )
    .map(|mk| (mk.k, mk.v.to_vec()))
    .collect();
    assert_eq!(merged.len(), model.len());
    for ((k, v), (mk, mv)) in merged.iter().zip(model.values()) {
        assert_eq!(
            (k.p, k.typ, k.version_lo, k.size),
            (mk.p, mk.typ, mk.version_lo, mk.size)
        );
        assert_eq!(v, mv);
    }
});
