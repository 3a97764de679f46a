# VM test: file data read through mmap and through odd-sized reads at odd offsets
# (straddling extent edges, holes, inline data and compressed extents) gives the
# manifest's bytes. Readahead has several data bios in flight at once (debugfs
# data_reads).
# Disks: basic lz4 zstd csum-xxhash churn
# Manifests: basic lz4 zstd csum-xxhash churn
# Timeout: 1200
. /lib.sh
mkdir -p /mnt
n=0
most_all=0
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
    reads=$(sed -n 's/^reads issued\t//p' "$(fsdir)/data_reads")
    most=$(sed -n 's/^most in flight\t//p' "$(fsdir)/data_reads")
    left=$(sed -n 's/^in flight\t//p' "$(fsdir)/data_reads")
    [ "${reads:-0}" -gt 0 ] || fail "$fx: no data reads counted"
    [ "$left" = 0 ] || fail "$fx: $left data bios still in flight after the reads"
    [ "$most" -gt "$most_all" ] && most_all=$most
    ok "$fx: $files files equal the manifest through mmap and odd-sized reads ($reads replica reads, at most $most bios in flight)"
    umount /mnt || fail "umount $fx"
done
[ "$most_all" -gt 1 ] || fail "readahead never had two data bios in flight (at most $most_all)"
ok "readahead had up to $most_all data bios in flight at once"
