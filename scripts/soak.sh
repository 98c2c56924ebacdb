#!/usr/bin/env bash
# soak.sh: `make soak`: one catalog-server (build/) against a throwaway PostgreSQL, loaded on
# loopback in rounds until it has answered REQUESTS requests (default 1,000,000), with the
# server's resident memory (VmRSS) sampled after every round.  Passes when memory is flat: after
# the warm-up (the first WARMUP_PERCENT of the requests, default 20) RSS grows by no more than
# MAX_GROWTH_KB (default 4096 KiB: allocator noise, never a per-request leak, which 800,000
# requests would multiply).  Bounded: at most MAX_ROUNDS rounds of ROUND_S seconds.
#
# Usage: scripts/soak.sh [BUILD_DIR]   (default build)
# Env: REQUESTS, ROUND_S (5), CONNECTIONS (32), MAX_ROUNDS (120), WARMUP_PERCENT, MAX_GROWTH_KB,
#      SOAK_CSV (also write "round,requests,rss_kb" lines to this file).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
requests_wanted=${REQUESTS:-1000000}
round_s=${ROUND_S:-5}
connections=${CONNECTIONS:-32}
max_rounds=${MAX_ROUNDS:-120}
warmup_percent=${WARMUP_PERCENT:-20}
max_growth_kb=${MAX_GROWTH_KB:-4096}

for program in catalog-server catalog-db catalog-loadtest; do
	[[ -x $build/$program ]] || {
		echo "soak.sh: $build/$program is missing; run make first" >&2
		exit 2
	}
done

work=$(mktemp -d /tmp/catalog-soak.XXXXXX)
pgdir=$(mktemp -d /tmp/catalog-soak-pg.XXXXXX) # a folder of its own: pg.sh hands it to postgres
server_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
	rm -rf "$work" "$pgdir"
}
trap cleanup EXIT

# shellcheck disable=SC1090
source <(PG_FAST=1 scripts/pg.sh start "$pgdir")
[[ -n ${PGPORT:-} ]] || {
	echo "soak.sh: PostgreSQL did not start (scripts/pg.sh start $pgdir)" >&2
	exit 1
}
export DB_NAME=catalog_soak
psql -XAtq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB_NAME" -c "CREATE DATABASE $DB_NAME" >/dev/null
SEED_PRODUCTS=200 SEED_ORDERS=2000 "$build/catalog-db" seed >/dev/null

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST=127.0.0.1 PORT=$port ACCESS_LOG=0 SERVER_ID=soak DB_POOL_MAX=8 \
	"$build/catalog-server" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null || {
	echo "soak.sh: the server did not start:" >&2
	cat "$work/server.log" >&2
	exit 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }

# Every route, the errors included, so a leak on any path shows.  Most rounds are reads (fast,
# so a million requests take minutes); every fourth round adds the writes and /report, and every
# fourth, offset by two, opens a connection per request (accept and close paths).
read_paths=(/products/1 /products/999999999 /products/abc /products?category=electronics
	/products?category=%zz /health /metrics)
all_paths=("${read_paths[@]}" /report 'POST /orders {"product_id":1,"quantity":1}'
	'POST /orders {"product_id":1,"quantity":0}' 'POST /orders {"product_id":999999,"quantity":1}'
	'POST /orders {broken')
read_args=() all_args=()
for p in "${read_paths[@]}"; do read_args+=(--path "$p"); done
for p in "${all_paths[@]}"; do all_args+=(--path "$p"); done

echo "soak: $requests_wanted requests to 127.0.0.1:$port in rounds of ${round_s}s, $connections connections"
printf '%6s %12s %10s\n' round requests rss_kb
total=0 round=0 warm_rss='' warm_at=$((requests_wanted * warmup_percent / 100))
start_rss=$(rss_kb)
printf '%6s %12s %10s\n' 0 0 "$start_rss"
[[ -n ${SOAK_CSV:-} ]] && echo "round,requests,rss_kb" >"$SOAK_CSV" && echo "0,0,$start_rss" >>"$SOAK_CSV"
failures=0
while ((total < requests_wanted && round < max_rounds)); do
	round=$((round + 1))
	args=("${read_args[@]}")
	((round % 4 == 0)) && args=("${all_args[@]}")
	((round % 4 == 2)) && args+=(--no-keepalive)
	"$build/catalog-loadtest" -c "$connections" -d "${round_s}s" "${args[@]}" \
		--json "$work/round.json" "http://127.0.0.1:$port/" >/dev/null 2>"$work/loadtest.log" || true
	read -r sent failed < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r.get("requests", 0), r.get("errors", 0) + r.get("timeouts", 0))' "$work/round.json")
	total=$((total + sent))
	failures=$((failures + failed))
	rss=$(rss_kb)
	printf '%6d %12d %10d\n' "$round" "$total" "$rss"
	[[ -n ${SOAK_CSV:-} ]] && echo "$round,$total,$rss" >>"$SOAK_CSV"
	if [[ -z $warm_rss ]] && ((total >= warm_at)); then warm_rss=$rss; fi
done
end_rss=$(rss_kb)

kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=

verdict=0
if ((total < requests_wanted)); then
	echo "FAIL only $total requests in $max_rounds rounds (want $requests_wanted)"
	verdict=1
fi
growth=$((end_rss - ${warm_rss:-$end_rss}))
echo "rss: ${start_rss} KiB at start, ${warm_rss:-?} KiB after warm-up, ${end_rss} KiB after $total requests (growth ${growth} KiB, limit ${max_growth_kb})"
if ((growth > max_growth_kb)); then
	echo "FAIL resident memory grew by $growth KiB after the warm-up"
	verdict=1
fi
echo "connection errors and timeouts: $failures"
if ((server_rc != 0)); then
	echo "FAIL the server exited with $server_rc on SIGTERM"
	tail -n 20 "$work/server.log"
	verdict=1
fi
if ((verdict == 0)); then echo "soak: ok (flat)"; else echo "soak: FAIL"; fi
exit "$verdict"
