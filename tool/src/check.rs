// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs check`: the core's gc pass (topology, mark and sweep, gens,
//! accounting, btree bitmap) over an image, one finding per line.

use bcachefs_core::bkey::Bkey;
use bcachefs_core::btree::read::NodeError;
use bcachefs_core::gc::accounting::{Entry, Tally, EMPTY, TALLY_MAX};
use bcachefs_core::gc::buckets::{Bucket, DevBuckets};
use bcachefs_core::gc::finding::Finding;
use bcachefs_core::gc::{sb_wants_bitmap_gc, Gc, NodeInfo, Source, Stats};
use bcachefs_core::journal::keys::AcctView;
use bcachefs_core::printbuf::{Printbuf, TextOut};
use bcachefs_core::sb::Sb;
use bcachefs_core::text::{Pb, TextCtx};

use crate::fs::Fs;
use crate::list::merged_keys;

/// Nodes read through the image.
pub struct ImageSource<'a> {
    pub fs: &'a Fs,
}

impl Source for ImageSource<'_> {
    fn root(&self, btree: u32, f: &mut dyn FnMut(u8, &Bkey, &[u8])) {
        if let Some(Some(r)) = self.fs.roots.get(btree as usize) {
            f(r.level, &r.k, &r.v);
        }
    }

    fn node(
        &self,
        btree: u32,
        level: u8,
        k: &Bkey,
        v: &[u8],
        f: &mut dyn FnMut(&Bkey, &[u8]),
    ) -> Result<NodeInfo, Option<NodeError>> {
        let nr = self.fs.read_node(btree, level, k, v).map_err(|e| e.first)?;
        let (keys, stats) = merged_keys(self.fs, btree, level, &nr, AcctView::Replayed);
        for key in &keys {
            f(&key.k, &key.v);
        }
        Ok(NodeInfo {
            min: nr.h.min_key,
            max: nr.h.max_key,
            bad_csum: if nr.salvaged { nr.first } else { None },
            dropped_keys: stats.invalid + stats.bad,
            data_missing: nr.incomplete,
        })
    }
}

/// A member's btree-allocated bitmap: `(dev, shift, bitmap, what a bitmap gc
/// pass would leave)`.
pub type Bitmap = (u32, u8, u64, Option<u64>);

/// Findings as text lines, and the pass's counters.
pub struct Report {
    pub lines: Vec<String>,
    pub findings: Vec<Finding>,
    pub stats: Stats,
    /// Every member's bitmap, and what `btree_bitmap_gc` would make of it.
    pub bitmaps: Vec<Bitmap>,
}

/// Runs one gc pass over `fs`.
pub fn check(fs: &Fs) -> Report {
    let sb = fs.sb();
    let nr_devs = fs.devs.len().max(sb.nr_devices() as usize);
    let mut tables: Vec<Vec<Bucket>> = (0..nr_devs)
        .map(|i| vec![Bucket::default(); DevBuckets::nbuckets_of(&sb, i as u32) as usize])
        .collect();
    let devs_sb: Vec<Option<Sb<'_>>> = (0..nr_devs)
        .map(|i| match fs.devs.get(i) {
            Some(Some(dev)) => Sb::parse(&dev.sb, &crate::hash::Hashes).ok(),
            _ => None,
        })
        .collect();
    let mut devs: Vec<Option<DevBuckets<'_>>> = tables
        .iter_mut()
        .enumerate()
        .map(|(i, t)| DevBuckets::new(&sb, i as u32, t, devs_sb[i].as_ref()))
        .collect();
    let mut slots: Vec<Entry> = vec![EMPTY; TALLY_MAX];
    let mut findings = Vec::new();
    let mut out = |f: &Finding| findings.push(*f);
    let stats = {
        let mut gc = Gc::new(
            &mut devs,
            Tally::new(&mut slots),
            sb.btree_node_sectors(),
            sb_wants_bitmap_gc(&sb),
            &mut out,
        );
        // An image never asks to stop.
        let _ = gc.run(&ImageSource { fs });
        gc.stats
    };
    let bitmaps = devs
        .iter()
        .flatten()
        .map(|d| (d.dev, d.bitmap_shift, d.bitmap, d.bitmap_after_gc()))
        .collect();
    let ctx = TextCtx { devs: fs };
    let lines = findings
        .iter()
        .map(|f| {
            let mut buf: Vec<u8> = Vec::new();
            let mut pb: Pb = Printbuf::new(&mut buf as &mut dyn TextOut);
            f.to_text(&mut pb, &ctx);
            String::from_utf8_lossy(&buf).into_owned()
        })
        .collect();
    Report {
        lines,
        findings,
        stats,
        bitmaps,
    }
}
