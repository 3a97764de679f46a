// SPDX-License-Identifier: GPL-2.0
//! `bcachefs-rs`: the userspace twin of the bcachefs-rs kernel module, on the same
//! format core. Its output matches the reference `bcachefs` tool's.

use bcachefs_rs::{check, edit, fs, fsck, list, mutate, tree};

use std::io::Write;
use std::process::ExitCode;

use bcachefs_core::bpos::Bpos;
use bcachefs_core::ids;

const USAGE: &str = "usage: bcachefs-rs <command> [options] DEVICE...
commands:
  list [-m keys|nodes|nodes-ondisk] [-b BTREE]... [-l LEVEL] [-s POS] [-e POS] DEVICE...
       (-m formats: not implemented yet)
  show-super DEVICE
  list-journal DEVICE...
  manifest DEVICE...   every path: type, mode, size, nlink, sha256 or symlink target
  check [-v] DEVICE... gc checks (topology, buckets, gens, accounting, btree bitmap):
                       one finding per line; exit 0 clean, 1 findings, 2 unreadable
  fsck [-n|-y] [-v] DEVICE...
                       the same checks; -n (the default) never writes, -y repairs
                       what it can (one line per finding, ', fixing' when repaired);
                       exit 0 clean, 1 errors fixed, 4 errors left, 8 operational error
  damage KIND IMAGE... a test tool, not an upstream command: damages the filesystem
                       on IMAGE... in place (nodes resealed on every replica, so
                       only the damage is wrong):
                         acct-dev    first dev_data_type accounting key: counter +3
                         acct-btree  first btree accounting key: counter +3
                         bucket-gen  a user-data bucket's gen in its bucket_gens key +1
                         bitmap      member 0's btree bitmap cleared in every sb copy
                                     of every device
                         oldest-gen  the next free bucket's oldest_gen one behind its
                                     gen (not a finding: a gens pass advances it)
                         alloc-dirty a user bucket's alloc key: dirty_sectors +8
                         alloc-type  a user bucket's alloc key: data_type cached
                         ptr-gen     the first extent's first dirty pointer: gen +1,
                                     past its bucket's
                         alloc-free  a bucket in use made free, the freespace extent
                                     above it grown over it
                         bset-csum   the first extents leaf's first bset checksum
                                     flipped on every replica
                         bset-csum-full  the same for the leaf whose live keys
                                     take the most room (of any btree)
                         drop-leaf   the middle extents leaf's pointer deleted from
                                     the root, the leaf left on disk (a gap a
                                     device scan fills)
  mutate [-k KIND] SEED IMAGE... | mutate --locate IMAGE...
                       a test tool, not an upstream command: seeded metadata damage
                       for the reliability campaign (scripts/campaign.sh), in place;
                       the same seed on the same images gives the same bytes. KIND
                       (default: picked by the seed) is one of:
{MUTATIONS}
                       --locate lists where nodes, journal entries and data
                       extents sit (device, sector, sectors), for IO error rules";

fn parse_pos(s: &str) -> Result<Bpos, String> {
    match s {
        "POS_MIN" => return Ok(Bpos::MIN),
        "POS_MAX" => return Ok(Bpos::POS_MAX),
        "SPOS_MAX" => return Ok(Bpos::MAX),
        _ => {}
    }
    let num = |x: &str| -> Result<u64, String> {
        match x {
            "U64_MAX" => Ok(u64::MAX),
            "U32_MAX" => Ok(u32::MAX as u64),
            _ => x.parse::<u64>().map_err(|_| format!("bad position {}", s)),
        }
    };
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [i, o] => Ok(Bpos::new(num(i)?, num(o)?, 0)),
        [i, o, sn] => {
            let sn = num(sn)?;
            Ok(Bpos::new(
                num(i)?,
                num(o)?,
                u32::try_from(sn).map_err(|_| format!("bad position {}", s))?,
            ))
        }
        _ => Err(format!("bad position {}", s)),
    }
}

