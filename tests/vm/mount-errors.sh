# VM test: bad mounts fail with a clear log line and an error code, and leave nothing
# behind: a missing device, an unknown option, a device given twice, a read-write
# mount, a device without a bcachefs superblock.
# Disks: basic
. /lib.sh
mkdir -p /mnt
try() { # try WHAT PATTERN MOUNT-ARGS...: the mount fails and the log says PATTERN
    what=$1; pat=$2; shift 2
    dmesg -c > /dev/null
    if mount -t bcachefs "$@" /mnt 2>/tmp/err; then fail "$what: mounted"; fi
    dmesg | grep -q "$pat" || { cat /tmp/err; dmesg; fail "$what: no '$pat' in the log"; }
    ok "$what: $(dmesg | grep "$pat" | head -n1)"
}
try "missing device" "cannot open" -o ro /dev/nonexistent
try "unknown option" "Unknown parameter" -o ro,no_such_option /dev/vda
try "device given twice" "given twice" -o ro /dev/vda:/dev/vda
dmesg -c > /dev/null
mount -t bcachefs /dev/vda /mnt 2>/dev/null && umount /mnt
dmesg | grep -q "read-write mounts are not supported" || fail "read-write mount not refused"
ok "read-write mount refused (mount may retry read-only)"
dd if=/dev/zero of=/dev/vda bs=512 seek=8 count=1 conv=notrunc 2>/dev/null
try "no superblock" "not a bcachefs superblock" -o ro /dev/vda
ls /sys/kernel/debug/bcachefs | grep -q . && fail "debugfs entries left behind"
rmmod bcachefs || fail rmmod
ok "module unloads after failed mounts"
