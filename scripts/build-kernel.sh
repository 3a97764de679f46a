#!/usr/bin/env bash
# Build (or reuse) the debug test kernel. Prints the build directory on stdout's last line.
# Cache: $BCACHEFS_RS_CACHE (default ~/.cache/bcachefs-rs)/kernel/<version>-<config hash>,
# outside the checkout, so a second run (or a second checkout) skips the build.
#   scripts/build-kernel.sh [--prepare-only | --bench] [linux-source tarball]
# --prepare-only configures the same way but builds only what an out-of-tree module
# build needs (prepare + the rust/ crates): for compile checks against another series.
# --bench builds the benchmark kernel: the same fragment without KASAN, lockdep, the
# atomic-sleep checks and Rust's overflow checks and debug assertions, so figures are
# about the code, not the debugging (scripts/bench.sh builds it; make check never does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${BCACHEFS_RS_CACHE:-$HOME/.cache/bcachefs-rs}
prep=0 ; bench=0
if [ "${1:-}" = --prepare-only ]; then prep=1; shift; fi
if [ "${1:-}" = --bench ]; then bench=1; shift; fi
tarball=${1:-$(ls /usr/src/linux-source-7.*.tar.xz 2>/dev/null | sort -V | tail -n1)}
[ -f "$tarball" ] || { echo "build-kernel: no linux-source tarball (run scripts/setup.sh)" >&2; exit 1; }
ver=$(basename "$tarball" .tar.xz); ver=${ver#linux-source-}
frag=$here/kconfig/test-kernel.config
debugging="PROVE_LOCKING DEBUG_ATOMIC_SLEEP KASAN KASAN_GENERIC KASAN_INLINE RUST_OVERFLOW_CHECKS RUST_DEBUG_ASSERTIONS"
if [ $bench = 1 ]; then
    # The test fragment with its debugging turned off.
    bfrag=$(mktemp)
    trap 'rm -f "$bfrag"' EXIT
    grep -v -E "^CONFIG_($(echo $debugging | tr ' ' '|'))=" "$frag" > "$bfrag"
    for sym in $debugging; do echo "# CONFIG_$sym is not set" >> "$bfrag"; done
    frag=$bfrag
fi
hash=$( (cat "$frag"; echo "$ver"; clang-19 --version | head -n1; rustc --version; stat -c %s "$tarball") | sha256sum | cut -c1-12)
out=$cache/kernel/$ver-$hash
[ $prep = 1 ] && out=$out-prep
[ $bench = 1 ] && out=$out-bench
mk() { make -s -C "$out/src" LLVM=-19 "$@"; }

if [ -f "$out/.done" ]; then
    echo "build-kernel: cached $out" >&2
    echo "$out"; exit 0
fi
mkdir -p "$out"
if [ ! -f "$out/src/Makefile" ]; then
    echo "build-kernel: unpacking $tarball" >&2
    rm -rf "$out/src"; mkdir -p "$out/src"
    tar -xJf "$tarball" -C "$out/src" --strip-components=1
fi
echo "build-kernel: configuring linux $ver" >&2
mk tinyconfig >/dev/null
(cd "$out/src" && scripts/kconfig/merge_config.sh -m .config "$frag" >/dev/null)
mk olddefconfig >/dev/null
# Every symbol we rely on must have survived olddefconfig (hidden ones are selected).
missing=""
for sym in $(grep -oE '^CONFIG_[A-Z0-9_]+=y' "$frag" | cut -d= -f1) \
    CONFIG_LZ4_DECOMPRESS CONFIG_ZSTD_DECOMPRESS CONFIG_ZLIB_INFLATE CONFIG_CRC64 \
    CONFIG_XXHASH CONFIG_CRYPTO_LIB_CHACHA CONFIG_CRYPTO_LIB_POLY1305 CONFIG_CRC32; do
    grep -q "^$sym=y" "$out/src/.config" || missing="$missing $sym"
done
if [ -n "$missing" ]; then
    echo "build-kernel: config lacks:$missing" >&2; exit 1
fi
if [ $bench = 1 ]; then
    for sym in $debugging; do
        if grep -q "^CONFIG_$sym=y" "$out/src/.config"; then
            echo "build-kernel: the benchmark kernel still has CONFIG_$sym" >&2; exit 1
        fi
    done
fi
if [ $prep = 1 ]; then
    echo "build-kernel: preparing linux $ver for module builds (prepare + rust/)" >&2
    mk -j3 prepare modules_prepare >&2
    mk -j3 rust/ >&2
    touch "$out/.done"
    echo "$out"; exit 0
fi
echo "build-kernel: building bzImage (several minutes on 2 cores)" >&2
mk -j3 bzImage modules >&2   # modules: writes Module.symvers for out-of-tree builds
touch "$out/.done"
echo "$out"
