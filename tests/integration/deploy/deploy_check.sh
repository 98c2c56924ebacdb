#!/usr/bin/env bash
# deploy_check.sh: checks deploy/ (Docker, Compose, nginx, Prometheus, Grafana, Kubernetes)
# on a machine with no Docker engine and no cluster, and prints "deploy: N passed, N failed".
# Usage: tests/integration/deploy/deploy_check.sh   (tests/integration/deploy/test_deploy.sh runs it)
#   - `docker-compose config` on every compose file, plus the layout the scenario needs, the
#     exporters, and every job the dashboard (dashboard/panels.json) queries being scraped;
#   - `nginx -t` on the compose nginx config, its upstream hosts mapped to loopback;
#   - `promtool check config` on every compose Prometheus config;
#   - the Dockerfile's build-stage commands run in a copy of the tree: the binaries they
#     give answer --help and need no library the runtime stage does not install;
#   - the image's healthcheck script against a stub server on a free loopback port;
#   - `kubectl kustomize deploy/k8s`, then a schema and connection-budget check.
# Every check is also run on a deliberately broken copy, which must fail.  A missing tool
# is a failure naming its Debian package, never a skip.  Only loopback is ever contacted;
# nothing started here outlives the script.
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
python=${DEPLOY_CHECK_PYTHON:-/usr/bin/python3}
helper="$python $repo/tests/integration/deploy/deploy_check.py"
nginx_bin=${NGINX:-/usr/sbin/nginx}

work=$(mktemp -d /tmp/catalog-deploy-check.XXXXXX)
stub_pid=""
cleanup() {
	if [[ -n $stub_pid ]]; then kill "$stub_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# ok, fail, finish (the closing line "deploy: N passed, N failed"), shared with the lab tests.
# shellcheck source=tests/integration/common/report.sh
source "$repo/tests/integration/common/report.sh"
report_start deploy

# expect_ok NAME CMD...: passes when CMD exits 0; on failure shows CMD's output.
expect_ok() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		ok "$name"
	else
		fail "$name (exit $rc)"
		printf '%s\n' "$out" | tail -n 30 | sed 's/^/    /'
	fi
}

# expect_fail NAME PATTERN CMD...: a deliberately broken copy must be rejected: passes when
# CMD exits non-zero with PATTERN (an extended regex) in its output, i.e. for the right reason.
expect_fail() {
	local name=$1 pattern=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	if ((rc != 0)) && grep -Eq -- "$pattern" <<<"$out"; then
		ok "$name (rejected: $(grep -Em 1 -- "$pattern" <<<"$out" | cut -c1-110))"
	else
		if ((rc == 0)); then
			fail "$name: a deliberately broken copy was accepted"
		else
			fail "$name: rejected (exit $rc), but not with /$pattern/"
		fi
		printf '%s\n' "$out" | tail -n 10 | sed 's/^/    /'
	fi
}

# need NAME PACKAGE CMD...: records whether a tool is there; missing is a failure.
need() {
	local name=$1 package=$2
	shift 2
	if "$@" >/dev/null 2>&1; then
		ok "tool $name"
	else
		fail "tool $name is missing: install Debian's $package (scripts/install-deps.sh)"
	fi
}

need docker-compose docker-compose docker-compose version
need nginx nginx "$nginx_bin" -v
need promtool prometheus promtool --version
need kubectl "kubernetes-client" kubectl version --client
need python3-yaml python3-yaml "$python" -c 'import yaml'
need readelf binutils readelf --version

# --- Compose -------------------------------------------------------------------------------
# The layouts need Grafana's admin password from the environment and bind to CATALOG_BIND
# (default 127.0.0.1): `config` runs with a password of the test's and without CATALOG_BIND
# unless a check sets them.
export GRAFANA_ADMIN_PASSWORD=deploy-check-password
unset CATALOG_BIND
# compose_check LAYOUT FILE [PANELS]: `docker-compose config` validates, then the layout facts,
# the exporters, and the jobs the dashboard's queries (PANELS, dashboard/panels.json) need.
compose_check() {
	local layout=$1 file=$2 panels=${3:-$repo/dashboard/panels.json} dir
	dir=$(dirname "$file")
	docker-compose -f "$file" config >"$work/compose.out" || return 1
	$helper compose "$layout" "$dir" "$panels" <"$work/compose.out"
}
compose_validate() { docker-compose -f "$1" config -q; }

