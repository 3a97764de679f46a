// SPDX-License-Identifier: GPL-2.0
//! Seeded metadata damage for the reliability campaign: one seed gives one
//! mutation of a filesystem's device images, placed by a small PRNG over what the
//! images hold (btree nodes and their bsets, journal entries, superblock copies,
//! the layout, buckets), so the same fixture and seed always give the same bytes
//! and a failing case can be rerun alone. Most kinds reseal what they touched
//! (bsets, jsets, superblock copies are checksummed again by the core's rules), so
//! validation, not the checksum, has to catch the damage. The `mutate` subcommand
//! and `scripts/campaign.sh` use it; upstream has no such command.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use bcachefs_core::bkey::Bkey;
use bcachefs_core::btree::ptr::BtreePtr;
use bcachefs_core::btree::read::seal_bset;
use bcachefs_core::csum;
use bcachefs_core::ids;
use bcachefs_core::journal::read::{JSET_BYTES, JSET_FLAGS, JSET_U64S};
use bcachefs_core::sb::{format as sbf, Sb};

use crate::edit::member_paths;
use crate::fs::{read_at, read_sb, Fs};
use crate::hash::Hashes;
use crate::list::Walk;

/// The kinds of mutation, each with what it does.
pub const MUTATIONS: [(&str, &str); 14] = [
    (
        "node-header",
        "a node's header fields (magic, flags, min/max key, format), resealed",
    ),
    (
        "bset-header",
        "a bset's header (seq, journal_seq, flags, version, u64s), resealed",
    ),
    ("node-key", "bytes inside a bset's keys, resealed"),
    (
        "node-flip",
        "one bit anywhere in a node's written sectors, not resealed",
    ),
    ("node-swap", "a node's bytes replaced by another node's"),
    (
        "node-stale",
        "a node's later bsets zeroed: an older version of it",
    ),
    (
        "jset",
        "bytes in a journal entry (header or entries), resealed",
    ),
    ("jset-flip", "one bit in a journal entry, not resealed"),
    ("sb", "bytes in the primary superblock, resealed"),
    (
        "sb-all",
        "the same bytes in every superblock copy, each resealed",
    ),
    (
        "sb-backup",
        "bytes in the backup superblock copies, resealed",
    ),
    ("layout", "bytes in the superblock layout sector"),
    (
        "zero-bucket",
        "a bucket holding a node or journal entries zeroed",
    ),
    ("truncate", "the device image cut short"),
];

/// splitmix64: small, seedable, the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6263_6163_6865_6673)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// A position in `lo..hi` (`lo` when empty).
    fn within(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) as u64) as usize
    }
}

/// One changed byte.
#[derive(Clone, Copy)]
struct Poke {
    off: usize,
    op: u8,
    arg: u8,
}

impl Poke {
    /// The byte `b` becomes; always different from `b`.
    fn apply(&self, b: u8) -> u8 {
        let n = match self.op {
            0 => b ^ (1 << (self.arg & 7)),
            1 => 0,
            2 => 0xff,
            3 => self.arg,
            _ => b.wrapping_add(if self.arg & 1 == 0 { 1 } else { 0xff }),
        };
        if n == b {
            b ^ 1
        } else {
            n
        }
    }
}

/// 1 to 3 pokes in `lo..hi` (mostly 1); `flip` keeps to one flipped bit.
fn pokes(rng: &mut Rng, lo: usize, hi: usize, flip: bool) -> Vec<Poke> {
    let n = if flip || rng.below(4) != 0 {
        1
    } else {
        2 + rng.below(2)
    };
    (0..n)
        .map(|_| Poke {
            off: rng.within(lo, hi),
            op: if flip { 0 } else { rng.below(5) as u8 },
            arg: rng.next() as u8,
        })
        .collect()
}

/// Applies `ps` to `buf` (offsets past its end are dropped); says what changed.
fn apply(buf: &mut [u8], ps: &[Poke]) -> String {
    let mut out = Vec::new();
    for p in ps {
        if let Some(b) = buf.get_mut(p.off) {
            let old = *b;
            *b = p.apply(old);
            out.push(format!("byte {:#x} {:#04x}->{:#04x}", p.off, old, *b));
        }
    }
    out.join(", ")
}

/// A btree node pointer found by the walk.
struct NodeAt {
    btree: u32,
    level: u8,
    k: Bkey,
    v: Vec<u8>,
    /// `(device, sector)` of each replica.
    ptrs: Vec<(u8, u64)>,
}

