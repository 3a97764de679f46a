// SPDX-License-Identifier: GPL-2.0
//! Reading the devices for btree nodes (upstream's `scan_for_btree_nodes`): every
//! bucket the members' btree bitmaps mark, node by node from each bucket's
//! start. What each offset holds is the core's call (`btree::scan::examine`).

use bcachefs_core::btree::read::BsetRef;
use bcachefs_core::btree::scan::{examine, marked_buckets, Found};

use crate::fs::{read_at, Fs};
use crate::hash::Hashes;

/// Every node found on the filesystem's devices, in device and offset order.
pub fn scan(fs: &Fs) -> Vec<Found> {
    let s = fs.sb();
    let ns = u64::from(s.btree_node_sectors());
    let mut found = Vec::new();
    if ns == 0 {
        return found;
    }
    let mut bsets =
        vec![BsetRef::default(); (ns / u64::from(s.block_sectors().max(1))) as usize + 1];
    for (i, d) in fs.devs.iter().enumerate() {
        let (Some(d), Some(m)) = (d, s.member(i)) else {
            continue;
        };
        let bs = u64::from(m.bucket_size());
        if bs < ns {
            continue;
        }
        let buckets = marked_buckets(
            m.btree_allocated_bitmap(),
            m.btree_bitmap_shift(),
            bs,
            u64::from(m.first_bucket()),
            m.nbuckets(),
        );
        for b in buckets {
            let Ok(buf) = read_at(&d.file, b * bs * 512, (bs as usize) << 9) else {
                continue;
            };
            let mut off = 0u64;
            while (off + ns) as usize * 512 <= buf.len() {
                let node = &buf[(off as usize) << 9..((off + ns) as usize) << 9];
                if let Some(f) = examine(
                    node,
                    i as u8,
                    b * bs + off,
                    s.bset_magic(),
                    s.block_sectors(),
                    ns as u32,
                    &Hashes,
                    &|seq| fs.is_blacklisted(seq),
                    &mut bsets,
                ) {
                    found.push(f);
                }
                off += ns;
            }
        }
    }
    found
}
