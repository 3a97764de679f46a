// SPDX-License-Identifier: GPL-2.0
//! Fixture access for tests: images unpack once into the cache; tests that need
//! ../shared/fixtures skip (with a message) where it is absent.

use std::path::PathBuf;

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