fn open_rw(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {}", path, e))
}

fn write(path: &str, bytes: &[u8], off: u64) -> Result<(), String> {
    let f = open_rw(path)?;
    f.write_all_at(bytes, off)
        .map_err(|e| format!("{}: {}", path, e))?;
    f.sync_data().map_err(|e| format!("{}: {}", path, e))
}

/// Every node of every btree, in walk order.
fn nodes(fs: &Fs) -> Vec<NodeAt> {
    let mut out = Vec::new();
    for (btree, root) in fs.roots.iter().enumerate() {
        let Some(root) = root.clone() else { continue };
        let btree = btree as u32;
        let mut w = Walk { fs, errors: 0 };
        let mut visit = |_: &mut Walk, level: u8, k: &Bkey, v: &[u8]| {
            let ptrs: Vec<(u8, u64)> = BtreePtr::decode(k.typ, v)
                .map(|bp| bp.ptrs().map(|p| (p.dev, p.offset)).collect())
                .unwrap_or_default();
            if !ptrs.is_empty() {
                out.push(NodeAt {
                    btree,
                    level,
                    k: *k,
                    v: v.to_vec(),
                    ptrs,
                });
            }
        };
        w.nodes(btree, root.level, &root.k, &root.v, 0, &mut visit);
    }
    out
}

impl NodeAt {
    fn name(&self) -> String {
        format!(
            "{} level {} node {}",
            ids::btree_name(self.btree).unwrap_or("?"),
            self.level,
            self.k.p
        )
    }
}

/// The replicas a node mutation writes: one picked at random, or all of them.
fn replicas(rng: &mut Rng, ptrs: &[(u8, u64)]) -> Vec<(u8, u64)> {
    if ptrs.len() > 1 && rng.below(2) == 0 {
        vec![ptrs[rng.below(ptrs.len() as u64) as usize]]
    } else {
        ptrs.to_vec()
    }
}

/// The image of member `dev` among `devs` ([`member_paths`], in member order).
fn dev_path(devs: &[(usize, String)], dev: u8) -> Result<&str, String> {
    devs.iter()
        .find(|(d, _)| *d == usize::from(dev))
        .map(|(_, p)| p.as_str())
        .ok_or_else(|| format!("no image for member {}", dev))
}

/// Writes `bytes` at `sector` on each of `to`'s devices; the description's tail.
fn write_replicas(
    devs: &[(usize, String)],
    to: &[(u8, u64)],
    bytes: &[u8],
) -> Result<String, String> {
    let mut at = Vec::new();
    for &(dev, sector) in to {
        write(dev_path(devs, dev)?, bytes, sector << 9)?;
        at.push(format!("{}:{}", dev, sector));
    }
    Ok(format!("at {}", at.join(" ")))
}

