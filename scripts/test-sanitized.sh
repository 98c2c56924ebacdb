#!/usr/bin/env bash
# test-sanitized.sh: the sanitized pass of `make test`: every unit test and the integration tests
# (all but those in SANITIZE_SKIP) against the ASan+UBSan binaries of build-san/, then the
# server's integration tests in TSAN_TESTS against the ThreadSanitizer binaries of build-tsan/
# (the worker threads share the database pool), with every sanitizer report written to a file;
# any report fails the pass, even one from a process whose test passed (a leak found at exit
# changes no HTTP answer).  Closing line "sanitized: N passed, N failed".
#
# Usage: scripts/test-sanitized.sh [BUILD_DIR [TSAN_BUILD_DIR]]    (default build-san and
#        build-tsan; `make sanitize` builds both, which `make test` does)
# SANITIZE_SKIP: integration tests left out of this pass, space-separated names without the
#   extension.  Default "test_deploy test_lab test_lab_user test_lab_sweep test_dashboard
#   test_scenario test_faults_lab test_lab_replicas test_lab_root_home": deployment files, the
#   lab's scripts (as root and as a normal account; make ceiling and make sweep; its replicas,
#   whose server side is test_server_replicas'; a root lab with its data under /var/lib),
#   the dashboard page, the walkthrough and the lab's faults, whose C code paths the other
#   tests already drive (a server's SIGTERM under load with connections open is
#   test_sanitizers', here and under ThreadSanitizer; the graceful shutdown test_server_pool's).
#   Tests are added to it when they are long and add nothing under sanitizers, so that make test
#   stays well inside its 15 minutes (the sanitized binaries run 2-3x slower).
# TSAN_TESTS: the integration tests of the ThreadSanitizer pass, space-separated.  Default
#   "test_sanitizers test_server_orders test_server_routes test_pool_workers test_pool_kills": a
#   mixed load on two workers sharing a pool of four with clients leaving mid-query, pool
#   connections killed under two servers racing on one key, every route, one pool connection
#   carrying both workers' statements (killed mid-pipeline), and the kill stress (backends
#   terminated at random points of cancel and hand-over, every slot free at the end).  Tests whose checks depend on timing are left out
#   (test_server_idle, and test_server_pool, whose shutdown check needs a 2 s lock to outlast
#   its set-up): ThreadSanitizer slows the server several times.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-san}
tsan_build=${2:-build-tsan}
tsan_tests=${TSAN_TESTS-test_sanitizers test_server_orders test_server_routes test_pool_workers test_pool_kills}
skip=" ${SANITIZE_SKIP-test_deploy test_lab test_lab_user test_lab_sweep test_dashboard test_scenario test_faults_lab test_lab_replicas test_lab_root_home} "

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
export TSAN_OPTIONS="second_deadlock_stack=1:log_path=$report_dir/tsan"

# shellcheck source=tests/tally.sh
source tests/tally.sh
passed=0 failed=0
start=$SECONDS
echo "sanitized pass: $build (ASan+UBSan), skipping:${skip% }"
status=0
out=$(tests/run.sh "$build" unit 2>&1) || status=$?
grep -v '^tests: ' <<<"$out" || true
tally "$out" "$status"

# One run.sh for every integration test of this pass, so one throwaway PostgreSQL cluster
# serves them all as in the plain pass (run.sh goes on after a failing test).  Each is named
# "/NAME." in the filter: only that file matches.
names=()
for t in tests/integration/{*/,}test_*.py tests/integration/{*/,}test_*.sh; do
	[[ -f $t ]] || continue
	name=$(basename "$t")
	name=${name%.*}
	[[ $skip == *" $name "* ]] && continue
	names+=("/$name.")
done
if ((${#names[@]})); then
	log=$(mktemp /tmp/catalog-sanitized-log.XXXXXX)
	set +e # each test's line shown as it ends; run.sh's status kept
	BESIDE_TESTS="" tests/run.sh "$build" integration "${names[*]}" 2>&1 | tee "$log" | grep -Ev '^(tests: |pg\.sh: )'
	status=${PIPESTATUS[0]}
	set -e
	tally "$(<"$log")" "$status"
	rm -f "$log"
fi

# ThreadSanitizer: first a canary with a deliberate data race must be reported (so a clean
# result means something here), then the server's tests.
tsan_pass() {
	local canary_dir status out
	if [[ ! -x $tsan_build/catalog-server ]] || ! grep -q __tsan_init "$tsan_build/catalog-server"; then
		echo "FAIL $tsan_build/catalog-server is not a ThreadSanitizer build; run make sanitize"
		failed=$((failed + 1))
		return
	fi
	canary_dir=$(mktemp -d /tmp/catalog-tsan-canary.XXXXXX)
	printf '%s\n' '#include <pthread.h>' 'int shared;' \
		'static void *bump(void *arg) { shared++; return arg; }' \
		'int main(void) { pthread_t t; pthread_create(&t, 0, bump, 0); shared++;' \
		'pthread_join(t, 0); return 0; }' >"$canary_dir/race.c"
	status=0
	if "${CC:-cc}" -g -fsanitize=thread -pthread -o "$canary_dir/race" "$canary_dir/race.c" 2>"$canary_dir/cc.log"; then
		TSAN_OPTIONS="log_path=$canary_dir/report" "$canary_dir/race" || status=$?
	fi
	if ! grep -qs "data race" "$canary_dir"/report.*; then
		echo "FAIL ThreadSanitizer canary: a deliberate data race was not reported (exit $status)"
		cat "$canary_dir"/cc.log "$canary_dir"/report.* 2>/dev/null | head -n 20 | sed 's/^/    /'
		failed=$((failed + 1))
		rm -rf "$canary_dir"
		return
	fi
	rm -rf "$canary_dir"
	passed=$((passed + 1))
	echo "ok   ThreadSanitizer canary: a deliberate data race is reported"
	[[ -n $tsan_tests ]] || return 0
	status=0
	out=$(tests/run.sh "$tsan_build" integration "$tsan_tests" 2>&1) || status=$?
	grep -Ev '^(tests: |pg\.sh: )' <<<"$out" | sed 's/^\(ok  \|FAIL\) /\1 tsan:/' || true
	tally "$out" "$status"
}
echo "ThreadSanitizer pass: $tsan_build, tests: $tsan_tests"
tsan_pass

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
