#!/usr/bin/env bash
# test-sanitized.sh: the sanitized pass of `make test`: every unit test and the integration tests
# (all but those in SANITIZE_SKIP) against the ASan+UBSan binaries of build-san/, with every
# sanitizer report written to a file; any report fails the pass, even one from a process whose
# test passed (a leak found at exit changes no HTTP answer).  Closing line
# "sanitized: N passed, N failed".
#
# Usage: scripts/test-sanitized.sh [BUILD_DIR]    (default build-san; build it first with
#        make SANITIZER=address,undefined all, which `make test` does)
# SANITIZE_SKIP: integration tests left out of this pass, space-separated names without the
#   extension.  Default "test_deploy test_lab test_dashboard test_scenario": deployment files,
#   the lab's scripts, the dashboard page and the walkthrough,
#   whose C code paths the other tests already drive.
#   Tests are added to it when they are long and add nothing under sanitizers, so that make test
#   stays well inside its 15 minutes (the sanitized binaries run 2-3x slower).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-san}
skip=" ${SANITIZE_SKIP-test_deploy test_lab test_lab_user test_dashboard test_scenario} "

if [[ ! -x $build/catalog-server ]] || ! grep -q __asan_init "$build/catalog-server"; then
	echo "test-sanitized.sh: $build/catalog-server is not an ASan build; run make SANITIZER=address,undefined all" >&2
	exit 2
fi

report_dir=$(mktemp -d /tmp/catalog-sanitizer-reports.XXXXXX)
trap 'rm -rf "$report_dir"' EXIT
# Reports go to files (asan.PID, ubsan.PID): servers' stderr is often discarded by the tests.
# exitcode=23 marks a leak found at exit; UBSan stops at the first finding (the build also has
# -fno-sanitize-recover=all).
export ASAN_OPTIONS="detect_leaks=1:exitcode=23:check_initialization_order=1:strict_string_checks=1:log_path=$report_dir/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$report_dir/ubsan"

# shellcheck source=tests/tally.sh
source tests/tally.sh
passed=0 failed=0
start=$SECONDS
echo "sanitized pass: $build (ASan+UBSan), skipping:${skip% }"
status=0
out=$(tests/run.sh "$build" unit 2>&1) || status=$?
grep -v '^tests: ' <<<"$out" || true
tally "$out" "$status"

# One run.sh per integration test: run.sh's filter takes one name, and a failing test must not
# keep the others from running.
for t in tests/integration/test_*.py tests/integration/test_*.sh; do
	[[ -f $t ]] || continue
	name=$(basename "$t")
	name=${name%.*}
	[[ $skip == *" $name "* ]] && continue
	status=0
	out=$(tests/run.sh "$build" integration "$name" 2>&1) || status=$?
	grep -Ev '^(tests: |pg\.sh: )' <<<"$out" || true
	tally "$out" "$status"
done

shopt -s nullglob
reports=("$report_dir"/*)
if ((${#reports[@]})); then
	failed=$((failed + ${#reports[@]}))
	echo "FAIL sanitizer reports (${#reports[@]}), first lines of each:"
	for report in "${reports[@]}"; do
		echo "--- $(basename "$report")"
		head -n 40 "$report" | sed 's/^/    /'
	done
fi
echo "sanitized pass took $((SECONDS - start))s"
echo "sanitized: $passed passed, $failed failed"
((failed == 0))