/// A node mutation (the kinds starting `node-`).
fn mutate_node(
    fs: &Fs,
    devs: &[(usize, String)],
    rng: &mut Rng,
    kind: &str,
) -> Result<String, String> {
    let all = nodes(fs);
    if all.is_empty() {
        return Err("no btree node".into());
    }
    let node_bytes = (fs.sb().btree_node_sectors() as usize) << 9;
    let start = rng.below(all.len() as u64) as usize;
    if kind == "node-swap" {
        if all.len() < 2 {
            return Err("one node only: nothing to swap".into());
        }
        let a = &all[start];
        let b = &all[(start + 1 + rng.below(all.len() as u64 - 1) as usize) % all.len()];
        let (dev, sector) = b.ptrs[0];
        let f = File::open(dev_path(devs, dev)?).map_err(|e| e.to_string())?;
        let bytes = read_at(&f, sector << 9, node_bytes)?;
        let to = replicas(rng, &a.ptrs);
        let tail = write_replicas(devs, &to, &bytes)?;
        return Ok(format!("{} replaced by {}, {}", a.name(), b.name(), tail));
    }
    // The first node from `start` on that reads (damaged fixtures have some that
    // do not) and has what the kind needs.
    for i in 0..all.len() {
        let n = &all[(start + i) % all.len()];
        let Ok(nr) = fs.read_node(n.btree, n.level, &n.k, &n.v) else {
            continue;
        };
        if nr.bsets.is_empty() {
            continue;
        }
        let mut buf = nr.buf.clone();
        let bi = rng.below(nr.bsets.len() as u64) as usize;
        let b = nr.bsets[bi];
        let bstart = b.start as usize;
        let what = match kind {
            "node-header" => {
                let ps = pokes(
                    rng,
                    16,
                    (nr.bsets[0].start as usize).saturating_sub(24),
                    false,
                );
                let d = apply(&mut buf, &ps);
                seal_bset(&mut buf, &nr.bsets[0], &Hashes).map_err(|e| format!("{:?}", e))?;
                format!("{} header: {}, resealed", n.name(), d)
            }
            "bset-header" => {
                let ps = pokes(rng, bstart.saturating_sub(24), bstart, false);
                let d = apply(&mut buf, &ps);
                seal_bset(&mut buf, &b, &Hashes).map_err(|e| format!("{:?}", e))?;
                format!("{} bset {} header: {}, resealed", n.name(), bi, d)
            }
            "node-key" => {
                if b.len == 0 {
                    continue;
                }
                let ps = pokes(rng, bstart, bstart + b.len as usize, false);
                let d = apply(&mut buf, &ps);
                seal_bset(&mut buf, &b, &Hashes).map_err(|e| format!("{:?}", e))?;
                format!("{} bset {} keys: {}, resealed", n.name(), bi, d)
            }
            "node-flip" => {
                let ps = pokes(rng, 0, buf.len(), true);
                format!("{}: {}", n.name(), apply(&mut buf, &ps))
            }
            "node-stale" => {
                if nr.bsets.len() < 2 {
                    continue;
                }
                let keep = 1 + rng.below(nr.bsets.len() as u64 - 1) as usize;
                let from = (nr.bsets[keep].offset as usize) << 9;
                buf[from..].fill(0);
                format!(
                    "{}: bsets {}.. of {} zeroed (sectors {}..)",
                    n.name(),
                    keep,
                    nr.bsets.len(),
                    nr.bsets[keep].offset
                )
            }
            k => return Err(format!("not a node mutation: {}", k)),
        };
        let to = replicas(rng, &n.ptrs);
        let tail = write_replicas(devs, &to, &buf)?;
        return Ok(format!("{}, {}", what, tail));
    }
    Err(format!("no readable node for {}", kind))
}

