# Benchmark (not a test): inside the VM, the two biggest files of basic, zstd and lz4
# (docs/lorem.txt, 508,890 bytes, and sparse.bin, 5,246,976 bytes) read cold with
# cat, twice per image: the read path for big checksummed and compressed extents.
# Run: scripts/bench.sh big-files
# Disks: basic zstd lz4
# Timeout: 900
. /lib.sh
mkdir -p /mnt
set -- basic zstd lz4
for d in vda vdb vdc; do
    for run in 1 2; do
        echo 3 > /proc/sys/vm/drop_caches
        mount -t bcachefs -o ro /dev/$d /mnt || fail "mount $1"
        t0=$(now)
        n=$(cat /mnt/docs/lorem.txt /mnt/sparse.bin | wc -c)
        t1=$(now)
        umount /mnt || fail "umount $1"
        echo "BENCH big-files $1 run $run: $n bytes in $(secs "$t0" "$t1") s"
    done
    shift
done
