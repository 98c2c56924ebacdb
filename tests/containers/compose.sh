# compose.sh: the sections image, compose (compose-single, compose-scaled) and compose-replica of
# tests/containers/run.sh, which sources this file after its setup and helpers (never run on
# its own); the functions read run.sh's settings ($repo, $cache, $work, $netns, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

# --- image -----------------------------------------------------------------------------------
section_image() {
	say "image: podman build -f deploy/docker/Dockerfile"
	if timeout 1500 podman build -t catalog:local -f deploy/docker/Dockerfile . >"$work/image.log" 2>&1; then
		ok "deploy/docker/Dockerfile builds unchanged on the local debian:12-slim"
	else
		fail "deploy/docker/Dockerfile builds" "$(tail -n 20 "$work/image.log")"
		return 0
	fi
	local user uid health
	user=$(podman image inspect --format '{{.Config.User}}' catalog:local) || true
	uid=$(podman run --rm --no-healthcheck catalog:local id -u)
	[[ $user == 10001:10001 && $uid == 10001 ]] && ok "the image runs as the non-root user 10001" ||
		fail "the image runs as a non-root user (USER '$user', id -u '$uid')"
	health=$(podman image inspect --format '{{json .Config.Healthcheck}}' catalog:local) || true
	[[ $health == *catalog-healthcheck* ]] && ok "the image carries its HEALTHCHECK" ||
		fail "the image carries its HEALTHCHECK ($health)"
	for prog in catalog-server catalog-loadtest catalog-db; do
		check "$prog --help runs in the image" podman run --rm --no-healthcheck catalog:local "$prog" --help
	done
}

# --- compose ---------------------------------------------------------------------------------
# Grafana has no Debian package and so no stand-in: every other service is named on `up`.
single_services=(postgres seed app postgres-exporter process-exporter node-exporter prometheus)
scaled_services=(postgres seed app app2 nginx postgres-exporter process-exporter node-exporter prometheus)

# container PROJECT SERVICE: the container's name (docker-compose v1: PROJECT_SERVICE_1).
container() { printf '%s_%s_1\n' "$1" "$2"; }

state() { podman inspect --format "$2" "$1" 2>/dev/null; }
healthy() { [[ $(state "$1" '{{.State.Health.Status}}') == healthy ]]; }

# targets_up URL JOB...: every active target of Prometheus at URL is up, and the jobs are JOB...
targets_up() {
	local url=$1
	shift
	http "$url/api/v1/targets?state=active" | python3 -c '
import json, sys
want = sorted(sys.argv[1:])
targets = json.load(sys.stdin)["data"]["activeTargets"]
jobs = sorted({t["labels"]["job"] for t in targets})
down = [t["scrapeUrl"] + ": " + t.get("lastError", "") for t in targets if t["health"] != "up"]
if jobs != want or down:
    sys.exit("jobs %s (want %s); not up: %s" % (jobs, want, down))
' "$@"
}

# prom_value URL QUERY: the first value of an instant query.
prom_value() {
	http "$1/api/v1/query" --data-urlencode "query=$2" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
}

# cpu_quota CONTAINER: the CPU limit the kernel enforces on it, in CPUs (cgroup v1 or v2).
cpu_quota() {
	podman exec "$1" bash -c '
if [[ -r /sys/fs/cgroup/cpu.max ]]; then read -r q p </sys/fs/cgroup/cpu.max
else for d in /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpu; do
  [[ -r $d/cpu.cfs_quota_us ]] && { q=$(<"$d/cpu.cfs_quota_us"); p=$(<"$d/cpu.cfs_period_us"); break; }; done; fi
[[ ${q:-max} != max && $q -gt 0 ]] && echo $((q * 100 / p / 100)).$((q * 100 / p % 100)) || echo none'
}

