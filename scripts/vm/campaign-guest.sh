# Guest side of the reliability campaign (scripts/campaign.sh boots it through
# scripts/vm/run.sh; not a test of its own). /data/cases lists one case per line:
#   NAME DEVICES [opts=OPTS] [kill=DEV]
# DEVICES as mount takes them (/dev/vda or /dev/vda:/dev/vdb), OPTS extra mount
# options after ro; kill=DEV: right after the mount, one sector written at the
# start of DEV (before its superblock: nothing there is read), the cue of a
# blkdebug rule that fails every later read of DEV (scripts/vm/io-errors.sh). Each case is mounted read-only, walked with every file, symlink
# and xattr read (walkread), a gc pass triggered, every debugfs dump read while it
# runs, then unmounted. It prints
#   CASE-START NAME                            before anything touches the disk
#   CASE NAME mounted paths=.. files=.. ..     or
#   CASE NAME refused rc=N: <the log's last bcachefs line>
#   CASE NAME silent rc=N                      refused with no log line (a failure)
# and reloads the module every $every cases. A kernel report or a hang ends the
# boot; the host names the case from the last CASE-START.
. /lib.sh
every=${CAMPAIGN_RELOAD:-8}
# A task blocked for a minute is a hang (the default two minutes would outlast
# most boots' timeouts); a busy TCG guest is slow, not that slow.
echo 60 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
mkdir -p /mnt
n=0
while read -r name devs rest; do
    [ -n "$name" ] || continue
    opts= ; kill=
    for kv in $rest; do
        case $kv in opts=*) opts=${kv#opts=};; kill=*) kill=${kv#kill=};; esac
    done
    echo "CASE-START $name"
    dmesg -c > /dev/null
    if mount -t bcachefs -o "ro${opts:+,$opts}" "$devs" /mnt 2> /tmp/merr; then
        if [ -n "$kill" ]; then
            dd if=/dev/zero of="$kill" bs=512 count=1 conv=fsync 2>&1 | grep -v records || true
        fi
        r=$(walkread /mnt 2> /tmp/werr)
        # A gc pass, with every debugfs dump read beside it; the unmount then
        # stops the pass if it still runs.
        for g in /sys/fs/bcachefs/*/internal/trigger_gc; do echo 1 > "$g"; done
        walkread /sys/kernel/debug/bcachefs > /dev/null 2>&1
        if ! umount /mnt; then
            echo "CASE $name umount-failed"
            continue
        fi
        head -n 3 /tmp/werr | sed 's/^/CASE-ERR /'
        echo "CASE $name mounted $r"
    else
        rc=$?
        line=$(dmesg | grep 'bcachefs' | grep -v ': unmounted$' | tail -n 1)
        if [ -n "$line" ]; then
            echo "CASE $name refused rc=$rc: ${line#*] }"
        else
            echo "CASE $name silent rc=$rc: $(cat /tmp/merr)"
        fi
    fi
    n=$((n + 1))
    if [ $((n % every)) = 0 ]; then
        rmmod bcachefs || echo "CAMPAIGN rmmod failed"
        insmod /bcachefs.ko || echo "CAMPAIGN insmod failed"
    fi
done < /data/cases
echo "CAMPAIGN-DONE $n"
