// SPDX-License-Identifier: GPL-2.0
//! `show-super` text: the superblock header, its options, the `ext` field and every
//! member device, as the reference `bcachefs show-super` prints them.
//!
//! Also the two value formats the reference uses here and elsewhere: human readable
//! units ([`prt_human_readable_u64`]) and `ctime`-style dates ([`prt_datetime`],
//! always UTC).

use core::fmt::Write;

use super::super::bytes::{bits, le64z, Uuid};
use super::super::ids::{BTREE_NAMES, DATA_TYPE_NAMES};
use super::super::text::Pb;
use super::format::*;
use super::opts::{Opt, OptType, COMPRESSION_OPTS, OPT_HUMAN_READABLE, SB_OPTS};
use super::{Member, Sb};

/// The tabstop of `show-super`'s `name:` / value lines.
const TABSTOP: usize = 44;

/// `bch2_prt_human_readable_u64`: up to three significant digits with a binary unit
/// suffix (`512`, `64.0k`, `8.01k`, `128M`); the last division's remainder is rounded
/// to nearest.
pub fn prt_human_readable_u64(pb: &mut Pb<'_, '_>, v: u64) {
    const UNITS: [char; 9] = ['?', 'k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
    const BASE: u64 = 1024;
    let (mut v, mut u, mut r) = (v, 0usize, 0u64);
    while u + 1 < UNITS.len() && v >= BASE {
        r = v % BASE;
        v /= BASE;
        u += 1;
    }
    if u == 0 {
        let _ = write!(pb, "{}", v);
        return;
    }
    let prec = |v: u64| -> usize {
        if v < 10 {
            2
        } else if v < 100 {
            1
        } else {
            0
        }
    };
    let mut p = prec(v);
    let scale: u64 = match p {
        2 => 100,
        1 => 10,
        _ => 1,
    };
    let mut frac = (r * scale + BASE / 2) / BASE;
    if frac >= scale {
        frac = 0;
        v += 1;
        if v >= BASE && u + 1 < UNITS.len() {
            v = 1;
            u += 1;
        }
        p = prec(v);
    }
    let unit = UNITS.get(u).copied().unwrap_or('?');
    if p > 0 {
        let _ = write!(pb, "{}.{:0w$}{}", v, frac, unit, w = p);
    } else {
        let _ = write!(pb, "{}{}", v, unit);
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down UTC time of `secs` since the epoch:
/// `(year, month 0-11, day 1-31, weekday 0-6 from Sunday, hour, minute, second)`.
fn civil(secs: i64) -> (i64, usize, i64, usize, i64, i64, i64) {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // 1970-01-01 was a Thursday.
    let wday = (days + 4).rem_euclid(7) as usize;
    // Days to civil date (proleptic Gregorian), with March-based years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        y,
        (m - 1) as usize,
        d,
        wday,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

/// `bch2_prt_datetime` (userspace: `ctime_r`, here in UTC):
/// `Sat Nov 21 09:04:23 2026`.
pub fn prt_datetime(pb: &mut Pb<'_, '_>, secs: i64) {
    let (y, mon, d, wday, h, mi, s) = civil(secs);
    // ctime fails when the year does not fit tm_year (an int).
    if y.checked_sub(1900)
        .and_then(|t| i32::try_from(t).ok())
        .is_none()
    {
        let _ = write!(pb, "{}", secs);
        return;
    }
    let _ = write!(
        pb,
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        WEEKDAYS.get(wday).copied().unwrap_or("???"),
        MONTHS.get(mon).copied().unwrap_or("???"),
        d,
        h,
        mi,
        s,
        y
    );
}

/// `name` followed by a `'\t'`, as in upstream's `prt_printf(out, "name\t")`.
fn label(pb: &mut Pb<'_, '_>, name: &str) {
    pb.str(name);
    pb.str("\t");
}

/// `prt_bitflags`: the names of the set bits, comma separated, stopping at the first
/// bit without a name.
fn prt_bitflags(pb: &mut Pb<'_, '_>, names: &[&str], flags: u64) {
    let mut first = true;
    for (bit, name) in names.iter().enumerate().take(64) {
        if flags & (1u64 << bit) != 0 {
            if !first {
                pb.str(",");
            }
            first = false;
            pb.str(name);
        }
    }
}

/// Prints bytes that are text on disk (labels, device names), as upstream's `%.*s`:
/// up to the first NUL.
fn prt_bytes(pb: &mut Pb<'_, '_>, b: &[u8]) {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let mut rest = b.get(..n).unwrap_or(&[]);
    while !rest.is_empty() {
        match core::str::from_utf8(rest) {
            Ok(s) => {
                pb.str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                if let Ok(s) = core::str::from_utf8(good) {
                    pb.str(s);
                }
                let skip = e.error_len().unwrap_or(bad.len()).min(bad.len());
                let (raw, tail) = bad.split_at(skip);
                pb.raw(raw);
                rest = tail;
            }
        }
    }
}

/// `bch2_version_to_text`: `name (major.minor)`.
pub fn version_to_text(pb: &mut Pb<'_, '_>, v: u16) {
    let name = version_name(v).unwrap_or("(unknown version)");
    let _ = write!(pb, "{} ({}.{})", name, v >> 10, v & 0x3ff);
}

/// `bch2_sb_dev_has_data`: bitmask of the data types the replicas field (v1, or else
/// v0) lists on device `dev`.
pub fn dev_has_data(sb: &Sb<'_>, dev: u8) -> u32 {
    let (f, hdr) = match sb.field(FIELD_REPLICAS) {
        Some(f) => (f, 3),
        None => match sb.field(FIELD_REPLICAS_V0) {
            Some(f) => (f, 2),
            None => return 0,
        },
    };
    let mut has = 0u32;
    let mut off = 8usize;
    while let Some(&data_type) = f.get(off) {
        if data_type == 0 {
            break;
        }
        let nr = f.get(off + 1).copied().unwrap_or(0) as usize;
        let devs = f.get(off + hdr..).unwrap_or(&[]);
        let devs = devs.get(..nr).unwrap_or(devs);
        if data_type < 32 && devs.contains(&dev) {
            has |= 1 << data_type;
        }
        off = off.saturating_add(hdr + nr);
    }
    has
}

/// `bch2_disk_path_to_text_sb`: a disk group's label path, `parent.child`.
fn disk_path_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>, group: u64) {
    let groups = sb.field(FIELD_DISK_GROUPS).unwrap_or(&[]);
    let nr = groups.len().saturating_sub(8) / DISK_GROUP_BYTES;
    let entry = |i: u64| -> Option<&[u8]> {
        let i = usize::try_from(i).ok().filter(|&i| i < nr)?;
        let start = 8 + i * DISK_GROUP_BYTES;
        groups.get(start..start + DISK_GROUP_BYTES)
    };
    let mut path = [0u64; 32];
    let mut n = 0;
    let mut v = group;
    loop {
        let g = match entry(v) {
            Some(g) if n < path.len() => g,
            _ => {
                let _ = write!(pb, "invalid label {}", v);
                return;
            }
        };
        let flags = le64z(g, 32);
        if bits(flags, 0, 1) != 0 {
            let _ = write!(pb, "invalid label {}", v);
            return;
        }
        match path.get_mut(n) {
            Some(p) => *p = v,
            None => break,
        }
        n += 1;
        let parent = bits(flags, 6, 24);
        if parent == 0 {
            break;
        }
        v = parent - 1;
    }
    while n > 0 {
        n -= 1;
        if let Some(g) = path.get(n).and_then(|&v| entry(v)) {
            prt_bytes(pb, g.get(..32).unwrap_or(&[]));
        }
        if n > 0 {
            pb.str(".");
        }
    }
}

/// `bch2_target_to_text_sb`.
fn target_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>, v: u64) {
    const DEV_START: u64 = 1;
    const GROUP_START: u64 = 256 + 1;
    if v >= GROUP_START {
        disk_path_to_text(pb, sb, v - GROUP_START);
    } else if v >= DEV_START {
        let dev = v - DEV_START;
        let m = sb.member(dev as usize).filter(|m| m.alive());
        match m {
            Some(m) if dev < sb.nr_devices() as u64 => {
                let _ = write!(pb, "Device {} ({})", m.uuid(), dev);
            }
            _ => {
                let _ = write!(pb, "Bad device {}", dev);
            }
        }
    } else {
        pb.str("none");
    }
}

/// `bch2_opt_to_text` with `OPT_SHOW_FULL_LIST`, for a value read from `sb`.
pub fn opt_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>, opt: &Opt, v: u64) {
    match opt.typ {
        OptType::Bool | OptType::Uint => {
            if opt.flags & OPT_HUMAN_READABLE != 0 {
                prt_human_readable_u64(pb, v);
            } else {
                let _ = write!(pb, "{}", v as i64);
            }
        }
        OptType::Str(choices) => {
            if v >= choices.len() as u64 {
                let _ = write!(pb, "(invalid option {})", v as i64);
            } else {
                for (i, c) in choices.iter().enumerate() {
                    if i as u64 == v {
                        let _ = write!(pb, "[{}] ", c);
                    } else {
                        let _ = write!(pb, "{} ", c);
                    }
                }
            }
        }
        OptType::Compression => {
            let ty = (v & 15) as usize;
            let level = (v >> 4) & 15;
            match COMPRESSION_OPTS.get(ty) {
                Some(n) => pb.str(n),
                None => {
                    let _ = write!(pb, "(unknown compression opt {})", ty);
                }
            }
            if level != 0 {
                let _ = write!(pb, ":{}", level);
            }
        }
        OptType::Target => target_to_text(pb, sb, v),
    }
}

/// `bch2_sb_ext_to_text`.
fn ext_to_text(pb: &mut Pb<'_, '_>, f: &[u8]) {
    label(pb, "Recovery passes required:");
    let stable = le64z(f, EXT_RECOVERY_PASSES_REQUIRED);
    let mut first = true;
    for (id, name) in RECOVERY_PASSES.iter() {
        if *id < 64 && stable & (1u64 << id) != 0 {
            if !first {
                pb.str(",");
            }
            first = false;
            pb.str(name);
        }
    }
    pb.newline();

    // Upstream prints error names; this table is not carried here, so set bits print
    // as their ids.
    label(pb, "Errors to silently fix:");
    let mut first = true;
    for word in 0..8usize {
        let w = le64z(f, EXT_ERRORS_SILENT + 8 * word);
        for bit in 0..64usize {
            if w & (1u64 << bit) != 0 {
                if !first {
                    pb.str(",");
                }
                first = false;
                let _ = write!(pb, "(unknown error {})", word * 64 + bit);
            }
        }
    }
    pb.newline();

    label(pb, "Btrees with missing data:");
    prt_bitflags(pb, &BTREE_NAMES, le64z(f, EXT_BTREES_LOST_DATA));
    pb.newline();

    if f.len() >= EXT_BTREES_LOST_DATA_EVER + 8 {
        label(pb, "Btrees that have ever lost data:");
        prt_bitflags(pb, &BTREE_NAMES, le64z(f, EXT_BTREES_LOST_DATA_EVER));
        pb.newline();
    }
    if f.len() >= EXT_BTREES_CLEAN + 8 {
        label(pb, "Btrees validated clean:");
        prt_bitflags(pb, &BTREE_NAMES, le64z(f, EXT_BTREES_CLEAN));
        pb.newline();
    }
}

/// `bch2_sb_errors_to_text` (the v1 error log), with error ids for names.
fn errors_to_text(pb: &mut Pb<'_, '_>, f: &[u8]) {
    pb.tabstop_push(16);
    errors_to_text_entries(pb, f);
}

fn errors_to_text_entries(pb: &mut Pb<'_, '_>, f: &[u8]) {
    let nr = f.len().saturating_sub(8) / 16;
    for i in 0..nr {
        let v = le64z(f, 8 + 16 * i);
        let t = le64z(f, 16 + 16 * i);
        let _ = write!(pb, "(unknown error {})", bits(v, 0, 16));
        pb.tab();
        let _ = write!(pb, "{}", bits(v, 16, 64));
        pb.tab();
        prt_datetime(pb, t as i64);
        pb.newline();
    }
}

/// `bch2_sb_field_to_text` for the fields `show-super` prints by default. Returns
/// whether the field pushed a second tabstop.
fn field_to_text(pb: &mut Pb<'_, '_>, t: u32, f: &[u8], tabstops: usize) -> bool {
    match FIELD_NAMES.get(t as usize) {
        Some(n) => pb.str(n),
        None => {
            let _ = write!(pb, "(unknown field {})", t);
        }
    }
    let _ = write!(pb, " (size {}):", f.len());
    pb.newline();
    match t {
        FIELD_EXT => ext_to_text(pb, f),
        FIELD_ERRORS if tabstops <= 1 => {
            errors_to_text(pb, f);
            return true;
        }
        FIELD_ERRORS => errors_to_text_entries(pb, f),
        _ => {}
    }
    false
}

/// `bch2_member_to_text`.
pub fn member_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>, m: &Member<'_>, idx: u8) {
    let bucket_size = m.bucket_size() as u64;

    label(pb, "Label:");
    if m.group() != 0 {
        disk_path_to_text(pb, sb, m.group() as u64 - 1);
    } else {
        pb.str("(none)");
    }
    pb.newline();

    let fd = m.failure_domain();
    if !fd.is_empty() {
        label(pb, "Failure domain:");
        prt_bytes(pb, fd);
        pb.newline();
    }

    label(pb, "UUID:");
    let _ = write!(pb, "{}", m.uuid());
    pb.newline();

    label(pb, "Size:");
    prt_human_readable_u64(pb, m.nbuckets().wrapping_mul(bucket_size) << 9);
    pb.newline();

    for (i, n) in ["read", "write", "checksum"].iter().enumerate() {
        let _ = write!(pb, "{} errors:", n);
        pb.str("\t");
        let _ = write!(pb, "{}", m.errors(i));
        pb.newline();
    }
    for (i, n) in ["seqread", "seqwrite", "randread", "randwrite"]
        .iter()
        .enumerate()
    {
        let _ = write!(pb, "{} iops:", n);
        pb.str("\t");
        let _ = write!(pb, "{}", m.iops(i));
        pb.newline();
    }

    label(pb, "Bucket size:");
    prt_human_readable_u64(pb, bucket_size << 9);
    pb.newline();

    label(pb, "First bucket:");
    let _ = write!(pb, "{}", m.first_bucket());
    pb.newline();
    label(pb, "Buckets:");
    let _ = write!(pb, "{}", m.nbuckets());
    pb.newline();

    label(pb, "Last mount:");
    if m.last_mount() != 0 {
        prt_datetime(pb, m.last_mount() as i64);
    } else {
        pb.str("(never)");
    }
    pb.newline();

    label(pb, "Last superblock write:");
    let _ = write!(pb, "{}", m.seq());
    pb.newline();

    let state = MEMBER_STATE_NAMES
        .get(m.state() as usize)
        .copied()
        .unwrap_or("unknown");
    label(pb, "State:");
    let _ = write!(pb, "{}", state);
    pb.newline();

    label(pb, "Data allowed:");
    if m.data_allowed() != 0 {
        prt_bitflags(pb, &DATA_TYPE_NAMES, m.data_allowed() as u64);
    } else {
        pb.str("(none)");
    }
    pb.newline();

    label(pb, "Has data:");
    let has = dev_has_data(sb, idx);
    if has != 0 {
        prt_bitflags(pb, &DATA_TYPE_NAMES, has as u64);
    } else {
        pb.str("(none)");
    }
    pb.newline();

    label(pb, "Rotational:");
    let _ = write!(pb, "{}", m.rotational() as u8);
    pb.newline();

    label(pb, "Btree allocated bitmap blocksize:");
    let shift = m.btree_bitmap_shift();
    if shift < 64 {
        prt_human_readable_u64(pb, 1u64 << shift);
    } else {
        let _ = write!(pb, "(invalid shift {})", shift);
    }
    pb.newline();

    label(pb, "Btree allocated bitmap:");
    let _ = write!(pb, "{:064b}", m.btree_allocated_bitmap());
    pb.newline();

    label(pb, "Durability:");
    let _ = write!(pb, "{}", m.durability());
    pb.newline();
    label(pb, "Discard:");
    let _ = write!(pb, "{}", m.discard() as u8);
    pb.newline();
    label(pb, "Freespace initialized:");
    let _ = write!(pb, "{}", m.freespace_initialized() as u8);
    pb.newline();
    label(pb, "Resize on mount:");
    let _ = write!(pb, "{}", m.resize_on_mount() as u8);
    pb.newline();

    label(pb, "Last device name:");
    prt_bytes(pb, m.device_name());
    pb.newline();
    label(pb, "Last device model:");
    prt_bytes(pb, m.device_model());
    pb.newline();
    label(pb, "Last device serial:");
    prt_bytes(pb, m.device_serial());
    pb.newline();

    if m.flush_errors() != 0 {
        label(pb, "Flush errors:");
        let _ = write!(pb, "{}", m.flush_errors());
        pb.newline();
    }
}

