// SPDX-License-Identifier: GPL-2.0
//! The journal: jsets, their validation, and the keys not yet in the btrees.

pub mod keys;
pub mod read;
pub mod text;
pub mod write;