# nothing_left PROJECT VOLUME: no container, network or (with VOLUME) volume of the project.
nothing_left() {
	local project=$1 volume=${2:-} left
	left=$(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')
	left+=$(podman network ls --format '{{.Name}}' | grep "^${project}_" || true)
	[[ -n $volume ]] && left+=$(podman volume ls --format '{{.Name}}' | grep -x "$volume" || true)
	[[ -z $left ]] || {
		echo "left behind: $left"
		return 1
	}
}

# compose_up NAME FILE PROJECT SERVICE...: `up -d --build`; ok when it returns 0.
compose_up() {
	local name=$1 file=$2 project=$3
	shift 3
	say "$name: docker-compose -p $project -f $file up -d --build"
	if timeout 1200 nsenter --net="/run/netns/$netns" docker-compose -p "$project" -f "$file" up -d --build "$@" >"$work/up.log" 2>&1; then
		ok "$name: up -d --build (every service but grafana)"
	else
		fail "$name: up -d --build" "$(tail -n 25 "$work/up.log")"
		compose_logs "$project"
		return 1
	fi
}

compose_logs() {
	local c
	for c in $(podman ps -a --filter "label=com.docker.compose.project=$1" --format '{{.Names}}'); do
		echo "     --- $c: $(state "$c" '{{.State.Status}} exit {{.State.ExitCode}}')"
		podman logs --tail 8 "$c" 2>&1 | sed 's/^/     /'
	done
}

# binding_check NAME PROJECT SERVICE:PORT...: each published PORT is on 127.0.0.1 only
# (podman port), and reaching it on the namespace's other address (the compose network's
# gateway, as another machine would reach the host's) is refused while localhost answers.
binding_check() {
	local name=$1 project=$2 sp c port mapped addr
	shift 2
	addr=$(in_ns ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }') || true
	for sp in "$@"; do
		c=$(container "$project" "${sp%%:*}") port=${sp#*:}
		mapped=$(podman port "$c" 2>&1) || true
		[[ $mapped == *"-> 127.0.0.1:$port"* && $mapped != *0.0.0.0* && $mapped != *"[::]"* ]] &&
			ok "$name: ${sp%%:*} publishes $port on 127.0.0.1 only (podman port: ${mapped//$'\n'/, })" ||
			fail "$name: ${sp%%:*} publishes $port on 127.0.0.1 only" "$mapped"
		if [[ -z $addr ]]; then
			fail "$name: no non-loopback address in the namespace to try port $port on"
		elif in_ns curl -s -o /dev/null --max-time 3 "http://$addr:$port/"; then
			fail "$name: port $port answers on $addr, a non-loopback address"
		elif in_ns curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$port/"; then
			ok "$name: port $port answers on 127.0.0.1 and is refused on $addr"
		else
			fail "$name: port $port does not answer on 127.0.0.1 either"
		fi
	done
}

# common_checks NAME PROJECT PROMETHEUS_URL SERVER...: what both layouts must show.
common_checks() {
	local name=$1 project=$2 prom=$3 seed pg
	shift 3
	seed=$(container "$project" seed)
	[[ $(state "$seed" '{{.State.Status}}:{{.State.ExitCode}}') == exited:0 ]] &&
		ok "$name: the seed service completed (exit 0)" ||
		fail "$name: the seed service completed" "$(podman logs --tail 10 "$seed" 2>&1)"
	local s c
	for s in "$@"; do
		c=$(container "$project" "$s")
		wait_for 30 "healthy $c" healthy "$c" && ok "$name: $s's HEALTHCHECK passes (podman: healthy)" ||
			fail "$name: $s's HEALTHCHECK passes" "$(state "$c" '{{json .State.Health}}')"
		[[ $(cpu_quota "$c") == 1.0 ]] && ok "$name: $s runs with cpus: 1 in effect (CFS quota 1.0 CPU)" ||
			fail "$name: $s's cpus: 1 is in effect (quota $(cpu_quota "$c"))"
	done
	local jobs=(catalog node postgres processes)
	wait_for 60 "targets up" targets_up "$prom" "${jobs[@]}" &&
		ok "$name: Prometheus reports every scrape target up (${jobs[*]}; catalog: $*)" ||
		fail "$name: Prometheus reports every scrape target up" "$(targets_up "$prom" "${jobs[@]}" 2>&1)"
	local n
	n=$(prom_value "$prom" 'count(up{job="catalog"} == 1)') || true
	[[ $n == "$#" ]] && ok "$name: Prometheus scrapes each of the $# servers directly" ||
		fail "$name: Prometheus scrapes each server directly ($n of $#)"
	pg=$(prom_value "$prom" 'pg_up') || true
	[[ $pg == 1 ]] && ok "$name: postgres-exporter reaches the database (pg_up 1)" || fail "$name: pg_up is $pg"
	wait_for 20 "postgres group" bash -c "[[ \$(prom_value '$prom' 'namedprocess_namegroup_num_procs{groupname=\"postgres\"}') =~ ^[1-9] ]]" &&
		ok "$name: process-exporter finds PostgreSQL's processes (cluster_name=catalog)" ||
		fail "$name: process-exporter finds PostgreSQL's processes"
}
export -f prom_value http in_ns
export netns

# loadtest PROJECT URL SECONDS ARGS...: catalog-loadtest from a container on the layout's
# network; its JSON figures on stdout.
loadtest() {
	local project=$1 url=$2 seconds=$3
	shift 3
	in_ns podman run --rm --network "${project}_default" catalog:local \
		catalog-loadtest -d "${seconds}s" --json - "$@" "$url" 2>/dev/null | sed -n '/^{/,$p'
}
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))' "$1"; }

