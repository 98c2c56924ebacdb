#!/usr/bin/env bash
# test_lab_replicas.sh: the lab's PostgreSQL replicas end to end (scripts/lab.sh), in a
# temporary LAB_DIR on free ports, with a real primary and a real hot standby:
# DB_REPLICAS=1 makes replica1 with pg_basebackup, streaming (the primary's pg_stat_replication
# says so, a row written on the primary is read on the standby) and the server gets
# DB_READ_HOSTS; make status shows its state, replay lag and connections, and a lag once replay
# is paused; a later scale without DB_REPLICAS keeps it; DB_CPUS restarts PostgreSQL and the
# standby, said so, and scale 2 gives app2 DB_READ_HOSTS too;
# down stops it, up repairs it from its own data; DB_REPLICAS=0 retires it (stopped, data and
# slot removed, DB_READ_HOSTS gone).  Runs as root or as a normal account alike (as root the
# clusters run as postgres; test_lab_user.sh shows how to run it as a throwaway account).
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh

report_start lab-replicas

need_build

lab_env_setup replicas 2
export LAB_REPLICA_PORT=$lab_extra_port # lab_env_setup leaves DB_REPLICAS and DB_CPUS unset
trap lab_cleanup EXIT

# psql_at PORT SQL: one value from the instance on PORT (the lab's password).
psql_at() {
	PGPASSWORD=postgres psql -h 127.0.0.1 -p "$1" -U postgres -d catalogdb -tAc "$2" 2>/dev/null
}
# read_hosts ID: DB_READ_HOSTS in server ID's environment ("" when it has none).
read_hosts() {
	local pid
	pid=$(server_field "$1" 5) || return 0
	tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^DB_READ_HOSTS=//p'
}
replica_pid() { head -n 1 "$LAB_DIR/pg-replica1/data/postmaster.pid" 2>/dev/null || true; }

out=$("$lab" up 2>&1) || fail "up succeeds" "$out"
record_pids
pg_port=$(lab_state 's["ports"]["postgres"]')

# ---- DB_REPLICAS=1: a hot standby, streaming ------------------------------------------------
out=$(DB_REPLICAS=1 "$lab" scale 1 2>&1) || fail "DB_REPLICAS=1 scale 1 succeeds" "$out"
record_pids
rport=$(lab_state 's["replicas"][0]["port"]')
all_pids+=("$(replica_pid)")
[[ $out == *"replica1 made with pg_basebackup"* && $rport == "$LAB_REPLICA_PORT" &&
	$(psql_at "$rport" "SELECT pg_is_in_recovery()") == t && -f $LAB_DIR/pg-replica1/data/standby.signal ]] &&
	ok "DB_REPLICAS=1: replica1 made with pg_basebackup beside the primary, a hot standby on LAB_REPLICA_PORT ($rport)" ||
	fail "DB_REPLICAS=1: replica1 made with pg_basebackup, a hot standby on LAB_REPLICA_PORT" "$out"
for ((i = 0; i < 50; i++)); do
	state=$(psql_at "$pg_port" "SELECT state FROM pg_stat_replication WHERE application_name = 'replica1'")
	[[ $state == streaming ]] && break
	sleep 0.1
done
[[ $state == streaming && -n $(psql_at "$pg_port" "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'catalog_replica1' AND active") ]] &&
	ok "replica1 streams from the primary through its slot (pg_stat_replication: $state)" ||
	fail "replica1 streams from the primary through its slot" "state '$state'"
[[ $(read_hosts app) == "127.0.0.1:$rport" ]] &&
	ok "the server gets DB_READ_HOSTS=127.0.0.1:$rport" || fail "the server gets DB_READ_HOSTS" "'$(read_hosts app)'"

# A write on the primary reaches the standby: wait on the WAL position, not on time.
psql_at "$pg_port" "CREATE TABLE replica_probe (v int); INSERT INTO replica_probe VALUES (42)" >/dev/null
lsn=$(psql_at "$pg_port" "SELECT pg_current_wal_lsn()")
for ((i = 0; i < 100; i++)); do
	[[ $(psql_at "$rport" "SELECT pg_last_wal_replay_lsn() >= '$lsn'") == t ]] && break
	sleep 0.05
done
[[ $(psql_at "$rport" "SELECT v FROM replica_probe") == 42 ]] &&
	ok "a row written on the primary is read on replica1 once it has replayed past it" ||
	fail "a row written on the primary is read on replica1" "replay $(psql_at "$rport" "SELECT pg_last_wal_replay_lsn()") of $lsn"

out=$("$lab" status 2>&1) || true
line=$(grep -E '^replica1 ' <<<"$out" || true)
[[ $line =~ replica1\ +pid\ [0-9]+\ +$rport\ +up\ +streaming,\ lag\ [0-9]+\ bytes,\ [0-9]+\ ms.*server\ connections\ [0-9]+ ]] &&
	ok "status: replica1 up, streaming, its lag in bytes and time, its connections: ${line//  / }" ||
	fail "status: replica1 up, streaming, lag in bytes and time, connections" "$out"

