// SPDX-License-Identifier: GPL-2.0
//! The filesystem tree read from the btrees: inodes, directory lookups and listings,
//! a file's extents and xattrs, as one subvolume's snapshot sees them.
//!
//! The caller supplies the keys (through [`Keys`]: the kernel from its node cache,
//! userspace from an image), already merged with the journal; this module decides
//! which keys matter and what they mean.
//!
//! Snapshots: a key belongs to the tree when its snapshot is the subvolume's own.
//! Keys a subvolume inherits from an ancestor snapshot are not followed yet (a
//! filesystem that has had snapshots taken reads its newest state only where it
//! was written after the snapshot).

use core::ops::ControlFlow;

use super::super::bkey::Bkey;
use super::super::bpos::Bpos;
use super::super::csum::Checksummer;
use super::super::ids::{btree, KeyType};
use super::super::snapshots::format::Subvolume;
pub use super::dirent_format::DT_SUBVOL;
use super::dirent_format::{Dirent, Target};
use super::inode_format::{self, InodeUnpacked};
use super::str_hash::{dirent_hash, HashInfo};
use super::xattr_format::Xattr;

/// A source of keys: a btree's live keys in order, the journal replayed.
pub trait Keys {
    /// Why keys could not be read (an IO error, an unreadable node).
    type Error;
    /// Calls `f` with each key of `btree` from `from` to `to` inclusive, in order,
    /// until it breaks. Deleted keys and whiteouts may be passed or not.
    fn range(
        &self,
        btree: u32,
        from: Bpos,
        to: Bpos,
        f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), Self::Error>;
}

/// Inode number of a subvolume's root directory (`BCACHEFS_ROOT_INO`).
pub const ROOT_INO: u64 = 4096;
/// The subvolume a filesystem mounts by default (`BCACHEFS_ROOT_SUBVOL`).
pub const ROOT_SUBVOL: u32 = 1;

/// A directory entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry<'a> {
    /// Its offset in the directory (a hash, or past one after collisions).
    pub offset: u64,
    /// The name.
    pub name: &'a [u8],
    /// The inode it names (0 for a subvolume).
    pub inum: u64,
    /// `DT_*` type.
    pub d_type: u8,
}

fn entry<'a>(k: &Bkey, v: &'a [u8]) -> Option<Entry<'a>> {
    if k.typ != KeyType::Dirent as u8 {
        return None;
    }
    let d = Dirent::new(v);
    let inum = match d.target() {
        Target::Inode(i) => i,
        Target::Subvol { .. } => 0,
    };
    Some(Entry {
        offset: k.p.offset,
        name: d.name()?,
        inum,
        d_type: d.d_type(),
    })
}

/// One subvolume's tree over `K`.
pub struct Tree<'a, K: Keys> {
    keys: &'a K,
    csum: &'a dyn Checksummer,
    /// The subvolume's snapshot.
    pub snapshot: u32,
}

impl<'a, K: Keys> Tree<'a, K> {
    /// The tree of the subvolume whose snapshot is `snapshot`.
    pub fn new(keys: &'a K, csum: &'a dyn Checksummer, snapshot: u32) -> Self {
        Tree {
            keys,
            csum,
            snapshot,
        }
    }

    /// The tree of subvolume `subvol`: `None` when it has no subvolume key, or one
    /// without a snapshot. Returns the subvolume's root inode number too.
    pub fn open(
        keys: &'a K,
        csum: &'a dyn Checksummer,
        subvol: u32,
    ) -> Result<Option<(Self, u64)>, K::Error> {
        let pos = Bpos {
            inode: 0,
            offset: subvol as u64,
            snapshot: 0,
        };
        let mut found: Option<Subvolume> = None;
        keys.range(btree::SUBVOLUMES, pos, pos, &mut |k, v| {
            if k.typ == KeyType::Subvolume as u8 {
                found = Some(Subvolume::read(v));
            }
            ControlFlow::Break(())
        })?;
        Ok(found.filter(|s| s.snapshot != 0).map(|s| {
            let t = Tree {
                keys,
                csum,
                snapshot: s.snapshot,
            };
            (t, s.inode)
        }))
    }

