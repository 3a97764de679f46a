#!/usr/bin/env bash
# Decide a VM test's result from its console log:
#   verdict.sh LOG QEMU_EXIT_CODE
# Fails on a kernel splat (BUG:, WARNING:, Oops, KASAN, lockdep, hung task,
# "sleeping function called from invalid context"), a failed KUnit case, a guest
# that never finished (timeout), or a non-zero script exit.
log=$1; qrc=$2
splat='BUG:|WARNING:|Oops|KASAN|UBSAN|possible recursive locking|possible circular locking|inconsistent lock state|lockdep|INFO: task .* blocked|sleeping function called from invalid context|Kernel panic|general protection fault|RIP: |rust_panic|panicked at'
reports=$(grep -aEn "$splat" "$log" | grep -av "VMTEST" | head -n 20)
if [ -n "$reports" ]; then
    printf '%s\n' "$reports" | sed 's/^/verdict: kernel report: /' >&2
    echo "verdict: FAIL (kernel report; console log: $log)" >&2
    exit 3
fi
if grep -aqE '^\s*not ok [0-9]+ ' "$log"; then
    grep -aE '^\s*not ok [0-9]+ ' "$log" | sed 's/^/verdict: kunit: /' >&2
    echo "verdict: FAIL (KUnit case failed; console log: $log)" >&2
    exit 4
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "verdict: FAIL (guest hung: timeout; console log: $log)" >&2
    exit 5
fi
rc=$(grep -aoE 'VMTEST-EXIT: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
if [ -z "$rc" ]; then
    echo "verdict: FAIL (guest never finished its script; console log: $log)" >&2
    exit 6
fi
exit "$rc"
