// SPDX-License-Identifier: GPL-2.0
//! Text forms of data values (extents, btree pointers, reflink). (Placeholder printers: replaced per type.)

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
opaque!(val_to_text);
