// SPDX-License-Identifier: GPL-2.0
//! Fixture access for tests: images unpack once into the cache; tests that need
//! ../shared/fixtures skip (with a message) where it is absent.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bcachefs_core::alloc::format::{AllocV4, DATA_USER};
use bcachefs_core::bkey::Bkey;
use bcachefs_core::bpos::Bpos;
use bcachefs_core::ids::{self, KeyType};
use bcachefs_rs::fs::Fs;

/// The fixtures upstream's tools read without errors (each has a manifest).
pub const UNDAMAGED: [&str; 10] = [
    "basic",
    "churn",
    "csum-crc64",
    "csum-none",
    "csum-xxhash",
    "lz4",
    "old-version",
    "replicas2",
    "unclean",
    "zstd",
];

/// The unpacked device images of fixture `fx`, in device order.
pub fn files(fx: &str) -> Option<Vec<String>> {
    Some(if fx == "replicas2" {
        vec![
            image(fx, "dev0")?.display().to_string(),
            image(fx, "dev1")?.display().to_string(),
        ]
    } else {
        vec![image(fx, "img")?.display().to_string()]
    })
}

/// Fixture `fx` opened.
pub fn open(fx: &str) -> Option<Fs> {
    Some(Fs::open(&files(fx)?).expect("open"))
}

pub fn fixtures() -> Option<PathBuf> {
    let p = std::env::var_os("FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

/// The unpacked image `file` (img, dev0, dev1) of fixture `fx`.
pub fn image(fx: &str, file: &str) -> Option<PathBuf> {
    let f = fixtures()?;
    let cache = std::env::var_os("BCACHEFS_RS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bcachefs-rs"))
        .join("fixtures")
        .join(fx);
    let out = cache.join(file);
    static UNPACK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = UNPACK.lock().unwrap();
    if !out.exists() {
        std::fs::create_dir_all(&cache).unwrap();
        let src = match file {
            "img" => f.join(fx).join("image.img.zst"),
            d => f.join(fx).join(format!("image{}.img.zst", &d[3..])),
        };
        let tmp = cache.join(format!("{}.tmp{}", file, std::process::id()));
        let st = std::process::Command::new("zstd")
            .args(["-q", "-d", "-f"])
            .arg(&src)
            .arg("-o")
            .arg(&tmp)
            .status()
            .expect("zstd");
        assert!(st.success(), "unpacking {}", src.display());
        std::fs::rename(&tmp, &out).unwrap();
    }
    Some(out)
}

/// [`edited_key`] on `basic`.
pub fn edited_basic_key(
    name: &str,
    btree: u32,
    pick: &dyn Fn(&Bkey, &[u8]) -> bool,
    edit: &dyn Fn(&mut [u8]),
) -> Option<(Bpos, PathBuf)> {
    edited_key("basic", name, btree, pick, edit)
}

/// Copies fixture `fx` (one device) and changes, in place in its leaf, the value
/// of the first key of `btree` that `pick` accepts and that the journal does not
/// overlay, as [`bcachefs_rs::edit::edit_leaf_key`] does. Returns the key's
/// position and the copy's path.
pub fn edited_key(
    fx: &str,
    name: &str,
    btree: u32,
    pick: &dyn Fn(&Bkey, &[u8]) -> bool,
    edit: &dyn Fn(&mut [u8]),
) -> Option<(Bpos, PathBuf)> {
    let src = image(fx, "img")?;
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{}", name, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("img");
    std::fs::copy(&src, &dst).unwrap();
    let p = bcachefs_rs::edit::edit_leaf_key(&[dst.display().to_string()], btree, pick, edit)
        .unwrap_or_else(|e| panic!("editing {}: {}", fx, e));
    Some((p, dst))
}

/// [`edited_basic_key`] on the alloc key of a user bucket; returns the bucket.
pub fn edited_basic(name: &str, edit: fn(&mut AllocV4)) -> Option<(u64, PathBuf)> {
    let (p, dst) = edited_basic_key(
        name,
        ids::btree::ALLOC,
        &|k, v| k.typ == KeyType::AllocV4 as u8 && AllocV4::read(v).data_type == DATA_USER,
        &|v| {
            let mut a = AllocV4::read(v);
            edit(&mut a);
            a.write(v);
        },
    )?;
    Some((p.offset, dst))
}

/// The tool under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bcachefs-rs")
}

/// Upstream's tool binds /run/bcachefs/PID.sock and leaves it behind when it ends
/// on an error; once PIDs wrap (pid_max is 32768 here), a later run given the same
/// PID fails to bind and says so on every line. Sockets of processes that no
/// longer exist are removed before each use.
fn clear_stale_sockets() {
    let Ok(dir) = std::fs::read_dir("/run/bcachefs") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_suffix(".sock")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Upstream's tool, or `None` (with a SKIP message) where it is absent.
pub fn reference() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/bcachefs");
    if p.exists() {
        clear_stale_sockets();
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

/// Runs `cmd`: its exit code, and its standard output then its standard error.
pub fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// A copy of fixture `fx` in its own scratch directory, device files named as the
/// fixture names them.
pub fn copy_fixture(fx: &str, tag: &str) -> Option<Vec<PathBuf>> {
    let files = files(fx)?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{}-{}",
        tag,
        fx,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Some(
        files
            .iter()
            .map(|f| {
                let dst = dir.join(Path::new(f).file_name().unwrap());
                let st = Command::new("cp")
                    .args(["--sparse=always"])
                    .arg(f)
                    .arg(&dst)
                    .status()
                    .unwrap();
                assert!(st.success());
                let mut perm = std::fs::metadata(&dst).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                std::fs::set_permissions(&dst, perm).unwrap();
                dst
            })
            .collect(),
    )
}