fn cmd_list(args: &[String]) -> Result<u32, String> {
    let mut o = list::Opts {
        mode: list::Mode::Keys,
        btrees: vec![],
        level: 0,
        start: Bpos::MIN,
        end: Bpos::MAX,
    };
    let mut devs = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let val = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", a))
        };
        match a.as_str() {
            "-m" | "--mode" => {
                o.mode = match val(i)?.as_str() {
                    "keys" => list::Mode::Keys,
                    "nodes" => list::Mode::Nodes,
                    "nodes-ondisk" | "nodes_ondisk" => list::Mode::NodesOndisk,
                    // Its figures (bset aux-tree floats, sibling merge sizes) come from
                    // upstream's in-memory node structures, not reimplemented yet.
                    "formats" => return Err("list -m formats is not implemented yet".into()),
                    m => return Err(format!("unknown mode {}", m)),
                };
                i += 1;
            }
            "-b" | "--btree" => {
                let v = val(i)?;
                o.btrees
                    .push(ids::btree_by_name(&v).ok_or_else(|| format!("unknown btree {}", v))?);
                i += 1;
            }
            "-l" | "--level" => {
                o.level = val(i)?.parse().map_err(|_| "bad level".to_string())?;
                i += 1;
            }
            "-s" | "--start" => {
                o.start = parse_pos(&val(i)?)?;
                i += 1;
            }
            "-e" | "--end" => {
                o.end = parse_pos(&val(i)?)?;
                i += 1;
            }
            s if s.starts_with('-') => return Err(format!("unknown option {}", s)),
            _ => devs.push(a.clone()),
        }
        i += 1;
    }
    if devs.is_empty() {
        return Err("no devices given".into());
    }
    if o.btrees.is_empty() {
        o.btrees.push(ids::btree::EXTENTS);
    }
    let f = fs::Fs::open(&devs)?;
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    let errors = list::run(&f, &o, &mut lock)?;
    lock.flush().map_err(|e| e.to_string())?;
    Ok(errors)
}

fn cmd_show_super(args: &[String]) -> Result<u32, String> {
    let dev = args.first().ok_or("no device given")?;
    let file = std::fs::File::open(dev).map_err(|e| format!("{}: {}", dev, e))?;
    let b = fs::read_sb(&file, dev)?;
    let sb = bcachefs_core::sb::Sb { b: &b };
    let mut out = Vec::<u8>::new();
    {
        let mut pb: bcachefs_core::text::Pb = bcachefs_core::printbuf::Printbuf::new(
            &mut out as &mut dyn bcachefs_core::printbuf::TextOut,
        );
        bcachefs_core::sb::text::sb_to_text(&mut pb, &sb);
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| e.to_string())?;
    Ok(0)
}

fn cmd_list_journal(args: &[String]) -> Result<u32, String> {
    let devs: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if devs.is_empty() {
        return Err("no devices given".into());
    }
    let f = fs::Fs::open(&devs)?;
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    list::list_journal(&f, &mut lock)?;
    lock.flush().map_err(|e| e.to_string())?;
    Ok(0)
}

fn cmd_manifest(args: &[String]) -> Result<u32, String> {
    if args.is_empty() {
        return Err("no devices given".into());
    }
    let f = fs::Fs::open(args)?;
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    let n = tree::manifest(&f, &mut lock)?;
    lock.flush().map_err(|e| e.to_string())?;
    Ok(n)
}

fn cmd_check(args: &[String]) -> Result<u32, String> {
    let verbose = args.iter().any(|a| a == "-v");
    let devs: Vec<String> = args.iter().filter(|a| *a != "-v").cloned().collect();
    if devs.is_empty() {
        return Err("no devices given".into());
    }
    let f = fs::Fs::open(&devs)?;
    let t = std::time::Instant::now();
    let r = check::check(&f);
    let el = t.elapsed();
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    for l in &r.lines {
        writeln!(lock, "{}", l).map_err(|e| e.to_string())?;
    }
    if verbose {
        let s = &r.stats;
        writeln!(
            lock,
            "gc pass: {:.3} s, {} nodes, {} keys, {} buckets, {} findings, {} buckets whose oldest_gen would advance",
            el.as_secs_f64(),
            s.nodes,
            s.keys,
            s.buckets,
            s.total(),
            s.oldest_gen_advance
        )
        .map_err(|e| e.to_string())?;
        for (k, n) in bcachefs_core::gc::finding::KINDS.iter().zip(s.findings) {
            if n > 0 {
                writeln!(lock, "  {}: {}", k.name(), n).map_err(|e| e.to_string())?;
            }
        }
    }
    lock.flush().map_err(|e| e.to_string())?;
    // Findings are the result here, not an error count for stderr.
    Ok(u32::from(!r.lines.is_empty()) * CHECK_FINDINGS)
}

