#!/usr/bin/env bash
# run.sh: runs the unit tests, then the integration tests, each in its own process with a
# time limit, and prints one closing line "tests: N passed, N failed".
# Usage: tests/run.sh BUILD_DIR [unit|integration|all|beside] [name-filter]
# beside: only the tests of BESIDE_TESTS (below), one after another.
# name-filter: runs only the tests whose name contains one of its space-separated words.
# TEST_TIMEOUT_S: the time limit of each integration test (default 600; make soak raises it).
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

# wanted NAME: true when the name filter lets test NAME run.
wanted() {
	[[ -z $filter ]] && return 0
	local word
	for word in $filter; do
		[[ $1 == *"$word"* ]] && return 0
	done
	return 1
}

# report NAME START OUT RC LIMIT: adds a test's "N passed, N failed" line to the totals (tally)
# and prints its line (with its failures and last output when it failed).
report() {
	local name=$1 start=$2 out=$3 rc=$4 limit=$5
	tally "$out" "$rc"
	if ((tally_failed > 0)); then
		failures+=("$name")
		printf 'FAIL %-40s %3ss (exit %d)\n' "$name" $((SECONDS - start)) "$rc"
		# Each failure with its detail lines (report.sh indents them by five spaces), so a log
		# that keeps only this much still says why.
		awk '/^(FAIL|not ok)/ { n++; d = 0; if (n <= 20) print; next }
			/^     / && n && n <= 20 && d < 8 { d++; print substr($0, 1, 400); next }
			{ d = 8 }' <<<"$out" | sed 's/^/    /' || true
		tail -n 40 <<<"$out" | sed 's/^/    /'
		if ((rc == 124)); then echo "    (killed after ${limit}s)"; fi
	else
		printf 'ok   %-40s %3ss %s\n' "$name" $((SECONDS - start)) "${tally_line##*: }"
	fi
}

# run_one NAME TIMEOUT_S CMD...: runs a test (when the filter wants it) and reports it.
run_one() {
	local name=$1 limit=$2
	shift 2
	wanted "$name" || return 0
	local out rc=0 start=$SECONDS
	out=$(timeout --kill-after=10 "$limit" "$@" 2>&1) || rc=$?
	report "$name" "$start" "$out" "$rc" "$limit"
}

# test_command FILE: how a test file runs.
test_command() {
	case $1 in
	*.py) echo python3 ;;
	*.sh) echo bash ;;
	esac
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

