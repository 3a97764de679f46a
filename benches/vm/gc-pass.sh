# Benchmark (not a test): inside the VM, the time of full gc passes over churn:
# the pass at mount (-o fsck; nodes read from disk), then 3 triggered passes (nodes cached),
# then 3 with a 16-node cache (every node read again). Prints figures.
# Run: scripts/bench.sh gc
# Disks: churn
# Needs: nomodule
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
st() { sed -n "s/^ *$1: //p" /sys/fs/bcachefs/*/internal/gc_status; }
wait_passes() {
    while [ "$(st passes)" -lt "$1" ] || [ "$(st running)" = 1 ]; do sleep 0.2; done
}
report() {
    awk -v n="$(st last_duration_ns)" -v what="$1" -v nodes="$(st nodes)" -v keys="$(st keys)" \
        -v b="$(st buckets)" 'BEGIN { printf "BENCH gc %s: %.3f s (%d nodes, %d keys, %d buckets)\n", what, n / 1e9, nodes, keys, b }'
}
for cache in 4096 16; do
    insmod /bcachefs.ko btree_cache_max=$cache || fail insmod
    mount -t bcachefs -o ro,fsck /dev/vda /mnt || fail mount
    wait_passes 1
    report "cache $cache, pass at mount"
    for i in 2 3 4; do
        set -- /sys/fs/bcachefs/*/internal/trigger_gc
        echo 1 > "$1" || fail trigger_gc
        wait_passes $i
        report "cache $cache, triggered pass $i"
    done
    umount /mnt || fail umount
    rmmod bcachefs || fail rmmod
done
