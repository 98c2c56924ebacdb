"""Load tests against the lab, their comparison, and the unattended demo."""
import glob
import json
import os
import subprocess
import sys
import time

from lab import procs
from lab.procs import die, say, warn

MIXES = {
    "scenario": ["/products?category=electronics", "/products/1", "/report"],
    "browse": ["/products?category=electronics", "/products/1"],
}


def server_pids(lab):
    return [r["pid"] for r in lab.state["servers"]]


def cpu_limit_text(lab):
    """The servers' CPU limit in total: "1.0 = 2 x 0.5" (how enforced) or "none"."""
    servers, _, cpus = lab.layout()
    if not cpus:
        return "none"
    from decimal import Decimal
    total = format((Decimal(cpus) * servers).normalize(), "f")
    mechanisms = sorted({r.get("limit") for r in lab.state["servers"] if r.get("limit")})
    how = " by " + "/".join(mechanisms) if mechanisms else ""
    if mechanisms == ["pinning"]:
        how = " requested; pinned to whole cores instead, no quota"
    return "%s = %d x %s%s" % (total, servers, cpus, how)


def cmd_loadtest(lab, args):
    s = lab.settings
    s.mkdirs()
    mix = os.environ.get("MIX") or "scenario"
    if mix not in MIXES:
        die("MIX must be scenario or browse, got '%s'" % mix)
    paths = MIXES[mix]
    base = os.environ.get("BASE_URL") or lab.entry_point()
    name = os.environ.get("LOAD_NAME") or lab.layout_name()
    if mix != "scenario":
        name += "-" + mix
    result = os.path.join(s.results, name + ".json")
    connections = os.environ.get("LOAD_CONNECTIONS") or "100"
    duration = os.environ.get("LOAD_DURATION") or "30s"
    say("load test: %s, mix %s (%s), %s connections, %s; result in %s"
        % (base, mix, " ".join(paths), connections, duration, result))
    argv = [s.binary("catalog-loadtest"), "-c", connections, "-d", duration,
            "-t", os.environ.get("LOAD_THREADS") or "2", "--json", result, "--label", name]
    for path in paths:
        argv += ["--path", path]
    argv += (os.environ.get("LOADTEST_ARGS") or "").split() + [base]
    servers_before = procs.cpu_ticks(server_pids(lab))
    pg_before = procs.cpu_ticks(lab.postgres_pids())
    start = time.time()
    sys.stdout.flush()
    rc = subprocess.run(argv).returncode
    end = time.time()
    # Where the CPU went during the run: the servers' or PostgreSQL's, the scenario's question.
    hz = os.sysconf("SC_CLK_TCK")
    elapsed = max(end - start, 1e-9)
    server_cores = (procs.cpu_ticks(server_pids(lab)) - servers_before) / hz / elapsed
    pg_cores = (procs.cpu_ticks(lab.postgres_pids()) - pg_before) / hz / elapsed
    line = ("CPU during the run: API servers %.2f cores (limit %s), PostgreSQL %.2f cores; this machine has %d"
            % (server_cores, cpu_limit_text(lab), pg_cores, os.cpu_count()))
    print(line)
    with open(os.path.join(s.results, name + ".cpu"), "w") as f:
        f.write(line + "\n")
    verdict = ""
    try:
        with open(result) as f:
            verdict = (json.load(f).get("verdict") or {}).get("level", "")
    except (OSError, ValueError):
        pass
    if verdict in ("red", "yellow") and pg_cores > 1.5 * server_cores:
        say("the limit in this run is the database's, not the servers': PostgreSQL used %.2f cores, "
            "the API servers %.2f" % (pg_cores, server_cores))
    run_picture(lab, name, result, start, end)
    return rc


def run_picture(lab, name, result, start, end):
    """Keeps the run's series (NAME.series.json: the load generator's own second by second, the
    CPU from Prometheus) and draws them (NAME.html, self-contained).  Waits for the scrape after
    the run's end first, for the CPU of its last seconds."""
    s = lab.settings
    if not os.path.isfile(result):
        return
    prometheus = []
    if lab.prom_running():
        prometheus = ["--prometheus", "http://127.0.0.1:%d" % lab.port("prometheus")]
        wait = end + 6 - time.time()
        if wait > 0:
            time.sleep(wait)
    else:
        say("the picture of this run has no CPU: Prometheus is not running (make up starts it)")
    series = os.path.join(s.results, name + ".series.json")
    picture = os.path.join(s.repo, "scripts", "run-picture.py")
    ok = subprocess.run([sys.executable, picture, "fetch"] + prometheus +
                        ["--start", "%.3f" % start, "--end", "%.3f" % end, "--result", result,
                         "--label", name, "--out", series]).returncode == 0 and \
        subprocess.run([sys.executable, picture, "render", os.path.join(s.results, name + ".html"), series]).returncode == 0
    if ok:
        say("picture of the run (requests/s, p99 and CPU over time): %s" % os.path.join(s.results, name + ".html"))
    else:
        warn("no picture of this run (see above)")


