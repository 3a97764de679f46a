#!/usr/bin/env bash
# Host side of the VM test in which the module repairs damaged images at mount
# (`mount -o fsck,fix_errors`), for run-one.sh's `# Host:` header:
#   tests/vm/tools/repair-host.sh prepare DIR
#       for each damaged image (NAME:FIXTURE:KIND in `damaged` below, in that
#       order): a copy of the fixture, DIR/NAME.img, damaged by
#       `bcachefs-rs damage KIND` (KIND comma-separated damage kinds, or
#       mutate-KIND-SEED for `bcachefs-rs mutate -k KIND SEED`), an untouched copy of it kept as
#       DIR/NAME.damaged (unclean is a filesystem that was not shut down cleanly);
#       then the crash copies: DIR/crashN.img (N = 0..5) and DIR/uncrashN.img (0..6),
#       copies of acct-dev's and unclean-acct's damage, which the guest repairs
#       with the repair stopped after N writes (repair_writes_max) and completes;
#       DIR/ioerr.img, a copy of acct-dev's damage attached through blkdebug
#       with every write failing (DIR/ioerr.conf); last two replicas2 pairs with
#       the acct-dev damage: DIR/r2.dev{0,1}.img, and DIR/r2err.dev{0,1}.img whose
#       second device fails every write; DIR/gens.img, churn with 8 free buckets'
#       oldest gens one behind (damage oldest-gen: not a finding, a gens pass
#       advances them), which the guest's gc thread writes while 8 readers walk;
#       prints the DIR/*.img paths, one per line, in attach order (/dev/vda,
#       /dev/vdb, ...). Exits 77 (skip) when the fixtures are absent.
#   tests/vm/tools/repair-host.sh verify DIR
#       for each image the guest repaired (DIR/KIND.img, DIR/crashN.img: the
#       acct-dev damage):
#       (a) bcachefs-rs fsck -n finds nothing (exit 0, no output);
#       (b) upstream's fsck -n (../shared/reference/bcachefs, where present) exits 0;
#       (c) the offline repair, `bcachefs-rs fsck -y` on a copy of DIR/KIND.damaged
#           (DIR/KIND.offline), leaves the same keys: `list -b BTREE -l 0` equal for
#           every btree the repairs touch (upstream's list where present, else ours;
#           the device name in extent pointers, the file's name, read as DEV);
#       (d) the same superblock: show-super equal but for the lines a repair must
#           change on its own terms (see ss below).
#       Prints one `ok: KIND: ...` line per check passed; fails (exit 1) on any
#       mismatch, with a short diff.
#   REPAIR_SET=kill (tests/vm/tools/repair-kill-host.sh, the repair-kill test):
#       prepare makes only the killed copies (`kills` below): DIR/crash-killN.img
#       (acct-dev's damage) and DIR/uncrash-killN.img (unclean-acct's), each booted
#       once (scripts/vm/run.sh --kill-on) with its repair at mount pausing after
#       every write (repair_write_pause_ms) until QEMU is killed after N writes;
#       verify checks those as above, and nothing else.
set -euo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
damaged=(acct-dev:basic:acct-dev acct-btree:basic:acct-btree bucket-gen:basic:bucket-gen
    bitmap:basic:bitmap unclean-acct:unclean:acct-dev unclean-bucket-gen:unclean:bucket-gen
    alloc-dirty:basic:alloc-dirty alloc-type:basic:alloc-type ptr-gen:basic:ptr-gen
    alloc-free:basic:alloc-free rewrite:churn:bset-csum,mutate-node-key-12)
crashes=(crash0 crash1 crash2 crash3 crash4 crash5 uncrash0 uncrash1 uncrash2 uncrash3
    uncrash4 uncrash5 uncrash6)
# Killed: the acct-dev damage (crash-killN, N = 1..4), unclean-acct's
# (uncrash-killN, N = 5, 6) and the rewrite's (rewrite-kill2: two node images
# written, a new leaf among them), each repair at mount interrupted by killing QEMU after N
# writes in a boot of its own.
kills=(crash-kill1 crash-kill2 crash-kill3 crash-kill4 uncrash-kill5 uncrash-kill6
    rewrite-kill2 topology-kill9 scan-kill3 split-kill5
    usplit-kill5)
