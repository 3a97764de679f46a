// SPDX-License-Identifier: GPL-2.0
//! Text forms of alloc-side values, as upstream's `*_to_text` print them:
//! `bch2_alloc_v4_to_text`/`bch2_alloc_to_text`, `bch2_accounting_to_text`,
//! `bch2_backpointer_to_text`, `bch2_bucket_gens_to_text`, `bch2_lru_to_text` and the
//! cookie.
//!
//! Some of them need to know about the device a key refers to (its bucket size) and
//! the superblock's backpointer shift; those come from the [`TextCtx`]. Without a
//! device, the printers take upstream's no-device branch.

use core::fmt::Write;

use super::super::bkey::Bkey;
use super::super::ids::{btree_name, data_type_name, COMPRESSION_TYPE_NAMES};
use super::super::text::{Pb, TextCtx};
use super::format::{
    accounting_counter, accounting_nr_counters, acct, bucket_gen, cookie, lru_idx, AccountingPos,
    AllocUnpacked, AllocV4, Backpointer, ACCOUNTING_TYPE_NAMES, BUCKET_GENS_NR,
    EXTENT_BP_SHIFT_DEFAULT, RECONCILE_ACCOUNTING_NAMES,
};

/// Bucket size (in sectors) of member device `dev`, or `None` when `dev` is not a
/// member (upstream's `bch2_dev_tryget_noerror` failing). Upstream keeps it as a u16
/// (`bch_member_cpu.bucket_size`).
fn dev_bucket_size(ctx: &TextCtx<'_>, dev: u64) -> Option<u16> {
    let dev = u32::try_from(dev).ok()?;
    ctx.devs.bucket_size(dev).map(|b| b as u16)
}

/// `c->sb.extent_bp_shift`: `BCH_SB_EXTENT_BP_SHIFT`, or the default when unset.
///
/// WIRING POINT: not in [`TextCtx`] yet.
fn extent_bp_shift(ctx: &TextCtx<'_>) -> u32 {
    match ctx.devs.extent_bp_shift() {
        0 => EXTENT_BP_SHIFT_DEFAULT,
        s => s,
    }
}

/// `bch2_prt_data_type`.
pub fn prt_data_type(pb: &mut Pb<'_, '_>, t: u8) {
    match data_type_name(t) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown data_type {})", t);
        }
    }
}

/// `bch2_btree_id_to_text`.
pub fn prt_btree_id(pb: &mut Pb<'_, '_>, id: u32) {
    match btree_name(id) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown btree {})", id);
        }
    }
}

/// `bch2_prt_compression_type`.
fn prt_compression_type(pb: &mut Pb<'_, '_>, t: u8) {
    match COMPRESSION_TYPE_NAMES.get(t as usize) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown compression_type {})", t);
        }
    }
}

/// `bch2_prt_reconcile_accounting_type`.
fn prt_reconcile_accounting_type(pb: &mut Pb<'_, '_>, t: u8) {
    match RECONCILE_ACCOUNTING_NAMES.get(t as usize) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown reconcile_accounting_type {})", t);
        }
    }
}

// ---------------------------------------------------------------------------------
// alloc

