# VM test: the gc thread. It runs a pass at mount with -o fsck (counters equal what
# `bcachefs-rs check -v` counts offline on the same image), runs another when
# internal/trigger_gc is written while 4 readers walk the tree (their trees stay
# equal to the manifest), runs periodically when gc_period_secs is set, reports the
# damaged-topology hole, and an unmount during a pass stops the thread promptly.
# The console is checked for lockdep and KASAN reports by the harness.
# Disks: churn basic damaged-topology
# Manifests: churn
# Needs: nomodule
# Timeout: 1800
. /lib.sh
# A small node cache makes every pass read nodes from disk, so a pass is slow
# enough to be caught running.
insmod /bcachefs.ko btree_cache_max=16 || fail insmod
mkdir -p /mnt

gcdir() {
    set -- /sys/fs/bcachefs/*/internal
    [ -d "$1" ] || fail "no /sys/fs/bcachefs/<uuid>/internal"
    echo "$1"
}
st() { sed -n "s/^ *$1: //p" "$(gcdir)/gc_status"; }
# wait_passes N: until N passes finished and none runs (at most 600 s).
wait_passes() {
    local i=0
    while [ "$(st passes)" -lt "$1" ] || [ "$(st running)" = 1 ]; do
        i=$((i + 1))
        [ $i -le 1200 ] || fail "gc pass $1 did not finish"
        sleep 0.5
    done
}

# 1. A pass at mount (-o fsck: a plain mount runs none), by a thread named after
#    the device.
mount -t bcachefs -o ro,fsck /dev/vda /mnt || fail "mount churn"
threads() { cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^bch-gc/'; }
cat /proc/[0-9]*/comm 2>/dev/null | grep -qx 'bch-gc/vda' || fail "no bch-gc/vda thread"
wait_passes 1
cat "$(gcdir)/gc_status"
[ "$(st nodes)" = 147 ] && [ "$(st keys)" = 14850 ] && [ "$(st buckets)" = 565 ] ||
    fail "churn: counters differ from the offline check (147 nodes, 14850 keys, 565 buckets)"
[ "$(st findings)" = 1 ] && [ "$(st btree_bitmap_gc)" = 1 ] ||
    fail "churn: findings other than the reference's btree_bitmap_gc"
dmesg | grep -q 'gc: superblock: superblock requires following recovery passes to be run: btree_bitmap_gc' ||
    fail "the finding is not in the log"
ok "gc at mount: $(st nodes) nodes, $(st keys) keys, $(st buckets) buckets, findings as fsck.txt"

# 2. A triggered pass while 4 readers walk the tree.
start=$(st last_start_ns)
i=0
while [ $i -lt 4 ]; do
    manifest /mnt > /tmp/walk.$i.tsv &
    i=$((i + 1))
done
echo 1 > "$(gcdir)/trigger_gc" || fail "write trigger_gc"
wait
wait_passes 2
for i in 0 1 2 3; do
    cmp /tmp/walk.$i.tsv /data/churn.manifest || fail "reader $i saw a different tree during gc"
done
[ "$(st last_start_ns)" -gt "$start" ] || fail "the triggered pass did not start later"
[ "$(st nodes)" = 147 ] && [ "$(st findings)" = 1 ] || fail "triggered pass counted differently"
ok "triggered pass beside 4 readers: $(st passes) passes, trees equal the manifest"
echo 0 > "$(gcdir)/trigger_gc" || fail "trigger_gc 0"
echo x > "$(gcdir)/trigger_gc" 2>/dev/null && fail "trigger_gc took a non-boolean"
sleep 1
[ "$(st passes)" = 2 ] || fail "writing 0 ran a pass"

# 3. Unmount during a pass stops the thread promptly. Between seeing the pass
# running and the unmount reaching the thread nothing forks but umount itself (a
# fork and exec takes a good part of a pass under TCG, 0.1-0.5 s against 0.75 s). A pass can still finish
# first; that race is retried on a fresh mount, up to 5 times. A pass that ran to its end is logged as one, not a stop.
stops() { dmesg | grep -c 'gc pass stopped (unmount)'; }
passes_logged() { dmesg | grep -c ': gc pass: '; }
# uptime_ms VAR: milliseconds since boot, without a fork.
uptime_ms() {
    local u _r
    read -r u _r < /proc/uptime
    eval "$1=$(( ${u%.*} * 1000 + (1${u#*.} - 100) * 10 ))"
}
try=1
while :; do
    s0=$(stops)
    p0=$(passes_logged)
    d=$(gcdir)
    echo 1 > "$d/trigger_gc"
    i=0
    while :; do
        # running is the third line; the read builtin reads a byte at a time.
        { read -r _ _; read -r _ _; read -r _ r; } < "$d/gc_status"
        [ "$r" = 1 ] && break
        i=$((i + 1))
        [ $i -le 20000 ] || fail "the pass never showed as running"
    done
    uptime_ms t0
    umount /mnt || fail "umount during a pass"
    uptime_ms t1
    [ "$(threads)" = 0 ] || fail "gc thread left after unmount"
    [ -e /sys/fs/bcachefs/*/internal ] && fail "sysfs directory left after unmount"
    # A hang guard only: the unmount also evicts the inodes the readers loaded
    # (1.5-2.5 s here); the stop itself is the log line below.
    [ $((t1 - t0)) -lt 30000 ] || fail "unmount took $((t1 - t0)) ms"
    [ "$(stops)" -gt "$s0" ] && break
    # Not stopped: then the pass must have finished, and said so.
    [ "$(passes_logged)" -gt "$p0" ] || fail "the pass neither stopped nor finished"
    echo "attempt $try: the pass finished before the unmount reached it"
    try=$((try + 1))
    [ $try -le 5 ] || fail "the pass was never stopped by the unmount (5 attempts)"
    mount -t bcachefs -o ro,fsck /dev/vda /mnt || fail "remount churn"
    wait_passes 1
done
dmesg | grep 'gc pass stopped (unmount)' | tail -n 1
ok "unmount during a pass took $((t1 - t0)) ms (attempt $try)"

# 4. Periodic passes.
echo 1 > /sys/module/bcachefs/parameters/gc_period_secs || fail "set gc_period_secs"
mount -t bcachefs -o ro /dev/vdb /mnt || fail "mount basic"
wait_passes 3
[ "$(st findings)" = 0 ] || fail "basic: findings"
echo 0 > /sys/module/bcachefs/parameters/gc_period_secs
ok "periodic: $(st passes) passes without a trigger, basic clean"
umount /mnt || fail "umount basic"

# 5. The damaged-topology hole.
mount -t bcachefs -o ro,fsck /dev/vdc /mnt || fail "mount damaged-topology"
wait_passes 1
cat "$(gcdir)/gc_status"
dmesg | grep 'gc: ' | tail -n 6
dmesg | grep -q 'gc: extents: gap between btree nodes at btree=extents level=1: missing 2147488093:19:0..2147488439:1:U32_MAX' ||
    fail "the hole was not reported"
dmesg | grep -q 'gc: extents: btree node read error at btree extents level 0/1: node 2147488093:19:0..2147488439:1:U32_MAX at 0:358:192' ||
    fail "the lost leaf was not reported"
[ "$(st btree_node_read_error)" = 1 ] && [ "$(st btree_node_topology_gap_between_nodes)" = 1 ] &&
    [ "$(st check_allocations_incomplete)" = 1 ] && [ "$(st btree_bitmap_gc)" = 1 ] &&
    [ "$(st findings)" = 4 ] || fail "damaged-topology: findings differ from the offline check"
ok "damaged-topology: the hole and the lost leaf are reported"
umount /mnt || fail "umount damaged-topology"
rmmod bcachefs || fail rmmod
[ -e /sys/fs/bcachefs ] && fail "/sys/fs/bcachefs left after rmmod"
ok "gc thread: done"