# Only the killed copies are made of these: damaged-topology as it is (a leaf
# zeroed; KIND none), whose repair at mount drops the leaf from its parent (with
# the backpointers of what it held) and closes the gap, then recounts: killed
# after its 8 node bsets and its first journal entry (topology-kill9), before its
# commit point. And churn with an extents leaf's pointer deleted from its parent,
# the leaf left on disk (damage drop-leaf): the repair scans the device, finds
# the leaf (the backpointers btree still names it there) and puts it back; killed
# after its node bset and both journal entries, before the superblock
# (scan-kill3). And damaged-csum (a dirents leaf read with a bad checksum) with
# its fullest leaf's checksum flipped too (damage bset-csum-full: a backpointers
# leaf whose live keys pass upstream's split threshold): both rewritten to new
# space, the backpointers leaf split in two; killed after 5 writes (split-kill5),
# long before its commit point. And the same on unclean (not shut down cleanly),
# whose fullest leaf is an accounting leaf: split over a journal to replay, the
# accounting keys the split moves given on top of what replay leaves (usplit);
# killed after its three blacklist superblock copies and two node images.
kill_only=(topology:damaged-topology:none scan:churn:drop-leaf
    split:damaged-csum:bset-csum-full usplit:unclean:bset-csum-full)
# REPAIR_SET=kill (repair-kill-host.sh): only the killed copies.
set=${REPAIR_SET:-all}
images=()
if [ "$set" = kill ]; then
    images=("${kills[@]}")
else
    for s in "${damaged[@]}"; do images+=("${s%%:*}"); done
    images+=("${crashes[@]}")
fi
# damage_of IMAGE: the damaged image an image is a copy of.
damage_of() {
    case $1 in
        uncrash*) echo unclean-acct;; crash*) echo acct-dev;; rewrite-kill*) echo rewrite;;
        topology-kill*) echo topology;; scan-kill*) echo scan;; split-kill*) echo split;;
        usplit-kill*) echo usplit;;
        *) echo "$1";;
    esac
}
btrees=(alloc bucket_gens accounting need_discard freespace lru backpointers extents inodes dirents)
bin=$top/target/release/bcachefs-rs
ref=$top/../shared/reference/bcachefs
# Upstream's tool leaves /run/bcachefs/PID.sock behind when it ends on an error; a
# later run given the same PID (they wrap at 32768) fails to bind and says so.
# Sockets of processes that no longer exist go first.
for s in /run/bcachefs/*.sock; do
    p=${s##*/}; p=${p%.sock}
    if [ -e "$s" ] && [ ! -d "/proc/$p" ]; then rm -f "$s"; fi
done

# prepare_kills DIR: the killed copies (see `kills`).
prepare_kills() {
    local dir=$1 k
    # Each killed copy: a boot that mounts it -o fsck,fix_errors with the repair
    # pausing after every write, killed (QEMU SIGKILL: no unmount, no module
    # unload) once the console says N writes are done.
    cat > "$dir/kill.sh" <<'GUEST'
. /lib.sh
mkdir -p /mnt
echo 4000 > /sys/module/bcachefs/parameters/repair_write_pause_ms
mount -t bcachefs -o fsck,fix_errors /dev/vda /mnt
fail "the mount returned before the machine was killed"
GUEST
    for k in "${kills[@]}"; do
        cp --sparse=always "$dir/$(damage_of "$k").damaged" "$dir/$k.img"
        "$top/scripts/vm/run.sh" --rw --disk "$dir/$k.img" --script "$dir/kill.sh" \
            --name "repair-$k" --timeout 300 --kill-on "repair: ${k##*kill} writes done" >&2 ||
            { echo "FAIL: $k: the killed boot failed" >&2; exit 1; }
        echo "$dir/$k.img"
    done
}

