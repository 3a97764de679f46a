// SPDX-License-Identifier: GPL-2.0
//! Text forms of data values: extents and btree pointers (their entry lists),
//! reservations, reflink pointers and indirect extents, inline data, stripes and
//! error keys; and [`val_to_text`], the printer for every key type no other
//! subsystem owns.
//!
//! Mirrors upstream's `bch2_bkey_ptrs_to_text()` and friends, including the printbuf
//! calls (`prt_newline`, indent guards), so multi-line values come out identical.

use core::fmt::Write;

use super::super::bkey::Bkey;
use super::super::ids::{KeyType, COMPRESSION_TYPE_NAMES, CSUM_TYPE_NAMES};
use super::super::text::{Pb, TextCtx};
use super::extents_format::{
    entries_of, entry_type, BtreePtrV2, Crc, DecodedPtrs, Entries, Entry, Ptr, RebalanceOpts,
    Reconcile, ReflinkP, Reservation, Stripe, ENTRY_TYPE_NAMES, EXTENT_FLAG_NAMES,
    INDIRECT_INLINE_DATA_OFFSET, RECONCILE_OPT_NAMES, REFLINK_V_ENTRIES,
};

/// `bch_csum_opt` names (`BCH_CSUM_OPTS()`).
pub const CSUM_OPT_NAMES: [&str; 4] = ["none", "crc32c", "crc64", "xxhash"];
/// `bch_compression_opt` names (`BCH_COMPRESSION_OPTS()`).
pub const COMPRESSION_OPT_NAMES: [&str; 4] = ["none", "lz4", "gzip", "zstd"];
/// `KEY_TYPE_ERRORS()`: why an extent became an error key.
pub const KEY_TYPE_ERROR_REASONS: [&str; 19] = [
    "unknown",
    "device_removed",
    "double_allocation",
    "no_valid_pointers_repair",
    "decompress_exceeded_max_encoded_extent",
    "decompress_lz4_old",
    "decompress_lz4",
    "decompress_gzip",
    "decompress_gzip_size_mismatch",
    "decompress_zstd_src_len_bad",
    "decompress_zstd_size_mismatch",
    "decompress_zstd_corruption_detected",
    "decompress_zstd_checksum_wrong",
    "decompress_zstd_prefix_unknown",
    "decompress_zstd_src_size_wrong",
    "decompress_zstd_dst_size_too_small",
    "decompress_zstd_memory_allocation",
    "decompress_zstd_unknown",
    "decompress_unknown",
];

// ---------------------------------------------------------------------------
// Helpers shared with the other subsystems' printers.

/// `prt_str_opt_boundscheck`: `names[idx]`, or `(unknown <what> <idx>)`.
pub fn prt_opt(pb: &mut Pb<'_, '_>, names: &[&str], what: &str, idx: u64) {
    match usize::try_from(idx).ok().and_then(|i| names.get(i)) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown {} {})", what, idx);
        }
    }
}

/// `prt_bitflags`: the names of the set bits, comma separated, stopping at the
/// first set bit without a name.
pub fn prt_bitflags(pb: &mut Pb<'_, '_>, names: &[&str], flags: u64) {
    let mut f = flags;
    let mut first = true;
    while f != 0 {
        let bit = f.trailing_zeros() as usize;
        let Some(n) = names.get(bit) else { break };
        if !first {
            pb.str(",");
        }
        first = false;
        pb.str(n);
        f &= !(1u64 << bit);
    }
}

/// Upstream's `bch2_val_to_text` guard: a value shorter than the type's
/// `min_val_size` prints `(value too small: N < M)` instead. Returns whether it did.
pub fn val_too_small(pb: &mut Pb<'_, '_>, v: &[u8], min: usize) -> bool {
    if v.len() < min {
        let _ = write!(pb, "(value too small: {} < {})", v.len(), min);
        true
    } else {
        false
    }
}

/// Prints `b` as `prt_printf("%s")` would: indent-aware processing of `\n`, `\t`,
/// `\r` (as [`Printbuf::str`](super::super::printbuf::Printbuf::str)), for bytes that
/// need not be UTF-8.
pub fn prt_bytes_indented(pb: &mut Pb<'_, '_>, b: &[u8]) {
    if let Ok(s) = core::str::from_utf8(b) {
        pb.str(s);
        return;
    }
    if pb.indent() == 0 {
        pb.raw(b);
        return;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(c, b'\n' | b'\t' | b'\r') {
            pb.raw(b.get(start..i).unwrap_or(&[]));
            match c {
                b'\n' => pb.newline(),
                b'\t' => pb.tab(),
                _ => pb.tab_rjust(),
            }
            start = i + 1;
        }
    }
    pb.raw(b.get(start..).unwrap_or(&[]));
}

