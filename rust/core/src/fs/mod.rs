// SPDX-License-Identifier: GPL-2.0
//! The fs subsystem: on-disk value layouts, their text forms, and the tree they make.

pub mod damage_format;
pub mod dirent_format;
pub mod inode_format;
pub mod logged_ops;
pub mod quota_format;
pub mod str_hash;
pub mod text;
pub mod tree;
pub mod xattr_format;
