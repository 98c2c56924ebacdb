#!/usr/bin/env bash
# lab.sh: the scenario's lab on one machine: PostgreSQL, N API servers, nginx, Prometheus.
# Usage: scripts/lab.sh up|down [--purge]|status|scale N|restart|loadtest|compare|demo|help
# The make targets up, down, status, scale, restart, loadtest, compare and demo are thin aliases.
# Every process is started detached with a PID file under LAB_DIR/run and stopped by PID.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- settings (environment) -------------------------------------------------------------
LAB_DIR=${LAB_DIR:-$repo/var}
build=${CATALOG_BUILD:-$repo/build}
pg_port_default=${LAB_PG_PORT:-5432}
app_port=${LAB_APP_PORT:-3000}
lb_port=${LAB_LB_PORT:-8080}
prom_port=${LAB_PROM_PORT:-9090}
grafana_port=${LAB_GRAFANA_PORT:-3002}
# The exporters (dashboard: the database's CPU and connections next to the servers').  Each
# keeps the port of its last start when still free, else takes this one, else the next free.
pg_exporter_port_default=${LAB_PG_EXPORTER_PORT:-9187}
process_exporter_port_default=${LAB_PROCESS_EXPORTER_PORT:-9256}
node_exporter_port_default=${LAB_NODE_EXPORTER_PORT:-9100}
dashboard_dir=${LAB_DASHBOARD_DIR:-$build/dashboard}
bind_address=${LAB_BIND:-127.0.0.1}
cgroup_root=${LAB_CGROUP:-/sys/fs/cgroup/cpu/catalog}
db_name=${DB_NAME:-catalogdb}
budget_default=10

run=$LAB_DIR/run
logs=$LAB_DIR/log
results=$LAB_DIR/results
pg_dir=$LAB_DIR/pg
prom_data=$LAB_DIR/prometheus
instances=$run/servers
nginx_prefix=$run/nginx
nginx_conf=$nginx_prefix/nginx.conf
nginx_pid_file=$nginx_prefix/nginx.pid
prom_conf=$run/prometheus.yml
prom_pid_file=$run/prometheus.pid
layout_file=$run/layout
textfile_dir=$run/textfile          # node-exporter's textfile collector: lab_layout_servers
layout_events=$run/layout-events    # "EPOCH SERVERS BUDGET CPUS" per layout change
events_json=$run/events.json        # the same for the dashboard page (/dashboard/events.json)

SERVER_STOP_TIMEOUT_S=15
SERVER_START_TIMEOUT_S=20
changed=0

say() { echo "lab: $*"; }
warn() { echo "lab: warning: $*" >&2; }
die() {
	echo "lab: $*" >&2
	exit 1
}

