# Helpers for guest test scripts (sourced: . /lib.sh).
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