expect_ok "compose config deploy/compose/docker-compose.yml" \
	compose_check single deploy/compose/docker-compose.yml
expect_ok "compose config deploy/compose/docker-compose.scaled.yml" \
	compose_check scaled deploy/compose/docker-compose.scaled.yml
# CATALOG_BIND=0.0.0.0 opens every published port of every layout, and only that does.
compose_check_open() { CATALOG_BIND=0.0.0.0 compose_check "$@"; }
for layout in single:deploy/compose/docker-compose.yml scaled:deploy/compose/docker-compose.scaled.yml; do
	expect_ok "compose config ${layout#*:} with CATALOG_BIND=0.0.0.0 publishes on 0.0.0.0" \
		compose_check_open "${layout%%:*}" "${layout#*:}"
done
# No Grafana password, no layout: Compose refuses before starting anything.
compose_without_password() { env -u GRAFANA_ADMIN_PASSWORD docker-compose -f "$1" config -q; }
for file in deploy/compose/docker-compose.yml deploy/compose/docker-compose.scaled.yml; do
	expect_fail "compose config $file refuses to run without GRAFANA_ADMIN_PASSWORD" \
		"set GRAFANA_ADMIN_PASSWORD" compose_without_password "$file"
done
# The replica overlay, over the scaled layout as docs/deploy.md runs it: the standby made from
# the primary by its entrypoint script, the primary allowing the replication login, both servers
# reading from it, and each instance's connections within its max_connections.
replica_check() {
	docker-compose -f deploy/compose/docker-compose.scaled.yml -f deploy/compose/docker-compose.replica.yml \
		config >"$work/replica.out" || return 1
	python3 - "$work/replica.out" <<'PY'
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
r, p = s["postgres-replica"], s["postgres"]
problems = []
if r.get("image") != p.get("image"):
    problems.append("the replica runs %s, the primary %s" % (r.get("image"), p.get("image")))
if "postgres-standby.sh" not in " ".join(r.get("entrypoint") or []):
    problems.append("the replica's entrypoint is not postgres-standby.sh")
mounts = " ".join(str(v) for v in r.get("volumes", []))
if "postgres-standby.sh" not in mounts or "pgdata-replica1" not in mounts:
    problems.append("the replica mounts its script and its own volume: %s" % mounts)
if "hba_file=/etc/catalog/pg_hba.conf" not in " ".join(p.get("command") or []):
    problems.append("the primary does not use pg_hba.conf (no replication login)")
def max_conn(service):
    m = re.search(r"max_connections=(\d+)", " ".join(service.get("command") or []))
    return int(m.group(1)) if m else 100
pools = 0
for name in ("app", "app2"):
    env = s[name]["environment"]
    if env.get("DB_READ_HOSTS") != "postgres-replica:5432":
        problems.append("%s reads from %r" % (name, env.get("DB_READ_HOSTS")))
    pools += int(env["DB_POOL_MAX"])
for name, service in (("postgres", p), ("postgres-replica", r)):
    if pools > max_conn(service):
        problems.append("%d connections on %s, max_connections %d" % (pools, name, max_conn(service)))
if max_conn(r) < max_conn(p):
    problems.append("a standby needs max_connections >= the primary's")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
}
expect_ok "compose config docker-compose.scaled.yml + docker-compose.replica.yml: the standby, its login, the servers' reads, the budget per instance" \
	replica_check