/// `cmd_check`'s "there were findings" result: exit 1 without the error-count line.
const CHECK_FINDINGS: u32 = u32::MAX;

fn cmd_fsck(args: &[String]) -> ExitCode {
    let mut fix = false;
    let mut verbose = false;
    let mut devs = Vec::new();
    for a in args {
        match a.as_str() {
            "-y" => fix = true,
            "-n" => fix = false,
            "-v" => verbose = true,
            s if s.starts_with('-') => {
                eprintln!("bcachefs-rs fsck: unknown option {}", s);
                return ExitCode::from(fsck::OPERATIONAL);
            }
            _ => devs.push(a.clone()),
        }
    }
    if devs.is_empty() {
        eprintln!("bcachefs-rs fsck: no devices given");
        return ExitCode::from(fsck::OPERATIONAL);
    }
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    let code = fsck::run(&devs, fix, verbose, &mut lock);
    let _ = lock.flush();
    ExitCode::from(code)
}

fn cmd_damage(args: &[String]) -> Result<u32, String> {
    let [kind, imgs @ ..] = args else {
        return Err(format!(
            "usage: damage KIND IMAGE... (KIND: {})",
            edit::KINDS.join(", ")
        ));
    };
    if imgs.is_empty() {
        return Err(format!(
            "usage: damage KIND IMAGE... (KIND: {})",
            edit::KINDS.join(", ")
        ));
    }
    let what = edit::damage(kind, imgs)?;
    println!("{}: {}", imgs.join(":"), what);
    Ok(0)
}

fn cmd_mutate(args: &[String]) -> Result<u32, String> {
    if let [l, imgs @ ..] = args {
        if l == "--locate" && !imgs.is_empty() {
            for line in mutate::locate(imgs)? {
                println!("{}", line);
            }
            return Ok(0);
        }
    }
    let (kind, rest) = match args {
        [k, kind, rest @ ..] if k == "-k" => (Some(kind.as_str()), rest),
        rest => (None, rest),
    };
    let usage = || "usage: mutate [-k KIND] SEED IMAGE...".to_string();
    let [seed, imgs @ ..] = rest else {
        return Err(usage());
    };
    if imgs.is_empty() {
        return Err(usage());
    }
    let seed = seed.parse::<u64>().map_err(|_| usage())?;
    println!("{}", mutate::mutate(imgs, seed, kind)?);
    Ok(0)
}

fn usage() -> String {
    let kinds: Vec<String> = mutate::MUTATIONS
        .iter()
        .map(|(k, what)| format!("                         {:<11} {}", k, what))
        .collect();
    USAGE.replace("{MUTATIONS}", &kinds.join("\n"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(|s| s.as_str()) {
        Some("list") => cmd_list(&args[1..]),
        Some("show-super") => cmd_show_super(&args[1..]),
        Some("list-journal") | Some("list_journal") => cmd_list_journal(&args[1..]),
        Some("manifest") => cmd_manifest(&args[1..]),
        Some("check") => cmd_check(&args[1..]),
        Some("fsck") => return cmd_fsck(&args[1..]),
        Some("damage") => cmd_damage(&args[1..]),
        Some("mutate") => cmd_mutate(&args[1..]),
        Some("-h") | Some("--help") | None => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(c) => Err(format!("unknown command {}\n{}", c, usage())),
    };
    match r {
        Ok(0) => ExitCode::SUCCESS,
        Ok(CHECK_FINDINGS) => ExitCode::from(1),
        Ok(n) => {
            eprintln!("{} error(s)", n);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("bcachefs-rs: {}", e);
            ExitCode::from(2)
        }
    }
}
