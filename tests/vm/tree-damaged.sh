# VM test: damaged filesystems read what can be read and fail the rest with EIO.
# - replicas2 with a later bset of every node failing its checksum on the first
#   device: every node is read from the second whole, and the retries are logged;
# - replicas2 with every btree node and data extent on its first device overwritten:
#   every file still reads right (from the second device), and the retries are logged;
# - the damaged fixtures mount; their tree equals what bcachefs-rs reads offline from
#   the same image (files whose extents sit in damaged-topology's lost leaf show EIO
#   on both sides), and nothing oopses.
# Disks: damaged-csum damaged-keys damaged-topology replicas2/dev0 replicas2/dev1
# Manifests: damaged-csum damaged-keys damaged-topology replicas2
# Files: ../shared/fixtures/replicas2/super.txt
# Timeout: 1800
. /lib.sh
mkdir -p /mnt
n=0
for fx in damaged-csum damaged-keys damaged-topology; do
    dev=/dev/vd$(echo abc | cut -c$((n + 1)))
    n=$((n + 1))
    dmesg -c > /dev/null
    mount -t bcachefs -o ro $dev /mnt || fail "mount $fx"
    manifest /mnt > /tmp/$fx.tsv || fail "walk $fx"
    umount /mnt || fail "umount $fx"
    if ! cmp /tmp/$fx.tsv /data/$fx.manifest; then
        diff /tmp/$fx.tsv /data/$fx.manifest | head -n 20
        fail "$fx: the tree differs from the offline reading"
    fi
    eio=$(grep -c 'EIO$' /tmp/$fx.tsv)
    ok "$fx: $(($(wc -l < /tmp/$fx.tsv) - 1)) paths as read offline, $eio unreadable"
    dmesg | grep -m 3 'bcachefs'
    if [ $fx = damaged-topology ]; then
        [ "$eio" -gt 0 ] || fail "damaged-topology: no file gave EIO"
        dmesg | grep -q 'error reading btree node' || fail "damaged-topology: the lost leaf was not logged"
    fi
done

