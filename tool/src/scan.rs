// SPDX-License-Identifier: GPL-2.0
//! Reading the devices for btree nodes (upstream's `scan_for_btree_nodes`): every
//! bucket the members' btree bitmaps mark, node by node from each bucket's
//! start. What each offset holds is the core's call (`btree::scan::examine`).

use bcachefs_core::btree::read::BsetRef;
use bcachefs_core::btree::scan::{examine_bucket, member_buckets, Found, ScanCtx};

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
    let mut bsets = vec![BsetRef::default(); s.max_bsets()];
    let blacklisted = |seq| fs.is_blacklisted(seq);
    let ctx = ScanCtx::of(&s, &Hashes, &blacklisted);
    for (i, d) in fs.devs.iter().enumerate() {
        let (Some(d), Some(m)) = (d, s.member(i)) else {
            continue;
        };
        let Some((bs, buckets)) = member_buckets(&m, ns) else {
            continue;
        };
        for b in buckets {
            let Ok(buf) = read_at(&d.file, b * bs * 512, (bs as usize) << 9) else {
                continue;
            };
            examine_bucket(&buf, i as u8, b * bs, &ctx, &mut bsets, &mut |f| {
                found.push(f)
            });
        }
    }
    found
}
