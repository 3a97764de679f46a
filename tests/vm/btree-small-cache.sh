# VM test: with a 16-node cache, a full dump of churn still equals the reference and
# the cache never holds more than 16 nodes.
# Disks: churn
# Refs: churn
# Needs: nomodule
# Timeout: 1200
. /lib.sh
insmod /bcachefs.ko btree_cache_max=16 || fail insmod
mkdir -p /mnt
mount -t bcachefs -o ro /dev/vda /mnt || fail mount
check_dumps /data/churn.sums || fail "dumps differ with a small cache"
cat "$(fsdir)/btree_cache"
[ "$(counter "max cached")" -le 16 ] || fail "cache grew past its limit"
[ "$(counter evictions)" -gt 0 ] || fail "nothing was evicted"
ok "small cache: reference bytes, at most $(counter "max cached") nodes, $(counter evictions) evictions"
umount /mnt || fail umount
rmmod bcachefs || fail rmmod
