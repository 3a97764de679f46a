// SPDX-License-Identifier: GPL-2.0
//! On-disk extended attributes (`struct bch_xattr`) and POSIX ACL values.

use super::super::bytes::{le16z, le32z, u8z};

/// Byte offsets in the value.
pub mod layout {
    /// `x_type`.
    pub const X_TYPE: usize = 0;
    /// `x_name_len`.
    pub const X_NAME_LEN: usize = 1;
    /// `x_val_len` (le16).
    pub const X_VAL_LEN: usize = 2;
    /// Name, then value.
    pub const X_NAME_AND_VALUE: usize = 4;
}

/// `KEY_TYPE_XATTR_INDEX_*`.
pub mod index {
    /// `user.`
    pub const USER: u8 = 0;
    /// `system.posix_acl_access`
    pub const POSIX_ACL_ACCESS: u8 = 1;
    /// `system.posix_acl_default`
    pub const POSIX_ACL_DEFAULT: u8 = 2;
    /// `trusted.`
    pub const TRUSTED: u8 = 3;
    /// `security.`
    pub const SECURITY: u8 = 4;
}

/// The handler of xattr type `t` as `bch2_xattr_type_to_handler` sees it: `None`
/// when there is none, `Some(None)` for the ACL handlers, which have no prefix,
/// `Some(Some(prefix))` otherwise.
pub fn type_prefix(t: u8) -> Option<Option<&'static str>> {
    match t {
        index::USER => Some(Some("user.")),
        index::POSIX_ACL_ACCESS | index::POSIX_ACL_DEFAULT => Some(None),
        index::TRUSTED => Some(Some("trusted.")),
        index::SECURITY => Some(Some("security.")),
        _ => None,
    }
}

/// An xattr value.
#[derive(Clone, Copy, Debug)]
pub struct Xattr<'a> {
    v: &'a [u8],
}

impl<'a> Xattr<'a> {
    /// A view of xattr value `v`.
    pub fn new(v: &'a [u8]) -> Xattr<'a> {
        Xattr { v }
    }
    /// `x_type`.
    pub fn x_type(&self) -> u8 {
        u8z(self.v, layout::X_TYPE)
    }
    /// `x_name_len` as stored.
    pub fn name_len(&self) -> usize {
        u8z(self.v, layout::X_NAME_LEN) as usize
    }
    /// `x_val_len` as stored.
    pub fn val_len(&self) -> usize {
        le16z(self.v, layout::X_VAL_LEN) as usize
    }
    fn rest(&self) -> &'a [u8] {
        self.v.get(layout::X_NAME_AND_VALUE..).unwrap_or(&[])
    }
    /// The name, clamped to the value.
    pub fn name(&self) -> &'a [u8] {
        let r = self.rest();
        r.get(..self.name_len().min(r.len())).unwrap_or(&[])
    }
    /// The value, clamped to the key's value.
    pub fn value(&self) -> &'a [u8] {
        let r = self.rest();
        let start = self.name_len();
        let end = start.saturating_add(self.val_len()).min(r.len());
        r.get(start..end).unwrap_or(&[])
    }
}

/// `BCH_ACL_VERSION`.
pub const ACL_VERSION: u32 = 1;

/// ACL entry tags.
pub mod acl_tag {
    /// `ACL_USER_OBJ`
    pub const USER_OBJ: u16 = 0x01;
    /// `ACL_USER`
    pub const USER: u16 = 0x02;
    /// `ACL_GROUP_OBJ`
    pub const GROUP_OBJ: u16 = 0x04;
    /// `ACL_GROUP`
    pub const GROUP: u16 = 0x08;
    /// `ACL_MASK`
    pub const MASK: u16 = 0x10;
    /// `ACL_OTHER`
    pub const OTHER: u16 = 0x20;
}

/// One ACL entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AclEntry {
    /// Tag (`acl_tag`).
    pub tag: u16,
    /// Permission bits.
    pub perm: u16,
    /// uid/gid for `USER`/`GROUP` entries.
    pub id: Option<u32>,
    /// Whether this is the last entry (the next would start at the end exactly).
    pub last: bool,
}

/// Iterator over the entries of a bcachefs ACL value; yields nothing when the
/// header is wrong and stops at an entry with an unknown tag.
pub struct AclEntries<'a> {
    b: &'a [u8],
    pos: usize,
}

/// The entries of ACL value `b`.
pub fn acl_entries(b: &[u8]) -> AclEntries<'_> {
    let ok = b.len() >= 4 && le32z(b, 0) == ACL_VERSION;
    AclEntries {
        b,
        pos: if ok { 4 } else { b.len() },
    }
}

impl Iterator for AclEntries<'_> {
    type Item = AclEntry;
    fn next(&mut self) -> Option<AclEntry> {
        if self.pos >= self.b.len() {
            return None;
        }
        let tag = le16z(self.b, self.pos);
        let perm = le16z(self.b, self.pos + 2);
        let (id, size) = match tag {
            acl_tag::USER_OBJ | acl_tag::GROUP_OBJ | acl_tag::MASK | acl_tag::OTHER => (None, 4),
            acl_tag::USER | acl_tag::GROUP => (Some(le32z(self.b, self.pos + 4)), 8),
            _ => {
                self.pos = self.b.len();
                return None;
            }
        };
        self.pos += size;
        Some(AclEntry {
            tag,
            perm,
            id,
            last: self.pos == self.b.len(),
        })
    }
}
