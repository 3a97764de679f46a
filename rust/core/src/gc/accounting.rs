// SPDX-License-Identifier: GPL-2.0
//! The accounting gc recounts, in a fixed table: replicas entries, per-device data
//! type counters, per-btree node counters, compression, inodes and persistent
//! reservations; compared afterwards with the accounting btree (every key of a type
//! recounted here, and every recounted entry the btree lacks).

use super::super::alloc::format::{
    accounting_counter, accounting_nr_counters, acct, AccountingPos,
};
use super::finding::{Finding, Kind};

/// Most entries the table holds.
pub const TALLY_MAX: usize = 256;

/// Accounting types gc recounts and compares.
pub const RECOUNTED: [u8; 7] = [
    acct::NR_INODES,
    acct::PERSISTENT_RESERVED,
    acct::REPLICAS,
    acct::DEV_DATA_TYPE,
    acct::COMPRESSION,
    acct::SNAPSHOT,
    acct::BTREE,
];

/// Whether accounting type `t` is recounted.
pub fn recounted(t: u8) -> bool {
    RECOUNTED.contains(&t)
}

/// Number of counters of an accounting type.
pub fn nr_counters(t: u8) -> usize {
    match t {
        acct::NR_INODES | acct::PERSISTENT_RESERVED | acct::REPLICAS => 1,
        _ => 3,
    }
}

/// One recounted entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub pos: AccountingPos,
    /// Counters.
    pub c: [i64; 3],
    /// Seen in the accounting btree.
    pub seen: bool,
}

/// An unused table slot.
pub const EMPTY: Entry = Entry {
    pos: AccountingPos([0; 20]),
    c: [0; 3],
    seen: false,
};

/// The recount, over the caller's table (`TALLY_MAX` slots is plenty: a few per
/// device and btree).
pub struct Tally<'a> {
    entries: &'a mut [Entry],
    len: usize,
    /// Entries that did not fit.
    pub overflow: u32,
}

/// Key bytes of an accounting position: type, then the union.
pub fn pos(t: u8, union: &[u8]) -> AccountingPos {
    let mut a = [0u8; 20];
    a[0] = t;
    let n = union.len().min(19);
    a[1..1 + n].copy_from_slice(&union[..n]);
    AccountingPos(a)
}

/// A replicas entry's key: `data_type`, `nr_devs`, `nr_required`, devs sorted.
pub fn replicas_pos(data_type: u8, nr_required: u8, devs: &[u8]) -> AccountingPos {
    let mut d = [0u8; 16];
    let n = devs.len().min(16);
    d[..n].copy_from_slice(&devs[..n]);
    d[..n].sort_unstable();
    let mut u = [0u8; 19];
    u[0] = data_type;
    u[1] = n as u8;
    u[2] = nr_required;
    u[3..3 + n].copy_from_slice(&d[..n]);
    pos(acct::REPLICAS, &u[..3 + n])
}

impl<'a> Tally<'a> {
    /// A recount over `entries`.
    pub fn new(entries: &'a mut [Entry]) -> Tally<'a> {
        Tally {
            entries,
            len: 0,
            overflow: 0,
        }
    }

    /// Empties the table.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = 0;
    }

    /// Adds `d` to the entry `p`.
    pub fn add(&mut self, p: AccountingPos, d: [i64; 3]) {
        if let Some(e) = self.entries[..self.len].iter_mut().find(|e| e.pos == p) {
            for (c, d) in e.c.iter_mut().zip(d) {
                *c += d;
            }
            return;
        }
        if self.len == self.entries.len() {
            self.overflow += 1;
            return;
        }
        self.entries[self.len] = Entry {
            pos: p,
            c: d,
            seen: false,
        };
        self.len += 1;
    }

    /// The recounted entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// Compares one accounting key (position `p`, value `v`) with the recount.
    pub fn compare_key(&mut self, p: AccountingPos, v: &[u8], out: &mut dyn FnMut(&Finding)) {
        let t = p.typ();
        if !recounted(t) {
            return;
        }
        let n = nr_counters(t).min(accounting_nr_counters(v)).min(3);
        let mut got = [0i64; 3];
        for (i, g) in got.iter_mut().enumerate().take(n) {
            *g = accounting_counter(v, i);
        }
        let want = match self.entries[..self.len].iter_mut().find(|e| e.pos == p) {
            Some(e) => {
                e.seen = true;
                e.c
            }
            None => [0; 3],
        };
        if got[..n] != want[..n] {
            out(&mismatch(p, n, got, want));
        }
    }

    /// After every key was compared: recounted entries the btree does not have.
    pub fn finish(&self, out: &mut dyn FnMut(&Finding)) {
        for e in self.entries() {
            let n = nr_counters(e.pos.typ());
            if !e.seen && e.c[..n].iter().any(|&c| c != 0) {
                out(&mismatch(e.pos, n, [0; 3], e.c));
            }
        }
    }
}

fn mismatch(p: AccountingPos, n: usize, got: [i64; 3], want: [i64; 3]) -> Finding {
    let mut f = Finding::new(Kind::AccountingMismatch);
    f.btree = Some(super::super::ids::btree::ACCOUNTING);
    f.acct = Some((p, n as u8));
    f.acct_got = got;
    f.acct_want = want;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn replicas_key_is_sorted_and_compared() {
        let a = replicas_pos(4, 1, &[1, 0]);
        assert_eq!(a.replicas_dev(0), 0);
        assert_eq!(a.replicas_dev(1), 1);
        assert_eq!(a.replicas_nr_devs(), 2);
        let mut slots = [EMPTY; 8];
        let mut t = Tally::new(&mut slots);
        t.add(a, [8, 0, 0]);
        t.add(a, [8, 0, 0]);
        let mut v = Vec::new();
        t.compare_key(a, &16u64.to_le_bytes(), &mut |f| v.push(*f));
        assert!(v.is_empty());
        t.compare_key(a, &15u64.to_le_bytes(), &mut |f| v.push(*f));
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].acct_got[0], v[0].acct_want[0]), (15, 16));
        let b = replicas_pos(3, 1, &[0]);
        t.add(b, [128, 0, 0]);
        let mut v = Vec::new();
        t.finish(&mut |f| v.push(*f));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].acct.map(|a| a.0), Some(b));
    }
}
