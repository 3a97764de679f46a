#!/usr/bin/env bash
# Benchmarks (not tests: they print figures and never fail on speed):
#   scripts/bench.sh tree-walk [churn|big]
#                                inside the VM (QEMU TCG, debug kernel): mount, walk
#                                and read every byte of churn or big.img
#   scripts/bench.sh big-files   inside the VM: the biggest files of basic, zstd and lz4
#                                read cold (big checksummed and compressed extents)
#   scripts/bench.sh dir-sizes   inside the VM: walk directories of 100, 1,000 and
#                                10,000 entries (an image the reference formats from a
#                                tree), time per entry
#   scripts/bench.sh offline     the userspace tool's manifest (walk, read, sha256)
#                                of every fixture with a manifest
#   scripts/bench.sh gc          a full gc pass over churn: offline (bcachefs-rs
#                                check) and in the VM (the gc thread's passes)
#   scripts/bench.sh fsck        bcachefs-rs fsck -n and fsck -y (nothing to repair,
#                                on a copy) on ../shared/perf/big.img beside the
#                                reference's fsck -n; and fsck -y of damaged-csum (a
#                                node rewritten to new space), ours and the
#                                reference's, each on a fresh copy: wall and peak
#                                RSS, median of 3
#   scripts/bench.sh list        bcachefs-rs list -b inodes|extents|dirents big.img
#                                beside the reference's, run in turn: wall and peak
#                                RSS (median of 3), their ratios, and whether the
#                                outputs are byte-identical
#
# The VM benchmarks (tree-walk, big-files, dir-sizes) boot the benchmark kernel
# (scripts/build-kernel.sh --bench: no KASAN, lockdep, atomic-sleep checks or Rust
# debug checks; built and cached on first use, which takes a while) with the module
# built for it under build/bench-module; BENCH_KERNEL=debug runs them on the debug
# test kernel instead, as the VM tests see it. gc's VM part runs on the debug kernel.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$top/scripts  # bench_time.py: wall and peak RSS of a run
# big.img, unpacked once under build/bench: its path in $big (exits when absent).
big_img() {
    local zst=$top/../shared/perf/big.img.zst
    big=$top/build/bench/big.img
    if [ ! -s "$big" ]; then
        [ -f "$zst" ] || { echo "SKIP: $zst absent"; exit 0; }
        mkdir -p "$top/build/bench"
        zstd -q -d "$zst" -o "$big"
    fi
}
need_time() {
    command -v /usr/bin/time > /dev/null || { echo "SKIP: /usr/bin/time absent"; exit 0; }
}
# Sets up the kernel and module the VM benchmarks boot.
vm_kernel() {
    if [ "${BENCH_KERNEL:-bench}" = debug ]; then
        make -s -C "$top" module
        echo "BENCH kernel: debug (test) kernel"
        return
    fi
    local kdir src=$top/build/bench-module
    kdir=$("$top/scripts/build-kernel.sh" --bench | tail -n1)
    # The module's sources in a directory of their own: the test build's objects
    # at the top stay as they are.
    mkdir -p "$src"
    rsync -a --delete --exclude 'shim_generated.rs' --include '*/' --include '*.rs' \
        --include '*.c' --include '*.h' --exclude '*' "$top/rust/" "$src/rust/"
    cp "$top/Kbuild" "$src/Kbuild"
    make -s -C "$kdir/src" LLVM=-19 M="$src" modules
    export VM_KERNEL_DIR=$kdir VM_MODULE=$src/bcachefs.ko
    echo "BENCH kernel: benchmark kernel ($(basename "$kdir"))"
}
case ${1:-} in
tree-walk)
    case ${2:-churn} in
    churn) img=$("$top/scripts/fixture-images.sh" churn) || { echo "SKIP: no churn fixture"; exit 0; };;
    big) big_img; img=$big;;
    *) echo "usage: scripts/bench.sh tree-walk [churn|big]" >&2; exit 2;;
    esac
    vm_kernel
    BENCH_IMAGE=$img "$top/scripts/vm/run-one.sh" "$top/benches/vm/tree-walk.sh" >/dev/null || true
    grep -a '^BENCH\|^FAIL' "$top/build/vm/tree-walk.log"
    ;;
