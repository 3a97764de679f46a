#!/usr/bin/env bash
# The project's test command (`make check`, run by .ci/run). Stages, each timed:
#   setup     install what is missing (scripts/setup.sh)
#   format    rustfmt --check and cargo clippy (userspace), -D warnings
#   cargo     cargo tests of the core and the tool
#   parity    bcachefs-rs list vs the reference output of every fixture
#   fuzz      bounded fuzzing of the parsers (FUZZ_SECONDS, default 60)
#   kernel    the debug test kernel (cached outside the checkout)
#   module    bcachefs.ko, then again with CLIPPY=1; any warning fails
#   vm        every tests/vm/*.sh in its own QEMU boot (KUnit included)
#   campaign  the sampled reliability campaign: 100 mutated images (seeds 1..100)
#             mounted, walked, read and unmounted in a few boots, every second one
#             then repaired at mount and mounted again (CAMPAIGN_FIX_EVERY, default
#             2 here), then the IO error scenarios (scripts/campaign.sh;
#             CAMPAIGN_IMAGES)
# CHECK_STAGES="cargo parity" runs only those stages.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
stages=${CHECK_STAGES:-setup format cargo parity fuzz kernel module vm campaign}
failed=()
total_start=$(date +%s)
passed=0; nfailed=0

stage() { # name command...
    local name=$1; shift
    case " $stages " in *" $name "*) ;; *) return 0;; esac
    local t0=$(date +%s)
    echo "=== stage $name"
    if "$@"; then
        echo "=== stage $name: ok ($(( $(date +%s) - t0 ))s)"
        passed=$((passed + 1))
    else
        echo "=== stage $name: FAILED ($(( $(date +%s) - t0 ))s)"
        failed+=("$name"); nfailed=$((nfailed + 1))
    fi
}

st_setup() { scripts/setup.sh; }
st_format() {
    cargo fmt --all -- --check || return 1
    # The module crate (and the core it includes) is outside the cargo workspace.
    rustfmt --edition 2021 --check rust/module/bcachefs_rs.rs || return 1
    cargo clippy --workspace --all-targets -q -- -D warnings || return 1
}
st_cargo() { cargo test --workspace --release -q 2>&1 | tail -n 40; return "${PIPESTATUS[0]}"; }
st_parity() { cargo build --release -q && tests/parity.sh; }
st_fuzz() { scripts/fuzz.sh "${FUZZ_SECONDS:-60}"; }
st_kernel() { scripts/build-kernel.sh > /dev/null; }
st_module() {
    local kdir log
    kdir=$(scripts/build-kernel.sh 2>/dev/null | tail -n1)/src
    mkdir -p build
    log=build/module-build.log
    make -s -C "$kdir" LLVM=-19 M="$top" modules > "$log" 2>&1 || { cat "$log"; return 1; }
    # CLIPPY=1 rebuild of the Rust object: warnings fail the stage.
    rm -f rust/module/bcachefs_rs.o
    make -s -C "$kdir" LLVM=-19 M="$top" CLIPPY=1 modules > "$log" 2>&1 || { cat "$log"; return 1; }
    if grep -E "^(warning|error)" "$log"; then cat "$log"; return 1; fi
    modinfo bcachefs.ko | grep -E "^(license|description|parm):" || return 1
    # Compile check against every other 7.x series Debian ships, in a copy of the
    # sources (so bcachefs.ko for the test kernel stays as it is).
    local newest tb ver dir cdir
    newest=$(ls /usr/src/linux-source-7.*.tar.xz | sort -V | tail -n1)
    for tb in $(ls /usr/src/linux-source-7.*.tar.xz | sort -V); do
        [ "$tb" = "$newest" ] && continue
        ver=$(basename "$tb" .tar.xz); ver=${ver#linux-source-}
        dir=$(scripts/build-kernel.sh --prepare-only "$tb" 2>"build/kernel-$ver.log" | tail -n1) ||
            { cat "build/kernel-$ver.log"; return 1; }
        cdir=$top/build/compat-$ver
        rm -rf "$cdir"; mkdir -p "$cdir"
        rsync -a --exclude='*.o' --exclude='.*.cmd' --exclude='*.mod' --exclude='*.mod.c' \
            --exclude='*.ko' --exclude=shim_generated.rs Kbuild rust "$cdir/"
        make -s -C "$dir/src" LLVM=-19 M="$cdir" KBUILD_MODPOST_WARN=1 modules \
            > "build/module-$ver.log" 2>&1 || { cat "build/module-$ver.log"; return 1; }
        if grep -E "^(warning|error)" "build/module-$ver.log"; then cat "build/module-$ver.log"; return 1; fi
        echo "module builds against linux $ver"
    done
}
st_vm() {
    local rc=0 t name
    for t in tests/vm/*.sh; do
        name=$(basename "$t" .sh)
        local t0=$(date +%s)
        if scripts/vm/run-one.sh "$t" > "build/vm-$name.out" 2>&1; then
            echo "vm test $name: ok ($(( $(date +%s) - t0 ))s)"
        else
            echo "vm test $name: FAILED ($(( $(date +%s) - t0 ))s)"; cat "build/vm-$name.out"; rc=1
        fi
    done
    return $rc
}

st_campaign() {
    CAMPAIGN_FIX_EVERY=${CAMPAIGN_FIX_EVERY:-2} scripts/campaign.sh --images "${CAMPAIGN_IMAGES:-100}" --seed 1
}

mkdir -p build
stage setup st_setup
stage format st_format
stage cargo st_cargo
stage parity st_parity
stage fuzz st_fuzz
stage kernel st_kernel
stage module st_module
stage vm st_vm
stage campaign st_campaign
echo "=== total $(( $(date +%s) - total_start ))s"
echo "stages: $passed passed, $nfailed failed"
[ $nfailed -eq 0 ] || { echo "failed stages: ${failed[*]}"; exit 1; }
