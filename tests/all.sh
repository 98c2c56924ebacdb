#!/usr/bin/env bash
# all.sh: everything `make test` runs, each part even when an earlier one failed, then one
# closing line "total: N passed, N failed" over the parts' own closing lines.  Two lanes, one
# per core: the lab's tests and the deploy checks one after another in the background, and in the
# foreground the lint, the other tests, the sanitized pass and the fuzzing.
# Usage: tests/all.sh [BUILD_DIR]   (the sanitized tree is build-san/)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build}
# shellcheck source=tests/tally.sh
source tests/tally.sh
passed=0 failed=0 start=$SECONDS

# part NAME CMD...: runs a part with its output shown, adds its last "N passed, N failed" line,
# then prints how long it took.
part() {
	local name=$1 log rc started=$SECONDS
	shift
	echo "== $name"
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	tally "$(<"$log")" "$rc"
	rm -f "$log"
	echo "== $name: $((SECONDS - started)) s"
}

# The lab's tests and the deploy checks (tests/run.sh's BESIDE_TESTS, each lab its own, on ports
# 10000-19999) run one after another in the background from the start, beside the lint, the
# plain tests (which leave them out), the sanitized pass and the fuzzing, which share nothing
# with them and pick their ports from 20000 up; their part is printed when it ends, last.
# What the tests leave in /tmp and /var/tmp: every test names its folders and files catalog-*
# and removes them; what is new at the end is a leak (a run of make test at the same time, or
# one killed, would show here too).
litter() { find /tmp /var/tmp -mindepth 1 -maxdepth 1 -name 'catalog-*' 2>/dev/null | sort; }
litter_before=$(litter)
beside_log=$(mktemp)
beside_started=$SECONDS
tests/run.sh "$build" beside >"$beside_log" 2>&1 &
beside_pid=$!
trap 'kill -TERM "$beside_pid" 2>/dev/null; rm -f "$beside_log"' EXIT

part "lint" scripts/lint.sh
BESIDE_ELSEWHERE=1 part "tests ($build)" tests/run.sh "$build"
part "tests under ASan+UBSan (build-san)" scripts/test-sanitized.sh build-san
part "fuzzing" scripts/fuzz.sh --seconds 6

echo "== tests beside the others ($build, tests/run.sh $build beside)"
rc=0
wait "$beside_pid" || rc=$?
cat "$beside_log"
tally "$(<"$beside_log")" "$rc"
echo "== tests beside the others: $((SECONDS - beside_started)) s"
left=$(comm -13 <(printf '%s\n' "$litter_before" | sed '/^$/d') <(litter))
if [[ -z $left ]]; then
	passed=$((passed + 1))
	echo "ok   make test left nothing of its own in /tmp or /var/tmp"
else
	failed=$((failed + 1))
	echo "FAIL make test left in /tmp or /var/tmp: $(tr '\n' ' ' <<<"$left")"
fi
echo "make test took $((SECONDS - start)) s"
echo "total: $passed passed, $failed failed"
((failed == 0))
