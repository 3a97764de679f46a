#!/usr/bin/env bash
# Host side of the VM test repair-kill: repair-host.sh with only its killed copies
# (REPAIR_SET=kill): prepare boots each copy of the accounting damage once, with
# its repair at mount killed after N writes; verify checks them as repair-host.sh
# checks every repaired disk.
export REPAIR_SET=kill
exec "$(dirname "$0")/repair-host.sh" "$@"