prepare() {
    local dir=$1 src s k fx kind
    local fixtures=${FIXTURES:-$top/../shared/fixtures}
    for fx in basic unclean replicas2 churn damaged-topology damaged-csum; do
        if [ ! -d "$fixtures/$fx" ]; then
            echo "SKIP: $fixtures/$fx not present" >&2
            exit 77
        fi
    done
    (cd "$top" && cargo build --release -q -p bcachefs-rs) >&2
    local all=("${damaged[@]}")
    [ "$set" = kill ] && all+=("${kill_only[@]}")
    for s in "${all[@]}"; do
        k=${s%%:*}; fx=${s#*:}; fx=${fx%%:*}; kind=${s##*:}
        # The killed copies need only the accounting damage and the rewrite.
        if [ "$set" = kill ] && [ "$k" != acct-dev ] && [ "$k" != unclean-acct ] &&
            [ "$k" != rewrite ] && [ "$k" != topology ] && [ "$k" != scan ] &&
            [ "$k" != split ] && [ "$k" != usplit ]; then continue; fi
        src=$("$top/scripts/fixture-images.sh" "$fx")
        # Never written in place: the fixture cache is shared with other runs.
        cp --sparse=always "$src" "$dir/$k.img"
        chmod u+w "$dir/$k.img"
        # KIND: damage kinds, or mutate-KIND-SEED (bcachefs-rs mutate), comma-separated;
        # none: the fixture as it is (a damaged fixture).
        for part in ${kind//,/ }; do
            case $part in
                none) ;;
                mutate-*)
                    part=${part#mutate-}
                    "$bin" mutate -k "${part%-*}" "${part##*-}" "$dir/$k.img" >&2;;
                *) "$bin" damage "$part" "$dir/$k.img" >&2;;
            esac
        done
        cp --sparse=always "$dir/$k.img" "$dir/$k.damaged"
        if [ "$set" = all ]; then echo "$dir/$k.img"; fi
    done
    if [ "$set" = kill ]; then
        prepare_kills "$dir"
        return
    fi
    for k in "${crashes[@]}"; do
        cp --sparse=always "$dir/$(damage_of "$k").damaged" "$dir/$k.img"
        echo "$dir/$k.img"
    done
    cp --sparse=always "$dir/acct-dev.damaged" "$dir/ioerr.img"
    cat > "$dir/ioerr.conf" <<'CONF'
[inject-error]
event = "write_aio"
iotype = "write"
errno = "5"
CONF
    echo "blkdebug:$dir/ioerr.conf:$dir/ioerr.img"
    # replicas2: the damage on both devices (each node's replicas resealed), the
    # damaged pair kept under DIR/damaged with the same names.
    local r2a r2b
    { read -r r2a; read -r r2b; } < <("$top/scripts/fixture-images.sh" replicas2)
    mkdir -p "$dir/damaged"
    for k in r2 r2err; do
        cp --sparse=always "$r2a" "$dir/damaged/$k.dev0.img"
        cp --sparse=always "$r2b" "$dir/damaged/$k.dev1.img"
        chmod u+w "$dir/damaged/$k".dev?.img
        "$bin" damage acct-dev "$dir/damaged/$k.dev0.img" "$dir/damaged/$k.dev1.img" >&2
        cp --sparse=always "$dir/damaged/$k".dev?.img "$dir/"
    done
    echo "$dir/r2.dev0.img"
    echo "$dir/r2.dev1.img"
    echo "$dir/r2err.dev0.img"
    echo "blkdebug:$dir/ioerr.conf:$dir/r2err.dev1.img"
    cp --sparse=always "$("$top/scripts/fixture-images.sh" churn)" "$dir/gens.img"
    chmod u+w "$dir/gens.img"
    for _ in 1 2 3 4 5 6 7 8; do "$bin" damage oldest-gen "$dir/gens.img" >&2; done
    echo "$dir/gens.img"
}

# lister ARGS...: upstream's tool where present, else ours (their listings and
# show-super are the same bytes on these images); its stderr (upstream's recovery
# chatter) dropped.
lister() {
    if [ -x "$ref" ]; then
        "$ref" "$@" 2>/dev/null
    else
        "$bin" "$@" 2>/dev/null
    fi
}