usage() {
	cat <<EOF
usage: scripts/lab.sh COMMAND
  up              install what is missing, start PostgreSQL (seeded), the servers, Prometheus
  scale N         N servers (app, app2, ...) behind nginx on $lb_port; N=1: one server on $app_port
  status          processes, ports, pool sizes, orders in the database, each server's /health
  restart         rolling restart: each server in turn stopped (SIGTERM) and started again on
                  its port with its settings; behind nginx no GET fails (nginx retries them)
  loadtest        load the entry point (or BASE_URL); result saved in LAB_DIR/results, with a
                  picture of requests/s and p99 over time (results/NAME.html)
  compare         saved load test results side by side (and results/runs.html: them over time)
  demo            up, load one server, scale to 2, load again, compare
  down [--purge]  stop everything the lab started; --purge also deletes LAB_DIR
environment: LAB_DIR ($LAB_DIR) LAB_PG_PORT ($pg_port_default) LAB_APP_PORT ($app_port)
  LAB_LB_PORT ($lb_port) LAB_PROM_PORT ($prom_port) LAB_BIND ($bind_address)
  DB_BUDGET (10) SERVER_CPUS (no limit; e.g. 0.5) MIX (scenario|browse)
  REPORT_MODE (live|rollup: part of each server's settings; a change restarts the servers)
  LOAD_CONNECTIONS (100) LOAD_DURATION (30s) LOAD_THREADS (2) BASE_URL
  DEMO_DURATION (15s) DEMO_CONNECTIONS (50) DEMO_SERVER_CPUS (0.25)
  SEED_PRODUCTS SEED_ORDERS (passed to catalog-db)
EOF
}

# ---- small helpers ----------------------------------------------------------------------

# port_busy PORT: true when something listens on the TCP port.
port_busy() {
	[[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
}

# pid_is PID NAME: true when PID is alive (a zombie waiting to be reaped is not) and its
# executable's name is NAME (a PID file from an earlier boot must not make us signal a stranger).
pid_is() {
	local pid=$1 name=$2 stat
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	# /proc/PID/stat: "PID (COMM) STATE ...", COMM cut to 15 bytes.
	[[ ${stat#*) } != Z* && $stat == "$pid (${name:0:15}) "* ]]
}

read_pid() { cat "$1" 2>/dev/null || true; }

# stop_pid PID NAME TIMEOUT_S: SIGTERM, wait, then SIGKILL.  Fine when PID is already gone.
stop_pid() {
	local pid=$1 name=$2 limit_s=$3 waited=0
	pid_is "$pid" "$name" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	while pid_is "$pid" "$name" && ((waited < limit_s * 10)); do
		sleep 0.1
		waited=$((waited + 1))
	done
	if pid_is "$pid" "$name"; then
		warn "$name (pid $pid) did not stop in ${limit_s}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
}

# render TEMPLATE OUT KEY VALUE...: copies TEMPLATE to OUT with every @KEY@ replaced.
render() {
	local text out=$2
	text=$(<"$1")
	shift 2
	while (($# >= 2)); do
		text=${text//"@$1@"/"$2"}
		shift 2
	done
	printf '%s\n' "$text" >"$out"
}

http_get() { curl -fsS --max-time "${2:-3}" "$1" 2>/dev/null; }

wait_http() { # wait_http URL TIMEOUT_S: true once URL answers 2xx.
	local url=$1 limit_s=$2 tries=0
	while ((tries < limit_s * 5)); do
		http_get "$url" 1 >/dev/null && return 0
		sleep 0.2
		tries=$((tries + 1))
	done
	return 1
}

need_build() {
	local program
	for program in catalog-server catalog-db catalog-loadtest; do
		if [[ ! -x $build/$program ]]; then
			say "building ($build/$program is missing)"
			make -C "$repo" --no-print-directory all >/dev/null || die "the build failed; run make to see why"
			break
		fi
	done
	for program in catalog-server catalog-db catalog-loadtest; do
		[[ -x $build/$program ]] || die "$build/$program is missing after the build"
	done
}

mkdirs() { mkdir -p "$run" "$logs" "$results" "$instances" "$nginx_prefix/logs" "$textfile_dir"; }

# ---- PostgreSQL -------------------------------------------------------------------------

pg_running() { "$repo/scripts/pg.sh" status "$pg_dir" 2>/dev/null; }

# load_pg_env: exports PG* and DB_* of the running cluster; false when it is not running.
load_pg_env() {
	local exports
	exports=$("$repo/scripts/pg.sh" env "$pg_dir" 2>/dev/null) || return 1
	eval "$exports"
	export DB_NAME=$db_name
}

ensure_pg() {
	if pg_running; then
		load_pg_env
		say "PostgreSQL already running on 127.0.0.1:$PGPORT"
	else
		local port=$pg_port_default exports
		# The port of the last start wins when still free, so a restart keeps its address.
		if [[ -f $pg_dir/port ]]; then port=$(<"$pg_dir/port"); fi
		if port_busy "$port"; then
			local busy=$port
			port=$((pg_port_default + 1))
			while port_busy "$port"; do port=$((port + 1)); done
			say "port $busy is busy; PostgreSQL will use port $port instead"
		fi
		exports=$("$repo/scripts/pg.sh" start "$pg_dir" "$port" 2>>"$logs/pg.log" 9>&-) || {
			tail -n 20 "$logs/pg.log" >&2
			die "PostgreSQL did not start (log: $logs/pg.log)"
		}
		eval "$exports"
		export DB_NAME=$db_name
		say "PostgreSQL started on 127.0.0.1:$PGPORT (data $pg_dir)"
		changed=1
	fi
}

ensure_seed() {
	local status rc=0
	status=$("$build/catalog-db" status 2>&1) || rc=$?
	if ((rc == 0)); then
		# A database seeded by an older version may lack newer schema (the rollup table):
		# migrate is idempotent and quick.
		"$build/catalog-db" migrate >>"$logs/seed.log" 2>&1 || {
			tail -n 20 "$logs/seed.log" >&2
			die "migrating the database failed (log: $logs/seed.log)"
		}
		say "database already seeded: ${status##*$'\n'}"
		return 0
	fi
	say "seeding the database (SEED_PRODUCTS=${SEED_PRODUCTS:-5000} SEED_ORDERS=${SEED_ORDERS:-500000}); the full size takes a minute or two"
	"$build/catalog-db" seed >>"$logs/seed.log" 2>&1 || {
		tail -n 20 "$logs/seed.log" >&2
		die "seeding failed (log: $logs/seed.log)"
	}
	say "seeded: $("$build/catalog-db" status 2>&1 | tail -n 1)"
	changed=1
}

# db_connection_limit: max_connections minus the slots reserved for superusers (and, from
# PostgreSQL 16, reserved_connections): what all the pools together may use at most.
db_connection_limit() {
	psql -d postgres -tAc "SELECT current_setting('max_connections')::int
		- current_setting('superuser_reserved_connections')::int
		- coalesce(current_setting('reserved_connections', true)::int, 0)"
}

# server_connections: database connections the API servers hold (they name themselves
# catalog-server-<SERVER_ID> in application_name).
server_connections() {
	psql -d postgres -tAc "SELECT count(*) FROM pg_stat_activity
		WHERE application_name LIKE 'catalog-server-%'"
}

# ---- servers ----------------------------------------------------------------------------
# One file per running server instance, named after its port: "ID PORT POOL CPUS PID".

# instance_report_mode PORT: the report mode a running server says it has (from /metrics).
instance_report_mode() {
	http_get "http://127.0.0.1:$1/metrics" 3 | sed -n 's/^catalog_server_info{.*report_mode="\([a-z]*\)".*/\1/p'
}

server_id_for() { if (($1 == 1)); then echo app; else echo "app$1"; fi; }

list_instances() { # prints "ID PORT POOL CPUS PID" lines, sorted by server number, then port
	local file
	for file in "$instances"/*; do
		if [[ -f $file ]]; then cat "$file"; fi
	done | awk '{ n = substr($1, 4); if (n == "") n = 1; print n, $0 }' | sort -n -k1,1 -k3,3 | cut -d' ' -f2-
}

server_cgroup() { echo "$cgroup_root/$1"; }

# cpu_limit_setup ID CPUS: prints the cgroup directory to join, or "taskset:LIST" when the
# cgroup cpu controller cannot be used, or nothing when CPUS is empty (no limit).
cpu_limit_setup() {
	local id=$1 cpus=$2 dir quota_us period_us=100000
	[[ -z $cpus ]] && return 0
	dir=$(server_cgroup "$id")
	quota_us=$(awk -v c="$cpus" -v p="$period_us" 'BEGIN { printf "%d", c * p }')
	if mkdir -p "$dir" 2>/dev/null &&
		echo "$period_us" >"$dir/cpu.cfs_period_us" 2>/dev/null &&
		echo "$quota_us" >"$dir/cpu.cfs_quota_us" 2>/dev/null; then
		echo "$dir"
		return 0
	fi
	local cores count
	count=$(awk -v c="$cpus" 'BEGIN { n = int(c); if (n < c) n++; if (n < 1) n = 1; print n }')
	cores=$(nproc)
	local number=${id#app} list="" i
	local first=$(((${number:-1} - 1) % cores))
	for ((i = 0; i < count && i < cores; i++)); do list+="${list:+,}$(((first + i) % cores))"; done
	warn "no writable cgroup cpu controller at $cgroup_root; pinning $id to CPU(s) $list instead (a whole core each, not $cpus)"
	echo "taskset:$list"
}

# spawn PID_FILE LOG LIMIT CMD...: starts CMD detached (own session, stdin closed, output to
# LOG) and waits for its PID in PID_FILE.  The wrapper shell writes its own PID, which stays
# the PID of CMD after exec, and joins LIMIT first: a cgroup directory, "taskset:CPULIST", or
# nothing; so every thread of CMD is limited from its first instruction.
spawn() {
	local pid_file=$1 log=$2 limit=$3
	shift 3
	rm -f "$pid_file"
	# shellcheck disable=SC2016
	setsid nohup bash -c '
		pid_file=$1 limit=$2
		shift 2
		echo $$ >"$pid_file.tmp" && mv "$pid_file.tmp" "$pid_file"
		case $limit in
		"") exec "$@" ;;
		taskset:*) exec taskset -c "${limit#taskset:}" "$@" ;;
		*) echo $$ >"$limit/cgroup.procs" && exec "$@" ;;
		esac' lab-spawn "$pid_file" "$limit" "$@" </dev/null >>"$log" 2>&1 9>&- &
	local tries=0
	while [[ ! -s $pid_file ]] && ((tries < 100)); do
		sleep 0.05
		tries=$((tries + 1))
	done
	[[ -s $pid_file ]]
}

ports_as_addresses() { printf '127.0.0.1:%s ' "$@"; }

# start_server ID PORT POOL CPUS: starts one server detached and waits until it is ready.
start_server() {
	local id=$1 port=$2 pool=$3 cpus=$4 limit workers=""
	port_busy "$port" && die "port $port is busy; cannot start $id there"
	limit=$(cpu_limit_setup "$id" "$cpus")
	if [[ -n $cpus ]]; then
		workers=$(awk -v c="$cpus" 'BEGIN { n = int(c); if (n < c) n++; if (n < 1) n = 1; print n }')
	fi
	local pid_file=$run/server-$port.pid log=$logs/$id.log
	echo "--- $(date -u +%FT%TZ) start $id on port $port, DB_POOL_MAX=$pool${cpus:+, $cpus CPUs}" >>"$log"
	local -a env=(PORT="$port" HOST="$bind_address" SERVER_ID="$id" DB_POOL_MAX="$pool"
		DB_NAME="$db_name" ACCESS_LOG="${ACCESS_LOG:-0}")
	[[ -n $workers ]] && env+=(WORKERS="$workers")
	spawn "$pid_file" "$log" "$limit" env "${env[@]}" "$build/catalog-server" ||
		die "could not start $id: no PID after 5 s (log: $log)"
	local tries=0 pid
	pid=$(read_pid "$pid_file")
	rm -f "$pid_file"
	echo "$id $port $pool ${cpus:--} $pid" >"$instances/$port"
	while ((tries < SERVER_START_TIMEOUT_S * 5)); do
		if http_get "http://127.0.0.1:$port/health" 2 >/dev/null; then
			say "started $id (pid $pid) on 127.0.0.1:$port, DB_POOL_MAX=$pool${cpus:+, $cpus CPUs}"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
		tries=$((tries + 1))
	done
	tail -n 15 "$log" >&2
	stop_instance "$port"
	echo "lab: $id did not become ready on port $port (log above, full log: $log)" >&2
	return 1
}

# stop_instance PORT: stops the server instance on PORT and forgets it.
stop_instance() {
	local port=$1 id pool cpus pid
	[[ -f $instances/$port ]] || return 0
	read -r id _ pool cpus pid <"$instances/$port"
	stop_pid "$pid" catalog-server "$SERVER_STOP_TIMEOUT_S"
	rm -f "$instances/$port"
	# The cgroup goes once no instance of this server id is left in it.
	local dir
	dir=$(server_cgroup "$id")
	if [[ -d $dir && -z $(cat "$dir/cgroup.procs" 2>/dev/null) ]]; then rmdir "$dir" 2>/dev/null || true; fi
}

# next_server_port USED...: the first port after the single-server port that nothing listens
# on, that no lab service owns and that is not in USED.
next_server_port() {
	local port=$((app_port + 1)) used=" $* "
	while port_busy "$port" || [[ $used == *" $port "* ]] ||
		((port == lb_port || port == prom_port || port == grafana_port || port == ${PGPORT:-0})); do
		port=$((port + 1))
	done
	echo "$port"
}

# ---- exporters --------------------------------------------------------------------------
# prometheus-postgres-exporter (connections, transactions), prometheus-process-exporter (the
# CPU of the lab's PostgreSQL, nginx and Prometheus) and prometheus-node-exporter (the host's
# CPU, and lab_layout_servers from the textfile folder): project instances on loopback ports,
# each with a PID file (run/NAME.pid) and the port of its last start (run/NAME.port).
# Their own process_* and go_* metrics are dropped at scrape time, so process_cpu_seconds_total
# stays the API servers' alone.

exporter_names=(postgres-exporter process-exporter node-exporter)

exporter_binary() { echo "/usr/bin/prometheus-$1"; }

exporter_port_default() {
	case $1 in
	postgres-exporter) echo "$pg_exporter_port_default" ;;
	process-exporter) echo "$process_exporter_port_default" ;;
	node-exporter) echo "$node_exporter_port_default" ;;
	esac
}

exporter_job() {
	case $1 in
	postgres-exporter) echo postgres ;;
	process-exporter) echo processes ;;
	node-exporter) echo node ;;
	esac
}

# exporter_pid NAME: the PID of the running exporter NAME, or false.
exporter_pid() {
	local pid
	pid=$(read_pid "$run/$1.pid")
	pid_is "$pid" "prometheus-$1" && echo "$pid"
}

# pick_exporter_port NAME: the port of the last start when free, else the default, else the
# next free port above it that no lab service owns.
pick_exporter_port() {
	local name=$1 port
	port=$(exporter_port_default "$name")
	if [[ -f $run/$name.port ]] && ! port_busy "$(<"$run/$name.port")"; then
		cat "$run/$name.port"
		return 0
	fi
	while port_busy "$port" || ((port == lb_port || port == prom_port || port == grafana_port ||
		port == app_port || port == ${PGPORT:-0})) || [[ -f $instances/$port ]]; do
		port=$((port + 1))
	done
	echo "$port"
}

# regex_escape TEXT: TEXT as a literal in a (Go RE2) regular expression.
# shellcheck disable=SC2001
regex_escape() { sed 's/[][\.*^$+?(){}|\\]/\\&/g' <<<"$1"; }

write_process_exporter_conf() {
	local data_dir
	# The data directory exactly as the postmaster was started with it (postmaster.pid line 2).
	data_dir=$(sed -n 2p "$pg_dir/data/postmaster.pid" 2>/dev/null || true)
	[[ -n $data_dir ]] || data_dir=$pg_dir/data
	cat >"$1" <<EOF
# Generated by scripts/lab.sh: the lab's own processes, each with its children.
process_names:
  - name: postgres
    cmdline: ['-D\\s*$(regex_escape "$data_dir")(\\s|\$)']
  - name: nginx
    cmdline: ['nginx -p $(regex_escape "$nginx_prefix") ']
  - name: prometheus
    cmdline: ['--config\\.file=$(regex_escape "$prom_conf")']
EOF
}

# start_exporter NAME: starts one exporter detached and waits for its /metrics.
start_exporter() {
	local name=$1 binary port log=$logs/$1.log
	binary=$(exporter_binary "$name")
	port=$(pick_exporter_port "$name")
	local -a exporter_command
	case $name in
	postgres-exporter)
		exporter_command=(env "DATA_SOURCE_NAME=postgresql://$PGUSER:$PGPASSWORD@127.0.0.1:$PGPORT/$db_name?sslmode=disable"
			"$binary" --web.listen-address="127.0.0.1:$port" --disable-settings-metrics)
		;;
	process-exporter)
		write_process_exporter_conf "$run/process-exporter.yml"
		exporter_command=("$binary" -web.listen-address "127.0.0.1:$port" -config.path "$run/process-exporter.yml"
			-threads=false -gather-smaps=false)
		;;
	node-exporter)
		exporter_command=("$binary" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults
			--collector.cpu --collector.loadavg --collector.meminfo --collector.textfile
			--collector.textfile.directory="$textfile_dir")
		;;
	esac
	echo "--- $(date -u +%FT%TZ) start $name on 127.0.0.1:$port" >>"$log"
	spawn "$run/$name.pid" "$log" "" "${exporter_command[@]}" || {
		warn "$name did not start (log: $log)"
		return 1
	}
	echo "$port" >"$run/$name.port"
	echo "$PGPORT" >"$run/$name.pgport"
	if ! wait_http "http://127.0.0.1:$port/metrics" 15; then
		tail -n 5 "$log" >&2
		warn "$name does not answer on 127.0.0.1:$port (log: $log); the dashboard lacks its panels"
		stop_exporter "$name"
		return 1
	fi
	say "started $name (pid $(read_pid "$run/$name.pid")) on 127.0.0.1:$port"
	changed=1
}

stop_exporter() {
	local pid
	pid=$(read_pid "$run/$1.pid")
	if pid_is "$pid" "prometheus-$1"; then
		stop_pid "$pid" "prometheus-$1" 10
		say "$1 stopped"
	fi
	rm -f "$run/$1.pid"
}

# ensure_exporters: starts the exporters that are not running (a missing package is a warning:
# the lab works without them, the dashboard then lacks the database's panels).  An exporter
# started for another PostgreSQL port, or a process-exporter whose config changed, is restarted.
ensure_exporters() {
	local name
	for name in "${exporter_names[@]}"; do
		if [[ ! -x $(exporter_binary "$name") ]]; then
			warn "prometheus-$name is not installed (scripts/install-deps.sh lab installs it); the dashboard lacks its panels"
			continue
		fi
		if exporter_pid "$name" >/dev/null; then
			local stale=0
			[[ $(cat "$run/$name.pgport" 2>/dev/null) == "$PGPORT" ]] || stale=1
			if [[ $name == process-exporter ]]; then
				write_process_exporter_conf "$run/process-exporter.yml.new"
				cmp -s "$run/process-exporter.yml.new" "$run/process-exporter.yml" || stale=1
				rm -f "$run/process-exporter.yml.new"
			fi
			((stale)) || continue
			stop_exporter "$name"
		fi
		start_exporter "$name" || true
	done
}

stop_exporters() {
	local name
	for name in "${exporter_names[@]}"; do stop_exporter "$name"; done
}

# exporter_jobs: the Prometheus scrape jobs of the running exporters.
exporter_jobs() {
	local name
	for name in "${exporter_names[@]}"; do
		exporter_pid "$name" >/dev/null || continue
		cat <<EOF
  - job_name: $(exporter_job "$name")
    static_configs:
      - targets: ["127.0.0.1:$(<"$run/$name.port")"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "(process|go|promhttp)_.*"
        action: drop
EOF
	done
}

# ---- layout marks for the dashboard ------------------------------------------------------

# write_layout_textfile SERVERS BUDGET: lab_layout_servers for node-exporter (Grafana's marks).
write_layout_textfile() {
	mkdir -p "$textfile_dir"
	local text
	text=$(printf '%s\n' "# HELP lab_layout_servers API servers in the lab's current layout (make scale)." \
		"# TYPE lab_layout_servers gauge" "lab_layout_servers $1" \
		"# HELP lab_layout_db_budget Database connections all the lab's servers may hold." \
		"# TYPE lab_layout_db_budget gauge" "lab_layout_db_budget $2")
	[[ -f $textfile_dir/lab.prom && $(<"$textfile_dir/lab.prom") == "$text" ]] && return 0
	printf '%s\n' "$text" >"$textfile_dir/lab.prom.tmp"
	mv "$textfile_dir/lab.prom.tmp" "$textfile_dir/lab.prom"
}

# record_layout_event SERVERS BUDGET CPUS: a mark for the dashboard where the layout changed.
record_layout_event() {
	local servers=$1 budget=$2 cpus=${3:-}
	echo "$(date +%s) $servers $budget ${cpus:--}" >>"$layout_events"
	write_layout_textfile "$servers" "$budget"
	local time count pool size text entries=""
	while read -r time count budget size; do
		pool=$((budget / count))
		text="$count server"
		((count > 1)) && text+=s
		text+=", pool $pool"
		((count > 1)) && text+=" each"
		[[ $size != - ]] && text+=", $size CPU"
		entries+="${entries:+,}"$'\n'"  {\"time\": $time, \"servers\": $count, \"budget\": $budget, \"text\": \"$text\"}"
	done < <(tail -n 200 "$layout_events")
	printf '{"events": [%s\n]}\n' "$entries" >"$events_json.tmp"
	mv "$events_json.tmp" "$events_json"
}

# ensure_dashboard: builds the page into dashboard_dir when missing or older than its sources.
ensure_dashboard() {
	local stamp=$dashboard_dir/index.html
	if [[ -f $stamp && -z $(find "$repo/dashboard" -maxdepth 1 -type f -newer "$stamp" 2>/dev/null) ]]; then
		return 0
	fi
	"$repo/dashboard/build.sh" "$dashboard_dir" 2>>"$logs/dashboard.log" ||
		warn "the dashboard could not be built (log: $logs/dashboard.log); /dashboard/ will answer 404"
}

# ---- nginx and Prometheus -------------------------------------------------------------------

nginx_running() { pid_is "$(read_pid "$nginx_pid_file")" nginx; }

# write_nginx_conf OUT PORT...: renders the load balancer config for the servers on PORTs.
write_nginx_conf() {
	local out=$1 upstreams="" port
	shift
	for port in "$@"; do
		upstreams+="        server 127.0.0.1:$port max_fails=2 fail_timeout=5s;"$'\n'
	done
	local user_line="# (not root: the workers run as this user)"
	[[ $(id -u) -eq 0 ]] && user_line="user root;"
	mkdir -p "$nginx_prefix/logs"
	render "$repo/deploy/nginx/nginx.conf.template" "$out" \
		USER_LINE "$user_line" WORKER_PROCESSES "${LAB_NGINX_WORKERS:-auto}" \
		PID_FILE "$nginx_pid_file" ERROR_LOG "$logs/nginx-error.log" PREFIX "$nginx_prefix" \
		UPSTREAM_SERVERS "${upstreams%$'\n'}" LISTEN "$bind_address:$lb_port" \
		DASHBOARD_LOCATIONS "$(dashboard_locations)"
}

# dashboard_locations: the nginx locations of the built-in dashboard: the page (built into
# dashboard_dir), the lab's layout changes (events.json) and Prometheus's API under
# /dashboard/prometheus/, so the page needs no other origin.
dashboard_locations() {
	cat <<EOF
        location = /dashboard {
            return 301 /dashboard/;
        }
        location = /dashboard/events.json {
            alias $events_json;
            default_type application/json;
            add_header Cache-Control no-store always;
        }
        location /dashboard/prometheus/ {
            proxy_pass http://127.0.0.1:$prom_port/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 30s;
            limit_except GET POST { deny all; }
        }
        location /dashboard/ {
            alias $dashboard_dir/;
            index index.html;
            types {
                text/html html;
                text/css css;
                application/javascript js;
                application/json json;
            }
            add_header Cache-Control no-cache always;
        }
EOF
}

nginx_check() { nginx -t -q -p "$nginx_prefix" -c "$1" 2>&1; }

# apply_nginx PORT...: points nginx at the servers on PORTs: checks the new config, then
# starts nginx or reloads it and waits for the old workers to finish their requests.
apply_nginx() {
	local candidate=$nginx_prefix/nginx.conf.new output
	write_nginx_conf "$candidate" "$@"
	if ! output=$(nginx_check "$candidate"); then
		echo "$output" >&2
		die "the generated nginx config does not pass nginx -t ($candidate)"
	fi
	if nginx_running; then
		if cmp -s "$candidate" "$nginx_conf"; then
			rm -f "$candidate"
			return 0
		fi
		local master old_workers
		master=$(read_pid "$nginx_pid_file")
		old_workers=$(pgrep -P "$master" | tr '\n' ' ' || true)
		mv "$candidate" "$nginx_conf"
		kill -HUP "$master"
		local tries=0 pid busy
		while ((tries < 150)); do
			busy=0
			for pid in $old_workers; do pid_is "$pid" nginx && busy=1; done
			((busy == 0)) && break
			sleep 0.1
			tries=$((tries + 1))
		done
		say "nginx reloaded: 127.0.0.1:$lb_port -> $(ports_as_addresses "$@")"
	else
		port_busy "$lb_port" && die "port $lb_port is busy; nginx cannot listen there (set LAB_LB_PORT)"
		mv "$candidate" "$nginx_conf"
		nginx -p "$nginx_prefix" -c "$nginx_conf" 9>&- || die "nginx did not start (log: $logs/nginx-error.log)"
		local tries=0
		while ! nginx_running && ((tries < 50)); do
			sleep 0.1
			tries=$((tries + 1))
		done
		nginx_running || die "nginx did not start (log: $logs/nginx-error.log)"
		say "nginx started on $bind_address:$lb_port -> $(ports_as_addresses "$@")"
	fi
	changed=1
}

stop_nginx() {
	local pid
	pid=$(read_pid "$nginx_pid_file")
	if pid_is "$pid" nginx; then
		# Workers are the master's children: collect them so none outlives it.
		local workers
		workers=$(pgrep -P "$pid" || true)
		stop_pid "$pid" nginx 10
		for pid in $workers; do stop_pid "$pid" nginx 5; done
		say "nginx stopped"
	fi
	rm -f "$nginx_pid_file"
}

prom_running() { pid_is "$(read_pid "$prom_pid_file")" prometheus; }

# write_prom_conf OUT "ID PORT"...: renders the Prometheus config for these servers.
write_prom_conf() {
	local out=$1 targets="" entry id port
	shift
	for entry in "$@"; do
		read -r id port <<<"$entry"
		targets+="      - targets: [\"127.0.0.1:$port\"]"$'\n'"        labels:"$'\n'"          server: \"$id\""$'\n'
	done
	[[ -n $targets ]] || targets="      - targets: []"$'\n'
	render "$repo/deploy/prometheus/prometheus.yml.template" "$out" TARGETS "${targets%$'\n'}" \
		EXPORTER_JOBS "$(exporter_jobs)"
}

# apply_prometheus "ID PORT"...: writes the scrape config; starts or reloads Prometheus.
apply_prometheus() {
	local candidate=$run/prometheus.yml.new output
	write_prom_conf "$candidate" "$@"
	if ! output=$(promtool check config "$candidate" 2>&1); then
		echo "$output" >&2
		die "the generated Prometheus config does not pass promtool check config ($candidate)"
	fi
	if prom_running; then
		if cmp -s "$candidate" "$prom_conf"; then
			rm -f "$candidate"
			return 0
		fi
		mv "$candidate" "$prom_conf"
		curl -fsS -X POST --max-time 5 "http://127.0.0.1:$prom_port/-/reload" >/dev/null 2>&1 ||
			kill -HUP "$(read_pid "$prom_pid_file")"
		say "Prometheus reloaded: scraping ${#} server(s)"
	else
		port_busy "$prom_port" && die "port $prom_port is busy; Prometheus cannot listen there (set LAB_PROM_PORT)"
		mv "$candidate" "$prom_conf"
		mkdir -p "$prom_data"
		spawn "$prom_pid_file" "$logs/prometheus.log" "" prometheus --config.file="$prom_conf" \
			--storage.tsdb.path="$prom_data" --web.listen-address="$bind_address:$prom_port" \
			--web.enable-lifecycle || die "Prometheus did not start (log: $logs/prometheus.log)"
		wait_http "http://127.0.0.1:$prom_port/-/ready" 30 ||
			die "Prometheus did not become ready (log: $logs/prometheus.log)"
		say "Prometheus started on $bind_address:$prom_port, scraping ${#} server(s) every 5 s"
	fi
	changed=1
}

stop_prometheus() {
	local pid
	pid=$(read_pid "$prom_pid_file")
	if pid_is "$pid" prometheus; then
		stop_pid "$pid" prometheus 20
		say "Prometheus stopped"
	fi
	rm -f "$prom_pid_file"
}

# point_nginx SERVERS PORT...: nginx in front of the servers on PORTs.  With one server nginx
# still runs when its port is free: it serves the dashboard at /dashboard/ and forwards the
# rest to the server, so 8080 works in every layout.
point_nginx() {
	local servers=$1
	shift
	if ((servers == 1)) && ! nginx_running && port_busy "$lb_port"; then
		warn "port $lb_port is busy: no nginx, so no dashboard at http://127.0.0.1:$lb_port/dashboard/ (set LAB_LB_PORT)"
		return 0
	fi
	apply_nginx "$@"
}

# ---- layout -----------------------------------------------------------------------------
# LAB_DIR/run/layout holds "SERVERS BUDGET CPUS" of the last applied scale.

read_layout() { # sets layout_servers layout_budget layout_cpus (defaults when none yet)
	layout_servers=1 layout_budget=$budget_default layout_cpus=-
	if [[ -f $layout_file ]]; then read -r layout_servers layout_budget layout_cpus <"$layout_file"; fi
	[[ $layout_cpus == - ]] && layout_cpus=""
	return 0
}

# entry_point: the URL a client uses: nginx when more than one server runs, else the server.
entry_point() {
	read_layout
	if ((layout_servers > 1)); then echo "http://127.0.0.1:$lb_port"; else echo "http://127.0.0.1:$app_port"; fi
}

layout_name() { # e.g. 1-server, 2-servers, 2-servers-0.5cpu
	read_layout
	local name="$layout_servers-server"
	((layout_servers > 1)) && name+=s
	[[ -n $layout_cpus ]] && name+="-${layout_cpus}cpu"
	echo "$name"
}

# apply_layout N BUDGET CPUS: the core of `scale`.  Validates first (a refusal changes
# nothing); starts the servers the new layout needs, points nginx and Prometheus at them,
# and only then stops the servers it no longer needs, so no request is dropped.
apply_layout() {
	local servers=$1 budget=$2 cpus=$3
	if [[ ! $servers =~ ^[0-9]{1,3}$ ]] || ((10#$servers < 1 || 10#$servers > 100)); then
		die "SERVERS must be a whole number from 1 to 100, got '$servers'"
	fi
	if [[ ! $budget =~ ^[0-9]{1,6}$ ]] || ((10#$budget < 1)); then
		die "DB_BUDGET must be a whole number of at least 1, got '$budget'"
	fi
	servers=$((10#$servers)) budget=$((10#$budget))
	if [[ -n $cpus ]] && { [[ ! $cpus =~ ^[0-9]*\.?[0-9]+$ ]] || awk -v c="$cpus" 'BEGIN { exit !(c < 0.01) }'; }; then
		die "SERVER_CPUS must be a number of CPUs such as 0.5 or 1 (at least 0.01), got '$cpus'"
	fi
	if ((budget < servers)); then
		die "refused: a budget of $budget database connections cannot give each of $servers servers a connection; raise DB_BUDGET (at least $servers) or use fewer servers. The running layout is unchanged."
	fi
	local pool=$((budget / servers)) limit
	limit=$(db_connection_limit) || die "refused: cannot read max_connections from PostgreSQL. The running layout is unchanged."
	if ((servers * pool > limit)); then
		die "refused: $servers servers x DB_POOL_MAX=$pool = $((servers * pool)) connections, more than PostgreSQL allows ($limit: max_connections minus reserved slots). Lower DB_BUDGET or raise max_connections. The running layout is unchanged."
	fi

	# Which running instances fit the new layout as they are?
	local keep=() old=() start=() id port ipool icpus pid i want
	local -A kept_id=()
	while read -r id port ipool icpus pid; do
		[[ -z $id ]] && continue
		[[ $icpus == - ]] && icpus=""
		local fits=0
		# REPORT_MODE (live or rollup) is part of a server's settings too: a change restarts it.
		if pid_is "$pid" catalog-server && ((ipool == pool)) && [[ $icpus == "$cpus" ]] &&
			[[ -z ${kept_id[$id]:-} ]] && [[ $(instance_report_mode "$port") == "${REPORT_MODE:-live}" ]]; then
			local number=${id#app}
			number=${number:-1}
			if ((number <= servers)); then
				if ((servers == 1 && port == app_port)) || ((servers > 1 && port != app_port)); then fits=1; fi
			fi
		fi
		if ((fits)); then
			keep+=("$id $port")
			kept_id[$id]=1
		else
			old+=("$port $pid")
		fi
	done < <(list_instances)
	for ((i = 1; i <= servers; i++)); do
		want=$(server_id_for "$i")
		[[ -n ${kept_id[$want]:-} ]] || start+=("$want")
	done

	if ((${#start[@]} == 0 && ${#old[@]} == 0)); then
		echo "$servers $budget ${cpus:--}" >"$layout_file"
		# Configs follow the running servers even when nothing else changed (e.g. after up).
		local ports=() entry
		for entry in "${keep[@]}"; do ports+=("${entry#* }"); done
		point_nginx "$servers" "${ports[@]}"
		apply_prometheus "${keep[@]}"
		if [[ -s $layout_events ]]; then
			write_layout_textfile "$servers" "$budget"
		else
			record_layout_event "$servers" "$budget" "$cpus"
		fi
		return 0
	fi

	# Start the new servers.  The single-server port can only be reused once its old
	# occupant is gone, which costs a moment without that server (said so).
	local started=() used=() entry
	for entry in "${keep[@]}"; do used+=("${entry#* }"); done
	for entry in "${old[@]}"; do used+=("${entry% *}"); done
	for want in "${start[@]}"; do
		if ((servers == 1)); then
			port=$app_port
			if [[ -f $instances/$port ]]; then
				say "port $port is taken by the old $(cut -d' ' -f1 <"$instances/$port"); replacing it (requests to it pause meanwhile)"
				stop_instance "$port"
			fi
		else
			port=$(next_server_port "${used[@]}")
		fi
		if ! start_server "$want" "$port" "$pool" "$cpus"; then
			for port in "${started[@]}"; do stop_instance "$port"; done
			die "scale failed: $want did not start; the servers started for the new layout were stopped again"
		fi
		started+=("$port")
		used+=("$port")
		keep+=("$want $port")
	done

	# Point nginx and Prometheus at the new set, then retire the old servers.
	local ports=()
	for entry in "${keep[@]}"; do ports+=("${entry#* }"); done
	point_nginx "$servers" "${ports[@]}"
	apply_prometheus "${keep[@]}"
	# An old instance still on file under its port and PID (not replaced in place) goes now.
	for entry in "${old[@]}"; do
		port=${entry% *}
		if [[ -f $instances/$port ]]; then
			read -r id _ _ _ pid <"$instances/$port"
			if [[ $pid == "${entry#* }" ]]; then
				stop_instance "$port"
				say "stopped the old $id on port $port"
			fi
		fi
	done
	echo "$servers $budget ${cpus:--}" >"$layout_file"
	record_layout_event "$servers" "$budget" "$cpus"
	changed=1
}

# ---- commands ---------------------------------------------------------------------------

lock() {
	mkdirs
	exec 9>"$run/lock"
	flock -w 120 9 || die "another lab command holds $run/lock"
}

print_where() {
	read_layout
	local entry
	entry=$(entry_point)
	say "entry point:  $entry   (try: curl $entry/health)"
	if ((layout_servers > 1)); then
		say "servers:      $layout_servers behind nginx on $lb_port, DB_POOL_MAX=$((layout_budget / layout_servers)) each (budget $layout_budget)"
	else
		say "server:       app on $app_port, DB_POOL_MAX=$layout_budget"
	fi
	say "Prometheus:   http://127.0.0.1:$prom_port"
	if nginx_running; then
		say "dashboard:    http://127.0.0.1:$lb_port/dashboard/ (docs/dashboard.md)"
	fi
	say "PostgreSQL:   127.0.0.1:$PGPORT, database $db_name (psql -h 127.0.0.1 -p $PGPORT -U postgres $db_name; password postgres)"
	say "state:        $LAB_DIR (logs in $logs)"
}

cmd_up() {
	if [[ ${LAB_SKIP_DEPS:-0} != 1 ]]; then
		"$repo/scripts/install-deps.sh" lab || die "missing packages (see above)"
	fi
	need_build
	lock
	ensure_pg
	ensure_seed
	ensure_exporters
	ensure_dashboard
	read_layout
	# up keeps the layout that was last applied (one server on a fresh lab) and restarts
	# any of its processes that died.
	local cpus=$layout_cpus budget=$layout_budget
	if [[ ! -f $layout_file ]]; then
		cpus=${SERVER_CPUS:-}
		budget=${DB_BUDGET:-$budget_default}
	fi
	local before=$changed
	apply_layout "$layout_servers" "$budget" "$cpus"
	print_where
	if ((changed == 0 && before == 0)); then
		say "nothing changed: everything was already up"
	fi
}

cmd_scale() {
	local servers=${1:-}
	[[ -n $servers ]] || die "usage: make scale SERVERS=N (N servers behind nginx; 1 returns to one server on $app_port)"
	need_build
	lock
	pg_running || die "the lab is not up (PostgreSQL is not running); run make up first"
	load_pg_env
	prom_running || die "the lab is not up (Prometheus is not running); run make up first"
	apply_layout "$servers" "${DB_BUDGET:-$budget_default}" "${SERVER_CPUS:-}"
	if ((changed == 0)); then say "nothing changed: already $servers server(s) with these settings"; fi
	print_where
}

cmd_status() {
	mkdirs
	local problems=0
	read_layout
	say "lab in $LAB_DIR: layout $(layout_name), entry point $(entry_point)"
	if pg_running && load_pg_env; then
		local orders rc=0 limit in_use
		orders=$("$build/catalog-db" status 2>&1 | tail -n 1) || rc=$?
		((rc == 0)) || problems=1
		limit=$(db_connection_limit 2>/dev/null || echo ?)
		in_use=$(server_connections 2>/dev/null || echo ?)
		printf '%-12s %-8s %-6s %s\n' postgres "pid $(head -n 1 "$pg_dir/data/postmaster.pid" 2>/dev/null)" "$PGPORT" "up  $orders"
		printf '%-12s budget %s (%s per server x %s), database allows %s, open now %s\n' \
			"connections" "$layout_budget" "$((layout_budget / layout_servers))" "$layout_servers" "$limit" "$in_use"
	else
		printf '%-12s %-8s %-6s %s\n' postgres - - "DOWN (not running)"
		problems=1
	fi
	local id port pool cpus pid health found=0
	while read -r id port pool cpus pid; do
		[[ -z $id ]] && continue
		found=1
		if ! pid_is "$pid" catalog-server; then
			health="DEAD (process $pid is gone; make up restarts it)"
			problems=1
		elif health=$(http_get "http://127.0.0.1:$port/health" 3); then
			health="report $(instance_report_mode "$port"), health ok $health"
		else
			health="UNHEALTHY (/health does not answer 200)"
			problems=1
		fi
		printf '%-12s %-8s %-6s pool %-3s cpus %-4s %s\n' "server $id" "pid $pid" "$port" "$pool" "$cpus" "$health"
	done < <(list_instances)
	if ((found == 0)); then
		printf '%-12s %s\n' servers "none running"
		problems=1
	fi
	if nginx_running; then
		printf '%-12s %-8s %-6s up  -> %s\n' nginx "pid $(read_pid "$nginx_pid_file")" "$lb_port" \
			"$(grep -o 'server 127.0.0.1:[0-9]*' "$nginx_conf" | cut -d' ' -f2 | tr '\n' ' ')"
	elif ((layout_servers > 1)); then
		printf '%-12s %-8s %-6s %s\n' nginx - "$lb_port" "DOWN"
		problems=1
	else
		printf '%-12s %-8s %-6s %s\n' nginx - - "not running (one server: clients use port $app_port)"
	fi
	if prom_running; then
		local targets up_count total_count
		targets=$(curl -fsS --max-time 3 "http://127.0.0.1:$prom_port/api/v1/targets?state=active" 2>/dev/null || true)
		up_count=$(grep -o '"health":"up"' <<<"$targets" | wc -l || true)
		total_count=$(grep -o '"health":"[a-z]*"' <<<"$targets" | wc -l || true)
		printf '%-12s %-8s %-6s up  scrape targets: %s of %s up\n' prometheus "pid $(read_pid "$prom_pid_file")" \
			"$prom_port" "$up_count" "$total_count"
	else
		printf '%-12s %-8s %-6s %s\n' prometheus - - DOWN
		problems=1
	fi
	local name pid
	for name in "${exporter_names[@]}"; do
		if pid=$(exporter_pid "$name"); then
			printf '%-12s %-8s %-6s up  (Prometheus job %s)\n' "${name%-exporter}-exp" "pid $pid" \
				"$(cat "$run/$name.port" 2>/dev/null)" "$(exporter_job "$name")"
		else
			printf '%-12s %-8s %-6s %s\n' "${name%-exporter}-exp" - - "not running (make up starts it; the dashboard lacks its panels)"
		fi
	done
	if nginx_running; then
		printf '%-12s http://127.0.0.1:%s/dashboard/\n' dashboard "$lb_port"
	fi
	return "$problems"
}

# nginx_routes_to ID TIMEOUT_S: true once a /health through nginx is answered by server ID.
# After a restart nginx may leave the server out for fail_timeout (5 s); a rolling restart
# waits for it to be back in the rotation before it stops the next one.
nginx_routes_to() {
	local id=$1 limit_s=$2 since=$SECONDS
	while ((SECONDS - since < limit_s)); do
		[[ $(http_get "http://127.0.0.1:$lb_port/health" 2) == *"\"server\":\"$id\""* ]] && return 0
		sleep 0.1
	done
	return 1
}

# cmd_restart: a rolling restart of every server (new processes, same ids, ports and settings).
# Order, one server at a time: SIGTERM and wait for the exit (the server closes its listener
# and idle connections at once and finishes the requests in flight; nginx sends the GETs it
# cannot place there to the other servers), start it again on the same port, wait for its
# /health, then for nginx to route to it again.  Same ports, so nginx needs no reload (a reload
# closes clients' idle keep-alive connections, see docs/lab.md).  Requests in flight finish;
# nginx never resends a POST once sent, so a POST sent on an idle upstream connection at the
# moment the server closes it can fail (tests/integration/test_faults_lab.sh checks GETs).
# With one server there is no other to take the traffic: requests pause while it restarts.
cmd_restart() {
	need_build
	lock
	pg_running || die "the lab is not up (PostgreSQL is not running); run make up first"
	load_pg_env
	read_layout
	local entries=() entry id port pool cpus pid mode behind_nginx=0 count=0
	mapfile -t entries < <(list_instances)
	((${#entries[@]})) || die "no server is running; run make up first"
	((layout_servers > 1)) && nginx_running && behind_nginx=1
	((behind_nginx)) || warn "one server without nginx in front: requests to it pause while it restarts"
	for entry in "${entries[@]}"; do
		read -r id port pool cpus pid <<<"$entry"
		[[ $cpus == - ]] && cpus=""
		mode=""
		if pid_is "$pid" catalog-server; then
			mode=$(instance_report_mode "$port" || true)
			stop_pid "$pid" catalog-server "$SERVER_STOP_TIMEOUT_S"
			say "stopped $id (pid $pid) on port $port"
		fi
		# The settings it ran with: the report mode it reported, else the one of this shell.
		REPORT_MODE=${mode:-${REPORT_MODE:-live}} start_server "$id" "$port" "$pool" "$cpus" ||
			die "restart stopped: $id did not start again on port $port (the servers after it were not touched)"
		if ((behind_nginx)) && ! nginx_routes_to "$id" 15; then
			warn "nginx does not route to $id 15 s after its restart"
		fi
		count=$((count + 1))
	done
	changed=1
	say "restarted $count server(s)"
}

# mix_paths MIX: the request paths each connection cycles through.
mix_paths() {
	case $1 in
	scenario) echo "/products?category=electronics /products/1 /report" ;;
	browse) echo "/products?category=electronics /products/1" ;;
	*) die "MIX must be scenario or browse, got '$1'" ;;
	esac
}

cmd_loadtest() {
	mkdirs
	local mix=${MIX:-scenario} base name file
	local -a paths path_args=() extra=()
	read -r -a paths <<<"$(mix_paths "$mix")"
	local path
	for path in "${paths[@]}"; do path_args+=(--path "$path"); done
	read -r -a extra <<<"${LOADTEST_ARGS:-}"
	base=${BASE_URL:-$(entry_point)}
	name=${LOAD_NAME:-$(layout_name)}
	[[ $mix == scenario ]] || name+="-$mix"
	file=$results/$name.json
	say "load test: $base, mix $mix (${paths[*]}), ${LOAD_CONNECTIONS:-100} connections, ${LOAD_DURATION:-30s}; result in $file"
	local rc=0 servers_before pg_before start_ns end_ns
	servers_before=$(server_pids | cpu_ticks)
	pg_before=$(postgres_pids | cpu_ticks)
	start_ns=$(date +%s%N)
	"$build/catalog-loadtest" -c "${LOAD_CONNECTIONS:-100}" -d "${LOAD_DURATION:-30s}" \
		-t "${LOAD_THREADS:-2}" --json "$file" --label "$name" "${path_args[@]}" "${extra[@]}" "$base" || rc=$?
	end_ns=$(date +%s%N)
	# Where the CPU went during the run: the servers' or PostgreSQL's, the scenario's question.
	awk -v s=$(($(server_pids | cpu_ticks) - servers_before)) -v p=$(($(postgres_pids | cpu_ticks) - pg_before)) \
		-v hz="$(getconf CLK_TCK)" -v ns=$((end_ns - start_ns)) -v limit="$(layout_cpu_limit)" -v cores="$(nproc)" \
		'BEGIN { t = ns / 1e9; printf "CPU during the run: API servers %.2f cores (limit %s), PostgreSQL %.2f cores; this machine has %d\n", s / hz / t, limit, p / hz / t, cores }' |
		tee "$results/$name.cpu"
	run_picture "$name" "$file" "$start_ns" "$end_ns"
	return "$rc"
}

# run_picture NAME RESULT.json START_NS END_NS: keeps the run's requests/s and p99 over time
# from Prometheus (NAME.series.json) and draws them (NAME.html, self-contained).  Waits for
# the scrape after the run's end first.  Without Prometheus it says so and does nothing.
run_picture() {
	local name=$1 file=$2 start_ns=$3 end_ns=$4 wait_ms
	if ! prom_running; then
		say "no picture of this run: Prometheus is not running (make up starts it)"
		return 0
	fi
	wait_ms=$(((end_ns + 6000000000 - $(date +%s%N)) / 1000000))
	if ((wait_ms > 0)); then sleep "$(awk -v ms="$wait_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"; fi
	local series=$results/$name.series.json
	if python3 "$repo/scripts/run-picture.py" fetch --prometheus "http://127.0.0.1:$prom_port" \
		--start "$(awk -v ns="$start_ns" 'BEGIN { printf "%.3f", ns / 1e9 }')" \
		--end "$(awk -v ns="$end_ns" 'BEGIN { printf "%.3f", ns / 1e9 }')" \
		--result "$file" --label "$name" --out "$series" &&
		python3 "$repo/scripts/run-picture.py" render "$results/$name.html" "$series"; then
		say "picture of the run (requests/s and p99 over time): $results/$name.html"
	else
		warn "no picture of this run (see above)"
	fi
}

# pictures_of RESULT.json...: draws the runs that have a picture into LAB_DIR/results/runs.html.
pictures_of() {
	local file series=()
	for file in "$@"; do
		[[ -f ${file%.json}.series.json ]] && series+=("${file%.json}.series.json")
	done
	((${#series[@]})) || return 0
	if python3 "$repo/scripts/run-picture.py" render "$results/runs.html" "${series[@]}"; then
		say "the runs side by side, over time: $results/runs.html"
	fi
}

# cpu_ticks < PIDS: user + system CPU time of the processes (and of their reaped children),
# in clock ticks.  Fine with no PID (0) and with PIDs that are gone.
cpu_ticks() {
	local pid total=0 stat fields
	while read -r pid; do
		[[ $pid =~ ^[0-9]+$ ]] || continue
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		read -r -a fields <<<"${stat##*) }"
		# After "(comm) ": state is field 0; utime, stime, cutime, cstime are 11 to 14.
		total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
	done
	echo "$total"
}

server_pids() { list_instances | cut -d' ' -f5; }

postgres_pids() {
	local master
	master=$(head -n 1 "$pg_dir/data/postmaster.pid" 2>/dev/null) || return 0
	echo "$master"
	pgrep -P "$master" || true
}

layout_cpu_limit() { # the servers' CPU limit in total: "1.0 = 2 x 0.5" or "none"
	read_layout
	if [[ -n $layout_cpus ]]; then
		awk -v n="$layout_servers" -v c="$layout_cpus" 'BEGIN { printf "%g = %d x %s", n * c, n, c }'
	else
		echo none
	fi
}

# print_split RESULT.json: the share of requests each server answered (from X-Server-Id).
print_split() {
	python3 - "$1" <<'PYTHON'
import json, sys
result = json.load(open(sys.argv[1]))
servers = result.get("by_server", {})
total = sum(s["requests"] for s in servers.values()) or 1
print("requests per server: " + ", ".join(
    "%s %d (%.0f%%)" % (name, s["requests"], 100.0 * s["requests"] / total)
    for name, s in sorted(servers.items(), key=lambda item: (len(item[0]), item[0]))))
PYTHON
}

cmd_compare() {
	mkdirs
	local files=()
	if (($#)); then
		files=("$@")
	else
		# shellcheck disable=SC2010 # result names are the lab's own (layout names)
		mapfile -t files < <(ls -tr "$results"/*.json 2>/dev/null | grep -v '\.series\.json$')
	fi
	((${#files[@]})) || die "no saved load test results in $results; run make loadtest first"
	if ((${#files[@]} == 1)); then
		die "only one saved run ($(basename "${files[0]}")); compare needs two: make loadtest again in another layout (make scale SERVERS=2) or with MIX=browse"
	fi
	local rc=0
	"$build/catalog-loadtest" compare "${files[@]}" || rc=$?
	pictures_of "${files[@]}"
	return "$rc"
}

cmd_demo() {
	local duration=${DEMO_DURATION:-15s} connections=${DEMO_CONNECTIONS:-50}
	local cpus=${DEMO_SERVER_CPUS-0.25} budget=${DB_BUDGET:-$budget_default}
	export LOAD_DURATION=$duration LOAD_CONNECTIONS=$connections DB_BUDGET=$budget SERVER_CPUS=$cpus
	say "demo: one server, then two, each ${cpus:-unlimited} CPU(s); $connections connections for $duration per run"
	(cmd_up)
	(cmd_scale 1)
	load_pg_env
	local files=() mix name servers
	for servers in 1 2; do
		(cmd_scale "$servers")
		for mix in browse scenario; do
			(MIX=$mix cmd_loadtest) || warn "the $mix load test on $servers server(s) had no successful request"
			name=$(layout_name)
			[[ $mix == scenario ]] || name+="-$mix"
			files+=("$results/$name.json")
		done
	done
	echo
	say "comparison: #1 #2 one server, #3 #4 two servers; browse = listing + product page, scenario = + /report"
	cmd_compare "${files[@]}" || true
	echo
	say "connection budget $budget: one server had DB_POOL_MAX=$budget; two servers have $((budget / 2)) each = $((budget / 2 * 2)); PostgreSQL allows $(db_connection_limit)"
	local file
	for file in "${files[@]}"; do
		[[ -f $file ]] || continue
		say "$(basename "$file" .json):"
		say "    $(print_split "$file")"
		[[ -f ${file%.json}.cpu ]] && say "    $(cat "${file%.json}.cpu")"
	done
	python3 - "${files[@]}" <<'PYTHON'
import json, sys
rps = [json.load(open(f))["rps"] for f in sys.argv[1:]]
print("lab: two servers / one server, requests per second: browse mix %.2fx, scenario mix %.2fx"
      % (rps[2] / max(rps[0], 1e-9), rps[3] / max(rps[1], 1e-9)))
PYTHON
	say "where the CPU went says which is the ceiling: the servers' quota on the browse mix, so a"
	say "second server helps; PostgreSQL on the scenario mix (/report), so it helps little. See docs/lab.md."
}

cmd_down() {
	local purge=0
	[[ ${1:-} == --purge ]] && purge=1
	if [[ -d $run ]]; then
		lock
		local file port id
		for file in "$instances"/*; do
			[[ -f $file ]] || continue
			port=${file##*/}
			id=$(cut -d' ' -f1 <"$file")
			stop_instance "$port"
			say "stopped $id (port $port)"
		done
		stop_nginx
		stop_prometheus
		stop_exporters
		rmdir "$cgroup_root" 2>/dev/null || true
		rm -f "$layout_file"
	fi
	if [[ -d $pg_dir/data ]] && pg_running; then
		mkdir -p "$logs"
		"$repo/scripts/pg.sh" stop "$pg_dir" 2>>"$logs/pg.log" || die "PostgreSQL did not stop (log: $logs/pg.log)"
		say "PostgreSQL stopped"
	fi
	if ((purge)); then
		case $LAB_DIR in
		/ | "" | "$HOME" | "$repo") die "refusing to delete LAB_DIR=$LAB_DIR" ;;
		esac
		rm -rf "$LAB_DIR"
		say "deleted $LAB_DIR (data, logs, results)"
	fi
	say "down: nothing of the lab is running"
}

main() {
	local command=${1:-help}
	shift || true
	case $command in
	up) cmd_up ;;
	down) cmd_down "$@" ;;
	status) cmd_status ;;
	scale) cmd_scale "$@" ;;
	restart) cmd_restart ;;
	loadtest) cmd_loadtest ;;
	compare) cmd_compare "$@" ;;
	demo) cmd_demo ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
