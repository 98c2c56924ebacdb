#!/usr/bin/env bash
# test_lab_sweep.sh: make ceiling and make sweep on a throwaway lab (lab_env.sh), with short
# stages: that they run, write their files with the fields they promise, say when the machine
# was busy, and leave the lab in the layout it had; not their figures (timing belongs in make
# bench).  make compare reads the ceiling and the sweep beside a run without breaking.
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh

report_start lab_sweep

need_build

lab_env_setup sweep
trap lab_cleanup EXIT
export CEILING_STAGE=1s CEILING_MAX=6s LOAD_CONNECTIONS=8 LOAD_THREADS=1 LOAD_DURATION=1s MIX=browse

out=$("$lab" up 2>&1) || fail "up succeeds" "$out"
record_pids

# ---- make ceiling ----------------------------------------------------------------------------
rc=0
out=$("$lab" ceiling 2>&1) || rc=$?
record_pids
result=$LAB_DIR/results/1-server-browse-ceiling.json
fields=$(json_field "$result" '"%s %s %s %s %s %s %s" % (r["kind"], r["layout"], r["mix"], r["balance"], r["report_mode"], r["server_cpus"] or "-", type(r["ceiling_rps"]).__name__ in ("int", "float"))' 2>/dev/null || true)
((rc == 0 || rc == 3)) && [[ $fields == "ceiling 1-server browse round_robin live - True" ]] &&
	ok "ceiling: results/1-server-browse-ceiling.json, kind ceiling, with the layout's fields ($fields)" ||
	fail "ceiling: results/1-server-browse-ceiling.json with the layout's fields" "exit $rc, fields: $fields" "$out"
[[ $out == *"busy before make ceiling started"* ]] &&
	ok "ceiling: says how busy the machine was before it started" ||
	fail "ceiling: says how busy the machine was before it started" "$out"
LOAD_DURATION=1s "$lab" loadtest >/dev/null 2>&1 || true

# ---- make sweep on two counts ------------------------------------------------------------------
rc=0
out=$(SERVER_CPUS=0.25 "$lab" sweep 1 2 2>&1) || rc=$?
record_pids
sweep=$LAB_DIR/results/sweep-browse.json
check=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
assert s["kind"] == "sweep" and s["mix"] == "browse", (s["kind"], s["mix"])
assert [p["servers"] for p in s["points"]] == [1, 2], s["points"]
for p in s["points"]:
    for k in ("ceiling_rps", "server_cores", "db_cores"):
        assert isinstance(p[k], (int, float)) and p[k] >= 0, (k, p)
assert s["usl"] is None, s["usl"]
assert s["server_cpus"] == "0.25" and s["balance"] == "round_robin", s
print("ok")' "$sweep" 2>&1 || true)
((rc == 0)) && [[ $check == ok ]] &&
	ok "sweep 1 2: results/sweep-browse.json, kind sweep, two points (servers, ceiling_rps, server_cores, db_cores)" ||
	fail "sweep 1 2: results/sweep-browse.json with two points" "exit $rc: $check" "$out"
[[ $out == *"busy before make sweep started"* && $out == *"the USL fit needs three server counts"* &&
	$out == *"1: 1.00x"* && $out == *"speedup"*"efficiency"* ]] &&
	ok "sweep 1 2: says how busy the machine was, that the fit needs three counts, and the speedups" ||
	fail "sweep 1 2: busy share, the fit needs three, the speedups" "$out"
page=$LAB_DIR/results/sweep-browse.html
[[ -f $page ]] && grep -q "<svg" "$page" && grep -q "<circle" "$page" && ! grep -qE '(src|href)="(https?:)?//|<script' "$page" &&
	ok "sweep: an offline page draws the points (sweep-browse.html: inline SVG, no script, no network)" ||
	fail "sweep: an offline page draws the points" "$(ls "$LAB_DIR/results")"
ceilings=$(find "$LAB_DIR/results/sweep-browse" -name '*.json' -printf '%f ' 2>/dev/null || true)
[[ $ceilings == *"1-server-0.25cpu-browse-ceiling.json"* && $ceilings == *"2-servers-0.25cpu-browse-round_robin-ceiling.json"* ]] &&
	ok "sweep: each point's ceiling kept under results/sweep-browse/ ($ceilings)" ||
	fail "sweep: each point's ceiling kept under results/sweep-browse/" "$ceilings"
layout=$(lab_state '"%d %s %s" % (s["layout"]["servers"], s["layout"]["cpus"] or "-", s["layout"]["balance"])')
[[ $layout == "1 - round_robin" && $(server_records | wc -l) == 1 && $(health_server "http://127.0.0.1:$LAB_APP_PORT" 2>/dev/null) == app ]] &&
	ok "sweep: the lab is back in the layout it had (one server, no CPU limit, on the app port)" ||
	fail "sweep: the lab is back in the layout it had" "layout $layout; $(server_records)" "$out"

# ---- compare reads each kind for what it is ------------------------------------------------------
rc=0
out=$("$lab" compare 2>&1) || rc=$?
ceiling_rows=$(sed -n '/ceilings (the highest arrival rate within/,/^$/p' <<<"$out")
((rc == 0)) && [[ $out == *"sweep-browse (a sweep, browse mix): ceilings by servers 1: "*", 2: "* ]] &&
	grep -qE '^  a 1-server-browse +[0-9]+ ' <<<"$ceiling_rows" &&
	ok "compare: a run, a ceiling and a sweep side by side, each read for what it is" ||
	fail "compare: a run, a ceiling and a sweep side by side" "exit $rc" "$out"

finish
