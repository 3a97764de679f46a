// SPDX-License-Identifier: GPL-2.0
//! The alloc subsystem: on-disk value layouts, their text forms, and what an
//! alloc key change does to the keys derived from it.

pub mod buckets;
pub mod foreground;
pub mod format;
pub mod text;
pub mod trigger;
