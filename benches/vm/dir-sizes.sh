# Benchmark (not a test): inside the VM, walk (readdir + stat of every entry) of
# directories of 100, 1,000 and 10,000 entries with cold caches, 3 runs each: the
# time per entry should not grow with the directory. Each is printed whole and net
# of the walk of an empty directory (starting find and stat, the mount's first
# lookups), the median of its 3 runs subtracted.
# Run: scripts/bench.sh dir-sizes
# Host: benches/vm/dir-sizes-host.sh
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
base=0
for n in 0 100 1000 10000; do
    for run in 1 2 3; do
        mount -t bcachefs -o ro /dev/vda /mnt || fail mount
        t0=$(now)
        c=$(find /mnt/d$n -exec stat -c %s {} + | wc -l)
        t1=$(now)
        umount /mnt || fail umount
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >> /tmp/t$n
        [ "$n" = 0 ] && continue
        awk -v n="$n" -v r="$run" -v c="$c" -v a="$t0" -v b="$t1" -v z="$base" 'BEGIN {
            printf "BENCH dir-sizes d%s run %s: %d paths in %.3f s, %.0f us per entry, %.0f us net of an empty directory\n",
                n, r, c, b - a, (b - a) * 1e6 / c, (b - a - z) * 1e6 / (c - 1) }'
    done
    if [ "$n" = 0 ]; then
        base=$(sort -n /tmp/t0 | sed -n 2p)
        echo "BENCH dir-sizes empty directory: $base s (median of 3)"
    fi
done
