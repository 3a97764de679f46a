#!/usr/bin/env bash
# Benchmarks (not tests: they print figures and never fail on speed):
#   scripts/bench.sh tree-walk   inside the VM (QEMU TCG, debug kernel): mount, walk
#                                and read every byte of churn
#   scripts/bench.sh offline     the userspace tool's manifest (walk, read, sha256)
#                                of every fixture with a manifest
#   scripts/bench.sh gc          a full gc pass over churn: offline (bcachefs-rs
#                                check) and in the VM (the gc thread's passes)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
tree-walk)
    make -s -C "$top" module
    "$top/scripts/vm/run-one.sh" "$top/benches/vm/tree-walk.sh" >/dev/null || true
    grep -a '^BENCH\|^FAIL' "$top/build/vm/tree-walk.log"
    ;;
offline)
    (cd "$top" && cargo build --release -q -p bcachefs-rs)
    for fx in basic churn csum-crc64 csum-none csum-xxhash lz4 old-version unclean zstd replicas2; do
        # shellcheck disable=SC2046
        imgs=$("$top/scripts/fixture-images.sh" "$fx") || { echo "SKIP $fx: fixtures absent"; continue; }
        s=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$top/target/release/bcachefs-rs" manifest $imgs > /dev/null
        e=$(date +%s.%N)
        printf 'BENCH offline manifest %-12s %.3f s\n' "$fx" "$(echo "$e - $s" | bc)"
    done
    ;;
gc)
    (cd "$top" && cargo build --release -q -p bcachefs-rs)
    imgs=$("$top/scripts/fixture-images.sh" churn) || { echo "SKIP: fixtures absent"; exit 0; }
    for run in 1 2 3; do
        # shellcheck disable=SC2086
        { "$top/target/release/bcachefs-rs" check -v $imgs || true; } | sed -n "s/^gc pass: /BENCH offline gc churn run $run: /p"
    done
    make -s -C "$top" module
    "$top/scripts/vm/run-one.sh" "$top/benches/vm/gc-pass.sh" >/dev/null || true
    grep -a '^BENCH\|^FAIL' "$top/build/vm/gc-pass.log"
    ;;
*)
    echo "usage: scripts/bench.sh tree-walk|offline|gc" >&2
    exit 2
    ;;
esac
