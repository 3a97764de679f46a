// SPDX-License-Identifier: GPL-2.0
//! The known-answer node (core `btree::write::known_answer_node`) composed with the
//! tool's hash functions: its bytes must have the digests the core names, which the
//! kernel module's KUnit test checks with the kernel's hash functions.

use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::read::{read_bsets, BsetRef, NodeCtx};
use bcachefs_core::btree::sort::{Cursor, Merge};
use bcachefs_core::btree::write::{
    known_answer_digest, known_answer_node, KNOWN_ANSWER_DIGESTS, KNOWN_ANSWER_SECTORS,
};
use bcachefs_rs::hash::Hashes;

#[test]
fn known_answer_node_has_the_core_digests() {
    for (ty, want) in KNOWN_ANSWER_DIGESTS {
        let mut buf = vec![0u8; (KNOWN_ANSWER_SECTORS as usize) << 9];
        let mut store = [0u8; 512];
        let b = known_answer_node(&mut buf, &mut store, ty, &Hashes).expect("composed");
        assert_eq!((b.offset, b.sectors), (1, 1), "csum type {ty}");
        let got = known_answer_digest(&buf);
        println!("csum type {ty}: digest {got:#018x}");
        assert_eq!(got, want, "csum type {ty}");
        // Read back: the merged node is the three keys after the update.
        let ctx = NodeCtx {
            magic: 0x6c1e_57a9_0b3d_2f11,
            block_sectors: 1,
            node_sectors: KNOWN_ANSWER_SECTORS,
            written: 2,
            btree_id: Some(0),
            level: Some(0),
            min_key: Some(Bpos::MIN),
            max_key: Some(Bpos::MAX),
            seq: None,
            range_updated: false,
            csum: &Hashes,
            blacklisted: &|_| false,
            accept_bad_csum: false,
        };
        let mut bsets = [BsetRef::default(); 9];
        let (h, n) = read_bsets(&buf, &ctx, &mut bsets, &mut |_| {}).expect("reads");
        assert_eq!(n, 2);
        let mut cur = [Cursor::default(); 2];
        let keys: Vec<_> = Merge::new(&buf, h.format, h.min_key, h.max_key, &bsets[..n], &mut cur)
            .map(|k| (k.k.p.inode, k.k.p.offset, k.v[0]))
            .collect();
        assert_eq!(keys, [(4096, 8, 1), (4097, 16, 7), (1 << 40, 1, 9)]);
    }
}
