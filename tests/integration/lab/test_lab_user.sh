#!/usr/bin/env bash
# test_lab_user.sh: the README's lab commands as a normal account, the way a learner runs them
# on a laptop.  As root it creates a throwaway account, clones the repository into its home
# and runs there, as that account: make up, SERVER_CPUS=0.25 make scale SERVERS=2 (requests
# alternate through nginx; no writable cgroup: pinned, said so), the same with LAB_CGROUP
# pointing at a fake cgroup v2 tree the account owns (cpu.max written, the server in it),
# make status (each server's CPU mechanism), make restart, a short make demo, make down; and
# make up with every package missing and no sudo (the one apt-get line, exit 1, naming the
# lab's packages and none of the test-only ones).  Then the lab's faults, dashboard and
# scenario tests (test_faults_lab.sh, test_dashboard.sh, test_scenario.sh), each run as the
# account in its clone, their checks counted here.
# Nothing after the package step may need root; the lab's state stays under the clone's var/.
# The account and its home are removed afterwards.  Free loopback ports as the other lab tests.
# Not root: prints one ok saying so (the other lab tests already run as this account).
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015,SC2016
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh

report_start lab-user

if [[ $(id -u) -ne 0 ]]; then
	ok "not root: the lab's other tests already run as this normal account ($(id -un))"
	finish
	exit 0 # finish returns after a pass
fi
need_build

user=catalog-lab-$$
home=""
user_pids=()
# The account's uid may have belonged to an account removed before (by an earlier run of this
# test on the same machine, say) whose entries are still in /tmp or /var/tmp, or whose
# processes still run: those are not this run's, so the checks (and the cleanup) look only at
# what was not there when the account was made.
before_tmp="" before_pids=""
tmp_entries() { find /tmp /var/tmp -mindepth 1 -maxdepth 1 -user "$user" 2>/dev/null | sort || true; }
user_pids_now() { pgrep -u "$user" 2>/dev/null | sort || true; }
# new_since LIST CMD...: the lines CMD prints that LIST (its output at the account's making) lacks.
new_since() { comm -13 <(printf '%s\n' "$1" | sed '/^$/d') <("${@:2}"); }
tmp_entries_new() { new_since "$before_tmp" tmp_entries; }
user_pids_new() { new_since "$before_pids" user_pids_now; }
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local pid
	if [[ -n $home && -d $home/catalog ]]; then
		as_user make -C "$home/catalog" --no-print-directory down >/dev/null 2>&1 || true
	fi
	for pid in "${user_pids[@]}" $(user_pids_new); do kill -KILL "$pid" 2>/dev/null || true; done
	tmp_entries_new | xargs -r -d '\n' rm -rf
	if id "$user" >/dev/null 2>&1; then userdel -r "$user" >/dev/null 2>&1 || true; fi
	[[ -n $home ]] && rm -rf "$home"
}
trap cleanup EXIT

# as_user CMD...: CMD as the throwaway account, in a login-like environment (no root's PATH:
# /usr/sbin is not on it) with this test's ports and a small seed.
as_user() {
	runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
		PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
		LAB_APP_PORT="$LAB_APP_PORT" LAB_LB_PORT="$LAB_LB_PORT" LAB_PROM_PORT="$LAB_PROM_PORT" \
		LAB_PG_PORT="$LAB_PG_PORT" LAB_GRAFANA_PORT="$LAB_GRAFANA_PORT" \
		LAB_PG_EXPORTER_PORT="$LAB_PG_EXPORTER_PORT" LAB_PROCESS_EXPORTER_PORT="$LAB_PROCESS_EXPORTER_PORT" \
		LAB_NODE_EXPORTER_PORT="$LAB_NODE_EXPORTER_PORT" PG_FAST=1 SEED_PRODUCTS=200 SEED_ORDERS=2000 \
		ACCESS_LOG=0 "$@"
}

useradd -m -d "/home/$user" -s /bin/bash "$user" || {
	fail "a throwaway account can be created (useradd)"
	finish
}
home=/home/$user
before_tmp=$(tmp_entries) before_pids=$(user_pids_now)
[[ -z $before_tmp$before_pids ]] ||
	echo "     (uid $(id -u "$user") already owns entries in /tmp or /var/tmp or processes, left alone: $(head -n 3 <<<"$before_tmp" | tr '\n' ' ')$before_pids)"
