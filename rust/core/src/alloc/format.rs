// SPDX-License-Identifier: GPL-2.0
//! On-disk layouts of the alloc-side values: `bch_alloc` (v1..v4), `bch_bucket_gens`,
//! `bch_lru`, `bch_backpointer`, the accounting key (`disk_accounting_pos`, carried in
//! the key's position) and its counters.
//!
//! Every accessor works on the value bytes and reads a field that lies past the end of
//! a short value as zero, as upstream does for values written by older versions.

use super::super::bpos::Bpos;
use super::super::bytes::{bits, le16z, le32z, le64z, u8z};

// ---------------------------------------------------------------------------------
// Data types

/// `BCH_DATA_free`.
pub const DATA_FREE: u8 = 0;
/// `BCH_DATA_sb`.
pub const DATA_SB: u8 = 1;
/// `BCH_DATA_journal`.
pub const DATA_JOURNAL: u8 = 2;
/// `BCH_DATA_btree`.
pub const DATA_BTREE: u8 = 3;
/// `BCH_DATA_user`.
pub const DATA_USER: u8 = 4;
/// `BCH_DATA_cached`.
pub const DATA_CACHED: u8 = 5;
/// `BCH_DATA_stripe`.
pub const DATA_STRIPE: u8 = 7;
/// `BCH_DATA_need_gc_gens`.
pub const DATA_NEED_GC_GENS: u8 = 8;
/// `BCH_DATA_need_discard`.
pub const DATA_NEED_DISCARD: u8 = 9;
/// `BCH_DATA_multiple`.
pub const DATA_MULTIPLE: u8 = 11;
/// `BCH_DATA_NR`.
pub const DATA_NR: u8 = 12;

/// `data_type_is_empty`.
pub fn data_type_is_empty(t: u8) -> bool {
    matches!(t, DATA_FREE | DATA_NEED_GC_GENS | DATA_NEED_DISCARD)
}

/// `data_type_movable` (`DATA_TYPES_MOVABLE`: btree, user, stripe, multiple).
pub fn data_type_movable(t: u8) -> bool {
    matches!(t, DATA_BTREE | DATA_USER | DATA_STRIPE | DATA_MULTIPLE)
}

// ---------------------------------------------------------------------------------
// bch_alloc_v4

/// `struct bch_alloc_v4` byte offsets.
pub mod alloc_v4 {
    /// `__u64 journal_seq_nonempty`.
    pub const JOURNAL_SEQ_NONEMPTY: usize = 0;
    /// `__u32 flags`.
    pub const FLAGS: usize = 8;
    /// `__u8 generation`.
    pub const GEN: usize = 12;
    /// `__u8 oldest_gen`.
    pub const OLDEST_GEN: usize = 13;
    /// `__u8 data_type`.
    pub const DATA_TYPE: usize = 14;
    /// `__u8 stripe_redundancy_obsolete`.
    pub const STRIPE_REDUNDANCY: usize = 15;
    /// `__u32 dirty_sectors`.
    pub const DIRTY_SECTORS: usize = 16;
    /// `__u32 cached_sectors`.
    pub const CACHED_SECTORS: usize = 20;
    /// `__u64 io_time[2]` (READ, WRITE).
    pub const IO_TIME: usize = 24;
    /// `__u32 stripe_refcount`.
    pub const STRIPE_REFCOUNT: usize = 40;
    /// `__u32 nr_external_backpointers`.
    pub const NR_EXTERNAL_BACKPOINTERS: usize = 44;
    /// `__u64 journal_seq_empty` (not in the original 6-u64 version).
    pub const JOURNAL_SEQ_EMPTY: usize = 48;
    /// `__u32 stripe_sectors`.
    pub const STRIPE_SECTORS: usize = 56;
    /// Size of the struct in bytes.
    pub const BYTES: usize = 64;
    /// `BCH_ALLOC_V4_U64s`.
    pub const U64S: u64 = (BYTES / 8) as u64;
}

