# checks.sh: the checks and the sections (sudo, scope, root, pinning) of tests/vm/run.sh,
# which sources this file (never run on its own); the functions read run.sh's settings
# ($repo, $cache, $work, $suite, $mirror, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

# --- checks ----------------------------------------------------------------------------------
# check NAME CMD...: ok when CMD succeeds, else fail with its output.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(tail -n 15 <<<"$out")"; fi
}

# put_checkout USER DIR: the checkout under test (tracked and new files, as a clone has them)
# with its build/ (made on this machine, also Debian 12: the guest's make finds it up to date),
# or the guest's first copy of it when there is one, in DIR, owned by USER.
put_checkout() {
	local user=$1 dir=$2
	if guest root 30 test -x /home/learner/catalog/build/catalog-server && [[ $dir != /home/learner/catalog ]]; then
		guest root 120 "rm -rf $dir && mkdir -p $dir && cd /home/learner/catalog && tar --exclude=./var -cf - . | tar -C $dir -xf - && chown -R $user: $dir"
	else
		{
			git ls-files -z --cached --others --exclude-standard
			find build -type f -print0
		} | tar --null -T - -cf - |
			guest root 300 "rm -rf $dir && mkdir -p $dir && tar -C $dir -xf - && chown -R $user: $dir"
	fi
}

# as USER SECONDS CMD: CMD in USER's checkout; learner and root over ssh (a logind session),
# plain through runuser from root's (no session, no user manager).  The seed is 20,000
# orders, not 500,000: nothing here reads the report, and under TCG the full seed takes minutes.
# npm is offline (the guest reaches no npm registry): the dashboard's build fails at once
# instead of after npm's retries, and make up says so and goes on.  Under TCG a server's
# first connection (SCRAM, a backend's start) can take longer than DB_CONNECT_TIMEOUT_MS's
# 3 s on a quarter of an emulated CPU: boot() raises it there.
as() {
	local user=$1 limit=$2 seed=$guest_env
	shift 2
	case $user in
	learner) guest learner "$limit" "cd ~/catalog && export $seed && $*" ;;
	root) guest root "$limit" "cd /srv/catalog && export $seed && $*" ;;
	plain) guest root "$limit" "cd /home/plain/catalog && runuser -u plain -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/plain USER=plain LOGNAME=plain $seed bash -c $(printf %q "$*")" ;;
	esac
}

# make_up USER NAME: make up as USER.
make_up() {
	local user=$1 name=$2
	if as "$user" 900 make up >"$work/$user-up.log" 2>&1; then
		ok "$name: make up"
	else
		fail "$name: make up" "$(tail -n 25 "$work/$user-up.log")"
		return 1
	fi
}

# server_pids USER: "ID PID" per running server, from make status.
server_pids() {
	as "$1" 60 make status 2>/dev/null | sed -n 's/^server \([a-z0-9]*\) *pid \([0-9]*\) .*/\1 \2/p'
}

