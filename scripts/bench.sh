#!/usr/bin/env bash
# bench.sh: what `make bench` runs: the goals table (section 0), pgbench vs the full stack,
# server CPU per request and memory, the scenario's options A/B/C, catalog-loadtest vs wrk and
# the accuracy of catalog-loadtest ceiling, in one bounded run (about 11 minutes with the
# defaults, and up to 2 more for the ceiling's section) against a throwaway PostgreSQL on
# loopback; prints ratios and writes BENCHMARKS.md.
# Never part of `make test`.  Settings: see scripts/bench/bench.py (BENCH_DURATION,
# BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_PRODUCTS, BENCH_ORDERS, BENCH_OUTPUT, BENCH_KEEP,
# BENCH_BASELINE, BENCH_ONLY, BENCH_DB_TRANSPORT, BENCH_CALLGRIND, BENCH_CEILING_SERVICE_MS,
# BENCH_CEILING_NICE; BENCH_ONLY=ceiling: the ceiling's section alone, no database).
# Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export CATALOG_BUILD=${1:-${CATALOG_BUILD:-$PWD/build}}

missing=()
for tool in "$CATALOG_BUILD/catalog-server" "$CATALOG_BUILD/catalog-db" \
	"$CATALOG_BUILD/catalog-loadtest"; do
	[[ -x $tool ]] || missing+=("$tool (run make)")
done
for tool in python3 psql taskset nginx; do
	command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || missing+=("$tool")
done
if ! command -v pgbench >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/pgbench" >/dev/null; then
	missing+=("pgbench (PostgreSQL client)")
fi
if ((${#missing[@]})); then
	echo "bench: missing: ${missing[*]}; scripts/install-deps.sh all installs the tools" >&2
	exit 1
fi
# The whole run is bounded: every load run has its own duration; this is the backstop.
exec timeout --kill-after=30 1800 python3 scripts/bench/bench.py
