#!/usr/bin/env bash
# test_faults_lab.sh: faults behind nginx in the lab (scripts/lab.sh scale 2), in a temporary
# LAB_DIR on free ports with its own small PostgreSQL: SIGTERM to one server under a load through
# nginx (no failed request, the server exits cleanly, up brings it back), then a rolling restart
# of every server under load (scripts/lab.sh restart: zero failed GETs, every PID new), then
# both servers busy (a lock and a short statement timeout: 503s): nginx passes the 503s on and
# never answers 502 "no live upstreams".
# Never touches a developer's lab (var/, ports 3000/5432/8080/9090) or the shared test cluster.
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
loadtest=$CATALOG_BUILD/catalog-loadtest

# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh
report_start faults

need_build

lab_env_setup faults
lb=http://127.0.0.1:$LAB_LB_PORT

load_pid="" lock_pid=""
cleanup() {
	[[ -n $load_pid ]] && kill -KILL "$load_pid" 2>/dev/null || true
	[[ -n $lock_pid ]] && kill -KILL "$lock_pid" 2>/dev/null || true
	lab_cleanup
}
trap cleanup EXIT

# load_by_server FILE: "ID:REQUESTS ..." of a load test result (from X-Server-Id).
load_by_server() {
	json_field "$1" '" ".join("%s:%d" % (k, v["requests"]) for k, v in sorted(r.get("by_server", {}).items()))' 2>/dev/null || true
}

# start_load FILE DURATION: catalog-loadtest through nginx in the background (load_pid), GETs only.
start_load() {
	"$loadtest" -c 20 -d "$2" -t 2 --json "$1" \
		--path /products/1 --path '/products?category=books' --path /health "$lb" >"$1.out" 2>&1 &
	load_pid=$!
}

# ---- the lab with two servers behind nginx ----------------------------------------------------
out=$("$lab" up 2>&1) || true
record_pids
out+=$("$lab" scale 2 2>&1) || true
record_pids
servers=$(health_server_set 4 "$lb" 2>/dev/null || true)
if [[ $servers == "app app2 " ]]; then
	ok "scale 2: nginx reaches app and app2"
else
	fail "scale 2: nginx reaches app and app2" "got: $servers" "$out"
	finish
fi

# ---- (a) SIGTERM to one server under load through nginx ----------------------------------------
victim=$(server_field app2 5)
log=$LAB_DIR/log/app2.log
log_lines=$(wc -l <"$log")
start_load "$LAB_DIR/load-term.json" 8s
sleep 2
term_at=$SECONDS
kill -TERM "$victim"
wait_gone "$victim" 15 && gone=1 || gone=0
stop_s=$((SECONDS - term_at))
wait "$load_pid" || true
load_pid=""
read -r requests errors timeouts non2xx <<<"$(load_figures "$LAB_DIR/load-term.json")"
split=$(load_by_server "$LAB_DIR/load-term.json")
((requests > 0 && errors == 0 && timeouts == 0 && non2xx == 0)) && [[ $split == *app:* && $split == *app2:* ]] &&
	ok "SIGTERM to app2 under load: no failed request through nginx ($requests requests: $split)" ||
	fail "SIGTERM to app2 under load: no failed request through nginx" \
		"requests $requests errors $errors timeouts $timeouts non2xx $non2xx ($split)" "$(tail -n 5 "$LAB_DIR/load-term.json.out")"
after=$(tail -n +"$((log_lines + 1))" "$log")
# main() returns 0 right after logging "stopped"; a shutdown that timed out says "still open".
((gone)) && grep -q 'SIGTERM: stopping' <<<"$after" && grep -q '\bstopped$' <<<"$after" &&
	! grep -q 'still open after' <<<"$after" &&
	ok "SIGTERM: app2 finished its requests and exited cleanly in ${stop_s}s (its log says stopped)" ||
	fail "SIGTERM: app2 exits cleanly" "gone=$gone after ${stop_s}s" "log: $after"
out=$("$lab" up 2>&1) && "$lab" status >/dev/null 2>&1 && [[ $(health_server_set 4 "$lb" 2>/dev/null) == "app app2 " ]] &&
	ok "up brings the layout back: status ok, nginx reaches app and app2" ||
	fail "up brings the layout back" "$out" "$("$lab" status 2>&1)"
record_pids

# ---- (b) a rolling restart of every server under load ------------------------------------------
declare -A pid_before port_before lines_before
for id in app app2; do
	pid_before[$id]=$(server_field "$id" 5)
	port_before[$id]=$(server_field "$id" 2)
	lines_before[$id]=$(wc -l <"$LAB_DIR/log/$id.log")
done
nginx_before=$(cat "$LAB_DIR/run/nginx/nginx.pid" && pgrep -P "$(cat "$LAB_DIR/run/nginx/nginx.pid")" | sort)
# Bounded: the load stops on its own after 60 s; it is stopped (SIGINT: it reports) 1 s after
# the restart ends.
start_load "$LAB_DIR/load-restart.json" 60s
sleep 1
restart_at=$SECONDS
rc=0
out=$("$lab" restart 2>&1) || rc=$?
restart_s=$((SECONDS - restart_at))
sleep 1
kill -INT "$load_pid" 2>/dev/null || true
wait "$load_pid" || true
load_pid=""
record_pids
((rc == 0)) && ok "restart: succeeds in ${restart_s}s" || fail "restart: succeeds" "exit $rc" "$out"
read -r requests errors timeouts non2xx <<<"$(load_figures "$LAB_DIR/load-restart.json")"
split=$(load_by_server "$LAB_DIR/load-restart.json")
((requests > 0 && errors == 0 && timeouts == 0 && non2xx == 0)) &&
	ok "rolling restart under load: zero failed GETs through nginx ($requests requests: $split)" ||
	fail "rolling restart under load: zero failed GETs through nginx" \
		"requests $requests errors $errors timeouts $timeouts non2xx $non2xx ($split)" "$(tail -n 5 "$LAB_DIR/load-restart.json.out")" "$out"
