// SPDX-License-Identifier: GPL-2.0
//! Planning a commit (upstream's btree update and interior update paths, offline):
//! which nodes get their keys as an appended bset, which are rewritten whole to
//! new space (full, damaged, or asked for), which split, and when a new root goes
//! on top; the space each new node takes, and what the pointer triggers write
//! for every node pointer that comes or goes (alloc keys and their derived keys,
//! backpointers, accounting, the members' btree bitmaps). Nothing is written
//! here: [`plan`] returns the node images and the keys, and [`crate::repair`]
//! orders the IO. The rules (formats, split points, trigger arithmetic, bucket
//! choice) are the core's.
//!
//! The triggers' own keys (alloc, backpointers, accounting...) are updates too and
//! may fill a leaf in turn, so planning repeats over the caller's updates plus the
//! last round's trigger keys until those stop changing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use bcachefs_core::alloc::buckets::{
    btree_backpointer, btree_ptr_accounting, dev_counter_deltas, mark_btree_bucket,
};
use bcachefs_core::alloc::foreground::{bitmap_mark, freespace_punch, NodeSpace};
use bcachefs_core::alloc::format::{
    accounting_add, accounting_len, alloc_v4, AccountingPos, AllocV4, BUCKET_GENS_NR,
};
use bcachefs_core::alloc::trigger::{alloc_trigger, derived_changes};
use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::btree::interior::{
    key_u64s, new_node_format, root_format, split_groups, SplitGroup,
};
use bcachefs_core::btree::ptr::{set_sectors_written, BtreePtr, ExtentPtr};
use bcachefs_core::btree::read::{BsetRef, NodeCtx};
use bcachefs_core::btree::update::Unwritten;
use bcachefs_core::btree::write::{
    append_bset, compose_new_node, AppendError, NodeSpec, WriteCtx, WriteError,
};
use bcachefs_core::gc::repair::accounting_version;
use bcachefs_core::ids::{self, KeyType};

use crate::fs::{Fs, Root};
use crate::hash::Hashes;
use crate::list::{node_merged, Walk};
use crate::repair::{accounting_key, leaf_key, node_id, path_to, NodeId, Update};

/// Bytes to write: `data` at byte `off` of device `dev`.
#[derive(Clone, Debug)]
pub struct NodeWrite {
    pub dev: usize,
    pub off: u64,
    pub data: Vec<u8>,
}

/// What a plan does to the btrees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Nodes that got a bset appended.
    pub appended: usize,
    /// Nodes written whole to new space (one new node each).
    pub rewritten: usize,
    /// Nodes split in two.
    pub split: usize,
    /// New roots (a btree one level deeper).
    pub new_roots: usize,
}

/// A commit, planned.
pub struct Planned {
    /// Node images, in the order to write them.
    pub writes: Vec<NodeWrite>,
    /// Every key the commit changes, at every level, in its journal form.
    pub keys: BTreeMap<(u32, u8, Bpos), (Bkey, Vec<u8>)>,
    /// The roots after the commit.
    pub roots: Vec<Option<Root>>,
    /// Every replica of every new node: (dev, sector). The members' btree
    /// bitmaps must mark them.
    pub new_nodes: Vec<(u32, u64)>,
    pub stats: Stats,
}

/// What one commit changes: key updates, nodes to rewrite, accounting deltas
/// (upstream's transaction: `bch2_trans_update`, a node rewrite,
/// `bch2_disk_accounting_mod`).
#[derive(Clone, Debug, Default)]
pub struct Txn {
    /// Keys to insert or delete (level 0, or node pointers of topology repairs).
    pub updates: Vec<Update>,
    /// Nodes to rewrite to new space: (btree, level, the node's max key).
    pub rewrite: Vec<(u32, u8, Bpos)>,
    /// Accounting deltas, added to the keys as they are.
    pub acct: Vec<(AccountingPos, [i64; 3])>,
}

impl Txn {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.rewrite.is_empty() && self.acct.is_empty()
    }
}

/// A node that gets keys: its pointer as it is on disk and its parent.
#[derive(Clone)]
struct Touched {
    btree: u32,
    level: u8,
    k: Bkey,
    v: Vec<u8>,
    /// The parent's node id, or `None` for the root.
    parent: Option<NodeId>,
}

/// A node pointer the commit inserts or removes, held at `holder` (the node's
/// level + 1) of `btree`.
struct PtrChange {
    btree: u32,
    holder: u8,
    k: Bkey,
    v: Vec<u8>,
    insert: bool,
}

/// Plans the transaction `txn` in journal entry `seq`.
pub fn plan(fs: &Fs, txn: &Txn, seq: u64) -> Result<Planned, String> {
    let caller: BTreeMap<(u32, u8, Bpos), Update> = txn
        .updates
        .iter()
        .map(|u| ((u.btree, u.level, u.k.p), u.clone()))
        .collect();
    let mut extra: BTreeMap<(u32, u8, Bpos), Update> = BTreeMap::new();
    // New nodes' seqs are random once per commit, the same in every round.
    let mut seqs = Seqs::default();
    for _ in 0..8 {
        let mut all = caller.clone();
        all.extend(extra.iter().map(|(id, u)| (*id, u.clone())));
        let all: Vec<Update> = all.into_values().collect();
        let (p, trig) = plan_once(fs, &all, &caller, txn, seq, &mut seqs)?;
        let same = trig.len() == extra.len()
            && trig.iter().zip(extra.iter()).all(|((a, x), (b, y))| {
                a == b && x.k == y.k && x.v == y.v && x.journal_v == y.journal_v
            });
        if same {
            return Ok(p);
        }
        extra = trig;
    }
    Err("planning the commit did not settle (its trigger keys kept changing)".into())
}

