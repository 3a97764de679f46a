// SPDX-License-Identifier: GPL-2.0
//! The userspace side of bcachefs-rs on top of the format core: image IO
//! ([`fs`]), hash primitives from crates ([`hash`]), the listings ([`list`]), the file tree ([`tree`]), the gc checks ([`check`]) and in-place damage for tests ([`edit`], seeded for the campaign: [`mutate`]).
//! The `bcachefs-rs` binary, the tests and the benchmarks use it.

pub mod check;
pub mod edit;
pub mod fs;
pub mod fsck;
pub mod hash;
pub mod list;
pub mod mutate;
pub mod repair;
pub mod scan;
pub mod tree;
pub mod update;
