// SPDX-License-Identifier: GPL-2.0
//! On-disk layouts of `bch_snapshot`, `bch_snapshot_tree` and `bch_subvolume`, and
//! their lifecycle state codewords.
//!
//! Fields past the end of a short value read as zero (`bkey_val_copy_pad`).

use super::super::bytes::{bits, le32z, le64z};

/// `struct bch_snapshot` in host form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    /// `flags` (the obsolete state bits).
    pub flags: u32,
    /// `parent`.
    pub parent: u32,
    /// `children[2]`.
    pub children: [u32; 2],
    /// `subvol`.
    pub subvol: u32,
    /// `tree`.
    pub tree: u32,
    /// `depth`.
    pub depth: u32,
    /// `skip[3]`.
    pub skip: [u32; 3],
    /// `btime` (128 bits: lo, hi).
    pub btime: [u64; 2],
    /// `state`.
    pub state: u32,
    /// `pad`.
    pub pad: u32,
}

/// `BCH_SNAPSHOT_STATES()`: name and codeword.
pub const SNAPSHOT_STATES: [(&str, u32); 4] = [
    ("live", 0x757c47a2),
    ("will_delete", 0x3316a8d2),
    ("no_keys", 0x372b5a01),
    ("deleted", 0x7cd4a225),
];

/// `SNAPSHOT_STATE_live`.
pub const SNAPSHOT_STATE_LIVE: u32 = 0x757c47a2;
/// `SNAPSHOT_STATE_will_delete`.
pub const SNAPSHOT_STATE_WILL_DELETE: u32 = 0x3316a8d2;
/// `SNAPSHOT_STATE_no_keys`.
pub const SNAPSHOT_STATE_NO_KEYS: u32 = 0x372b5a01;
/// `SNAPSHOT_STATE_deleted`.
pub const SNAPSHOT_STATE_DELETED: u32 = 0x7cd4a225;

/// Obsolete snapshot flag bits (`BCH_SNAPSHOT_*_OBSOLETE`), by bit.
pub mod snapshot_flag {
    /// `BCH_SNAPSHOT_WILL_DELETE_OBSOLETE`.
    pub const WILL_DELETE: u32 = 1 << 0;
    /// `BCH_SNAPSHOT_SUBVOL_OBSOLETE`.
    pub const SUBVOL: u32 = 1 << 1;
    /// `BCH_SNAPSHOT_DELETED_OBSOLETE`.
    pub const DELETED: u32 = 1 << 2;
    /// `BCH_SNAPSHOT_NO_KEYS_OBSOLETE`.
    pub const NO_KEYS: u32 = 1 << 3;
    /// Names of the bits, for `prt_bitflags`.
    pub const NAMES: [&str; 4] = ["will_delete", "subvol", "deleted", "no_keys"];
}

/// `bch2_snapshot_state_str`.
pub fn snapshot_state_str(state: u32) -> &'static str {
    SNAPSHOT_STATES
        .iter()
        .find(|s| s.1 == state)
        .map(|s| s.0)
        .unwrap_or("(invalid state)")
}

/// `bch2_snapshot_state_valid`.
pub fn snapshot_state_valid(state: u32) -> bool {
    SNAPSHOT_STATES.iter().any(|s| s.1 == state)
}

impl Snapshot {
    /// Reads a snapshot value.
    pub fn read(v: &[u8]) -> Snapshot {
        Snapshot {
            flags: le32z(v, 0),
            parent: le32z(v, 4),
            children: [le32z(v, 8), le32z(v, 12)],
            subvol: le32z(v, 16),
            tree: le32z(v, 20),
            depth: le32z(v, 24),
            skip: [le32z(v, 28), le32z(v, 32), le32z(v, 36)],
            btime: [le64z(v, 40), le64z(v, 48)],
            state: le32z(v, 56),
            pad: le32z(v, 60),
        }
    }

    /// `bch2_snapshot_state_from_flags`.
    pub fn state_from_flags(&self) -> u32 {
        if self.flags & snapshot_flag::DELETED != 0 {
            SNAPSHOT_STATE_DELETED
        } else if self.flags & snapshot_flag::NO_KEYS != 0 {
            SNAPSHOT_STATE_NO_KEYS
        } else if self.flags & snapshot_flag::WILL_DELETE != 0 {
            SNAPSHOT_STATE_WILL_DELETE
        } else {
            SNAPSHOT_STATE_LIVE
        }
    }

