# VM test: mount, walk, read and unmount 20 times in one boot, the tree equal to the
# manifest each time, with no warning; then bad mounts fail with a clear log line and
# no oops: a truncated image, unknown options, a read-write mount, a missing device,
# a device that is not bcachefs.
# Disks: basic basic@1M
# Manifests: basic
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
i=0
while [ $i -lt 20 ]; do
    mount -t bcachefs -o ro /dev/vda /mnt || fail "mount #$i"
    manifest /mnt > /tmp/t.tsv || fail "walk #$i"
    cmp -s /tmp/t.tsv /data/basic.manifest || fail "walk #$i differs from the manifest"
    umount /mnt || fail "umount #$i"
    echo 3 > /proc/sys/vm/drop_caches
    i=$((i + 1))
done
ok "20 mount/walk/read/unmount cycles, the tree equal to manifest.tsv each time"

expect_fail() { # WHAT LOGPATTERN MOUNT-ARGS...
    what=$1; pat=$2; shift 2
    dmesg -c > /dev/null
    if mount "$@" 2>/tmp/err; then umount /mnt; fail "$what: mount succeeded"; fi
    dmesg | grep -q "$pat" || { dmesg | tail -n 5; fail "$what: no log line matching '$pat'"; }
    ok "$what: refused ($(head -n1 /tmp/err)); log: $(dmesg | grep -m1 "$pat")"
}
expect_fail "truncated image" "truncated" -t bcachefs -o ro /dev/vdb /mnt
expect_fail "unknown option" "bogus" -t bcachefs -o ro,bogus=1 /dev/vda /mnt
# Read-write: refused with EROFS and a log line; busybox mount then retries
# read-only, which must give a read-only mount.
dmesg -c > /dev/null
if mount -t bcachefs -o rw /dev/vda /mnt 2>/tmp/err; then
    grep ' /mnt ' /proc/mounts | grep -q ' ro[, ]' || fail "read-write: mounted writable"
    umount /mnt
fi
dmesg | grep -q "read-write" || fail "read-write: no log line"
ok "read-write: refused; log: $(dmesg | grep -m1 read-write)"
expect_fail "missing device" "bcachefs" -t bcachefs -o ro /dev/nonexistent /mnt
# Not bcachefs: every superblock copy in the first MiB and the layout gone.
dd if=/dev/zero of=/dev/vda bs=1M count=1 conv=notrunc 2>/dev/null
sync
expect_fail "not bcachefs" "bcachefs" -t bcachefs -o ro /dev/vda /mnt
