#!/usr/bin/env bash
# test_dashboard.sh: the dashboards end to end: a lab of 2 servers (scripts/lab.sh) in a temporary
# LAB_DIR on free ports with a small seed and its exporters, a short load, then headless Chromium
# opens the built-in dashboard and every panel must show data for both servers; every PromQL
# expression of the Grafana dashboard must return data from the lab's Prometheus; the run's
# picture must be drawn.  Saves a screenshot as BUILD/dashboard.png.
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh
chromium=${CHROMIUM:-/usr/bin/chromium}

report_start dashboard

# ---- what the test needs --------------------------------------------------------------------
missing=()
for program in catalog-server catalog-db catalog-loadtest; do
	[[ -x $CATALOG_BUILD/$program ]] || missing+=("$CATALOG_BUILD/$program (run make)")
done
[[ -x $chromium ]] || missing+=("$chromium (Debian package chromium)")
for name in postgres-exporter process-exporter node-exporter; do
	[[ -x /usr/bin/prometheus-$name ]] || missing+=("/usr/bin/prometheus-$name (Debian package prometheus-$name)")
done
if ((${#missing[@]})); then
	fail "what the test needs is installed (scripts/install-deps.sh test)" "${missing[@]}"
	finish
fi

# The Grafana dashboard is generated from the page's panels.json: the two must not drift apart.
if out=$(python3 dashboard/grafana.py --check 2>&1); then
	ok "deploy/grafana/dashboards/catalog.json is what dashboard/panels.json gives"
else
	fail "deploy/grafana/dashboards/catalog.json is what dashboard/panels.json gives" "$out"
fi

lab_env_setup dashboard
lb=http://127.0.0.1:$LAB_LB_PORT
prom=http://127.0.0.1:$LAB_PROM_PORT
browser_profile=$(mktemp -d /tmp/catalog-dashboard-chromium.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	lab_cleanup
	rm -rf "$browser_profile"
}
trap cleanup EXIT

# ---- one server: nginx serves the dashboard too ----------------------------------------------
out=$("$lab" up 2>&1) || true
record_pids
if curl -fsS --max-time 5 "http://127.0.0.1:$LAB_APP_PORT/health" | grep -q '"server":"app"'; then
	ok "up: one server answers"
else
	fail "up: one server answers" "$out"
	finish
fi
running=()
for name in postgres-exporter process-exporter node-exporter; do
	pid=$(lab_state "s['pids']['$name']" || true)
	port=$(lab_state "s['ports']['$name']" || true)
	pid=${pid:-none} port=${port:-none}
	if [[ -r /proc/$pid/comm ]] && curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics" >/dev/null 2>&1; then
		running+=("$name")
	fi
done
((${#running[@]} == 3)) && ok "up: the three exporters run (PID files) and answer on loopback ports" ||
	fail "up: the three exporters run and answer" "running: ${running[*]}" "$out"
page=$(curl -fsS --max-time 5 -D "$LAB_DIR/headers" "$lb/dashboard/" 2>&1 || true)
[[ $page == *"dashboard.js"* ]] && grep -qi '^content-type: text/html' "$LAB_DIR/headers" &&
	ok "one server: the dashboard is served at /dashboard/ on the nginx port" ||
	fail "one server: the dashboard is served at /dashboard/ on the nginx port" "$page" "$out"
types=""
for file in dashboard.js dashboard.css vendor/uPlot.iife.min.js panels.json; do
	types+="$file=$(curl -fsS --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "$lb/dashboard/$file" 2>/dev/null) "
done
[[ $types == *"dashboard.js=200 application/javascript"*"dashboard.css=200 text/css"*"uPlot.iife.min.js=200 application/javascript"*"panels.json=200 application/json"* ]] &&
	ok "the page's script, style, chart library and panels are served locally with their types" ||
	fail "the page's files are served locally with their types" "$types"
# No network: every src/href of the page is relative (nothing from another host).
external=$(grep -oE '(src|href)="[^"]*"' "$CATALOG_BUILD/dashboard/index.html" | grep -E '"(https?:)?//' || true)
[[ -z $external && -s $CATALOG_BUILD/dashboard/vendor/uPlot.iife.min.js ]] &&
	ok "the page loads nothing from another host (uPlot vendored from npm into the served folder)" ||
	fail "the page loads nothing from another host" "$external"

# ---- two servers, a short load -----------------------------------------------------------------
# Grafana marks a layout change where lab_layout_servers changes, so Prometheus must have seen
# the one-server value first (it scrapes every 5 s).
for ((tries = 0; tries < 30; tries++)); do
	curl -fsS --max-time 3 "$prom/api/v1/query?query=lab_layout_servers" 2>/dev/null | grep -q '"value":\[[0-9.]*,"1"\]' && break
	sleep 0.5
done
# With one read replica, so the replica's panels (its CPU, its replay lag) have data too.
out=$(DB_REPLICAS=1 "$lab" scale 2 2>&1) || fail "scale 2 (with a read replica) succeeds" "$out"
record_pids
events=$(curl -fsS --max-time 5 "$lb/dashboard/events.json" 2>/dev/null || true)
count=$(python3 -c 'import json,sys; e=json.loads(sys.argv[1])["events"]; print("%d %d" % (len(e), e[-1]["servers"]))' "$events" 2>/dev/null || echo "0 0")
[[ $count == "2 2" ]] && ok "scale 2: the layout change is recorded for the page (events.json: 1, then 2 servers)" ||
	fail "scale 2: the layout change is recorded for the page" "$events"

load_start=$(date +%s)
# 15 s: with Prometheus scraping every 5 s, at least one whole interval falls inside the run even
# when a scrape of a busy machine comes late or times out (a 10 s run then drew a half-height
# hump).
load_out=$(LOAD_DURATION=15s LOAD_CONNECTIONS=20 LOAD_THREADS=2 "$lab" loadtest 2>&1) || true
load_end=$(date +%s)
requests=$(json_field "$LAB_DIR/results/2-servers-scenario-round_robin.json" 'r["requests"]' 2>/dev/null || echo 0)
((requests > 0)) && ok "a 15 s load through nginx ($requests requests)" || fail "a 15 s load through nginx" "$load_out"

# ---- what the panels show of that run (their own expressions, from panels.json) ----------------
read -r -d '' check_panels <<'PYTHON' || true
import json, math, sys, urllib.parse, urllib.request
prom, panels_path, result_path, start, end = sys.argv[1:6]
panels = {p["id"]: p for p in json.load(open(panels_path))["panels"]}
result = json.load(open(result_path))
def values(expr):
    url = "%s/api/v1/query_range?%s" % (prom, urllib.parse.urlencode(
        {"query": expr, "start": start, "end": int(end) + 6, "step": 1}))
    body = json.load(urllib.request.urlopen(url, timeout=10))
    return [float(v) for one in body["data"]["result"] for _, v in one["values"] if math.isfinite(float(v))]
problems = []
# The plateau: the request-rate panel's total reaches the run's own rate (a 30 s rate window
# over a 15 s run would top out at half of it: a triangle, not a plateau).
total = values(panels["request-rate"]["queries"][0]["expr"])
peak = max(total or [0])
if peak < 0.7 * result["rps"]:
    problems.append("request-rate peaks at %.1f req/s, the run had %.1f: no plateau" % (peak, result["rps"]))
# Pool acquire wait p99 can be no longer than the slowest request of the run.
waits = values(panels["pool-wait-p99"]["queries"][0]["expr"])
slowest = result["latency_ms"]["max"]
if waits and max(waits) > slowest:
    problems.append("acquire-wait p99 %.1f ms > the slowest request, %.1f ms" % (max(waits), slowest))
print("request-rate peak %.1f req/s (run %.1f); acquire-wait p99 max %s ms, slowest request %.1f ms"
      % (peak, result["rps"], "%.1f" % max(waits) if waits else "none", slowest))
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PYTHON
if out=$(python3 -c "$check_panels" "$prom" dashboard/panels.json "$LAB_DIR/results/2-servers-scenario-round_robin.json" "$load_start" "$load_end" 2>&1); then
	ok "the panels show the run: a plateau at its rate, acquire-wait p99 within the slowest request ($out)"
else
	fail "the panels show the run: a plateau at its rate, acquire-wait p99 within the slowest request" "$out"
fi

# ---- the run's picture --------------------------------------------------------------------------
picture=$LAB_DIR/results/2-servers-scenario-round_robin.html
read -r -d '' check_picture <<'PYTHON' || true
import json, re, sys
run = json.load(open(sys.argv[1]))
page = open(sys.argv[2]).read()
rps = run["series"]["rps"]
# Right after make scale: the run is whole from its first second (the load generator's own
# series; Prometheus had no history of the new server yet), nothing before 0 s.
assert len(rps) >= 10 and all(v > 0 for _, v in rps[:10]), "a second of the run without answers: %s" % rps
assert min(x for x, _ in rps) >= 0, "points before the run's start"
cpu = sorted(k for k in run["series"] if k.startswith("cpu "))
p99 = [v for _, v in run["series"]["p99_ms"] if v is not None]
assert cpu == ["cpu PostgreSQL", "cpu app", "cpu app2"], cpu
assert len(p99) >= 10, "no p99 each second"
assert page.count("<svg") >= 2 and "<polyline" in page, "no chart drawn"
assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page, "not self-contained"
PYTHON
if [[ -f $picture ]] && python3 -c "$check_picture" "$LAB_DIR/results/2-servers-scenario-round_robin.series.json" "$picture"; then
	ok "the run's picture: every second of the run from the load generator (right after scale 2), CPU of app, app2 and PostgreSQL, self-contained HTML"
else
	fail "the run's picture: every second of the run, CPU of both servers and PostgreSQL, self-contained HTML" "$load_out"
fi

# ---- every expression of the Grafana dashboard returns data ------------------------------------
read -r -d '' check_grafana <<'PYTHON' || true
import json, math, sys, time, urllib.parse, urllib.request
prom, path, during = sys.argv[1], sys.argv[2], sys.argv[3]
dashboard = json.load(open(path))
def get(api, **params):
    url = "%s/api/v1/%s?%s" % (prom, api, urllib.parse.urlencode(params))
    body = json.load(urllib.request.urlopen(url, timeout=10))
    assert body["status"] == "success", body
    return body["data"]["result"]
problems, checked = [], 0
for panel in dashboard["panels"]:
    servers = set()
    for target in panel["targets"]:
        checked += 1
        # At a moment of the load: the panels' rates are over the last scrape interval, so
        # after the run they are 0 and a latency quantile has nothing to read.
        result = get("query", query=target["expr"], time=during)
        values = [float(r["value"][1]) for r in result]
        if not any(math.isfinite(v) for v in values):
            problems.append("%s: %s -> no data (%d series)" % (panel["title"], target["expr"], len(result)))
        servers |= {r["metric"]["server"] for r in result if "server" in r["metric"]}
        if target["legendFormat"] == "{{server}}":
            # One line per server: after make scale the old app (another port) and the new one
            # must not be two series both labelled app over the last minutes.
            now = time.time()
            lines = get("query_range", query=target["expr"], start=now - 240, end=now, step=5)
            names = [r["metric"].get("server", "") for r in lines]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                problems.append("%s: %s -> more than one series for %s" % (panel["title"], target["expr"], twice))
    per_server = any("server" in t["legendFormat"] for t in panel["targets"])
    if per_server and not {"app", "app2"} <= servers:
        problems.append("%s: servers %s, want app and app2" % (panel["title"], sorted(servers)))
now = time.time()
for annotation in dashboard["annotations"]["list"]:
    if "expr" in annotation:
        checked += 1
        result = get("query_range", query=annotation["expr"], start=now - 300, end=now, step=5)
        if not result:
            problems.append("annotation %s: %s -> no data" % (annotation["name"], annotation["expr"]))
print("%d expressions checked" % checked)
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PYTHON
if out=$(python3 -c "$check_grafana" "$prom" deploy/grafana/dashboards/catalog.json "$((load_end - 3))" 2>&1); then
	ok "every PromQL expression of the Grafana dashboard returns data, per-server panels for app and app2 (${out%% *})"
else
	fail "every PromQL expression of the Grafana dashboard returns data" "$out"
fi

# ---- the built-in page in headless Chromium ----------------------------------------------------
browse() { # browse ARGS...: headless Chromium with the flags of the lab's notes, bounded in time
	timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$browser_profile" --virtual-time-budget=15000 "$@" 2>>"$LAB_DIR/chromium.log"
}
dom=$(browse --dump-dom "$lb/dashboard/?range=2" || true)
read -r -d '' check_page <<'PYTHON' || true
import re, sys
dom = sys.stdin.read()
body = re.search(r"<body([^>]*)>", dom)
assert body, "no <body> in the page"
def attributes(text):
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', text))
page = attributes(body.group(1))
problems = []
if int(page.get("loaded", "0")) < 1:
    problems.append("the page never finished a refresh: %s" % page)
if page.get("errors", "1") != "0":
    problems.append("the page reports failed queries: %s" % page)
if int(page.get("marks", "0")) < 1:
    problems.append("no layout-change mark in range: %s" % page)
# Readable marks: a short badge on each line (the servers after the change), what each was in
# one legend above the panels, never text stacked inside a chart.
badges = [b for b in page.get("mark-badges", "").split(",") if b]
if len(badges) != int(page.get("marks", "0")) or any(len(b) > 3 for b in badges):
    problems.append("mark badges %r for %s marks: want one short badge each" % (badges, page.get("marks")))
legend = re.search(r'<p id="marks"[^>]*>(.*?)</p>', dom, re.S)
items = re.findall(r'<span class="mark">', legend.group(1)) if legend else []
if len(items) != int(page.get("marks", "0")) or (legend and "2 servers" not in legend.group(1)):
    problems.append("the marks' legend lists %d of %s changes: %s" % (len(items), page.get("marks"),
                                                                        legend.group(1)[:300] if legend else "no #marks"))
rate_heading = re.search(r'id="panel-request-rate".*?<h2>(.*?)</h2>', dom, re.S)
if not rate_heading or "log scale" not in rate_heading.group(1):
    problems.append("request-rate is not on a log scale: %s" % (rate_heading.group(1) if rate_heading else "no panel"))
panels = re.findall(r'<section class="panel"([^>]*)>', dom)
if len(panels) < 10:
    problems.append("only %d panels" % len(panels))
for text in panels:
    panel = attributes(text)
    name = panel.get("panel", "?")
    if panel.get("state") != "ok" or int(panel.get("series", "0")) < 1 or int(panel.get("points", "0")) < 2:
        problems.append("%s: no data (%s)" % (name, panel))
    servers = panel.get("servers", "").split(",")
    if panel.get("per-server") == "1" and not {"app", "app2"} <= set(servers):
        problems.append("%s: servers %s, want app and app2" % (name, servers))
print("%d panels, %s marks" % (len(panels), page.get("marks")))
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PYTHON
if out=$(python3 -c "$check_page" <<<"$dom" 2>&1); then
	ok "Chromium: every panel of the built-in dashboard has data, per-server panels for app and app2, a scale mark (${out%%$'\n'*})"
else
	fail "Chromium: every panel of the built-in dashboard has data for both servers" "$out" "$(tail -n 5 "$LAB_DIR/chromium.log")"
fi
screenshot=$CATALOG_BUILD/dashboard.png
rm -f "$screenshot"
browse --hide-scrollbars --window-size=1400,2300 --screenshot="$screenshot" "$lb/dashboard/?range=2" >/dev/null || true
size=$(stat -c %s "$screenshot" 2>/dev/null || echo 0)
((size > 50000)) && ok "screenshot saved: $screenshot ($size bytes)" ||
	fail "screenshot saved: $screenshot" "size $size" "$(tail -n 5 "$LAB_DIR/chromium.log")"

# ---- the drawings of docs/ render (README.md and SCENARIO.md show them) -----------------------
small=()
for svg in docs/*.svg; do
	png=$LAB_DIR/$(basename "$svg" .svg).png
	browse --hide-scrollbars --window-size=940,500 --screenshot="$png" "file://$repo/$svg" >/dev/null || true
	size=$(stat -c %s "$png" 2>/dev/null || echo 0)
	((size > 20000)) || small+=("$svg: $size bytes")
done
((${#small[@]} == 0)) && ok "Chromium renders every drawing of docs/ (none blank)" ||
	fail "Chromium renders every drawing of docs/" "${small[@]}"

# ---- no system exporter service, and down stops everything -----------------------------------
system=$(pgrep -u prometheus -a 2>/dev/null || true)
[[ -z $system ]] && ok "no exporter runs as a system service (user prometheus)" ||
	fail "no exporter runs as a system service" "$system"
record_pids
out=$("$lab" down 2>&1) || fail "down succeeds" "$out"
mapfile -t left < <(pids_left)
busy=()
for port in $(seq "$lab_first_port" "$lab_last_port"); do port_busy "$port" && busy+=("$port"); done
((${#left[@]} == 0 && ${#busy[@]} == 0)) &&
	ok "down: none of the ${#all_pids[@]} processes (exporters included) is left, no port listens" ||
	fail "down: nothing left" "processes: ${left[*]}" "ports: ${busy[*]}"

finish