/// Random node seqs, handed out in order, the same ones every planning round.
#[derive(Default)]
struct Seqs {
    made: Vec<u64>,
    next: usize,
}

impl Seqs {
    fn get(&mut self) -> u64 {
        if self.next == self.made.len() {
            let mut b = [0u8; 8];
            let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
            let mut s = u64::from_le_bytes(b);
            if s == 0 {
                s = 0x5eed_0000_0000_0001 ^ self.made.len() as u64;
            }
            self.made.push(s);
        }
        self.next += 1;
        self.made[self.next - 1]
    }
}

/// Why a bset could not be appended.
enum AppendErr {
    /// The node must go to new space: why.
    Rewrite(String),
    Fatal(String),
}

/// One planning round: every node, level by level, then the triggers. Returns
/// the plan and the trigger keys it needs.
#[allow(clippy::type_complexity)]
fn plan_once(
    fs: &Fs,
    updates: &[Update],
    caller: &BTreeMap<(u32, u8, Bpos), Update>,
    txn: &Txn,
    seq: u64,
    seqs: &mut Seqs,
) -> Result<(Planned, BTreeMap<(u32, u8, Bpos), Update>), String> {
    seqs.next = 0;
    let mut alloc = Allocator::new(fs, caller)?;
    let mut touched: BTreeMap<NodeId, Touched> = BTreeMap::new();
    let mut pending: BTreeMap<NodeId, Vec<(Bkey, Vec<u8>)>> = BTreeMap::new();
    let mut want_rewrite: BTreeSet<NodeId> = BTreeSet::new();
    let mut register = |path: &[(u8, Bkey, Vec<u8>)], btree: u32| -> Option<NodeId> {
        let mut parent = None;
        let mut last = None;
        for (level, k, v) in path {
            let id = node_id(btree, *level, k, v);
            touched.entry(id).or_insert_with(|| Touched {
                btree,
                level: *level,
                k: *k,
                v: v.clone(),
                parent,
            });
            parent = Some(id);
            last = Some(id);
        }
        last
    };
    for u in updates {
        let path = path_to(fs, u.btree, u.k.p, u.level)?;
        let id = register(&path, u.btree).ok_or("empty path")?;
        pending.entry(id).or_default().push((u.k, u.v.clone()));
    }
    for &(btree, level, max) in &txn.rewrite {
        let path = path_to(fs, btree, max, level)?;
        match path.last() {
            Some((_, k, _)) if k.p == max => {}
            _ => return Err(format!("no node ending at {} to rewrite", max)),
        }
        let id = register(&path, btree).ok_or("empty path")?;
        pending.entry(id).or_default();
        want_rewrite.insert(id);
    }
    // The caller's own changes to node pointers (topology repairs), which a
    // written node's new `sectors_written` goes on top of.
    let user_ptrs: BTreeMap<(u32, u8, Bpos), Vec<u8>> = updates
        .iter()
        .filter(|u| u.level > 0 && BtreePtr::decode(u.k.typ, &u.v).is_some())
        .map(|u| ((u.btree, u.level, u.k.p), u.v.clone()))
        .collect();
    let journal_form: BTreeMap<(u32, u8, Bpos), Vec<u8>> = updates
        .iter()
        .filter_map(|u| Some(((u.btree, u.level, u.k.p), u.journal_v.clone()?)))
        .collect();
    let mut out = Planned {
        writes: Vec::new(),
        keys: BTreeMap::new(),
        roots: fs.roots.clone(),
        new_nodes: Vec::new(),
        stats: Stats::default(),
    };
    let mut ptr_changes: Vec<PtrChange> = Vec::new();
    let mut level = 0u8;
    while !pending.is_empty() {
        let ids_here: Vec<NodeId> = pending.keys().filter(|id| id.1 == level).cloned().collect();
        for id in ids_here {
            let keys = pending.remove(&id).unwrap_or_default();
            let t = touched.get(&id).ok_or("node vanished")?.clone();
            for (k, v) in &keys {
                let j = journal_form
                    .get(&(t.btree, level, k.p))
                    .cloned()
                    .unwrap_or_else(|| v.clone());
                out.keys.insert((t.btree, level, k.p), (*k, j));
            }
            let ptr_v = user_ptrs
                .get(&(t.btree, level + 1, t.k.p))
                .cloned()
                .unwrap_or_else(|| t.v.clone());
            let mut parent_keys: Vec<(Bkey, Vec<u8>)> = Vec::new();
            let mut rewrite_why = want_rewrite.contains(&id).then(String::new);
            if rewrite_why.is_none() {
                match append(fs, &t, &keys, seq) {
                    Ok((w, sectors)) => {
                        out.writes.extend(w);
                        out.stats.appended += 1;
                        let mut new_v = ptr_v.clone();
                        set_sectors_written(&mut new_v, sectors).ok_or("short pointer")?;
                        parent_keys.push((t.k, new_v));
                    }
                    Err(AppendErr::Rewrite(why)) => rewrite_why = Some(why),
                    Err(AppendErr::Fatal(e)) => return Err(e),
                }
            }
            if rewrite_why.is_some() {
                let nodes = rewrite_node(fs, &t, &ptr_v, &keys, seq, &mut alloc, seqs)?;
                if nodes.len() > 1 {
                    out.stats.split += 1;
                } else {
                    out.stats.rewritten += 1;
                }
                ptr_changes.push(PtrChange {
                    btree: t.btree,
                    holder: level + 1,
                    k: t.k,
                    v: t.v.clone(),
                    insert: false,
                });
                for n in nodes {
                    out.writes.extend(n.writes);
                    ptr_changes.push(PtrChange {
                        btree: t.btree,
                        holder: level + 1,
                        k: n.k,
                        v: n.v.clone(),
                        insert: true,
                    });
                    parent_keys.push((n.k, n.v));
                }
            }
            match t.parent {
                Some(pid) => pending.entry(pid).or_default().extend(parent_keys),
                None if parent_keys.len() == 1 => {
                    let (k, v) = parent_keys.pop().ok_or("no root key")?;
                    out.roots[t.btree as usize] = Some(Root { level, k, v });
                }
                None => {
                    // The root split: a new root over its halves.
                    let (rl, root, below) =
                        new_root(fs, t.btree, level + 1, &parent_keys, seq, &mut alloc, seqs)?;
                    for (k, v) in &parent_keys {
                        out.keys.insert((t.btree, level + 1, k.p), (*k, v.clone()));
                    }
                    // Interior nodes under the new root, if its keys needed more
                    // than one: each is a key of the level above.
                    for (l, n) in below {
                        out.keys.insert((t.btree, l + 1, n.k.p), (n.k, n.v.clone()));
                        ptr_changes.push(PtrChange {
                            btree: t.btree,
                            holder: l + 1,
                            k: n.k,
                            v: n.v.clone(),
                            insert: true,
                        });
                        out.writes.extend(n.writes);
                        out.stats.split += 1;
                    }
                    out.writes.extend(root.writes);
                    ptr_changes.push(PtrChange {
                        btree: t.btree,
                        holder: rl + 1,
                        k: root.k,
                        v: root.v.clone(),
                        insert: true,
                    });
                    out.roots[t.btree as usize] = Some(Root {
                        level: rl,
                        k: root.k,
                        v: root.v,
                    });
                    out.stats.new_roots += 1;
                }
            }
        }
        level = level.checked_add(1).ok_or("too many levels")?;
        if level > 8 {
            return Err("btree deeper than any bcachefs btree".into());
        }
    }
    let trig = triggers(
        fs,
        &ptr_changes,
        caller,
        &txn.acct,
        seq,
        &mut alloc,
        &mut out,
    )?;
    out.writes.sort_by_key(|w| (w.dev, w.off));
    Ok((out, trig))
}

