#!/usr/bin/env bash
# Install everything the build needs. Idempotent: safe to run twice, quiet when nothing
# is missing. See ../shared/notes/kernel-toolchain.md for what was verified.
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
say() { echo "setup: $*"; }
stamp=/var/lib/apt/bcachefs-rs-updated
apt_update() {
    if [ ! -f $stamp ]; then
        say "apt-get update"
        $SUDO apt-get update -qq
        $SUDO touch $stamp
    fi
}
apt_install() { # [-t suite] packages...
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
add_source() { # file suite: a deb822 source; backports are never upgraded to by default
    if [ ! -f "$1" ]; then
        $SUDO tee "$1" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $2
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        $SUDO rm -f $stamp
    fi
}

# trixie-backports (pinned low) for linux-source-7.*; bookworm-backports for a
# qemu-system-x86 matching the image's qemu-utils (bookworm's 7.2 conflicts with it).
add_source /etc/apt/sources.list.d/bcachefs-rs-backports.sources trixie-backports
add_source /etc/apt/sources.list.d/bcachefs-rs-bpo12.sources bookworm-backports
PIN=/etc/apt/preferences.d/bcachefs-rs-backports
if [ ! -f $PIN ]; then
    printf 'Package: *\nPin: release n=trixie-backports\nPin-Priority: 100\n' | $SUDO tee $PIN >/dev/null
fi

PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev cpio kmod
busybox-static zstd xz-utils rsync python3 libc6-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt_update
    say "installing:$missing"
    apt_install $missing
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    apt_update
    say "installing qemu-system-x86 (bookworm-backports)"
    apt_install -t bookworm-backports qemu-system-x86
fi
# Every linux-source-7.* series apt offers: the newest is the test kernel, the others
# are compile checks (the module must build on every 7.x Debian ships).
if [ "$(ls /usr/src/linux-source-7.*.tar.xz 2>/dev/null | wc -l)" -lt 2 ]; then
    apt_update
    for pkg in $(apt-cache search --names-only '^linux-source-7\.[0-9]+$' | awk '{print $1}' | sort -V); do
        [ -f "/usr/src/$pkg.tar.xz" ] && continue
        say "installing $pkg"
        apt_install -t trixie-backports "$pkg"
    done
fi
ls /usr/src/linux-source-7.*.tar.xz >/dev/null 2>&1 ||
    { echo "setup: no linux-source-7.* package offered by apt" >&2; exit 1; }

# Rust pieces: rust-src (the kernel builds core from source), bindgen, cargo-fuzz.
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "rustup component add rust-src"
    rustup component add rust-src >/dev/null
fi
if ! command -v bindgen >/dev/null 2>&1; then
    say "cargo install bindgen-cli (about 90 s)"
    cargo install --locked bindgen-cli >/dev/null 2>&1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    say "cargo install cargo-fuzz (about 40 s)"
    cargo install --locked cargo-fuzz >/dev/null 2>&1
fi
exit 0