/// A journal entry mutation.
fn mutate_jset(
    fs: &Fs,
    devs: &[(usize, String)],
    rng: &mut Rng,
    flip: bool,
) -> Result<String, String> {
    if fs.found_jsets.is_empty() {
        return Err("no journal entry".into());
    }
    let j = fs.found_jsets[rng.below(fs.found_jsets.len() as u64) as usize];
    let dev = u8::try_from(j.dev).map_err(|_| "bad device".to_string())?;
    let path = dev_path(devs, dev)?;
    let f = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = read_at(&f, j.sector << 9, (j.sectors as usize) << 9)?;
    let u64s = buf
        .get(JSET_U64S..JSET_U64S + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
        .unwrap_or(0);
    let end = (JSET_BYTES + u64s * 8).min(buf.len());
    let t = buf.get(JSET_FLAGS).map(|b| b & 0xf).unwrap_or(0);
    // A third of the time the header, else the entries.
    let (lo, hi) = if flip {
        (0, end)
    } else if rng.below(3) == 0 || end <= JSET_BYTES {
        (16, JSET_BYTES)
    } else {
        (JSET_BYTES, end)
    };
    let d = apply(&mut buf, &pokes(rng, lo, hi, flip));
    let mut sealed = "";
    if !flip {
        let sum = csum::checksum(&Hashes, t, &buf[16..end]).map_err(|e| format!("{:?}", e))?;
        sum.write(&mut buf, 0);
        sealed = ", resealed";
    }
    write(path, &buf, j.sector << 9)?;
    Ok(format!(
        "journal seq {} (dev {} sector {}): {}{}",
        j.seq, j.dev, j.sector, d, sealed
    ))
}

/// A superblock mutation: `which` copies (0 the primary) get the same pokes, each
/// resealed for itself.
fn mutate_sb(devs: &[(usize, String)], rng: &mut Rng, kind: &str) -> Result<String, String> {
    let live: Vec<&String> = devs.iter().map(|(_, p)| p).collect();
    let path = live[rng.below(live.len() as u64) as usize];
    let f = File::open(path).map_err(|e| e.to_string())?;
    let primary = read_sb(&f, path)?;
    let s = Sb { b: &primary };
    let len = primary.len();
    let layout = s.layout();
    let offsets: Vec<u64> = (0..layout.nr_superblocks() as usize)
        .filter_map(|i| layout.sb_offset(i))
        .collect();
    let which: Vec<u64> = match kind {
        "sb" => vec![sbf::SB_SECTOR],
        "sb-all" => offsets.clone(),
        _ => offsets
            .iter()
            .copied()
            .filter(|&o| o != sbf::SB_SECTOR)
            .collect(),
    };
    if which.is_empty() {
        return Err("no such superblock copy".into());
    }
    // Half the time the header (before the fields), else one field picked
    // uniformly (most of the bytes are the counters field's zeroes).
    let fields: Vec<(usize, usize)> = s
        .fields()
        .map(|(_, f)| {
            let at = f.as_ptr() as usize - primary.as_ptr() as usize;
            (at, at + f.len())
        })
        .collect();
    let (lo, hi) = if fields.is_empty() || rng.below(2) == 0 {
        (16, sbf::SB_FIELDS)
    } else {
        fields[rng.below(fields.len() as u64) as usize]
    };
    let ps = pokes(rng, lo, hi, false);
    let mut d = String::new();
    for &off in &which {
        let mut buf = read_at(&f, off << 9, len)?;
        if buf.len() < len {
            continue;
        }
        let t = Sb { b: &buf }.csum_type();
        d = apply(&mut buf, &ps);
        let sum = csum::checksum(&Hashes, t, &buf[16..len]).map_err(|e| format!("{:?}", e))?;
        sum.write(&mut buf, 0);
        write(path, &buf, off << 9)?;
    }
    Ok(format!(
        "{} superblock at sectors {:?}: {}, resealed",
        path.rsplit('/').next().unwrap_or(path),
        which,
        d
    ))
}

/// Damages the filesystem on the device images `paths` in place: mutation `kind`
/// (one of [`MUTATIONS`]; by default one picked by the seed), placed by `seed`.
/// Returns a line saying what changed.
pub fn mutate(paths: &[String], seed: u64, kind: Option<&str>) -> Result<String, String> {
    let mut rng = Rng::new(seed);
    let pick = MUTATIONS[rng.below(MUTATIONS.len() as u64) as usize].0;
    let kind = kind.unwrap_or(pick);
    if !MUTATIONS.iter().any(|m| m.0 == kind) {
        let names: Vec<&str> = MUTATIONS.iter().map(|m| m.0).collect();
        return Err(format!("unknown mutation {} ({})", kind, names.join(", ")));
    }
    // In member order: the seed picks a device by its place in this list.
    let mut devs = member_paths(paths)?;
    devs.sort();
    let what = match kind {
        "sb" | "sb-all" | "sb-backup" => mutate_sb(&devs, &mut rng, kind)?,
        "layout" => {
            let live: Vec<&String> = devs.iter().map(|(_, p)| p).collect();
            let path = live[rng.below(live.len() as u64) as usize];
            let f = File::open(path).map_err(|e| e.to_string())?;
            let mut buf = read_at(&f, sbf::LAYOUT_SECTOR << 9, 512)?;
            let nr = usize::from(buf.get(18).copied().unwrap_or(0)).min(61);
            let d = apply(&mut buf, &pokes(&mut rng, 0, 24 + 8 * nr, false));
            write(path, &buf, sbf::LAYOUT_SECTOR << 9)?;
            format!("{} layout: {}", path.rsplit('/').next().unwrap_or(path), d)
        }
        "truncate" => {
            let live: Vec<&String> = devs.iter().map(|(_, p)| p).collect();
            let path = live[rng.below(live.len() as u64) as usize];
            let f = open_rw(path)?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            // Half the time anywhere, else inside a node or journal entry of
            // this device (the images are sparse: most of their length is unused).
            let meta = if rng.below(2) == 0 {
                Fs::open(paths).ok().and_then(|fs| {
                    let dev = u32::from(
                        Sb {
                            b: &read_sb(&File::open(path).ok()?, path).ok()?,
                        }
                        .dev_idx(),
                    );
                    let mut at: Vec<u64> = nodes(&fs)
                        .iter()
                        .flat_map(|n| n.ptrs.clone())
                        .filter(|p| u32::from(p.0) == dev)
                        .map(|p| p.1)
                        .collect();
                    at.extend(
                        fs.found_jsets
                            .iter()
                            .filter(|j| j.dev == dev)
                            .map(|j| j.sector),
                    );
                    (!at.is_empty()).then(|| at[rng.below(at.len() as u64) as usize])
                })
            } else {
                None
            };
            let to = match meta {
                Some(sector) => (sector << 9) + rng.below(64) * 512,
                None => rng.below(len / 4096) * 4096,
            }
            .min(len);
            f.set_len(to).map_err(|e| format!("{}: {}", path, e))?;
            format!(
                "{} truncated from {} to {} bytes",
                path.rsplit('/').next().unwrap_or(path),
                len,
                to
            )
        }
        _ => {
            let fs = Fs::open(paths)?;
            match kind {
                "jset" | "jset-flip" => mutate_jset(&fs, &devs, &mut rng, kind == "jset-flip")?,
                "zero-bucket" => zero_bucket(&fs, &devs, &mut rng)?,
                _ => mutate_node(&fs, &devs, &mut rng, kind)?,
            }
        }
    };
    Ok(format!("seed {} {}: {}", seed, kind, what))
}

/// Zeroes a bucket holding a node (three times in four) or journal entries.
fn zero_bucket(fs: &Fs, devs: &[(usize, String)], rng: &mut Rng) -> Result<String, String> {
    let (dev, sector, what) = if rng.below(4) != 0 || fs.found_jsets.is_empty() {
        let all = nodes(fs);
        if all.is_empty() {
            return Err("no btree node".into());
        }
        let n = &all[rng.below(all.len() as u64) as usize];
        let (dev, sector) = n.ptrs[rng.below(n.ptrs.len() as u64) as usize];
        (dev, sector, n.name())
    } else {
        let j = fs.found_jsets[rng.below(fs.found_jsets.len() as u64) as usize];
        (j.dev as u8, j.sector, format!("journal seq {}", j.seq))
    };
    let bs = fs
        .sb()
        .member(usize::from(dev))
        .map(|m| u64::from(m.bucket_size()))
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("no member {}", dev))?;
    let start = sector / bs * bs;
    write(
        dev_path(devs, dev)?,
        &vec![0u8; (bs as usize) << 9],
        start << 9,
    )?;
    Ok(format!(
        "bucket {}:{} (sectors {}..{}, holding {}) zeroed",
        dev,
        start / bs,
        start,
        start + bs,
        what
    ))
}

