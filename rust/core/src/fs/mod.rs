// SPDX-License-Identifier: GPL-2.0
//! The fs subsystem: on-disk value layouts and their text forms.

pub mod text;
