#!/usr/bin/env bash
# Bounded fuzzing of the format core (cargo fuzz, libFuzzer): superblock, jset and
# btree node parsing plus merge and key printing, the bset writer against the
# reader (random updates appended to a node read back as the model's keys), and
# the new-node rules (a btree grown in memory by random inserts and deletions:
# rewrites, splits, new roots, read back as the model's keys). Overflow checks are on; any
# panic, overflow or out-of-bounds access fails.
#   scripts/fuzz.sh [TOTAL_SECONDS]   (default 60, split across the targets)
# Corpora are seeded with real nodes and superblocks from ../shared/fixtures when
# present, and kept in build/fuzz between runs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz >/dev/null 2>&1
fixtures=${FIXTURES:-$top/../shared/fixtures}
cache=${FX_CACHE:-${BCACHEFS_RS_CACHE:-$HOME/.cache/bcachefs-rs}/fixtures}
seeds=$top/build/fuzz/seeds
mkdir -p "$seeds"
if [ -d "$fixtures" ]; then
    for d in "$fixtures"/*/; do
        scripts/fixture-images.sh "$(basename "$d")" > /dev/null || true
    done
    python3 scripts/fuzz-seeds.py "$fixtures" "$cache" "$seeds"
else
    echo "fuzz: $fixtures not present: starting from empty corpora"
fi
export RUSTC_BOOTSTRAP=1   # cargo fuzz passes -Z flags; the stable toolchain allows them so
cargo fuzz build -O -a --sanitizer none >/dev/null 2>&1 || cargo fuzz build -O -a --sanitizer none
targets="sb jset node write tree"
per=$(( secs / 5 )); [ $per -ge 1 ] || per=1
rc=0
for t in $targets; do
    sd=$seeds/$t
    [ "$t" = write ] && sd=$seeds/node    # the writer starts from real nodes
    mkdir -p build/fuzz/corpus/$t "$sd"
    if cargo fuzz run -O -a --sanitizer none "$t" build/fuzz/corpus/$t "$sd" -- \
        -max_total_time=$per -rss_limit_mb=2048 -print_final_stats=1 > build/fuzz/$t.log 2>&1; then
        echo "fuzz $t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' build/fuzz/$t.log | awk '{print $2}') runs in ${per}s)"
    else
        echo "fuzz $t: FAILED (build/fuzz/$t.log)"; tail -n 30 build/fuzz/$t.log; rc=1
    fi
done
exit $rc