/// `struct bch_alloc_v4` in host form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AllocV4 {
    /// `journal_seq_nonempty`.
    pub journal_seq_nonempty: u64,
    /// `flags` (`NEED_DISCARD`, `NEED_INC_GEN`, `BACKPOINTERS_START`, ...).
    pub flags: u32,
    /// `generation`.
    pub gen: u8,
    /// `oldest_gen`.
    pub oldest_gen: u8,
    /// `data_type`.
    pub data_type: u8,
    /// `dirty_sectors`.
    pub dirty_sectors: u32,
    /// `cached_sectors`.
    pub cached_sectors: u32,
    /// `io_time[READ]`, `io_time[WRITE]`.
    pub io_time: [u64; 2],
    /// `stripe_refcount`.
    pub stripe_refcount: u32,
    /// `journal_seq_empty`.
    pub journal_seq_empty: u64,
    /// `stripe_sectors`.
    pub stripe_sectors: u32,
}

impl AllocV4 {
    /// Reads an `alloc_v4` value (missing trailing fields read as zero).
    pub fn read(v: &[u8]) -> AllocV4 {
        use alloc_v4::*;
        AllocV4 {
            journal_seq_nonempty: le64z(v, JOURNAL_SEQ_NONEMPTY),
            flags: le32z(v, FLAGS),
            gen: u8z(v, GEN),
            oldest_gen: u8z(v, OLDEST_GEN),
            data_type: u8z(v, DATA_TYPE),
            dirty_sectors: le32z(v, DIRTY_SECTORS),
            cached_sectors: le32z(v, CACHED_SECTORS),
            io_time: [le64z(v, IO_TIME), le64z(v, IO_TIME + 8)],
            stripe_refcount: le32z(v, STRIPE_REFCOUNT),
            journal_seq_empty: le64z(v, JOURNAL_SEQ_EMPTY),
            stripe_sectors: le32z(v, STRIPE_SECTORS),
        }
    }

    /// The alloc key of any version (`alloc`, `alloc_v2`, `alloc_v3`, `alloc_v4`)
    /// with key type `typ`, in v4 form (`bch2_alloc_to_v4`); `None` for other types.
    pub fn from_key(typ: u8, v: &[u8]) -> Option<AllocV4> {
        use super::super::ids::KeyType;
        let old = if typ == KeyType::AllocV4 as u8 {
            return Some(AllocV4::read(v));
        } else if typ == KeyType::AllocV3 as u8 {
            AllocUnpacked::read_v3(v)
        } else if typ == KeyType::AllocV2 as u8 {
            AllocUnpacked::read_v2(v)
        } else if typ == KeyType::Alloc as u8 {
            AllocUnpacked::read_v1(v)
        } else {
            return None;
        };
        Some(old.to_v4())
    }

    /// Writes the fields into an `alloc_v4` value `v` (the inverse of
    /// [`AllocV4::read`]; fields past the end of a short value are left out).
    pub fn write(&self, v: &mut [u8]) {
        use alloc_v4::*;
        fn put(v: &mut [u8], off: usize, b: &[u8]) {
            if let Some(d) = v.get_mut(off..off + b.len()) {
                d.copy_from_slice(b);
            }
        }
        put(
            v,
            JOURNAL_SEQ_NONEMPTY,
            &self.journal_seq_nonempty.to_le_bytes(),
        );
        put(v, FLAGS, &self.flags.to_le_bytes());
        put(v, GEN, &[self.gen]);
        put(v, OLDEST_GEN, &[self.oldest_gen]);
        put(v, DATA_TYPE, &[self.data_type]);
        put(v, DIRTY_SECTORS, &self.dirty_sectors.to_le_bytes());
        put(v, CACHED_SECTORS, &self.cached_sectors.to_le_bytes());
        put(v, IO_TIME, &self.io_time[0].to_le_bytes());
        put(v, IO_TIME + 8, &self.io_time[1].to_le_bytes());
        put(v, STRIPE_REFCOUNT, &self.stripe_refcount.to_le_bytes());
        put(v, JOURNAL_SEQ_EMPTY, &self.journal_seq_empty.to_le_bytes());
        put(v, STRIPE_SECTORS, &self.stripe_sectors.to_le_bytes());
    }

