#!/usr/bin/env bash
# Fuzzing of the format core (cargo fuzz, libFuzzer): superblock, jset and
# btree node parsing plus merge and key printing, the bset writer against the
# reader (random updates appended to a node read back as the model's keys), and
# the new-node rules (a btree grown in memory by random inserts and deletions:
# rewrites, splits, new roots, read back as the model's keys). Overflow checks are on; any
# panic, overflow or out-of-bounds access fails.
#   scripts/fuzz.sh [TOTAL_SECONDS]   bounded (default 60, split across the targets)
#   scripts/fuzz.sh --long [--runs N] [--targets "sb jset ..."]
#                                     the long mode: each target until it has executed N
#                                     inputs (default 10,000,000; hours in all), then a
#                                     table of executions, exec/s, coverage (libFuzzer's
#                                     cov: edges, ft: features), corpus size and findings
# Corpora are seeded with real nodes and superblocks from ../shared/fixtures when
# present, and kept in build/fuzz between runs (the long mode grows them for the
# bounded runs). Inputs in fuzz/regressions/TARGET (findings, kept as regression
# cases) run first in every run of that target: one failing fails the run. A
# finding is saved under fuzz/artifacts/TARGET.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=60 ; long=0 ; runs=10000000 ; targets="sb jset node write tree"
while [ $# -gt 0 ]; do
    case $1 in
        --long) long=1;;
        --runs) runs=$2; shift;;
        --targets) targets=$2; shift;;
        [0-9]*) secs=$1;;
        *) echo "fuzz.sh: unknown argument $1" >&2; exit 2;;
    esac
    shift
done
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
n=$(echo $targets | wc -w)
per=$(( secs / n )); [ $per -ge 1 ] || per=1
rc=0
stat() { grep -o "stat::$1: *[0-9]*" "$2" | awk '{print $2}'; }
[ $long = 1 ] && printf '%-6s %12s %9s %7s %7s %8s %s\n' target executions exec/s cov ft corpus findings
for t in $targets; do
    sd=$seeds/$t
    [ "$t" = write ] && sd=$seeds/node    # the writer starts from real nodes
    reg=fuzz/regressions/$t
    mkdir -p build/fuzz/corpus/$t "$sd" "$reg" fuzz/artifacts/$t
    if [ $long = 1 ]; then
        lim=(-runs="$runs")
        # The tree target's cost grows with its input (each byte is an operation on
        # the in-memory btree): left to grow, libFuzzer's inputs reach 4 KiB and
        # 700 exec/s; its bugs need many short runs more than a few long ones.
        [ "$t" = tree ] && lim+=(-max_len=512)
    else
        lim=(-max_total_time=$per)
    fi
    log=build/fuzz/$t.log
    t0=$(date +%s)
    st=ok
    cargo fuzz run -O -a --sanitizer none "$t" build/fuzz/corpus/$t "$sd" "$reg" -- \
        "${lim[@]}" -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || st=FAILED
    execs=$(stat number_of_executed_units "$log")
    if [ $long = 1 ]; then
        el=$(( $(date +%s) - t0 )); [ $el -ge 1 ] || el=1
        last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -n1)
        cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
        ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
        printf '%-6s %12s %9s %7s %7s %8s %s\n' "$t" "${execs:-?}" "$(( ${execs:-0} / el ))" \
            "${cov:-?}" "${ft:-?}" "$(ls build/fuzz/corpus/$t | wc -l)" \
            "$([ $st = ok ] && echo 0 || echo "$log")"
    else
        echo "fuzz $t: $st (${execs:-?} runs in ${per}s)"
    fi
    if [ $st != ok ]; then
        echo "fuzz $t: FAILED ($log)"; tail -n 30 "$log"; rc=1
    fi
done
exit $rc
