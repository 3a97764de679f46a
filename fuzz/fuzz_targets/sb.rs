// SPDX-License-Identifier: GPL-2.0
//! Fuzz superblock parsing and its text form. The input's checksum field is fixed
//! up (type from the input) so parsing gets past it.
#![no_main]

use bcachefs_core::csum::checksum;
use bcachefs_core::printbuf::{Printbuf, TextOut};
use bcachefs_core::sb::{JsetEntries, Sb};
use bcachefs_core::text::Pb;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut b = data.to_vec();
    if let Ok(n) = Sb::size_needed(&b) {
        if n <= b.len() && n > 16 {
            let t = (b.get(144).copied().unwrap_or(0) >> 2) & 0x3f;
            if let Ok(c) = checksum(&common::FakeHash, t, &b[16..n]) {
                b[0..8].copy_from_slice(&c.lo.to_le_bytes());
                b[8..16].copy_from_slice(&c.hi.to_le_bytes());
            }
        }
    }
    let Ok(sb) = Sb::parse(&b, &common::FakeHash) else {
        return;
    };
    let mut out = common::Sink(Vec::new());
    {
        let mut pb: Pb = Printbuf::new(&mut out as &mut dyn TextOut);
        bcachefs_core::sb::text::sb_to_text(&mut pb, &sb);
    }
    for i in 0..4 {
        let _ = sb
            .member(i)
            .map(|m| (m.bucket_size(), m.nbuckets(), m.device_name().len()));
    }
    let _ = sb.journal_buckets().take(1000).count();
    if let Some((_, e)) = sb.clean_field() {
        let _ = JsetEntries::new(e).count();
        let _ = bcachefs_core::sb::btree_roots(e).count();
    }
    let _ = sb.blacklist().count();
});
