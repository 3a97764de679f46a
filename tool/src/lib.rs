// SPDX-License-Identifier: GPL-2.0
//! The userspace side of bcachefs-rs on top of the format core: image IO
//! ([`fs`]), hash primitives from crates ([`hash`]) the listings ([`list`]) and the file tree ([`tree`]).
//! The `bcachefs-rs` binary, the tests and the benchmarks use it.

pub mod fs;
pub mod hash;
pub mod list;
pub mod tree;