/// `__bch2_alloc_v4_to_text` (as of 1.39: the fields on their own lines, at the
/// value's indent). `val_bytes` is the size of the key's own
/// value (which decides whether the later fields print), `bucket_size` that of the
/// bucket's device when it is a member.
pub fn alloc_v4_fields_to_text(
    pb: &mut Pb<'_, '_>,
    a: &AllocV4,
    val_bytes: usize,
    bucket_size: Option<u16>,
) {
    use super::format::alloc_v4::{JOURNAL_SEQ_EMPTY, STRIPE_SECTORS};

    pb.newline();

    let _ = write!(pb, "gen {} oldest_gen {} data_type ", a.gen, a.oldest_gen);
    prt_data_type(pb, a.data_type);
    pb.newline();
    let _ = writeln!(pb, "journal_seq_nonempty {}", a.journal_seq_nonempty);
    if val_bytes > JOURNAL_SEQ_EMPTY {
        let _ = writeln!(pb, "journal_seq_empty    {}", a.journal_seq_empty);
    }
    let _ = writeln!(pb, "need_discard         {}", a.need_discard());
    let _ = writeln!(pb, "need_inc_gen         {}", a.need_inc_gen());
    let _ = writeln!(pb, "dirty_sectors        {}", a.dirty_sectors);
    if val_bytes > STRIPE_SECTORS {
        let _ = writeln!(pb, "stripe_sectors       {}", a.stripe_sectors);
    }
    let _ = writeln!(pb, "cached_sectors       {}", a.cached_sectors);
    let _ = writeln!(pb, "stripe_refcount      {}", a.stripe_refcount);
    let _ = writeln!(pb, "io_time[READ]        {}", a.io_time[0]);
    let _ = writeln!(pb, "io_time[WRITE]       {}", a.io_time[1]);
    if let Some(bs) = bucket_size {
        let _ = writeln!(pb, "fragmentation     {}", a.lru_idx_fragmentation(bs));
    }
    let _ = writeln!(pb, "bp_start          {}", a.backpointers_start());
}

/// `bch2_alloc_v4_to_text`.
pub fn alloc_v4_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    let a = AllocV4::read(v);
    alloc_v4_fields_to_text(pb, &a, v.len(), dev_bucket_size(ctx, k.p.inode));
}

/// `bch2_alloc_to_text`: `alloc`, `alloc_v2`, `alloc_v3`, converted to v4.
pub fn alloc_old_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    // Called for the three old types only; anything else reads as v1, as before.
    let a = AllocV4::from_key(k.typ, v).unwrap_or_else(|| AllocUnpacked::read_v1(v).to_v4());
    alloc_v4_fields_to_text(pb, &a, v.len(), dev_bucket_size(ctx, k.p.inode));
}

/// `bch2_bucket_gens_to_text`: all 256 gens, space separated.
pub fn bucket_gens_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    for i in 0..BUCKET_GENS_NR {
        if i != 0 {
            pb.str(" ");
        }
        let _ = write!(pb, "{}", bucket_gen(v, i));
    }
}

/// `bch2_lru_to_text` (the obsolete `KEY_TYPE_lru`).
pub fn lru_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    let _ = write!(pb, "idx {}", lru_idx(v));
}

/// `key_type_cookie_to_text`.
pub fn cookie_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    let _ = write!(pb, "{}", cookie(v));
}

// ---------------------------------------------------------------------------------
// backpointers

/// `bch2_backpointer_to_text`, given the device's bucket size (when it is a member)
/// and the superblock's `extent_bp_shift`.
pub fn backpointer_fields_to_text(
    pb: &mut Pb<'_, '_>,
    k: &Bkey,
    v: &[u8],
    bucket_size: Option<u16>,
    shift: u32,
) {
    let bp = Backpointer::read(v);
    let sector = k.p.offset.checked_shr(shift).unwrap_or(0);

    match bucket_size {
        Some(bs) if bs != 0 => {
            let _ = write!(
                pb,
                "bucket={}:{}:{} ",
                k.p.inode,
                sector / bs as u64,
                (sector % bs as u64) as u32
            );
        }
        _ => {
            let _ = write!(pb, "sector={}:{} ", k.p.inode, sector);
        }
    }

    // bch2_btree_id_level_to_text
    pb.str("btree=");
    prt_btree_id(pb, bp.btree_id as u32);
    let _ = write!(pb, " level={}", bp.level);
    pb.str(" data_type=");
    prt_data_type(pb, bp.data_type);
    let mask = (!0u32).checked_shl(shift).unwrap_or(0);
    let _ = write!(
        pb,
        " suboffset={} len={} gen={} pos={}",
        (k.p.offset as u32) & !mask,
        bp.bucket_len,
        bp.bucket_gen,
        bp.pos
    );
    if bp.reconcile_phys() != 0 {
        pb.str(" phys");
    }
    if bp.stripe_ptr() != 0 {
        pb.str(" stripe");
    }
}

