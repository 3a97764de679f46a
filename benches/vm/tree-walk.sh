# Benchmark (not a test): inside the VM, time mount, a full walk (readdir + stat of
# every path) and a read of every byte of churn, with cold caches; prints figures.
# Run: scripts/bench.sh tree-walk
# Disks: churn
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
now() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
for run in 1 2 3; do
    echo 3 > /proc/sys/vm/drop_caches
    t0=$(now)
    mount -t bcachefs -o ro /dev/vda /mnt || fail mount
    t1=$(now)
    paths=$(find /mnt -exec stat -c %s {} + | wc -l)
    t2=$(now)
    bytes=$(find /mnt -type f -exec cat {} + | wc -c)
    t3=$(now)
    umount /mnt || fail umount
    t4=$(now)
    mbs=$(awk -v b="$bytes" -v s="$(secs "$t2" "$t3")" 'BEGIN { r = 0; if (s > 0) r = b / s / 1048576; printf "%.1f", r }')
    echo "BENCH run $run: mount $(secs "$t0" "$t1") s, walk $(secs "$t1" "$t2") s ($paths paths), read $(secs "$t2" "$t3") s ($bytes bytes, $mbs MiB/s), umount $(secs "$t3" "$t4") s, total $(secs "$t0" "$t4") s"
done