# listing BTREE IMG NAME: the leaf keys of BTREE, the device name (IMG's file
# name, printed in extent pointers) read as DEV. For a crash image (NAME crashN),
# accounting keys' versions read as VER: a repair that completes over a stopped
# one commits at a later journal seq than the offline repair of the damage, and
# an accounting key's version is its commit's seq. So for a topology repair: the
# kernel commits the pointers, then the recount over them, where the offline
# tool stages both rounds and commits once.
listing() {
    local name
    name=$(basename "$2")
    lister list -b "$1" -l 0 "$2" | sed "s/ptr: ${name//./\\.} /ptr: DEV /" |
        case $3 in
            *crash*|topology*|usplit*) sed -E 's/ ver [0-9]+/ ver VER/';;
            *) cat;;
        esac
}

# ss IMG: show-super without the lines two repairs of the same image may print
# differently. Two `bcachefs-rs fsck -y` runs on copies of one damaged image differ
# only in `Time of last write:`; a mount also writes the superblock as often as it
# needs (at mount, going read-write, at unmount), so its `Sequence number:` and
# each member's `Last superblock write:` (the seq of its last write) are its own:
# verify checks instead that the seq advanced past the damaged image's.
ss() {
    lister show-super "$1" |
        grep -Ev '^(Time of last write|Sequence number|  Last superblock write):'
}

# excerpt: the first 20 lines of stdin, indented (all of stdin read, so that no
# writer dies of SIGPIPE).
excerpt() {
    sed 's/^/    /' | awk 'NR <= 20'
}

# upstream_said NAME: upstream's fsck output without what differs from run to
# run (timings, journal seqs) or names the image file. For a stopped repair
# (NAME *crash*), the journal's replay range too: the repair that completed it may
# have had nothing left to write, ending the journal an entry earlier than the
# offline repair.
upstream_said() {
    sed -E -e 's/\([0-9]+ seconds?\)/(N seconds)/' -e 's/journal seq [0-9]+/journal seq N/' \
        -e 's#[^ ]*\.(img|offline)#IMG#g' |
        case $1 in
            *crash*|usplit*) sed -E 's/replaying entries [0-9]+-[0-9]+/replaying entries N-M/';;
            *) cat;;
        esac
}

sb_seq() {
    lister show-super "$1" | sed -n 's/^Sequence number: *//p'
}