/// `bch2_backpointer_to_text`.
pub fn backpointer_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    let bs = dev_bucket_size(ctx, k.p.inode);
    backpointer_fields_to_text(pb, k, v, bs, extent_bp_shift(ctx));
}

// ---------------------------------------------------------------------------------
// accounting

/// `bch2_replicas_entry_to_text` for the replicas entry inside an accounting key.
fn replicas_entry_to_text(pb: &mut Pb<'_, '_>, a: &AccountingPos) {
    prt_data_type(pb, a.replicas_data_type());
    let nr = a.replicas_nr_devs();
    let _ = write!(pb, ": {}/{} [", a.replicas_nr_required(), nr);
    for i in 0..nr as usize {
        if i != 0 {
            pb.str(" ");
        }
        let _ = write!(pb, "{}", a.replicas_dev(i));
    }
    pb.str("]");
}

/// `bch2_accounting_key_to_text`.
pub fn accounting_key_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, a: &AccountingPos) {
    let t = a.typ();
    let Some(name) = ACCOUNTING_TYPE_NAMES.get(t as usize) else {
        let _ = write!(pb, "unknown type {}", t);
        return;
    };
    pb.str(name);
    pb.str(" ");

    match t {
        acct::PERSISTENT_RESERVED => {
            let _ = write!(pb, "replicas={}", a.u8(0));
        }
        acct::REPLICAS => replicas_entry_to_text(pb, a),
        acct::DEV_DATA_TYPE => {
            let _ = write!(pb, "dev={} data_type=", a.u8(0));
            prt_data_type(pb, a.u8(1));
        }
        acct::COMPRESSION => prt_compression_type(pb, a.u8(0)),
        acct::SNAPSHOT => {
            let _ = write!(pb, "id={} btree=", a.le32(0));
            prt_btree_id(pb, a.le32(4));
        }
        acct::BTREE => {
            pb.str("btree=");
            prt_btree_id(pb, a.le32(0));
        }
        acct::RECONCILE_WORK => prt_reconcile_accounting_type(pb, a.u8(0)),
        acct::STRIPE_FRAG => {
            let _ = write!(pb, "nr_empty={}", a.u8(0));
        }
        acct::DEV_STRIPE_FRAG => {
            let _ = write!(pb, "dev={}", a.u8(0));
        }
        acct::DEV_LEAVING => {
            let dev = a.le32(0);
            match ctx.devs.dev_name(dev) {
                Some(n) => {
                    let _ = write!(pb, "{} ", n);
                }
                None => {
                    let _ = write!(pb, "{} ", dev);
                }
            }
        }
        // nr_inodes, rebalance_work, inum: nothing beyond the type
        _ => {}
    }
}

