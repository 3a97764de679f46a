# VM test: for every undamaged fixture, the module's debugfs dumps (keys, nodes,
# nodes.levelN, ondisk of every btree) equal the reference tool's listings.
# Disks: basic churn unclean csum-crc64 csum-none csum-xxhash lz4 zstd old-version replicas2/dev0 replicas2/dev1
# Refs: basic churn unclean csum-crc64 csum-none csum-xxhash lz4 zstd old-version replicas2
# Timeout: 1500
. /lib.sh
mkdir -p /mnt
rc=0
set -- basic:vda churn:vdb unclean:vdc csum-crc64:vdd csum-none:vde csum-xxhash:vdf \
    lz4:vdg zstd:vdh old-version:vdi replicas2:vdj:vdk
for spec in "$@"; do
    fx=${spec%%:*}
    devs=$(echo "${spec#*:}" | sed 's|vd|/dev/vd|g')
    mount -t bcachefs -o ro "$devs" /mnt || fail "mount $fx ($devs)"
    check_dumps "/data/$fx.sums" || rc=1
    umount /mnt || fail "umount $fx"
done
[ $rc -eq 0 ] || fail "dumps differ from the reference"
ok "every dump of every undamaged fixture equals the reference"