big-files)
    vm_kernel
    "$top/scripts/vm/run-one.sh" "$top/benches/vm/big-files.sh" >/dev/null || true
    grep -a '^BENCH\|^FAIL' "$top/build/vm/big-files.log"
    ;;
dir-sizes)
    vm_kernel
    "$top/scripts/vm/run-one.sh" "$top/benches/vm/dir-sizes.sh" >/dev/null || true
    grep -a '^BENCH\|^FAIL' "$top/build/vm/dir-sizes.log"
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
fsck)
    (cd "$top" && cargo build --release -q -p bcachefs-rs)
    ref=$top/../shared/reference/bcachefs
    big_img
    need_time
    copy=$top/build/bench/fsck-y/big.img
    mkdir -p "$(dirname "$copy")"
    cp --sparse=always "$big" "$copy"; chmod u+w "$copy"
    # Median wall and peak RSS of 3 runs, each after $PREP when it is set.
    measure() { # label command...
        python3 - "$@" <<'PY'
import os, statistics, subprocess, sys
from bench_time import timed
label, cmd = sys.argv[1], sys.argv[2:]
runs = []
for _ in range(3):
    if os.environ.get("PREP"):
        subprocess.run(["sh", "-c", os.environ["PREP"]], check=True)
    runs.append(timed(cmd))
print("BENCH fsck %-28s wall %.3f s  peak %.1f MiB" % (label, statistics.median(r[0] for r in runs),
                                                      statistics.median(r[1] for r in runs)))
PY
    }
    measure "bcachefs-rs fsck -n" "$top/target/release/bcachefs-rs" fsck -n "$big"
    measure "bcachefs-rs fsck -y" "$top/target/release/bcachefs-rs" fsck -y "$copy"
    if [ -x "$ref" ]; then
        measure "reference fsck -n" "$ref" fsck -n "$big"
    else
        echo "SKIP reference: $ref absent"
    fi
    cmp -s "$big" "$copy" && echo "BENCH fsck -y left big.img byte-identical" || echo "BENCH fsck -y CHANGED big.img"
    # A repair that rewrites a node: damaged-csum, a fresh copy for every run.
    if dc=$("$top/scripts/fixture-images.sh" damaged-csum 2>/dev/null | grep '/img$'); then
        rw=$top/build/bench/rewrite/img
        mkdir -p "$(dirname "$rw")"
        export PREP="cp --sparse=always '$dc' '$rw' && chmod u+w '$rw'"
        measure "bcachefs-rs fsck -y rewrite" "$top/target/release/bcachefs-rs" fsck -y "$rw"
        [ -x "$ref" ] && measure "reference fsck -y rewrite" "$ref" fsck -y "$rw"
        unset PREP
        rm -f "$rw"
    else
        echo "SKIP rewrite: no damaged-csum fixture"
    fi
    ;;
list)
    (cd "$top" && cargo build --release -q -p bcachefs-rs)
    ref=$top/../shared/reference/bcachefs
    [ -x "$ref" ] || { echo "SKIP: $ref absent"; exit 0; }
    big_img
    need_time
    # Each run's output is hashed as it is read, not written anywhere.
    python3 - "$top/target/release/bcachefs-rs" "$ref" "$big" <<'PY'
import statistics, sys
from bench_time import timed
ours, ref, img = sys.argv[1:]
for btree in ["inodes", "extents", "dirents"]:
    res = {"ours": [], "ref": []}
    for _ in range(3):
        res["ours"].append(timed([ours, "list", "-b", btree, img], digest=True))
        res["ref"].append(timed([ref, "list", "-b", btree, img], digest=True))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in res.items()}
    same = len({r[2] for v in res.values() for r in v}) == 1
    (ow, orss), (rw, rrss) = med["ours"], med["ref"]
    print("BENCH list -b %-8s bcachefs-rs wall %.3f s peak %.1f MiB | reference wall %.3f s peak %.1f MiB"
          " | ratio wall %.2fx peak %.2fx | output %s"
          % (btree, ow, orss, rw, rrss, ow / rw, orss / rrss, "identical" if same else "DIFFERS"))
PY
    ;;
*)
    echo "usage: scripts/bench.sh tree-walk|big-files|dir-sizes|offline|gc|fsck|list" >&2
    exit 2
    ;;
esac
