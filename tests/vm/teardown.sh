# VM test: teardown races (issue 16). Nothing may oops, warn, hang or leak:
# - a lazy unmount while 2 readers walk the tree, a gc pass runs and debugfs
#   dumps are read: the readers finish on the detached tree (equal to the
#   manifest), and the module unloads right after the last one;
# - the same device mounted twice at once: both mounts share one filesystem;
# - three more filesystems mounted at once, walked at once and unmounted at once,
#   and the module unloaded right after.
# Disks: churn basic lz4 zstd
# Manifests: churn basic lz4 zstd
# Needs: nomodule
# Timeout: 1500
. /lib.sh
mkdir -p /mnt /m0 /m1 /m2 /m3
insmod /bcachefs.ko || fail "insmod"
# 1. Lazy unmount under readers, a gc pass and dumps.
mount -t bcachefs -o ro,fsck /dev/vda /mnt || fail "mount"
d=$(fsdir)
rm -f /tmp/walked.*
for i in 0 1; do
    (manifest /mnt > /tmp/walk.$i.tsv; touch /tmp/walked.$i) &
done
for b in inodes extents dirents; do
    cat "$d/btrees/$b/keys" > /dev/null 2>&1 &
done
echo 1 > "$(echo /sys/fs/bcachefs/*/internal)/trigger_gc" 2>/dev/null
sleep 1
umount -l /mnt || fail "umount -l"
busy=$((2 - $(ls /tmp/walked.* 2>/dev/null | wc -l)))
wait
for i in 0 1; do
    cmp /tmp/walk.$i.tsv /data/churn.manifest || fail "reader $i on the detached tree"
done
# The super block goes with the last reader: the module unloads at once.
i=0
while ! rmmod bcachefs 2>/dev/null; do
    i=$((i + 1)); [ $i -le 100 ] || fail "rmmod after the lazy unmount"
    sleep 0.1
done
[ "$busy" -gt 0 ] || fail "the readers were done before the unmount"
ok "lazy unmount with $busy of 2 readers still walking, a gc pass and dumps; rmmod after $i retries"
insmod /bcachefs.ko || fail "insmod again"
# 2. The same device mounted twice at once.
mount -t bcachefs -o ro /dev/vdb /m0 & a=$!
mount -t bcachefs -o ro /dev/vdb /m1 & b=$!
wait $a || fail "first of two mounts at once"
wait $b || fail "second of two mounts at once"
[ "$(ls /sys/kernel/debug/bcachefs | wc -l)" = 1 ] || fail "two filesystems for one device"
manifest /m1 | cmp - /data/basic.manifest || fail "the second mount's tree"
umount /m0 & a=$!
umount /m1 & b=$!
wait $a && wait $b || fail "two unmounts at once"
ok "one device mounted twice at once: one filesystem, both unmounted"
# 3. Three filesystems at once.
n=1
for fx in basic lz4 zstd; do
    dev=/dev/vd$(echo abcd | cut -c$((n + 1)))
    mount -t bcachefs -o ro "$dev" /m$n &
    n=$((n + 1))
done
wait
[ "$(grep -c ' bcachefs ' /proc/mounts)" = 3 ] || fail "not three mounts"
n=1
for fx in basic lz4 zstd; do
    manifest /m$n > /tmp/m$n.tsv &
    n=$((n + 1))
done
wait
n=1
for fx in basic lz4 zstd; do
    cmp /tmp/m$n.tsv /data/$fx.manifest || fail "$fx walked beside two others"
    n=$((n + 1))
done
for n in 1 2 3; do umount /m$n & done
wait
grep -q ' bcachefs ' /proc/mounts && fail "a mount left"
rmmod bcachefs || fail "rmmod right after the unmounts"
ok "three filesystems mounted, walked and unmounted at once, the module unloaded right after"
