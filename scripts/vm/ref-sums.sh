#!/usr/bin/env bash
# Digests of a fixture's reference listings, for guest tests that compare the
# module's debugfs dumps without carrying the texts into the VM:
#   scripts/vm/ref-sums.sh FIXTURE   ->   "<btree> <file> <md5>" per line
# <file> is the debugfs file name (keys, nodes, nodes.levelN, ondisk). Pointer device
# names are rewritten (`ptr: +NAME ` -> `ptr: DEV `) as the fixtures' README says.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
fx=${FIXTURES:-$top/../shared/fixtures}/$1
rw() { sed -E 's/ptr: +[^ ]+ /ptr: DEV /g' "$@"; }
sum() { md5sum | cut -d' ' -f1; }
for n in "$fx"/nodes/*.txt; do
    base=$(basename "$n" .txt)
    case $base in
    *.level*) echo "${base%.level*} nodes.level${base##*.level} $(rw "$n" | sum)";;
    *)
        echo "$base nodes $(rw "$n" | sum)"
        if [ -f "$fx/list/$base.txt" ]; then
            echo "$base keys $(rw "$fx/list/$base.txt" | sum)"
        else
            echo "$base keys $(printf '' | sum)"
        fi
        [ -f "$fx/ondisk/$base.txt" ] && echo "$base ondisk $(rw "$fx/ondisk/$base.txt" | sum)"
        ;;
    esac
done
