#!/usr/bin/env bash
# Host side of benches/vm/tree-walk.sh: `prepare DIR` copies the image the bench
# walks into DIR: $BENCH_IMAGE (scripts/bench.sh tree-walk names churn's or
# big.img's), churn's fixture image without it; `verify DIR` checks nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
case $1 in
prepare)
    src=${BENCH_IMAGE:-}
    if [ -z "$src" ]; then
        src=$("$top/scripts/fixture-images.sh" churn) || { echo "tree-walk: no churn fixture" >&2; exit 77; }
    fi
    cp --sparse=always "$src" "$2/walk.img"
    echo "$2/walk.img"
    ;;
verify) ;;
esac