    /// `BCH_ALLOC_V4_NEED_DISCARD`.
    pub fn need_discard(&self) -> u64 {
        bits(self.flags as u64, 0, 1)
    }

    /// `BCH_ALLOC_V4_NEED_INC_GEN`.
    pub fn need_inc_gen(&self) -> u64 {
        bits(self.flags as u64, 1, 2)
    }

    /// `BCH_ALLOC_V4_BACKPOINTERS_START`.
    pub fn backpointers_start(&self) -> u64 {
        bits(self.flags as u64, 2, 8)
    }

    /// `BCH_ALLOC_V4_NR_BACKPOINTERS`.
    pub fn nr_backpointers(&self) -> u64 {
        bits(self.flags as u64, 8, 14)
    }

    /// `bch2_bucket_sectors_dirty` (the C sum is of two u32s, so it wraps at 32 bits).
    pub fn sectors_dirty(&self) -> i64 {
        self.stripe_sectors.wrapping_add(self.dirty_sectors) as i64
    }

    /// `bch2_bucket_sectors`.
    pub fn sectors(&self) -> i64 {
        if self.data_type == DATA_CACHED {
            self.cached_sectors as i64
        } else {
            self.sectors_dirty()
        }
    }

    /// `bch2_bucket_sectors_fragmented` for a device with buckets of `bucket_size`
    /// sectors (the C code works in `int` here).
    pub fn sectors_fragmented(&self, bucket_size: u16) -> i64 {
        let d = self.sectors() as i32;
        let bs = bucket_size as i32;
        if d != 0 {
            core::cmp::max(0, bs.wrapping_sub(d)) as i64
        } else if !data_type_is_empty(self.data_type) {
            bs as i64
        } else {
            0
        }
    }

    /// `alloc_lru_idx_fragmentation`: the bucket's position in the fragmentation LRU.
    pub fn lru_idx_fragmentation(&self, bucket_size: u16) -> u64 {
        if self.data_type >= DATA_NR {
            return 0;
        }
        if !data_type_movable(self.data_type) || self.sectors_fragmented(bucket_size) == 0 {
            return 0;
        }
        if bucket_size == 0 {
            return 0;
        }
        let d = core::cmp::min(self.sectors_dirty(), bucket_size as i64) as u64;
        (d << 31) / bucket_size as u64
    }
}

// ---------------------------------------------------------------------------------
// Old alloc keys: bch_alloc (v1), bch_alloc_v2, bch_alloc_v3

/// Byte widths of `BCH_ALLOC_FIELDS_V1()`: read_time, write_time, data_type,
/// dirty_sectors, cached_sectors, oldest_gen, stripe, stripe_redundancy.
const ALLOC_V1_FIELD_BYTES: [usize; 8] = [2, 2, 1, 2, 2, 1, 4, 1];

/// Bit widths of `BCH_ALLOC_FIELDS_V2()`: read_time, write_time, dirty_sectors,
/// cached_sectors, stripe, stripe_redundancy.
const ALLOC_V2_FIELD_BITS: [u32; 6] = [64, 64, 32, 32, 32, 8];

