#!/usr/bin/env bash
# test_scenario.sh: SCENARIO.md's walkthrough run against a throwaway lab, so it cannot rot.
#
# The convention (SCENARIO.md says it too): a fenced code block whose info string is exactly
# `bash test` is a tested block.  Each tested block runs, in document order, as one bash
# script (`bash -eo pipefail BLOCK`, from the repository root) and must exit 0; a failing
# line fails its block.  Plain `bash` blocks are documentation only.
#
# The lab runs on free loopback ports in a temporary LAB_DIR with a small seed (as
# test_lab.sh does), so before running, each block is rewritten with two simple rules:
#   1. a default port standing alone as a number becomes this test's free port:
#        3000 -> LAB_APP_PORT, 8080 -> LAB_LB_PORT, 9090 -> LAB_PROM_PORT, 5432 -> LAB_PG_PORT,
#        and the hand-built layout of step 4a: 3101, 3102 (servers), 8081 (its nginx);
#   2. a path starting with `var/` or `$PWD/var/` (the lab's state) starts with $LAB_DIR/.
# Load runs are short (LOAD_DURATION=1s, LOAD_CONNECTIONS=8); the seed is 200 products and
# 2,000 orders.  It also checks that every `make` target named in SCENARIO.md and solution/
# exists in the Makefile, that every question has an answer in solution/ANSWERS.md, and the
# configs the scenario points to (nginx -t, docker-compose config).
# Prints "scenario: N passed, N failed".
# Everything it starts is stopped on exit (scripts/lab.sh down with the same environment, and
# the hand-built servers and nginx by their PID files).
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh
doc=${SCENARIO_DOC:-$repo/SCENARIO.md} # SCENARIO_DOC: another copy, to check this test itself
answers=$repo/solution/ANSWERS.md

report_start scenario

# ---- static checks: questions, answers, make targets, solution configs --------------------

[[ -f $doc ]] || {
	fail "SCENARIO.md exists"
	finish
}

