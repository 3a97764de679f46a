// SPDX-License-Identifier: GPL-2.0
//! Fuzz btree node parsing: header, every bset, key decoding, the merge, and the
//! text form of every merged key. Checksums are accepted when bad so inputs reach
//! the key code; the node's own magic is taken as the expected one.
#![no_main]

use bcachefs_core::btree::read::{read_bsets, walk_ondisk, BsetRef, KeyIter, NodeCtx, NodeHeader};
use bcachefs_core::btree::sort::{Cursor, Merge};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(h) = NodeHeader::parse(data) else {
        return;
    };
    let bl = |seq: u64| seq % 7 == 3;
    let ctx = NodeCtx {
        magic: h.magic,
        block_sectors: 1,
        node_sectors: 64,
        written: 0,
        btree_id: None,
        level: None,
        min_key: None,
        max_key: None,
        seq: None,
        range_updated: false,
        csum: &common::FakeHash,
        blacklisted: &bl,
        accept_bad_csum: true,
    };
    let mut bsets = [BsetRef::default(); 65];
    let mut warn = |_| {};
    let mut out = common::Sink(Vec::new());
    if let Ok((h, n)) = read_bsets(data, &ctx, &mut bsets, &mut warn) {
        let mut cursors = [Cursor::default(); 65];
        for mk in Merge::new(
            data,
            h.format,
            h.min_key,
            h.max_key,
            &bsets[..n],
            &mut cursors,
        ) {
            common::print_key(&mut out, &mk.k, mk.v);
        }
    }
    let _ = walk_ondisk(data, 1, 64, &common::FakeHash, &mut |b| {
        for (k, v, _) in KeyIter::new(b.keys(data), h.format).flatten() {
            common::print_key(&mut out, &k, v);
        }
    });
});
