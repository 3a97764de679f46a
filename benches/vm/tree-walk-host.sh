#!/usr/bin/env bash
# Host side of benches/vm/tree-walk.sh: `prepare DIR` copies the image the bench
# walks into DIR: $BENCH_IMAGE, `churn` (the fixture, the default) or `big`
# (../shared/perf/big.img, unpacked once under build/bench); `verify DIR` checks
# nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
case $1 in
prepare)
    case ${BENCH_IMAGE:-churn} in
    churn)
        src=$("$top/scripts/fixture-images.sh" churn) || { echo "tree-walk: no churn fixture" >&2; exit 77; }
        ;;
    big)
        zst=$top/../shared/perf/big.img.zst
        src=$top/build/bench/big.img
        if [ ! -s "$src" ]; then
            [ -f "$zst" ] || { echo "tree-walk: $zst absent" >&2; exit 77; }
            mkdir -p "$top/build/bench"
            zstd -q -d "$zst" -o "$src"
        fi
        ;;
    *) echo "tree-walk: BENCH_IMAGE is churn or big" >&2; exit 2;;
    esac
    cp --sparse=always "$src" "$2/walk.img"
    echo "$2/walk.img"
    ;;
verify) ;;
esac
