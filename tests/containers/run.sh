#!/usr/bin/env bash
# run.sh: `make test-containers`: the deploy layouts built and run for real under podman.
# Usage: tests/containers/run.sh [SECTION...]   (default: every section, in this order)
#   image     deploy/docker/Dockerfile built unchanged on the local debian:12-slim
#   compose   compose-single (deploy/compose/docker-compose.yml), then compose-scaled
#             (docker-compose.scaled.yml): `up -d --build` and `down -v` through docker-compose,
#             as a user runs them
#   solution  solution/docker-compose.scaled.yml, the same way
#   kube      `podman kube play` of the Kubernetes manifests' PostgreSQL, seed and catalog pods
#   devcontainer  .devcontainer/ with the devcontainers CLI (npm) driving podman: devcontainer
#             up, make up and curl /health through devcontainer exec
#   lab-distros  the lab in Debian 13 and Debian 12 containers as a user with sudo and no
#             writable cgroup: make up, /health, make scale SERVERS=2, make down
# Prints "containers: N passed, N failed"; exits non-zero on any failure.
#
# Installs what it needs (podman, buildah, debootstrap, runc, docker-compose) with apt-get when
# run as root.  podman reads the project's own settings (tests/containers/env.sh), never /etc.
# No registry is reachable: debian:12-slim is made with debootstrap from this machine's apt
# mirror and imported, and the third-party images are stand-ins built from Debian packages
# (tests/containers/standins/).  Both, and podman's whole image store, are cached in
# var/containers/ (git-ignored): a second run builds nothing it already has.
# Compose and kube run in a network namespace of their own, so the layouts' fixed ports (3000,
# 8080, 9090) never meet anything on this machine, and nothing outlives the script.
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=tests/containers/env.sh
source "$repo/tests/containers/env.sh"
# shellcheck source=tests/integration/common/report.sh
source "$repo/tests/integration/common/report.sh"
report_start containers