    /// Keys of `btree` from (`inode`, `from`) to (`inode`, `to`) in this tree's
    /// snapshot.
    fn in_inode(
        &self,
        btree: u32,
        inode: u64,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), K::Error> {
        let snap = self.snapshot;
        let lo = Bpos {
            inode,
            offset: from,
            snapshot: 0,
        };
        let hi = Bpos {
            inode,
            offset: to,
            snapshot: u32::MAX,
        };
        self.keys.range(btree, lo, hi, &mut |k, v| {
            if k.p.snapshot != snap {
                return ControlFlow::Continue(());
            }
            f(k, v)
        })
    }

    /// Inode `inum`, unpacked; `None` when there is none.
    pub fn inode(&self, inum: u64) -> Result<Option<InodeUnpacked>, K::Error> {
        let pos = Bpos {
            inode: 0,
            offset: inum,
            snapshot: self.snapshot,
        };
        let mut found = None;
        self.keys.range(btree::INODES, pos, pos, &mut |k, v| {
            if inode_format::is_inode(k.typ) {
                found = inode_format::unpack(k, v);
            }
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// The entry named `name` in directory `dir` (whose hash info is `info`: see
    /// [`HashInfo::of`]). Follows the directory's hash and its collisions; a hash
    /// type this code cannot compute falls back to reading the whole directory.
    pub fn lookup(
        &self,
        dir: u64,
        info: &HashInfo,
        name: &[u8],
        f: &mut dyn FnMut(&Entry<'_>),
    ) -> Result<bool, K::Error> {
        let mut found = false;
        let Some(hash) = dirent_hash(self.csum, info, name) else {
            self.in_inode(
                btree::DIRENTS,
                dir,
                0,
                u64::MAX,
                &mut |k, v| match entry(k, v) {
                    Some(e) if e.name == name => {
                        found = true;
                        f(&e);
                        ControlFlow::Break(())
                    }
                    _ => ControlFlow::Continue(()),
                },
            )?;
            return Ok(found);
        };
        // Probe from the hash: a dirent with another name or a hash whiteout moves
        // on to the next offset, a hole (no key there) ends the search.
        let mut expect = hash;
        self.in_inode(btree::DIRENTS, dir, hash, u64::MAX, &mut |k, v| {
            if k.p.offset != expect {
                return ControlFlow::Break(());
            }
            if let Some(e) = entry(k, v) {
                if e.name == name {
                    found = true;
                    f(&e);
                    return ControlFlow::Break(());
                }
            } else if k.typ != KeyType::HashWhiteout as u8 {
                return ControlFlow::Break(());
            }
            match expect.checked_add(1) {
                Some(n) => {
                    expect = n;
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Break(()),
            }
        })?;
        Ok(found)
    }

    /// The entries of directory `dir` at offsets `from` and above, in offset order,
    /// until `f` breaks. Offsets are stable: a listing resumes at the last one + 1.
    pub fn readdir(
        &self,
        dir: u64,
        from: u64,
        f: &mut dyn FnMut(&Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), K::Error> {
        self.in_inode(
            btree::DIRENTS,
            dir,
            from,
            u64::MAX,
            &mut |k, v| match entry(k, v) {
                Some(e) => f(&e),
                None => ControlFlow::Continue(()),
            },
        )
    }

    /// The extent keys of file `inum` that overlap sectors `start..end`, in order,
    /// until `f` breaks (extents, inline data, reservations and anything else the
    /// extents btree holds there: see [`super::super::data::read`]).
    pub fn extents(
        &self,
        inum: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), K::Error> {
        // Extents are keyed by their end: the first that matters ends after `start`.
        self.in_inode(
            btree::EXTENTS,
            inum,
            start.saturating_add(1),
            u64::MAX,
            &mut |k, v| {
                if k.start_pos().offset >= end {
                    return ControlFlow::Break(());
                }
                f(k, v)
            },
        )
    }

    /// The xattrs of inode `inum` until `f` breaks.
    pub fn xattrs(
        &self,
        inum: u64,
        f: &mut dyn FnMut(&Xattr<'_>) -> ControlFlow<()>,
    ) -> Result<(), K::Error> {
        self.in_inode(btree::XATTRS, inum, 0, u64::MAX, &mut |k, v| {
            if k.typ != KeyType::Xattr as u8 {
                return ControlFlow::Continue(());
            }
            f(&Xattr::new(v))
        })
    }
}

/// Converts an inode time (`bi_atime` etc.: units of `precision` ns since the
/// filesystem's time base) to seconds and nanoseconds since the epoch
/// (`bch2_time_to_timespec`).
pub fn time_to_timespec(t: u64, time_base_lo: u64, precision: u32) -> (i64, u32) {
    let precision = precision.clamp(1, 1_000_000_000) as i64;
    let units_per_sec = 1_000_000_000 / precision;
    let t = (t as i64).wrapping_add(time_base_lo as i64);
    let sec = t.div_euclid(units_per_sec);
    let rem = t.rem_euclid(units_per_sec);
    (sec, (rem * precision) as u32)
}

#[cfg(test)]
mod tests {
    use super::super::str_hash::ty;
    use super::*;

    /// Every name hashes to 2 (a crc32c that always gives 0): all collide.
    struct Zero;
    impl Checksummer for Zero {
        fn crc32c(&self, _: u32, _: &[u8]) -> u32 {
            0
        }
        fn crc64_be(&self, _: u64, _: &[u8]) -> u64 {
            0
        }
        fn xxh64(&self, _: &[u8]) -> u64 {
            0
        }
    }

    /// Directory 10's dirents: "a" at 2, a hash whiteout at 3, "b" at 4, a hole at
    /// 5, "c" at 6; and one key of another snapshot at 7.
    struct Dir;
    const DIR_KEYS: [(u64, u8, &[u8], u32); 5] = [
        (2, KeyType::Dirent as u8, b"a", 7),
        (3, KeyType::HashWhiteout as u8, b"", 7),
        (4, KeyType::Dirent as u8, b"b", 7),
        (6, KeyType::Dirent as u8, b"c", 7),
        (7, KeyType::Dirent as u8, b"d", 8),
    ];
    impl Keys for Dir {
        type Error = ();
        fn range(
            &self,
            _btree: u32,
            from: Bpos,
            to: Bpos,
            f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
        ) -> Result<(), ()> {
            for (off, typ, name, snap) in DIR_KEYS {
                let k = Bkey {
                    typ,
                    p: Bpos {
                        inode: 10,
                        offset: off,
                        snapshot: snap,
                    },
                    ..Default::default()
                };
                if k.p < from || k.p > to {
                    continue;
                }
                // d_inum = 100 + offset, d_type DT_REG, the name, NUL padding to a u64.
                let mut v = [0u8; 24];
                v[..8].copy_from_slice(&(100 + off).to_le_bytes());
                v[8] = 8;
                v[9..9 + name.len()].copy_from_slice(name);
                let len = (9 + name.len()).div_ceil(8) * 8;
                if f(&k, &v[..len]).is_break() {
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn lookup_probes_past_collisions_and_whiteouts_and_stops_at_a_hole() {
        let t = Tree::new(&Dir, &Zero, 7);
        let info = HashInfo {
            typ: ty::CRC32C,
            seed: 0,
            is_31bit: false,
        };
        let find = |name: &[u8]| {
            let mut hit = None;
            let found = t
                .lookup(10, &info, name, &mut |e| hit = Some((e.offset, e.inum)))
                .unwrap();
            assert_eq!(found, hit.is_some());
            hit
        };
        assert_eq!(find(b"a"), Some((2, 102)));
        // Past "a" (a collision) and the whiteout.
        assert_eq!(find(b"b"), Some((4, 104)));
        // Behind the hole at 5: a lookup never gets there.
        assert_eq!(find(b"c"), None);
        assert_eq!(find(b"zz"), None);
        // A listing sees every entry of the snapshot, in offset order, from a position.
        let mut seen = [0u64; 4];
        let mut n = 0;
        t.readdir(10, 3, &mut |e| {
            seen[n] = e.offset;
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(&seen[..n], &[4, 6]);
    }

    #[test]
    fn times_split_into_seconds_and_nanoseconds() {
        assert_eq!(time_to_timespec(1_500_000_000, 0, 1), (1, 500_000_000));
        assert_eq!(time_to_timespec(3, 0, 1_000_000_000), (3, 0));
        // Before the epoch: nanoseconds stay positive.
        assert_eq!(time_to_timespec((-1i64) as u64, 0, 1), (-1, 999_999_999));
        assert_eq!(time_to_timespec(5, 10, 1000), (0, 15_000));
    }
}
