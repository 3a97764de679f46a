// SPDX-License-Identifier: GPL-2.0
//! Text forms of filesystem values: inodes, dirents, xattrs, quotas, damage.
//!
//! Mirrors upstream's `bch2_inode_to_text()` etc., including where they print with
//! `prt_newline` and `"\n"` in formats, so indented multi-line output is identical.

use core::fmt::Write;

use super::super::bkey::Bkey;
use super::super::data::text::{prt_bitflags, prt_bytes_indented, prt_opt, val_too_small};
use super::super::ids::KeyType;
use super::super::sb::text::prt_datetime;
use super::super::text::{Pb, TextCtx};
use super::damage_format;
use super::dirent_format::{d_type_str, Dirent, Target};
use super::inode_format::{self, InodeUnpacked, FIELDS_V3, INODE_FLAG_NAMES, STR_HASH_NAMES};
use super::quota_format::{limits, QUOTA_COUNTER_NAMES};
use super::xattr_format::{acl_entries, acl_tag, index, type_prefix, Xattr};

pub use super::logged_ops::logged_op_to_text;

/// `__bch2_inode_unpacked_to_text`: a newline, then one `name=value` line per field.
pub fn inode_unpacked_to_text(pb: &mut Pb<'_, '_>, u: &InodeUnpacked) {
    pb.newline();
    let ty = u.d_type() as usize;
    // bch2_d_types[] has gaps; printf("%s", NULL) prints "(null)"
    let tname = super::dirent_format::D_TYPE_NAMES
        .get(ty)
        .copied()
        .flatten()
        .unwrap_or("(null)");
    let _ = writeln!(pb, "mode={:o} ({})", u.mode, tname);
    pb.str("flags=");
    prt_bitflags(pb, &INODE_FLAG_NAMES, (u.flags & ((1 << 20) - 1)) as u64);
    let _ = writeln!(pb, "({:x})", u.flags);
    // Numbers print without core::fmt: this is most of `list -b inodes`.
    pb.field_u64("journal_seq", u.journal_seq);
    pb.str("hash_seed=");
    pb.hex(u.hash_seed);
    pb.str("\nhash_type=");
    prt_opt(pb, &STR_HASH_NAMES, "str_hash_type", u.str_hash() as u64);
    pb.newline();
    pb.field_u64("bi_size", u.size);
    pb.field_u64("bi_sectors", u.sectors);
    pb.field_u64("bi_version", u.version);
    for ((name, _), v) in FIELDS_V3.iter().zip(u.fields.iter()) {
        pb.field_u64(name, *v);
    }
}

/// `bch2_inode_to_text` (inode, inode_v2, inode_v3) and
/// `bch2_inode_generation_to_text`.
pub fn inode_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, k: &Bkey, v: &[u8]) {
    let min = if k.typ == KeyType::InodeV3 as u8 {
        48
    } else if k.typ == KeyType::InodeV2 as u8 {
        32
    } else if k.typ == KeyType::Inode as u8 {
        16
    } else {
        8
    };
    if val_too_small(pb, v, min) {
        return;
    }
    match inode_format::unpack(k, v) {
        Some(u) => inode_unpacked_to_text(pb, &u),
        None => {
            let _ = write!(pb, "generation: {}", inode_format::generation(v));
        }
    }
}

/// `bch2_dirent_to_text`.
pub fn dirent_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 16) {
        return;
    }
    let d = Dirent::new(v);
    match d.name() {
        Some(n) => pb.raw(n),
        None => {
            pb.str("(invalid, dirent name overruns value)");
            return;
        }
    }
    if d.casefold() {
        pb.str(" (casefold ");
        match d.cf_name() {
            Some(n) => pb.raw(n),
            None => pb.str("(invalid, lookup name overruns value)"),
        }
        pb.str(")");
    }
    pb.str(" ->");
    match d.target() {
        Target::Inode(i) => {
            let _ = write!(pb, " {}", i);
        }
        Target::Subvol { child, parent } => {
            let _ = write!(pb, " {} -> {}", parent, child);
        }
    }
    let _ = write!(pb, " type {}", d_type_str(d.d_type()));
}

/// `%.*s`: `b` up to its first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => b.get(..n).unwrap_or(&[]),
        None => b,
    }
}

/// `bch2_xattr_to_text`: `prefix` `name:value`, then the entries of an ACL.
pub fn xattr_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 8) {
        return;
    }
    let x = Xattr::new(v);
    match type_prefix(x.x_type()) {
        Some(Some(p)) => pb.str(p),
        Some(None) => {
            let _ = write!(pb, "(type {})", x.x_type());
        }
        None => {
            let _ = write!(pb, "(unknown type {})", x.x_type());
        }
    }
    prt_bytes_indented(pb, cstr(x.name()));
    pb.str(":");
    prt_bytes_indented(pb, cstr(x.value()));

    if x.x_type() == index::POSIX_ACL_ACCESS || x.x_type() == index::POSIX_ACL_DEFAULT {
        pb.str(" ");
        for e in acl_entries(x.value()) {
            let name = match e.tag {
                acl_tag::USER_OBJ => "user_obj",
                acl_tag::USER => "user",
                acl_tag::GROUP_OBJ => "group_obj",
                acl_tag::GROUP => "group",
                acl_tag::MASK => "mask",
                _ => "other",
            };
            pb.str(name);
            match (e.tag, e.id) {
                (acl_tag::USER, Some(id)) => {
                    let _ = write!(pb, " uid {}", id);
                }
                (acl_tag::GROUP, Some(id)) => {
                    let _ = write!(pb, " gid {}", id);
                }
                _ => {}
            }
            let _ = write!(pb, " {:o}", e.perm);
            if !e.last {
                pb.str(" ");
            }
        }
    }
}

