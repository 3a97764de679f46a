#!/usr/bin/env bash
# Install everything the build needs. Idempotent: safe to run twice, quiet when nothing
# is missing. See ../shared/notes/kernel-toolchain.md for what was verified.
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "setup: $*"; }

# --- apt sources: trixie-backports pinned low, for linux-source-7.* ---------------------
SRC=/etc/apt/sources.list.d/bcachefs-rs-backports.sources
PIN=/etc/apt/preferences.d/bcachefs-rs-backports
if [ ! -f "$SRC" ]; then
    say "adding trixie-backports (pinned low)"
    $SUDO tee "$SRC" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee "$PIN" >/dev/null <<'PIN'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
PIN
    $SUDO rm -f /var/lib/apt/bcachefs-rs-updated
fi
# bookworm-backports: the image's qemu-utils comes from there, and qemu-system-x86 must
# match it (bookworm's 7.2 conflicts with it). Backports are never upgraded to by default.
SRC12=/etc/apt/sources.list.d/bcachefs-rs-bpo12.sources
if [ ! -f "$SRC12" ]; then
    $SUDO tee "$SRC12" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO rm -f /var/lib/apt/bcachefs-rs-updated
fi

PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev cpio kmod
busybox-static zstd xz-utils rsync"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Newest linux-source-7.* that apt offers: installed already?
have_src=$(ls /usr/src/linux-source-7.*.tar.xz 2>/dev/null | sort -V | tail -n1 || true)
if [ -n "$missing" ] || [ -z "$have_src" ]; then
    if [ ! -f /var/lib/apt/bcachefs-rs-updated ]; then
        say "apt-get update"
        $SUDO apt-get update -qq
        $SUDO touch /var/lib/apt/bcachefs-rs-updated
    fi
fi
qemu_missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || qemu_missing=1
if [ -n "$qemu_missing" ] && [ ! -f /var/lib/apt/bcachefs-rs-updated ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    $SUDO touch /var/lib/apt/bcachefs-rs-updated
fi
if [ -n "$missing" ]; then
    say "installing:$missing"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$qemu_missing" ]; then
    say "installing qemu-system-x86 (bookworm-backports, to match qemu-utils)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports qemu-system-x86 >/dev/null
fi
if [ -z "$have_src" ]; then
    ver=$(apt-cache search --names-only '^linux-source-7\.[0-9]+$' | awk '{print $1}' | sort -V | tail -n1)
    [ -n "$ver" ] || { echo "setup: no linux-source-7.* package offered by apt" >&2; exit 1; }
    say "installing $ver"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t trixie-backports "$ver" >/dev/null
fi

# --- Rust pieces: rust-src for the kernel's core build, bindgen-cli --------------------
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "rustup component add rust-src"
    rustup component add rust-src >/dev/null
fi
if ! command -v bindgen >/dev/null 2>&1; then
    say "cargo install bindgen-cli (about 90 s)"
    cargo install --locked bindgen-cli >/dev/null 2>&1
fi
exit 0