/// Appends `keys` to the touched node as a new bset on every replica (node
/// images returned, nothing written); returns them and the node's new
/// `sectors_written`.
fn append(
    fs: &Fs,
    t: &Touched,
    keys: &[(Bkey, Vec<u8>)],
    seq: u64,
) -> Result<(Vec<NodeWrite>, u16), AppendErr> {
    let s = fs.sb();
    let bp = BtreePtr::decode(t.k.typ, &t.v)
        .ok_or_else(|| AppendErr::Fatal(format!("{}: not a pointer", what(t))))?;
    if bp.written == 0 {
        return Err(AppendErr::Rewrite("pointer without sectors_written".into()));
    }
    let rewrite = |why: &str| AppendErr::Rewrite(why.to_string());
    let node_sectors = s.btree_node_sectors();
    // The node's unwritten keys, sorted, the last update per position.
    let bytes: usize = keys
        .iter()
        .map(|(_, v)| bcachefs_core::bkey::BKEY_BYTES + v.len().div_ceil(8) * 8)
        .sum();
    let mut store = vec![0u8; bytes];
    let mut unwritten = Unwritten::new(&mut store);
    for (k, v) in keys {
        unwritten
            .insert(k, v)
            .map_err(|_| AppendErr::Fatal(format!("{}: a key too big for a bset", what(t))))?;
    }
    // Every replica read and checked before any is composed.
    let mut out = Vec::new();
    let mut end = None;
    for p in bp.ptrs() {
        let mut buf = fs
            .read_raw(&p)
            .map_err(|_| rewrite("a replica is unreadable"))?;
        buf.resize((node_sectors as usize) << 9, 0);
        let ctx = NodeCtx {
            magic: s.bset_magic(),
            block_sectors: s.block_sectors(),
            node_sectors,
            written: u32::from(bp.written),
            btree_id: Some(t.btree),
            level: Some(t.level),
            min_key: bp.min_key,
            max_key: Some(t.k.p),
            seq: Some(bp.seq),
            range_updated: bp.range_updated,
            csum: &Hashes,
            blacklisted: &|seq| fs.is_blacklisted(seq),
            accept_bad_csum: false,
        };
        let mut bsets = vec![BsetRef::default(); s.max_bsets()];
        let mut it = unwritten.iter();
        let r = append_bset(&mut buf, &ctx, s.version(), seq, &mut it, &mut bsets).map_err(
            |e| match e {
                AppendError::Damaged => rewrite("a replica is damaged"),
                AppendError::WrittenElsewhere => {
                    rewrite("its bsets end elsewhere than its pointer says")
                }
                AppendError::NoRoom | AppendError::Write(WriteError::NoRoom) => {
                    rewrite("no room left in the node")
                }
                AppendError::Write(e) => AppendErr::Fatal(format!("{}: {}", what(t), e)),
            },
        )?;
        let range = (r.offset as usize) << 9..((r.offset + r.sectors) as usize) << 9;
        out.push(NodeWrite {
            dev: p.dev as usize,
            off: (p.offset << 9) + range.start as u64,
            data: buf[range].to_vec(),
        });
        end = Some(r.offset + r.sectors);
    }
    let w = end.ok_or_else(|| AppendErr::Fatal(format!("{}: no replicas", what(t))))?;
    let w = u16::try_from(w).map_err(|_| {
        AppendErr::Fatal(format!("{}: node larger than a pointer can say", what(t)))
    })?;
    Ok((out, w))
}

