#!/usr/bin/env bash
# IO error scenarios of the reliability campaign (scripts/campaign.sh runs it): QEMU
# blkdebug rules fail reads of the primary superblock (a backup copy serves), a node, the journal, a data extent,
# once or always, or every read after the first N (failing the mount, the walk
# or the gc pass, wherever read N falls); with replicas2, one device failing
# every read from the start (a refusal) or right after its superblock (every byte
# read from the other). One boot mounts them one after another as the campaign does
# (scripts/vm/campaign-guest.sh: mount ro, walk and read everything, gc, debugfs
# dumps, unmount). Prints the CASE lines; fails on a kernel report or hang, a
# refusal without a log line, or a replicas2 case that did not read every byte
# from the good device.
#   scripts/vm/io-errors.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
cargo build --release -q -p bcachefs-rs
tool=$top/target/release/bcachefs-rs
out=$top/build/campaign/io
rm -rf "$out"; mkdir -p "$out"
basic=$(scripts/fixture-images.sh basic)
{ read -r r0; read -r r1; } < <(scripts/fixture-images.sh replicas2)
"$tool" mutate --locate "$basic" > "$out/basic.where"
"$tool" mutate --locate "$r0" "$r1" > "$out/r2.where"

# rule NAME [sector=S] [once] [after=N] [on-write]: a blkdebug config failing reads
# (EIO); on-write: only from the first write to the disk on (the guest's kill=).
rule() {
    local conf=$out/$1.conf sector="" once=off after=0 a i
    shift
    for a in "$@"; do
        case $a in
            sector=*) sector=${a#sector=};;
            once) once=on;;
            after=*) after=${a#after=};;
            on-write) printf '[set-state]\nevent = "write_aio"\nstate = "1"\nnew_state = "2"\n\n' > "$conf"
                      after=-1;;
        esac
    done
    [ "$after" = -1 ] || : > "$conf"
    # After N reads: a chain of states, one step per read, failing from state N+1.
    for i in $(seq 1 "$after"); do
        printf '[set-state]\nevent = "read_aio"\nstate = "%s"\nnew_state = "%s"\n\n' \
            "$i" $((i + 1)) >> "$conf"
    done
    {
        echo '[inject-error]'
        echo 'event = "read_aio"'
        echo 'errno = "5"'
        [ -n "$sector" ] && echo "sector = \"$sector\""
        echo "once = \"$once\""
        [ "$after" -gt 0 ] && echo "state = \"$((after + 1))\""
        [ "$after" = -1 ] && echo 'state = "2"'
        true
    } >> "$conf"
    echo "$conf"
}
field() { awk -v k="$1" -v n="$2" '$1 == k { print $n; exit }' "$3"; }

