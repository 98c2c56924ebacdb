#!/usr/bin/env bash
# tally.sh: the one reader of the closing line every test prints, "NAME: N passed, N failed"
# (written by tests/unit/test.h, tests/integration/common/harness.py and
# tests/integration/common/report.sh).
# Sourced by tests/run.sh, tests/all.sh and scripts/test-sanitized.sh, never run:
#
#   # shellcheck source=tests/tally.sh
#   source tests/tally.sh
#   passed=0 failed=0
#   tally "$output" "$status"
#
#   tally OUTPUT STATUS  reads the last "N passed, N failed" line of OUTPUT into tally_passed
#                        and tally_failed (tally_line holds the line, "" when there is none) and
#                        adds them to passed and failed.  A STATUS other than 0 with no failure
#                        counted (a crash before the closing line, a missing tool, a timeout)
#                        counts as one failure.

tally() {
	tally_line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$1" | tail -n 1 || true)
	tally_passed=0 tally_failed=0
	if [[ $tally_line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		tally_passed=${BASH_REMATCH[1]} tally_failed=${BASH_REMATCH[2]}
	fi
	if (($2 != 0 && tally_failed == 0)); then tally_failed=1; fi
	passed=$((passed + tally_passed)) failed=$((failed + tally_failed))
}
