#!/usr/bin/env bash
# run.sh: `make test-containers`: the deploy layouts built and run for real under podman.
# Usage: tests/containers/run.sh [SECTION...]   (default: every section, in this order)
#   image     deploy/docker/Dockerfile built unchanged on the local debian:12-slim
#   compose   compose-single (deploy/compose/docker-compose.yml), then compose-scaled
#             (docker-compose.scaled.yml): `up -d --build` and `down -v` through docker-compose,
#             as a user runs them
#   compose-replica  docker-compose.scaled.yml with docker-compose.replica.yml over it: the
#             standby made by pg_basebackup streams, reads reach it, an order is replayed on it
#   kube      `podman kube play` of the Kubernetes manifests' PostgreSQL, seed and catalog pods
#   devcontainer  .devcontainer/ with the devcontainers CLI (npm) driving podman: devcontainer
#             up, make up and curl /health through devcontainer exec
#   lab-distros  the lab in Debian 13 and Debian 12 containers as a user with sudo and no
#             writable cgroup: make up, /health, make scale SERVERS=2, make down
# Prints "containers: N passed, N failed"; exits non-zero on any failure.
# The sections' functions are in compose.sh (image, compose, compose-replica), kube.sh, devcontainer.sh
# and lab_distros.sh beside this file, sourced below.
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
((${#sections[@]})) || sections=(image compose compose-replica kube devcontainer lab-distros)
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

# cleanup: on every exit path, everything this script started: the health-check loop, the
# containers and pods, podman's API service (TERM, then KILL after 10 s) and the namespace.
cleanup() {
	set +e
	[[ -n $health_pid ]] && kill "$health_pid" 2>/dev/null && wait "$health_pid" 2>/dev/null
	local c
	for c in "${distro_containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
	if ip netns list 2>/dev/null | grep -qw "$netns"; then
		in_ns podman pod rm -a -f -t 0 >/dev/null 2>&1
		in_ns podman rm -a -f -t 0 >/dev/null 2>&1
		# Networks and volumes of a run that stopped half-way (all in the cache's own store).
		in_ns podman network prune -f >/dev/null 2>&1
		in_ns podman volume prune -f >/dev/null 2>&1
	fi
	if [[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null; then
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$service_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$service_pid" 2>/dev/null
		wait "$service_pid" 2>/dev/null
	fi
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
	# setpriv --pdeathsig: the kernel sends it TERM when this script ends in a way no trap sees
	# (SIGKILL, e.g. from a timeout's --kill-after), so it never outlives the script.
	setpriv --pdeathsig TERM nsenter --net="/run/netns/$netns" \
		podman system service --time=0 "unix://$cache/run/podman.sock" >"$work/service.log" 2>&1 &
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

# --- sections: one file each (image, compose and compose-replica share compose.sh's helpers) --------
# shellcheck source=tests/containers/compose.sh
source "$repo/tests/containers/compose.sh"
# shellcheck source=tests/containers/kube.sh
source "$repo/tests/containers/kube.sh"
# shellcheck source=tests/containers/devcontainer.sh
source "$repo/tests/containers/devcontainer.sh"
# shellcheck source=tests/containers/lab_distros.sh
source "$repo/tests/containers/lab_distros.sh"

main() {
	local s
	for s in "${sections[@]}"; do
		case $s in
		image | compose-single | compose-scaled | compose-replica | kube | devcontainer | lab-distros) "section_${s//-/_}" ;;
		compose) section_compose_single && section_compose_scaled ;;
		*) die "unknown section '$s' (image, compose, compose-single, compose-scaled, compose-replica, kube, devcontainer, lab-distros)" ;;
		esac
	done
	say "done"
	finish
}
main
