#!/usr/bin/env bash
# Boot the test kernel under QEMU TCG with bcachefs.ko and run one guest script.
#
#   scripts/vm/run.sh [--script FILE] [--disk IMG]... [--rw] [--no-module] [--timeout SEC]
#                     [--append ARGS] [--name NAME] [--kill-on PATTERN]
#
# Disks attach in order as /dev/vda, /dev/vdb, ... (raw, snapshot mode: the guest's
# writes never reach the image files). With --rw they attach writable: what the
# guest writes lands in the files (refused for ../shared and the fixture cache,
# which other runs read: give copies). A disk given as blkdebug:CONF:IMG attaches
# IMG through QEMU's blkdebug driver with the error rules in CONF (IO errors on
# cue: e.g. an [inject-error] section with event "write_aio", iotype "write" and
# errno "5" fails every write). The guest loads the module (unless
# --no-module), runs the script with /bin/sh, and powers off. Everything the
# script prints is shown; the exit status is the script's, or non-zero when the
# kernel printed a BUG/WARNING/Oops/KASAN/lockdep report, or the guest hung.
# Without --script: an interactive shell. The console log is kept in
# build/vm/<name>.log. Extra files for the guest: $VM_FILES (space separated),
# copied to /data in the guest. $VM_KERNEL_DIR and $VM_MODULE boot another kernel
# build (scripts/build-kernel.sh's output directory) with a module built for it
# (the benchmark kernel: scripts/bench.sh). --kill-on PATTERN kills QEMU (SIGKILL:
# no unmount, no power off) as soon as the console shows a line matching the
# extended regex PATTERN: the run passes when it was killed so with no kernel report
# before, and fails when the guest ended or hung without showing it (crash tests:
# with --rw the disks keep what the guest had written by then).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
script="" ; disks=() ; module=1 ; timeout=${VM_TIMEOUT:-600} ; append="" ; name="" ; rw=0
kill_on=""
while [ $# -gt 0 ]; do
    case $1 in
        --script) script=$2; shift;;
        --disk) disks+=("$2"); shift;;
        --no-module) module=0;;
        --rw) rw=1;;
        --timeout) timeout=$2; shift;;
        --append) append=$2; shift;;
        --name) name=$2; shift;;
        --kill-on) kill_on=$2; shift;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2;;
    esac
    shift
