# VM test: replicas2 with the first replica of an extents leaf overwritten still dumps
# the reference bytes, through a retry from the other device; with both replicas
# overwritten the dump fails with an error, logged once, and nothing crashes.
# Disks: replicas2/dev0 replicas2/dev1
# Refs: replicas2
# Files: ../shared/fixtures/replicas2/super.txt
# Timeout: 900
. /lib.sh
mkdir -p /mnt
bs=$(sed -n 's/^ *Bucket size: *\([0-9]*\)\.0k$/\1/p' /data/super.txt | head -n1)
[ -n "$bs" ] || fail "no bucket size in super.txt"
bs=$((bs * 2))
mount -t bcachefs -o ro /dev/vda:/dev/vdb /mnt || fail mount
# The first leaf's pointer: "ptr: NAME DEV:BUCKET:OFFSET gen G", one line per replica.
grep 'ptr:' "$(fsdir)/btrees/extents/nodes" | head -n2 | awk '{print $3}' > /tmp/ptrs
umount /mnt
echo "first extents leaf at $(cat /tmp/ptrs | tr '\n' ' '), bucket $bs sectors"
clobber() {
    local dev bucket off
    IFS=: read -r dev bucket off <<EOT
$1
EOT
    dd if=/dev/zero of=/dev/vd$(echo abcd | cut -c$((dev + 1))) bs=512 \
        seek=$((bucket * bs + off)) count=8 conv=notrunc 2>/dev/null || fail "dd"
}
clobber "$(sed -n 1p /tmp/ptrs)"
sync
echo 3 > /proc/sys/vm/drop_caches
dmesg -c > /dev/null
mount -t bcachefs -o ro /dev/vda:/dev/vdb /mnt || fail "mount with one replica broken"
check_dumps /data/replicas2.sums || fail "dumps differ with one replica broken"
[ "$(counter "replica retries")" -gt 0 ] || fail "retry counter did not move"
ok "one replica broken: every dump equals the reference, $(counter "replica retries") retries"
dmesg | grep "replica failure" || fail "the retry was not logged"
umount /mnt
clobber "$(sed -n 2p /tmp/ptrs)"
sync
echo 3 > /proc/sys/vm/drop_caches
dmesg -c > /dev/null
mount -t bcachefs -o ro /dev/vda:/dev/vdb /mnt || fail "mount with both replicas broken"
cat "$(fsdir)/btrees/extents/keys" > /tmp/k1 2>/tmp/e1 && fail "dump with both replicas broken did not fail"
cat /tmp/e1
cat "$(fsdir)/btrees/extents/keys" > /tmp/k2 2>/dev/null
[ "$(dmesg | grep -c 'error reading btree node')" -eq 1 ] || { dmesg | tail; fail "error not logged exactly once"; }
dmesg | grep 'error reading btree node'
check_dumps /data/replicas2.sums > /tmp/sums || true
grep -q "differs: extents/keys" /tmp/sums || fail "extents keys should differ"
ok "both replicas broken: the dump fails with an error logged once"
umount /mnt || fail umount