section_compose_single() {
	start_engine
	local f=deploy/compose/docker-compose.yml name=compose-single project=compose
	podman image exists catalog:local || section_image
	if compose_up "$name" "$f" "$project" "${single_services[@]}"; then
		local body
		body=$(http localhost:3000/health 2>&1) || true
		[[ $body == *'"server":"app"'* ]] && ok "$name: GET localhost:3000/health answers ($body)" ||
			fail "$name: GET localhost:3000/health" "$body"
		common_checks "$name" "$project" http://localhost:9090 app
		binding_check "$name" "$project" app:3000 prometheus:9090
		# SIGTERM with a request in flight (/report, the expensive route): it is answered, then
		# the server exits 0.
		local app report rc=0 code
		app=$(container "$project" app)
		http -o /dev/null -w '%{http_code}\n' localhost:3000/report >"$work/inflight" 2>&1 &
		report=$!
		sleep 0.2
		in_ns podman stop -t 20 "$app" >/dev/null 2>&1
		wait "$report" || rc=$?
		code=$(state "$app" '{{.State.ExitCode}}') || true
		[[ $code == 0 && $(<"$work/inflight") == 200 ]] &&
			ok "$name: SIGTERM (podman stop) drains: the request in flight gets 200, exit 0" ||
			fail "$name: SIGTERM drains and exits 0 (exit $code, in-flight request: $(<"$work/inflight"), curl $rc)" \
				"$(podman logs --tail 5 "$app" 2>&1)"
	fi
	compose "$f" -p "$project" down >"$work/down.log" 2>&1 || true
	nothing_left "$project" && podman volume exists catalog-pgdata &&
		ok "$name: down removes every container and network, keeps catalog-pgdata for the scaled layout" ||
		fail "$name: down" "$(nothing_left "$project" 2>&1)"
}
section_compose_scaled() {
	scaled_layout compose-scaled deploy/compose/docker-compose.scaled.yml compose
}