# replicas2: break every node and data extent on device 0.
bs=$(sed -n 's/^ *Bucket size: *\([0-9]*\)\.0k$/\1/p' /data/super.txt | head -n1)
[ -n "$bs" ] || fail "no bucket size in super.txt"
bs=$((bs * 2))
# replicas2, first: in every node with a later bset, that bset's header (a bit of
# its journal seq, past the checksum) is flipped on device 0 only. Its checksum
# fails there, so the node is read from device 1 whole: nothing may be lost (ending
# the node at the bad bset would lose its keys).
mount -t bcachefs -o ro /dev/vdd:/dev/vde /mnt || fail "mount replicas2"
d=$(fsdir)
: > /tmp/later0
for b in "$d"/btrees/*; do
    [ -f "$b/ondisk" ] && [ -f "$b/nodes" ] || continue
    # Each node's device-0 copy, in the order both dumps list nodes (the leaves
    # and the interior nodes above them; "-" for none).
    awk '$1 == "u64s" { if (started) print p0; started = 1; p0 = "-" }
         $1 == "ptr:" && $3 ~ /^0:[0-9]+:[0-9]+$/ { p0 = $3 }
         END { if (started) print p0 }' "$b/nodes" > /tmp/n0
    # Each node's second bset, in blocks of 512 bytes ("-" for none).
    awk '$1 == "offset" { if ($2 == 0) { if (started) print s; started = 1; s = "-" } else if (s == "-") s = $2 }
         END { if (started) print s }' "$b/ondisk" > /tmp/o
    # An empty btree's root points nowhere: no node on disk to list.
    grep -q . /tmp/o || continue
    [ "$(wc -l < /tmp/n0)" = "$(wc -l < /tmp/o)" ] || fail "$b: nodes and ondisk list different nodes"
    paste -d' ' /tmp/n0 /tmp/o | awk '$1 != "-" && $2 != "-"' >> /tmp/later0
done
umount /mnt
grep -q . /tmp/later0 || fail "no node with a later bset"
while read -r p o; do
    IFS=: read -r dev bucket off <<EOT
$p
EOT
    pos=$(( (bucket * bs + off + o) * 512 + 24 ))
    v=$(dd if=/dev/vdd bs=1 skip=$pos count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    printf "$(printf '\\%03o' $((v ^ 1)))" | dd of=/dev/vdd bs=1 seek=$pos conv=notrunc 2>/dev/null ||
        fail "flip at $pos"
done < /tmp/later0
sync
echo 3 > /proc/sys/vm/drop_caches
dmesg -c > /dev/null
mount -t bcachefs -o ro /dev/vdd:/dev/vde /mnt || fail "mount replicas2 with later bsets broken"
manifest /mnt > /tmp/replicas2.tsv || fail "walk replicas2"
if ! cmp /tmp/replicas2.tsv /data/replicas2.manifest; then
    diff /tmp/replicas2.tsv /data/replicas2.manifest | head -n 20
    fail "replicas2 with later bsets broken on device 0: the tree differs from manifest.tsv"
fi
nodes=$(dmesg | grep -c 'btree node read after replica failure')
[ "$nodes" -gt 0 ] || fail "no node retry logged for a later bset"
dmesg | grep -m 1 'btree node read after replica failure'
ok "replicas2, a later bset of $(grep -c . /tmp/later0) nodes broken on device 0: every file reads right ($nodes node retries logged)"
umount /mnt || fail umount

mount -t bcachefs -o ro /dev/vdd:/dev/vde /mnt || fail "mount replicas2"
d=$(fsdir)
# The device-0 copy of each key with two copies ("ptr: NAME DEV:BUCKET:OFFSET" lines
# after each "u64s" key line; "ptr: 255:0" placeholders do not count); a few
# extents still wait for their second copy (reconcile: need_rb=data_replicas) and
# are left alone.
copies() { # KIND
    awk -v kind=$1 '
        function flush() { if (n >= 2 && p0 != "") print kind " " p0; n = 0; p0 = "" }
        $1 == "u64s" { flush() }
        $1 == "ptr:" && $3 ~ /^[0-9]+:[0-9]+:[0-9]+$/ { n++; if ($3 ~ /^0:/) p0 = $3 }
        END { flush() }'
}
cat "$d"/btrees/*/nodes "$d"/btrees/*/nodes.level* 2>/dev/null | copies node > /tmp/ptrs0
copies data < "$d/btrees/extents/keys" >> /tmp/ptrs0
single=$(awk '$1 == "u64s" { if (n == 1) s++; n = 0 } $1 == "ptr:" && $3 ~ /:.*:/ { n++ } END { if (n == 1) s++; print s + 0 }' "$d/btrees/extents/keys")
umount /mnt
[ -s /tmp/ptrs0 ] || fail "no pointers to device 0 found"
echo "$(grep -c . /tmp/ptrs0) copies on device 0 to break; $single extents with one copy left alone"
while read -r kind p; do
    IFS=: read -r dev bucket off <<EOT
$p
EOT
    # Nodes: the header (bad magic); data: its first sector (checksum mismatch).
    count=1; [ $kind = node ] && count=8
    dd if=/dev/urandom of=/dev/vdd bs=512 seek=$((bucket * bs + off)) count=$count \
        conv=notrunc 2>/dev/null || fail dd
done < /tmp/ptrs0
sync
echo 3 > /proc/sys/vm/drop_caches
dmesg -c > /dev/null
mount -t bcachefs -o ro /dev/vdd:/dev/vde /mnt || fail "mount replicas2 with device 0 broken"
manifest /mnt > /tmp/replicas2.tsv || fail "walk replicas2"
if ! cmp /tmp/replicas2.tsv /data/replicas2.manifest; then
    diff /tmp/replicas2.tsv /data/replicas2.manifest | head -n 20
    fail "replicas2 with device 0 broken: the tree differs from manifest.tsv"
fi
nodes=$(dmesg | grep -c 'btree node read after replica failure')
data=$(dmesg | grep -c 'read from another replica')
dmesg | grep -m 2 'data checksum mismatch'
[ "$nodes" -gt 0 ] || fail "no node retry logged"
[ "$data" -gt 0 ] || fail "no data retry logged"
ok "replicas2, $(grep -c . /tmp/ptrs0) copies on device 0 broken: every file reads right ($nodes node and $data data retries logged)"
umount /mnt || fail umount