/// `struct bkey_alloc_unpacked`: an old alloc key, unpacked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AllocUnpacked {
    /// `journal_seq` (v3 only).
    pub journal_seq: u64,
    /// `generation`.
    pub gen: u8,
    /// `oldest_gen`.
    pub oldest_gen: u8,
    /// `data_type`.
    pub data_type: u8,
    /// `need_discard` (v3 only).
    pub need_discard: bool,
    /// `need_inc_gen` (v3 only).
    pub need_inc_gen: bool,
    /// `read_time`.
    pub read_time: u64,
    /// `write_time`.
    pub write_time: u64,
    /// `dirty_sectors`.
    pub dirty_sectors: u32,
    /// `cached_sectors`.
    pub cached_sectors: u32,
    /// `stripe`.
    pub stripe: u32,
    /// `stripe_redundancy`.
    pub stripe_redundancy: u8,
}

/// `bch2_varint_decode`: one varint from the start of `b`, and its length; `None` when
/// it runs past the end.
pub fn varint_decode(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first().unwrap_or(&0);
    let bytes = if b.is_empty() {
        1
    } else {
        (!first).trailing_zeros() as usize + 1
    };
    if bytes > b.len() {
        return None;
    }
    if bytes < 9 {
        let v = le64z(b.get(..bytes)?, 0);
        Some((v >> bytes, bytes))
    } else {
        Some((le64z(b, 1), bytes))
    }
}

impl AllocUnpacked {
    /// `bch2_alloc_unpack_v1`: `bch_alloc` is `fields` (bitmap), `generation`, then
    /// the fields present, each of its fixed width.
    pub fn read_v1(v: &[u8]) -> AllocUnpacked {
        let fields = u8z(v, 0);
        let mut off = 2usize;
        let mut f = [0u64; 8];
        for (i, out) in f.iter_mut().enumerate() {
            if fields & (1 << i) == 0 {
                continue;
            }
            let n = ALLOC_V1_FIELD_BYTES[i];
            *out = match n {
                1 => u8z(v, off) as u64,
                2 => le16z(v, off) as u64,
                _ => le32z(v, off) as u64,
            };
            off = off.saturating_add(n);
        }
        AllocUnpacked {
            gen: u8z(v, 1),
            read_time: f[0] as u16 as u64,
            write_time: f[1] as u16 as u64,
            data_type: f[2] as u8,
            dirty_sectors: f[3] as u16 as u32,
            cached_sectors: f[4] as u16 as u32,
            oldest_gen: f[5] as u8,
            stripe: f[6] as u32,
            stripe_redundancy: f[7] as u8,
            ..Default::default()
        }
    }

    /// Decodes the varint fields of v2/v3 starting at `data` into `self`, stopping
    /// (with what was decoded so far) at the first error, as upstream does.
    fn read_varint_fields(&mut self, v: &[u8], nr_fields: u8, data: usize) {
        let mut at = data;
        for (i, &w) in ALLOC_V2_FIELD_BITS.iter().enumerate() {
            let x = if (i as u32) < nr_fields as u32 {
                match varint_decode(v.get(at..).unwrap_or(&[])) {
                    Some((x, n)) => {
                        at = at.saturating_add(n);
                        x
                    }
                    None => return,
                }
            } else {
                0
            };
            let t = if w >= 64 { x } else { x & ((1u64 << w) - 1) };
            match i {
                0 => self.read_time = t,
                1 => self.write_time = t,
                2 => self.dirty_sectors = t as u32,
                3 => self.cached_sectors = t as u32,
                4 => self.stripe = t as u32,
                _ => self.stripe_redundancy = t as u8,
            }
            if t != x {
                return;
            }
        }
    }

    /// `bch2_alloc_unpack_v2`: `nr_fields`, `generation`, `oldest_gen`, `data_type`,
    /// then varints.
    pub fn read_v2(v: &[u8]) -> AllocUnpacked {
        let mut u = AllocUnpacked {
            gen: u8z(v, 1),
            oldest_gen: u8z(v, 2),
            data_type: u8z(v, 3),
            ..Default::default()
        };
        u.read_varint_fields(v, u8z(v, 0), 4);
        u
    }

