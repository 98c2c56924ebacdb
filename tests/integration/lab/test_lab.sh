#!/usr/bin/env bash
# test_lab.sh: the lab end to end (scripts/lab.sh) in a temporary LAB_DIR on free ports, with
# its own small PostgreSQL: up, status, scale with the connection budget, refusals, a server
# killed under load behind nginx, the generated nginx and Prometheus configs, down.
# Never touches a developer's lab (var/, ports 3000/5432/8080/9090) or the shared test cluster.
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh

report_start lab

need_build

lab_env_setup lab 2
blockers=()
cleanup() {
	local pid
	for pid in "${blockers[@]}"; do kill "$pid" 2>/dev/null || true; done
	lab_cleanup
}
trap cleanup EXIT

# configs_valid: nginx -t on the generated nginx config, promtool on the Prometheus config.
configs_valid() {
	local label=$1 out
	if [[ -f $LAB_DIR/run/nginx/nginx.conf ]]; then
		if out=$("$nginx" -t -p "$LAB_DIR/run/nginx" -c "$LAB_DIR/run/nginx/nginx.conf" 2>&1); then
			ok "$label: nginx -t passes on the generated config"
		else
			fail "$label: nginx -t passes on the generated config" "$out"
		fi
	fi
	if out=$(promtool check config "$LAB_DIR/run/prometheus.yml" 2>&1); then
		ok "$label: promtool check config passes on the generated config"
	else
		fail "$label: promtool check config passes on the generated config" "$out"
	fi
}

# ---- up, with the nginx and Prometheus ports taken by something else ------------------------
# Every part of the lab treats a busy port alike: the next free one, said so; what the lab
# prints and serves follows.  (Both move past the lab's other ports to the two extra ones.)
for port in "$LAB_LB_PORT" "$LAB_PROM_PORT"; do
	python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(300)' "$port" &
	blockers+=($!)
done
for ((tries = 0; tries < 50; tries++)); do port_busy "$LAB_LB_PORT" && port_busy "$LAB_PROM_PORT" && break; sleep 0.1; done
out=$("$lab" up 2>&1) || true
record_pids
# Right after up Prometheus may not have loaded or scraped its targets yet: status waits for the
# first scrape (or says it is still to come), never "0 of 0 up".
status_out=$("$lab" status 2>&1) || true
scrape=$(grep -oE 'scrape targets: [0-9]+ of [0-9]+ up.*' <<<"$status_out" || true)
[[ $scrape =~ ^scrape\ targets:\ ([0-9]+)\ of\ ([0-9]+)\ up ]] && ((BASH_REMATCH[2] == 4)) &&
	{ ((BASH_REMATCH[1] == 4)) || [[ $scrape == *"not scraped yet"* ]]; } &&
	ok "status right after up: the server's and three exporters' scrape targets ($scrape)" ||
	fail "status right after up: 4 scrape targets, up or said to be not scraped yet" "$status_out"
prom_port=$(lab_state 's["ports"]["prometheus"]')
lb_port=$(lab_state 's["ports"]["nginx"]')
lb=http://127.0.0.1:$lb_port
[[ $out == *"port $LAB_PROM_PORT is busy; Prometheus will use port $prom_port instead (LAB_PROM_PORT"* &&
	$out == *"port $LAB_LB_PORT is busy; nginx will use port $lb_port instead (LAB_LB_PORT"* &&
	$out == *"Prometheus:   http://127.0.0.1:$prom_port"* && $out == *"dashboard:    $lb/dashboard/"* ]] &&
	((prom_port != LAB_PROM_PORT && lb_port != LAB_LB_PORT)) &&
	ok "busy ports: nginx and Prometheus take the next free port ($lb_port, $prom_port), say so, and the printed addresses follow" ||
	fail "busy ports: nginx and Prometheus take the next free port and say so" "$out"
code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$lb/dashboard/prometheus/-/ready" || true)
[[ $code == 200 ]] && ok "busy ports: the dashboard reaches Prometheus on its new port through nginx" ||
	fail "busy ports: the dashboard reaches Prometheus through nginx" "answered $code"
for pid in "${blockers[@]}"; do kill "$pid" 2>/dev/null || true; done
if curl -fsS --max-time 5 "http://127.0.0.1:$LAB_APP_PORT/health" | grep -q '"server":"app"'; then
	ok "up: one server answers /health on the app port"
else
	fail "up: one server answers /health on the app port" "$out"
fi
[[ $out == *"Prometheus started"* && $out == *"entry point"* ]] &&
	ok "up: says where everything is" || fail "up: says where everything is" "$out"
