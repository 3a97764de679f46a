# VM test: every public fixture with a manifest mounts, and the tree read through
# the VFS (readdir, lookup, stat, read, readlink) equals its manifest.tsv exactly;
# unclean's journal is replayed in memory. Every file also reads the same through
# mmap and through odd-sized reads. The disks are writable copies, and a ro mount
# must leave each byte-identical (checked on the host after the run; unclean's
# journal is replayed in memory only).
# Writable: unchanged
# Disks: basic churn csum-crc64 csum-none csum-xxhash lz4 old-version unclean zstd replicas2/dev0 replicas2/dev1
# Manifests: basic churn csum-crc64 csum-none csum-xxhash lz4 old-version unclean zstd replicas2
# Timeout: 1800
. /lib.sh
mkdir -p /mnt
n=0
for fx in basic churn csum-crc64 csum-none csum-xxhash lz4 old-version unclean zstd replicas2; do
    dev=/dev/vd$(echo abcdefghijklmnop | cut -c$((n + 1)))
    n=$((n + 1))
    [ $fx = replicas2 ] && dev=$dev:/dev/vd$(echo abcdefghijklmnop | cut -c$((n + 1)))
    mount -t bcachefs -o ro $dev /mnt || fail "mount $fx ($dev)"
    manifest /mnt > /tmp/$fx.tsv || fail "walk $fx"
    if ! cmp /tmp/$fx.tsv /data/$fx.manifest; then
        diff /tmp/$fx.tsv /data/$fx.manifest | head -n 20
        fail "$fx: the tree differs from manifest.tsv"
    fi
    ok "$fx: $(($(wc -l < /tmp/$fx.tsv) - 1)) paths equal manifest.tsv"
    umount /mnt || fail "umount $fx"
done