lab_env_setup user
rmdir "$LAB_DIR" # the clone's var/ is the lab's folder here

# ---- a clone in the account's home ----------------------------------------------------------
# The repository belongs to root: the account's own git config lets it read it (git before
# 2.45 honours safe.directory only there).
as_user git config --global --add safe.directory '*'
if ! out=$(as_user git clone -q "$repo" "$home/catalog" 2>&1); then
	fail "the account clones the repository into its home" "$out"
	finish
fi
# The build the other tests use, copied so that make finds it up to date (the build itself is
# tested elsewhere): the README's commands run unchanged.
cp -a "$CATALOG_BUILD" "$home/catalog/build"
chown -R "$user:" "$home/catalog/build"
stamp=$(date '+%Y-%m-%d %H:%M:%S.%N') # one time for all: no object newer than its archive
find "$home/catalog/build" -exec touch -d "$stamp" {} +
ok "the account has its own clone in $home/catalog"
in_clone() { as_user bash -c 'cd "$HOME/catalog" && "$@"' in-clone "$@"; }
user_state() { LAB_DIR=$home/catalog/var lab_state "$1"; }
user_records() { LAB_DIR=$home/catalog/var server_records; }
remember_pids() { mapfile -t -O "${#user_pids[@]}" user_pids < <(LAB_DIR=$home/catalog/var lab_pids); }

# ---- the package step without root: the one line to run ---------------------------------
fake=$home/fakebin
mkdir -p "$fake"
printf '#!/bin/sh\nexit 1\n' >"$fake/dpkg-query" # every package reads as missing
chmod 755 "$fake/dpkg-query"
chown -R "$user:" "$fake"
rc=0
out=$(as_user env PATH="$fake:/usr/bin:/bin" bash -c 'cd "$HOME/catalog" && make up' 2>&1) || rc=$?
line=$(grep -m1 'apt-get install --no-install-recommends ' <<<"$out" || true)
test_only=()
for p in chromium clang shellcheck clang-format pgbouncer docker-compose kubernetes-client wrk; do
	[[ " $line " == *" $p "* ]] && test_only+=("$p")
