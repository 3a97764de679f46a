# VM test: damaged fixtures mount and dump without an oops; the bad node's error is
# logged once however often it is dumped.
# Disks: damaged-csum damaged-keys damaged-topology
# Timeout: 900
. /lib.sh
mkdir -p /mnt
for spec in damaged-csum:vda damaged-keys:vdb damaged-topology:vdc; do
    fx=${spec%%:*}
    dmesg -c > /dev/null
    mount -t bcachefs -o ro "/dev/${spec#*:}" /mnt || fail "mount $fx"
    for pass in 1 2; do
        for b in "$(fsdir)"/btrees/*; do
            for f in "$b"/*; do cat "$f" > /dev/null 2>&1; done
        done
    done
    n=$(dmesg | grep -v ': gc: ' | grep -c 'bcachefs: .*btree node')
    dmesg | grep -v ': gc: ' | grep 'bcachefs: .*btree node'
    [ "$n" -eq 1 ] || fail "$fx: $n node errors logged, expected 1"
    umount /mnt || fail "umount $fx"
    ok "$fx: dumped twice, its bad node logged once"
done
