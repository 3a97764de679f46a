// SPDX-License-Identifier: GPL-2.0
//! Fuzz journal entry parsing: jsets in a bucket, their entries, and the keys in
//! them (decoded and printed). The magic is the input's own; checksums are fixed up.
#![no_main]

use bcachefs_core::bkey::{Bkey, BKEY_BYTES};
use bcachefs_core::csum::checksum;
use bcachefs_core::journal::read::{entry_blacklist, walk_bucket, JSET_BYTES};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut b = data.to_vec();
    // Fix up the first jset's checksum so the fuzzer can get past it.
    if b.len() >= JSET_BYTES {
        let u64s = u32::from_le_bytes([b[40], b[41], b[42], b[43]]) as usize;
        let n = JSET_BYTES.saturating_add(u64s.saturating_mul(8));
        if n <= b.len() {
            if let Ok(c) = checksum(&common::FakeHash, b[36] & 0xf, &b[16..n]) {
                b[0..8].copy_from_slice(&c.lo.to_le_bytes());
                b[8..16].copy_from_slice(&c.hi.to_le_bytes());
            }
        }
    }
    let magic = u64::from_le_bytes(
        b.get(16..24)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 8]),
    );
    let mut out = common::Sink(Vec::new());
    walk_bucket(&b, magic, 1, &common::FakeHash, &mut |_, j| {
        for e in j.iter() {
            let _ = entry_blacklist(&e);
            let mut d = e.data;
            while let Some(k) = Bkey::read_unpacked(d) {
                let n = k.u64s as usize * 8;
                if n < BKEY_BYTES || n > d.len() {
                    break;
                }
                common::print_key(&mut out, &k, &d[BKEY_BYTES..n]);
                d = &d[n..];
            }
        }
    });
});