fn what(t: &Touched) -> String {
    format!(
        "btree {} level {} node {}",
        ids::btree_name(t.btree).unwrap_or("?"),
        t.level,
        t.k.p
    )
}

/// A new node, composed: its pointer key and the images to write.
struct NewNode {
    k: Bkey,
    v: Vec<u8>,
    writes: Vec<NodeWrite>,
}

/// A node's live keys: its header seq, the keys, its format.
type LiveKeys = (u32, Vec<(Bkey, Vec<u8>)>, bcachefs_core::bkey::BkeyFormat);

/// The live keys of a node as read (a bad checksum salvaged as upstream's read
/// does; invalid keys dropped by the validating merge), no journal overlaid.
fn node_live_keys(fs: &Fs, t: &Touched) -> Result<LiveKeys, String> {
    let nr = fs
        .read_node(t.btree, t.level, &t.k, &t.v)
        .map_err(|f| format!("{}: unreadable, cannot be rewritten: {:?}", what(t), f.errs))?;
    let keys = node_merged(&nr, t.btree, t.level)
        .0
        .into_iter()
        .filter(|(k, _)| k.typ != KeyType::Deleted as u8)
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    Ok(((nr.h.flags >> 32) as u32, keys, nr.h.format))
}

/// The touched node with `pending` keys applied, written whole to new space: one
/// node, or two when it must split. Its range is its pointer's (`ptr_v`).
fn rewrite_node(
    fs: &Fs,
    t: &Touched,
    ptr_v: &[u8],
    pending: &[(Bkey, Vec<u8>)],
    seq: u64,
    alloc: &mut Allocator<'_>,
    seqs: &mut Seqs,
) -> Result<Vec<NewNode>, String> {
    let (node_seq, keys, old_format) = node_live_keys(fs, t)?;
    let bp = BtreePtr::decode(t.k.typ, ptr_v).ok_or("not a pointer")?;
    let min = bp.min_key.unwrap_or(Bpos::MIN);
    let max = t.k.p;
    let mut by_pos: BTreeMap<Bpos, (Bkey, Vec<u8>)> =
        keys.into_iter().map(|(k, v)| (k.p, (k, v))).collect();
    for (k, v) in pending {
        by_pos.insert(k.p, (*k, v.clone()));
    }
    let keys: Vec<(Bkey, Vec<u8>)> = by_pos
        .into_values()
        .filter(|(k, _)| k.typ != KeyType::Deleted as u8 && k.p >= min && k.p <= max)
        .collect();
    let nodes = compose_split(
        fs,
        t.btree,
        t.level,
        min,
        max,
        &keys,
        &old_format,
        node_seq.wrapping_add(1),
        seq,
        alloc,
        seqs,
    )
    .map_err(|e| format!("{}: rewrite: {}", what(t), e))?;
    Ok(nodes)
}

/// `keys` (sorted, over `min..=max`) in as many new nodes as upstream's split
/// rule makes of them: a node that must split is cut at [`split_at`], each half
/// again as needed. Sizes are measured in `old_format` (the node they come from),
/// as upstream measures them.
#[allow(clippy::too_many_arguments)]
fn compose_split(
    fs: &Fs,
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    keys: &[(Bkey, Vec<u8>)],
    old_format: &bcachefs_core::bkey::BkeyFormat,
    node_seq: u32,
    seq: u64,
    alloc: &mut Allocator<'_>,
    seqs: &mut Seqs,
) -> Result<Vec<NewNode>, String> {
    let ns = fs.sb().btree_node_sectors();
    let sizes: Vec<usize> = keys
        .iter()
        .map(|(k, v)| key_u64s(k, v.len(), old_format))
        .collect();
    // The ranges, cut until each fits.
    let mut groups = vec![SplitGroup::default(); keys.len() + 1];
    let mut stack = groups.clone();
    let pos = |i: usize| keys.get(i).map_or(Bpos::MIN, |(k, _)| k.p);
    let n = split_groups(&sizes, &pos, min, max, ns, &mut groups, &mut stack)
        .ok_or("split: no room for the groups")?;
    let mut nodes = Vec::new();
    for &SplitGroup { lo, hi, first, end } in &groups[..n] {
        let ks = &keys[first..end];
        let f = new_node_format(lo, hi, ks.iter().map(|(k, v)| (k, v.len())), old_format, ns);
        nodes.push(compose_node(
            fs, btree, level, lo, hi, f, node_seq, ks, seq, alloc, seqs,
        )?);
    }
    Ok(nodes)
}

