# Benchmark (not a test): inside the VM, walk (readdir + stat of every entry) of
# directories of 100, 1,000 and 10,000 entries with cold caches, 3 runs each: the
# time per entry should not grow with the directory.
# Run: scripts/bench.sh dir-sizes
# Host: benches/vm/dir-sizes-host.sh
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
now() { cut -d' ' -f1 /proc/uptime; }
for n in 100 1000 10000; do
    for run in 1 2 3; do
        mount -t bcachefs -o ro /dev/vda /mnt || fail mount
        t0=$(now)
        c=$(find /mnt/d$n -exec stat -c %s {} + | wc -l)
        t1=$(now)
        umount /mnt || fail umount
        awk -v n="$n" -v r="$run" -v c="$c" -v a="$t0" -v b="$t1" 'BEGIN {
            printf "BENCH dir-sizes d%s run %s: %d paths in %.2f s, %.0f us per entry\n",
                n, r, c, b - a, (b - a) * 1e6 / c }'
    done
done