/// Bytes as contiguous lowercase hex (`prt_hex_bytes`, `%*phN`).
pub fn prt_hex_bytes(pb: &mut Pb<'_, '_>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        pb.raw(&[HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]);
    }
}

/// `bch2_compression_opt_to_text`: `type[:level]`.
pub fn compression_opt_to_text(pb: &mut Pb<'_, '_>, v: u8) {
    let ty = v & 15;
    let level = v >> 4;
    match COMPRESSION_OPT_NAMES.get(ty as usize) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown compression opt {})", ty);
        }
    }
    if level != 0 {
        let _ = write!(pb, ":{}", level);
    }
}

/// `bch2_target_to_text`, as far as it can be told without the superblock's disk
/// groups: `none`, `/dev/NAME` for a member, `invalid device N`, or the group
/// number for a label.
pub fn target_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, v: u32) {
    if v == 0 {
        pb.str("none");
    } else if v < 257 {
        let dev = v - 1;
        match ctx.devs.dev_name(dev) {
            Some(n) => {
                let _ = write!(pb, "/dev/{}", n);
            }
            None => {
                let _ = write!(pb, "invalid device {}", dev);
            }
        }
    } else {
        let _ = write!(pb, "invalid label {}", v - 257);
    }
}

// ---------------------------------------------------------------------------
// Extent entries.

/// `bch2_extent_ptr_to_text`: `  NAME dev:bucket:offset gen G` for a member device
/// (name right-justified in 6), `dev:sector gen G` otherwise, then ` d=N`,
/// ` cached`, ` unwritten`.
pub fn extent_ptr_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, p: &Ptr) {
    let dev = p.dev as u32;
    let member = ctx.devs.dev_name(dev).and_then(|name| {
        let bs = ctx.devs.bucket_size(dev).filter(|&b| b != 0)?;
        Some((name, bs))
    });
    match member {
        Some((name, bs)) => {
            let bs = bs as u64;
            let _ = write!(
                pb,
                "{:>6} {}:{}:{} gen {}",
                name,
                p.dev,
                p.offset / bs,
                p.offset % bs,
                p.gen
            );
            let d = ctx.devs.durability(dev);
            if d != 1 {
                let _ = write!(pb, " d={}", d);
            }
            if let Some(stale) = ctx.devs.ptr_stale(dev, p.offset, p.gen) {
                if stale != 0 {
                    let _ = write!(pb, " stale={}", stale);
                }
            }
        }
        None => {
            let _ = write!(pb, "{}:{} gen {}", p.dev, p.offset, p.gen);
        }
    }
    if p.cached {
        pb.str(" cached");
    }
    if p.unwritten {
        pb.str(" unwritten");
    }
}

/// `bch2_extent_crc_unpacked_to_text`.
pub fn crc_to_text(pb: &mut Pb<'_, '_>, c: &Crc) {
    let _ = write!(
        pb,
        "c_size {} size {} offset {} nonce {} csum ",
        c.compressed_size, c.uncompressed_size, c.offset, c.nonce
    );
    prt_opt(pb, &CSUM_TYPE_NAMES, "csum_type", c.csum_type as u64);
    let _ = write!(pb, " {:x}:{:x} ", c.csum_hi, c.csum_lo);
    pb.str(" compress ");
    prt_opt(
        pb,
        &COMPRESSION_TYPE_NAMES,
        "compression_type",
        c.compression_type as u64,
    );
}

fn opts_tail_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, o: &RebalanceOpts) {
    use super::extents_format::from_inode as fi;
    let inode = |pb: &mut Pb<'_, '_>, bit: u8| {
        if o.from_inode & bit != 0 {
            pb.str(" (inode)");
        }
    };
    let _ = write!(pb, "replicas={}", o.data_replicas);
    inode(pb, fi::DATA_REPLICAS);
    pb.str(" checksum=");
    prt_opt(pb, &CSUM_OPT_NAMES, "csum_opt", o.data_checksum as u64);
    inode(pb, fi::DATA_CHECKSUM);
    if o.background_compression != 0 || o.from_inode & fi::BACKGROUND_COMPRESSION != 0 {
        pb.str(" background_compression=");
        compression_opt_to_text(pb, o.background_compression);
        inode(pb, fi::BACKGROUND_COMPRESSION);
    }
    if o.background_target != 0 || o.from_inode & fi::BACKGROUND_TARGET != 0 {
        pb.str(" background_target=");
        target_to_text(pb, ctx, o.background_target);
        inode(pb, fi::BACKGROUND_TARGET);
    }
    if o.promote_target != 0 || o.from_inode & fi::PROMOTE_TARGET != 0 {
        pb.str(" promote_target=");
        target_to_text(pb, ctx, o.promote_target);
        inode(pb, fi::PROMOTE_TARGET);
    }
    if o.erasure_code || o.from_inode & fi::ERASURE_CODE != 0 {
        let _ = write!(pb, " ec={}", o.erasure_code as u8);
        inode(pb, fi::ERASURE_CODE);
    }
}

