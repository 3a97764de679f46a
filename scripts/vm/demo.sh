# The main job's guest script (make demo): the module is loaded; show it, then mount
# the attached bcachefs image read-only and list it (mount is refused with a clear
# error until the mount work lands: the demo shows what happens today).
echo "== /proc/filesystems:"; grep bcachefs /proc/filesystems
echo "== debugfs root:"; ls -d /sys/kernel/debug/bcachefs
echo "== mount -t bcachefs -o ro /dev/vda /mnt"
if mount -t bcachefs -o ro /dev/vda /mnt; then
    ls -la /mnt
    umount /mnt
else
    echo "mount failed (rc $?); kernel log:"
    dmesg | grep -i bcachefs | tail -n 3
fi
rmmod bcachefs && echo "== module unloaded"
exit 0