standby_script() { grep -q 'pg_basebackup' deploy/compose/postgres-standby.sh && bash -n deploy/compose/postgres-standby.sh; }
expect_ok "postgres-standby.sh makes the standby with pg_basebackup (and parses)" standby_script
expect_ok "deploy/compose/pg_hba.conf allows the replication login" \
	grep -Eq '^host[[:space:]]+replication[[:space:]]' deploy/compose/pg_hba.conf
for file in deploy/compose/docker-compose*.yml; do
	case $file in */docker-compose.yml | */docker-compose.scaled.yml | */docker-compose.replica.yml) ;;
	*) expect_ok "compose config $file" compose_validate "$file" ;;
	esac
done

mkdir -p "$work/compose-broken"
cp -r deploy/compose/. "$work/compose-broken/"
mkdir -p "$work/grafana" && cp -r deploy/grafana/. "$work/grafana/"
sed 's/condition: service_healthy/condition: service_ready_soon/' deploy/compose/docker-compose.yml \
	>"$work/compose-broken/docker-compose.yml"
expect_fail "compose config rejects an unknown depends_on condition" "service_ready_soon" \
	compose_validate "$work/compose-broken/docker-compose.yml"
sed 's/DB_POOL_MAX: "5"/DB_POOL_MAX: "10"/' deploy/compose/docker-compose.scaled.yml \
	>"$work/compose-broken/docker-compose.scaled.yml"
expect_fail "compose layout rejects pools of 10 on the scaled servers" "DB_POOL_MAX must be 5" \
	compose_check scaled "$work/compose-broken/docker-compose.scaled.yml"

# compose_broken NAME PATTERN LAYOUT FILE SED: a copy of deploy/compose (and of
# dashboard/panels.json) with one edit to FILE must be rejected by compose_check.
compose_broken() {
	local name=$1 pattern=$2 layout=$3 file=$4 edit=$5 copy compose=docker-compose.yml original
	copy=$(mktemp -d "$work/compose.XXXXXX")
	mkdir -p "$copy/compose"
	cp -r deploy/compose/. "$copy/compose/"
	cp dashboard/panels.json "$copy/panels.json"
	[[ $layout == scaled ]] && compose=docker-compose.scaled.yml
	original=deploy/compose/$file
	[[ $file == panels.json ]] && original=dashboard/panels.json
	local target=$copy/compose/$file
	[[ $file == panels.json ]] && target=$copy/panels.json
	sed -i "$edit" "$target"
	if cmp -s "$original" "$target"; then
		fail "$name: the edit '$edit' changed nothing in $file"
		return
	fi
	# The grafana mounts (../grafana) resolve next to the copy, as for compose-broken above.
	ln -sfn "$repo/deploy/grafana" "$copy/grafana"
	expect_fail "$name" "$pattern" compose_check "$layout" "$copy/compose/$compose" "$copy/panels.json"
}
compose_broken "binding check rejects Grafana published on every interface" \
	"grafana publishes 3002 on every interface" scaled docker-compose.scaled.yml 's/"[$]{CATALOG_BIND:-127.0.0.1}:3002:3000"/"3002:3000"/'
compose_broken "binding check rejects the entry point published on 0.0.0.0 by default" \
	"app publishes 3000 on 0.0.0.0, expected 127.0.0.1" single docker-compose.yml 's/CATALOG_BIND:-127.0.0.1}:3000/CATALOG_BIND:-0.0.0.0}:3000/'
compose_broken "grafana check rejects the admin/admin login" \
	"admin password must come from GRAFANA_ADMIN_PASSWORD" single docker-compose.yml 's/GF_SECURITY_ADMIN_PASSWORD: .*/GF_SECURITY_ADMIN_PASSWORD: admin/'
compose_broken "exporter check rejects a Prometheus config without job postgres" \
	"dashboard needs job postgres \(pg_stat" scaled prometheus.scaled.yml 's/job_name: postgres$/job_name: database/'
compose_broken "exporter check rejects a dashboard query on a job nobody scrapes" \
	"dashboard needs job redis" single panels.json 's/pg_stat_database_xact_rollback{datname/pg_stat_database_xact_rollback{job=\\"redis\\", datname/'
