# VM test: 8 readers dump every btree of churn at once on a cold cache: each gets the
# reference bytes, and each node is read once (the others wait on its in-flight bit).
# Disks: churn
# Refs: churn
# Needs: nomodule
# Timeout: 1500
. /lib.sh
# No gc pass at mount (the default; said here too): it would read every node
# before the readers start.
insmod /bcachefs.ko gc_at_mount=0 || fail insmod
mkdir -p /mnt
mount -t bcachefs -o ro /dev/vda /mnt || fail mount
i=0
while [ $i -lt 8 ]; do
    check_dumps /data/churn.sums > /tmp/reader.$i 2>&1 &
    i=$((i + 1))
done
wait
cat /tmp/reader.*
[ "$(grep -c ': 95 dumps compared, 0 differ' /tmp/reader.*  | grep -c ':1$')" -eq 8 ] ||
    fail "a reader saw different bytes"
ok "8 concurrent readers got the reference bytes"
cat "$(fsdir)/btree_cache"
reads=$(counter "reads issued"); misses=$(counter misses); cached=$(counter "nodes cached")
[ "$(counter evictions)" -eq 0 ] || fail "evictions with the default limit"
[ "$reads" -eq "$misses" ] || fail "$reads reads for $misses nodes missed"
[ "$reads" -eq "$cached" ] || fail "$reads reads for $cached nodes cached: a node was read twice"
[ "$(counter "read waits")" -gt 0 ] || fail "no reader ever waited on a read in flight"
ok "one read per node ($reads), $(counter "read waits") waits on the in-flight bit"
umount /mnt || fail umount
