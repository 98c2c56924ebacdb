#!/usr/bin/env bash
# lab_env.sh: the environment of a throwaway lab (scripts/lab.sh) for an integration test.
#
# Sourced, never run (its name does not start with test_, so tests/run.sh skips it).  In a
# test that has `set -euo pipefail`:
#
#   # shellcheck source=tests/integration/common/lab_env.sh
#   source "$(dirname "$0")/lab_env.sh"
#   lab_env_setup NAME [EXTRA_PORTS]   # NAME names the temporary folder and cgroup
#   trap lab_cleanup EXIT              # or a cleanup of the test's own that calls lab_cleanup
#
# lab_env_setup NAME [EXTRA_PORTS] picks a block of free loopback ports below the kernel's
# ephemeral range and exports what scripts/lab.sh reads, so that the lab never touches a
# developer's lab (var/, ports 3000/5432/8080/9090/3002, exporters) or the shared test cluster:
#   LAB_APP_PORT               the block's first port; scaled servers take the ports above it
#   LAB_LB_PORT LAB_PROM_PORT LAB_PG_PORT LAB_GRAFANA_PORT                  first port + 12..15
#   LAB_PG_EXPORTER_PORT LAB_PROCESS_EXPORTER_PORT LAB_NODE_EXPORTER_PORT   first port + 16..18
#   LAB_DIR                    a new folder /tmp/catalog-NAME-test.XXXXXX (mode 755: PostgreSQL
#                              runs as the postgres user and must reach its data folder)
#   LAB_CGROUP                 /sys/fs/cgroup/cpu/catalog-NAME-test-PID
#   LAB_SKIP_DEPS=1 ACCESS_LOG=0 PG_FAST=1 SEED_PRODUCTS=200 SEED_ORDERS=2000
# It unsets what would point the lab elsewhere or change its layout (BASE_URL, PG*, DB_*,
# SERVER_CPUS, DB_BUDGET, DB_REPLICAS, DB_CPUS, LAB_REPLICA_PORT, MIX, REPORT_MODE, WORKERS,
# SERVERS, MAKEFLAGS, ...), and sets the shell variables lab_first_port and lab_last_port (the lab's ports: first .. first + 18) and
# lab_extra_port (the first of EXTRA_PORTS free ports just after them, for the test's own use).
#
# It sources report.sh (ok, fail, finish, report_start: see there) and also defines:
#   lab               the path of scripts/lab.sh
#   nginx             the nginx binary (Debian's is in /usr/sbin, not on a normal account's PATH)
#   all_pids          an array, filled by record_pids
#   port_busy PORT    true when something listens on the TCP port PORT
#   free_block COUNT  prints a first port such that COUNT consecutive ports are free
#   alive PID         true when PID runs (a zombie waiting to be reaped has ended)
#   lab_state EXPR    a value of the lab's state file (run/state.json), EXPR a Python expression
#                     of s, e.g. lab_state 's["ports"]["nginx"]'
#   server_records    the lab's servers, "ID PORT POOL CPUS PID" a line
#   record_pids       adds the PIDs of every process the lab started (servers, nginx, Prometheus,
#                     exporters and their children, PostgreSQL) to all_pids, from its state file
#   lab_cleanup       scripts/lab.sh down, then kills whatever record_pids saw, removes LAB_CGROUP
#                     and LAB_DIR; never fails
#   pids_left         "PID:COMMAND" of each PID in all_pids that still runs, one a line, each
#                     PID once (after scripts/lab.sh down: what it left behind)
#   need_build        at the first of catalog-server, catalog-db, catalog-loadtest missing from
#                     CATALOG_BUILD: fail "build: PATH exists (run make)", then finish
#   wait_gone PID TIMEOUT_S   true once PID has ended, false if it still runs after TIMEOUT_S
#   server_field ID FIELD     a field of the server_records line of server ID:
#                             port (2), pool (3), pid (5); false when there is no server ID
#   health_server URL         the "server" field of one answer of URL/health
#   health_servers N URL      the "server" fields of N consecutive answers, space separated
#                             (an empty field for an answer that failed)
#   health_server_set N URL   the distinct "server" fields of N answers, sorted, each followed
#                             by a space ("app app2 "); failed answers are left out
#   json_field FILE EXPR      a value from a load test result (catalog-loadtest --json), EXPR
#                             a Python expression of r, e.g. json_field r.json 'r["errors"]'
#   load_figures FILE         "REQUESTS ERRORS TIMEOUTS NON2XX" of a load test result, or
#                             "0 -1 -1 -1" when FILE cannot be read

# shellcheck source=tests/integration/common/report.sh
source "$(dirname "${BASH_SOURCE[0]}")/report.sh"

lab=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/lab.sh
# shellcheck disable=SC2034 # read by the tests that source this file
nginx=$(command -v nginx || echo /usr/sbin/nginx)
all_pids=()