compose_broken "exporter check rejects keeping the exporters' own process_* metrics" \
	"job node must drop the exporter's own metrics" single prometheus.yml '/job_name: node/,/action: drop/s/regex: "(process|go|promhttp)_.\*"/regex: "(go|promhttp)_.*"/'
compose_broken "exporter check rejects a DATA_SOURCE_NAME on another database than the app's" \
	"DATA_SOURCE_NAME has DB_NAME 'postgres', the app uses 'catalogdb'" scaled docker-compose.scaled.yml 's|@postgres:5432/catalogdb?|@postgres:5432/postgres?|'
compose_broken "exporter check rejects an unpinned exporter image" \
	"node-exporter: image prom/node-exporter:latest must be pinned" single docker-compose.yml 's|prom/node-exporter:v[0-9.]*|prom/node-exporter:latest|'
compose_broken "exporter check rejects a process-exporter that cannot see the host's processes" \
	"process-exporter cannot see the postgres service" scaled docker-compose.scaled.yml '/process-exporter:$/,/volumes:/{/pid: host/d}'
compose_broken "exporter check rejects process groups that miss the postgres service's processes" \
	"process .postgres -c max_connections=100. matches no group" single docker-compose.yml 's/, "-c", "cluster_name=catalog"\]/]/'

# --- nginx -----------------------------------------------------------------------------------
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# nginx_test CONF: copy with upstream hosts -> 127.0.0.N and `listen 80` -> a free loopback
# port, then nginx -t in a private prefix (nginx -t binds the listen sockets briefly).
nginx_test() {
	local conf=$1 dir port
	dir=$(mktemp -d "$work/nginx.XXXXXX")
	mkdir -p "$dir/logs"
	port=$(free_port)
	# The line docker-compose.scaled.yml's nginx includes, written as the container writes it
	# at start (nginx-balance.sh, BALANCE's default).
	NGINX_BALANCE_FILE=$dir/balance.conf sh deploy/compose/nginx-balance.sh >/dev/null
	awk -v port="$port" -v balance="$dir/balance.conf" '
		/^[[:space:]]*upstream[[:space:]]/ { in_upstream = 1 }
		in_upstream && /^[[:space:]]*server[[:space:]]+[A-Za-z][A-Za-z0-9_-]*:/ {
			n++; sub(/server[[:space:]]+[A-Za-z][A-Za-z0-9_-]*:/, "server 127.0.0." n ":")
		}
		in_upstream && /}/ { in_upstream = 0 }
		{ sub(/include[[:space:]]+\/etc\/nginx\/balance\.conf;/, "include " balance ";") }
		{ sub(/listen[[:space:]]+80;/, "listen 127.0.0.1:" port ";"); print }
	' "$conf" >"$dir/nginx.conf"
	if grep -Eq '^[[:space:]]*server[[:space:]]+[A-Za-z]' "$dir/nginx.conf" &&
		! grep -Eq '^[[:space:]]*server[[:space:]]*\{' "$dir/nginx.conf"; then
		echo "an upstream host name was left unmapped"
		return 1
	fi
	"$nginx_bin" -t -q -e stderr -p "$dir" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid;"
}
expect_ok "nginx -t deploy/compose/nginx.conf (hosts on loopback)" nginx_test deploy/compose/nginx.conf
sed 's/proxy_http_version 1.1;/proxy_http_version 1.1;\n            proxy_next_upstream_retries 2;/' \
	deploy/compose/nginx.conf >"$work/nginx-broken.conf"
expect_fail "nginx -t rejects an unknown directive" "unknown directive" nginx_test "$work/nginx-broken.conf"

# --- Prometheus ------------------------------------------------------------------------------
for file in deploy/compose/prometheus*.yml; do
	expect_ok "promtool check config $file" promtool check config "$file"