    /// `bch2_alloc_unpack_v3`: `journal_seq`, `flags`, `nr_fields`, `generation`,
    /// `oldest_gen`, `data_type`, then varints.
    pub fn read_v3(v: &[u8]) -> AllocUnpacked {
        let flags = le32z(v, 8);
        let mut u = AllocUnpacked {
            journal_seq: le64z(v, 0),
            gen: u8z(v, 13),
            oldest_gen: u8z(v, 14),
            data_type: u8z(v, 15),
            need_discard: flags & 1 != 0,
            need_inc_gen: flags & 2 != 0,
            ..Default::default()
        };
        u.read_varint_fields(v, u8z(v, 12), 16);
        u
    }

    /// `__bch2_alloc_to_v4` for an old key.
    pub fn to_v4(&self) -> AllocV4 {
        AllocV4 {
            journal_seq_nonempty: self.journal_seq,
            // only need_discard carries over; BACKPOINTERS_START = BCH_ALLOC_V4_U64s
            flags: self.need_discard as u32 | ((alloc_v4::U64S as u32) << 2),
            gen: self.gen,
            oldest_gen: self.oldest_gen,
            data_type: self.data_type,
            dirty_sectors: self.dirty_sectors,
            cached_sectors: self.cached_sectors,
            io_time: [self.read_time, self.write_time],
            stripe_refcount: (self.stripe != 0) as u32,
            journal_seq_empty: 0,
            stripe_sectors: 0,
        }
    }
}

// ---------------------------------------------------------------------------------
// bch_bucket_gens, bch_lru, bch_cookie

/// `KEY_TYPE_BUCKET_GENS_NR`: gens per `bucket_gens` key.
pub const BUCKET_GENS_NR: usize = 256;

/// Generation `i` of a `bucket_gens` value.
pub fn bucket_gen(v: &[u8], i: usize) -> u8 {
    u8z(v, i)
}

/// `bch_lru.idx`.
pub fn lru_idx(v: &[u8]) -> u64 {
    le64z(v, 0)
}

/// `bch_cookie.cookie`.
pub fn cookie(v: &[u8]) -> u64 {
    le64z(v, 0)
}

// ---------------------------------------------------------------------------------
// bch_backpointer

/// `BCH_SB_EXTENT_BP_SHIFT_DEFAULT`: the shift when the superblock leaves it unset.
pub const EXTENT_BP_SHIFT_DEFAULT: u32 = 10;

/// `struct bch_backpointer` in host form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Backpointer {
    /// `btree_id`.
    pub btree_id: u8,
    /// `level`.
    pub level: u8,
    /// `data_type`.
    pub data_type: u8,
    /// `bucket_gen`.
    pub bucket_gen: u8,
    /// `flags`.
    pub flags: u32,
    /// `bucket_len`.
    pub bucket_len: u32,
    /// `pos`.
    pub pos: Bpos,
}

impl Backpointer {
    /// Reads a backpointer value.
    pub fn read(v: &[u8]) -> Backpointer {
        Backpointer {
            btree_id: u8z(v, 0),
            level: u8z(v, 1),
            data_type: u8z(v, 2),
            bucket_gen: u8z(v, 3),
            flags: le32z(v, 4),
            bucket_len: le32z(v, 8),
            pos: Bpos {
                snapshot: le32z(v, 12),
                offset: le64z(v, 16),
                inode: le64z(v, 24),
            },
        }
    }

    /// Writes the fields into a backpointer value `v` (the write side of
    /// [`Backpointer::read`]); `None` when `v` is too short.
    pub fn write(&self, v: &mut [u8]) -> Option<()> {
        use super::super::bytes::{put, put_le32};
        put(
            v,
            0,
            &[self.btree_id, self.level, self.data_type, self.bucket_gen],
        )?;
        put_le32(v, 4, self.flags)?;
        put_le32(v, 8, self.bucket_len)?;
        self.pos.write(v, 12)
    }

    /// `BACKPOINTER_RECONCILE_PHYS`.
    pub fn reconcile_phys(&self) -> u64 {
        bits(self.flags as u64, 0, 2)
    }