if curl -fsS --max-time 5 "http://127.0.0.1:$prom_port/-/ready" >/dev/null; then
	ok "up: Prometheus answers on its port"
else
	fail "up: Prometheus answers on its port"
fi
grep -q 'server: "app"' "$LAB_DIR/run/prometheus.yml" && grep -q "127.0.0.1:$LAB_APP_PORT" "$LAB_DIR/run/prometheus.yml" &&
	ok "up: Prometheus scrapes the server, labelled server=app" ||
	fail "up: Prometheus scrapes the server, labelled server=app" "$(cat "$LAB_DIR/run/prometheus.yml")"
configs_valid "up"

out=$("$lab" up 2>&1) && [[ $out == *"nothing changed"* ]] &&
	ok "up twice: the second run changes nothing and says so" ||
	fail "up twice: the second run changes nothing and says so" "$out"

out=$("$lab" status 2>&1) && [[ $out == *"Orders in DB: $SEED_ORDERS"* && $out == *"server app "*"health ok"* ]] &&
	grep -qE "^prometheus +pid [0-9]+ +$prom_port " <<<"$out" && grep -qE "^nginx +pid [0-9]+ +$lb_port " <<<"$out" &&
	ok "status: orders in the database and the server's health" ||
	fail "status: orders in the database and the server's health" "$out"

# ---- scale 2 ----------------------------------------------------------------------------
out=$("$lab" scale 2 2>&1) || fail "scale 2 succeeds" "$out"
record_pids
servers=$(health_servers 4 "$lb" 2>/dev/null || true)
if [[ $servers == "app app2 app app2" || $servers == "app2 app app2 app" ]]; then
	ok "scale 2: /health through nginx alternates app and app2 ($servers)"
else
	fail "scale 2: /health through nginx alternates app and app2" "got: $servers" "$out"
fi
# ---- BALANCE: nginx's method, in the generated config, kept in the state ---------------------
pids_before=$(server_records | cut -d' ' -f5 | tr '\n' ' ')
declare -A balance_line=([least_conn]="least_conn;" [p2c]="random two least_conn;"
	[round_robin]="BALANCE=round_robin: nginx's default")
for balance in least_conn p2c round_robin; do
	out=$(BALANCE=$balance "$lab" scale 2 2>&1) || fail "BALANCE=$balance scale 2 succeeds" "$out"
	upstream=$(sed -n '/upstream catalog_app {/,/}/p' "$LAB_DIR/run/nginx/nginx.conf")
	status=$("$lab" status 2>&1 || true)
	[[ $upstream == *"${balance_line[$balance]}"* && $(lab_state 's["layout"]["balance"]') == "$balance" &&
		$status == *"balancing $balance"* && $status == *"BALANCE=$balance"* ]] &&
		ok "BALANCE=$balance: in the generated nginx config, the state and make status" ||
		fail "BALANCE=$balance: in the generated nginx config, the state and make status" "$upstream" "$status"
	configs_valid "BALANCE=$balance"
done
[[ $(server_records | cut -d' ' -f5 | tr '\n' ' ') == "$pids_before" ]] &&
	ok "BALANCE: a new method reloads nginx, no server restarted" ||
	fail "BALANCE: a new method reloads nginx, no server restarted" "$pids_before -> $(server_records)"
BALANCE=least_conn "$lab" scale 2 >/dev/null 2>&1 || true
out=$("$lab" up 2>&1) || true
[[ $(lab_state 's["layout"]["balance"]') == least_conn ]] && grep -q "least_conn;" "$LAB_DIR/run/nginx/nginx.conf" &&
	ok "BALANCE: kept like SERVERS (make up without BALANCE keeps least_conn)" ||
	fail "BALANCE: kept like SERVERS" "$(lab_state 's["layout"]')" "$out"
rc=0
out=$(BALANCE=random "$lab" scale 2 2>&1) || rc=$?
((rc != 0)) && [[ $out == *"BALANCE must be round_robin|least_conn|p2c"* ]] && grep -q "least_conn;" "$LAB_DIR/run/nginx/nginx.conf" &&
	ok "BALANCE=random: refused, naming the three methods; the config unchanged" ||
	fail "BALANCE=random: refused, naming the three methods" "exit $rc: $out"
BALANCE=round_robin "$lab" scale 2 >/dev/null 2>&1 || true

[[ $(server_field app 3) == 5 && $(server_field app2 3) == 5 ]] &&
	ok "scale 2: budget 10 split as DB_POOL_MAX=5 each" ||
	fail "scale 2: budget 10 split as DB_POOL_MAX=5 each" "$(server_records)"
