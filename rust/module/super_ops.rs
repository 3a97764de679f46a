// SPDX-License-Identifier: GPL-2.0

//! Mount entry points, called from the C fs_context trampolines in shim.c.

use kernel::prelude::*;

use crate::shim;

/// `fs_context_operations.get_tree`. Mounting is not implemented yet: refuse
/// cleanly with a log line naming the reason.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_get_tree(_fc: *mut shim::fs_context) -> c_int {
    pr_err!("mounting is not supported yet by this module\n");
    // The kernel crate names EOPNOTSUPP only from 7.3 on; the bindings have it on
    // every series.
    -(kernel::bindings::EOPNOTSUPP as c_int)
}
