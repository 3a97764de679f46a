#!/usr/bin/env bash
# Prints the unpacked device images of a fixture, one path per line, in device order
# (img for one device; dev0, dev1, ... for several). Each image is unpacked from
# ../shared/fixtures once into the cache ($FX_CACHE, default
# ${BCACHEFS_RS_CACHE:-~/.cache/bcachefs-rs}/fixtures), never into the checkout.
# Exits 1 when the fixture is absent.
#   scripts/fixture-images.sh FIXTURE
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
d=${FIXTURES:-$top/../shared/fixtures}/$1
cache=${FX_CACHE:-${BCACHEFS_RS_CACHE:-$HOME/.cache/bcachefs-rs}/fixtures}/$1
unpack() { # src name
    if [ ! -s "$cache/$2" ]; then
        mkdir -p "$cache"
        zstd -q -d -f "$1" -o "$cache/$2.tmp$$" && mv "$cache/$2.tmp$$" "$cache/$2"
    fi
    echo "$cache/$2"
}
if [ -f "$d/image.img.zst" ]; then
    unpack "$d/image.img.zst" img
    exit 0
fi
found=0
for i in 0 1 2 3 4 5 6 7; do
    [ -f "$d/image$i.img.zst" ] || continue
    unpack "$d/image$i.img.zst" "dev$i"
    found=1
done
[ $found = 1 ]