    /// `bch2_snapshot_state_compat`: the state field, or what the flags say when the
    /// key predates it.
    pub fn state_compat(&self) -> u32 {
        if self.state != 0 {
            self.state
        } else {
            self.state_from_flags()
        }
    }

    /// The obsolete flags `bch2_snapshot_state_set(state)` would write.
    pub fn expected_flags(&self, state: u32) -> u32 {
        let keep = self.flags
            & !(snapshot_flag::WILL_DELETE
                | snapshot_flag::SUBVOL
                | snapshot_flag::DELETED
                | snapshot_flag::NO_KEYS);
        keep | match state {
            SNAPSHOT_STATE_LIVE => {
                if self.subvol != 0 {
                    snapshot_flag::SUBVOL
                } else {
                    0
                }
            }
            SNAPSHOT_STATE_WILL_DELETE => snapshot_flag::WILL_DELETE,
            SNAPSHOT_STATE_NO_KEYS => snapshot_flag::NO_KEYS,
            SNAPSHOT_STATE_DELETED => snapshot_flag::DELETED,
            // bch2_snapshot_state_set leaves the flags alone for other values
            _ => self.flags & !keep,
        }
    }
}

/// `struct bch_snapshot_tree`: `master_subvol`, `root_snapshot`.
pub fn snapshot_tree_fields(v: &[u8]) -> (u32, u32) {
    (le32z(v, 0), le32z(v, 4))
}

/// `struct bch_subvolume` in host form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Subvolume {
    /// `flags`.
    pub flags: u32,
    /// `snapshot`.
    pub snapshot: u32,
    /// `inode`.
    pub inode: u64,
    /// `creation_parent`.
    pub creation_parent: u32,
    /// `fs_path_parent`.
    pub fs_path_parent: u32,
    /// `otime` (lo, hi).
    pub otime: [u64; 2],
    /// `state`.
    pub state: u32,
    /// `pad`.
    pub pad: u32,
}

/// Byte offset of `bch_subvolume.creation_parent`.
pub const SUBVOLUME_CREATION_PARENT: usize = 16;

/// `BCH_SUBVOLUME_STATES()`: name and codeword.
pub const SUBVOLUME_STATES: [(&str, u32); 3] = [
    ("live", 0x4ad5447e),
    ("unlinked", 0x2d358e8f),
    ("deleted", 0x3c6b2d4c),
];

/// `SUBVOLUME_STATE_live`.
pub const SUBVOLUME_STATE_LIVE: u32 = 0x4ad5447e;
/// `SUBVOLUME_STATE_unlinked`.
pub const SUBVOLUME_STATE_UNLINKED: u32 = 0x2d358e8f;

/// `bch2_subvolume_state_str`.
pub fn subvolume_state_str(state: u32) -> &'static str {
    SUBVOLUME_STATES
        .iter()
        .find(|s| s.1 == state)
        .map(|s| s.0)
        .unwrap_or("(invalid state)")
}

impl Subvolume {
    /// Reads a subvolume value.
    pub fn read(v: &[u8]) -> Subvolume {
        Subvolume {
            flags: le32z(v, 0),
            snapshot: le32z(v, 4),
            inode: le64z(v, 8),
            creation_parent: le32z(v, 16),
            fs_path_parent: le32z(v, 20),
            otime: [le64z(v, 24), le64z(v, 32)],
            state: le32z(v, 40),
            pad: le32z(v, 44),
        }
    }

    /// `BCH_SUBVOLUME_RO`.
    pub fn ro(&self) -> bool {
        bits(self.flags as u64, 0, 1) != 0
    }

    /// `BCH_SUBVOLUME_SNAP`.
    pub fn snap(&self) -> bool {
        bits(self.flags as u64, 1, 2) != 0
    }

    /// `BCH_SUBVOLUME_UNLINKED_OBSOLETE`.
    pub fn unlinked_obsolete(&self) -> bool {
        bits(self.flags as u64, 2, 3) != 0
    }

    /// `bch2_subvolume_state_compat`.
    pub fn state_compat(&self) -> u32 {
        if self.state != 0 {
            self.state
        } else if self.unlinked_obsolete() {
            SUBVOLUME_STATE_UNLINKED
        } else {
            SUBVOLUME_STATE_LIVE
        }
    }
}
