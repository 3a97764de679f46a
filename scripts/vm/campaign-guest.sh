# Guest side of the reliability campaign (scripts/campaign.sh boots it through
# scripts/vm/run.sh; not a test of its own). /data/cases lists one case per line:
#   NAME DEVICES [opts=OPTS] [kill=DEV] [fix=1]
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
# and reloads the module every $every cases. With fix=1, an image the read-only
# mount took is then mounted with fsck,fix_errors (a repair at mount: the disks are
# snapshots, so its writes last until the boot ends), walked and unmounted, and
# mounted read-only once more: a repair may write, refuse (with a log line) or go
# emergency read-only, but must leave an image that still mounts, with at least the
# paths, files and bytes the first walk read and no more EIOs. Before the CASE line it prints
#   CASE-FIX NAME repaired|unchanged|emergency|refused ..., mounts after: ..  or
#   CASE-FIX NAME broke|lost|silent|umount-failed ...  (a failure)
# A kernel report or a hang ends the boot; the host names the case from the last
# CASE-START (a case's CASE line comes after its repair).
. /lib.sh
every=${CAMPAIGN_RELOAD:-8}
# A task blocked for a minute is a hang (the default two minutes would outlast
# most boots' timeouts); a busy TCG guest is slow, not that slow.
echo 60 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
mkdir -p /mnt
# last_line: the log's last bcachefs line but unmount's.
last_line() {
    dmesg | grep 'bcachefs' | grep -v ': unmounted$' | tail -n 1
}
# count WHAT WALK: the WHAT= figure of a walkread line.
count() {
    echo " $2" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"
}
# fix_case NAME DEVICES WALK: the repair at mount described above, WALK the first
# walk's figures; prints its CASE-FIX line.
fix_case() {
    local outcome line r rc=0
    dmesg -c > /dev/null
    if mount -t bcachefs -o fsck,fix_errors "$2" /mnt 2> /tmp/merr; then
        walkread /mnt > /dev/null 2>&1 || true
        if ! umount /mnt; then
            echo "CASE-FIX $1 umount-failed"
            return
        fi
        if dmesg | grep -q 'emergency read-only'; then
            outcome=emergency
        elif dmesg | grep -q 'repair: wrote '; then
            outcome="repaired: $(dmesg | grep -o 'repair: [0-9]* findings: [^;]*' | head -n 1)"
        else
            line=$(dmesg | grep -oE 'repair: ([0-9]+ findings: [^;]*|gc pass .*)' | tail -n 1)
            outcome="unchanged: ${line:-$(dmesg | grep -o 'repair: .*' | tail -n 1)}"
        fi
    else
        rc=$?
        line=$(last_line)
        if [ -z "$line" ]; then
            echo "CASE-FIX $1 silent rc=$rc: $(cat /tmp/merr)"
            return
        fi
        outcome="refused rc=$rc: ${line#*] }"
    fi
    dmesg -c > /dev/null
    if mount -t bcachefs -o ro "$2" /mnt 2> /tmp/merr; then
        r=$(walkread /mnt 2> /dev/null)
        if ! umount /mnt; then
            echo "CASE-FIX $1 umount-failed after the repair"
            return
        fi
        # Nothing read before is lost: as many paths, files and bytes, no more EIOs.
        # A walk that printed no figures counts as a loss.
        local w a b
        for w in paths files bytes eio; do
            a=$(count $w "$r"); b=$(count $w "$3")
            if [ -z "$a" ] || [ -z "$b" ] ||
                { [ $w = eio ] && [ "$a" -gt "$b" ]; } ||
                { [ $w != eio ] && [ "$a" -lt "$b" ]; }; then
                echo "CASE-FIX $1 lost: $w after the repair ($outcome): $r, before: $3"
                return
            fi
        done
        echo "CASE-FIX $1 $outcome, mounts after: $r"
    else
        rc=$?
        echo "CASE-FIX $1 broke rc=$rc: no longer mounts after the repair ($outcome): $(last_line)"
    fi
}
n=0
while read -r name devs rest; do
    [ -n "$name" ] || continue
    opts= ; kill= ; fix=
    for kv in $rest; do
        case $kv in opts=*) opts=${kv#opts=};; kill=*) kill=${kv#kill=};; fix=*) fix=${kv#fix=};; esac
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
        [ "$fix" = 1 ] && fix_case "$name" "$devs" "$r"
        echo "CASE $name mounted $r"
    else
        rc=$?
        line=$(last_line)
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
