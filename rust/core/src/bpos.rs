// SPDX-License-Identifier: GPL-2.0
//! `struct bpos`: a btree position, compared as one 160-bit integer
//! (inode, then offset, then snapshot).

use core::fmt;

/// A btree position.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Bpos {
    /// Inode number (most significant).
    pub inode: u64,
    /// Offset (sectors for extents, hash for dirents/xattrs).
    pub offset: u64,
    /// Snapshot id (least significant).
    pub snapshot: u32,
}

impl Bpos {
    /// `POS_MIN`.
    pub const MIN: Bpos = Bpos {
        inode: 0,
        offset: 0,
        snapshot: 0,
    };
    /// `POS_MAX` (snapshot 0).
    pub const POS_MAX: Bpos = Bpos {
        inode: u64::MAX,
        offset: u64::MAX,
        snapshot: 0,
    };
    /// `SPOS_MAX`.
    pub const MAX: Bpos = Bpos {
        inode: u64::MAX,
        offset: u64::MAX,
        snapshot: u32::MAX,
    };

    /// A position from its three parts.
    pub const fn new(inode: u64, offset: u64, snapshot: u32) -> Self {
        Bpos {
            inode,
            offset,
            snapshot,
        }
    }

    /// On-disk little-endian layout: snapshot u32, offset u64, inode u64 (20 bytes).
    pub fn read(b: &[u8], off: usize) -> Option<Bpos> {
        Some(Bpos {
            snapshot: super::bytes::le32(b, off)?,
            offset: super::bytes::le64(b, off + 4)?,
            inode: super::bytes::le64(b, off + 12)?,
        })
    }

    /// Writes the on-disk layout at `off` (the write side of [`Bpos::read`]).
    pub fn write(&self, b: &mut [u8], off: usize) -> Option<()> {
        super::bytes::put_le32(b, off, self.snapshot)?;
        super::bytes::put_le64(b, off + 4, self.offset)?;
        super::bytes::put_le64(b, off + 12, self.inode)
    }

    /// The next position (`bpos_successor`), saturating at `SPOS_MAX`.
    pub fn successor(self) -> Bpos {
        let mut p = self;
        p.snapshot = p.snapshot.wrapping_add(1);
        if p.snapshot != 0 {
            return p;
        }
        p.offset = p.offset.wrapping_add(1);
        if p.offset != 0 {
            return p;
        }
        p.inode = p.inode.wrapping_add(1);
        if p.inode != 0 {
            return p;
        }
        Bpos::MAX
    }

    /// The previous position (`bpos_predecessor`), saturating at `POS_MIN`.
    pub fn predecessor(self) -> Bpos {
        if self == Bpos::MIN {
            return self;
        }
        let mut p = self;
        let (s, b) = p.snapshot.overflowing_sub(1);
        p.snapshot = s;
        if !b {
            return p;
        }
        let (o, b) = p.offset.overflowing_sub(1);
        p.offset = o;
        if !b {
            return p;
        }
        p.inode = p.inode.wrapping_sub(1);
        p
    }
}

impl fmt::Display for Bpos {
    /// Upstream's `bch2_bpos_to_text` spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Bpos::MIN {
            return f.write_str("POS_MIN");
        }
        if *self == Bpos::POS_MAX {
            return f.write_str("POS_MAX");
        }
        if *self == Bpos::MAX {
            return f.write_str("SPOS_MAX");
        }
        if self.inode == u64::MAX {
            f.write_str("U64_MAX")?;
        } else {
            write!(f, "{}", self.inode)?;
        }
        f.write_str(":")?;
        if self.offset == u64::MAX {
            f.write_str("U64_MAX")?;
        } else {
            write!(f, "{}", self.offset)?;
        }
        f.write_str(":")?;
        if self.snapshot == u32::MAX {
            f.write_str("U32_MAX")
        } else {
            write!(f, "{}", self.snapshot)
        }
    }
}
