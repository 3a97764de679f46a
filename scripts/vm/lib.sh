# Helpers for guest test scripts (sourced: . /lib.sh).
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# The debugfs directory of the one mounted filesystem.
fsdir() {
    set -- /sys/kernel/debug/bcachefs/*/btree_cache
    [ -e "$1" ] || fail "no filesystem in debugfs"
    dirname "$1"
}

# Benchmarks' clock, in seconds: a file's mtime on the guest's tmpfs, which ticks
# every few milliseconds (busybox's date has no %N, /proc/uptime counts 10 ms and
# the test kernel has no adjtimex). secs A B: B - A, two decimals.
now() {
    touch /tmp/.clock
    stat -c '%Y %y' /tmp/.clock | awk '{ split($3, t, "."); printf "%s.%s\n", $1, substr(t[2], 1, 6) }'
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

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

# manifest DIR: the tree under DIR in the fixtures' manifest.tsv form (path, type,
# mode, size, nlink, sha256 or symlink target), sorted by path. A file or symlink
# that cannot be read shows EIO in the last column (as bcachefs-rs manifest does).
manifest() {
    (
        # Its own scratch files: readers run it side by side.
        t=$(mktemp -d) || exit 1
        cd "$1" || exit 1
        find . -mindepth 1 -exec stat -c '%a %s %h %F|%n' {} + > "$t/mf.stat" || exit 1
        find . -type f -exec sha256sum {} + > "$t/mf.sha" 2>"$t/mf.err"
        find . -type l | while IFS= read -r p; do
            printf '%s\t%s\n' "$p" "$(readlink "$p")"
        done > "$t/mf.lnk"
        printf 'path\ttype\tmode\tsize\tnlink\tsha256_or_target\n'
        awk -v dir="$t" '
            FILENAME == dir "/mf.sha" { h = $1; sub(/^[0-9a-f]+  /, ""); sha[$0] = h; next }
            FILENAME == dir "/mf.lnk" { i = index($0, "\t"); lnk[substr($0, 1, i - 1)] = substr($0, i + 1); next }
            {
                bar = index($0, "|"); name = substr($0, bar + 1); split(substr($0, 1, bar - 1), f, " ")
                t = substr($0, 1, bar - 1); sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", t)
                path = substr(name, 3)
                if (t == "directory") print path "\tdir\t0o" f[1] "\t-\t" f[3] "\t-"
                else if (t == "symbolic link") print path "\tsymlink\t0o" f[1] "\t" f[2] "\t" f[3] "\t" (lnk[name] == "" ? "EIO" : lnk[name])
                else print path "\tfile\t0o" f[1] "\t" f[2] "\t" f[3] "\t" ((name in sha) ? sha[name] : "EIO")
            }' "$t/mf.sha" "$t/mf.lnk" "$t/mf.stat" | LC_ALL=C sort
        rm -rf "$t"
    )
}

# Repair tests (repair.sh, repair-kill.sh):
# pass_findings: waits for the mounted filesystem's first gc pass (its fsck pass:
# after a repair, over the filesystem opened again from disk) and prints its
# findings count, but for btree_bitmap_gc: a bitmap marking more than the btree
# uses that no repair can shrink further (its granularity; unclean's is so) is a
# message, not a finding left (the offline repair leaves it too, which the host
# checks).
pass_findings() {
    i=0
    while ! grep -q '^passes: [1-9]' /sys/fs/bcachefs/*/internal/gc_status; do
        i=$((i + 1)); [ $i -le 1200 ] || fail "no gc pass"
        sleep 0.5
    done
    st=$(cat /sys/fs/bcachefs/*/internal/gc_status)
    all=$(echo "$st" | sed -n 's/^findings: //p')
    bm=$(echo "$st" | sed -n 's/^  btree_bitmap_gc: //p')
    echo $((all - ${bm:-0}))
}

# check_pass D: a read-only mount with a gc pass; prints pass_findings.
check_pass() {
    dmesg -c > /dev/null
    mount -t bcachefs -o ro,fsck "$1" /mnt || fail "$1: mount -o ro,fsck"
    pass_findings
    umount /mnt || fail "$1: umount"
}

# complete_repair D NAME: a repair at mount of D (-o fsck,fix_errors) succeeds and
# the gc pass over the repaired filesystem finds nothing.
complete_repair() {
    dmesg -c > /dev/null
    mount -t bcachefs -o fsck,fix_errors "$1" /mnt || { dmesg | tail -n 20; fail "$2: repair at mount"; }
    f=$(pass_findings)
    umount /mnt || fail "$2: umount"
    [ "$f" = 0 ] || fail "$2: $f findings after the repair completed"
}