/// Where the filesystem on `paths` keeps things, one per line, for IO error rules
/// aimed at them (`scripts/vm/io-errors.sh`):
///   `node BTREE LEVEL POS DEV SECTOR SECTORS`  (one line per replica)
///   `jset SEQ DEV SECTOR SECTORS`
///   `extent INODE POS DEV SECTOR SECTORS`      (data extents, one line per pointer)
pub fn locate(paths: &[String]) -> Result<Vec<String>, String> {
    use bcachefs_core::data::extents_format::{entries_of, DecodedPtrs};
    let fs = Fs::open(paths)?;
    let node_sectors = fs.sb().btree_node_sectors();
    let mut out = Vec::new();
    for n in nodes(&fs) {
        let written = BtreePtr::decode(n.k.typ, &n.v)
            .map(|bp| u32::from(bp.written))
            .filter(|&w| w != 0)
            .unwrap_or(node_sectors);
        for (dev, sector) in &n.ptrs {
            out.push(format!(
                "node {} {} {} {} {} {}",
                ids::btree_name(n.btree).unwrap_or("?"),
                n.level,
                n.k.p,
                dev,
                sector,
                written
            ));
        }
    }
    for j in &fs.found_jsets {
        out.push(format!(
            "jset {} {} {} {}",
            j.seq, j.dev, j.sector, j.sectors
        ));
    }
    let mut w = Walk { fs: &fs, errors: 0 };
    w.leaf_keys(ids::btree::EXTENTS, &mut |key| {
        let Some(e) = entries_of(key.k.typ, &key.v) else {
            return;
        };
        for d in DecodedPtrs::new(e, key.k.size) {
            if !d.ptr.cached && !d.ptr.unwritten {
                out.push(format!(
                    "extent {} {} {} {} {}",
                    key.k.p.inode, key.k.p, d.ptr.dev, d.ptr.offset, d.crc.compressed_size
                ));
            }
        }
    });
    Ok(out)
}
