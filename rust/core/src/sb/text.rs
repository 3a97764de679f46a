// SPDX-License-Identifier: GPL-2.0
//! `show-super` text. (Placeholder: filled in by the show-super work.)

use super::super::text::Pb;
use super::Sb;

/// `bcachefs show-super` text of a superblock.
pub fn sb_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>) {
    use core::fmt::Write;
    let _ = writeln!(
        pb,
        "External UUID:                             {}",
        sb.user_uuid()
    );
}