if [[ $which == integration || $which == all || $which == beside ]]; then
	pgdir=$(mktemp -d /tmp/catalog-test-pg.XXXXXX)
	beside_pid="" lane_log=""
	cleanup() {
		if [[ -n $beside_pid ]]; then kill -TERM "$beside_pid" 2>/dev/null || true; fi
		scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
		rm -rf "$pgdir"
		[[ -z $lane_log ]] || rm -f "$lane_log"
	}
	trap cleanup EXIT
	pg_exports=$(PG_FAST=1 scripts/pg.sh start "$pgdir") || {
		echo "tests: could not start the test PostgreSQL"
		echo "tests: 0 passed, 1 failed"
		exit 1
	}
	eval "$pg_exports"
	export CATALOG_TEST_PGDIR=$pgdir # tests that stop and restart the database use it
	# BESIDE_TESTS (default: the lab's tests, the longest; each starts a lab of its own with
	# its own PostgreSQL, nginx and ports, test_lab_user as a throwaway account with its own
	# clone; and the deploy files' checks, whose few servers take ports from the kernel; they
	# share nothing with the others) run one after another in a lane of their
	# own, in the background while the others run one after another, and are reported at the
	# end.  Ports: below the ephemeral range, 10000-19999 for the lane (lab_env.sh honours
	# CATALOG_TEST_PORTS), 20000 and up for the rest (harness.py and scripts/pg.sh pick from
	# there too), so that two tests running at once never pick the same port.
	# `tests/run.sh BUILD beside` runs only the lane, in the foreground: tests/all.sh starts it
	# so, beside the plain tests, the sanitized pass and the fuzzing, and sets BESIDE_ELSEWHERE=1
	# for its plain pass, which then leaves the lane's tests out.
	read -r ephemeral _ </proc/sys/net/ipv4/ip_local_port_range
	((ephemeral > 21000)) || ephemeral=32768
	beside=" ${BESIDE_TESTS-test_lab_user test_scenario test_lab test_faults_lab test_lab_sweep test_dashboard test_lab_replicas test_lab_root_home test_deploy} "
	# test_lab_user (run as root: it makes the throwaway account) runs the walkthrough
	# (test_scenario) and the dashboard's browser test again as that account, the way a learner
	# runs them (USER_LAB_TESTS): with test_lab_user in the lane, those two run there only, not
	# a second time as root (neither does anything as root that it does not as a user; the
	# faults test does: root's servers get cgroups of their own, so it runs both ways).
	once=" "
	if [[ $beside == *" test_lab_user "* ]] && (($(id -u) == 0)) && wanted integration/lab/test_lab_user.sh; then
		for t in test_scenario test_dashboard; do
			[[ " ${USER_LAB_TESTS-test_faults_lab test_dashboard test_scenario} " == *" $t "* ]] && once+="$t "
		done
	fi
	# The tests, in folders by area (server, pool, tools, lab, deploy, docs; common/ holds what
	# they share), named integration/AREA/FILE; the name filter matches the bare name as well.
	shopt -s nullglob
	tests=(tests/integration/*/test_* tests/integration/test_*)
	shopt -u nullglob
	lane=()
	for t in "${tests[@]}"; do
		base=$(basename "$t")
		[[ $once == *" ${base%.*} "* ]] && continue
		[[ $beside == *" ${base%.*} "* ]] && wanted "integration/${t#tests/integration/}" && lane+=("$t")
	done
	# lane_run: the lane's tests one after another, each reported as it ends, then the closing
	# line.  A TERM stops the test running (timeout passes it on), then the lane.
	lane_run() {
		passed=0 failed=0 failures=()
		local t rc start child="" out
		out=$(mktemp /tmp/catalog-test-beside.XXXXXX)
		trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null; rm -f "$out"; exit 143' TERM
		export CATALOG_TEST_PORTS=10000-19999
		for t in "${lane[@]}"; do
			start=$SECONDS rc=0
			timeout --kill-after=10 600 "$(test_command "$t")" "$t" >"$out" 2>&1 &
			child=$!
			wait "$child" || rc=$?
			report "integration/${t#tests/integration/}" "$start" "$(<"$out")" "$rc" 600
		done
		rm -f "$out"
		if ((${#failures[@]})); then echo "failed: ${failures[*]}"; fi
		echo "tests: $passed passed, $failed failed"
	}
	if [[ $which == beside ]]; then
		lane_run
		exit $((failed > 0))
	fi
	if ((${#lane[@]})) && [[ -z ${BESIDE_ELSEWHERE:-} ]]; then
		lane_log=$(mktemp /tmp/catalog-test-lane.XXXXXX)
		lane_run >"$lane_log" 2>&1 &
		beside_pid=$!
	fi
	export CATALOG_TEST_PORTS=20000-$((ephemeral - 1))
	for t in "${tests[@]}"; do
		base=$(basename "$t")
		[[ $beside == *" ${base%.*} "* ]] && continue
		command=$(test_command "$t")
		[[ -n $command ]] && run_one "integration/${t#tests/integration/}" "${TEST_TIMEOUT_S:-600}" "$command" "$t"
	done
	if [[ -n $beside_pid ]]; then
		rc=0
		wait "$beside_pid" || rc=$?
		beside_pid=""
		out=$(<"$lane_log")
		grep -Ev '^(tests|failed): ' <<<"$out" || true
		grep -E '^FAIL ' <<<"$out" | while read -r _ name _; do echo "$name"; done >"$lane_log"
		mapfile -t -O "${#failures[@]}" failures <"$lane_log"
		tally "$out" "$rc"
	fi
	[[ -z $lane_log ]] || rm -f "$lane_log"
	lane_log=""
fi

if ((${#failures[@]})); then
	echo "failed: ${failures[*]}"
fi
echo "tests: $passed passed, $failed failed"
((failed == 0))
