# VM test: the module's KUnit suites ran at load and passed (the verdict also fails
# the run on any "not ok" line).
# Needs: module.
. /lib.sh
dmesg | grep -E "# Totals: pass:[0-9]+ fail:[0-9]+" > /tmp/totals || fail "no KUnit totals in dmesg"
cat /tmp/totals
dmesg | grep -q "# Subtest: bcachefs_rs" || fail "bcachefs_rs suite did not run"
if grep -v " fail:0 " /tmp/totals | grep -q .; then fail "KUnit failures"; fi
ok "kunit"
