// SPDX-License-Identifier: GPL-2.0
//! Text forms of filesystem values. (Placeholder printers: replaced per type.)

use super::super::bkey::Bkey;
use super::super::text::{opaque_to_text, Pb, TextCtx};

macro_rules! opaque {
    ($($n:ident),*) => {$(
        /// Prints the value.
        pub fn $n(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
            opaque_to_text(pb, v)
        }
    )*};
}
opaque!(
    logged_op_to_text,
    quota_to_text,
    inode_to_text,
    dirent_to_text,
    xattr_to_text,
    damage_to_text
);
