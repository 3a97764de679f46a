# Helpers for guest test scripts (sourced: . /lib.sh).
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# The debugfs directory of the one mounted filesystem.
fsdir() {
    set -- /sys/kernel/debug/bcachefs/*/btree_cache
    [ -e "$1" ] || fail "no filesystem in debugfs"
    dirname "$1"
}

# A counter from btree_cache: counter "reads issued"
counter() { sed -n "s/^$1\t//p" "$(fsdir)/btree_cache"; }

# check_dumps SUMS: every debugfs dump named in SUMS (scripts/vm/ref-sums.sh) has the
# reference's digest once pointer device names are rewritten.
check_dumps() {
    local d n=0 bad=0 b f sum got
    d=$(fsdir)
    while read -r b f sum; do
        n=$((n + 1))
        if [ ! -e "$d/btrees/$b/$f" ]; then
            echo "missing: $b/$f"; bad=$((bad + 1)); continue
        fi
        got=$(sed -E 's/ptr: +[^ ]+ /ptr: DEV /g' < "$d/btrees/$b/$f" | md5sum | cut -d' ' -f1)
        if [ "$got" != "$sum" ]; then
            echo "differs: $b/$f"; bad=$((bad + 1))
        fi
    done < "$1"
    echo "$(basename "$1" .sums): $n dumps compared, $bad differ"
    [ "$bad" -eq 0 ]
}