verify() {
    local dir=$1 fail=0 k img off out rc bt a b d dmg
    for k in "${images[@]}"; do
        img=$dir/$k.img
        off=$dir/$k.offline
        dmg=$dir/$(damage_of "$k").damaged
        if [ ! -f "$img" ] || [ ! -f "$dmg" ]; then
            echo "FAIL: $k: $img or $dmg missing"
            fail=1
            continue
        fi
        # (a) Ours finds nothing left to repair (exit 0), and says what it says
        # after the offline repair of the same damage: nothing, or on unclean the
        # bitmap message that no repair can act on (its granularity).
        cp --sparse=always "$dmg" "$off"
        "$bin" fsck -y "$off" > /dev/null 2>&1 || true
        rc=0
        out=$("$bin" fsck -n "$img" 2>&1 | sed "s|$(basename "$img")|IMG|g") || rc=$?
        want=$("$bin" fsck -n "$off" 2>&1 | sed "s|$(basename "$off")|IMG|g") || true
        if [ $rc = 0 ] && [ "$out" = "$want" ]; then
            echo "ok: $k: bcachefs-rs fsck -n clean after the repair${out:+ (as after the offline repair: $out)}"
        else
            echo "FAIL: $k: bcachefs-rs fsck -n after the repair: exit $rc"
            { diff <(printf '%s\n' "$out") <(printf '%s\n' "$want") || true; } | excerpt
            fail=1
        fi
        # (b) Nor does upstream's: it exits 0 and says what it says of the offline
        # repair (its passes and messages; seqs and timings aside).
        if [ -x "$ref" ]; then
            rc=0
            out=$(timeout 300 "$ref" fsck -n "$img" 2>&1 | upstream_said "$k") || rc=$?
            want=$(timeout 300 "$ref" fsck -n "$off" 2>&1 | upstream_said "$k") || true
            if [ $rc = 0 ] && [ "$out" = "$want" ]; then
                echo "ok: $k: upstream fsck -n exits 0, saying what it says after the offline repair"
            elif [ $rc = 0 ]; then
                echo "FAIL: $k: upstream fsck -n says otherwise than after the offline repair (< repaired at mount, > offline)"
                { diff <(printf '%s\n' "$out") <(printf '%s\n' "$want") || true; } | excerpt
                fail=1
            else
                echo "FAIL: $k: upstream fsck -n after the repair: exit $rc"
                printf '%s\n' "$out" | { grep -Ev 'done \(|CONFIG_RUST|please alert' || true; } | excerpt
                fail=1
            fi
        fi
        # (c) The offline repair of the same damage leaves the same keys.
        cp --sparse=always "$dmg" "$off"
        rc=0
        out=$("$bin" fsck -y "$off" 2>&1) || rc=$?
        if [ $rc != 1 ]; then
            echo "FAIL: $k: bcachefs-rs fsck -y on the damaged copy: exit $rc (1: errors fixed)"
            printf '%s\n' "$out" | excerpt
            fail=1
            continue
        fi
        d=0
        for bt in "${btrees[@]}"; do
            a=$(listing "$bt" "$img" "$k") || { echo "FAIL: $k: list -b $bt $img"; d=1; continue; }
            b=$(listing "$bt" "$off" "$k") || { echo "FAIL: $k: list -b $bt $off"; d=1; continue; }
            if [ "$a" != "$b" ]; then
                echo "FAIL: $k: $bt keys differ (< repaired at mount, > offline)"
                { diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") || true; } | excerpt
                d=1
            fi
        done
        if [ $d = 0 ]; then
            echo "ok: $k: the leaf keys of ${btrees[*]} equal the offline repair's"
        else
            fail=1
        fi
        # (d) And the same superblock.
        a=$(ss "$img")
        b=$(ss "$off")
        if [ "$a" != "$b" ]; then
            echo "FAIL: $k: show-super differs (< repaired at mount, > offline)"
            { diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") || true; } | excerpt
            fail=1
        elif ! [ "$(sb_seq "$img")" -gt "$(sb_seq "$dmg")" ] 2>/dev/null; then
            echo "FAIL: $k: superblock seq $(sb_seq "$img") not past the damaged image's $(sb_seq "$dmg")"
            fail=1
        else
            echo "ok: $k: show-super equals the offline repair's (but for write time and seqs)"
        fi
    done
    [ "$set" = all ] || return $fail
    # replicas2, repaired on both devices: as the offline repair of the same damage
    # (a copy of the damaged pair under DIR/offline, same names).
    local r2=("$dir/r2.dev0.img" "$dir/r2.dev1.img")
    mkdir -p "$dir/offline"
    cp --sparse=always "$dir/damaged/r2".dev?.img "$dir/offline/"
    local off2=("$dir/offline/r2.dev0.img" "$dir/offline/r2.dev1.img")
    "$bin" fsck -y "${off2[@]}" > /dev/null 2>&1 || true
    rc=0
    out=$("$bin" fsck -n "${r2[@]}" 2>&1) || rc=$?
    want=$("$bin" fsck -n "${off2[@]}" 2>&1) || true
    if [ $rc = 0 ] && [ "$out" = "$want" ]; then
        echo "ok: r2: bcachefs-rs fsck -n clean after the repair"
    else
        echo "FAIL: r2: bcachefs-rs fsck -n after the repair: exit $rc"
        printf '%s\n' "$out" | excerpt
        fail=1
    fi
    if [ -x "$ref" ]; then
        if timeout 300 "$ref" fsck -n "${r2[@]}" > /dev/null 2>&1; then
            echo "ok: r2: upstream fsck -n exits 0"
        else
            echo "FAIL: r2: upstream fsck -n after the repair"; fail=1
        fi
    fi
    d=0
    for bt in "${btrees[@]}"; do
        a=$(lister list -b "$bt" -l 0 "${r2[@]}") || d=1
        b=$(lister list -b "$bt" -l 0 "${off2[@]}") || d=1
        if [ "$a" != "$b" ]; then
            echo "FAIL: r2: $bt keys differ (< repaired at mount, > offline)"
            { diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") || true; } | excerpt
            d=1
        fi
    done
    if [ $d = 0 ]; then
        echo "ok: r2: the leaf keys of ${btrees[*]} equal the offline repair's"
    else
        fail=1
    fi
    # replicas2 whose second device failed every write: that device as it was, and
    # the pair reads as the damaged pair did (the first device's bset lies past its
    # pointer's sectors_written: never read).
    if cmp -s "$dir/r2err.dev1.img" "$dir/damaged/r2err.dev1.img"; then
        echo "ok: r2err: the failing device is byte-identical to before"
    else
        echo "FAIL: r2err: the failing device changed"; fail=1
    fi
    out=$("$bin" fsck -n "$dir/r2err.dev0.img" "$dir/r2err.dev1.img" 2>&1 || true)
    want=$("$bin" fsck -n "$dir/damaged/r2err.dev0.img" "$dir/damaged/r2err.dev1.img" 2>&1 || true)
    if [ -n "$out" ] && [ "$out" = "$want" ]; then
        echo "ok: r2err: the pair reads as the damaged pair (our fsck -n: $out)"
    else
        echo "FAIL: r2err: the pair changed"
        { diff <(printf '%s\n' "$out") <(printf '%s\n' "$want") || true; } | excerpt
        fail=1
    fi
    # gens: the gc thread's writes leave the leaf keys as churn's own (its oldest
    # gens were what a gens pass computes) and a clean filesystem (the mount's
    # repair rebuilt churn's bitmap, which churn's fsck.txt asks for).
    local churn
    churn=$("$top/scripts/fixture-images.sh" churn)
    # Our fsck says what it says of churn repaired offline (the bitmap message that
    # no repair can act on).
    cp --sparse=always "$churn" "$dir/offline/gens.img"
    "$bin" fsck -y "$dir/offline/gens.img" > /dev/null 2>&1 || true
    rc=0
    out=$("$bin" fsck -n "$dir/gens.img" 2>&1) || rc=$?
    want=$("$bin" fsck -n "$dir/offline/gens.img" 2>&1) || true
    if [ $rc = 0 ] && [ "$out" = "$want" ]; then
        echo "ok: gens: bcachefs-rs fsck -n clean${out:+ (as churn repaired offline: $out)}"
    else
        echo "FAIL: gens: bcachefs-rs fsck -n: exit $rc"
        { diff <(printf '%s\n' "$out") <(printf '%s\n' "$want") || true; } | excerpt
        fail=1
    fi
    if [ -x "$ref" ]; then
        if timeout 300 "$ref" fsck -n "$dir/gens.img" > /dev/null 2>&1; then
            echo "ok: gens: upstream fsck -n exits 0"
        else
            echo "FAIL: gens: upstream fsck -n"; fail=1
        fi
    fi
    d=0
    for bt in "${btrees[@]}"; do
        # Pointers print the device's file name, padded.
        a=$(lister list -b "$bt" -l 0 "$dir/gens.img" | sed -E 's/ptr: +gens\.img /ptr: DEV /')
        b=$(lister list -b "$bt" -l 0 "$churn" | sed -E "s/ptr: +$(basename "$churn") /ptr: DEV /")
        if [ "$a" != "$b" ]; then
            echo "FAIL: gens: $bt keys differ (< written while mounted, > churn)"
            { diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") || true; } | excerpt
            d=1
        fi
    done
    if [ $d = 0 ]; then
        echo "ok: gens: the leaf keys of ${btrees[*]} equal churn's own"
    else
        fail=1
    fi
    # Every write to ioerr failed: the disk is as it was, damage and all.
    if cmp -s "$dir/ioerr.img" "$dir/acct-dev.damaged"; then
        echo "ok: ioerr: every write failed, the disk is byte-identical to before"
    else
        echo "FAIL: ioerr: the disk changed although every write to it failed"
        fail=1
    fi
    return $fail
}

case ${1:-} in
    prepare | verify)
        if [ $# != 2 ] || [ ! -d "$2" ]; then
            echo "usage: $0 prepare|verify DIR (an existing directory)" >&2
            exit 2
        fi
        "$1" "$2"
        ;;
    *)
        echo "usage: $0 prepare|verify DIR" >&2
        exit 2
        ;;
esac