/// `bcachefs show-super` text of a superblock: `bch2_sb_to_text` with the default
/// fields (`ext`, `errors`), then every live member (`Device N:`); the devices are not
/// looked for, so each prints as `(not found)`.
pub fn sb_to_text(pb: &mut Pb<'_, '_>, sb: &Sb<'_>) {
    pb.tabstop_push(TABSTOP);

    label(pb, "External UUID:");
    let _ = write!(pb, "{}", sb.user_uuid());
    pb.newline();
    label(pb, "Internal UUID:");
    let _ = write!(pb, "{}", sb.uuid());
    pb.newline();
    let magic = Uuid(super::super::bytes::arr(sb.b, SB_MAGIC).unwrap_or_default());
    label(pb, "Magic number:");
    let _ = write!(pb, "{}", magic);
    pb.newline();
    label(pb, "Device index:");
    let _ = write!(pb, "{}", sb.dev_idx());
    pb.newline();

    label(pb, "Label:");
    let sb_label = sb.label();
    if sb_label.first().copied().unwrap_or(0) == 0 {
        pb.str("(none)");
    } else {
        prt_bytes(pb, sb_label);
    }
    pb.newline();

    let versions = [
        ("Version:", sb.version()),
        (
            "Incompatible features allowed:",
            sb.version_incompat_allowed(),
        ),
        ("Incompatible features in use:", sb.version_incompat()),
        ("Version upgrade complete:", sb.version_upgrade_complete()),
        ("Oldest version on disk:", sb.version_min()),
    ];
    for (name, v) in versions {
        label(pb, name);
        version_to_text(pb, v);
        pb.newline();
    }

    label(pb, "Created:");
    if sb.time_base_lo() != 0 {
        prt_datetime(pb, (sb.time_base_lo() / 1_000_000_000) as i64);
    } else {
        pb.str("(not set)");
    }
    pb.newline();

    label(pb, "Sequence number:");
    let _ = write!(pb, "{}", sb.seq());
    pb.newline();

    label(pb, "Time of last write:");
    prt_datetime(pb, sb.write_time() as i64);
    pb.newline();

    label(pb, "Superblock size:");
    prt_human_readable_u64(pb, sb.b.len() as u64);
    pb.str("/");
    prt_human_readable_u64(
        pb,
        512u64.wrapping_shl(sb.layout().sb_max_size_bits() as u32),
    );
    pb.newline();

    label(pb, "Clean:");
    let _ = write!(pb, "{}", sb.clean() as u8);
    pb.newline();
    if sb.dirents_sanitized() {
        label(pb, "Dirents sanitized:");
        pb.str("1");
        pb.newline();
    }

    let nr_alive = (0..sb.nr_devices() as usize)
        .filter(|&i| sb.member(i).is_some_and(|m| m.alive()))
        .count();
    label(pb, "Devices:");
    let _ = write!(pb, "{}", nr_alive);
    pb.newline();

    label(pb, "Sections:");
    let mut have = 0u64;
    for (t, _) in sb.fields() {
        // Upstream shifts a C int: the count wraps at 32 (x86), and bit 31 sign-extends
        // into bits no field is named for.
        have |= 1u64 << (t & 31);
    }
    prt_bitflags(pb, &FIELD_NAMES, have);
    pb.newline();

    label(pb, "Features:");
    prt_bitflags(pb, &FEATURE_NAMES, sb.features(0));
    pb.newline();

    label(pb, "Compat features:");
    prt_bitflags(pb, &COMPAT_NAMES, sb.compat(0));
    pb.newline();

    pb.newline();
    pb.str("Options:");
    pb.newline();
    pb.indent_add(2);
    for opt in SB_OPTS.iter() {
        let _ = write!(pb, "{}:", opt.name);
        pb.str("\t");
        opt_to_text(pb, sb, opt, opt.from_sb(sb));
        pb.newline();
    }
    pb.indent_sub(2);

    let mut tabstops = 1;
    for (t, f) in sb.fields() {
        if t == FIELD_EXT || t == FIELD_ERRORS {
            pb.newline();
            if field_to_text(pb, t, f, tabstops) {
                tabstops += 1;
            }
        }
    }

    for i in 0..sb.nr_devices() {
        let m = match sb.member(i as usize) {
            Some(m) if m.alive() => m,
            _ => continue,
        };
        // With one tabstop the second tab has none left and stays a literal tab.
        let _ = write!(pb, "Device {}:\t(not found)\t", i);
        pb.newline();
        pb.indent_add(2);
        member_to_text(pb, sb, &m, i);
        pb.indent_sub(2);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::printbuf::{Printbuf, TextOut};
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn with(f: impl FnOnce(&mut Pb<'_, '_>)) -> String {
        let mut v = Vec::<u8>::new();
        {
            let mut pb: Pb = Printbuf::new(&mut v as &mut dyn TextOut);
            f(&mut pb);
        }
        String::from_utf8_lossy(&v).into_owned()
    }

    fn hr(v: u64) -> String {
        with(|pb| prt_human_readable_u64(pb, v))
    }

    fn date(s: i64) -> String {
        with(|pb| prt_datetime(pb, s))
    }

    #[test]
    fn human_readable() {
        assert_eq!(hr(0), "0");
        assert_eq!(hr(512), "512");
        assert_eq!(hr(1023), "1023");
        assert_eq!(hr(1024), "1.00k");
        assert_eq!(hr(8200), "8.01k");
        assert_eq!(hr(8232), "8.04k");
        assert_eq!(hr(8528), "8.33k");
        assert_eq!(hr(7680), "7.50k");
        assert_eq!(hr(4096), "4.00k");
        assert_eq!(hr(16384), "16.0k");
        assert_eq!(hr(65536), "64.0k");
        assert_eq!(hr(131072), "128k");
        assert_eq!(hr(262144), "256k");
        assert_eq!(hr(1 << 20), "1.00M");
        assert_eq!(hr(2 << 20), "2.00M");
        assert_eq!(hr(128 << 20), "128M");
        assert_eq!(hr(256 << 20), "256M");
        // Rounding carries into the next digit and the next unit.
        assert_eq!(hr(1024 * 10 - 1), "10.0k");
        assert_eq!(hr(1024 * 100 - 1), "100k");
        assert_eq!(hr((1 << 20) - 1), "1.00M");
        assert_eq!(hr(u64::MAX), "16.0E");
    }

    #[test]
    fn datetime() {
        assert_eq!(date(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(date(1_795_251_863), "Sat Nov 21 09:04:23 2026");
        assert_eq!(date(1_795_251_864), "Sat Nov 21 09:04:24 2026");
        assert_eq!(date(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(date(-1), "Wed Dec 31 23:59:59 1969");
        assert_eq!(date(253_402_300_799), "Fri Dec 31 23:59:59 9999");
        // Years past tm_year's range cannot print as a date.
        assert_eq!(date(i64::MAX), "9223372036854775807");
        assert_eq!(date(i64::MIN), "-9223372036854775808");
    }

    #[test]
    fn bitflags() {
        let s = with(|pb| prt_bitflags(pb, &["a", "b", "c"], 0b1101));
        assert_eq!(s, "a,c");
    }

    #[test]
    fn garbage_superblock_does_not_panic() {
        // A header with fields that run anywhere: text must not panic.
        let mut b = std::vec![0xffu8; SB_FIELDS + 64];
        b[SB_FIELDS..SB_FIELDS + 4].copy_from_slice(&3u32.to_le_bytes());
        b[SB_FIELDS + 4..SB_FIELDS + 8].copy_from_slice(&FIELD_EXT.to_le_bytes());
        let sb = Sb { b: &b };
        let s = with(|pb| sb_to_text(pb, &sb));
        assert!(s.starts_with("External UUID:"));
    }
}
