// SPDX-License-Identifier: GPL-2.0
//! bcachefs format core.
//!
//! Everything that can be decided from bytes on disk lives here: layouts, key packing,
//! checksums (behind [`csum::Checksummer`]), validation, bset sort/merge, and the text
//! form of every key. `no_std`, no allocation, no `unsafe`; zero-copy over byte slices.
//!
//! This crate is compiled twice: by cargo for the userspace tool and tests, and as a
//! module (`#[path]`) inside the kernel module crate. Modules therefore refer to each
//! other with `super::` paths only, never `crate::`.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod alloc;
pub mod bkey;
pub mod bpos;
pub mod btree;
pub mod bytes;
pub mod csum;
pub mod data;
pub mod fs;
pub mod gc;
pub mod ids;
pub mod journal;
pub mod printbuf;
pub mod sb;
pub mod snapshots;
pub mod text;
