# VM test: repairs at mount (-o fsck,fix_errors) through the kernel's write path.
# - eight damaged copies of basic (tests/vm/tools/repair-host.sh prepare: an
#   accounting counter of a device's data type, one of a btree's, a bucket's gen in
#   bucket_gens, member 0's btree bitmap cleared, an alloc key's dirty sectors or
#   data type: the repair moves its fragmentation LRU key; an extent pointer's gen
#   one past its bucket's: the pointer is fixed first, the counts the pass got
#   wrong over it wait for a second repair, which finds nothing; a bucket in use
#   made free with the freespace extent above it grown over it: the repair cuts it
#   out of the extent again), one of churn with an extents leaf's first bset
#   checksum flipped and a key of another extents leaf made invalid (mutate
#   node-key, seed 12): both leaves rewritten to new space (the dropped key's
#   backpointer deleted, its counts repaired), and the accounting leaf that has
#   no room for what the moves change rewritten too, in one commit, and
#   two of unclean (not shut down
#   cleanly: the repair goes over its journal and leaves it dirty): each mounted with
#   -o fsck,fix_errors, every finding logged as fixed, the write stats and cache
#   counters showing the node writes, files still read-only; mounted again with
#   -o ro,fsck: the gc pass finds nothing;
# - crash: copies of the accounting damage (on basic, and on unclean) repaired with
#   the repair stopped after 0..5 (0..6) writes (repair_writes_max, as a crash would stop
#   it): the mount fails with one log line; the disk mounts again read-only (the
#   damage still there before the commit point, repaired after it) and a
#   fix_errors mount completes it;
# - a write error: a copy of the accounting damage whose every write fails
#   (QEMU blkdebug): the node write fails with a log line, nothing is committed
#   and the mount goes emergency read-only; its fsck pass still finds the damage;
# - replicas2 with the accounting damage on both devices: the bset goes to both
#   replicas (one node write, two bios); with every write to its second device
#   failing, the repair stops before its commit point and the mount goes emergency
#   read-only (dropping the failed replica from the pointer is not done yet);
# - on the host afterwards (repair-host.sh verify), every disk: our fsck and
#   upstream's clean, the leaf keys and superblock as the offline fsck -y leaves
#   the same damage.
# - written while mounted and read: churn with 8 free buckets' oldest gens one
#   behind; after the mount's repair and fsck pass, 8 readers walk the tree while a
#   triggered gc pass writes the 8 oldest gens (upstream's gc_gens) through the
#   same commit: every reader's tree equals the manifest, the write stats and
#   gc_status show the writes, a further pass finds nothing to advance; on the host
#   every btree's leaf keys then equal churn's own. Before that, a mount of the same
#   disk frozen (fsfreeze) for one triggered pass and remounted read-only for
#   another: both passes see the gens and write nothing, and the disk's hash is
#   unchanged (a commit in progress would end first).
# Host: tests/vm/tools/repair-host.sh
# Manifests: churn
# Timeout: 900
. /lib.sh
mkdir -p /mnt
param=/sys/module/bcachefs/parameters/repair_writes_max
letters=abcdefghijklmnopqrstuvwxyz
# Disk N (from 0): vda..vdz, then vdaa, vdab, ...
dev() {
    if [ "$1" -lt 26 ]; then
        echo /dev/vd$(echo $letters | cut -c$(($1 + 1)))
    else
        echo /dev/vd$(echo $letters | cut -c$(($1 / 26)))$(echo $letters | cut -c$(($1 % 26 + 1)))
    fi
}
stat_nr() { awk -v t="$1:" '$1 == t { print $2 }' /sys/fs/bcachefs/*/btree_write_stats; }

n=0
for k in acct-dev acct-btree bucket-gen bitmap unclean-acct unclean-bucket-gen alloc-dirty alloc-type ptr-gen alloc-free rewrite; do
    d=$(dev $n); n=$((n + 1))
    dmesg -c > /dev/null
    mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "$k: mount -o fsck,fix_errors"; }
    dmesg | grep 'repair:' | head -n 4
    dmesg | grep -q 'repair: fixing:' || fail "$k: nothing fixed"
    if dmesg | grep -q 'repair: not fixed'; then fail "$k: a finding left"; fi
    dmesg | grep -q 'repair: wrote ' || fail "$k: no commit logged"
    if [ $k = ptr-gen ]; then
        # The pointer first; the counts a pass over it got wrong wait for the
        # second repair, which finds nothing left.
        dmesg | grep -q 'repair: after the recount over the fixed pointers: ' || fail "$k: no count deferred"
        dmesg | grep -q 'a second repair recounts' || fail "$k: no second repair"
        [ "$(dmesg | grep -c 'repair: wrote ')" = 1 ] || fail "$k: the second repair wrote"
        dmesg | grep -q 'found nothing to repair' || fail "$k: the second repair found something"
    fi
    if [ $k = rewrite ]; then
        # The leaf read with a bad checksum and the one whose key failed
        # validation go to new space (the dropped key's backpointer deleted, the
        # counts it held repaired), and so does the accounting leaf that has no
        # room left for the keys the moves change (a second planning round), as
        # the offline repair writes them: an initial write each, in one commit
        # with the bitmap churn asks for.
        dmesg | grep -q 'read with a bad checksum: rewritten to new space at ' ||
            fail "$k: the leaf read with a bad checksum not rewritten"
        dmesg | grep -q 'keys failed validation: rewritten to new space at ' ||
            fail "$k: the leaf with an invalid key not rewritten"
        dmesg | grep -q 'no room left in the node: rewritten to new space at ' ||
            fail "$k: no full leaf rewritten"
        dmesg | grep -q 'repair: wrote [0-9]* node bset(s) and 3 new node(s)' || fail "$k: no new nodes written"
        [ "$(stat_nr initial)" = 3 ] || fail "$k: btree_write_stats says $(stat_nr initial) initial writes"
    fi
    if [ $k = alloc-free ]; then
        # The bucket goes back in use: cut out of the freespace extent grown over it.
        dmesg | grep -q 'repair: cutting [1-9][0-9]* bucket(s) out of the freespace btree' ||
            fail "$k: no freespace cut logged"
    fi
    # Leaves get init_next_bset writes, their parents interior ones, new nodes
    # initial ones.
    nodes=$(($(stat_nr init_next_bset) + $(stat_nr interior) + $(stat_nr initial)))
    writes=$(counter "writes issued")
    if [ $k = bitmap ]; then
        # A superblock change only.
        [ "$nodes" = 0 ] && [ "$writes" = 0 ] || fail "$k: $nodes node writes"
    else
        [ "$nodes" -ge 1 ] && [ "$writes" = "$nodes" ] ||
            fail "$k: btree_write_stats says $nodes node writes, btree_cache $writes"
    fi
    grep -q " /mnt bcachefs ro" /proc/mounts || fail "$k: not mounted read-only after the repair"
    if touch /mnt/new 2>/dev/null; then fail "$k: a file could be created"; fi
    f=$(pass_findings)
    umount /mnt || fail "$k: umount"
    [ "$f" = 0 ] || fail "$k: the gc pass after the repair found $f"
    ok "$k: repaired at mount ($nodes bset(s) written), then a gc pass found nothing"
done

# Crash: the repair stopped after 0..5 writes (on basic the accounting damage
# takes one node write, two journal entries and three superblock copies; on
# unclean, three superblock copies with the blacklist first, two nodes and the
# journal entry that commits, the seventh write).
for c in crash0 crash1 crash2 crash3 crash4 crash5 uncrash0 uncrash1 uncrash2 uncrash3 uncrash4 uncrash5 uncrash6; do
    i=${c#*crash}
    d=$(dev $n); n=$((n + 1))
    dmesg -c > /dev/null
    echo $i > $param
    if mount -t bcachefs -o fsck,fix_errors "$d" /mnt; then fail "$c: mounted"; fi
    echo -1 > $param
    dmesg | grep -q "stopped by repair_writes_max" || { dmesg | tail; fail "$c: no stop logged"; }
    left=$(check_pass "$d")
    complete_repair "$d" "$c: after the stop"
    ok "$c: stopped after $i writes, the disk mounts with $left finding(s) left; the next repair completes it"
done

# Write errors: every write to this disk fails (blkdebug).
d=$(dev $n); n=$((n + 1))
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "ioerr: mount"; }
dmesg | grep -q 'btree node write error' || { dmesg | tail -n 20; fail "ioerr: no write error logged"; }
dmesg | grep -q 'emergency read-only' || fail "ioerr: not emergency read-only"
grep -q " /mnt bcachefs ro" /proc/mounts || fail "ioerr: not read-only"
errs=$(counter "write errors")
[ "$errs" = 1 ] || fail "ioerr: btree_cache counts $errs write errors"
i=0
while ! grep -q '^passes: [1-9]' /sys/fs/bcachefs/*/internal/gc_status; do
    i=$((i + 1)); [ $i -le 1200 ] || fail "ioerr: no gc pass"
    sleep 0.5
done
grep -q '^  accounting_mismatch: 1$' /sys/fs/bcachefs/*/internal/gc_status || fail "ioerr: the damage is not found after the failed repair"
umount /mnt || fail "ioerr: umount"
dmesg | grep -E 'write error|emergency' | head -n 3
ok "ioerr: the write failed, nothing committed, mounted emergency read-only with the damage still found"

# replicas2: one node write, a bio per replica.
d=$(dev $n):$(dev $((n + 1))); n=$((n + 2))
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "r2: mount"; }
dmesg | grep -q 'repair: wrote 1 node bset' || { dmesg | grep repair; fail "r2: not one node written"; }
[ "$(counter "writes issued")" = 1 ] || fail "r2: $(counter "writes issued") node writes"
bytes=$(counter "write bytes")
umount /mnt || fail "r2: umount"
f=$(check_pass "$d")
[ "$f" = 0 ] || fail "r2: $f findings after the repair"
ok "r2: repaired on both replicas ($bytes bytes in one node write), then a gc pass found nothing"
d=$(dev $n):$(dev $((n + 1))); n=$((n + 2))
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "r2err: mount"; }
dmesg | grep -q 'failed on 1 of 2 replica' || { dmesg | tail -n 20; fail "r2err: no replica failure logged"; }
dmesg | grep -q 'emergency read-only' || fail "r2err: not emergency read-only"
umount /mnt || fail "r2err: umount"
ok "r2err: the second replica's write failed, nothing committed, emergency read-only"

# Written while mounted: the gc thread writes oldest gens while 8 readers walk.
d=$(dev $n); n=$((n + 1))
gcst() { sed -n "s/^$1: //p" "$gdir/gc_status"; }
wait_passes() {
    i=0
    while [ "$(gcst passes)" -lt "$1" ] || [ "$(gcst running)" = 1 ]; do
        i=$((i + 1)); [ $i -le 1200 ] || fail "gens: no gc pass $1"
        sleep 0.5
    done
}
# The disk as it is (read past the page cache: the module's bios bypass it).
disk_sum() { dd if="$d" iflag=direct bs=1M 2>/dev/null | sha256sum; }
# First a mount that is frozen, then remounted read-only: its passes write nothing.
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "gens: mount"; }
gdir=$(echo /sys/fs/bcachefs/*/internal)
wait_passes 1
h0=$(disk_sum)
fsfreeze --freeze /mnt || fail "gens: freeze"
echo 1 > "$gdir/trigger_gc" || fail "gens: trigger_gc"
wait_passes 2
[ "$(gcst oldest_gen_advance)" = 8 ] || fail "gens: frozen, the pass sees $(gcst oldest_gen_advance) gens to advance"
[ "$(gcst oldest_gen_written)" = 0 ] || fail "gens: written while frozen"
dmesg | grep -q 'gc: the filesystem is frozen' || { dmesg | tail; fail "gens: no frozen pass logged"; }
[ "$(disk_sum)" = "$h0" ] || fail "gens: the disk changed while frozen"
fsfreeze --unfreeze /mnt || fail "gens: thaw"
mount -o remount,ro /mnt || fail "gens: remount,ro"
dmesg | grep -q 'remounted read-only: nothing more is written' || fail "gens: remount,ro not logged"
echo 1 > "$gdir/trigger_gc" || fail "gens: trigger_gc"
wait_passes 3
[ "$(gcst oldest_gen_written)" = 0 ] || fail "gens: written after remount,ro"
dmesg | grep -q 'gc: remounted read-only: the oldest gens of 8 bucket' || { dmesg | tail; fail "gens: no read-only pass logged"; }
[ "$(disk_sum)" = "$h0" ] || fail "gens: the disk changed after remount,ro"
umount /mnt || fail "gens: umount"
ok "gens: frozen, then remounted read-only: two passes with 8 gens to advance wrote nothing, the disk unchanged"
dmesg -c > /dev/null
mount -t bcachefs -o fsck,fix_errors "$d" /mnt || { dmesg | tail -n 20; fail "gens: mount"; }
gdir=$(echo /sys/fs/bcachefs/*/internal)
wait_passes 1
[ "$(gcst oldest_gen_advance)" = 8 ] || fail "gens: the fsck pass sees $(gcst oldest_gen_advance) gens to advance"
[ "$(gcst oldest_gen_written)" = 0 ] || fail "gens: the mount's fsck pass wrote"
before=$(counter "writes issued")
i=0
rm -f /tmp/walked.*
while [ $i -lt 8 ]; do
    (manifest /mnt > /tmp/walk.$i.tsv; touch /tmp/walked.$i) &
    i=$((i + 1))
done
echo 1 > "$gdir/trigger_gc" || fail "gens: trigger_gc"
wait_passes 2
busy=$((8 - $(ls /tmp/walked.* 2>/dev/null | wc -l)))
wait
[ "$busy" -gt 0 ] || fail "gens: every reader had finished before the writing pass did: nothing ran side by side"
for i in 0 1 2 3 4 5 6 7; do
    cmp /tmp/walk.$i.tsv /data/churn.manifest || fail "gens: reader $i saw a different tree"
done
[ "$(gcst oldest_gen_written)" = 8 ] || { dmesg | tail; fail "gens: $(gcst oldest_gen_written) oldest gens written"; }
after=$(counter "writes issued")
[ "$after" -gt "$before" ] || fail "gens: no node write counted"
cat /sys/fs/bcachefs/*/btree_write_stats
echo 1 > "$gdir/trigger_gc"
wait_passes 3
[ "$(gcst oldest_gen_advance)" = 0 ] || fail "gens: $(gcst oldest_gen_advance) gens left to advance"
dmesg | grep 'gc: wrote' || fail "gens: no write logged"
umount /mnt || fail "gens: umount"
ok "gens: 8 oldest gens written by the gc thread in $((after - before)) node write(s) while 8 readers walked ($busy still walking when the pass ended), every tree equal to the manifest"
