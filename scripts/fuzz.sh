#!/usr/bin/env bash
# fuzz.sh: builds every libFuzzer driver in fuzz/ (make fuzzers: clang, ASan+UBSan), replays
# the committed crash inputs (fuzz/regressions/), then fuzzes each driver for a bounded time from
# its seed corpus and dictionary.  Prints one line per driver and a closing "fuzz: N passed, N failed".
#
# Usage: scripts/fuzz.sh [--seconds N] [--jobs N] [--keep] [driver...]
#   --seconds N  fuzzing time per driver (default 15: 5 drivers x 15 s = 75 s inside make test)
#   --jobs N     drivers fuzzed at once (default: the CPUs available, at most 4)
#   --keep       keep what the run found in build-fuzz/corpus/DRIVER (make fuzz); without it the
#                run starts from the committed seeds only and keeps nothing but crashes
#   driver       fuzz_order, order, ... (default: every fuzz/fuzz_*.c)
# A crash, leak, timeout or sanitizer report is saved as build-fuzz/crashes/DRIVER-*; turn it
# into a file in fuzz/regressions/ (named DRIVER-without-fuzz_ then _what) and a test in
# tests/unit/test_regressions.c.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=15
jobs=$(nproc 2>/dev/null || echo 2)
((jobs > 4)) && jobs=4
keep=0
drivers=()
while (($#)); do
	case $1 in
	--seconds) seconds=$2 && shift 2 ;;
	--jobs) jobs=$2 && shift 2 ;;
	--keep) keep=1 && shift ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
	-*) echo "fuzz.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
	*) drivers+=("fuzz_${1#fuzz_}") && shift ;;
	esac
done
if ((${#drivers[@]} == 0)); then
	for src in fuzz/fuzz_*.c; do drivers+=("$(basename "$src" .c)"); done
fi

CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null; then
	echo "fuzz.sh: $CLANG not found; install clang and libclang-rt-dev (scripts/install-deps.sh test)" >&2
	exit 2
fi
out=build-fuzz
mkdir -p "$out/crashes" "$out/logs"

# replay DRIVER: runs every committed crash input of the driver once; they must pass now.
replay() {
	local driver=$1 inputs=()
	for f in "fuzz/regressions/${driver#fuzz_}"_*; do
		[[ -f $f ]] && inputs+=("$f")
	done
	((${#inputs[@]} == 0)) && return 0
	"$out/$driver" -runs=1 "${inputs[@]}" >"$out/logs/$driver.replay" 2>&1
}

# run DRIVER: fuzzes for $seconds from the seeds; the verdict goes to $out/logs/DRIVER.verdict.
run() {
	local driver=$1 name=${1#fuzz_} work dict=() start=$SECONDS rc=0
	local seeds=fuzz/corpus/$name
	[[ -d $seeds ]] || seeds=$(mktemp -d)
	if ((keep)); then
		work=$out/corpus/$name
		mkdir -p "$work"
	else
		work=$(mktemp -d "/tmp/catalog-fuzz-$name.XXXXXX")
	fi
	for d in "fuzz/$name.dict" "fuzz/${name%_request}.dict"; do
		if [[ -f $d ]]; then
			dict=("-dict=$d")
			break
		fi
	done
	if ! replay "$driver"; then
		echo "FAIL $driver: a committed input in fuzz/regressions crashes it again" >"$out/logs/$driver.verdict"
		tail -n 30 "$out/logs/$driver.replay" >>"$out/logs/$driver.verdict"
		((keep)) || rm -rf "$work"
		return 0
	fi
	# -timeout: one input slower than 10 s is a hang; -rss_limit_mb: a blow-up is a finding.
	"$out/$driver" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len=4096 -print_final_stats=1 -artifact_prefix="$out/crashes/$driver-" \
		"$work" "$seeds" >"$out/logs/$driver.log" 2>&1 || rc=$?
	local runs
	runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$out/logs/$driver.log" | grep -Eo '[0-9]+$' || echo 0)
	if ((rc == 0)); then
		echo "ok   $driver $((SECONDS - start))s, $runs inputs, no crash" >"$out/logs/$driver.verdict"
	else
		{
			echo "FAIL $driver (exit $rc) after $((SECONDS - start))s; input saved in $out/crashes/:"
			grep -E 'ERROR|runtime error|invariant failed|SUMMARY|Test unit written' "$out/logs/$driver.log" | head -n 10
		} >"$out/logs/$driver.verdict"
	fi
	((keep)) || rm -rf "$work"
}

for driver in "${drivers[@]}"; do
	if [[ ! -f fuzz/$driver.c ]]; then
		echo "fuzz.sh: no fuzz/$driver.c" >&2
		exit 2
	fi
	rm -f "$out/logs/$driver.verdict"
done
# The Makefile builds the drivers (make fuzzers: clang, libFuzzer, ASan, UBSan) from the same
# archives as the unit tests, so a driver links whatever its module needs.
if ! make --no-print-directory -s FUZZ=1 CC="$CLANG" fuzzers >"$out/logs/build.log" 2>&1; then
	cat "$out/logs/build.log" >&2
	echo "fuzz: 0 passed, ${#drivers[@]} failed (the drivers did not build)"
	exit 1
fi

echo "fuzz: ${#drivers[@]} drivers, ${seconds}s each, $jobs at a time (ASan+UBSan)"
running=0
for driver in "${drivers[@]}"; do
	run "$driver" &
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n || true
		running=$((running - 1))
	fi
done
wait

passed=0 failed=0
for driver in "${drivers[@]}"; do
	verdict=$out/logs/$driver.verdict
	[[ -f $verdict ]] || echo "FAIL $driver: no verdict (see $out/logs/$driver.log)" >"$verdict"
	cat "$verdict"
	if [[ $(head -c 2 "$verdict") == ok ]]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
