# VM test: load, mount, dump with readers still running, unmount, unload: 10 times.
# Unmount waits for reads in flight; readers left with open files get errors.
# Disks: churn
# Needs: nomodule
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
i=0
while [ $i -lt 10 ]; do
    insmod /bcachefs.ko || fail "insmod #$i"
    mount -t bcachefs -o ro /dev/vda /mnt || fail "mount #$i"
    d=$(fsdir)
    for b in inodes extents dirents alloc; do
        cat "$d/btrees/$b/keys" > /dev/null 2>&1 &
    done
    umount /mnt || fail "umount #$i"
    wait
    [ -e "$d" ] && fail "debugfs directory left after umount"
    rmmod bcachefs || fail "rmmod #$i"
    i=$((i + 1))
done
ok "10 load/mount/dump/unmount/unload cycles"
