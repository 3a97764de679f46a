// SPDX-License-Identifier: GPL-2.0
//! The snapshots subsystem: on-disk value layouts and their text forms.

pub mod format;
pub mod text;
