# VM test: file data read through mmap and through odd-sized reads at odd offsets
# (straddling extent edges, holes, inline data and compressed extents) gives the
# manifest's bytes.
# Disks: basic lz4 zstd csum-xxhash churn
# Manifests: basic lz4 zstd csum-xxhash churn
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
n=0
for fx in basic lz4 zstd csum-xxhash churn; do
    dev=/dev/vd$(echo abcde | cut -c$((n + 1)))
    n=$((n + 1))
    mount -t bcachefs -o ro $dev /mnt || fail "mount $fx"
    # Every file over 4 KiB (churn: the first 60), and a few small ones.
    awk -F'\t' '$2 == "file" && $4 > 4096 { print $1 "\t" $6 }' /data/$fx.manifest | head -n 60 > /tmp/files
    awk -F'\t' '$2 == "file" && $4 <= 4096 && $4 > 0 { print $1 "\t" $6 }' /data/$fx.manifest | head -n 8 >> /tmp/files
    files=0
    while IFS="$(printf '\t')" read -r p sum; do
        f="/mnt/$p"
        got=$(readcheck mmap "$f" | sha256sum | cut -d' ' -f1)
        [ "$got" = "$sum" ] || fail "$fx: $p through mmap: $got, manifest $sum"
        got=$(readcheck odd "$f" | sha256sum | cut -d' ' -f1)
        [ "$got" = "$sum" ] || fail "$fx: $p in odd-sized reads: $got, manifest $sum"
        readcheck cmp "$f" > /dev/null || fail "$fx: $p: pread and mmap windows differ"
        files=$((files + 1))
    done < /tmp/files
    ok "$fx: $files files equal the manifest through mmap and odd-sized reads"
    umount /mnt || fail "umount $fx"
done
