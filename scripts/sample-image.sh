#!/usr/bin/env bash
# Prints the path of a small sample bcachefs image: the basic fixture, unpacked once
# into the cache. Exits 1 when ../shared/fixtures is absent.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
src=${FIXTURES:-$top/../shared/fixtures}/basic/image.img.zst
[ -f "$src" ] || exit 1
out=${BCACHEFS_RS_CACHE:-$HOME/.cache/bcachefs-rs}/fixtures/basic/img
if [ ! -s "$out" ]; then
    mkdir -p "$(dirname "$out")"
    zstd -q -d -f "$src" -o "$out.tmp$$" && mv "$out.tmp$$" "$out"
fi
echo "$out"
