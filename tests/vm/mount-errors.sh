# VM test: bad mounts fail with a clear log line and an error code, and leave nothing
# behind: a missing device, an unknown option, fix_errors without fsck or on a
# read-only mount, a device given twice, a read-write mount without fix_errors, a
# device without a bcachefs superblock (its primary copy alone gone: a backup serves), a fix_errors mount beside another mount of
# the same filesystem. And the options that are there: a plain
# mount runs no gc pass, -o fsck runs one, nochanges is taken (with fix_errors on a
# read-only mount: the repairs are only logged). A remount read-write is refused
# (chmod and touch then fail as before), a remount read-only taken. A repair at
# mount over an unreadable accounting leaf leaves what it cannot repair and mounts.
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
try "fix_errors without fsck" "fix_errors repairs what the fsck pass finds" -o fix_errors /dev/vda
try "fix_errors read-only" "fix_errors writes its repairs" -o ro,fsck,fix_errors /dev/vda
mount -t bcachefs -o ro /dev/vda /mnt || fail "mount -o ro"
sleep 2
grep -q '^passes: 0$' /sys/fs/bcachefs/*/internal/gc_status || fail "a plain mount ran a gc pass"
grep -q '^running: 0$' /sys/fs/bcachefs/*/internal/gc_status || fail "a plain mount runs a gc pass"
# A remount read-write is refused (files are read-only), and changes nothing.
dmesg -c > /dev/null
if mount -o remount,rw /mnt 2>/dev/null; then fail "remount,rw: taken"; fi
dmesg | grep -q "remount read-write refused" || { dmesg; fail "remount,rw: not logged"; }
grep -q " /mnt bcachefs ro" /proc/mounts || fail "remount,rw: /proc/mounts says $(grep /mnt /proc/mounts)"
if chmod 600 /mnt/hello.txt 2>/dev/null; then fail "remount,rw: chmod taken"; fi
if touch /mnt/hello.txt 2>/dev/null; then fail "remount,rw: touch taken"; fi
mount -o remount,ro /mnt || fail "remount,ro"
ok "remount,rw refused: $(dmesg | grep 'remount read-write refused' | head -n1)"
umount /mnt || fail umount
dmesg -c > /dev/null
mount -t bcachefs -o ro,fsck,nochanges /dev/vda /mnt || fail "mount -o ro,fsck,nochanges"
i=0
while ! grep -q '^passes: [1-9]' /sys/fs/bcachefs/*/internal/gc_status ||
    grep -q '^running: 1$' /sys/fs/bcachefs/*/internal/gc_status; do
    i=$((i + 1)); [ $i -le 1200 ] || fail "no gc pass after -o fsck"
    sleep 0.5
done
umount /mnt || fail umount
ok "no gc pass on a plain mount, one with -o ro,fsck,nochanges"
dmesg -c > /dev/null
mount -t bcachefs /dev/vda /mnt 2>/dev/null && umount /mnt
dmesg | grep -q "read-write mounts are not supported" || fail "read-write mount not refused"
dmesg -c > /dev/null
mount -t bcachefs -o ro,fsck,fix_errors,nochanges /dev/vda /mnt || fail "mount -o ro,fsck,fix_errors,nochanges"
dmesg | grep -q "found nothing to repair" || { dmesg; fail "fix_errors,nochanges: no repair pass logged"; }
umount /mnt || fail umount
ok "fix_errors,nochanges on a read-only mount: $(dmesg | grep -m1 'found nothing to repair')"
# A mount that repairs must be its filesystem's only one.
mkdir -p /mnt2
mount -t bcachefs -o ro /dev/vda /mnt || fail "mount -o ro"
dmesg -c > /dev/null
if mount -t bcachefs -o fsck,fix_errors /dev/vda /mnt2 2>/dev/null; then fail "fix_errors beside a mount: mounted"; fi
dmesg | grep -q "busy: the filesystem is mounted already" || { dmesg; fail "fix_errors beside a mount: no log line"; }
umount /mnt || fail umount
ok "fix_errors beside a mount refused: $(dmesg | grep -m1 'busy:')"
ok "read-write mount refused (mount may retry read-only)"
# An accounting leaf that cannot be read: a repair at mount leaves the findings whose
# repair goes to that leaf, saying why, repairs nothing else here, and the mount
# goes on (it used to fail with EIO and no line of its own).
mount -t bcachefs -o ro /dev/vda /mnt || fail "mount -o ro"
b=$(sed -n 's/^  ptr: *[^ ]* 0:\([0-9]*\):0 .*/\1/p' /sys/kernel/debug/bcachefs/*/btrees/accounting/nodes | head -n 1)
umount /mnt || fail umount
[ -n "$b" ] || fail "no accounting leaf in the nodes dump"
# basic's buckets are 128 sectors: the leaf's header is zeroed.
dd if=/dev/zero of=/dev/vda bs=512 seek=$((b * 128)) count=8 conv=notrunc 2>/dev/null
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors /dev/vda /mnt || { dmesg | tail -n 5; fail "fix_errors over an unreadable accounting leaf: mount"; }
dmesg | grep -q "not fixed (the leaf holding its key cannot be read): accounting: accounting mismatch" ||
    { dmesg | grep repair | tail -n 5; fail "unreadable accounting leaf: no finding left with its reason"; }
dmesg | grep -q "repair: .* findings: fixing 0, leaving" || fail "unreadable accounting leaf: something repaired"
[ -f /mnt/hello.txt ] || fail "unreadable accounting leaf: no hello.txt"
umount /mnt || fail umount
ok "fix_errors over an unreadable accounting leaf: mounted, $(dmesg | grep -o 'repair: [0-9]* findings: [^;]*')"
# The primary superblock gone: a backup copy serves, as upstream's mount does.
dd if=/dev/zero of=/dev/vda bs=512 seek=8 count=1 conv=notrunc 2>/dev/null
dmesg -c > /dev/null
mount -t bcachefs -o ro /dev/vda /mnt || { dmesg; fail "mount with the primary superblock zeroed"; }
[ -f /mnt/hello.txt ] || fail "no hello.txt through the backup superblock"
umount /mnt || fail umount
dmesg | grep -q "using the superblock copy at sector" || { dmesg; fail "the backup copy was not logged"; }
ok "primary superblock zeroed: $(dmesg | grep -m1 'using the superblock copy')"
# Every copy and the layout gone: no superblock.
for s in 7 2056 260096; do dd if=/dev/zero of=/dev/vda bs=512 seek=$s count=1 conv=notrunc 2>/dev/null; done
try "no superblock" "not a bcachefs superblock" -o ro /dev/vda
ls /sys/kernel/debug/bcachefs | grep -q . && fail "debugfs entries left behind"
rmmod bcachefs || fail rmmod
ok "module unloads after failed mounts"
