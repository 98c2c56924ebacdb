#!/usr/bin/env bash
# all.sh: everything `make test` runs, each part even when an earlier one failed, then one
# closing line "total: N passed, N failed" over the parts' own closing lines.
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

part "lint" scripts/lint.sh
part "tests ($build)" tests/run.sh "$build"
part "tests under ASan+UBSan (build-san)" scripts/test-sanitized.sh build-san
part "fuzzing" scripts/fuzz.sh --seconds 15
echo "make test took $((SECONDS - start)) s"
echo "total: $passed passed, $failed failed"
((failed == 0))
