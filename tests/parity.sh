#!/usr/bin/env bash
# Parity of `bcachefs-rs list` with the reference tool's output in ../shared/fixtures.
#   tests/parity.sh [fixture...]   (default: every fixture)
# For each fixture and btree: list -m keys vs list/, nodes-ondisk vs ondisk/, nodes -l N
# vs nodes/, show-super vs super.txt, list-journal vs journal.txt. Prints the share of matching lines per fixture; exits non-zero when any
# undamaged fixture is not at 100%. On a damaged fixture (damaged-*) every line the
# reference lists must be listed too (we may list more: the reference stops at a node
# it cannot read, we go on past it), and listing the damaged btree must exit non-zero
# with an error naming the btree, level and node. Images are unpacked once into the
# cache by scripts/fixture-images.sh.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${FIXTURES:-$top/../shared/fixtures}
if [ ! -d "$fixtures" ]; then
    echo "SKIP parity: $fixtures not present"
    exit 0
fi
bin=${BIN:-$top/target/release/bcachefs-rs}
[ -x "$bin" ] || (cd "$top" && cargo build --release -q) || exit 1
out=$top/build/parity; rm -rf "$out"; mkdir -p "$out"
list=("$@"); [ ${#list[@]} -gt 0 ] || list=($(cd "$fixtures" && ls -d */ | tr -d /))
fail=0
for fx in "${list[@]}"; do
    d=$fixtures/$fx; [ -d "$d/list" ] || continue
    mapfile -t devs < <("$top/scripts/fixture-images.sh" "$fx")
    [ ${#devs[@]} -gt 0 ] || { echo "parity $fx: no image"; fail=1; continue; }
    total=0; same=0; bad=""; missing=""
    cmpone() { # name expected-file args...
        local name=$1 exp=$2; shift 2
        local got=$out/$fx.$name
        "$bin" list "$@" "${devs[@]}" > "$got" 2> "$got.err"
        echo $? > "$got.rc"
        local t s
        t=$(wc -l < "$exp")
        s=$(diff --unchanged-line-format=. --old-line-format= --new-line-format= "$exp" "$got" | wc -c)
        total=$((total + t)); same=$((same + s))
        cmp -s "$exp" "$got" || bad="$bad $name"
        # lines the reference lists that we do not
        [ "$(diff "$exp" "$got" | grep -c '^<')" = 0 ] || missing="$missing $name"
    }
    for f in "$d"/list/*.txt; do b=$(basename "$f" .txt); cmpone "keys.$b" "$f" -b "$b"; done
    for f in "$d"/ondisk/*.txt; do b=$(basename "$f" .txt); cmpone "ondisk.$b" "$f" -m nodes-ondisk -b "$b"; done
    for f in "$d"/nodes/*.txt; do
        b=$(basename "$f" .txt); lvl=0
        case $b in *.level*) lvl=${b##*.level}; b=${b%.level*};; esac
        cmpone "nodes.$b.l$lvl" "$f" -m nodes -l "$lvl" -b "$b"
    done
    if [ -f "$d/super.txt" ]; then
        # show-super of device 0
        "$bin" show-super "${devs[0]}" > "$out/$fx.super" 2> "$out/$fx.super.err"
        t=$(wc -l < "$d/super.txt")
        s=$(diff --unchanged-line-format=. --old-line-format= --new-line-format= "$d/super.txt" "$out/$fx.super" | wc -c)
        total=$((total + t)); same=$((same + s))
        cmp -s "$d/super.txt" "$out/$fx.super" || bad="$bad super"
    fi
    if [ -f "$d/journal.txt" ]; then
        # list_journal -a; the reference's first lines are its recovery chatter, up to
        # the blank line before the first entry
        awk 'f { print } /^journal read done/ { f = 1 }' "$d/journal.txt" > "$out/$fx.journal.exp"
        "$bin" list-journal "${devs[@]}" > "$out/$fx.journal" 2> "$out/$fx.journal.err"
        t=$(wc -l < "$out/$fx.journal.exp")
        s=$(diff --unchanged-line-format=. --old-line-format= --new-line-format= "$out/$fx.journal.exp" "$out/$fx.journal" | wc -c)
        total=$((total + t)); same=$((same + s))
        cmp -s "$out/$fx.journal.exp" "$out/$fx.journal" || bad="$bad journal"
    fi
    pct=$(awk -v s=$same -v t=$total 'BEGIN { printf "%.2f", t ? 100*s/t : 100 }')
    echo "parity $fx: $same/$total lines ($pct%)${bad:+ differ:$bad}"
    case $fx in
    damaged-*)
        [ -z "$missing" ] || { echo "parity $fx: reference lines missing from:$missing"; fail=1; }
        # the damaged btree, from the recipe's kill_btree_node -n BTREE:LEVEL:N
        dbt=$(grep -o 'kill_btree_node -n [a-z_]*' "$d/recipe.txt" | awk '{print $3}')
        if [ -n "$dbt" ]; then
            if [ "$(cat "$out/$fx.keys.$dbt.rc")" = 0 ] ||
               ! grep -q "btree $dbt level [0-9]* node .*:" "$out/$fx.keys.$dbt.err"; then
                echo "parity $fx: no error reported for the damaged $dbt node"; fail=1
            else
                echo "parity $fx: damaged node reported: $(head -n1 "$out/$fx.keys.$dbt.err")"
            fi
        fi;;
    *) [ -z "$bad" ] || fail=1;;
    esac
done
exit $fail
