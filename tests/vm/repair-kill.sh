# VM test: a repair at mount (-o fsck,fix_errors) interrupted by killing the
# machine. repair-kill-host.sh prepare makes copies of basic and of unclean (not
# shut down cleanly) with an accounting counter damaged and boots each once: the
# repair pauses after every write (repair_write_pause_ms) and QEMU is killed
# (SIGKILL: no unmount, no module unload) once the console says N writes are done:
# on basic N = 1..4 (the node bset, the two journal entries, the first superblock
# copy: the commit point); on unclean N = 5 (its three blacklist superblock
# copies and two node bsets) and 6 (the journal entry that commits: the next
# mount replays it); on churn with an extents leaf's checksum flipped and
# another's key made invalid (its repair rewrites three nodes to new space) N = 2:
# two of its node images written (a new node, in a free bucket, among them),
# nothing committed; on damaged-topology (a leaf zeroed: its repair drops the
# leaf from its parent and closes the gap, then a second repair recounts) N = 9:
# its node bsets and first journal entry written, not its superblock (the commit
# point); on churn with an extents leaf's pointer deleted from its parent (the
# leaf left on disk: its repair scans the device and puts the leaf back) N = 3:
# the node bset and both journal entries, not the superblock; on damaged-csum
# with its fullest leaf's checksum flipped too (its repair rewrites the dirents
# leaf and splits the backpointers leaf in two) N = 5; on unclean with its
# fullest leaf's checksum flipped (an accounting leaf, split over the journal to
# replay) N = 5: its blacklist superblock copies and two node images. Here each
# disk mounts
# read-only with a gc pass (the damage
# still there before the commit point, repaired after it), then a repair at mount completes it
# and a gc pass finds nothing. On the host afterwards (verify): our fsck and upstream's clean,
# the leaf keys and superblock as the offline fsck -y of the same damage leaves.
# Host: tests/vm/tools/repair-kill-host.sh
# Timeout: 600
. /lib.sh
mkdir -p /mnt
n=0
dev() { echo /dev/vd$(echo abcdefghijkl | cut -c$(($1 + 1))); }
for c in crash-kill1 crash-kill2 crash-kill3 crash-kill4 uncrash-kill5 uncrash-kill6 rewrite-kill2 \
    topology-kill9 scan-kill3 split-kill5 usplit-kill5; do
    i=${c##*kill}
    d=$(dev $n); n=$((n + 1))
    # The write that commits: basic's first superblock copy, unclean's journal
    # entry; the rewrite is killed long before its commit point (its findings:
    # two damaged leaves and the four counts the dropped key held; churn's bitmap
    # pass is not counted).
    commit=4; damage=1
    case ${c%%-*} in
        uncrash) commit=6;; rewrite) commit=99; damage=6;;
        # The first repair's 8 node bsets, 2 journal entries, then the commit
        # point; its findings: the unreadable leaf, the gap and the counts not
        # compared (the bitmap message aside).
        topology) commit=11; damage=3;;
        # One node bset (the leaf's pointer put back), 2 journal entries, then
        # the commit point; its findings: the gap and the counts of the leaf's
        # keys, which the pass did not see.
        scan) commit=4; damage=71;;
        # 12 node bsets and 3 new nodes (the dirents leaf, the backpointers
        # leaf's two halves), 2 journal entries, then the commit point; its
        # findings: the two leaves read with a bad checksum.
        split) commit=18; damage=2;;
        # Unclean: 3 blacklist superblock copies, 9 node bsets and the two
        # halves, then the journal entry that commits; its finding: the
        # accounting leaf read with a bad checksum.
        usplit) commit=15; damage=1;;
    esac
    left=$(check_pass "$d")
    want=$damage; [ "$i" -ge $commit ] && want=0
    [ "$left" = "$want" ] || fail "$c: killed after $i writes, the disk mounts with $left finding(s), not $want"
    complete_repair "$d" "$c: after the kill"
    case ${c%%-*} in
        topology)
            dmesg | grep -q 'repair: fixing: extents: btree node read error' ||
                fail "$c: the unreadable leaf not dropped"
            dmesg | grep -q 'a second repair recounts' || fail "$c: no recount";;
        scan)
            dmesg | grep -q 'repair: btree 0: 1 leaf(s) found by a device scan put back' ||
                fail "$c: the lost leaf not put back";;
        split|usplit)
            dmesg | grep -q 'read with a bad checksum: rewritten to new space, split in 2 nodes' ||
                fail "$c: the full leaf not split";;
    esac
    ok "$c: the machine killed after $i writes, the disk mounts with $left finding(s) left; the next repair completes it"
done