    /// `BACKPOINTER_ERASURE_CODED`.
    pub fn erasure_coded(&self) -> u64 {
        bits(self.flags as u64, 2, 3)
    }

    /// `BACKPOINTER_STRIPE_PTR`.
    pub fn stripe_ptr(&self) -> u64 {
        bits(self.flags as u64, 3, 4)
    }
}

// ---------------------------------------------------------------------------------
// Accounting: the key (`struct disk_accounting_pos`) and the counters

/// `BCH_DISK_ACCOUNTING_TYPES()` names, by type number.
pub const ACCOUNTING_TYPE_NAMES: [&str; 13] = [
    "nr_inodes",
    "persistent_reserved",
    "replicas",
    "dev_data_type",
    "compression",
    "snapshot",
    "btree",
    "rebalance_work",
    "inum",
    "reconcile_work",
    "dev_leaving",
    "stripe_frag",
    "dev_stripe_frag",
];

/// Accounting type numbers (`enum disk_accounting_type`).
#[allow(missing_docs)]
pub mod acct {
    pub const NR_INODES: u8 = 0;
    pub const PERSISTENT_RESERVED: u8 = 1;
    pub const REPLICAS: u8 = 2;
    pub const DEV_DATA_TYPE: u8 = 3;
    pub const COMPRESSION: u8 = 4;
    pub const SNAPSHOT: u8 = 5;
    pub const BTREE: u8 = 6;
    pub const REBALANCE_WORK: u8 = 7;
    pub const INUM: u8 = 8;
    pub const RECONCILE_WORK: u8 = 9;
    pub const DEV_LEAVING: u8 = 10;
    pub const STRIPE_FRAG: u8 = 11;
    pub const DEV_STRIPE_FRAG: u8 = 12;
}

/// `BCH_RECONCILE_ACCOUNTING()` names.
pub const RECONCILE_ACCOUNTING_NAMES: [&str; 8] = [
    "replicas",
    "checksum",
    "erasure_code",
    "compression",
    "target",
    "high_priority",
    "pending",
    "stripes",
];

/// `struct disk_accounting_pos`: the 20 bytes of a `bpos` read as one big-endian
/// integer (`bpos_to_disk_accounting_pos` byte-swaps the little-endian bpos), so byte
/// 0 is the type and the type-specific union follows. Multi-byte fields inside the
/// union are native (little-endian) integers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccountingPos(pub [u8; 20]);

impl AccountingPos {
    /// The accounting key of a key at `p`.
    pub fn from_bpos(p: Bpos) -> AccountingPos {
        let mut a = [0u8; 20];
        a[..8].copy_from_slice(&p.inode.to_be_bytes());
        a[8..16].copy_from_slice(&p.offset.to_be_bytes());
        a[16..].copy_from_slice(&p.snapshot.to_be_bytes());
        AccountingPos(a)
    }

    /// The key position of this accounting key (the write side of
    /// [`AccountingPos::from_bpos`]).
    pub fn to_bpos(&self) -> Bpos {
        let a = &self.0;
        let mut inode = [0u8; 8];
        let mut offset = [0u8; 8];
        let mut snap = [0u8; 4];
        inode.copy_from_slice(&a[..8]);
        offset.copy_from_slice(&a[8..16]);
        snap.copy_from_slice(&a[16..]);
        Bpos::new(
            u64::from_be_bytes(inode),
            u64::from_be_bytes(offset),
            u32::from_be_bytes(snap),
        )
    }

    /// `type`.
    pub fn typ(&self) -> u8 {
        self.0[0]
    }

    /// Byte `i` of the type-specific union (0 past the end).
    pub fn u8(&self, i: usize) -> u8 {
        u8z(&self.0, 1usize.saturating_add(i))
    }

