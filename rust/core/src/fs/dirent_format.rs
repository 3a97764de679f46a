// SPDX-License-Identifier: GPL-2.0
//! On-disk directory entries (`struct bch_dirent`).
//!
//! The value is the target (an inode number, or for `DT_SUBVOL` a child and parent
//! subvolume pair), a byte of `d_type:5, d_unused:2, d_casefold:1`, then the name
//! block: the name alone, its length implied by the value's size less the NUL
//! padding in its last u64; or, when casefolded, a pad byte, the two lengths and the
//! name followed by its casefolded form.

use super::super::bytes::{le16z, le32z, le64z, u8z};

/// Byte offsets in the value.
pub mod layout {
    /// `d_inum` (le64), or `d_child_subvol` (le32) for subvolumes.
    pub const D_INUM: usize = 0;
    /// `d_child_subvol` (le32).
    pub const D_CHILD_SUBVOL: usize = 0;
    /// `d_parent_subvol` (le32).
    pub const D_PARENT_SUBVOL: usize = 4;
    /// `d_type:5, d_unused:2, d_casefold:1`.
    pub const D_TYPE: usize = 8;
    /// The name of a plain dirent.
    pub const D_NAME: usize = 9;
    /// Casefolded: `d_name_len` (le16).
    pub const D_NAME_LEN: usize = 10;
    /// Casefolded: `d_cf_name_len` (le16).
    pub const D_CF_NAME_LEN: usize = 12;
    /// Casefolded: the name, then the casefolded name.
    pub const D_NAMES: usize = 14;
}

/// `DT_SUBVOL`: the dirent names a subvolume.
pub const DT_SUBVOL: u8 = 16;
/// `DT_DIR`.
pub const DT_DIR: u8 = 4;
/// `DT_REG`.
pub const DT_REG: u8 = 8;
/// `DT_LNK`.
pub const DT_LNK: u8 = 10;

/// `bch2_d_types[]` (`BCH_DT_MAX` = 17 entries, gaps are `None`).
pub const D_TYPE_NAMES: [Option<&str>; 17] = [
    Some("unknown"),
    Some("fifo"),
    Some("chr"),
    None,
    Some("dir"),
    None,
    Some("blk"),
    None,
    Some("reg"),
    None,
    Some("lnk"),
    None,
    Some("sock"),
    None,
    Some("whiteout"),
    None,
    Some("subvol"),
];

/// `bch2_d_type_str`: the name of `d_type`, `(bad d_type)` when it has none.
pub fn d_type_str(d_type: u8) -> &'static str {
    D_TYPE_NAMES
        .get(d_type as usize)
        .copied()
        .flatten()
        .unwrap_or("(bad d_type)")
}

/// What a dirent points at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    /// An inode number.
    Inode(u64),
    /// A subvolume (`DT_SUBVOL`), and the subvolume the dirent lives in.
    Subvol {
        /// `d_child_subvol`.
        child: u32,
        /// `d_parent_subvol`.
        parent: u32,
    },
}

/// A dirent value, read without trusting it.
#[derive(Clone, Copy, Debug)]
pub struct Dirent<'a> {
    v: &'a [u8],
}

impl<'a> Dirent<'a> {
    /// A view of dirent value `v`.
    pub fn new(v: &'a [u8]) -> Dirent<'a> {
        Dirent { v }
    }

    /// `d_type` (a `DT_*` value).
    pub fn d_type(&self) -> u8 {
        u8z(self.v, layout::D_TYPE) & 31
    }

    /// `d_casefold`.
    pub fn casefold(&self) -> bool {
        u8z(self.v, layout::D_TYPE) & 0x80 != 0
    }

    /// `d_inum` (meaningless for `DT_SUBVOL`).
    pub fn d_inum(&self) -> u64 {
        le64z(self.v, layout::D_INUM)
    }

    /// The target, read through the half of the union `d_type` selects.
    pub fn target(&self) -> Target {
        if self.d_type() == DT_SUBVOL {
            Target::Subvol {
                child: le32z(self.v, layout::D_CHILD_SUBVOL),
                parent: le32z(self.v, layout::D_PARENT_SUBVOL),
            }
        } else {
            Target::Inode(self.d_inum())
        }
    }

    fn block(&self) -> &'a [u8] {
        let start = if self.casefold() {
            layout::D_NAMES
        } else {
            layout::D_NAME
        };
        self.v.get(start..).unwrap_or(&[])
    }

    /// Length of the name block less the NUL padding of the value's last u64
    /// (`bch2_dirent_name_bytes`, saturating where upstream's unsigned math wraps).
    pub fn name_block_len(&self) -> usize {
        let v = self.v;
        let last = v.get(v.len().saturating_sub(8)..).unwrap_or(&[]);
        let padding = last.iter().rev().take_while(|&&b| b == 0).count();
        self.block().len().saturating_sub(padding)
    }

    /// The name (`bch2_dirent_get_name`), `None` when its stored length overruns the
    /// value.
    pub fn name(&self) -> Option<&'a [u8]> {
        let len = if self.casefold() {
            le16z(self.v, layout::D_NAME_LEN) as usize
        } else {
            self.name_block_len()
        };
        self.block().get(..len)
    }

    /// The casefolded name of a casefolded dirent, `None` when not casefolded or
    /// overrunning the value.
    pub fn cf_name(&self) -> Option<&'a [u8]> {
        if !self.casefold() {
            return None;
        }
        let n = le16z(self.v, layout::D_NAME_LEN) as usize;
        let cf = le16z(self.v, layout::D_CF_NAME_LEN) as usize;
        self.block().get(n..n.checked_add(cf)?)
    }

    /// The name the dirent is hashed and looked up by.
    pub fn lookup_name(&self) -> Option<&'a [u8]> {
        if self.casefold() {
            self.cf_name()
        } else {
            self.name()
        }
    }
}
