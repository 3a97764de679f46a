// SPDX-License-Identifier: GPL-2.0

//! Btree nodes in the kernel: the node cache with its IO lock bits ([`cache`]), node
//! reads through bios completed on a workqueue ([`io`]), node writes under the
//! `WRITE_IN_FLIGHT` bit ([`write`]), and walks over a btree that print through the
//! format core's text form ([`iter`]).

pub(crate) mod cache;
pub(crate) mod io;
pub(crate) mod iter;
pub(crate) mod write;
