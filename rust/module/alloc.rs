// SPDX-License-Identifier: GPL-2.0

//! The allocator's side of a commit in the kernel. So far: buckets cut out of the
//! freespace btree's extents, as the transaction layer's extent overwrite does
//! when the alloc trigger deletes one bucket's freespace key from a longer extent
//! (upstream's `bch2_btree_bit_mod_iter`; the offline tool's `Freespace::take`).
//! The arithmetic is the core's [`freespace_punch`]; the extents are read from
//! the btree as each cut needs them.

use core::ops::ControlFlow;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::btree::iter::range;
use crate::commit::Update;
use crate::format::alloc::foreground::freespace_punch;
use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::ids::{btree, KeyType};
use crate::fs::Fs;

/// Freespace extents a commit cuts: the pieces left so far, and the keys that
/// change.
#[derive(Default)]
pub(crate) struct Freespace {
    /// Extents `[start, end)` over `genbits | bucket`, as cut so far: (dev, start,
    /// end).
    pieces: KVec<(u32, u64, u64)>,
    /// The keys read from the btree (dev, end): a position no piece holds any
    /// more was taken already.
    read: KVec<(u32, u64)>,
    /// Keys the cuts write: (dev, end, size), size 0 when the key goes.
    changed: KVec<(u32, u64, u64)>,
    /// Positions taken out of an extent.
    pub(crate) cut: u32,
}

impl Freespace {
    /// Takes position `pos` (`genbits | bucket`) of device `dev` out of the extent
    /// holding it, if any (a position no extent holds needs nothing). A freespace
    /// leaf that cannot be read fails with EIO.
    pub(crate) fn take(&mut self, fs: &Arc<Fs>, dev: u32, pos: u64) -> Result {
        let at = match self
            .pieces
            .iter()
            .position(|&(d, s, e)| d == dev && s <= pos && pos < e)
        {
            Some(i) => i,
            None => {
                let Some((start, end)) = holding(fs, dev, pos)? else {
                    return Ok(());
                };
                if self.read.iter().any(|&(d, e)| d == dev && e == end) {
                    // Its pieces are known, and none holds `pos`: taken already.
                    return Ok(());
                }
                self.read.push((dev, end), GFP_KERNEL)?;
                self.pieces.push((dev, start, end), GFP_KERNEL)?;
                self.pieces.len() - 1
            }
        };
        let (_, start, end) = self.pieces.remove(at)?;
        self.cut += 1;
        let (front, back) = freespace_punch(start, end, pos);
        match back {
            Some((e, size)) => {
                self.pieces.push((dev, e - size, e), GFP_KERNEL)?;
                self.change(dev, e, size)?;
            }
            None => self.change(dev, end, 0)?,
        }
        if let Some((e, size)) = front {
            self.pieces.push((dev, e - size, e), GFP_KERNEL)?;
            self.change(dev, e, size)?;
        }
        Ok(())
    }

    fn change(&mut self, dev: u32, end: u64, size: u64) -> Result {
        match self
            .changed
            .iter_mut()
            .find(|(d, e, _)| *d == dev && *e == end)
        {
            Some(c) => c.2 = size,
            None => self.changed.push((dev, end, size), GFP_KERNEL)?,
        }
        Ok(())
    }

    /// The keys that say what was taken, pushed to `out`: each changed extent's key
    /// with its new size, or deleted.
    pub(crate) fn updates(&self, out: &mut KVec<Update>) -> Result {
        for &(dev, end, size) in self.changed.iter() {
            let (typ, size) = match u32::try_from(size) {
                Ok(s) if s > 0 => (KeyType::Set, s),
                _ => (KeyType::Deleted, 0),
            };
            let k = Bkey {
                typ: typ as u8,
                p: Bpos::new(u64::from(dev), end, 0),
                size,
                ..Default::default()
            };
            out.push(Update::leaf(btree::FREESPACE, k, KVec::new()), GFP_KERNEL)?;
        }
        Ok(())
    }
}

/// The freespace extent `[start, end)` of device `dev` that holds `pos`, as the
/// btree has it (journal overlaid): the first extent key past `pos`.
fn holding(fs: &Arc<Fs>, dev: u32, pos: u64) -> Result<Option<(u64, u64)>> {
    let Some(from) = pos.checked_add(1) else {
        return Ok(None);
    };
    let dev = u64::from(dev);
    let mut found = None;
    range(
        fs,
        btree::FREESPACE,
        Bpos::new(dev, from, 0),
        Bpos::new(dev, u64::MAX, u32::MAX),
        &mut |k, _| {
            if k.typ == KeyType::Set as u8 && k.size > 0 {
                let start = k.p.offset.saturating_sub(u64::from(k.size));
                if start <= pos {
                    found = Some((start, k.p.offset));
                }
            }
            ControlFlow::Break(())
        },
    )?;
    Ok(found)
}
