#!/usr/bin/env bash
# Host side of benches/vm/dir-sizes.sh: `prepare DIR` makes (once, cached under
# build/bench) an image by the reference's `format --source` of directories of 0,
# 100, 1,000 and 10,000 empty files, and copies it into DIR; `verify DIR` checks
# nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
ref=$top/../shared/reference/bcachefs
case $1 in
prepare)
    [ -x "$ref" ] || { echo "dir-sizes: $ref absent" >&2; exit 77; }
    img=$top/build/bench/dir-sizes-2.img
    if [ ! -s "$img" ]; then
        src=$(mktemp -d)
        mkdir "$src/d0"
        for n in 100 1000 10000; do
            mkdir "$src/d$n"
            (cd "$src/d$n" && seq -f "file-%05g" 1 "$n" | xargs touch)
        done
        rm -f "$img.tmp"
        truncate -s 256M "$img.tmp"
        "$ref" format -q --source="$src" "$img.tmp" > /dev/null 2>&1
        rm -rf "$src"
        mv "$img.tmp" "$img"
    fi
    cp --sparse=always "$img" "$2/dir-sizes.img"
    echo "$2/dir-sizes.img"
    ;;
verify) ;;
esac