done
kdir=${VM_KERNEL_DIR:-$("$top/scripts/build-kernel.sh" 2>/dev/null | tail -n1)}
bz=$kdir/src/arch/x86/boot/bzImage
[ -f "$bz" ] || { echo "run.sh: no kernel image (make kernel)" >&2; exit 2; }
ko=${VM_MODULE:-$top/bcachefs.ko}
if [ $module = 1 ] && [ ! -f "$ko" ]; then echo "run.sh: no bcachefs.ko (make)" >&2; exit 2; fi
if [ ${#disks[@]} -eq 0 ] && [ -z "$script" ] && [ -n "${VM_SAMPLE_IMAGE:-}" ]; then
    disks=("$VM_SAMPLE_IMAGE")
fi
[ -n "$name" ] || name=$(basename "${script:-shell}" .sh)
out=$top/build/vm; mkdir -p "$out"
log=$out/$name.log
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,mnt,data,sys/kernel/debug}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
if [ -f "$ko" ]; then cp "$ko" "$root/bcachefs.ko"; fi
# Guest helpers (tests/vm/tools/*.c), static, in /bin.
for c in "$top"/tests/vm/tools/*.c; do
    clang-19 -static -O2 -Wall -Werror -o "$root/bin/$(basename "$c" .c)" "$c"
done
for f in ${VM_FILES:-}; do cp -r "$f" "$root/data/"; done
if [ -n "$script" ]; then cp "$script" "$root/test.sh"; fi
cp "$top/scripts/vm/lib.sh" "$root/lib.sh"
cat > "$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/panic_on_warn 2>/dev/null || true
if [ $module = 1 ]; then
    insmod /bcachefs.ko || echo "VMTEST: insmod failed"
fi
if [ -f /test.sh ]; then
    echo "VMTEST-START"
    sh /test.sh
    rc=\$?
    echo "VMTEST-EXIT: \$rc"
else
    setsid cttyhack sh
fi
sync
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"
drives=()
snap=on
if [ $rw = 1 ]; then
    snap=off
    cache=$(realpath -m "${BCACHEFS_RS_CACHE:-$HOME/.cache/bcachefs-rs}")
    shared=$(realpath -m "$top/../shared")
    for d in "${disks[@]}"; do
        case $d in blkdebug:*) d=${d#blkdebug:}; d=${d#*:};; esac
        case $(realpath -m "$d") in
            "$cache"/*|"$shared"/*)
                echo "run.sh: --rw would write to $d (a shared fixture or the fixture cache): give a copy" >&2
                exit 2;;
        esac
    done
fi
for d in "${disks[@]}"; do drives+=(-drive "file=$d,format=raw,if=virtio,snapshot=$snap"); done
# No network device and no VGA: the guest needs neither (its console is the
# serial port), and every virtio disk takes a PCI slot of the 32 (the repair test
# attaches 30).
qemu=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2G -kernel "$bz" -initrd "$work/initrd.gz"
      -append "console=ttyS0 panic=-1 oops=panic loglevel=6 $append" -nographic -no-reboot
      -nic none -vga none "${drives[@]}")
if [ -z "$script" ]; then
    exec "${qemu[@]}"
fi
splat=$(sed -n "s/^splat='\(.*\)'$/\1/p" "$top/scripts/vm/verdict.sh")
# A kernel report before the module or the test did anything (the first line naming
# bcachefs, KTAP or the test markers) is the test kernel failing to boot under TCG,
# seen once in many boots: boot once more, keeping that log (and, with --rw, the
# disks as they were before the first boot). Reports after that point always fail
# the test.
# run_killed: QEMU in the background, killed (SIGKILL) once the console shows
# $kill_on or at the timeout; sets killed.
run_killed() {
    "${qemu[@]}" < /dev/null > "$log" 2>&1 &
    local qpid=$! deadline=$(( $(date +%s) + timeout ))
    killed=0
    while kill -0 "$qpid" 2> /dev/null; do
        if grep -aqE "$kill_on" "$log"; then
            kill -9 "$qpid" 2> /dev/null || true
            killed=1
            break
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            kill -9 "$qpid" 2> /dev/null || true
            break
        fi
        sleep 0.05
    done
    wait "$qpid" 2> /dev/null || true
}
# With --rw, a boot that is thrown away still ran its test and wrote its disks:
# each disk is kept as it was before the first boot, and put back before the
# second.
rw_files=()
if [ $rw = 1 ]; then
    for d in "${disks[@]}"; do
        case $d in blkdebug:*) d=${d#blkdebug:}; d=${d#*:};; esac
        rw_files+=("$d")
    done
fi
for attempt in 1 2; do
    if [ $rw = 1 ]; then
        i=0
        for d in "${rw_files[@]}"; do
            if [ "$attempt" = 1 ]; then
                cp --sparse=always "$d" "$work/disk$i"
            else
                cp --sparse=always "$work/disk$i" "$d"
            fi
            i=$((i + 1))
        done
    fi
    set +e
    if [ -n "$kill_on" ]; then
        run_killed
        qrc=0
    else
        timeout --foreground -k 5 "$timeout" "${qemu[@]}" < /dev/null > "$log" 2>&1
        qrc=$?
    fi
    set -e
    first_report=$(grep -aEn "$splat" "$log" | head -n1 | cut -d: -f1 || true)
    first_ours=$(grep -aEn 'bcachefs|KTAP|VMTEST' "$log" | head -n1 | cut -d: -f1 || true)
    if [ "$attempt" = 1 ] && [ -n "$first_report" ] &&
        { [ -z "$first_ours" ] || [ "$first_report" -lt "$first_ours" ]; }; then
        cp "$log" "$log.early-boot"
        echo "run.sh: kernel report during early boot, before the module loaded ($log.early-boot); booting once more" >&2
        continue
    fi
    break
done
if [ -n "$kill_on" ]; then
    sed -n '/^VMTEST-START/,$p' "$log" | sed '1d' | grep -av '^VMTEST-EXIT' | tr -d '\r' || true
    reports=$(grep -aEn "$splat" "$log" | grep -av "VMTEST" | head -n 20 || true)
    if [ -n "$reports" ]; then
        printf '%s\n' "$reports" | sed 's/^/run.sh: kernel report: /' >&2
        echo "run.sh: FAIL (kernel report; console log: $log)" >&2
        exit 3
    fi
    if [ "$killed" = 0 ]; then
        echo "run.sh: FAIL (the console never showed '$kill_on'; console log: $log)" >&2
        exit 7
    fi
    echo "run.sh: killed QEMU at '$kill_on'"
    exit 0
fi
# What the script printed: the lines between the markers (kernel lines interleave).
sed -n '/^VMTEST-START/,/^VMTEST-EXIT/p' "$log" | sed '1d;$d' | tr -d '\r'
exec "$top/scripts/vm/verdict.sh" "$log" "$qrc"