# scaled_layout NAME FILE PROJECT: the scaled layout's checks, then down -v.
scaled_layout() {
	local name=$1 f=$2 project=$3
	start_engine
	if compose_up "$name" "$f" "$project" "${scaled_services[@]}"; then
		local seen="" body
		for _ in 1 2 3 4; do
			body=$(http localhost:8080/health 2>&1) || true
			seen+="$(sed -n 's/.*"server":"\([^"]*\)".*/\1/p' <<<"$body") "
		done
		[[ $seen == "app app2 app app2 " || $seen == "app2 app app2 app " ]] &&
			ok "$name: /health through nginx on 8080 alternates: $seen" ||
			fail "$name: /health through nginx on 8080 alternates app/app2 (got: $seen)"
		local code
		code=$(in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 5 localhost:8080/metrics) || true
		[[ $code == 404 ]] && ok "$name: nginx answers /metrics 404 on the public port" ||
			fail "$name: nginx answers /metrics 404 on 8080 (got $code)"
		common_checks "$name" "$project" http://localhost:9090 app app2
		binding_check "$name" "$project" nginx:8080 prometheus:9090
		budget_check "$name" "$project"
		stop_one_check "$name" "$project"
	fi
	compose "$f" -p "$project" down -v >"$work/down.log" 2>&1 || true
	nothing_left "$project" catalog-pgdata && ok "$name: down -v leaves no container, network or volume" ||
		fail "$name: down -v leaves nothing" "$(nothing_left "$project" catalog-pgdata 2>&1)"
}

# budget_check NAME PROJECT: under load through nginx, the servers' connections to PostgreSQL
# (counted by PostgreSQL itself, by client address) stay within DB_POOL_MAX each, 10 in all.
budget_check() {
	local name=$1 project=$2 pg ips max
	pg=$(container "$project" postgres)
	ips=$(for s in app app2; do state "$(container "$project" "$s")" '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'; done) || true
	loadtest "$project" http://nginx:80/ 12 -c 64 --timeout 30s >"$work/budget.json" &
	local lt=$! samples=() sql
	sql="SELECT coalesce(max(n), 0) || ' ' || coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND host(client_addr) IN ('${ips//$'\n'/"','"}') GROUP BY client_addr) t"
	sleep 2
	while kill -0 "$lt" 2>/dev/null; do
		samples+=("$(podman exec "$pg" psql -U postgres -d catalogdb -Atc "$sql" 2>/dev/null || echo '? ?')")
		sleep 0.5
	done
	wait "$lt" || true
	max=$(printf '%s\n' "${samples[@]}" | awk '$1 > m1 { m1 = $1 } $2 > m2 { m2 = $2 } END { print m1 + 0, m2 + 0 }')
	local reqs own
	reqs=$(json_field requests <"$work/budget.json" 2>/dev/null || echo 0)
	read -r per total <<<"$max"
	((per <= 5 && total <= 10 && total > 0 && reqs > 0)) &&
		ok "$name: under load ($reqs requests, 64 connections) the servers hold at most $per connections each, $total in all (budget 5 each, 10)" ||
		fail "$name: database connections within the split budget (max $per per server, $total in all; $reqs requests)" "${samples[*]}"
	# Answered by nginx itself ("no live upstreams"): a server was left out although it ran.
	own=$(json_field 'by_server.get("(none)", {}).get("requests", 0)' <"$work/budget.json" 2>&1) || true
	[[ $own == 0 ]] && ok "$name: under that load nginx never leaves a running server out (no answer of its own)" ||
		fail "$name: under load nginx answered $own requests itself (servers left out)" \
			"$(podman logs "$(container "$project" nginx)" 2>&1 | grep -F '[error]' | cut -c 21-120 | sort | uniq -c | sort -rn | head -n 4)"
}

# stop_one_check NAME PROJECT: GETs through nginx while app2 is stopped: none lost.
stop_one_check() {
	local name=$1 project=$2 lt r
	loadtest "$project" http://nginx:80/products/1 8 -c 8 --timeout 30s >"$work/stop.json" &
	lt=$!
	sleep 3
	in_ns podman stop -t 20 "$(container "$project" app2)" >/dev/null 2>&1
	wait "$lt" || true
	r=$(json_field '"%d requests, %d errors, %d timeouts, %d non-2xx" % (requests, errors, timeouts, non2xx)' <"$work/stop.json" 2>&1) || true
	[[ $r =~ ^[1-9][0-9]*\ requests,\ 0\ errors,\ 0\ timeouts,\ 0\ non-2xx$ ]] &&
		ok "$name: stopping app2 under load loses no GET through nginx ($r)" ||
		fail "$name: stopping app2 under load loses no GET through nginx ($r)" \
			"$(json_field '(first_error, by_server)' <"$work/stop.json" 2>&1 | cut -c1-600)" \
			"$(podman logs --since 30s "$(container "$project" nginx)" 2>&1 | grep -v '" 200 ' | cut -c 1-160 | sort | uniq -c | sort -rn | head -n 8)"
}

# --- compose-replica: the scaled layout with its read replica (docker-compose.replica.yml) ---
replica_services=("${scaled_services[@]}" postgres-replica)

# on_replica PROJECT SQL / on_primary PROJECT SQL: one value from psql in that container.
on_replica() { podman exec "$(container "$1" postgres-replica)" psql -U postgres -d catalogdb -Atc "$2" 2>/dev/null; }
on_primary() { podman exec "$(container "$1" postgres)" psql -U postgres -d catalogdb -Atc "$2" 2>/dev/null; }
replica_reads() { on_replica "$1" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'catalogdb'"; }
replica_reads_grew() { local now; now=$(replica_reads "$1") && ((now - $2 >= $3)); }
replica_streaming() { [[ $(on_primary "$1" "SELECT application_name || ' ' || state FROM pg_stat_replication") == "replica1 streaming" ]]; }
replica_taking_reads() { http localhost:8080/health | grep -q '"reads":\[[^]]*"replica1"'; }
replica_group() { [[ $(prom_value http://localhost:9090 'namedprocess_namegroup_num_procs{groupname="postgres-replica1"}') =~ ^[1-9] ]]; }

section_compose_replica() {
	local name=compose-replica project=compose
	local files=(-f deploy/compose/docker-compose.scaled.yml -f deploy/compose/docker-compose.replica.yml)
	start_engine
	say "$name: docker-compose -p $project ${files[*]} up -d --build"
	if timeout 1200 nsenter --net="/run/netns/$netns" docker-compose -p "$project" "${files[@]}" up -d --build "${replica_services[@]}" >"$work/up.log" 2>&1; then
		ok "$name: up -d --build, the scaled layout with docker-compose.replica.yml over it"
		local streaming recovery health before after id seen
		wait_for 60 "replica1 streaming" replica_streaming "$project" || true
		streaming=$(on_primary "$project" "SELECT application_name || ' ' || state FROM pg_stat_replication") || true
		[[ $streaming == "replica1 streaming" ]] && ok "$name: the primary streams to the standby made by pg_basebackup (pg_stat_replication: $streaming)" ||
			fail "$name: the primary streams to replica1 (pg_stat_replication: '$streaming')" "$(podman logs --tail 15 "$(container "$project" postgres-replica)" 2>&1)"
		recovery=$(on_replica "$project" "SELECT pg_is_in_recovery()::text || ' ' || (SELECT count(*) FROM products)") || true
		[[ $recovery == "true 5000" ]] && ok "$name: postgres-replica is a hot standby with the seeded catalog (in recovery, 5000 products)" ||
			fail "$name: postgres-replica is a hot standby with the catalog (got '$recovery')"
		wait_for 30 "replica1 taking reads" replica_taking_reads || true
		health=$(http localhost:8080/health 2>&1) || true
		[[ $health == *'"replicas":[{"db":"replica1"'* ]] && replica_taking_reads &&
			ok "$name: /health names the replica and has it taking reads" ||
			fail "$name: /health names replica1 among the instances taking reads" "$health"
		# A backend reports its counts to pg_stat_database when idle, up to 10 s later
		# (PostgreSQL's PGSTAT_IDLE_INTERVAL): the count is waited for, not read at once.
		before=$(replica_reads "$project") || true
		for _ in $(seq 100); do http -o /dev/null localhost:8080/products/1 || true; done
		wait_for 25 "25 transactions on the replica" replica_reads_grew "$project" "${before:-0}" 25 || true
		after=$(replica_reads "$project") || true
		((${after:-0} - ${before:-0} >= 25)) && ok "$name: reads through nginx reach the replica (its transactions $before -> $after over 100 requests)" ||
			fail "$name: reads through nginx reach the replica (transactions $before -> $after over 100 requests)"
		id=$(http -X POST -H 'Content-Type: application/json' -d '{"product_id":1,"quantity":1}' localhost:8080/orders |
			sed -n 's/.*"id":\([0-9]*\).*/\1/p') || true
		seen=0
		for _ in $(seq 20); do
			[[ -n $id && $(on_replica "$project" "SELECT count(*) FROM orders WHERE id = $id") == 1 ]] && { seen=1; break; }
			sleep 0.5
		done
		((seen)) && ok "$name: an order placed through nginx (id $id) is on the primary and replayed on the replica" ||
			fail "$name: an order placed through nginx reaches the replica (id '$id')"
		wait_for 30 "group postgres-replica1" replica_group &&
			ok "$name: process-exporter counts the replica's processes apart (group postgres-replica1)" ||
			fail "$name: process-exporter finds the replica's processes (group postgres-replica1)"
	else
		fail "$name: up -d --build" "$(tail -n 25 "$work/up.log")"
		compose_logs "$project"
	fi
	in_ns docker-compose -p "$project" "${files[@]}" down -v >"$work/down.log" 2>&1 || true
	nothing_left "$project" catalog-pgdata && nothing_left "$project" catalog-pgdata-replica1 &&
		ok "$name: down -v leaves no container, network or volume (the replica's too)" ||
		fail "$name: down -v leaves nothing" "$(nothing_left "$project" catalog-pgdata-replica1 2>&1)"
}