# alternates USER NAME: /health four times through nginx on 8080 in the guest: app, app2, ...
alternates() {
	local out
	out=$(as "$1" 60 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
	python3 -c '
import json, sys
servers = [json.loads(l)["server"] for l in sys.argv[1].splitlines() if l.startswith("{")]
sys.exit(0 if len(servers) == 4 and all(servers[i] != servers[i + 1] for i in range(3)) and set(servers) == {"app", "app2"} else servers)' "$out" &&
		ok "$2: /health through nginx on 8080 alternates app and app2" ||
		fail "$2: /health through nginx on 8080 alternates app and app2" "$out"
}

# quota_holds USER NAME PIDS...: 12 s of load through nginx on 8080 (the cheapest route, so the
# servers, not PostgreSQL, are what is busy); each server's CPU seconds (utime + stime from
# /proc/PID/stat) over the 8 s in the middle, per wall second: at most 0.40 with a quota of
# 0.25 (without one a server takes a whole core), and more than 0.05 (it was busy).
quota_holds() {
	local user=$1 name=$2 out
	shift 2
	# shellcheck disable=SC2016 # expanded in the guest
	out=$(as "$user" 120 'pids="'"$*"'"
cpu() { local p t=0; for p in $pids; do t="$t $(awk "{print \$14 + \$15}" /proc/$p/stat)"; done; echo "$t"; }
timeout 60 build/catalog-loadtest -c 32 -t 1 -d 12s --path /health/live http://127.0.0.1:8080/ >/tmp/load.$$ 2>&1 &
sleep 2; a=$(cpu); t0=$(date +%s.%N); sleep 8; b=$(cpu); t1=$(date +%s.%N); wait
echo "$a|$b|$t0|$t1|$(getconf CLK_TCK)|$(grep -m1 -i "requests" /tmp/load.$$)"; rm -f /tmp/load.$$' 2>&1) || true
	python3 -c '
import sys
a, b, t0, t1, hz, load = sys.argv[1].strip().splitlines()[-1].split("|")
wall = float(t1) - float(t0)
rates = [(float(y) - float(x)) / float(hz) / wall for x, y in zip(a.split()[1:], b.split()[1:])]
print(" ".join("%.2f" % r for r in rates), "CPU s per s;", load.strip())
sys.exit(0 if len(rates) == int(sys.argv[2]) and all(0.05 < r <= 0.40 for r in rates) else 1)' "$out" "$#" >"$work/quota" 2>&1 &&
		ok "$name: under 12 s of load through 8080 each server stays near its quota of 0.25 CPU: $(<"$work/quota")" ||
		fail "$name: under load each server uses 0.05 to 0.40 CPU s per s (quota 0.25)" "$(<"$work/quota")" "$out"
}

# scale_quota USER NAME MECHANISM: SERVER_CPUS=0.25 make scale SERVERS=2, make status, cpu.max
# of each server's own cgroup, alternation, the load check, make down.  MECHANISM: the lab's
# name for it in make scale's and make status's lines (systemd, cgroup v2).
scale_quota() {
	local user=$1 name=$2 mech=$3 short
	short=${mech/ /-}
	if ! as "$user" 600 SERVER_CPUS=0.25 make scale SERVERS=2 >"$work/$user-scale.log" 2>&1; then
		fail "$name: SERVER_CPUS=0.25 make scale SERVERS=2" "$(tail -n 20 "$work/$user-scale.log")"
		as "$user" 300 make down >/dev/null 2>&1 || true
		return 0
	fi
	grep -q "0.25 CPUs ($mech)" "$work/$user-scale.log" && ! grep -q 'no CPU quota' "$work/$user-scale.log" &&
		ok "$name: SERVER_CPUS=0.25 make scale SERVERS=2 starts each server with a quota ($mech)" ||
		fail "$name: make scale says each server got a quota through $mech" "$(grep -i 'cpu\|cgroup\|started' "$work/$user-scale.log")"
	as "$user" 60 make status >"$work/$user-status.log" 2>&1 || true
	[[ $(grep -c "limit $short " "$work/$user-status.log") == 2 ]] && grep -q "^cpu limit *app2: " "$work/$user-status.log" &&
		ok "$name: make status shows $short for both servers: $(grep -m1 '^cpu limit' "$work/$user-status.log" | tr -s ' ')" ||
		fail "$name: make status shows the mechanism ($short) of each server" "$(cat "$work/$user-status.log")"
	local pids=() servers=() id pid line
	# Read whole first: the ssh calls in the loop would read the rest of a piped list.
	mapfile -t servers < <(server_pids "$user")
	for line in "${servers[@]}"; do
		read -r id pid <<<"$line"
		pids+=("$pid")
		# shellcheck disable=SC2016 # expanded in the guest
		line=$(guest root 30 'g=$(sed -n "s/^0:://p" /proc/'"$pid"'/cgroup); echo "$g $(cat /sys/fs/cgroup$g/cpu.max)"' 2>&1) || true
		[[ $line == *" 25000 100000" ]] &&
			ok "$name: $id's own cgroup has cpu.max 25000 100000: $line" ||
			fail "$name: $id's cgroup cpu.max reads 25000 100000" "$line"
		case $mech in
		systemd) [[ $line == /user.slice/user-1000.slice/user@1000.service/*.scope\ * ]] ;;
		*) [[ $line == "/catalog/$id "* ]] ;;
		esac && ok "$name: $id runs in ${line%% *}" || fail "$name: $id runs in the expected group ($mech)" "$line"
	done
	((${#pids[@]} == 2)) || fail "$name: make status lists two servers" "$(cat "$work/$user-status.log")"
	alternates "$user" "$name"
	((${#pids[@]} == 2)) && quota_holds "$user" "$name" "${pids[@]}"
	if as "$user" 300 make down >"$work/$user-down.log" 2>&1; then
		local left
		left=$(as "$user" 30 'curl -fsS --max-time 3 localhost:8080/health || curl -fsS --max-time 3 localhost:3000/health || echo stopped' 2>&1) || true
		[[ $left == *stopped* ]] && ok "$name: make down, nothing answers on 3000 or 8080 after it" ||
			fail "$name: make down left something answering" "$left"
	else
		fail "$name: make down" "$(tail -n 10 "$work/$user-down.log")"
	fi
}

# lab_packages: the package the guest disk leaves out for the sudo section, installed from its
# .deb unless a section before installed it (the other sections' make up has nothing to install:
# plain has no sudo; and the sudo section's own, when the guest cannot reach the mirror).
lab_packages() {
	guest root 120 "dpkg -s $left_out >/dev/null 2>&1 || dpkg -i /root/${left_out}_*.deb" >/dev/null 2>&1 ||
		fail "$left_out from /root in the guest (dpkg -i)"
}

# --- sections --------------------------------------------------------------------------------
section_sudo() {
	local name="sudo (learner)" out
	put_checkout learner /home/learner/catalog
	out=$(guest learner 30 "id -un; sudo -n true && echo sudo; dpkg-query -W -f='\${Status}' $left_out 2>/dev/null | grep -q 'ok installed' || echo missing" 2>&1) || true
	[[ $out == *learner*sudo*missing* ]] && ok "$name: user learner with passwordless sudo; $left_out (a lab package) is not installed" ||
		fail "$name: the account and the missing package" "$out"
	if ! guest learner 30 curl -fsS --max-time 20 -o /dev/null "${mirror%/}/dists/$suite/Release" 2>"$work/mirror.err"; then
		say "the guest cannot reach $mirror ($(<"$work/mirror.err")): the sudo apt-get path is left to make test-containers' lab-distros section; $left_out from its .deb instead"
		lab_packages
		make_up learner "$name"
		return 0
	fi
	make_up learner "$name" || return 0
	grep -q "installing $left_out with sudo apt-get" "$work/learner-up.log" &&
		ok "$name: make up says it installs the missing package with sudo apt-get: $(grep -m1 'with sudo apt-get' "$work/learner-up.log")" ||
		fail "$name: make up announces sudo apt-get install" "$(head -n 10 "$work/learner-up.log")"
	check "$name: $left_out is installed afterwards (from Debian's mirror through the guest's relay)" \
		guest learner 30 "dpkg-query -W -f='\${Status} \${Version}\n' $left_out | grep 'ok installed'"
	out=$(guest learner 30 curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: /health on 3000: $out" || fail "$name: /health on 3000" "$out"
}

section_scope() {
	local name="scope (learner)" out
	guest root 30 test -x /home/learner/catalog/build/catalog-server || {
		put_checkout learner /home/learner/catalog
	}
	lab_packages
	# What a user checks first: cgroup v2, a user manager, the cpu controller delegated to it.
	# shellcheck disable=SC2016 # expanded in the guest
	out=$(guest learner 30 'stat -fc %T /sys/fs/cgroup; echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"; systemctl --user is-system-running; cat /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers' 2>&1) || true
	[[ $out == cgroup2fs*XDG_RUNTIME_DIR=/run/user/1000*running*cpu* ]] &&
		ok "$name: cgroup v2, a logind session, the user manager running with the cpu controller delegated (${out//$'\n'/; })" ||
		fail "$name: cgroup v2 with a delegated cpu controller" "$out"
	make_up learner "$name" || return 0
	scale_quota learner "$name" systemd
}

section_root() {
	local name="root" out
	# Not in /root (0700, closed to the postgres user): a clone there is test_lab_root_home's.
	put_checkout root /srv/catalog
	lab_packages
	make_up root "$name" || return 0
	scale_quota root "$name" "cgroup v2"
	out=$(guest root 30 'ls -d /sys/fs/cgroup/catalog/app /sys/fs/cgroup/catalog/app2 2>/dev/null || echo removed' 2>&1) || true
	[[ $out == removed ]] && ok "$name: make down removes the servers' groups" ||
		fail "$name: the servers' groups are removed after make down" "$out"
}

section_pinning() {
	local name="pinning (plain, no session)" out
	put_checkout plain /home/plain/catalog
	lab_packages
	make_up plain "$name" || return 0
	if as plain 600 SERVER_CPUS=0.25 make scale SERVERS=2 >"$work/plain-scale.log" 2>&1; then
		out=$(grep -m1 'no CPU quota can be set' "$work/plain-scale.log" || true)
		[[ $out == *"no systemd user instance"* && $out == *pinning* ]] &&
			ok "$name: make scale says no quota can be set (no systemd user instance) and pins: ${out:0:160}..." ||
			fail "$name: make scale says it pins, and why" "$(grep -i 'cpu\|cgroup\|quota' "$work/plain-scale.log")"
		as plain 60 make status >"$work/plain-status.log" 2>&1 || true
		[[ $(grep -c 'limit pinned:' "$work/plain-status.log") == 2 ]] &&
			ok "$name: make status shows both servers pinned" ||
			fail "$name: make status shows pinning" "$(cat "$work/plain-status.log")"
		alternates plain "$name"
	else
		fail "$name: SERVER_CPUS=0.25 make scale SERVERS=2" "$(tail -n 15 "$work/plain-scale.log")"
	fi
	as plain 300 make down >"$work/plain-down.log" 2>&1 && ok "$name: make down" ||
		fail "$name: make down" "$(tail -n 10 "$work/plain-down.log")"
}