done
lab_only=1
for p in libpq-dev postgresql nginx prometheus python3; do [[ " $line " == *" $p "* ]] || lab_only=0; done
if ((rc != 0 && lab_only && ${#test_only[@]} == 0)) && [[ $out == *"not root and no sudo"* ]] &&
	! command -v sudo >/dev/null; then
	ok "make up as a user without sudo: stops and prints the one apt-get line, the lab's packages only (${line#*recommends })"
elif command -v sudo >/dev/null; then
	ok "make up without sudo: (sudo is installed here; the no-sudo message is not reachable)"
else
	fail "make up as a user without sudo: stops and prints the one apt-get line, the lab's packages only" \
		"exit $rc, test-only packages in it: ${test_only[*]}" "$out"
fi

# ---- make up -----------------------------------------------------------------------------
rc=0
out=$(in_clone make up 2>&1) || rc=$?
remember_pids
lab_dir=$home/catalog/var
if ((rc == 0)) && curl -fsS --max-time 5 "http://127.0.0.1:$LAB_APP_PORT/health" | grep -q '"server":"app"' &&
	[[ $out == *"Prometheus started"* && $out == *"nginx started"* ]]; then
	ok "make up as $user: PostgreSQL, a server, nginx (from /usr/sbin, not on PATH), Prometheus"
else
	fail "make up as $user" "exit $rc" "$out"
	finish
fi
strangers=()
for pid in $(LAB_DIR=$lab_dir lab_pids); do
	owner=$(stat -c %U "/proc/$pid" 2>/dev/null || echo gone)
	[[ $owner == "$user" || $owner == gone ]] || strangers+=("$pid:$owner")
done
((${#strangers[@]} == 0)) && ok "every process of the lab runs as $user (PostgreSQL too: no runuser)" ||
	fail "every process of the lab runs as $user" "${strangers[*]}"
outside=$(tmp_entries_new | xargs -r -d '\n' ls -ld 2>&1 || true)
[[ -d $lab_dir/pg/data && -f $lab_dir/run/state.json && -z $outside ]] &&
	ok "the lab's state is under the clone's var/ (nothing of $user's in /tmp)" ||
	fail "the lab's state is under the clone's var/" "outside: $outside" \
		"var/: $(find "$lab_dir" -maxdepth 2 -printf '%P ' 2>&1)"

# ---- scale with a CPU size: no writable cgroup for a user here -> pinning, said ------------
rc=0
out=$(in_clone env SERVER_CPUS=0.25 make scale SERVERS=2 2>&1) || rc=$?
remember_pids
lb=http://127.0.0.1:$LAB_LB_PORT
servers=$(health_servers 4 "$lb" 2>/dev/null || true)
if ((rc == 0)) && [[ $servers == "app app2 app app2" || $servers == "app2 app app2 app" ]]; then
	ok "SERVER_CPUS=0.25 make scale SERVERS=2: requests alternate through nginx ($servers)"
else
	fail "SERVER_CPUS=0.25 make scale SERVERS=2: requests alternate through nginx" "exit $rc, got: $servers" "$out"
fi
if [[ -w /sys/fs/cgroup/cpu ]] && runuser -u "$user" -- test -w /sys/fs/cgroup/cpu; then
	ok "(the account may write the cgroup v1 cpu controller here: pinning not exercised)"
else
	pid=$(LAB_DIR=$lab_dir server_field app2 5 || echo 0)
	affinity=$(taskset -pc "$pid" 2>/dev/null | sed 's/.*: //')
	[[ $out == *"no CPU quota can be set on this machine"*"pinning app2 to CPU"* ]] &&
		[[ $(user_state '[r["limit"] for r in s["servers"]]' | sort -u) == pinning ]] &&
		[[ $affinity =~ ^[0-9]+$ ]] &&
		ok "no writable cgroup: says no quota can be set, pins each server to one core (app2: CPU $affinity)" ||
		fail "no writable cgroup: says so and pins" "affinity $affinity" "$out"
fi
out=$(in_clone make status 2>&1) || true
grep -qE 'server app2 .*cpus 0.25 limit (pinned:[0-9]+|cgroup-v1|cgroup-v2|systemd) .*health ok' <<<"$out" &&
	ok "make status shows each server's CPU mechanism" || fail "make status shows each server's CPU mechanism" "$out"

# ---- the same on a (fake) cgroup v2 subtree delegated to the account ------------------------
tree=$home/fake-cgroup
mkdir -p "$tree/user.slice"
printf 'cpu memory pids\n' >"$tree/user.slice/cgroup.controllers"
printf 'cpu memory pids\n' >"$tree/user.slice/cgroup.subtree_control"
chown -R "$user:" "$tree"
rc=0
out=$(in_clone env LAB_CGROUP="$tree/user.slice/catalog" SERVER_CPUS=0.5 make scale SERVERS=2 2>&1) || rc=$?
remember_pids
pid=$(LAB_DIR=$lab_dir server_field app2 5 || echo 0)
quota=$(cat "$tree/user.slice/catalog/app2/cpu.max" 2>/dev/null || echo none)
if ((rc == 0)) && [[ $quota == "50000 100000" ]] && grep -qx "$pid" "$tree/user.slice/catalog/app2/cgroup.procs" &&
	[[ $out == *"0.5 CPUs (cgroup v2)"* ]]; then
	ok "LAB_CGROUP on a cgroup v2 subtree the account owns: cpu.max 50000 100000, app2 (pid $pid) joined it"
else
	fail "LAB_CGROUP on a cgroup v2 subtree: cpu.max written and the server in it" "exit $rc, quota $quota, pid $pid" "$out"
fi
workers=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^WORKERS=//p')
[[ $workers == 1 ]] && ok "the server's WORKERS follows the quota (0.5 CPU: 1)" ||
	fail "the server's WORKERS follows the quota" "WORKERS=$workers"

# ---- restart, demo, down -------------------------------------------------------------------
rc=0
out=$(in_clone make restart 2>&1) || rc=$?
remember_pids
((rc == 0)) && [[ $out == *"restarted 2 server(s)"* ]] && ok "make restart as $user" || fail "make restart as $user" "exit $rc" "$out"
rc=0
# A run of the learner's own under the name Step 5 gives it: the demo must leave it alone.
results=$home/catalog/var/results
as_user bash -c 'mkdir -p "$1" && echo "{\"mine\": true}" >"$1/1-server-0.25cpu-browse.json"' mine "$results"
out=$(in_clone env DEMO_DURATION=1s DEMO_CONNECTIONS=8 make demo 2>&1) || rc=$?
remember_pids
((rc == 0)) && [[ $out == *"two servers / one server, requests per second"* && $out == *"make down"* ]] &&
	ok "make demo as $user: both layouts loaded and compared; says the lab is left running and make down" ||
	fail "make demo as $user" "exit $rc" "$(tail -n 40 <<<"$out")"
demo_runs=$(cd "$results" && find . -maxdepth 1 -name 'demo-*.json' ! -name '*.series.json' -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')
want_runs="demo-1-server-0.25cpu-browse-ceiling.json demo-1-server-0.25cpu-browse.json demo-1-server-0.25cpu-scenario.json "
want_runs+="demo-2-servers-0.25cpu-browse-round_robin-ceiling.json demo-2-servers-0.25cpu-browse-round_robin.json "
want_runs+="demo-2-servers-0.25cpu-scenario-round_robin.json "
[[ $(cat "$results/1-server-0.25cpu-browse.json") == '{"mine": true}' && $demo_runs == "$want_runs" ]] &&
	ok "make demo keeps its runs under names of its own (demo-...), the learner's 1-server-0.25cpu-browse.json untouched" ||
	fail "make demo keeps its runs under names of its own" "demo runs: $demo_runs" "$(ls "$results")"
rm -f "$results/1-server-0.25cpu-browse.json"
rc=0
out=$(in_clone make down 2>&1) || rc=$?
left=()
for pid in $(printf '%s\n' "${user_pids[@]}" | grep -E '^[0-9]+$' | sort -un); do alive "$pid" && left+=("$pid"); done
running=$(for pid in $(user_pids_new); do alive "$pid" && ps -o pid=,args= -p "$pid"; done || true)
((rc == 0 && ${#left[@]} == 0)) && [[ -z $running ]] &&
	ok "make down as $user: nothing of the account's is left running" ||
	fail "make down as $user: nothing left" "exit $rc, left: ${left[*]}" "$running" "$out"

# ---- the lab's other tests, as the account, in its clone ------------------------------------
# The faults (SIGTERM under load, the rolling restart, busy servers), the dashboard (Chromium)
# and the walkthrough (SCENARIO.md) run exactly as they do as root, with the clone's scripts
# and build: each prints its own checks, counted here.
# USER_LAB_TESTS: which of them (default all three; "" none).
for t in ${USER_LAB_TESTS-test_faults_lab test_dashboard test_scenario}; do
	started=$SECONDS
	rc=0
	out=$(as_user env CATALOG_BUILD="$home/catalog/build" CATALOG_TEST_PORTS="${CATALOG_TEST_PORTS:-}" \
		timeout --kill-after=10 450 bash -c 'cd "$HOME/catalog" && exec bash tests/integration/*/"$1".sh' run "$t" 2>&1) || rc=$?
	remember_pids
	sed -nE "s/^(ok  |FAIL) /\1 $t as $user: /p; /^     /p" <<<"$out"
	closing=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n 1 || true)
	if [[ $closing =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
		((rc == 0 || BASH_REMATCH[2] > 0)) || fail "$t as $user: exit $rc after its closing line" "$(tail -n 20 <<<"$out")"
	else
		fail "$t as $user: no closing line (exit $rc$( ((rc == 124)) && echo ': killed after 450 s'))" "$(tail -n 20 <<<"$out")"
	fi
	echo "     ($t as $user: $((SECONDS - started)) s)"
done
running=$(for pid in $(user_pids_new); do alive "$pid" && ps -o pid=,args= -p "$pid"; done || true)
in_tmp=$(tmp_entries_new | xargs -r -d '\n' ls -ld 2>&1 || true)
[[ -z $running && -z $in_tmp ]] && ok "after the account's lab tests nothing of $user's is left running or in /tmp" ||
	fail "after the account's lab tests nothing of $user's is left running or in /tmp" "$running" "$in_tmp"

finish