    /// Little-endian u32 at byte `i` of the union.
    pub fn le32(&self, i: usize) -> u32 {
        le32z(&self.0, 1usize.saturating_add(i))
    }

    /// Little-endian u64 at byte `i` of the union.
    pub fn le64(&self, i: usize) -> u64 {
        le64z(&self.0, 1usize.saturating_add(i))
    }

    /// Replicas entry (`bch_replicas_entry_v1`): `data_type`.
    pub fn replicas_data_type(&self) -> u8 {
        self.u8(0)
    }

    /// Replicas entry: `nr_devs`.
    pub fn replicas_nr_devs(&self) -> u8 {
        self.u8(1)
    }

    /// Replicas entry: `nr_required`.
    pub fn replicas_nr_required(&self) -> u8 {
        self.u8(2)
    }

    /// Replicas entry: `devs[i]`.
    pub fn replicas_dev(&self, i: usize) -> u8 {
        self.u8(3usize.saturating_add(i))
    }
}

/// Number of counters of an accounting value (`bch2_accounting_counters`).
pub fn accounting_nr_counters(v: &[u8]) -> usize {
    v.len() / 8
}

/// Counter `i` of an accounting value (signed).
pub fn accounting_counter(v: &[u8], i: usize) -> i64 {
    le64z(v, i.saturating_mul(8)) as i64
}

/// Writes counters `c` as an accounting value into `v` (`c.len() * 8` bytes; the
/// write side of [`accounting_counter`]). Returns the bytes written.
pub fn write_accounting(v: &mut [u8], c: &[i64]) -> Option<usize> {
    for (i, x) in c.iter().enumerate() {
        super::super::bytes::put_le64(v, i * 8, *x as u64)?;
    }
    Some(c.len() * 8)
}

/// The counters of an accounting key of type `typ` whose value is `cur` (empty: a
/// key not written yet, with as many counters as its type has).
pub fn accounting_len(cur: &[u8], typ: u8) -> usize {
    if cur.is_empty() {
        super::super::gc::accounting::nr_counters(typ)
    } else {
        accounting_nr_counters(cur)
    }
}

