// SPDX-License-Identifier: GPL-2.0
//! The userspace side of bcachefs-rs on top of the format core: image IO
//! ([`fs`]), hash primitives from crates ([`hash`]) and the listings ([`list`]).
//! The `bcachefs-rs` binary, the tests and the benchmarks use it.

pub mod fs;
pub mod hash;
pub mod list;