/// `bch2_extent_reconcile_to_text`.
pub fn reconcile_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, r: &Reconcile) {
    pb.str("need_rb=");
    prt_bitflags(pb, &RECONCILE_OPT_NAMES, r.need_rb as u64);
    if r.hipri {
        pb.str(" hipri");
    }
    if r.pending {
        pb.str(" pending");
    }
    pb.str(" ");
    opts_tail_to_text(pb, ctx, &r.opts);
}

/// Durability of the pointers of an entry list, as the reference prints it: the sum
/// over dirty pointers to member devices of the member's durability (the stripe's
/// redundancy + 1 for an erasure coded pointer). Pointers to devices that are not
/// members (and `BCH_SB_MEMBER_INVALID` placeholders) count 0.
pub fn durability(ctx: &TextCtx<'_>, entries: &[u8], key_size: u32) -> u32 {
    let mut d = 0u32;
    for p in DecodedPtrs::new(entries, key_size) {
        if ctx.devs.dev_name(p.ptr.dev as u32).is_none() || p.ptr.cached {
            continue;
        }
        let x = match p.ec {
            Some(ec) => ec.redundancy as u32 + 1,
            None => ctx.devs.durability(p.ptr.dev as u32),
        };
        d = d.saturating_add(x);
    }
    d
}

/// `bch2_bkey_ptrs_to_text`: `durability: N ` then one line per entry.
pub fn ptrs_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, entries: &[u8], key_size: u32) {
    let _ = write!(pb, "durability: {} ", durability(ctx, entries, key_size));

    for e in Entries::new(entries, key_size) {
        pb.newline();
        let ty = match e {
            Entry::Ptr(_) => Some(entry_type::PTR),
            Entry::Crc { ty, .. } => Some(ty),
            Entry::StripePtr(_) => Some(entry_type::STRIPE_PTR),
            Entry::RebalanceV1(_) => Some(entry_type::REBALANCE_V1),
            Entry::Flags(_) => Some(entry_type::FLAGS),
            Entry::Reconcile(_) => Some(entry_type::RECONCILE),
            Entry::ReconcileBp(_) => Some(entry_type::RECONCILE_BP),
            Entry::Unknown(_) => None,
        };
        if let Some(n) = ty.and_then(|t| ENTRY_TYPE_NAMES.get(t as usize)) {
            pb.str(n);
            pb.str(": ");
        }
        match e {
            Entry::Ptr(p) => extent_ptr_to_text(pb, ctx, &p),
            Entry::Crc { crc, .. } => crc_to_text(pb, &crc),
            Entry::StripePtr(s) => {
                let _ = write!(pb, "idx {} block {}", s.idx, s.block);
            }
            Entry::RebalanceV1(o) => opts_tail_to_text(pb, ctx, &o),
            Entry::Reconcile(r) => reconcile_to_text(pb, ctx, &r),
            Entry::Flags(f) => prt_bitflags(pb, &EXTENT_FLAG_NAMES, f),
            Entry::ReconcileBp(idx) => {
                let _ = write!(pb, "idx {}", idx);
            }
            Entry::Unknown(w) => {
                let _ = write!(pb, "(unknown extent entry {:016x})", w);
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Per-type printers.

/// `bch2_btree_ptr_v2_to_text`.
pub fn btree_ptr_v2_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 40) {
        return;
    }
    let h = BtreePtrV2::read(v);
    let _ = write!(
        pb,
        "\nseq {:x} written {} min_key {}",
        h.seq,
        h.sectors_written,
        if h.range_updated() { "R " } else { "" }
    );
    let _ = write!(pb, "{} ", h.min_key);
    ptrs_to_text(pb, ctx, entries_of(k.typ, v).unwrap_or(&[]), k.size);
}

/// `bch2_reservation_to_text`.
pub fn reservation_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    if val_too_small(pb, v, 8) {
        return;
    }
    let r = Reservation::read(v);
    let _ = write!(pb, "generation {} replicas {}", r.generation, r.nr_replicas);
}

/// `bch2_reflink_p_to_text`.
pub fn reflink_p_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    if val_too_small(pb, v, 16) {
        return;
    }
    let p = ReflinkP::read(v);
    let _ = write!(
        pb,
        "idx {} front_pad {} back_pad {}",
        p.idx, p.front_pad, p.back_pad
    );
    if p.error {
        pb.str(" error");
    }
    if p.may_update_options {
        pb.str(" may_update_opts");
    }
}

