# VM test: the module registers its filesystem type and debugfs root and
# leaves no trace when unloaded; 20 load/unload cycles stay silent.
# Needs: module.
. /lib.sh
grep -qw bcachefs /proc/filesystems || fail "bcachefs not in /proc/filesystems"
[ -d /sys/kernel/debug/bcachefs ] || fail "no debugfs root"
ok "registered"
rmmod bcachefs || fail "rmmod"
grep -qw bcachefs /proc/filesystems && fail "fs type still registered after rmmod"
[ -d /sys/kernel/debug/bcachefs ] && fail "debugfs root left behind"
ok "unloaded cleanly"
i=0
while [ $i -lt 20 ]; do
    insmod /bcachefs.ko || fail "insmod #$i"
    rmmod bcachefs || fail "rmmod #$i"
    i=$((i + 1))
done
ok "20 load/unload cycles"
insmod /bcachefs.ko fs_name=bcachefs_rs || fail "insmod fs_name=bcachefs_rs"
grep -qw bcachefs_rs /proc/filesystems || fail "renamed type missing"
[ -d /sys/kernel/debug/bcachefs_rs ] || fail "renamed debugfs root missing"
rmmod bcachefs
ok "fs_name parameter renames the type"