def pictures_of(lab, files):
    series = [f[:-5] + ".series.json" for f in files if os.path.isfile(f[:-5] + ".series.json")]
    if not series:
        return
    out = os.path.join(lab.settings.results, "runs.html")
    if subprocess.run([sys.executable, os.path.join(lab.settings.repo, "scripts", "run-picture.py"), "render",
                       out] + series).returncode == 0:
        say("the runs side by side, over time: %s" % out)


def cmd_compare(lab, args):
    s = lab.settings
    s.mkdirs()
    files = list(args)
    if not files:
        files = sorted((f for f in glob.glob(os.path.join(s.results, "*.json")) if not f.endswith(".series.json")),
                       key=os.path.getmtime)
    if not files:
        die("no saved load test results in %s; run make loadtest first" % s.results)
    if len(files) == 1:
        die("only one saved run (%s); compare needs two: make loadtest again in another layout "
            "(make scale SERVERS=2) or with MIX=browse" % os.path.basename(files[0]))
    sys.stdout.flush()
    rc = subprocess.run([s.binary("catalog-loadtest"), "compare"] + files).returncode
    pictures_of(lab, files)
    return rc


def split_line(path):
    """The share of requests each server answered (from X-Server-Id)."""
    with open(path) as f:
        result = json.load(f)
    servers = result.get("by_server", {})
    total = sum(v["requests"] for v in servers.values()) or 1
    return "requests per server: " + ", ".join(
        "%s %d (%.0f%%)" % (name, v["requests"], 100.0 * v["requests"] / total)
        for name, v in sorted(servers.items(), key=lambda item: (len(item[0]), item[0])))


def cmd_demo(lab, args):
    from lab import cli
    duration = os.environ.get("DEMO_DURATION") or "15s"
    connections = os.environ.get("DEMO_CONNECTIONS") or "50"
    cpus = os.environ["DEMO_SERVER_CPUS"] if "DEMO_SERVER_CPUS" in os.environ else "0.25"
    budget = os.environ.get("DB_BUDGET") or "10"
    os.environ.update(LOAD_DURATION=duration, LOAD_CONNECTIONS=connections, DB_BUDGET=budget, SERVER_CPUS=cpus)
    say("demo: one server, then two, each %s CPU(s); %s connections for %s per run"
        % (cpus or "unlimited", connections, duration))
    cli.cmd_up(lab, [])
    files = []
    for servers in (1, 2):
        cli.cmd_scale(lab, [str(servers)])
        # Under names of its own (demo-...), so that the demo's short runs never replace the
        # learner's runs of the same layout (SCENARIO.md's Step 5), nor mix with them in make compare.
        os.environ["LOAD_NAME"] = "demo-" + lab.layout_name()
        for mix in ("browse", "scenario"):
            os.environ["MIX"] = mix
            if cmd_loadtest(lab, []) != 0:
                warn("the %s load test on %d server(s) had no successful request" % (mix, servers))
            name = os.environ["LOAD_NAME"] + ("" if mix == "scenario" else "-" + mix)
            files.append(os.path.join(lab.settings.results, name + ".json"))
    os.environ.pop("MIX", None)
    os.environ.pop("LOAD_NAME", None)
    print()
    say("comparison: #1 #2 one server, #3 #4 two servers; browse = listing + product page, scenario = + /report")
    cmd_compare(lab, files)
    print()
    b = int(budget)
    say("connection budget %d: one server had DB_POOL_MAX=%d; two servers have %d each = %d; PostgreSQL allows %s"
        % (b, b, b // 2, b // 2 * 2, lab.db_connection_limit()))
    for path in files:
        if not os.path.isfile(path):
            continue
        say("%s:" % os.path.basename(path)[:-5])
        say("    %s" % split_line(path))
        cpu = path[:-5] + ".cpu"
        if os.path.isfile(cpu):
            with open(cpu) as f:
                say("    %s" % f.read().strip())
    rps = []
    for path in files:
        try:
            with open(path) as f:
                rps.append(json.load(f)["rps"])
        except (OSError, ValueError, KeyError):
            rps.append(0.0)
    if len(rps) == 4:
        print("lab: two servers / one server, requests per second: browse mix %.2fx, scenario mix %.2fx"
              % (rps[2] / max(rps[0], 1e-9), rps[3] / max(rps[1], 1e-9)))
    say("where the CPU went says which is the ceiling: the servers' quota on the browse mix, so a")
    say("second server helps; PostgreSQL on the scenario mix (/report), so it helps little. See docs/lab.md.")
    mechanisms = sorted({r.get("limit") for r in lab.state["servers"] if r.get("limit")})
    if mechanisms == ["pinning"]:
        say("note: no CPU quota could be set on this machine, so each server was pinned to a whole core")
        say("instead of %s CPU: one server had more room, and the gain from the second is smaller." % cpus)
    say("the lab is still running (%d servers behind nginx on %d); make down stops it."
        % (lab.layout()[0], lab.port("nginx")))
    return 0
