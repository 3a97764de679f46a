#!/usr/bin/env bash
# The reliability campaign: mutated images (bcachefs-rs mutate) mounted in the VM
# many to a boot, each read-only, walked with every file, symlink and xattr read,
# a gc pass triggered, every debugfs dump read, unmounted, the module reloaded
# every few images (scripts/vm/campaign-guest.sh). Then the IO error scenarios
# (blkdebug rules on the disks: scripts/vm/io-errors.sh) unless --no-io.
#
#   scripts/campaign.sh [--images N] [--seed S] [--fixtures "FX..."] [--only CASE...]
#                       [--disks D] [--no-io] [--io-only]
#   scripts/campaign.sh --report    the figures of the last run (one stopped early too)
#
# Each boot may take 90 s plus $CAMPAIGN_CASE_SECONDS (default 30) per case before
# it counts as hung. Case FX-SEED is fixture FX mutated by seed SEED; seeds S..S+N-1 (default 1, 100)
# go round the fixtures in turn (default: the small ones; the churn-sized ones,
# e.g. --fixtures churn, take about 40 s each under TCG). `--only basic-17` reruns
# one case (several may be named). D disks attach per boot (default 24).
# Verdict per case: mounted, or refused with a log line. Any kernel report
# (oops, BUG, WARNING, KASAN, lockdep, hung task, soft lockup), a guest timeout,
# a refusal without a log line or a failed unmount fails the run, and so does a
# repair at mount (the cases whose seed is a multiple of CAMPAIGN_FIX_EVERY,
# default 1, every case; 0 for none: each is also mounted -o fsck,fix_errors after
# its read-only pass; campaign-guest.sh)
# that refuses silently, leaves an image the read-only mount took no longer
# mounting, or with fewer paths, files or bytes read or more EIOs: the case's
# images, mutation and console log are kept in build/campaign/failures/CASE/,
# and the rest of its boot runs in a new boot. The figures print at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
images=100 ; seed=1 ; maxd=24 ; io=1 ; only=() ; muts=1 ; report=0
fixtures="basic csum-crc64 csum-xxhash csum-none lz4 zstd old-version replicas2"
while [ $# -gt 0 ]; do
    case $1 in
        --images) images=$2; shift;;
        --seed) seed=$2; shift;;
        --fixtures) fixtures=$2; shift;;
        --disks) maxd=$2; shift;;
        --only) only+=("$2"); shift;;
        --no-io) io=0;;
        --io-only) muts=0;;
        --report) report=1;;
        *) echo "campaign.sh: unknown argument $1" >&2; exit 2;;
    esac
    shift
done
if [ ! -d "${FIXTURES:-$top/../shared/fixtures}" ]; then
    echo "SKIP campaign: ${FIXTURES:-$top/../shared/fixtures} not present"
    exit 0
fi
out=$top/build/campaign
results=$out/results.txt
t_start=$(date +%s)
if [ $report = 1 ]; then
    muts=0; io=0
else
cargo build --release -q -p bcachefs-rs
tool=$top/target/release/bcachefs-rs
rm -rf "$out/run" "$out/failures" "$out/mutations.txt" "$out/boots"
mkdir -p "$out/run" "$out/failures" "$out/boots"
: > "$results"
fi