port=$(server_field app 2)
[[ $port != "$LAB_APP_PORT" ]] && ! port_busy "$LAB_APP_PORT" &&
	ok "scale 2: the servers have no port of their own on the app port (nginx is the entry point)" ||
	fail "scale 2: the servers have no port of their own on the app port" "app on $port"
grep -q 'server: "app2"' "$LAB_DIR/run/prometheus.yml" &&
	ok "scale 2: Prometheus scrapes app2 too" || fail "scale 2: Prometheus scrapes app2 too"
code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$lb/metrics" || true)
direct=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$(server_field app2 2)/metrics" || true)
[[ $code == 404 && $direct == 200 ]] &&
	ok "scale 2: /metrics answers 404 through nginx, 200 on a server's own port (what Prometheus scrapes)" ||
	fail "scale 2: /metrics answers 404 through nginx, 200 on a server's own port" "nginx $code, server $direct"
configs_valid "scale 2"

# The servers' connections in pg_stat_activity under a short load through nginx.
# shellcheck source=/dev/null
source <(scripts/pg.sh env "$LAB_DIR/pg" 2>/dev/null)
"$CATALOG_BUILD/catalog-loadtest" -c 40 -d 4s -t 2 --json "$LAB_DIR/load-budget.json" "$lb" >/dev/null 2>&1 &
load_pid=$!
max_connections=0
while kill -0 "$load_pid" 2>/dev/null; do
	n=$(psql -d postgres -tAc "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'catalog-server-%'" 2>/dev/null || echo 0)
	((n > max_connections)) && max_connections=$n
	sleep 0.2
done
wait "$load_pid" || true
requests=$(json_field "$LAB_DIR/load-budget.json" 'r["requests"]' 2>/dev/null || echo 0)
if ((max_connections >= 1 && max_connections <= 10 && requests > 0)); then
	ok "scale 2: servers' connections in pg_stat_activity stay within the budget under load (peak $max_connections of 10, $requests requests)"
else
	fail "scale 2: servers' connections in pg_stat_activity stay within the budget under load" "peak $max_connections, requests $requests"
fi
unset PGHOST PGPORT PGUSER PGPASSWORD DB_HOST DB_PORT DB_USER DB_PASSWORD

out=$("$lab" scale 2 2>&1) && [[ $out == *"nothing changed"* ]] &&
	ok "scale 2 twice: nothing changed" || fail "scale 2 twice: nothing changed" "$out"

# ---- scale 3 ----------------------------------------------------------------------------
out=$("$lab" scale 3 2>&1) || fail "scale 3 succeeds" "$out"
record_pids
sum=0 metric_sum=0
for id in app app2 app3; do
	pool=$(server_field "$id" 3 || echo 99)
	sum=$((sum + pool))
	port=$(server_field "$id" 2 || echo 0)
	m=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics" | awk '/^db_pool_max_connections / { print $2 }')
	metric_sum=$((metric_sum + ${m:-99}))
done
((sum <= 10 && metric_sum == sum)) &&
	ok "scale 3 with budget 10: pools sum to $sum <= 10 (and the servers report the same in db_pool_max_connections)" ||
	fail "scale 3 with budget 10: pools sum to at most 10" "lab says $sum, servers say $metric_sum"
servers=$(health_servers 3 "$lb" 2>/dev/null | tr ' ' '\n' | sort | tr '\n' ' ' || true)
[[ $servers == "app app2 app3 " ]] && ok "scale 3: nginx reaches app, app2 and app3" ||
	fail "scale 3: nginx reaches app, app2 and app3" "got: $servers"
configs_valid "scale 3"
out=$("$lab" status 2>&1) || true
[[ $out == *"budget 10 (3 per server x 3 = 9 in use, 1 unused)"* ]] &&
	ok "scale 3: status says how much of the budget the pools use (9 of 10)" ||
	fail "scale 3: status says how much of the budget is in use" "$out"
err=$({ "$lab" status | head -n 2 >/dev/null; } 2>&1) || true
[[ $err != *Traceback* && $err != *BrokenPipeError* ]] &&
	ok "status | head: ends without a traceback" || fail "status | head: ends without a traceback" "$err"