/// `bch2_reflink_v_to_text`.
pub fn reflink_v_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 8) {
        return;
    }
    let _ = write!(pb, "refcount: {} ", super::extents_format::refcount(v));
    ptrs_to_text(pb, ctx, v.get(REFLINK_V_ENTRIES..).unwrap_or(&[]), k.size);
}

/// `key_type_inline_data_to_text`.
pub fn inline_data_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    let _ = write!(pb, "datalen {}: ", v.len());
    prt_hex_bytes(pb, v.get(..v.len().min(32)).unwrap_or(&[]));
}

/// `bch2_indirect_inline_data_to_text`.
pub fn indirect_inline_data_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    if val_too_small(pb, v, 8) {
        return;
    }
    let d = v.get(INDIRECT_INLINE_DATA_OFFSET..).unwrap_or(&[]);
    let _ = write!(
        pb,
        "refcount {} datalen {}: ",
        super::extents_format::refcount(v),
        d.len()
    );
    prt_hex_bytes(pb, d.get(..d.len().min(32)).unwrap_or(&[]));
}

/// `bch2_stripe_to_text`.
pub fn stripe_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, v: &[u8]) {
    if val_too_small(pb, v, 8) {
        return;
    }
    let s = Stripe::read(v);
    let nr_data = s.nr_data();
    let _ = write!(
        pb,
        "algo {} sectors {} blocks {}:{} csum ",
        s.algorithm, s.sectors, nr_data, s.nr_redundant
    );
    prt_opt(pb, &CSUM_TYPE_NAMES, "csum_type", s.csum_type as u64);
    pb.str(" gran ");
    if s.csum_granularity_bits < 64 {
        let _ = write!(pb, "{}", 1u64 << s.csum_granularity_bits);
    } else {
        let _ = write!(pb, "(invalid shift {})", s.csum_granularity_bits);
    }
    if s.disk_label != 0 {
        pb.str(" label");
        let _ = write!(pb, "invalid label {}", s.disk_label - 1);
    }
    if s.needs_reconcile {
        pb.str(" needs_reconcile");
    }

    pb.indent_add(2);
    for i in 0..s.nr_blocks as usize {
        let Some(p) = Stripe::ptr(v, i) else { break };
        pb.newline();
        extent_ptr_to_text(pb, ctx, &p);
        let i = i as u32;
        if i < nr_data {
            if let Some(off) = s.blockcount_offset(i) {
                if off < v.len() as u64 {
                    let _ = write!(pb, "#{}", le16_at(v, off));
                }
            }
        }
    }
    pb.indent_sub(2);
}

fn le16_at(v: &[u8], off: u64) -> u16 {
    usize::try_from(off)
        .map(|o| super::super::bytes::le16z(v, o))
        .unwrap_or(0)
}

/// `key_type_error_to_text`.
pub fn error_to_text(pb: &mut Pb<'_, '_>, v: &[u8]) {
    let err = super::super::bytes::u8z(v, 0);
    prt_opt(
        pb,
        &KEY_TYPE_ERROR_REASONS,
        "key_type_error_reason",
        err as u64,
    );
}

