// SPDX-License-Identifier: GPL-2.0
//! Text of journal entries (`list-journal`).

use super::super::bkey::{Bkey, BKEY_BYTES};
use super::super::bytes::{le64, u8_at};
use super::super::ids;
use super::super::sb::JsetEntry;
use super::super::text::{bkey_val_to_text, Pb, TextCtx};
use core::fmt::Write;

/// `BCH_JSET_ENTRY_TYPES()` names.
pub const ENTRY_NAMES: [&str; 16] = [
    "btree_keys",
    "btree_root",
    "prio_ptrs",
    "blacklist",
    "blacklist_v2",
    "usage",
    "data_usage",
    "clock",
    "dev_usage",
    "log",
    "overwrite",
    "write_buffer_keys",
    "datetime",
    "log_bkey",
    "rewind_limit",
    "rewind",
];

const USAGE_NAMES: [&str; 3] = ["reserved", "inodes", "key_version"];

/// The indent the reference prints an entry of type `t` at: entries that stand
/// alone (a transaction's `log` line, roots, usage, time) at 2, the updates and
/// clocks that belong to them at 4.
pub fn entry_indent(t: u8) -> usize {
    match t {
        1 | 3 | 4 | 5 | 9 | 12 => 2,
        _ => 4,
    }
}

/// Prints one journal entry: `NAME: ...`, one line per key for key entries.
/// Returns whether anything was printed (key entries with no keys print nothing).
pub fn entry_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, e: &JsetEntry<'_>) -> bool {
    let name = ENTRY_NAMES.get(e.typ as usize).copied();
    match e.typ {
        0 | 1 | 10 | 11 | 13 => {
            let mut d = e.data;
            let mut first = true;
            while let Some(k) = Bkey::read_unpacked(d) {
                let n = k.u64s as usize * 8;
                if n < BKEY_BYTES || n > d.len() {
                    break;
                }
                if !first {
                    pb.newline();
                }
                first = false;
                let _ = write!(pb, "{}: ", name.unwrap_or("?"));
                if e.typ != 13 {
                    let _ = write!(
                        pb,
                        "btree={} level={} ",
                        ids::btree_name(e.btree_id as u32).unwrap_or("(unknown)"),
                        e.level
                    );
                }
                bkey_val_to_text(pb, ctx, &k, &d[BKEY_BYTES..n]);
                d = &d[n..];
            }
            if first {
                return false;
            }
        }
        3 => {
            let _ = write!(pb, "blacklist: seq {}", le64(e.data, 0).unwrap_or(0));
        }
        4 => {
            let _ = write!(
                pb,
                "blacklist_v2: start {} end {}",
                le64(e.data, 0).unwrap_or(0),
                le64(e.data, 8).unwrap_or(0)
            );
        }
        5 => {
            let t = USAGE_NAMES
                .get(e.btree_id as usize)
                .copied()
                .unwrap_or("(unknown)");
            let _ = write!(pb, "usage: type={} v={}", t, le64(e.data, 0).unwrap_or(0));
        }
        7 => {
            let rw = if u8_at(e.data, 0).unwrap_or(0) != 0 {
                "write"
            } else {
                "read"
            };
            let _ = write!(pb, "clock: {}={}", rw, le64(e.data, 8).unwrap_or(0));
        }
        9 => {
            let n = e
                .data
                .iter()
                .rposition(|&c| c != 0)
                .map(|i| i + 1)
                .unwrap_or(0);
            let s = core::str::from_utf8(&e.data[..n]).unwrap_or("(invalid utf-8)");
            let _ = write!(pb, "log: {}", s);
        }
        12 => {
            pb.str("datetime: ");
            super::super::sb::text::prt_datetime(pb, le64(e.data, 0).unwrap_or(0) as i64);
        }
        14 => {
            let _ = write!(pb, "rewind_limit: seq {}", le64(e.data, 0).unwrap_or(0));
        }
        15 => {
            let _ = write!(
                pb,
                "rewind: from {} to {}",
                le64(e.data, 0).unwrap_or(0),
                le64(e.data, 8).unwrap_or(0)
            );
        }
        _ => {
            let _ = write!(
                pb,
                "{}: ({} bytes)",
                name.unwrap_or("(unknown entry)"),
                e.data.len()
            );
        }
    }
    true
}
