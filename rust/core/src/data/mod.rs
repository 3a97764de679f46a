// SPDX-License-Identifier: GPL-2.0
//! The data subsystem: on-disk value layouts and their text forms.

pub mod extents_format;
pub mod read;
pub mod text;
