# The main job's guest script (make demo): the module is loaded; mount the attached
# bcachefs image read-only, show what the module read (debugfs: btree keys and the
# node cache counters), unmount and unload. The mounted tree itself is empty until
# the VFS work lands.
echo "== /proc/filesystems:"; grep bcachefs /proc/filesystems
echo "== mount -t bcachefs -o ro /dev/vda /mnt"
mkdir -p /mnt
if mount -t bcachefs -o ro /dev/vda /mnt; then
    d=$(dirname /sys/kernel/debug/bcachefs/*/btree_cache)
    echo "== $d"; ls "$d" "$d/btrees"
    echo "== first keys of the dirents btree:"
    head -n 8 "$d/btrees/dirents/keys"
    echo "== inodes btree: $(grep -c '^u64s' "$d/btrees/inodes/keys") keys"
    echo "== node cache:"; cat "$d/btree_cache"
    umount /mnt && echo "== unmounted"
else
    echo "mount failed (rc $?); kernel log:"
    dmesg | grep -i bcachefs | tail -n 3
fi
rmmod bcachefs && echo "== module unloaded"
exit 0