changed_pids=() same=()
for id in app app2; do
	pid=$(server_field "$id" 5 || echo none)
	if [[ $pid != none && $pid != "${pid_before[$id]}" ]] && ! alive "${pid_before[$id]}" && alive "$pid"; then
		changed_pids+=("$id ${pid_before[$id]}->$pid")
	else
		same+=("$id ${pid_before[$id]}->$pid")
	fi
	[[ $(server_field "$id" 2) == "${port_before[$id]}" ]] || same+=("$id moved from port ${port_before[$id]}")
done
((${#same[@]} == 0)) && ok "restart: every server is a new process on its old port (${changed_pids[*]})" ||
	fail "restart: every server is a new process on its old port" "${same[@]}"
nginx_after=$(cat "$LAB_DIR/run/nginx/nginx.pid" && pgrep -P "$(cat "$LAB_DIR/run/nginx/nginx.pid")" | sort)
[[ $nginx_after == "$nginx_before" ]] && ok "restart: nginx was not reloaded (same master and workers)" ||
	fail "restart: nginx was not reloaded" "before: $nginx_before" "after: $nginx_after"
unclean=()
for id in app app2; do
	after=$(tail -n +"$((lines_before[$id] + 1))" "$LAB_DIR/log/$id.log")
	grep -q 'SIGTERM: stopping' <<<"$after" && grep -q '\bstopped$' <<<"$after" &&
		! grep -q 'still open after' <<<"$after" || unclean+=("$id: $after")
done
((${#unclean[@]} == 0)) && ok "restart: each old server finished its requests and logged a clean stop" ||
	fail "restart: each old server logged a clean stop" "${unclean[@]}"
"$lab" status >/dev/null 2>&1 && [[ $(health_server_set 4 "$lb" 2>/dev/null) == "app app2 " ]] &&
	ok "after the restart: status ok, nginx reaches app and app2" ||
	fail "after the restart: status ok, nginx reaches app and app2" "$("$lab" status 2>&1)"

# ---- (c) busy servers answer 503: nginx passes it on, and leaves no server out -----------------
# The servers restarted with a short statement timeout, then a lock on products held in the lab's
# PostgreSQL: every product read is cancelled after 300 ms and answered 503 by both servers,
# while /health/live (no database) still answers 200.  A 503 must not count as a failed attempt
# (with http_503 in proxy_next_upstream both servers reached max_fails after two product reads,
# and nginx answered 502 "no live upstreams" to everything, /health/live included, for
# fail_timeout).
out=$(DB_STATEMENT_TIMEOUT_MS=300 "$lab" restart 2>&1) || fail "restart with DB_STATEMENT_TIMEOUT_MS=300" "$out"
record_pids
if pg_exports=$(scripts/pg.sh env "$LAB_DIR/pg" 2>&1); then
	lab_psql() { (eval "$pg_exports" && psql -XAtq -d catalogdb "$@"); }
	# Bounded: the lock goes when its session ends (20 s at most), or is ended below.
	lab_psql -c "SET application_name = 'catalog-test-lock'" \
		-c "BEGIN; LOCK TABLE products IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT" >/dev/null 2>&1 &
	lock_pid=$!
	locked=0
	for ((tries = 0; tries < 50; tries++)); do
		granted=$(lab_psql -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.relname = 'products' AND l.mode = 'AccessExclusiveLock' AND l.granted" 2>/dev/null || echo 0)
		[[ $granted == 1 ]] && locked=1 && break
		sleep 0.1
	done
	codes=()
	for ((i = 0; i < 6; i++)); do
		codes+=("products:$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$lb/products/1" || true)")
		codes+=("live:$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$lb/health/live" || true)")
	done
	lab_psql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'catalog-test-lock'" >/dev/null 2>&1 || true
	wait "$lock_pid" 2>/dev/null || true
	lock_pid=""
	summary=$(printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{ printf "%s x%d ", $2, $1 }')
	((locked)) && [[ " ${codes[*]} " != *":502 "* && $summary == "live:200 x6 products:503 x6 " ]] &&
		ok "busy servers (503 on every product read): nginx passes the 503 on, never 502, /health/live 200 ($summary)" ||
		fail "busy servers: nginx passes the 503 on, never answers 502 (no server left out)" \
			"lock granted: $locked" "${codes[*]}"
	# After the lock: both servers answer at once (none was left out for fail_timeout).
	servers=$(health_server_set 4 "$lb" 2>/dev/null || true)
	[[ $servers == "app app2 " ]] && ok "after the busy spell nginx reaches app and app2 at once" ||
		fail "after the busy spell nginx reaches app and app2 at once" "got: $servers"
else
	fail "the lab's PostgreSQL exports (scripts/pg.sh env)" "$pg_exports"
fi

# ---- down: nothing left ------------------------------------------------------------------------
record_pids
"$lab" down >/dev/null 2>&1 || fail "down succeeds"
mapfile -t all_pids < <(printf '%s\n' "${all_pids[@]}" | grep -E '^[0-9]+$' | sort -un)
mapfile -t left < <(pids_left)
((${#left[@]} == 0)) && ok "down: none of the ${#all_pids[@]} processes the lab started is left" ||
	fail "down: no process left" "still running: ${left[*]}"

finish
