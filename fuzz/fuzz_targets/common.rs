// SPDX-License-Identifier: GPL-2.0
//! Shared pieces of the fuzz targets: a cheap checksummer (fuzzing wants inputs to
//! get past checksums, so targets either accept bad checksums or fix them up) and
//! a sink that prints every key through the core's text forms.

#![allow(dead_code)]

use bcachefs_core::bkey::Bkey;
use bcachefs_core::csum::Checksummer;
use bcachefs_core::printbuf::{Printbuf, TextOut};
use bcachefs_core::text::{bkey_val_to_text, DevNames, Pb, TextCtx};

pub struct FakeHash;

impl Checksummer for FakeHash {
    fn crc32c(&self, seed: u32, data: &[u8]) -> u32 {
        data.iter().fold(seed, |a, &b| a.rotate_left(5) ^ b as u32)
    }
    fn crc64_be(&self, seed: u64, data: &[u8]) -> u64 {
        data.iter().fold(seed, |a, &b| a.rotate_left(7) ^ b as u64)
    }
    fn xxh64(&self, data: &[u8]) -> u64 {
        data.iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31) ^ b as u64)
    }
}

pub struct Devs;

impl DevNames for Devs {
    fn dev_name(&self, dev: u32) -> Option<&str> {
        (dev < 2).then_some("img")
    }
    fn bucket_size(&self, dev: u32) -> Option<u32> {
        (dev == 0).then_some(128)
    }
    fn bucket_gen(&self, dev: u32, bucket: u64) -> Option<i32> {
        (dev == 0).then_some((bucket % 3) as i32 - 1)
    }
}

pub struct Sink(pub Vec<u8>);

impl TextOut for Sink {
    fn push(&mut self, s: &[u8]) {
        if self.0.len() < (1 << 20) {
            self.0.extend_from_slice(s)
        }
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len)
    }
    fn insert_spaces(&mut self, at: usize, n: usize) {
        if at <= self.0.len() {
            self.0
                .splice(at..at, std::iter::repeat_n(b' ', n.min(4096)));
        }
    }
}

pub fn print_key(out: &mut Sink, k: &Bkey, v: &[u8]) {
    let ctx = TextCtx { devs: &Devs };
    let mut pb: Pb = Printbuf::new(out as &mut dyn TextOut);
    bkey_val_to_text(&mut pb, &ctx, k, v);
    pb.newline();
}