/// `bch2_accounting_to_text`: the key (decoded from the position), then each counter.
pub fn accounting_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    accounting_key_to_text(pb, ctx, &AccountingPos::from_bpos(k.p));
    for i in 0..accounting_nr_counters(v) {
        let _ = write!(pb, " {}", accounting_counter(v, i));
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::bpos::Bpos;
    use super::super::super::ids::KeyType;
    use super::super::super::printbuf::{FixedBuf, Printbuf, TextOut};
    use super::super::super::text::NoDevs;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// Runs a printer on a fresh printbuf, inside the 2-space value indent that
    /// `bkey_val_to_text` puts around every value (its leading spaces dropped).
    fn show(f: impl FnOnce(&mut Pb<'_, '_>, &TextCtx<'_>)) -> String {
        let mut buf = [0u8; 8192];
        let mut out = FixedBuf::new(&mut buf);
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut out);
            pb.indent_add(2);
            f(&mut pb, &TextCtx { devs: &NoDevs });
            pb.indent_sub(2);
        }
        String::from_utf8(out.as_bytes()[2..].to_vec()).unwrap()
    }

    fn key(typ: KeyType, p: Bpos) -> Bkey {
        Bkey {
            typ: typ as u8,
            p,
            ..Default::default()
        }
    }

    #[test]
    fn alloc_v4() {
        let mut v = [0u8; 64];
        v[8..12].copy_from_slice(&(3u32 | (8 << 2)).to_le_bytes()); // need_discard, need_inc_gen, bp_start 8
        v[14] = 1; // sb
        v[16..20].copy_from_slice(&128u32.to_le_bytes());
        v[24..32].copy_from_slice(&1u64.to_le_bytes());
        v[32..40].copy_from_slice(&1u64.to_le_bytes());
        let a = AllocV4::read(&v);
        let s = show(|pb, _| alloc_v4_fields_to_text(pb, &a, 64, Some(128)));
        assert_eq!(
            s,
            "\n  gen 0 oldest_gen 0 data_type sb\n  journal_seq_nonempty 0\n  journal_seq_empty    0\n  need_discard         1\n  need_inc_gen         1\n  dirty_sectors        128\n  stripe_sectors       0\n  cached_sectors       0\n  stripe_refcount      0\n  io_time[READ]        1\n  io_time[WRITE]       1\n  fragmentation     0\n  bp_start          8\n"
        );
        // no such device: no fragmentation line
        let k = key(KeyType::AllocV4, Bpos::new(0, 1, 0));
        let s = show(|pb, ctx| alloc_v4_to_text(pb, ctx, &k, &v));
        assert!(!s.contains("fragmentation"));
        // short (v0) value: no journal_seq_empty / stripe_sectors
        let s = show(|pb, ctx| alloc_v4_to_text(pb, ctx, &k, &v[..48]));
        assert!(!s.contains("journal_seq_empty") && !s.contains("stripe_sectors"));
        let s = show(|pb, ctx| alloc_v4_to_text(pb, ctx, &k, &[]));
        assert!(s.contains("bp_start          0"));
    }

    #[test]
    fn alloc_v4_user() {
        let mut v = [0u8; 64];
        v[0..8].copy_from_slice(&153u64.to_le_bytes());
        v[8..12].copy_from_slice(&(3u32 | (8 << 2)).to_le_bytes());
        v[14] = 4;
        v[16..20].copy_from_slice(&255u32.to_le_bytes());
        let a = AllocV4::read(&v);
        let s = show(|pb, _| alloc_v4_fields_to_text(pb, &a, 64, Some(256)));
        assert!(s.contains("\n  fragmentation     2139095040\n"));
    }

    #[test]
    fn alloc_old() {
        // alloc_v2: nr_fields 4, gen 3, oldest 2, data_type user; read 7, write 9,
        // dirty 100, cached 0
        let v = [
            4u8,
            3,
            2,
            4,
            7 << 1,
            9 << 1,
            100 << 1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let k = key(KeyType::AllocV2, Bpos::new(0, 5, 0));
        let s = show(|pb, ctx| alloc_old_to_text(pb, ctx, &k, &v));
        assert_eq!(
            s,
            "\n  gen 3 oldest_gen 2 data_type user\n  journal_seq_nonempty 0\n  need_discard         0\n  need_inc_gen         0\n  dirty_sectors        100\n  cached_sectors       0\n  stripe_refcount      0\n  io_time[READ]        7\n  io_time[WRITE]       9\n  bp_start          8\n"
        );
        // garbage never panics
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 255) as u8).collect();
            for t in [KeyType::Alloc, KeyType::AllocV2, KeyType::AllocV3] {
                let k = key(t, Bpos::MIN);
                let _ = show(|pb, ctx| alloc_old_to_text(pb, ctx, &k, &junk));
            }
        }
    }

    #[test]
    fn backpointer() {
        let mut v = [0u8; 32];
        v[0] = 4; // alloc
        v[1] = 1;
        v[2] = 3; // btree
        v[8..12].copy_from_slice(&128u32.to_le_bytes());
        v[12..32].copy_from_slice(&[0xff; 20]);
        let k = key(KeyType::Backpointer, Bpos::new(0, 411041792, 0));
        let s = show(|pb, _| backpointer_fields_to_text(pb, &k, &v, Some(128), 16));
        assert_eq!(
            s,
            "bucket=0:49:0 btree=alloc level=1 data_type=btree suboffset=0 len=128 gen=0 pos=SPOS_MAX"
        );

        let mut v = [0u8; 32];
        v[0] = 0;
        v[2] = 4;
        v[4] = 1; // reconcile phys
        v[8..12].copy_from_slice(&1u32.to_le_bytes());
        v[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        v[16..24].copy_from_slice(&1u64.to_le_bytes());
        v[24..32].copy_from_slice(&2147483665u64.to_le_bytes());
        let k = key(KeyType::Backpointer, Bpos::new(0, 695926784, 0));
        let s = show(|pb, _| backpointer_fields_to_text(pb, &k, &v, Some(128), 16));
        assert_eq!(
            s,
            "bucket=0:82:123 btree=extents level=0 data_type=user suboffset=0 len=1 gen=0 pos=2147483665:1:U32_MAX phys"
        );
        let s = show(|pb, _| backpointer_fields_to_text(pb, &k, &v, None, 16));
        assert!(s.starts_with("sector=0:10619 btree=extents"));
        // absurd shifts and sizes never panic
        for sh in [0, 31, 32, 63, 64, 200] {
            let _ = show(|pb, _| backpointer_fields_to_text(pb, &k, &v, Some(0), sh));
            let _ = show(|pb, _| backpointer_fields_to_text(pb, &k, &v[..3], Some(1), sh));
        }
    }

    #[test]
    fn accounting() {
        let cases: [(u64, &[i64], &str); 10] = [
            (0, &[621], "nr_inodes  621"),
            (144960716812582912, &[2048], "replicas btree: 1/1 [0] 2048"),
            (216172782113783808, &[-1, 0, 0], "dev_data_type dev=0 data_type=free -1 0 0"),
            (
                432345564210790400,
                &[537, 29904, 1660],
                "snapshot id=4294967295 btree=extents 537 29904 1660",
            ),
            (432627039204278272, &[384, 3, 1], "btree btree=inodes 384 3 1"),
            (579275504218013696, &[8, 994, 994], "inum  8 994 994"),
            (648518346341351424, &[1, 0], "reconcile_work replicas 1 0"),
            (649925721224904704, &[1, 0], "reconcile_work high_priority 1 0"),
            (0xff00_0000_0000_0000, &[1], "unknown type 255 1"),
            (0x0200_2001_0000_0000, &[], "replicas free: 1/32 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]"),
        ];
        for (inode, ctrs, want) in cases {
            let v: Vec<u8> = ctrs.iter().flat_map(|c| c.to_le_bytes()).collect();
            let k = key(KeyType::Accounting, Bpos::new(inode, 0, 0));
            assert_eq!(show(|pb, ctx| accounting_to_text(pb, ctx, &k, &v)), want);
        }
    }

    #[test]
    fn gens_lru_cookie() {
        let mut v = [0u8; 256];
        v[2] = 1;
        v[255] = 7;
        let k = key(KeyType::BucketGens, Bpos::MIN);
        let s = show(|pb, ctx| bucket_gens_to_text(pb, ctx, &k, &v));
        assert!(s.starts_with("0 0 1 0 ") && s.ends_with(" 0 7"));
        assert_eq!(s.split(' ').count(), 256);
        let k = key(KeyType::Lru, Bpos::MIN);
        assert_eq!(
            show(|pb, ctx| lru_to_text(pb, ctx, &k, &5u64.to_le_bytes())),
            "idx 5"
        );
        assert_eq!(
            show(|pb, ctx| cookie_to_text(pb, ctx, &k, &9u64.to_le_bytes())),
            "9"
        );
        assert_eq!(show(|pb, ctx| cookie_to_text(pb, ctx, &k, &[])), "0");
    }
}
