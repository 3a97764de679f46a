# Benchmark (not a test): inside the VM, time mount, a full walk (readdir + stat of
# every path) and a read of every byte of an image (churn, or big.img: scripts/bench.sh
# and benches/vm/tree-walk-host.sh), with cold caches, 3 runs; prints figures, their
# medians and the node cache counters after the last run.
# Run: scripts/bench.sh tree-walk [churn|big]
# Host: benches/vm/tree-walk-host.sh
# Timeout: 5400
. /lib.sh
mkdir -p /mnt
for run in 1 2 3; do
    echo 3 > /proc/sys/vm/drop_caches
    t0=$(now)
    mount -t bcachefs -o ro /dev/vda /mnt || fail mount
    t1=$(now)
    paths=$(find /mnt -exec stat -c %s {} + | wc -l)
    t2=$(now)
    bytes=$(find /mnt -type f -exec cat {} + | wc -c)
    t3=$(now)
    if [ $run = 3 ]; then
        sed 's/^/BENCH node cache: /' "$(fsdir)/btree_cache"
    fi
    umount /mnt || fail umount
    t4=$(now)
    printf '%s %s %s %s\n' "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" \
        "$(secs "$t3" "$t4")" >> /tmp/phases
    mbs=$(awk -v b="$bytes" -v s="$(secs "$t2" "$t3")" 'BEGIN { r = 0; if (s > 0) r = b / s / 1048576; printf "%.1f", r }')
    echo "BENCH run $run: mount $(secs "$t0" "$t1") s, walk $(secs "$t1" "$t2") s ($paths paths), read $(secs "$t2" "$t3") s ($bytes bytes, $mbs MiB/s), umount $(secs "$t3" "$t4") s, total $(secs "$t0" "$t4") s"
done
# The median of each phase over the runs.
med() { cut -d' ' -f"$1" /tmp/phases | sort -n | sed -n 2p; }
echo "BENCH median: mount $(med 1) s, walk $(med 2) s, read $(med 3) s, umount $(med 4) s"