/// A trigger's `delta` added to an accounting key of `n` counters (see
/// [`accounting_len`]): the node's total, `cur` plus the delta, into `node_v`, and
/// the journal's delta, `journal_cur` (what the commit already journals for the
/// key, if anything) plus the delta, into `journal_v`; `n * 8` bytes each. `None`
/// when a buffer is short or `n` is more than 3.
pub fn accounting_add(
    cur: &[u8],
    journal_cur: Option<&[u8]>,
    delta: &[i64; 3],
    n: usize,
    node_v: &mut [u8],
    journal_v: &mut [u8],
) -> Option<()> {
    let mut total = [0i64; 3];
    let mut jd = [0i64; 3];
    for i in 0..n {
        let d = *delta.get(i)?;
        *total.get_mut(i)? = accounting_counter(cur, i).wrapping_add(d);
        *jd.get_mut(i)? = journal_cur
            .map(|j| accounting_counter(j, i))
            .unwrap_or(0)
            .wrapping_add(d);
    }
    write_accounting(node_v, total.get(..n)?)?;
    write_accounting(journal_v, jd.get(..n)?)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_pos_and_value_round_trip() {
        let p = Bpos::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324);
        let a = AccountingPos::from_bpos(p);
        assert_eq!(a.typ(), 1);
        assert_eq!(a.to_bpos(), p);
        let mut v = [0u8; 24];
        assert_eq!(write_accounting(&mut v, &[5, -2, 1 << 40]), Some(24));
        assert_eq!(accounting_nr_counters(&v), 3);
        assert_eq!(
            (0..3)
                .map(|i| accounting_counter(&v, i))
                .collect::<std::vec::Vec<_>>(),
            [5, -2, 1 << 40]
        );
        assert_eq!(write_accounting(&mut v[..8], &[1, 2]), None);
    }

    #[test]
    fn accounting_add_totals_and_deltas() {
        let mut cur = [0u8; 24];
        write_accounting(&mut cur, &[10, 20, 30]).unwrap();
        let mut jcur = [0u8; 24];
        write_accounting(&mut jcur, &[1, 0, -1]).unwrap();
        let (mut n, mut j) = ([0u8; 24], [0u8; 24]);
        accounting_add(&cur, Some(&jcur), &[5, -5, 0], 3, &mut n, &mut j).unwrap();
        let c = |v: &[u8]| {
            (0..3)
                .map(|i| accounting_counter(v, i))
                .collect::<std::vec::Vec<_>>()
        };
        assert_eq!(c(&n), [15, 15, 30]);
        assert_eq!(c(&j), [6, -5, -1]);
        // A key not written yet: the delta is the total and the journal's delta.
        assert_eq!(accounting_len(&[], acct::REPLICAS), 1);
        accounting_add(&[], None, &[7, 0, 0], 1, &mut n[..8], &mut j[..8]).unwrap();
        assert_eq!(
            (accounting_counter(&n, 0), accounting_counter(&j, 0)),
            (7, 7)
        );
        // Short buffers and too many counters are refused, not a panic.
        assert_eq!(
            accounting_add(&cur, None, &[1, 1, 1], 3, &mut n[..8], &mut j),
            None
        );
        assert_eq!(
            accounting_add(&cur, None, &[1, 1, 1], 4, &mut n, &mut j),
            None
        );
    }

    #[test]
    fn alloc_v4_write_reads_back() {
        let a = AllocV4 {
            journal_seq_nonempty: 7,
            flags: 0x8 << 2,
            gen: 3,
            oldest_gen: 1,
            data_type: DATA_USER,
            dirty_sectors: 100,
            cached_sectors: 5,
            io_time: [9, 10],
            stripe_refcount: 0,
            journal_seq_empty: 11,
            stripe_sectors: 0,
        };
        let mut v = [0xffu8; alloc_v4::BYTES];
        a.write(&mut v);
        assert_eq!(AllocV4::read(&v), a);
    }

    #[test]
    fn varint() {
        // 1 byte: low bit 0, value in the upper 7 bits
        assert_eq!(varint_decode(&[5 << 1]), Some((5, 1)));
        // 2 bytes: low bits 01
        let v: u16 = (300 << 2) | 1;
        assert_eq!(varint_decode(&v.to_le_bytes()), Some((300, 2)));
        // 9 bytes
        let mut b = [0xffu8; 9];
        b[1..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(varint_decode(&b), Some((u64::MAX, 9)));
        assert_eq!(varint_decode(&[0xff]), None);
        assert_eq!(varint_decode(&[]), None);
    }

    #[test]
    fn accounting_pos() {
        let a = AccountingPos::from_bpos(Bpos::new(144960716812582912, 0, 0));
        assert_eq!(a.typ(), acct::REPLICAS);
        assert_eq!(a.replicas_data_type(), DATA_BTREE);
        assert_eq!(a.replicas_nr_devs(), 1);
        assert_eq!(a.replicas_nr_required(), 1);
        let s = AccountingPos::from_bpos(Bpos::new(432345564210790400, 0, 0));
        assert_eq!(s.typ(), acct::SNAPSHOT);
        assert_eq!(s.le32(0), u32::MAX);
        assert_eq!(s.le32(4), 0);
    }

    #[test]
    fn fragmentation() {
        let a = AllocV4 {
            data_type: DATA_USER,
            dirty_sectors: 255,
            ..Default::default()
        };
        assert_eq!(a.lru_idx_fragmentation(256), 2139095040);
        let full = AllocV4 {
            data_type: DATA_USER,
            dirty_sectors: 256,
            ..Default::default()
        };
        assert_eq!(full.lru_idx_fragmentation(256), 0);
        assert_eq!(a.lru_idx_fragmentation(0), 0);
    }
}