port_busy() { [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }

# free_block COUNT: below the kernel's ephemeral range, so that no outgoing connection takes
# one of the ports between this check and the server's bind.  CATALOG_TEST_PORTS=LOW-HIGH
# narrows the range (tests/run.sh gives the lab tests it runs beside the others a range of
# their own, so that two tests never pick overlapping blocks).
free_block() {
	local count=$1 base i tries low=10000 high
	read -r high _ </proc/sys/net/ipv4/ip_local_port_range
	((high > 12000)) || high=32768
	if [[ ${CATALOG_TEST_PORTS:-} =~ ^([0-9]+)-([0-9]+)$ ]]; then
		low=${BASH_REMATCH[1]} high=$((BASH_REMATCH[2] + 1))
	fi
	for ((tries = 0; tries < 100; tries++)); do
		base=$((low + RANDOM % (high - low - count)))
		for ((i = 0; i < count; i++)); do port_busy $((base + i)) && continue 2; done
		echo "$base"
		return 0
	done
	echo "no free block of $count ports" >&2
	return 1
}

alive() { [[ -r /proc/$1/stat && $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }

lab_env_setup() {
	local name=$1 extra=${2:-0} base
	base=$(free_block $((19 + extra)))
	# shellcheck disable=SC2034 # read by the tests that source this file
	lab_first_port=$base lab_last_port=$((base + 18)) lab_extra_port=$((base + 19))
	export LAB_APP_PORT=$base
	export LAB_LB_PORT=$((base + 12)) LAB_PROM_PORT=$((base + 13)) LAB_PG_PORT=$((base + 14))
	export LAB_GRAFANA_PORT=$((base + 15))
	export LAB_PG_EXPORTER_PORT=$((base + 16)) LAB_PROCESS_EXPORTER_PORT=$((base + 17))
	export LAB_NODE_EXPORTER_PORT=$((base + 18))
	export LAB_SKIP_DEPS=1 ACCESS_LOG=0 PG_FAST=1
	export SEED_PRODUCTS=200 SEED_ORDERS=2000
	export LAB_CGROUP=/sys/fs/cgroup/cpu/catalog-$name-test-$$
	unset BASE_URL SERVER_CPUS DB_BUDGET DB_REPLICAS DB_CPUS LAB_REPLICA_PORT MIX REPORT_MODE WORKERS \
		LOAD_NAME PURGE SERVERS \
		PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME \
		MAKEFLAGS MFLAGS MAKELEVEL
	LAB_DIR=$(mktemp -d "/tmp/catalog-$name-test.XXXXXX")
	chmod 755 "$LAB_DIR"
	export LAB_DIR
}

# lab_state EXPR: a value from the lab's state file (LAB_DIR/run/state.json), EXPR a Python
# expression of s, e.g. lab_state 's["ports"]["nginx"]'; prints nothing when there is none.
lab_state() {
	python3 -c 'import json,sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
v = eval(sys.argv[2])
print("\n".join(map(str, v)) if isinstance(v, list) else v)' "$LAB_DIR/run/state.json" "$1" 2>/dev/null
}

# server_records: the lab's servers as "ID PORT POOL CPUS PID" lines (CPUS "-" for none).
server_records() {
	lab_state '["%s %d %d %s %d" % (r["id"], r["port"], r["pool"], r.get("cpus") or "-", r["pid"]) for r in s["servers"]]'
}

# lab_pids: the PIDs of every process the lab started, one a line, from its state file.
lab_pids() {
	local pid
	server_records | cut -d' ' -f5
	for pid in $(lab_state 'list(s["pids"].values())') $(cat "$LAB_DIR/run/nginx/nginx.pid" 2>/dev/null); do
		echo "$pid"
		pgrep -P "$pid" || true
	done
	[[ -f $LAB_DIR/pg/data/postmaster.pid ]] && head -n 1 "$LAB_DIR/pg/data/postmaster.pid"
	return 0
}

record_pids() { mapfile -t -O "${#all_pids[@]}" all_pids < <(lab_pids); }

# shellcheck disable=SC2317 # called by an EXIT trap
lab_cleanup() {
	[[ -n ${LAB_DIR:-} ]] || return 0 # before lab_env_setup: no lab of this test's to stop
	"$lab" down >/dev/null 2>&1 || true
	local pid
	for pid in "${all_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	rmdir "$LAB_CGROUP"/* "$LAB_CGROUP" 2>/dev/null || true
	rm -rf "$LAB_DIR"
}

pids_left() {
	local pid
	for pid in $(printf '%s\n' "${all_pids[@]}" | grep -E '^[0-9]+$' | sort -un); do
		alive "$pid" && echo "$pid:$(cat "/proc/$pid/comm" 2>/dev/null)"
	done
	return 0
}

need_build() {
	local program
	for program in catalog-server catalog-db catalog-loadtest; do
		if [[ ! -x $CATALOG_BUILD/$program ]]; then
			fail "build: $CATALOG_BUILD/$program exists (run make)"
			finish
		fi
	done
}

wait_gone() {
	local tries=0
	while alive "$1"; do
		((tries >= $2 * 10)) && return 1
		sleep 0.1
		tries=$((tries + 1))
	done
}

server_field() {
	local line
	line=$(server_records | awk -v id="$1" '$1 == id { print; exit }')
	[[ -n $line ]] || return 1
	cut -d' ' -f"$2" <<<"$line"
}

health_server() {
	curl -fsS --max-time 5 "$1/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server"])'
}

health_servers() {
	local i out=""
	for ((i = 0; i < $1; i++)); do out+="$(health_server "$2") "; done
	echo "${out% }"
}

health_server_set() {
	local i
	for ((i = 0; i < $1; i++)); do health_server "$2"; done | sort -u | tr '\n' ' '
}

json_field() {
	python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

load_figures() {
	json_field "$1" '"%d %d %d %d" % (r["requests"], r["errors"], r["timeouts"], r["non2xx"])' 2>/dev/null ||
		echo "0 -1 -1 -1"
}