# ---- refusals leave the layout untouched ------------------------------------------------
before=$(server_records && cat "$LAB_DIR/run/nginx/nginx.conf" "$LAB_DIR/run/prometheus.yml")
rc=0
out=$(DB_BUDGET=2 "$lab" scale 3 2>&1) || rc=$?
after=$(server_records && cat "$LAB_DIR/run/nginx/nginx.conf" "$LAB_DIR/run/prometheus.yml")
((rc != 0)) && [[ $out == *refused* && $before == "$after" ]] &&
	ok "refused: budget 2 for 3 servers fails with a clear message, layout untouched" ||
	fail "refused: budget 2 for 3 servers fails with a clear message, layout untouched" "exit $rc: $out"
rc=0
out=$(DB_BUDGET=400 "$lab" scale 4 2>&1) || rc=$?
after=$(server_records && cat "$LAB_DIR/run/nginx/nginx.conf" "$LAB_DIR/run/prometheus.yml")
((rc != 0)) && [[ $out == *refused*max_connections* && $before == "$after" ]] &&
	ok "refused: 4 x 100 connections beyond max_connections, layout untouched" ||
	fail "refused: 4 x 100 connections beyond max_connections, layout untouched" "exit $rc: $out"
[[ $(health_servers 3 "$lb" 2>/dev/null | wc -w) == 3 ]] &&
	ok "refused: the three servers still answer" || fail "refused: the three servers still answer"

# ---- CPU quota --------------------------------------------------------------------------
out=$(SERVER_CPUS=0.5 "$lab" scale 2 2>&1) || fail "scale 2 with SERVER_CPUS=0.5 succeeds" "$out"
record_pids
pid=$(server_field app2 5 || echo none)
if [[ -w /sys/fs/cgroup/cpu/cgroup.procs || -d $LAB_CGROUP ]]; then
	quota=$(cat "$LAB_CGROUP/app2/cpu.cfs_quota_us" 2>/dev/null || echo none)
	period=$(cat "$LAB_CGROUP/app2/cpu.cfs_period_us" 2>/dev/null || echo none)
	if [[ $quota == 50000 && $period == 100000 ]] && grep -qx "$pid" "$LAB_CGROUP/app2/cgroup.procs"; then
		ok "SERVER_CPUS=0.5: app2 (pid $pid) runs in a cgroup with quota 50000/100000 us"
	else
		fail "SERVER_CPUS=0.5: app2 runs in a cgroup with quota 50000/100000 us" "quota $quota period $period pid $pid" "$out"
	fi
else
	[[ $out == *"pinning"* ]] && ok "SERVER_CPUS=0.5: no writable cgroup, falls back to pinning with a warning" ||
		fail "SERVER_CPUS=0.5: falls back to pinning with a warning" "$out"
fi

# ---- one server killed during a load through nginx --------------------------------------
out=$("$lab" scale 2 2>&1) || fail "scale 2 (no CPU limit) succeeds" "$out"
record_pids
victim=$(server_field app2 5)
"$CATALOG_BUILD/catalog-loadtest" -c 20 -d 5s -t 2 --json "$LAB_DIR/load-kill.json" \
	--path /products/1 --path '/products?category=books' --path /health "$lb" >/dev/null 2>&1 &
load_pid=$!
sleep 1.5
kill -KILL "$victim"
wait "$load_pid" || true
read -r requests errors timeouts non2xx <<<"$(load_figures "$LAB_DIR/load-kill.json")"
((requests > 0 && errors == 0 && timeouts == 0 && non2xx == 0)) &&
	ok "killed server under load: no failed GET through nginx ($requests requests)" ||
	fail "killed server under load: no failed GET through nginx" "requests $requests errors $errors timeouts $timeouts non2xx $non2xx"
rc=0
out=$("$lab" status 2>&1) || rc=$?
((rc != 0)) && grep -q "server app2 .*DEAD" <<<"$out" && grep -q "server app .*health ok" <<<"$out" &&
	ok "status reports the dead server (and exits non-zero)" ||
	fail "status reports the dead server (and exits non-zero)" "exit $rc" "$out"
out=$("$lab" up 2>&1) && "$lab" status >/dev/null 2>&1 &&
	ok "up restarts the dead server" || fail "up restarts the dead server" "$out"
record_pids

# ---- back to one server ------------------------------------------------------------------
out=$("$lab" scale 1 2>&1) || fail "scale 1 succeeds" "$out"
record_pids
[[ $(health_servers 1 "http://127.0.0.1:$LAB_APP_PORT" 2>/dev/null) == app && $(server_field app 3) == 10 &&
	$(server_records | wc -l) == 1 ]] &&
	ok "scale 1: one server on the app port with the whole budget" ||
	fail "scale 1: one server on the app port with the whole budget" "$out"
configs_valid "scale 1"

