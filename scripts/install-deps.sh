#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages the project needs, only when missing.
# Usage: scripts/install-deps.sh [build|lab|test|all]   (default: all)
#   build: make;  lab: make up and the lab's commands;  test: make test;  all: also make bench
# Runs `apt-get update` once, before the first install, and never starts a package's
# system service: the project runs its own instances with its own configs.
set -euo pipefail

profile=${1:-all}

# build: the C programs (make).
build_pkgs=(build-essential pkg-config libpq-dev libjansson-dev)
# lab: what make up and the lab's other commands need to run: PostgreSQL (the lab runs its own
# clusters), python3 (the lab is a Python program), nginx, Prometheus (promtool checks its
# configs) and the exporters that give the dashboard the database's CPU and connections (the
# lab runs its own instances), curl for the README's commands, and npm, which vendors the
# dashboard's chart library (dashboard/package-lock.json).
# postgresql, postgresql-client and libclang-rt-dev are the distribution's default majors
# (PostgreSQL 15 and clang 14 on Debian 12, 17 and 19 on Debian 13).
lab_pkgs=(postgresql postgresql-client python3 curl procps iproute2 nginx prometheus
	prometheus-postgres-exporter prometheus-process-exporter prometheus-node-exporter)
# test: what only make test needs on top: PgBouncer (a pool test), YAML and kubectl for the
# deploy checks, clang for the sanitizers and libFuzzer, Chromium for the dashboard test, and
# make lint's two tools (shellcheck, clang-format).
test_pkgs=(pgbouncer python3-yaml clang libclang-rt-dev docker-compose chromium shellcheck
	clang-format)
# all: everything, with wrk for make bench (catalog-loadtest measured against it) and valgrind
# (its instructions per category listing, callgrind).
bench_pkgs=(wrk valgrind)
exporter_services=(prometheus-postgres-exporter prometheus-process-exporter prometheus-node-exporter)

case "$profile" in
build) want=("${build_pkgs[@]}") ;;
lab) want=("${build_pkgs[@]}" "${lab_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${lab_pkgs[@]}" "${test_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${lab_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*)
	echo "install-deps: unknown profile '$profile' (build, lab, test or all)" >&2
	exit 2
	;;
esac

# kubectl for the manifests' client-side checks; another package may already provide it.
if [[ $profile == test || $profile == all ]] && ! command -v kubectl >/dev/null 2>&1; then
	want+=(kubernetes-client)
fi

# npm (and node) for the dashboard's build; a node from another source that brings npm will do.
if [[ $profile != build ]] && ! command -v npm >/dev/null 2>&1; then
	want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
((${#missing[@]} == 0)) && exit 0

# As root apt-get runs directly; as a normal user through sudo (said first: it may ask for
# a password); without sudo the one command to run is printed and nothing else is done.
as_root=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: missing packages: ${missing[*]}" >&2
		echo "install-deps: not root and no sudo here; as root, run this once, then run the command again:" >&2
		echo "  apt-get update && apt-get install --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]} with sudo apt-get (sudo may ask for your password)" >&2
	as_root=(sudo)
else
	echo "install-deps: installing ${missing[*]}" >&2
fi
# policy-rc.d exit 101 keeps apt from starting nginx/prometheus/postgresql system services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
	"${as_root[@]}" sh -c "printf '#!/bin/sh\\nexit 101\\n' >$policy && chmod 755 $policy" ||
		{
			echo "install-deps: could not become root with sudo; run as root: apt-get update && apt-get install --no-install-recommends ${missing[*]}" >&2
			exit 1
		}
	created_policy=1
fi
trap '[[ $created_policy == 1 ]] && "${as_root[@]}" rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Some packages start their service despite policy-rc.d when no init system is running;
# stop any that did so the project's own instances get their ports.
for svc in nginx prometheus pgbouncer; do
	if pgrep -x "$svc" >/dev/null 2>&1 && [[ -z ${CATALOG_KEEP_SYSTEM_SERVICES:-} ]]; then
		"${as_root[@]}" service "$svc" stop >/dev/null 2>&1 || true
	fi
done
# The exporters' services likewise (their init scripts stop only the instance of their own
# PID file and user, never the lab's).
if [[ -z ${CATALOG_KEEP_SYSTEM_SERVICES:-} ]]; then
	for svc in "${exporter_services[@]}"; do
		if [[ " ${missing[*]} " == *" $svc "* ]] && pgrep -u prometheus -f "/usr/bin/$svc" >/dev/null 2>&1; then
			"${as_root[@]}" service "$svc" stop >/dev/null 2>&1 || true
		fi
	done
fi