/// A new root over the keys `children` at `level` (the old root's halves):
/// one node over `POS_MIN..SPOS_MAX` in the bounds' format, or, when they do not
/// fit one, nodes split as any node is and another root above them. Returns the
/// root's level and node, and the other new interior nodes (with their level).
#[allow(clippy::type_complexity)]
fn new_root(
    fs: &Fs,
    btree: u32,
    level: u8,
    children: &[(Bkey, Vec<u8>)],
    seq: u64,
    alloc: &mut Allocator<'_>,
    seqs: &mut Seqs,
) -> Result<(u8, NewNode, Vec<(u8, NewNode)>), String> {
    let name = ids::btree_name(btree).unwrap_or("?");
    let mut keys = children.to_vec();
    keys.sort_by_key(|(k, _)| k.p);
    let mut level = level;
    let mut below = Vec::new();
    loop {
        if level > 8 {
            return Err(format!("new root of {}: too deep", name));
        }
        let f = root_format();
        let mut nodes = compose_split(
            fs,
            btree,
            level,
            Bpos::MIN,
            Bpos::MAX,
            &keys,
            &f,
            0,
            seq,
            alloc,
            seqs,
        )
        .map_err(|e| format!("new root of {}: {}", name, e))?;
        if nodes.len() == 1 {
            let n = nodes.pop().ok_or("no root")?;
            return Ok((level, n, below));
        }
        keys = nodes.iter().map(|n| (n.k, n.v.clone())).collect();
        below.extend(nodes.into_iter().map(|n| (level, n)));
        level += 1;
    }
}

/// One new node over `min..=max` holding `keys` (sorted), in format `f`, header
/// seq `node_seq`: space allocated on every replica, the node composed, its
/// pointer made.
#[allow(clippy::too_many_arguments)]
fn compose_node(
    fs: &Fs,
    btree: u32,
    level: u8,
    min: Bpos,
    max: Bpos,
    f: bcachefs_core::bkey::BkeyFormat,
    node_seq: u32,
    keys: &[(Bkey, Vec<u8>)],
    seq: u64,
    alloc: &mut Allocator<'_>,
    seqs: &mut Seqs,
) -> Result<NewNode, String> {
    let s = fs.sb();
    let ns = s.btree_node_sectors();
    let ptrs = alloc.node()?;
    let n = NodeSpec {
        btree,
        level,
        min,
        max,
        format: f,
        seq: seqs.get(),
        rewrites: node_seq,
    };
    let wctx = WriteCtx::new_node(&s, &Hashes);
    let mut buf = vec![0u8; (ns as usize) << 9];
    let mut v = vec![0u8; 40 + ptrs.len() * 8];
    let mut it = keys.iter().map(|(k, v)| (*k, v.as_slice()));
    let (sectors, len) = compose_new_node(&mut buf, &wctx, &n, seq, &mut it, &ptrs, &mut v)
        .map_err(|e| e.to_string())?;
    v.truncate(len);
    let data = buf[..(sectors as usize) << 9].to_vec();
    let k = Bkey {
        typ: KeyType::BtreePtrV2 as u8,
        p: max,
        ..Default::default()
    };
    let writes = ptrs
        .iter()
        .map(|p| NodeWrite {
            dev: p.dev as usize,
            off: p.offset << 9,
            data: data.clone(),
        })
        .collect();
    Ok(NewNode { k, v, writes })
}

/// Hands out btree node space: buckets from the freespace btree, node-sized
/// pieces of each (the core's rules), one piece per replica.
struct Allocator<'a> {
    fs: &'a Fs,
    devs: Vec<NodeSpace>,
    replicas: usize,
    node_sectors: u32,
    /// Buckets the caller's updates change: never allocated.
    busy: BTreeSet<(u32, u64)>,
    /// Alloc keys read, by bucket.
    keys: BTreeMap<(u32, u64), AllocV4>,
    flushed_seq: u64,
    /// The freespace btree, less the buckets handed out.
    free: Freespace,
}