mapfile -t questions < <(grep -oE '^\*\*Q[0-9]+:' "$doc" | grep -oE '[0-9]+')
count=${#questions[@]}
sequence=$(seq -s ' ' 1 "$count")
if ((count >= 11)) && [[ ${questions[*]} == "$sequence" ]]; then
	ok "SCENARIO.md: $count questions, labelled **Q1: to **Q$count: in order"
else
	fail "SCENARIO.md: at least 11 questions labelled **Q1:, **Q2: ... in order" "found: ${questions[*]}"
fi
if [[ -f $answers ]]; then
	missing=()
	for n in "${questions[@]}"; do
		grep -qE "^\*\*Q$n:" "$answers" || missing+=("Q$n")
	done
	((${#missing[@]} == 0)) && ok "ANSWERS.md: an answer for every question" ||
		fail "ANSWERS.md: an answer for every question" "missing: ${missing[*]}"
	# Every answer names a command that reproduces its figure (a `make ...`, or another command in backticks).
	unbacked=$(python3 - "$answers" <<'PYTHON'
import re, sys
text = open(sys.argv[1]).read()
parts = re.split(r"(?m)^(?=\*\*Q[0-9]+:)", text)
bad = []
for part in parts:
    m = re.match(r"\*\*(Q[0-9]+):", part)
    if not m:
        continue
    if not re.search(r"Reproduce:(?:(?!\nMeasured:).)*?`[^`]+`", part, re.S):
        bad.append(m.group(1))
print(" ".join(bad))
PYTHON
)
	[[ -z $unbacked ]] && ok "ANSWERS.md: every answer has a 'Reproduce:' line naming a command" ||
		fail "ANSWERS.md: every answer has a 'Reproduce:' line naming a command" "without: $unbacked"
else
	fail "solution/ANSWERS.md exists"
fi

# make targets named in code (fenced blocks and `inline` spans) of SCENARIO.md and solution/.
mapfile -t named < <(python3 - "$doc" solution <<'PYTHON'
import os, re, sys
texts = []
for path in sys.argv[1:]:
    files = [path] if os.path.isfile(path) else [
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    for name in files:
        try:
            texts.append(open(name, encoding="utf-8").read())
        except (UnicodeDecodeError, OSError):
            pass
code = []
for text in texts:
    code += re.findall(r"(?ms)^```[^\n]*\n(.*?)^```", text)
    code += re.findall(r"`([^`\n]+)`", text)
    code += re.findall(r"(?m)^#\s{2,}(.*)$", text)   # command examples in config comments
targets = set()
for chunk in code:
    for m in re.finditer(r"(?:^|[\s;&|(])make((?:\s+-[a-zA-Z]+)*(?:\s+[A-Z_]+=\S*)*)(?:\s+([a-z][a-z0-9_-]*))?", chunk):
        targets.add(m.group(2) or "all")
print("\n".join(sorted(targets)))
PYTHON
)
mapfile -t defined < <(sed -nE 's/^([a-zA-Z][a-zA-Z0-9_-]*):([^=]|$).*/\1/p' Makefile | sort -u)
unknown=()
for target in "${named[@]}"; do
	[[ -z $target ]] && continue
	printf '%s\n' "${defined[@]}" | grep -qx "$target" || unknown+=("$target")
done
if ((${#named[@]} > 0 && ${#unknown[@]} == 0)); then
	ok "every make target named in SCENARIO.md and solution/ exists in the Makefile (${named[*]})"
else
	fail "every make target named in SCENARIO.md and solution/ exists in the Makefile" "unknown: ${unknown[*]:-none found at all}"
fi

work=$(mktemp -d /tmp/catalog-scenario-work.XXXXXX)
# nginx_check NAME CONF: nginx -t on a copy in a private prefix.
nginx_check() {
	local name=$1 conf=$2 dir out
	dir=$(mktemp -d "$work/nginx.XXXXXX")
	mkdir -p "$dir/logs"
	cp "$conf" "$dir/nginx.conf"
	local -a pid_option=(-g "pid $dir/nginx.pid;")
	grep -qE '^[[:space:]]*pid[[:space:]]' "$dir/nginx.conf" && pid_option=()
	if out=$("$nginx" -t -q -e stderr -p "$dir" -c "$dir/nginx.conf" "${pid_option[@]}" 2>&1); then
		ok "$name"
	else
		fail "$name" "$out"
	fi
}

# ---- the lab's environment -----------------------------------------------------------------

lab_env_setup scenario 3
hand1_port=$lab_extra_port hand2_port=$((lab_extra_port + 1)) hand_lb_port=$((lab_extra_port + 2))
export LOAD_DURATION=1s LOAD_CONNECTIONS=8 LOAD_THREADS=2 CEILING_STAGE=1s CEILING_MAX=4s

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local file
	if [[ -f $LAB_DIR/hand/logs/nginx.pid ]]; then
		kill -QUIT "$(cat "$LAB_DIR/hand/logs/nginx.pid")" 2>/dev/null || true
	fi
	for file in "$LAB_DIR"/hand/hand*.pid; do
		if [[ -f $file ]]; then kill -TERM "$(cat "$file")" 2>/dev/null || true; fi
	done
	lab_cleanup
	rm -rf "$work"
}
trap cleanup EXIT

# The configs the scenario points to: the Docker layout's nginx with its hosts on loopback and
# its listen port free; the hand-built one with the same port rules as the blocks.
# The Compose scaled layout's nginx: BALANCE rendered at start by nginx-balance.sh into the
# file its nginx.conf includes (the one-line change of Step 5b); each method passes nginx -t,
# any other value stops it.
for balance in round_robin least_conn p2c; do
	BALANCE=$balance NGINX_BALANCE_FILE="$work/balance-$balance.conf" deploy/compose/nginx-balance.sh >/dev/null
	sed -E "s/server app:3000/server 127.0.0.1:$hand1_port/; s/server app2:3000/server 127.0.0.1:$hand2_port/; s/listen 80;/listen 127.0.0.1:$hand_lb_port;/; s|include /etc/nginx/balance.conf;|include $work/balance-$balance.conf;|" \
		deploy/compose/nginx.conf >"$work/compose-$balance.conf"
	nginx_check "nginx -t deploy/compose/nginx.conf with BALANCE=$balance (nginx-balance.sh's line included)" \
		"$work/compose-$balance.conf"
done
if ! BALANCE=random NGINX_BALANCE_FILE="$work/balance-random.conf" deploy/compose/nginx-balance.sh >/dev/null 2>&1 &&
	[[ ! -e $work/balance-random.conf ]]; then
	ok "deploy/compose/nginx-balance.sh: BALANCE=random stops nginx's start"
else
	fail "deploy/compose/nginx-balance.sh: BALANCE=random stops nginx's start"
fi

# metrics_hidden NAME CONF PORT: nginx started on a copy of CONF answers /metrics 404 on PORT
# (Prometheus scrapes each server directly; the public port does not hand the metrics out).
metrics_hidden() {
	local name=$1 conf=$2 port=$3 dir code
	dir=$(mktemp -d "$work/nginx.XXXXXX")
	mkdir -p "$dir/logs"
	cp "$conf" "$dir/nginx.conf"
	local -a pid_option=(-g "pid $dir/nginx.pid;")
	grep -qE '^[[:space:]]*pid[[:space:]]' "$dir/nginx.conf" && pid_option=()
	# Its stdout a file of this account's: deploy/compose/nginx.conf logs to /dev/stdout, which nginx
	# reopens (a pipe of another account's cannot be reopened).
	if ! "$nginx" -q -e stderr -p "$dir" -c "$dir/nginx.conf" "${pid_option[@]}" >"$dir/stdout.log" 2>"$dir/start.err"; then
		fail "$name" "nginx did not start: $(cat "$dir/start.err")"
		return 0
	fi
	code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$port/metrics" || true)
	"$nginx" -q -e stderr -p "$dir" -c "$dir/nginx.conf" "${pid_option[@]}" -s quit 2>/dev/null || true
	[[ $code == 404 ]] && ok "$name" || fail "$name" "GET /metrics answered $code"
}
metrics_hidden "deploy/compose/nginx.conf: /metrics answers 404 on the public port" "$work/compose-round_robin.conf" "$hand_lb_port"

# rewrite FILE: applies the two rules of the header to FILE in place.
rewrite() {
	PORT_MAP="3000=$LAB_APP_PORT 8080=$LAB_LB_PORT 9090=$LAB_PROM_PORT 5432=$LAB_PG_PORT 3101=$hand1_port 3102=$hand2_port 8081=$hand_lb_port" \
		perl -pi -e '
			BEGIN { %map = map { split /=/ } split / /, $ENV{PORT_MAP} }
			s/(?<![0-9])(3000|8080|9090|5432|3101|3102|8081)(?![0-9])/$map{$1}/g;
			s{\$PWD/var/}{$ENV{LAB_DIR}/}g;
			s{(^|[\s"'"'"'=>(])var/}{$1$ENV{LAB_DIR}/}g;
		' "$1"
}
cp solution/nginx.hand.conf "$work/nginx.hand.conf"
rewrite "$work/nginx.hand.conf"
nginx_check "nginx -t solution/nginx.hand.conf (ports of this test)" "$work/nginx.hand.conf"
metrics_hidden "solution/nginx.hand.conf: /metrics answers 404 on the public port" "$work/nginx.hand.conf" "$hand_lb_port"

if command -v docker-compose >/dev/null; then
	# The layout needs Grafana's admin password (docs/deploy.md); its bindings and password are
	# deploy_check.sh's.
	if out=$(GRAFANA_ADMIN_PASSWORD=scenario-check docker-compose -f deploy/compose/docker-compose.scaled.yml config 2>&1); then
		facts=$(python3 -c '
import sys, yaml
c = yaml.safe_load(sys.stdin)["services"]
pools = [int(c[s]["environment"]["DB_POOL_MAX"]) for s in ("app", "app2")]
print("ok" if "ports" not in c["app"] and "ports" not in c["app2"] and sum(pools) <= 10
      and any(str(p.get("published")) == "8080" if isinstance(p, dict)
              else str(p).split("/")[0].rsplit(":", 2)[-2] == "8080"
              for p in c["nginx"]["ports"]) else "bad: pools %s, nginx ports %s" % (pools, c["nginx"].get("ports")))' <<<"$out" 2>&1)
		[[ $facts == ok ]] &&
			ok "deploy/compose/docker-compose.scaled.yml: valid; app and app2 unpublished, pools within 10, nginx on 8080" ||
			fail "deploy/compose/docker-compose.scaled.yml: the scaled layout's facts" "$facts"
	else
		fail "deploy/compose/docker-compose.scaled.yml: docker-compose config" "$out"
	fi
else
	fail "docker-compose is installed (Debian package docker-compose) to check deploy/compose/docker-compose.scaled.yml"
fi

# ---- the walkthrough's tested blocks --------------------------------------------------------

for program in catalog-server catalog-db catalog-loadtest; do
	[[ -x $CATALOG_BUILD/$program ]] || fail "build: $CATALOG_BUILD/$program exists (run make)"
done

# Split SCENARIO.md's tested blocks into block-NN.sh files.
mkdir -p "$work/blocks"
awk -v dir="$work/blocks" '
	/^```bash test[[:space:]]*$/ { n++; file = sprintf("%s/block-%02d.sh", dir, n); inside = 1; next }
	inside && /^```[[:space:]]*$/ { inside = 0; close(file); next }
	inside { print > file }
' "$doc"
mapfile -t blocks < <(find "$work/blocks" -name 'block-*.sh' | sort)
((${#blocks[@]} >= 5)) && ok "SCENARIO.md: ${#blocks[@]} blocks marked bash test" ||
	fail "SCENARIO.md: at least 5 blocks marked bash test" "found ${#blocks[@]}"

start=$SECONDS
for block in "${blocks[@]}"; do
	rewrite "$block"
	name="block $(basename "$block" .sh | cut -d- -f2): $(grep -m1 -v '^[[:space:]]*$' "$block" | cut -c1-70)"
	rc=0
	timeout --kill-after=5 120 bash -eo pipefail "$block" >"$block.log" 2>&1 </dev/null || rc=$?
	if ((rc == 0)); then
		ok "$name"
	else
		fail "$name (exit $rc)" "---- the block as run:" "$(sed 's/^/     | /' "$block")" \
			"---- its last output:" "$(tail -n 25 "$block.log" | sed 's/^/     > /')"
	fi
done
echo "     (the blocks took $((SECONDS - start)) s)"

# After the walkthrough's last block nothing of the hand-built layout may be left running
# (a server finishes its requests in flight first: give it a few seconds).
for ((tries = 0; tries < 50; tries++)); do
	busy=0
	for file in "$LAB_DIR"/hand/hand*.pid "$LAB_DIR/hand/logs/nginx.pid"; do
		[[ -f $file ]] && alive "$(cat "$file")" && busy=1
	done
	((busy)) || break
	sleep 0.1
done
left=()
for file in "$LAB_DIR"/hand/hand*.pid "$LAB_DIR/hand/logs/nginx.pid"; do
	[[ -f $file ]] || continue
	pid=$(cat "$file")
	if alive "$pid"; then left+=("$pid"); fi
done
((${#left[@]} == 0)) && ok "the walkthrough stops the servers and nginx it starts by hand" ||
	fail "the walkthrough stops the servers and nginx it starts by hand" "still running: ${left[*]}"

finish
