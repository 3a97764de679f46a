// SPDX-License-Identifier: GPL-2.0
//! Btree nodes: the on-disk format, reading and validating every bset, and merging
//! a node's bsets into one sorted view.

pub mod format;
pub mod interior;
pub mod ptr;
pub mod read;
pub mod scan;
pub mod sort;
pub mod text;
pub mod update;
pub mod validate;
pub mod write;