impl<'a> Allocator<'a> {
    fn new(
        fs: &'a Fs,
        caller: &BTreeMap<(u32, u8, Bpos), Update>,
    ) -> Result<Allocator<'a>, String> {
        let s = fs.sb();
        let mut devs = Vec::new();
        for (i, d) in fs.devs.iter().enumerate() {
            if d.is_none() {
                continue;
            }
            let m = s.member(i).ok_or("no member")?;
            devs.push(NodeSpace::of_member(i as u32, &m));
        }
        let replicas = (((s.flags(0) >> 48) & 0xf) as usize).max(1);
        let busy = caller
            .keys()
            .filter(|(b, _, _)| *b == ids::btree::ALLOC)
            .map(|(_, _, p)| (p.inode as u32, p.offset))
            .collect();
        if devs.is_empty() {
            return Err("no device".into());
        }
        Ok(Allocator {
            fs,
            devs,
            replicas,
            node_sectors: s.btree_node_sectors(),
            busy,
            keys: BTreeMap::new(),
            flushed_seq: fs.journal_seq,
            free: Freespace::read(fs).with_updates(caller.values()),
        })
    }

    /// Space for one node: a pointer on each of `replicas` devices (fewer when
    /// fewer devices have space, as upstream accepts).
    fn node(&mut self) -> Result<Vec<ExtentPtr>, String> {
        let mut ptrs = Vec::new();
        for i in 0..self.devs.len() {
            if ptrs.len() == self.replicas {
                break;
            }
            if let Some(p) = self.piece(i)? {
                ptrs.push(p);
            }
        }
        if ptrs.is_empty() {
            return Err("no free bucket for a new btree node".into());
        }
        Ok(ptrs)
    }

    /// The next node-sized piece on device `i`.
    fn piece(&mut self, i: usize) -> Result<Option<ExtentPtr>, String> {
        let ns = self.node_sectors;
        if !self.devs[i].holds_nodes(ns) {
            return Ok(None);
        }
        if self.devs[i].needs_bucket(ns) {
            let Some((bucket, gen)) = self.bucket(i)? else {
                return Ok(None);
            };
            self.devs[i].open = Some((bucket, gen, 0));
        }
        Ok(self.devs[i].next_piece(ns))
    }

    /// A free bucket of device `i` (the core's choice), taken out of the
    /// freespace btree.
    fn bucket(&mut self, i: usize) -> Result<Option<(u64, u8)>, String> {
        let d = self.devs[i];
        let extents = self.free.of(d.dev);
        let (fs, keys, busy) = (self.fs, &mut self.keys, &self.busy);
        let found = d.find_bucket(
            &extents,
            self.flushed_seq,
            &|b| busy.contains(&(d.dev, b)),
            &mut |b| Ok::<_, String>(alloc_key(fs, keys, d.dev, b)),
        )?;
        Ok(found.map(|(pos, bucket, gen)| {
            self.free.take(d.dev, pos);
            (bucket, gen)
        }))
    }
}

/// The alloc key of a bucket as it is on disk (a hole reads as a free bucket of
/// gen 0), read once per bucket into `keys`.
fn alloc_key(fs: &Fs, keys: &mut BTreeMap<(u32, u64), AllocV4>, dev: u32, bucket: u64) -> AllocV4 {
    *keys.entry((dev, bucket)).or_insert_with(|| {
        leaf_key(fs, ids::btree::ALLOC, Bpos::new(u64::from(dev), bucket, 0))
            .and_then(|(k, v)| AllocV4::from_key(k.typ, &v))
            .unwrap_or_default()
    })
}

/// An update of a plain key: `typ` at `p`, value `v`.
fn plain(btree: u32, typ: KeyType, p: Bpos, size: u32, v: Vec<u8>) -> Update {
    Update {
        btree,
        level: 0,
        k: Bkey {
            typ: typ as u8,
            p,
            size,
            ..Default::default()
        },
        v,
        journal_v: None,
    }
}