# The cases: "NAME FIXTURE SEED".
cases=()
if [ ${#only[@]} -gt 0 ]; then
    for c in "${only[@]}"; do cases+=("$c ${c%-*} ${c##*-}"); done
else
    read -r -a fxs <<< "$fixtures"
    # Twice the seeds: those whose mutation does not apply (e.g. no node with two
    # bsets to make stale) are skipped, and the run stops at N mutated images.
    for i in $(seq 0 $((2 * images - 1))); do
        s=$((seed + i))
        fx=${fxs[$((s % ${#fxs[@]}))]}
        cases+=("$fx-$s $fx $s")
    done
fi
[ $muts = 1 ] || cases=()

# prepare NAME FX SEED: the case's images under $out/run/NAME, mutated; prints
# the image paths (in device order) or nothing when the mutation did not apply.
prepare() {
    local d=$out/run/$1 imgs=() f
    mkdir -p "$d"
    for f in $(scripts/fixture-images.sh "$2"); do
        cp --sparse=always "$f" "$d/$(basename "$f")"
        chmod u+w "$d/$(basename "$f")"
        imgs+=("$d/$(basename "$f")")
    done
    if "$tool" mutate "$3" "${imgs[@]}" > "$d/mutation.txt" 2>&1; then
        printf '%s\n' "${imgs[@]}"
    fi
}

nboots=0
# boot CASE...: one VM boot over those cases (each "NAME FX SEED"); cases the boot
# did not finish run again in the next boot.
boot() {
    local todo=("$@") disks=() lines=() c name fx s imgs i letter devs fe
    : > "$out/cases"
    for c in "${todo[@]}"; do
        read -r name fx s <<< "$c"
        mapfile -t imgs < <(cat "$out/run/$name/images")
        devs=""
        for i in "${imgs[@]}"; do
            letter=$(printf "\\$(printf %o $((97 + ${#disks[@]} / 2)))")
            disks+=(--disk "$i")
            devs="${devs:+$devs:}/dev/vd$letter"
        done
        # Cases are numbered by seed: every CAMPAIGN_FIX_EVERY-th gets a repair.
        fe=${CAMPAIGN_FIX_EVERY:-1}
        if [ "$fe" -gt 0 ] && [ $((s % fe)) = 0 ]; then
            echo "$name $devs fix=1" >> "$out/cases"
        else
            echo "$name $devs" >> "$out/cases"
        fi
    done
    nboots=$((nboots + 1)); : > "$out/boots/$nboots"
    local rc=0 log
    VM_FILES="$out/cases" scripts/vm/run.sh --script scripts/vm/campaign-guest.sh \
        --name campaign --timeout $((90 + ${CAMPAIGN_CASE_SECONDS:-30} * ${#todo[@]})) "${disks[@]}" \
        > "$out/boot.out" 2> "$out/boot.err" || rc=$?
    log=$top/build/vm/campaign.log
    grep -aE '^CASE(-FIX)? ' "$out/boot.out" >> "$results" || true
    # Cases with a bad verdict of their own.
    grep -aE '^CASE(-FIX)? [^ ]+ (silent|umount-failed|broke|lost)' "$out/boot.out" | while read -r _ name _; do
        mkdir -p "$out/failures/$name"
        cp -r "$out/run/$name/." "$out/failures/$name/"
        cp "$log" "$out/failures/$name/console.log"
    done || true
    if [ $rc != 0 ]; then
        # The case that was running: the last one started and not finished.
        local last
        last=$(grep -a '^CASE-START ' "$out/boot.out" | tail -n1 | awk '{print $2}')
        if [ -n "$last" ] && ! grep -aq "^CASE $last " "$out/boot.out"; then
            :
        else
            last=""
        fi
        local why
        why=$(grep -a 'verdict: FAIL' "$out/boot.err" | tail -n1)
        echo "CASE ${last:-boot-$nboots} CRASH ${why:-exit $rc}" >> "$results"
        echo "campaign: ${last:-boot $nboots (no case running)}: ${why:-exit $rc}" >&2
        grep -a 'verdict: kernel report' "$out/boot.err" | head -n 5 >&2 || true
        local keep=$out/failures/${last:-boot-$nboots}
        mkdir -p "$keep"
        [ -n "$last" ] && cp -r "$out/run/$last/." "$keep/"
        cp "$log" "$keep/console.log"
        # The cases after it, in a new boot.
        local rest=() seen=0
        for c in "${todo[@]}"; do
            read -r name _ <<< "$c"
            if [ $seen = 1 ]; then rest+=("$c"); fi
            if [ "$name" = "$last" ]; then seen=1; fi
        done
        [ -z "$last" ] && rest=()
        [ ${#rest[@]} -gt 0 ] && boot "${rest[@]}"
    fi
    for c in "${todo[@]}"; do
        read -r name _ <<< "$c"
        [ -d "$out/failures/$name" ] || rm -rf "$out/run/$name"
    done
    return 0
}

batch=() ; nd=0 ; skipped=0 ; done_n=0 ; last_seed=$seed
for c in "${cases[@]}"; do
    [ $done_n -lt "$images" ] || break
    read -r name fx s <<< "$c"
    prepare "$name" "$fx" "$s" > "$out/run/$name.images" || true
    mkdir -p "$out/run/$name"; mv "$out/run/$name.images" "$out/run/$name/images"
    n=$(grep -c . "$out/run/$name/images" || true)
    if [ "$n" = 0 ]; then
        echo "CASE $name not-mutated: $(head -c 200 "$out/run/$name/mutation.txt")" >> "$results"
        skipped=$((skipped + 1)); rm -rf "$out/run/$name"
        continue
    fi
    echo "$name: $(cat "$out/run/$name/mutation.txt")" >> "$out/mutations.txt"
    done_n=$((done_n + 1)); last_seed=$s
    if [ $((nd + n)) -gt "$maxd" ]; then
        boot "${batch[@]}"; batch=(); nd=0
    fi
    batch+=("$c"); nd=$((nd + n))
done
[ ${#batch[@]} -gt 0 ] && boot "${batch[@]}"

iorc=0
if [ $io = 1 ]; then
    scripts/vm/io-errors.sh >> "$results" || iorc=$?
fi

# The figures.
if [ $report = 1 ]; then nboots=$( (find "$out/boots" -type f 2>/dev/null || true) | wc -l); fi
cnt() { grep -acE "$1" "$results" || true; }
sum() { grep -aoE "^CASE [^ ]+ mounted .*" "$results" | grep -oE " $1=[0-9]+" | cut -d= -f2 |
        awk '{s += $1} END {printf "%.0f\n", s}'; }
mounted=$(cnt '^CASE [^ ]+ mounted ')
refused=$(cnt '^CASE [^ ]+ refused ')
silent=$(cnt '^CASE [^ ]+ silent ')
umf=$(cnt '^CASE [^ ]+ umount-failed')
crash=$(cnt '^CASE [^ ]+ CRASH ')
hangs=$(grep -acE '^CASE [^ ]+ CRASH .*(hung|timeout)' "$results" || true)
fixes=$(cnt '^CASE-FIX ')
fix_bad=$(cnt '^CASE-FIX [^ ]+ (silent|umount-failed|broke|lost)')
echo "campaign: $((mounted + refused + silent + umf + crash)) images and IO error cases in $nboots boots" \
    "$([ $report = 1 ] || echo "(seeds $seed..$last_seed, fixtures: $fixtures; $skipped seeds whose mutation did not apply)")"
echo "campaign: mounted $mounted, refused with a log line $refused, refused silently $silent," \
    "umount failed $umf"
echo "campaign: paths $(sum paths), files read $(sum files), bytes $(sum bytes)," \
    "xattrs $(sum xattrs), EIOs $(sum eio), other errors $(sum errors)"
echo "campaign: repairs at mount $fixes: wrote $(cnt '^CASE-FIX [^ ]+ repaired')," \
    "unchanged $(cnt '^CASE-FIX [^ ]+ unchanged'), emergency read-only $(cnt '^CASE-FIX [^ ]+ emergency')," \
    "refused with a log line $(cnt '^CASE-FIX [^ ]+ refused'); silent, failed unmount, no longer mounting or reading less $fix_bad"
echo "campaign: kernel reports or hangs $crash (hangs $hangs)" \
    "$([ $report = 1 ] || echo ", $(( $(date +%s) - t_start )) s")"
# Per mutation kind: images, mounted, refused.
if [ -s "$out/mutations.txt" ]; then
    awk 'NR == FNR { sub(/:$/, "", $1); kind[$1] = $4; sub(/:$/, "", kind[$1]); next }
         $1 == "CASE" && ($2 in kind) { k = kind[$2]; n[k]++; if ($3 == "mounted") m[k]++; if ($3 == "refused") r[k]++ }
         END { for (k in n) printf "campaign: %-12s %5d images, %5d mounted, %5d refused\n", k, n[k], m[k], r[k] }' \
        "$out/mutations.txt" "$results" | sort
fi
grep -aE '^CASE(-FIX)? [^ ]+ (silent|umount-failed|broke|lost|CRASH)' "$results" || true
[ $((silent + umf + crash + fix_bad)) = 0 ] && [ $iorc = 0 ]