sections=("$@")
((${#sections[@]})) || sections=(image compose solution kube devcontainer lab-distros)
started=$SECONDS
netns=catalog-ct-$$
service_pid="" health_pid="" dc_ws=""
distro_containers=() # lab-distros: the containers to remove on exit
work=$(mktemp -d /tmp/catalog-containers.XXXXXX)

say() { printf '== %s (%ds)\n' "$*" $((SECONDS - started)); }
die() {
	echo "test-containers: $*" >&2
	exit 1
}

cleanup() {
	set +e
	[[ -n $health_pid ]] && kill "$health_pid" 2>/dev/null
	local c
	for c in "${distro_containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
	if ip netns list 2>/dev/null | grep -qw "$netns"; then
		in_ns podman pod rm -a -f -t 0 >/dev/null 2>&1
		in_ns podman rm -a -f -t 0 >/dev/null 2>&1
		# Networks and volumes of a run that stopped half-way (all in the cache's own store).
		in_ns podman network prune -f >/dev/null 2>&1
		in_ns podman volume prune -f >/dev/null 2>&1
	fi
	[[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
	ip netns delete "$netns" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# --- setup: packages, mirror, base image, stand-ins ------------------------------------------
# Three that none of these depend on (apt-get installs without recommends): netavark sets up the
# containers' networks with iptables (without it every build step that runs fails: "netavark:
# No such file or directory"), a pod's infra container runs catatonit ("podman kube play":
# "finding pause binary"), and the lab-distros containers' network is slirp4netns's.
need_pkgs=(podman buildah debootstrap runc netavark aardvark-dns iptables catatonit slirp4netns
	docker-compose curl iproute2 python3 python3-yaml)
# kubectl renders the Kubernetes base (kustomize); another package may already provide it.
command -v kubectl >/dev/null 2>&1 || need_pkgs+=(kubernetes-client)
install_missing "${need_pkgs[@]}"
command -v podman >/dev/null || die "podman is not installed (Debian package podman)"
[[ $(id -u) == 0 ]] || die "the container tests run rootful podman: run them as root"

mirror=$(apt_mirror)
curl -fsS --max-time 15 -o /dev/null "${mirror%/}/dists/bookworm/Release" ||
	die "the Debian mirror $mirror does not answer (needed for the base image and the builds)"

# base_image SUITE TAG: TAG made from SUITE with debootstrap, unless the cache has it.
base_image() {
	local suite=$1 tag=$2 dir=$cache/rootfs-$1
	podman image exists "$tag" && return 0
	say "debootstrap $suite from $mirror (once; cached in var/containers)"
	rm -rf "$dir"
	timeout 900 debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$cache/debootstrap-$suite.log" 2>&1 ||
		die "debootstrap $suite failed: see $cache/debootstrap-$suite.log"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar -C "$dir" -c . | podman import --change 'CMD ["bash"]' - "$tag" >/dev/null
	rm -rf "$dir"
}
base_image bookworm docker.io/library/debian:12-slim

# The stand-ins, tagged with the names the Compose files and manifests use.
standins=(
	"postgres docker.io/library/postgres:15"
	"nginx docker.io/library/nginx:1.27-alpine"
	"prometheus docker.io/prom/prometheus:v2.53.1"
	"postgres-exporter quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
	"process-exporter docker.io/ncabatoff/process-exporter:0.8.7"
	"node-exporter docker.io/prom/node-exporter:v1.8.2"
)
for s in "${standins[@]}"; do
	read -r target tag <<<"$s"
	podman image exists "$tag" && continue
	say "building the $target stand-in as $tag"
	timeout 1200 podman build -q --target "$target" -t "$tag" -f tests/containers/standins/Containerfile \
		tests/containers/standins >"$work/build.log" 2>&1 || {
		tail -n 20 "$work/build.log"
		die "building the $target stand-in failed"
	}
done

# --- helpers ---------------------------------------------------------------------------------
# in_ns CMD...: CMD in the tests' network namespace (nsenter, not `ip netns exec`, which
# remounts /sys and so hides the cgroup mounts runc needs).
in_ns() { nsenter --net="/run/netns/$netns" "$@"; }

# start_engine: the namespace, and in it podman's Docker API for docker-compose; plus the health
# checks' scheduler: podman runs HEALTHCHECKs from systemd timers, and there is no systemd here,
# so every 2 s each running container that has one is checked (podman healthcheck run), which
# is what Docker's engine does on its own.
start_engine() {
	[[ -n $service_pid ]] && return 0
	ip netns add "$netns"
	in_ns ip link set lo up
	# nsenter itself (it execs podman), not in_ns in a subshell: $! is then podman's own PID,
	# which cleanup stops (killing a subshell left the service running after the script).
	nsenter --net="/run/netns/$netns" podman system service --time=0 "unix://$cache/run/podman.sock" \
		>"$work/service.log" 2>&1 &
	service_pid=$!
	export DOCKER_HOST=unix://$cache/run/podman.sock
	local i
	for ((i = 0; i < 50; i++)); do
		curl -fs --max-time 2 --unix-socket "$cache/run/podman.sock" http://d/_ping >/dev/null && break
		sleep 0.2
	done
	(
		while sleep 2; do
			for c in $(podman ps -q --filter health=starting --filter health=healthy --filter health=unhealthy 2>/dev/null); do
				in_ns podman healthcheck run "$c" >/dev/null 2>&1 || true
			done
		done
	) &
	health_pid=$!
}

# wait_for SECONDS DESCRIPTION CMD...: retries CMD every second until it succeeds; 1 on timeout.
wait_for() {
	local limit=$1 what=$2 end=$((SECONDS + $1))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= end)); then
			echo "     (no $what within ${limit}s)"
			return 1
		fi
		sleep 1
	done
}

# check NAME CMD...: ok when CMD succeeds, else fail with its output.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(tail -n 15 <<<"$out")"; fi
}

http() { in_ns curl -fsS --max-time 10 "$@"; }

# The layouts refuse to run without Grafana's admin password (GRAFANA_ADMIN_PASSWORD), and
# publish on CATALOG_BIND, 127.0.0.1 when unset: the test's own password, the default binding.
export GRAFANA_ADMIN_PASSWORD=containers-test-password
unset CATALOG_BIND

# compose FILE ARGS...: docker-compose on FILE, as a user types it (project name: the folder's).
compose() {
	local file=$1
	shift
	in_ns docker-compose -f "$file" "$@"
}

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
		local seen="" i body
		for i in 1 2 3 4; do
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

section_solution() {
	scaled_layout solution solution/docker-compose.scaled.yml compose
}

# --- kube ------------------------------------------------------------------------------------
# pod_ip POD: the pod's address on the catalog-k8s network (its infra container's).
pod_ip() {
	state "$(podman pod inspect --format '{{.InfraContainerID}}' "$1")" \
		'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
}

section_kube() {
	start_engine
	podman image exists catalog:local || section_image
	local dir=$work/k8s name=kube
	mkdir -p "$dir"
	say "kube: podman kube play of deploy/k8s (kubectl kustomize, tests/containers/kube-play.py)"
	kubectl kustomize deploy/k8s >"$dir/rendered.yaml"
	python3 tests/containers/kube-play.py "$dir/rendered.yaml" "$dir"
	in_ns podman network create catalog-k8s >/dev/null
	if ! in_ns podman kube play --network catalog-k8s "$dir/postgres.yaml" >"$work/kube.log" 2>&1; then
		fail "$name: podman kube play (PostgreSQL StatefulSet's pod)" "$(tail -n 15 "$work/kube.log")"
		kube_down "$dir"
		return 0
	fi
	local pg=postgres-pod-0-postgres ip
	ip=$(pod_ip postgres-pod-0) || true
	# The readinessProbe's command, run as the kubelet would.
	wait_for 90 "pg_isready" podman exec "$pg" pg_isready -U postgres -d catalogdb &&
		ok "$name: the PostgreSQL pod plays and its readinessProbe (pg_isready) passes" ||
		fail "$name: the PostgreSQL pod's readinessProbe passes" "$(podman logs --tail 10 "$pg" 2>&1)"
	local maxc
	# pg_isready also passes while the entrypoint's first-start server (socket only) runs.
	wait_for 60 "psql" podman exec "$pg" psql -U postgres -d catalogdb -Atc 'SELECT 1' || true
	maxc=$(podman exec "$pg" psql -U postgres -d catalogdb -Atc 'SHOW max_connections' 2>&1) || true
	[[ $maxc == 100 ]] && ok "$name: max_connections=\$(POSTGRES_MAX_CONNECTIONS) from the budget ConfigMap: $maxc" ||
		fail "$name: max_connections from the ConfigMap (got $maxc)"

	python3 tests/containers/kube-play.py "$dir/rendered.yaml" "$dir" "$ip"
	in_ns podman kube play --network catalog-k8s "$dir/seed.yaml" >"$work/kube.log" 2>&1 ||
		fail "$name: podman kube play (the seed Job's pod)" "$(tail -n 15 "$work/kube.log")"
	local seed=catalog-seed-seed
	wait_for 300 "seed exit" bash -c "[[ \$(podman inspect --format '{{.State.Status}}' $seed) == exited ]]"
	[[ $(state "$seed" '{{.State.ExitCode}}') == 0 ]] && ok "$name: the seed Job's pod completes (exit 0)" ||
		fail "$name: the seed Job's pod completes" "$(podman logs --tail 10 "$seed" 2>&1)"

	in_ns podman kube play --network catalog-k8s "$dir/catalog.yaml" >"$work/kube.log" 2>&1 ||
		fail "$name: podman kube play (the catalog Deployment)" "$(tail -n 15 "$work/kube.log")"
	local app=catalog-pod-0-catalog app_ip body uid
	app_ip=$(pod_ip catalog-pod-0) || true
	wait_for 60 "ready" http "http://$app_ip:3000/health/ready" || true
	body=$(http "http://$app_ip:3000/health/ready" 2>&1) || true
	[[ $body == *'"status":"ready"'* ]] &&
		ok "$name: the catalog pod serves /health/ready (its readinessProbe) against the PostgreSQL pod: $body" ||
		fail "$name: the catalog pod serves /health/ready" "$body" "$(podman logs --tail 10 "$app" 2>&1)"
	uid=$(podman exec "$app" id -u 2>&1) || true
	[[ $uid == 10001 ]] && ok "$name: the catalog pod runs as user 10001 (securityContext)" ||
		fail "$name: the catalog pod runs as user 10001 (got $uid)"
	podman exec "$app" touch /probe 2>/dev/null && fail "$name: readOnlyRootFilesystem: / is writable" ||
		ok "$name: readOnlyRootFilesystem: the root filesystem is read-only"
	[[ $(cpu_quota "$app") == 1.0 ]] && ok "$name: the cpu limit of 1 is in effect" ||
		fail "$name: the cpu limit of 1 is in effect (quota $(cpu_quota "$app"))"
	kube_down "$dir"
	local left
	left=$(podman ps -a --format '{{.Names}}' | grep -E '^(postgres-pod|catalog-pod|catalog-seed)' || true)
	[[ -z $(podman pod ps -q) && -z $left ]] && ok "$name: podman kube down removes every pod" ||
		fail "$name: pods left after kube down" "$left"
}

kube_down() {
	local f
	for f in catalog seed postgres; do
		[[ -f $1/$f.yaml ]] && in_ns podman kube down "$1/$f.yaml" >/dev/null 2>&1
	done
	in_ns podman volume rm -f catalog-k8s-postgres-data >/dev/null 2>&1
	in_ns podman network rm -f catalog-k8s >/dev/null 2>&1
	return 0
}

# --- devcontainer ----------------------------------------------------------------------------
# dc SECONDS SUBCOMMAND ARGS...: the devcontainers CLI (npm, pinned by
# tests/containers/devcontainer/package-lock.json) driving podman, on the workspace copy,
# for at most SECONDS.
dc() {
	local limit=$1 sub=$2
	shift 2
	local extra=()
	# The CLI runs a non-root remoteUser under podman with --userns=keep-id, which only rootless
	# podman has; an explicit identity mapping (what rootful podman does anyway) replaces it.
	# Docker (a Codespace) never reads this file.
	# The workspace copy sits inside this checkout: without --mount-workspace-git-root false
	# the CLI would mount the enclosing git work tree instead of the copy.
	[[ $sub == up ]] && extra=(--override-config "$work/devcontainer-podman.json")
	[[ $sub == up || $sub == exec ]] && extra+=(--mount-workspace-git-root false)
	timeout "$limit" "$repo/tests/containers/devcontainer/node_modules/.bin/devcontainer" "$sub" \
		--docker-path podman --workspace-folder "$dc_ws" "${extra[@]}" "$@"
}

section_devcontainer() {
	local name=devcontainer
	say "devcontainer: npm ci @devcontainers/cli, devcontainer up"
	if [[ ! -x tests/containers/devcontainer/node_modules/.bin/devcontainer ]]; then
		command -v npm >/dev/null || die "npm is not installed (Debian package npm)"
		(cd tests/containers/devcontainer && timeout 600 npm ci --no-audit --no-fund) >"$work/npm.log" 2>&1 || {
			fail "$name: npm ci (@devcontainers/cli)" "$(tail -n 5 "$work/npm.log")"
			return 0
		}
	fi
	# The workspace: a copy of the checkout (tracked and new files, as a clone would have them)
	# owned by uid 1000, the container's user: a learner's checkout is their own.  Always at
	# the same path, so the CLI's image (named after it) is the cached one on the next run.
	dc_ws=$cache/devcontainer/catalog
	rm -rf "$dc_ws"
	mkdir -p "$dc_ws"
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$dc_ws" -xf -
	chown -R 1000:1000 "$dc_ws"
	local config
	config=$(dc 60 read-configuration 2>/dev/null) || true
	python3 -c '
import json, sys
c = json.loads(sys.argv[1])["configuration"]
ports = c.get("forwardPorts", [])
attrs = c.get("portsAttributes", {})
missing = [p for p in (3000, 8080, 9090, 3002) if p not in ports or not attrs.get(str(p), {}).get("label")]
sys.exit("not forwarded and labelled: %s" % missing if missing else 0)' "$config" &&
		ok "$name: devcontainer.json forwards and labels ports 3000, 8080, 9090, 3002" ||
		fail "$name: devcontainer.json forwards and labels ports 3000, 8080, 9090, 3002" "$config"
	python3 - "$dc_ws/.devcontainer/devcontainer.json" >"$work/devcontainer-podman.json" <<'PY'
import json, re, sys
text = re.sub(r"^\s*//.*$", "", open(sys.argv[1]).read(), flags=re.M)
config = json.loads(text)
config["build"]["context"] = "%s/.devcontainer/%s" % (sys.argv[1].rsplit("/.devcontainer/", 1)[0], config["build"]["context"])
config["build"]["dockerfile"] = sys.argv[1].rsplit("/", 1)[0] + "/" + config["build"]["dockerfile"]
config["runArgs"] = config.get("runArgs", []) + ["--uidmap=0:0:65536", "--gidmap=0:0:65536"]
print(json.dumps(config))
PY
	if dc 2400 up >"$work/dc-up.log" 2>&1; then
		ok "$name: devcontainer up (image from .devcontainer/Dockerfile, postCreateCommand make)"
	else
		fail "$name: devcontainer up" "$(tail -n 20 "$work/dc-up.log")"
		devcontainer_rm
		return 0
	fi
	local out
	# shellcheck disable=SC2016 # expanded in the container
	out=$(dc 60 exec bash -c 'id -un; sudo -n true && echo sudo; for t in cc make pg_config psql nginx prometheus curl; do command -v $t >/dev/null || echo "no $t"; done; ls build/catalog-server' 2>&1) || true
	[[ $out == *vscode*sudo*build/catalog-server* && $out != *"no "* ]] &&
		ok "$name: the toolchain is ready for the user vscode (with sudo); make has built the programs" ||
		fail "$name: the toolchain is ready" "$out"
	if dc 900 exec make up >"$work/dc-make-up.log" 2>&1; then
		ok "$name: make up inside the devcontainer"
	else
		fail "$name: make up inside the devcontainer" "$(tail -n 20 "$work/dc-make-up.log")"
	fi
	out=$(dc 30 exec curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: curl localhost:3000/health through devcontainer exec: ${out##*$'\n'}" ||
		fail "$name: curl /health through devcontainer exec" "$(tail -n 5 <<<"$out")"
	# The lab's scale step as in a Codespace: a normal user, sudo, no writable cgroup.
	if dc 600 exec make scale SERVERS=2 >"$work/dc-scale.log" 2>&1; then
		out=$(dc 60 exec bash -c 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
		[[ $out == *'"server":"app"'* && $out == *'"server":"app2"'* ]] &&
			ok "$name: make scale SERVERS=2: /health through nginx on 8080 reaches app and app2" ||
			fail "$name: make scale SERVERS=2: app and app2 behind 8080" "$(tail -n 5 <<<"$out")"
	else
		fail "$name: make scale SERVERS=2 inside the devcontainer" "$(tail -n 15 "$work/dc-scale.log")"
	fi
	dc 300 exec make down >"$work/dc-down.log" 2>&1 && ok "$name: make down inside the devcontainer" ||
		fail "$name: make down inside the devcontainer" "$(tail -n 10 "$work/dc-down.log")"
	devcontainer_rm
	rm -rf "$dc_ws"
}

# devcontainer_rm: the devcontainer's container (its image stays cached).
devcontainer_rm() {
	local c
	for c in $(podman ps -aq --filter "label=devcontainer.local_folder=$dc_ws"); do
		podman rm -f -t 5 "$c" >/dev/null 2>&1
	done
	return 0
}

# --- lab-distros -----------------------------------------------------------------------------
# The lab as a learner runs it in a plain Debian container (what a Codespace gives): a normal
# user with passwordless sudo, a read-only cgroup fs, the checkout as files of their own; then
# make up (which installs the packages with sudo apt-get from the mirror), SERVER_CPUS=0.5
# make scale SERVERS=2 (the lab must say it pins) and make down.  Debian 13 first (PostgreSQL 17, newer nginx and Prometheus), then
# Debian 12.  The container's network is slirp4netns: it reaches the mirror and npm, binds
# nothing on this machine and shares no bridge with other podman stores; the lab's ports are
# its own, checked from inside with podman exec.

# distro_base SUITE TAG: TAG made from SUITE (debootstrap minbase plus sudo, make, curl) with
# the user learner (uid 1000, passwordless sudo), unless the cache has it.
distro_base() {
	local suite=$1 tag=$2 dir=$cache/rootfs-lab-$1
	podman image exists "$tag" && return 0
	say "lab-distros: debootstrap $suite from $mirror (once; cached in var/containers)"
	rm -rf "$dir"
	timeout 900 debootstrap --variant=minbase --include=sudo,make,ca-certificates,curl "$suite" "$dir" \
		"$mirror" >"$cache/debootstrap-lab-$suite.log" 2>&1 ||
		die "debootstrap $suite failed: see $cache/debootstrap-lab-$suite.log"
	distro_user "$dir"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar -C "$dir" -c . | podman import -q --change 'CMD ["sleep", "infinity"]' --change 'USER learner' \
		--change 'WORKDIR /home/learner' - "$tag" >/dev/null
	rm -rf "$dir"
}

# distro_user ROOTFS: the user learner with passwordless sudo, as a Codespace's user has.
distro_user() {
	chroot "$1" useradd -m -u 1000 -s /bin/bash learner
	printf 'learner ALL=(ALL) NOPASSWD:ALL\n' >"$1/etc/sudoers.d/learner"
	chmod 440 "$1/etc/sudoers.d/learner"
}

# in_distro NAME SECONDS CMD...: CMD as learner in the checkout inside container NAME.
in_distro() {
	local c=$1 limit=$2
	shift 2
	timeout "$limit" podman exec -u learner -w /home/learner/catalog "$c" "$@"
}

section_lab_distros() {
	local suite
	for suite in trixie bookworm; do
		lab_distro "$suite"
	done
}

lab_distro() {
	local suite=$1 tag=localhost/lab-distro-$1:base c=lab-distro-$1-$$ name="lab in $1" out
	distro_base "$suite" "$tag"
	say "lab-distros: make up in a $suite container as a user with sudo"
	podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
	distro_containers+=("$c")
	podman run -d --name "$c" --network slirp4netns --no-healthcheck "$tag" >/dev/null ||
		{
			fail "$name: the container starts"
			return 0
		}
	podman exec -u 0 "$c" mkdir -p /home/learner/catalog
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - |
		podman exec -i -u 0 "$c" tar -C /home/learner/catalog -xf -
	podman exec -u 0 "$c" chown -R learner:learner /home/learner/catalog
	# Even root in the container cannot make a group: the cgroup fs (v2, or v1's cpu) is read-only.
	# shellcheck disable=SC2016 # expanded in the container
	out=$(in_distro "$c" 60 bash -c '. /etc/os-release; echo "$VERSION_CODENAME"; id -un; sudo -n true && echo sudo
		for d in /sys/fs/cgroup /sys/fs/cgroup/cpu; do [[ -e $d/cgroup.procs ]] && sudo -n mkdir "$d/lab-distro-probe" 2>/dev/null && sudo -n rmdir "$d/lab-distro-probe" && echo "writable $d"; done; echo ro-cgroup' 2>&1) || true
	[[ $out == *"$suite"*learner*sudo*ro-cgroup* && $out != *writable* ]] &&
		ok "$name: Debian $suite, user learner with passwordless sudo, no writable cgroup" ||
		fail "$name: the container's user and cgroups" "$out"
	if in_distro "$c" 1800 make up >"$work/$c-up.log" 2>&1; then
		ok "$name: make up (packages installed with sudo apt-get, built, started)"
	else
		fail "$name: make up" "$(tail -n 25 "$work/$c-up.log")"
		lab_distro_rm "$c"
		return 0
	fi
	out=$(in_distro "$c" 30 curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: /health on 3000 inside the container: $out" ||
		fail "$name: /health on 3000" "$out"
	out=$(in_distro "$c" 30 bash -c 'psql --version; nginx -v 2>&1; prometheus --version 2>&1 | head -n1' 2>&1) || true
	echo "     $suite: ${out//$'\n'/; }"
	# A CPU size asks for a quota; with no writable cgroup the lab must say it pins instead.
	if in_distro "$c" 600 env SERVER_CPUS=0.5 make scale SERVERS=2 >"$work/$c-scale.log" 2>&1; then
		grep -q 'no CPU quota can be set on this machine' "$work/$c-scale.log" &&
			ok "$name: SERVER_CPUS=0.5 make scale SERVERS=2 says it pins each server instead of a quota" ||
			fail "$name: make scale says it pins instead of a CPU quota" "$(grep -i -m3 'cpu\|cgroup' "$work/$c-scale.log")"
		out=$(in_distro "$c" 60 bash -c 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
		python3 -c '
import json, sys
servers = [json.loads(l)["server"] for l in sys.argv[1].splitlines() if l.startswith("{")]
sys.exit(0 if len(servers) == 4 and all(servers[i] != servers[i + 1] for i in range(3)) and set(servers) == {"app", "app2"} else servers)' "$out" &&
			ok "$name: make scale SERVERS=2: /health through nginx on 8080 alternates app and app2" ||
			fail "$name: make scale SERVERS=2: app and app2 alternate behind 8080" "$out"
	else
		fail "$name: SERVER_CPUS=0.5 make scale SERVERS=2" "$(tail -n 15 "$work/$c-scale.log")"
	fi
	if in_distro "$c" 300 make down >"$work/$c-down.log" 2>&1; then
		out=$(in_distro "$c" 30 bash -c 'curl -fsS --max-time 3 localhost:3000/health || curl -fsS --max-time 3 localhost:8080/health || echo stopped' 2>&1) || true
		[[ $out == *stopped* ]] && ok "$name: make down, nothing answers on 3000 or 8080 after it" ||
			fail "$name: make down left something answering" "$out"
	else
		fail "$name: make down" "$(tail -n 10 "$work/$c-down.log")"
	fi
	lab_distro_rm "$c"
}

lab_distro_rm() { podman rm -f -t 5 "$1" >/dev/null 2>&1 || true; }

main() {
	local s
	for s in "${sections[@]}"; do
		case $s in
		image | compose-single | compose-scaled | solution | kube | devcontainer | lab-distros) "section_${s//-/_}" ;;
		compose) section_compose_single && section_compose_scaled ;;
		*) die "unknown section '$s' (image, compose, compose-single, compose-scaled, solution, kube, devcontainer, lab-distros)" ;;
		esac
	done
	say "done"
	finish
}
main