/// What the pointer triggers write for `changes`, on top of the caller's updates
/// (each bucket's alloc key from the caller's version of it where there is one):
/// alloc keys and their derived keys, bucket_gens, backpointers, accounting. The
/// new nodes' places go into `out`, for the members' bitmaps.
fn triggers(
    fs: &Fs,
    changes: &[PtrChange],
    caller: &BTreeMap<(u32, u8, Bpos), Update>,
    caller_acct: &[(AccountingPos, [i64; 3])],
    seq: u64,
    alloc: &mut Allocator<'_>,
    out: &mut Planned,
) -> Result<BTreeMap<(u32, u8, Bpos), Update>, String> {
    let s = fs.sb();
    let ns = s.btree_node_sectors();
    let bp_shift = s.extent_bp_shift_or_default();
    let mut upd: BTreeMap<(u32, u8, Bpos), Update> = BTreeMap::new();
    let mut put = |u: Update| {
        upd.insert((u.btree, u.level, u.k.p), u);
    };
    // Alloc keys: (the key's value before, its state before, after).
    let mut buckets: BTreeMap<(u32, u64), (Vec<u8>, AllocV4, AllocV4)> = BTreeMap::new();
    let mut acct: BTreeMap<[u8; 20], [i64; 3]> = BTreeMap::new();
    let mut add_acct = |p: AccountingPos, d: [i64; 3]| {
        let e = acct.entry(p.0).or_insert([0; 3]);
        for i in 0..3 {
            e[i] += d[i];
        }
    };
    for &(p, d) in caller_acct {
        add_acct(p, d);
    }
    for c in changes {
        let bp = BtreePtr::decode(c.k.typ, &c.v).ok_or("not a pointer")?;
        let ptrs: Vec<ExtentPtr> = bp.ptrs().collect();
        let sign = if c.insert { 1 } else { -1 };
        btree_ptr_accounting(c.btree, c.holder, &ptrs, ns, sign, &mut add_acct);
        for p in &ptrs {
            let m = s
                .member(p.dev as usize)
                .ok_or("pointer to a missing device")?;
            let bs = u64::from(m.bucket_size()).max(1);
            let bucket = p.offset / bs;
            let at = Bpos::new(u64::from(p.dev), bucket, 0);
            let e = match buckets.entry((u32::from(p.dev), bucket)) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let (v, a) = match caller.get(&(ids::btree::ALLOC, 0, at)) {
                        Some(u) => (u.v.clone(), AllocV4::from_key(u.k.typ, &u.v)),
                        None => match leaf_key(fs, ids::btree::ALLOC, at) {
                            Some((k, v)) => {
                                let a = AllocV4::from_key(k.typ, &v);
                                (
                                    if k.typ == KeyType::AllocV4 as u8 {
                                        v
                                    } else {
                                        Vec::new()
                                    },
                                    a,
                                )
                            }
                            None => (Vec::new(), Some(AllocV4::default())),
                        },
                    };
                    let a = a.ok_or("a bucket's alloc key is not an alloc key")?;
                    e.insert((v, a, a))
                }
            };
            mark_btree_bucket(&mut e.2, ns, c.insert);
            let (bpos, b) = btree_backpointer(c.btree, c.holder, c.k.p, p, ns, bp_shift);
            if c.insert {
                let mut v = vec![0u8; 32];
                b.write(&mut v).ok_or("backpointer value")?;
                put(plain(
                    ids::btree::BACKPOINTERS,
                    KeyType::Backpointer,
                    bpos,
                    0,
                    v,
                ));
                // The bitmap must be able to mark it (its shift is not grown).
                if bitmap_mark(0, m.btree_bitmap_shift(), p.offset, u64::from(ns)).is_none() {
                    return Err(
                        "a new node past what the btree bitmap covers: growing its shift is not done yet"
                            .into(),
                    );
                }
                out.new_nodes.push((u32::from(p.dev), p.offset));
            } else {
                put(plain(
                    ids::btree::BACKPOINTERS,
                    KeyType::Deleted,
                    bpos,
                    0,
                    Vec::new(),
                ));
            }
        }
    }
    let io_now = s.io_clocks();
    let mut gens: BTreeMap<Bpos, Vec<u8>> = BTreeMap::new();
    for ((dev, bucket), (v, base, mut new)) in buckets {
        alloc_trigger(&base, &mut new, io_now, seq);
        let bs = s.member(dev as usize).map(|m| m.bucket_size()).unwrap_or(0);
        let mut v = v;
        if v.len() < alloc_v4::BYTES {
            v.resize(alloc_v4::BYTES, 0);
            // BACKPOINTERS_START: the value's fixed part, in u64s.
            new.flags = (new.flags & !(0x3f << 2)) | ((alloc_v4::U64S as u32) << 2);
        }
        new.write(&mut v);
        let at = Bpos::new(u64::from(dev), bucket, 0);
        put(plain(ids::btree::ALLOC, KeyType::AllocV4, at, 0, v));
        derived_changes(dev, bucket, bs, &base, &new, &mut |d| {
            // Freespace deletions are the allocator's punches.
            if d.btree == ids::btree::FREESPACE && !d.set {
                return;
            }
            let t = if d.set {
                KeyType::Set
            } else {
                KeyType::Deleted
            };
            put(plain(d.btree, t, d.pos, d.size, Vec::new()));
        });
        if base.gen != new.gen {
            // One key holds the gens of 256 buckets: every change to it lands
            // in the same copy.
            let gp = Bpos::new(u64::from(dev), bucket / BUCKET_GENS_NR as u64, 0);
            let gv = gens.entry(gp).or_insert_with(|| {
                let mut v = match caller.get(&(ids::btree::BUCKET_GENS, 0, gp)) {
                    Some(u) => u.v.clone(),
                    None => leaf_key(fs, ids::btree::BUCKET_GENS, gp)
                        .map(|(_, v)| v)
                        .unwrap_or_default(),
                };
                v.resize(BUCKET_GENS_NR, 0);
                v
            });
            gv[(bucket % BUCKET_GENS_NR as u64) as usize] = new.gen;
        }
        dev_counter_deltas(dev, &base, &new, bs, &mut add_acct);
    }
    for (gp, gv) in gens {
        put(plain(
            ids::btree::BUCKET_GENS,
            KeyType::BucketGens,
            gp,
            0,
            gv,
        ));
    }
    for u in alloc.free.updates() {
        put(u);
    }
    // Accounting: each delta on top of the key as the caller leaves it, or as it
    // is; the node gets the total, the journal the delta, both with a bversion
    // past every delta already in the journal.
    let version = accounting_version(seq);
    for (pos, d) in acct {
        if d == [0; 3] {
            continue;
        }
        let at = AccountingPos(pos).to_bpos();
        let (k, cur, jcur) = match caller.get(&(ids::btree::ACCOUNTING, 0, at)) {
            Some(u) => (u.k, u.v.clone(), u.journal_v.clone()),
            None => match accounting_key(fs, at) {
                Some((k, v)) => (k, v, None),
                None => (
                    Bkey {
                        typ: KeyType::Accounting as u8,
                        p: at,
                        ..Default::default()
                    },
                    Vec::new(),
                    None,
                ),
            },
        };
        let n = accounting_len(&cur, pos[0]);
        let (mut v, mut jv) = (vec![0u8; n * 8], vec![0u8; n * 8]);
        accounting_add(&cur, jcur.as_deref(), &d, n, &mut v, &mut jv).ok_or("accounting value")?;
        put(Update {
            btree: ids::btree::ACCOUNTING,
            level: 0,
            k: Bkey {
                version_hi: 0,
                version_lo: version.max(k.version_lo),
                ..k
            },
            v,
            journal_v: Some(jv),
        });
    }
    Ok(upd)
}