# Replay paused: the primary writes on, the standby's position stays, and status says how far.
psql_at "$rport" "SELECT pg_wal_replay_pause()" >/dev/null
psql_at "$pg_port" "INSERT INTO replica_probe SELECT generate_series(1, 1000)" >/dev/null
sleep 1.2
out=$("$lab" status 2>&1) || true
line=$(grep -E '^replica1 ' <<<"$out" || true)
[[ $line =~ lag\ ([0-9]+)\ bytes,\ (over\ [0-9.]+\ s|([0-9]+)\ ms) ]] && ((BASH_REMATCH[1] > 0)) &&
	[[ -z ${BASH_REMATCH[3]} || ${BASH_REMATCH[3]} -ge 1000 ]] &&
	ok "status: replay paused, writes on the primary: a lag in bytes and over a second (${BASH_REMATCH[0]})" ||
	fail "status: replay paused: a lag in bytes and over a second" "$line"
psql_at "$rport" "SELECT pg_wal_replay_resume()" >/dev/null

# ---- kept like SERVERS; DB_CPUS restarts PostgreSQL ----------------------------------------
rpid=$(replica_pid)
out=$("$lab" scale 1 2>&1) || fail "scale 1 succeeds" "$out"
[[ $(replica_pid) == "$rpid" && $(lab_state 's["layout"]["db_replicas"]') == 1 && $out == *"nothing changed"* ]] &&
	ok "a later scale without DB_REPLICAS keeps replica1 (same process, nothing changed)" ||
	fail "a later scale without DB_REPLICAS keeps replica1" "$(lab_state 's["layout"]')" "$out"
out=$(DB_CPUS=0.5 "$lab" scale 2 2>&1) || fail "DB_CPUS=0.5 scale 2 succeeds" "$out"
all_pids+=("$(replica_pid)")
mechanism=$(lab_state 's["db_limit"]["limit"]')
[[ $out == *"DB_CPUS changed (no limit -> 0.5): restarting PostgreSQL"* && $out == *"replica1: DB_CPUS changed"* &&
	$(lab_state 's["replicas"][0]["cpus"]') == 0.5 && -n $mechanism && $(read_hosts app2) == "127.0.0.1:$rport" ]] &&
	ok "DB_CPUS=0.5 scale 2: PostgreSQL and replica1 restarted with a CPU limit, said so (by $mechanism); app2 reads from replica1 too" ||
	fail "DB_CPUS=0.5: PostgreSQL and replica1 restarted with a CPU limit, said so" "$out"
out=$("$lab" status 2>&1) && [[ $out == *"server app "*"health ok"* && $out == *"server app2 "*"health ok"* ]] &&
	ok "after the restart both servers answer /health again (status exit 0)" ||
	fail "after the restart both servers answer /health again" "$out"

# ---- down stops it, up repairs it -----------------------------------------------------------
rpid=$(replica_pid)
out=$("$lab" down 2>&1) || fail "down succeeds" "$out"
wait_gone "$rpid" 10 && [[ $out == *"replica1 stopped"* ]] &&
	ok "down: replica1 stopped" || fail "down: replica1 stopped" "$out"
out=$("$lab" up 2>&1) || fail "up after down succeeds" "$out"
all_pids+=("$(replica_pid)")
[[ $out == *"replica1 started on 127.0.0.1:$rport"* && $out != *"pg_basebackup"* &&
	$(psql_at "$rport" "SELECT count(*) FROM replica_probe") == 1001 ]] &&
	ok "up: replica1 started again from its own data on its port (no new base backup)" ||
	fail "up: replica1 started again from its own data on its port" "$out"

# ---- DB_REPLICAS=0 retires it -----------------------------------------------------------------
rpid=$(replica_pid)
out=$(DB_REPLICAS=0 "$lab" scale 2 2>&1) || fail "DB_REPLICAS=0 scale 2 succeeds" "$out"
record_pids
wait_gone "$rpid" 10 && [[ ! -e $LAB_DIR/pg-replica1 && -z $(read_hosts app) && -z $(read_hosts app2) &&
	-z $(psql_at "$pg_port" "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'catalog_replica1'") &&
	$out == *"replica1 retired"* ]] &&
	ok "DB_REPLICAS=0: replica1 retired (stopped, data and slot removed), no server has DB_READ_HOSTS" ||
	fail "DB_REPLICAS=0: replica1 retired" "$out"

"$lab" down >/dev/null 2>&1 || true
for ((i = 0; i < 50; i++)); do # a process that ends as it is listed shows with no name: look again
	left=$(pids_left)
	[[ -z $left ]] && break
	sleep 0.1
done
[[ -z $left ]] && ok "down: no process left" || fail "down: no process left" "still running: $left"
finish
