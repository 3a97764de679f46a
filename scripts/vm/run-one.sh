#!/usr/bin/env bash
# Run one guest test script in the VM, with what its header asks for:
#   # Needs: module            load bcachefs.ko before the script (default)
#   # Needs: nomodule          do not (it is still at /bcachefs.ko, for the script to load)
#   # Disks: FIXTURE[/FILE][@SIZE]... attach fixture images (unpacked once into the
#                              cache; @SIZE: a copy truncated to SIZE, e.g. @1M);
#                              the test is skipped with a message when ../shared/fixtures
#                              is absent
#   # Refs: FIXTURE...         digests of those fixtures' reference listings, in
#                              /data/FIXTURE.sums (scripts/vm/ref-sums.sh)
#   # Manifests: FIXTURE...    those fixtures' manifest.tsv, as /data/FIXTURE.manifest;
#                              for a fixture without one (the damaged images), what
#                              the userspace tool reads there (bcachefs-rs manifest)
#   # Files: PATH...           extra host files, in /data in the guest
#   # Writable: unchanged      attach writable copies of the disks (--rw) and fail
#                              unless every copy is byte-identical afterwards
#   # Host: SCRIPT             host-prepared writable disks (SCRIPT relative to the
#                              repo top): before the VM, `SCRIPT prepare DIR` (DIR a
#                              fresh temp dir) makes disk images in DIR and prints
#                              their paths, one per line, in attach order (after any
#                              Disks:); they attach writable (--rw; Disks: then attach
#                              as copies). After the VM exits, whatever its status,
#                              `SCRIPT verify DIR` checks them; the test fails if the
#                              VM run or verify fails. prepare exiting 77 skips the
#                              test (it says why on stderr); DIR is removed afterwards.
#                              A line blkdebug:CONF:IMG attaches IMG through QEMU's
#                              blkdebug driver with the error rules in CONF (run.sh)
#   # Timeout: SECONDS
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
t=$1
hdr() { sed -n "s/^# $1: *//p" "$t" | head -n1; }
args=(--script "$t" --name "$(basename "$t" .sh)")
# Temporary files and directories, removed on exit.
tmps=()
trap 'rm -rf "${tmps[@]}"' EXIT
case "$(hdr Needs)" in *nomodule*) args+=(--no-module);; esac
to=$(hdr Timeout); [ -n "$to" ] && args+=(--timeout "$to")
disks=$(hdr Disks)
if [ -n "$disks" ]; then
    fixtures=${FIXTURES:-$top/../shared/fixtures}
    if [ ! -d "$fixtures" ]; then
        echo "SKIP $(basename "$t"): $fixtures not present"
        exit 0
    fi
    tdir=$(mktemp -d)
    tmps+=("$tdir")
    for spec in $disks; do
        size=; case $spec in *@*) size=${spec#*@}; spec=${spec%@*};; esac
        fx=${spec%%/*}; f=${spec#*/}; [ "$f" = "$spec" ] && f=img
        img=$("$top/scripts/fixture-images.sh" "$fx" | grep "/$f\$") ||
            { echo "run-one: no image $spec" >&2; exit 2; }
        if [ -n "$size" ] || [ -n "$(hdr Writable)" ] || [ -n "$(hdr Host)" ]; then
            # A copy (truncated for FIXTURE[/FILE]@SIZE), removed after the run.
            cp --sparse=always "$img" "$tdir/$fx-$f"
            chmod u+w "$tdir/$fx-$f"
            [ -n "$size" ] && truncate -s "$size" "$tdir/$fx-$f"
            img=$tdir/$fx-$f
        fi
        args+=(--disk "$img")
    done
    if [ -n "$(hdr Writable)" ]; then
        args+=(--rw)
        (cd "$tdir" && sha256sum -- * > "$tdir.sums")
    fi
fi
files=$(hdr Files)
refs=$(hdr Refs)
if [ -n "$refs" ]; then
    sums=$(mktemp -d)
    tmps+=("$sums")
    for fx in $refs; do
        "$top/scripts/vm/ref-sums.sh" "$fx" > "$sums/$fx.sums"
        files="$files $sums/$fx.sums"
    done
fi
mans=$(hdr Manifests)
if [ -n "$mans" ]; then
    mdir=$(mktemp -d)
    tmps+=("$mdir")
    for fx in $mans; do
        m=${FIXTURES:-$top/../shared/fixtures}/$fx/manifest.tsv
        if [ -f "$m" ]; then
            cp "$m" "$mdir/$fx.manifest"
        else
            (cd "$top" && cargo build --release -q -p bcachefs-rs)
            # shellcheck disable=SC2046
            "$top/target/release/bcachefs-rs" manifest $("$top/scripts/fixture-images.sh" "$fx") \
                > "$mdir/$fx.manifest" 2>/dev/null || true
        fi
        files="$files $mdir/$fx.manifest"
    done
fi
[ -n "$files" ] && export VM_FILES="$files"
host=$(hdr Host)
if [ -n "$host" ]; then
    hdir=$(mktemp -d)
    tmps+=("$hdir")
    prc=0
    "$top/$host" prepare "$hdir" > "$hdir.disks" || prc=$?
    tmps+=("$hdir.disks")
    if [ $prc = 77 ]; then
        echo "SKIP $(basename "$t"): $host prepare skipped it"
        exit 0
    elif [ $prc != 0 ]; then
        echo "FAIL $(basename "$t"): $host prepare exited $prc"
        exit 1
    fi
    while IFS= read -r d; do
        if [ -n "$d" ]; then args+=(--disk "$d"); fi
    done < "$hdir.disks"
    args+=(--rw)
fi
rc=0
"$top/scripts/vm/run.sh" "${args[@]}" || rc=$?
if [ "$(hdr Writable)" = unchanged ] && [ -n "$disks" ]; then
    if ! (cd "$tdir" && sha256sum --quiet -c "$tdir.sums"); then
        echo "FAIL $(basename "$t"): the guest changed a disk that must stay byte-identical"
        rc=1
    else
        echo "ok: $(grep -c . "$tdir.sums") disks byte-identical after the run"
    fi
    rm -f "$tdir.sums"
fi
if [ -n "$host" ]; then
    if "$top/$host" verify "$hdir"; then
        echo "ok: $host verify"
    else
        echo "FAIL $(basename "$t"): $host verify failed"
        rc=1
    fi
fi
exit $rc