/// The freespace btree's extents, and the buckets a commit takes out of them as
/// the transaction layer's extent overwrite does (`bch2_btree_bit_mod_iter`
/// deleting one bucket from a longer extent): each taken position cuts the extent
/// holding it (the core's `freespace_punch`), and the keys that change are kept.
struct Freespace {
    /// Extents `[start, end)` over `genbits | bucket`: (dev, end) -> start. By end
    /// is by start too: extents do not overlap.
    extents: BTreeMap<(u32, u64), u64>,
    /// Keys the cuts rewrite: (dev, end) -> size, 0 when the key goes.
    changed: BTreeMap<(u32, u64), u64>,
}

impl Freespace {
    fn read(fs: &Fs) -> Freespace {
        let mut extents = BTreeMap::new();
        let mut w = Walk { fs, errors: 0 };
        w.leaf_keys(ids::btree::FREESPACE, &mut |k| {
            if k.k.typ == KeyType::Set as u8 && k.k.size > 0 {
                let end = k.k.p.offset;
                extents.insert(
                    (k.k.p.inode as u32, end),
                    end.saturating_sub(u64::from(k.k.size)),
                );
            }
        });
        Freespace {
            extents,
            changed: BTreeMap::new(),
        }
    }

    /// The extents with `updates`' freespace keys on top (a commit's own cuts:
    /// the allocator starts from what the commit leaves, not from the disk).
    fn with_updates<'u>(mut self, updates: impl Iterator<Item = &'u Update>) -> Freespace {
        for u in updates.filter(|u| u.btree == ids::btree::FREESPACE && u.level == 0) {
            let at = (u.k.p.inode as u32, u.k.p.offset);
            self.extents.remove(&at);
            if u.k.typ == KeyType::Set as u8 && u.k.size > 0 {
                self.extents
                    .insert(at, at.1.saturating_sub(u64::from(u.k.size)));
            }
        }
        self
    }

    /// Device `dev`'s extents `(start, end)`, lowest genbits class and bucket
    /// first.
    fn of(&self, dev: u32) -> Vec<(u64, u64)> {
        self.extents
            .range((dev, 0)..=(dev, u64::MAX))
            .map(|(&(_, end), &start)| (start, end))
            .collect()
    }

    /// Takes position `pos` of device `dev` out of the extent holding it, if any.
    fn take(&mut self, dev: u32, pos: u64) {
        let Some((&(_, end), &start)) = self
            .extents
            .range((dev, pos.saturating_add(1))..=(dev, u64::MAX))
            .next()
        else {
            return;
        };
        if start > pos {
            return;
        }
        self.extents.remove(&(dev, end));
        let (front, back) = freespace_punch(start, end, pos);
        match back {
            Some((e, size)) => {
                self.extents.insert((dev, e), e - size);
                self.changed.insert((dev, e), size);
            }
            None => {
                self.changed.insert((dev, end), 0);
            }
        }
        if let Some((e, size)) = front {
            self.extents.insert((dev, e), e - size);
            self.changed.insert((dev, e), size);
        }
    }

    /// The keys that say what was taken.
    fn updates(&self) -> Vec<Update> {
        self.changed
            .iter()
            .map(|(&(dev, end), &size)| {
                let p = Bpos::new(u64::from(dev), end, 0);
                // A piece of an extent whose size was a u32 has a u32 size.
                match u32::try_from(size) {
                    Ok(size) if size > 0 => {
                        plain(ids::btree::FREESPACE, KeyType::Set, p, size, Vec::new())
                    }
                    _ => plain(ids::btree::FREESPACE, KeyType::Deleted, p, 0, Vec::new()),
                }
            })
            .collect()
    }
}

/// The freespace keys that take the positions `holes` (dev, `genbits | bucket`) out
/// of the freespace btree's extents ([`Freespace::take`]). Positions no extent
/// holds need nothing.
pub fn punch_freespace(fs: &Fs, holes: &[(u32, u64)]) -> Vec<Update> {
    let mut f = Freespace::read(fs);
    for &(dev, pos) in holes {
        f.take(dev, pos);
    }
    f.updates()
}