done
sed 's/scrape_interval: 5s/scrape_interval: 5 parsecs/' deploy/compose/prometheus.yml \
	>"$work/prometheus-broken.yml"
expect_fail "promtool rejects a bad scrape_interval" "parsecs|not a valid duration" promtool check config "$work/prometheus-broken.yml"

# --- Dockerfile: the build stage replayed on this machine ------------------------------------
# copy_tree DEST: the build context as docker would send it (minus .dockerignore's paths).
copy_tree() {
	local dest=$1 excludes=()
	mkdir -p "$dest"
	while IFS= read -r line; do
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -n $line ]] && excludes+=("--exclude=./$line")
	done <.dockerignore
	tar -C "$repo" "${excludes[@]}" -cf - . | tar -C "$dest" -xf -
}

# build_stage DOCKERFILE DEST: runs the build stage's commands in a copy of the tree.
build_stage() {
	local dockerfile=$1 dest=$2
	$helper dockerfile-script "$dockerfile" >"$work/build-stage.sh" || return 1
	copy_tree "$dest"
	(cd "$dest" && bash "$work/build-stage.sh")
}

# binaries_work DEST BINARIES...: each exists, answers --help with exit 0 and some text.
binaries_work() {
	local dest=$1 binary out
	shift
	for binary in "$@"; do
		if [[ ! -x $dest/build/$binary ]]; then
			echo "$binary: not built (build/$binary missing after the build stage)"
			return 1
		fi
		if ! out=$(timeout 10 "$dest/build/$binary" --help 2>&1); then
			echo "$binary --help failed: $out"
			return 1
		fi
		if [[ -z $out ]]; then
			echo "$binary --help printed nothing"
			return 1
		fi
	done
}

# libraries_installed DEST PACKAGES BINARIES...: every library a binary links against comes
# from PACKAGES (the runtime stage's apt-get install) or from debian:12-slim itself.
libraries_installed() {
	local dest=$1 packages=" $2 libc6 libgcc-s1 " binary library path owner
	shift 2
	for binary in "$@"; do
		[[ -x $dest/build/$binary ]] || { echo "$binary: not built"; return 1; }
		while read -r library; do
			path=$(ldd "$dest/build/$binary" | awk -v lib="$library" '$1 == lib { print $3 }')
			if [[ -z $path || $path == "not" ]]; then
				echo "$binary: $library not found on this machine"
				return 1
			fi
			owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null ||
				dpkg -S "/usr$path" 2>/dev/null || true)
			owner=${owner%%:*}
			if [[ -z $owner || $packages != *" $owner "* ]]; then
				echo "$binary needs $library (package ${owner:-unknown}), which the runtime stage does not install ($2)"
				return 1
			fi
		done < <(readelf -d "$dest/build/$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	done
}

runtime_packages="" binaries=""
if facts=$($helper dockerfile-facts deploy/docker/Dockerfile 2>"$work/facts.err"); then
	ok "Dockerfile: multi-stage, non-root, HEALTHCHECK, no -dev package at run time"
else
	fail "Dockerfile facts"
	sed 's/^/    /' "$work/facts.err"
fi
runtime_packages=$(sed -n 's/^runtime_packages=//p' <<<"${facts:-}")
binaries=$(sed -n 's/^binaries=//p' <<<"${facts:-}")
read -r -a binary_list <<<"${binaries:-catalog-server catalog-loadtest catalog-db}"

expect_ok "Dockerfile build stage runs here (make in a copy of the tree)" \
	build_stage deploy/docker/Dockerfile "$work/src"
for binary in "${binary_list[@]}"; do
	expect_ok "image program $binary answers --help" binaries_work "$work/src" "$binary"
done
expect_ok "runtime stage installs every library the programs need ($runtime_packages)" \
	libraries_installed "$work/src" "$runtime_packages" "${binary_list[@]}"
expect_fail "runtime library check rejects a stage without libjansson4" "libjansson.*does not install" \
	libraries_installed "$work/src" "${runtime_packages//libjansson4/}" "${binary_list[@]}"