disks=() ; : > "$out/cases"
# add NAME DISK... : one case over those disks (plain paths or blkdebug:CONF:IMG);
# a disk given as kill:DISK gets the guest's kill= cue after the mount.
add() {
    local name=$1 devs="" d letter extra=""
    shift
    local i=0 img
    for d in "$@"; do
        letter=$(printf "\\$(printf %o $((97 + ${#disks[@]})))")
        case $d in kill:*) d=${d#kill:}; extra="kill=/dev/vd$letter";; esac
        # A copy of the image for each case: the disks attach writable, so that the
        # kill= write reaches blkdebug (a snapshot overlay would take it).
        img=${d##*:}
        cp --sparse=always "$img" "$out/$name.$i.img"; chmod u+w "$out/$name.$i.img"
        d=${d%"$img"}$out/$name.$i.img
        i=$((i + 1))
        disks+=("$d")
        devs="${devs:+$devs:}/dev/vd$letter"
    done
    echo "$name $devs $extra" >> "$out/cases"
}
leaf=$(awk '$1 == "node" && $2 == "extents" && $3 == 0 { print $6; exit }' "$out/basic.where")
inner=$(awk '$1 == "node" && $3 > 0 { print $6; exit }' "$out/basic.where")
jset=$(awk '$1 == "jset" { s = $4 } END { print s }' "$out/basic.where")
ext=$(field extent 5 "$out/basic.where")
r2leaf=$(awk '$1 == "node" && $2 == "dirents" && $5 == 0 { print $6; exit }' "$out/r2.where")
add sb-always "blkdebug:$(rule sb-always sector=8):$basic"
add node-once "blkdebug:$(rule node-once sector="$leaf" once):$basic"
add node-always "blkdebug:$(rule node-always sector="$leaf"):$basic"
add interior-always "blkdebug:$(rule interior-always sector="$inner"):$basic"
add journal-always "blkdebug:$(rule journal-always sector="$jset"):$basic"
add extent-once "blkdebug:$(rule extent-once sector="$ext" once):$basic"
add extent-always "blkdebug:$(rule extent-always sector="$ext"):$basic"
for n in 20 60 150 400 1000; do
    add after-$n "blkdebug:$(rule after-$n after=$n):$basic"
done
add r2-plain "$r0" "$r1"
# A device dead from the start: its superblock cannot be read, so the mount is
# refused with a log line (upstream's too: it takes -o degraded without the
# device). Dead right after the mount: everything is read from the other device.
add r2-dev0-dead "blkdebug:$(rule r2-dev0-dead):$r0" "$r1"
add r2-dev1-dead "$r0" "blkdebug:$(rule r2-dev1-dead):$r1"
add r2-dev0-dies "kill:blkdebug:$(rule r2-dev0-dies on-write):$r0" "$r1"
add r2-dev1-dies "$r0" "kill:blkdebug:$(rule r2-dev1-dies on-write):$r1"
add r2-dev0-node "blkdebug:$(rule r2-dev0-node sector="$r2leaf"):$r0" "$r1"
add r2-dev1-after-200 "$r0" "blkdebug:$(rule r2-dev1-after-200 after=200):$r1"

args=()
for d in "${disks[@]}"; do args+=(--disk "$d"); done
rc=0
VM_FILES="$out/cases" CAMPAIGN_RELOAD=4 scripts/vm/run.sh --script scripts/vm/campaign-guest.sh \
 --rw   --name io-errors --timeout 900 "${args[@]}" > "$out/boot.out" 2> "$out/boot.err" || rc=$?
grep -a '^CASE ' "$out/boot.out" | sed 's/^CASE /CASE io:/'
if [ $rc != 0 ]; then
    last=$(grep -a '^CASE-START ' "$out/boot.out" | tail -n1 | awk '{print $2}')
    echo "CASE io:${last:-boot} CRASH $(grep -a 'verdict: FAIL' "$out/boot.err" | tail -n1)"
    cat "$out/boot.err" >&2
    cp "$top/build/vm/io-errors.log" "$out/console.log"
    exit 1
fi
bad=0
grep -aE '^CASE [^ ]+ (silent|umount-failed)' "$out/boot.out" >&2 && bad=1
# Every case has a verdict, and replicas2 with one device failing reads every byte
# from the other, as the plain pair does.
while read -r name _; do
    grep -aq "^CASE $name " "$out/boot.out" || { echo "io-errors: $name: no verdict" >&2; bad=1; }
done < "$out/cases"
# (Every byte of the files: the fixture's symlinks have one replica each, on
# device 0, so reading those fails with EIO when device 0 dies, as it should.)
want=$(grep -a '^CASE r2-plain mounted' "$out/boot.out" | grep -o 'bytes=[0-9]*' || true)
for c in r2-dev0-dies r2-dev1-dies r2-dev0-node r2-dev1-after-200; do
    got=$(grep -a "^CASE $c mounted" "$out/boot.out" || true)
    if [ -z "$want" ] || ! echo "$got" | grep -q " $want .*errors=0"; then
        echo "io-errors: $c: expected every file byte read from the good device ($want): ${got:-not mounted}" >&2
        bad=1
    fi
done
# The failures happened: device 0 (the replica read first) met read errors after
# the mount, and reads went to device 1.
for c in r2-dev0-dies; do
    # (grep -q would end the pipe early: sed's SIGPIPE fails it under pipefail.)
    sed -n "/^CASE-START $c\$/,/^CASE $c /p" "$out/boot.out" | grep -a 'read from another replica' > /dev/null ||
        { echo "io-errors: $c: no read failed after the mount" >&2; bad=1; }
done
for c in r2-dev0-dead r2-dev1-dead; do
    grep -aq "^CASE $c refused " "$out/boot.out" ||
        { echo "io-errors: $c: expected a refusal with a log line" >&2; bad=1; }
done
# The primary superblock unreadable: a backup copy serves, as upstream's does.
want1=$(grep -a '^CASE r2-plain mounted' "$out/boot.out" | grep -o 'paths=[0-9]* files=[0-9]* bytes=[0-9]*' || true)
grep -aq "^CASE sb-always mounted $want1 .*eio=0" "$out/boot.out" &&
    sed -n '/^CASE-START sb-always$/,/^CASE sb-always /p' "$out/boot.out" |
    grep -a 'using the superblock copy at sector' > /dev/null ||
    { echo "io-errors: sb-always: expected the mount from a backup superblock" >&2; bad=1; }
exit $bad
