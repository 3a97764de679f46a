// SPDX-License-Identifier: GPL-2.0
//! Benchmark (not a test): decode every btree node of an image — checksum every
//! bset, validate, merge the bsets, walk every merged key — from memory, and print
//! nodes/s, keys/s and MB/s, beside the bset checks alone (checksums and headers,
//! no merge) and a memcpy of the same bytes for the memory bandwidth bound.
//!
//!   cargo run --release --example bench_nodes -- DEVICE... [--rounds N]

use std::time::Instant;

use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::read::{read_bsets, BsetRef, NodeCtx};
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::ids;
use bcachefs_rs::fs::Fs;
use bcachefs_rs::hash::Hashes;
use bcachefs_rs::list::Walk;

struct Loaded {
    buf: Vec<u8>,
    ctx: (
        u32,
        u8,
        bcachefs_core::bpos::Bpos,
        bcachefs_core::bpos::Bpos,
        u64,
        u32,
    ),
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 5;
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args[i + 1].parse().unwrap();
        args.drain(i..i + 2);
    }
    let fs = Fs::open(&args).expect("open");
    let s = fs.sb();
    // Load every node's written bytes into memory first (IO is not measured).
    let mut nodes: Vec<Loaded> = Vec::new();
    let mut walk = Walk { fs: &fs, errors: 0 };
    for btree in 0..ids::BTREE_ID_NR as u32 {
        let root = fs.roots[btree as usize].clone().unwrap();
        let mut cb = |w: &mut Walk, level: u8, k: &bcachefs_core::bkey::Bkey, v: &[u8]| {
            if let Some(bp) = BtreePtr::decode(k.typ, v) {
                if let Some(p) = bp.ptrs().next() {
                    if let Ok(r) = w.fs.read_node(btree, level, k, v) {
                        let _ = p;
                        let len = r
                            .bsets
                            .last()
                            .map(|b| ((b.offset + b.sectors) as usize) << 9)
                            .unwrap_or(0);
                        nodes.push(Loaded {
                            buf: r.buf[..len.min(r.buf.len())].to_vec(),
                            ctx: (
                                btree,
                                level,
                                bp.min_key.unwrap_or(r.h.min_key),
                                k.p,
                                bp.seq,
                                bp.written as u32,
                            ),
                        });
                    }
                }
            }
        };
        walk.nodes(btree, root.level, &root.k, &root.v, 0, &mut cb);
    }
    let bytes: usize = nodes.iter().map(|n| n.buf.len()).sum();
    let bl = |_| false;
    // Each node's read context, made once for every round.
    let ctxs: Vec<NodeCtx> = nodes
        .iter()
        .map(|n| {
            let (btree, level, min, max, seq, written) = n.ctx;
            NodeCtx {
                magic: s.bset_magic(),
                block_sectors: s.block_sectors(),
                node_sectors: s.btree_node_sectors(),
                written,
                btree_id: Some(btree),
                level: Some(level),
                min_key: Some(min),
                max_key: Some(max),
                seq: Some(seq),
                range_updated: false,
                csum: &Hashes,
                blacklisted: &bl,
                accept_bad_csum: false,
            }
        })
        .collect();
    let mut bsets = vec![BsetRef::default(); 4096];
    let mut cursors = vec![Cursor::default(); 4096];
    let mut best = f64::MAX;
    let mut keys = 0u64;
    for _ in 0..rounds {
        let t = Instant::now();
        keys = 0;
        for (n, ctx) in nodes.iter().zip(&ctxs) {
            let (h, nb) = read_bsets(&n.buf, ctx, &mut bsets, &mut |_| {}).expect("node");
            for k in Merge::new(
                &n.buf,
                h.format,
                h.min_key,
                h.max_key,
                &bsets[..nb],
                &mut cursors[..nb],
            ) {
                keys += 1;
                std::hint::black_box(k.v.len());
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    // The same node reads without the merge: what checking every bset (its
    // checksum, its header) costs alone.
    let mut best_rd = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for (n, ctx) in nodes.iter().zip(&ctxs) {
            let r = read_bsets(&n.buf, ctx, &mut bsets, &mut |_| {}).expect("node");
            std::hint::black_box(r.1);
        }
        best_rd = best_rd.min(t.elapsed().as_secs_f64());
    }
    let mut dst = vec![0u8; bytes];
    let mut best_cp = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut off = 0;
        for n in &nodes {
            dst[off..off + n.buf.len()].copy_from_slice(&n.buf);
            off += n.buf.len();
        }
        std::hint::black_box(&dst);
        best_cp = best_cp.min(t.elapsed().as_secs_f64());
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "nodes {} keys {} node bytes {:.1} MB (best of {} rounds)",
        nodes.len(),
        keys,
        mb,
        rounds
    );
    println!(
        "decode+merge: {:.3} s  {:.0} nodes/s  {:.0} keys/s  {:.0} MB/s",
        best,
        nodes.len() as f64 / best,
        keys as f64 / best,
        mb / best
    );
    println!(
        "bsets alone:  {:.4} s  {:.0} MB/s  (checksums and headers, no merge: {:.0}% of decode)",
        best_rd,
        mb / best_rd,
        100.0 * best_rd / best
    );
    println!(
        "memcpy:       {:.4} s  {:.0} MB/s  (decode is {:.1}x memcpy time, {:.1}% of its MB/s)",
        best_cp,
        mb / best_cp,
        best / best_cp,
        100.0 * best_cp / best
    );
}