/// `bch2_quota_to_text`.
pub fn quota_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 32) {
        return;
    }
    for (i, name) in QUOTA_COUNTER_NAMES.iter().enumerate() {
        let (hard, soft) = limits(v, i);
        let _ = write!(pb, "{} hardlimit {} softlimit {}", name, hard, soft);
    }
}

/// Names of `enum bch_sb_error_id`, when known. (The table lives with the
/// superblock errors section; until it exists ids print as unknown.)
fn sb_error_name(_id: u16) -> Option<&'static str> {
    None
}

/// `bch2_damage_to_text`: one line per error entry.
pub fn damage_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    if val_too_small(pb, v, 16) {
        return;
    }
    for (i, e) in damage_format::entries(v).enumerate() {
        if i != 0 {
            pb.newline();
        }
        match sb_error_name(e.id) {
            Some(n) => pb.str(n),
            None => {
                let _ = write!(pb, "(unknown error {})", e.id);
            }
        }
        let _ = write!(pb, " nr {}", e.nr);
        if e.nr >= damage_format::NR_MAX {
            pb.str("+");
        }
        pb.str(" first ");
        prt_datetime(pb, e.first.min(1 << 40) as i64);
        pb.str(" last ");
        prt_datetime(pb, e.last.min(1 << 40) as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::printbuf::{Printbuf, TextOut};
    use super::super::super::text::{NoDevs, TextCtx};
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    type Printer = fn(&mut Pb<'_, '_>, &TextCtx<'_>, &Bkey, &[u8]);

    /// The key as the reference prints it: indent 2, ": ", value, indent back.
    fn text(f: Printer, k: &Bkey, v: &[u8]) -> String {
        let mut o = Vec::<u8>::new();
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut o);
            let ctx = TextCtx { devs: &NoDevs };
            pb.str("K");
            pb.indent_add(2);
            pb.str(": ");
            f(&mut pb, &ctx, k, v);
            pb.indent_sub(2);
        }
        String::from_utf8_lossy(&o).into_owned()
    }

    #[test]
    fn dirent() {
        let mut v = Vec::new();
        v.extend_from_slice(&2147483649u64.to_le_bytes());
        v.push(4);
        v.extend_from_slice(b"docs");
        v.resize(16, 0);
        let k = Bkey {
            typ: KeyType::Dirent as u8,
            ..Default::default()
        };
        assert_eq!(
            text(dirent_to_text, &k, &v),
            "K  : docs -> 2147483649 type dir"
        );
    }

    #[test]
    fn inode_v3_lines() {
        let mut v = std::vec![0u8; 48];
        let flags: u64 = (1 << 7) | (3 << 20) | (6 << 31) | (0o100644u64 << 36);
        v[16..24].copy_from_slice(&flags.to_le_bytes());
        v.resize(56, 0);
        let k = Bkey {
            typ: KeyType::InodeV3 as u8,
            ..Default::default()
        };
        let t = text(inode_to_text, &k, &v);
        assert!(t.starts_with(
            "K  : \n  mode=100644 (reg)\n  flags=unlinked(300080)\n  journal_seq=0\n"
        ));
        assert!(t.ends_with("  bi_unused_ec_max_data_blocks=0\n"), "{t}");
    }

    #[test]
    fn xattr_and_quota() {
        // KEY_TYPE_XATTR_INDEX_USER is 0 (upstream's reference tool lists a
        // type-0 xattr as `user.`; type 1 is an access ACL).
        let mut v = std::vec![0u8, 3, 2, 0];
        v.extend_from_slice(b"foohi");
        v.resize(16, 0);
        let k = Bkey {
            typ: KeyType::Xattr as u8,
            ..Default::default()
        };
        assert_eq!(text(xattr_to_text, &k, &v), "K  : user.foo:hi");
        v[0] = 3;
        assert_eq!(text(xattr_to_text, &k, &v), "K  : trusted.foo:hi");
        let k = Bkey {
            typ: KeyType::Quota as u8,
            ..Default::default()
        };
        assert_eq!(
            text(quota_to_text, &k, &[0u8; 32]),
            "K  : space hardlimit 0 softlimit 0inodes hardlimit 0 softlimit 0"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let printers: [(u8, Printer); 7] = [
            (KeyType::Inode as u8, inode_to_text),
            (KeyType::InodeV2 as u8, inode_to_text),
            (KeyType::InodeV3 as u8, inode_to_text),
            (KeyType::InodeGeneration as u8, inode_to_text),
            (KeyType::Dirent as u8, dirent_to_text),
            (KeyType::Xattr as u8, xattr_to_text),
            (KeyType::Damage as u8, damage_to_text),
        ];
        let mut v = [0u8; 96];
        for seed in 0..2000u64 {
            super::super::super::bytes::fill_pseudo_random(&mut v, seed);
            if seed % 3 == 0 {
                v[0] = 2; // acl xattrs
                v[4..8].copy_from_slice(&[1, 0, 0, 0]);
            }
            for (typ, f) in printers {
                for len in [0usize, 7, 8, 16, 33, 48, 64, 96] {
                    let k = Bkey {
                        typ,
                        ..Default::default()
                    };
                    let _ = text(f, &k, &v[..len]);
                    let _ = text(quota_to_text, &k, &v[..len]);
                }
            }
        }
    }
}