# ---- loadtest and compare -----------------------------------------------------------------
rc=0
out=$("$lab" compare 2>&1) || rc=$?
((rc != 0)) && [[ $out == *"no saved load test results"* ]] &&
	ok "compare: without saved runs says so" || fail "compare: without saved runs says so" "exit $rc: $out"
out=$(LOAD_DURATION=1s LOAD_CONNECTIONS=4 "$lab" loadtest 2>&1) || true
[[ $out == *"CPU during the run: API servers"*"PostgreSQL"*"nginx"*"load generator"* && $out == *"the limit in this run: "* ]] &&
	ok "loadtest: the CPU line counts the servers, PostgreSQL, nginx and the load generator; the limit is named" ||
	fail "loadtest: the CPU line counts nginx and the load generator; the limit is named" "$out"
out=$(LOAD_DURATION=1s LOAD_CONNECTIONS=4 MIX=browse "$lab" loadtest 2>&1) || true
[[ -f $LAB_DIR/results/1-server-scenario.json && -f $LAB_DIR/results/1-server-browse.json ]] &&
	ok "loadtest: results kept as results/1-server-scenario.json and 1-server-browse.json" ||
	fail "loadtest: results kept as results/1-server-scenario.json and 1-server-browse.json" "$out"
fields=$(json_field "$LAB_DIR/results/1-server-browse.json" '"%s %s %s %s %s %s" % (r["kind"], r["layout"], r["mix"], r["balance"], r["report_mode"], r["server_cpus"] or "-")' 2>/dev/null || true)
[[ $fields == "run 1-server browse round_robin live -" ]] &&
	ok "loadtest: the result says its kind, layout, mix, balance, report mode and CPUs ($fields)" ||
	fail "loadtest: the result says its kind, layout, mix, balance, report mode and CPUs" "$fields"
paths=$(json_field "$LAB_DIR/results/1-server-browse.json" '" ".join(sorted(r["by_route"]))' 2>/dev/null || true)
[[ $paths == "GET /products/1 GET /products?category=electronics" ]] &&
	ok "loadtest MIX=browse: the listing and product routes only" || fail "loadtest MIX=browse: the listing and product routes only" "routes: $paths"
target=$(json_field "$LAB_DIR/results/1-server-browse.json" 'r["target"]' 2>/dev/null || true)
[[ $target == "http://127.0.0.1:$LAB_APP_PORT" ]] && ok "loadtest: targets the current entry point" ||
	fail "loadtest: targets the current entry point" "target $target"
out=$(SERVER_CPUS=0.5 "$lab" scale 2 2>&1) || fail "scale 2 with SERVER_CPUS=0.5 succeeds" "$out"
record_pids
LOAD_DURATION=1s LOAD_CONNECTIONS=4 MIX=browse "$lab" loadtest >/dev/null 2>&1 || true
"$lab" scale 1 >/dev/null 2>&1 || true
out=$("$lab" compare 2>&1) && [[ $out == *1-server-browse* && $out == *1-server-scenario* &&
	$out == *"2-servers-0.5cpu-browse-round_robin / 1-server-browse: "*"x requests/s"* &&
	$out != *" / 1-server-scenario"* ]] &&
	ok "compare: the runs side by side, two servers against one on the same mix, never across mixes" ||
	fail "compare: the runs side by side, two servers against one on the same mix" "$out"
wide=$(awk 'length > 100' <<<"$out")
[[ -z $wide ]] && ok "compare: every line fits 100 columns" || fail "compare: every line fits 100 columns" "$wide"

# ---- down -----------------------------------------------------------------------------------
record_pids
out=$("$lab" down 2>&1) || fail "down succeeds" "$out"
mapfile -t all_pids < <(printf '%s\n' "${all_pids[@]}" | grep -E '^[0-9]+$' | sort -un)
mapfile -t left < <(pids_left)
((${#left[@]} == 0)) && ok "down: none of the ${#all_pids[@]} processes the lab started is left" ||
	fail "down: no process left" "still running: ${left[*]}"
busy=()
for port in $(seq "$LAB_APP_PORT" $((LAB_APP_PORT + 9))) "$lb_port" "$prom_port" "$LAB_PG_PORT"; do
	port_busy "$port" && busy+=("$port")
done
((${#busy[@]} == 0)) && ok "down: no lab port is listening" || fail "down: no lab port is listening" "busy: ${busy[*]}"
out=$("$lab" down --purge 2>&1) && [[ ! -e $LAB_DIR ]] &&
	ok "down --purge: removes LAB_DIR" || fail "down --purge: removes LAB_DIR" "$out"

finish
