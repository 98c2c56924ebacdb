#!/usr/bin/env bash
# run.sh: runs the unit tests, then the integration tests, each in its own process with a
# time limit, and prints one closing line "tests: N passed, N failed".
# Usage: tests/run.sh BUILD_DIR [unit|integration|all] [name-filter]
# name-filter: runs only the tests whose name contains one of its space-separated words.
# Integration tests share one throwaway PostgreSQL cluster started here (scripts/pg.sh) and
# stopped on exit; each test creates its own database in it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
which=${2:-all}
filter=${3:-${TEST_FILTER:-}}
export CATALOG_BUILD=$PWD/$build
# shellcheck source=tests/tally.sh
source tests/tally.sh

passed=0 failed=0
failures=()

# run_one NAME TIMEOUT_S CMD...: runs a test, adds its "N passed, N failed" line to the totals
# (tally).
run_one() {
	local name=$1 limit=$2
	shift 2
	if [[ -n $filter ]]; then
		local word wanted=0
		for word in $filter; do
			[[ $name == *"$word"* ]] && wanted=1
		done
		((wanted)) || return 0
	fi
	local out rc=0 start=$SECONDS
	out=$(timeout --kill-after=10 "$limit" "$@" 2>&1) || rc=$?
	tally "$out" "$rc"
	if ((tally_failed > 0)); then
		failures+=("$name")
		printf 'FAIL %-40s %3ss (exit %d)\n' "$name" $((SECONDS - start)) "$rc"
		grep -E '^(FAIL|not ok)' <<<"$out" | head -n 40 | sed 's/^/    /' || true
		tail -n 40 <<<"$out" | sed 's/^/    /'
		if ((rc == 124)); then echo "    (killed after ${limit}s)"; fi
	else
		printf 'ok   %-40s %3ss %s\n' "$name" $((SECONDS - start)) "${tally_line##*: }"
	fi
}

if [[ $which == unit || $which == all ]]; then
	for t in "$build"/tests/test_*; do
		[[ -x $t ]] || continue
		run_one "unit/$(basename "$t")" 60 "$t"
	done
	# Unit tests in Python (the lab's planner, cgroup and port choice): python3 FILE.
	for t in tests/unit/test_*.py; do
		[[ -f $t ]] || continue
		run_one "unit/$(basename "$t")" 120 python3 "$t"
	done
fi

if [[ $which == integration || $which == all ]]; then
	pgdir=$(mktemp -d /tmp/catalog-test-pg.XXXXXX)
	cleanup() { scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
	trap cleanup EXIT
	pg_exports=$(PG_FAST=1 scripts/pg.sh start "$pgdir") || {
		echo "tests: could not start the test PostgreSQL"
		echo "tests: 0 passed, 1 failed"
		exit 1
	}
	eval "$pg_exports"
	export CATALOG_TEST_PGDIR=$pgdir # tests that stop and restart the database use it
	for t in tests/integration/test_*; do
		case $t in
		*.py) run_one "integration/$(basename "$t")" 600 python3 "$t" ;;
		*.sh) run_one "integration/$(basename "$t")" 600 bash "$t" ;;
		esac
	done
fi

if ((${#failures[@]})); then
	echo "failed: ${failures[*]}"
fi
echo "tests: $passed passed, $failed failed"
((failed == 0))