/// `bch2_val_to_text` for every type not owned by alloc/, fs/ or snapshots/: the
/// data types above; types with no value printer (deleted, whiteout, hash_whiteout,
/// set, extent_whiteout) and unknown types print nothing, as upstream.
pub fn val_to_text(pb: &mut Pb<'_, '_>, ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    let t = k.typ;
    let is = |x: KeyType| t == x as u8;
    if is(KeyType::Extent) || is(KeyType::BtreePtr) {
        ptrs_to_text(pb, ctx, v, k.size);
    } else if is(KeyType::BtreePtrV2) {
        btree_ptr_v2_to_text(pb, ctx, k, v);
    } else if is(KeyType::Reservation) {
        reservation_to_text(pb, v);
    } else if is(KeyType::ReflinkP) {
        reflink_p_to_text(pb, v);
    } else if is(KeyType::ReflinkV) {
        reflink_v_to_text(pb, ctx, k, v);
    } else if is(KeyType::InlineData) {
        inline_data_to_text(pb, v);
    } else if is(KeyType::IndirectInlineData) {
        indirect_inline_data_to_text(pb, v);
    } else if is(KeyType::Stripe) {
        stripe_to_text(pb, ctx, v);
    } else if is(KeyType::Error) {
        error_to_text(pb, v);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::printbuf::{Printbuf, TextOut};
    use super::super::super::text::DevNames;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    struct Devs;
    impl DevNames for Devs {
        fn dev_name(&self, dev: u32) -> Option<&str> {
            match dev {
                0 => Some("img"),
                1 => Some("dev1"),
                _ => None,
            }
        }
        fn bucket_size(&self, _dev: u32) -> Option<u32> {
            Some(128)
        }
    }

    /// The whole key the way the reference prints it: header, indent 2, ": ",
    /// value, indent back.
    fn key_text(k: &Bkey, v: &[u8]) -> String {
        let mut o = Vec::<u8>::new();
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut o);
            let ctx = TextCtx { devs: &Devs };
            pb.str("K");
            pb.indent_add(2);
            pb.str(": ");
            val_to_text(&mut pb, &ctx, k, v);
            pb.indent_sub(2);
        }
        String::from_utf8(o).unwrap()
    }

    fn words(w: &[u64]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn extent_crc32_ptr() {
        let crc: u64 = 0b10 | (127 << 2) | (127 << 9) | (5 << 24) | (0xa55e8b81u64 << 32);
        let ptr: u64 = 1 | ((62 * 128) << 4);
        let k = Bkey {
            typ: KeyType::Extent as u8,
            size: 128,
            ..Default::default()
        };
        assert_eq!(
            key_text(&k, &words(&[crc, ptr])),
            "K  : durability: 1 \n  crc32: c_size 128 size 128 offset 0 nonce 0 csum crc32c \
             0:a55e8b81  compress none\n  ptr:    img 0:62:0 gen 0"
        );
    }

    #[test]
    fn btree_ptr_v2_two_devs() {
        let mut v = words(&[0, 0x95610215f884bb21, 66, 0, 0]);
        v.extend(words(&[
            1 | ((50 * 128) << 4),
            1 | ((59 * 128) << 4) | (1 << 48),
        ]));
        let k = Bkey {
            typ: KeyType::BtreePtrV2 as u8,
            ..Default::default()
        };
        assert_eq!(
            key_text(&k, &v),
            "K  : \n  seq 95610215f884bb21 written 66 min_key POS_MIN durability: 2 \n  \
             ptr:    img 0:50:0 gen 0\n  ptr:   dev1 1:59:0 gen 0"
        );
    }

    #[test]
    fn invalid_dev_and_reconcile() {
        // reconcile: need_rb=data_replicas hipri replicas=2 checksum=crc32c
        let rec: u64 = (1 << 7) | (1 << 15) | (1 << 17) | (2 << 28) | (1 << 31);
        let ptr0: u64 = 1 | ((82 * 128 + 123) << 4);
        let ptr_inval: u64 = 1 | (255 << 48);
        let k = Bkey {
            typ: KeyType::Extent as u8,
            size: 1,
            ..Default::default()
        };
        assert_eq!(
            key_text(&k, &words(&[ptr0, rec, ptr_inval])),
            "K  : durability: 1 \n  ptr:    img 0:82:123 gen 0\n  reconcile: \
             need_rb=data_replicas hipri replicas=2 checksum=crc32c\n  ptr: 255:0 gen 0"
        );
    }

    #[test]
    fn unknown_entry_and_inline() {
        let k = Bkey {
            typ: KeyType::Extent as u8,
            size: 1,
            ..Default::default()
        };
        assert_eq!(
            key_text(&k, &words(&[1 << 20])),
            "K  : durability: 0 \n  (unknown extent entry 0000000000100000)"
        );
        let k = Bkey {
            typ: KeyType::InlineData as u8,
            size: 1,
            ..Default::default()
        };
        assert_eq!(
            key_text(&k, b"1\n\0\0\0\0\0\0"),
            "K  : datalen 8: 310a000000000000"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut v = [0u8; 96];
        for seed in 0..3000u64 {
            super::super::super::bytes::fill_pseudo_random(&mut v, seed);
            for typ in 0..45u8 {
                for len in [0usize, 3, 8, 16, 41, 96] {
                    let k = Bkey {
                        typ,
                        size: seed as u32,
                        ..Default::default()
                    };
                    let _ = key_text(&k, &v[..len]);
                }
            }
        }
    }
}