sed 's/libjansson-dev/libjansson-dev-nonexistent/' deploy/docker/Dockerfile >"$work/Dockerfile.broken"
expect_fail "build stage replay rejects a build package that is not installed" "nonexistent is not installed" \
	bash -c "$helper dockerfile-script '$work/Dockerfile.broken' >'$work/broken.sh' && cd '$work/src' && bash '$work/broken.sh'"

# --- the image's HEALTHCHECK script against a stub server on loopback -------------------------
stub_port_file=$work/stub.port
timeout 60 "$python" - "$stub_port_file" <<'EOF' &
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health/ready" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
EOF
stub_pid=$!
for _ in $(seq 50); do [[ -s $stub_port_file ]] && break; sleep 0.1; done
stub_port=$(cat "$stub_port_file" 2>/dev/null || echo 1)
closed_port=$(free_port)
healthcheck() { PORT=$1 timeout 10 bash deploy/docker/healthcheck.sh "$2"; }
expect_ok "healthcheck passes on 200 from /health/ready" healthcheck "$stub_port" /health/ready
expect_fail "healthcheck fails on 503" "503" healthcheck "$stub_port" /health/other
expect_fail "healthcheck fails when nothing listens" "cannot connect" healthcheck "$closed_port" /health/ready
kill "$stub_pid" 2>/dev/null || true
wait "$stub_pid" 2>/dev/null || true
stub_pid=""

# --- Kubernetes ------------------------------------------------------------------------------
k8s_check() {
	kubectl kustomize "$1" >"$work/k8s.yaml" 2>"$work/k8s.err" || { cat "$work/k8s.err"; return 1; }
	$helper k8s <"$work/k8s.yaml"
}
expect_ok "kubectl kustomize deploy/k8s: schema, probes, references, connection budget" \
	k8s_check deploy/k8s

# k8s_broken NAME PATTERN FILE SED: a copy of deploy/k8s with one edit must be rejected.
k8s_broken() {
	local name=$1 pattern=$2 file=$3 edit=$4 copy
	copy=$(mktemp -d "$work/k8s.XXXXXX")
	cp -r deploy/k8s/. "$copy/"
	sed -i "$edit" "$copy/$file"
	if cmp -s "deploy/k8s/$file" "$copy/$file"; then
		fail "$name: the edit '$edit' changed nothing in $file"
		return
	fi
	expect_fail "$name" "$pattern" k8s_check "$copy"
}
k8s_broken "budget check rejects maxReplicas 9 x pool 5 > 40" "45 > APP_CONNECTION_BUDGET 40" \
	catalog.yaml 's/maxReplicas: 8/maxReplicas: 9/'
k8s_broken "budget check rejects PgBouncer 2 x 50 > 100 - 10" "= 100 > POSTGRES_MAX_CONNECTIONS" \
	pgbouncer/pgbouncer.ini 's/^max_db_connections = 20/max_db_connections = 50/; s/^default_pool_size = 20/default_pool_size = 50/'
k8s_broken "budget check rejects session pooling" "pool_mode must be transaction" \
	pgbouncer/pgbouncer.ini 's/^pool_mode = transaction/pool_mode = session/'
k8s_broken "budget check rejects API servers connecting around PgBouncer" "through PgBouncer" \
	kustomization.yaml 's/- DB_HOST=pgbouncer/- DB_HOST=postgres/'
k8s_broken "schema check rejects a misspelt field" "unknown field 'readinesProbe'" \
	catalog.yaml 's/readinessProbe:/readinesProbe:/'
k8s_broken "probe check rejects liveness on /health/ready" "livenessProbe must be" \
	catalog.yaml 's|path: /health/live|path: /health/ready|'
k8s_broken "reference check rejects a Service selecting no pod" "matches no pod template" \
	catalog.yaml '/^kind: Service/,/^---/s/app.kubernetes.io\/name: catalog$/app.kubernetes.io\/name: catalogue/'

finish
