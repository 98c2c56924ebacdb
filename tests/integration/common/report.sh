#!/usr/bin/env bash
# report.sh: the reporting functions of the bash integration tests and deploy_check.sh.
#
# Sourced, never run (its name does not start with test_, so tests/run.sh skips it).  In a
# script that has `set -euo pipefail`:
#
#   # shellcheck source=tests/integration/common/report.sh
#   source "$(dirname "$0")/report.sh"   # lab_env.sh sources it too
#   report_start NAME                    # NAME begins the closing line
#   ...
#   finish
#
# It defines:
#   passed failed        the counts, 0 when sourced
#   report_start NAME    names the closing line (and sets the counts to 0)
#   ok NAME              counts a pass and prints "ok   NAME"; never fails, so
#                        "CONDITION && ok ... || fail ..." is an if/else
#   fail NAME [DETAIL...]  counts a failure and prints "FAIL NAME", then each DETAIL indented
#   finish               prints "NAME: N passed, N failed" (the line tests/run.sh reads), then
#                        exits 1 if anything failed; otherwise returns 0, so it is called last,
#                        or right after a fail to stop the script there

passed=0 failed=0 report_name=test

report_start() {
	report_name=$1
	passed=0 failed=0
}

ok() {
	passed=$((passed + 1))
	echo "ok   $1"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
	shift
	local line
	for line in "$@"; do echo "     $line"; done
}

finish() {
	echo "$report_name: $passed passed, $failed failed"
	((failed == 0)) || exit 1
}
