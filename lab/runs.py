"""Load tests against the lab, their comparison, and the unattended demo."""
import json
import os
import subprocess
import sys
import time

from lab import procs, split
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


def mix_from_env():
    mix = os.environ.get("MIX") or "scenario"
    if mix not in MIXES:
        die("MIX must be scenario or browse, got '%s'" % mix)
    return mix


def lab_fields(lab, mix, kind):
    """What a result's JSON says of the lab that produced it (make compare reads it)."""
    servers, budget, cpus = lab.layout()
    return {"kind": kind, "layout": lab.layout_name(), "servers": servers, "mix": mix,
            "balance": lab.balance(), "report_mode": lab.report_mode(), "server_cpus": cpus,
            "db_budget": budget}


def annotate(path, fields):
    """Adds FIELDS to the JSON result at PATH (kept whole: written aside, renamed over it)."""
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    result.update(fields)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return result


# The load generator's exit status (docs/loadtest.md): what each means to the lab.
EXIT_MEANINGS = {0: "", 1: "no request was answered 2xx", 2: "bad usage (see its message above)",
                 3: "a threshold (--slo-p99, --slo-failures) broke: the run itself completed"}


def explain_exit(rc):
    """A line for the load generator's exit status RC, or "" for 0."""
    if rc in EXIT_MEANINGS:
        return EXIT_MEANINGS[rc]
    if rc < 0:
        return "the load generator was killed by signal %d" % -rc
    return "the load generator failed (exit %d)" % rc


def cmd_loadtest(lab, args, prefix=""):
    s = lab.settings
    s.mkdirs()
    mix = mix_from_env()
    paths = MIXES[mix]
    base = os.environ.get("BASE_URL") or lab.entry_point()
    name = os.environ.get("LOAD_NAME") or prefix + lab.result_name(mix)
    result = os.path.join(s.results, name + ".json")
    connections = os.environ.get("LOAD_CONNECTIONS") or "100"
    duration = os.environ.get("LOAD_DURATION") or "30s"
    threads = os.environ.get("LOAD_THREADS") or "2"
    say("load test: %s, mix %s (%s), %s connections, %s; result in %s"
        % (base, mix, " ".join(paths), connections, duration, result))
    argv = [s.binary("catalog-loadtest"), "-c", connections, "-d", duration,
            "-t", threads, "--json", result, "--label", name]
    for path in paths:
        argv += ["--path", path]
    argv += (os.environ.get("LOADTEST_ARGS") or "").split() + [base]
    start = time.time()
    rc, cpu = split.meter_run(lab, argv)
    end = time.time()
    if rc != 0:
        say("the load generator exited %d: %s" % (rc, explain_exit(rc)))
    if rc not in (0, 1, 3) or cpu is None:
        return rc
    # Where the CPU went during the run, and which part was the limit: the scenario's question.
    line = "CPU during the run: " + split.split_text(cpu, cpu_limit_text(lab))
    print(line)
    with open(os.path.join(s.results, name + ".cpu"), "w") as f:
        f.write(line + "\n")
    fields = lab_fields(lab, mix, "run")
    fields["size"] = {"connections": int(connections) if connections.isdigit() else connections,
                      "duration": duration}  # as asked: make compare pairs runs by it
    fields["cpu"] = {k: round(v, 3) for k, v in cpu.items()}
    run = annotate(result, fields) or {}
    key, sentence = split.limit_of(cpu, int(threads) if threads.isdigit() else 2,
                                   (run.get("latency_ms") or {}).get("avg"))
    run["limit"] = {"part": key, "text": sentence}
    annotate(result, {"limit": run["limit"]})
    say("the limit in this run: " + sentence)
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
    picture = os.path.join(s.repo, "lab", "picture.py")
    ok = subprocess.run([sys.executable, picture, "fetch"] + prometheus +
                        ["--start", "%.3f" % start, "--end", "%.3f" % end, "--result", result,
                         "--label", name, "--out", series]).returncode == 0 and \
        subprocess.run([sys.executable, picture, "render", os.path.join(s.results, name + ".html"), series]).returncode == 0
    if ok:
        say("picture of the run (requests/s, p99 and CPU over time): %s" % os.path.join(s.results, name + ".html"))
    else:
        warn("no picture of this run (see above)")


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
    from lab import cli, compare, scaling
    duration = os.environ.get("DEMO_DURATION") or "10s"
    connections = os.environ.get("DEMO_CONNECTIONS") or "50"
    cpus = os.environ["DEMO_SERVER_CPUS"] if "DEMO_SERVER_CPUS" in os.environ else "0.25"
    budget = os.environ.get("DB_BUDGET") or "10"
    os.environ.update(LOAD_DURATION=duration, LOAD_CONNECTIONS=connections, DB_BUDGET=budget, SERVER_CPUS=cpus)
    say("demo: one server, then two, each %s CPU(s); %s connections for %s per run, then each layout's "
        "ceiling on the browse mix; results named demo-*" % (cpus or "unlimited", connections, duration))
    cli.cmd_up(lab, [])
    files, ceilings = [], []
    for servers in (1, 2):
        cli.cmd_scale(lab, [str(servers)])
        for mix in ("browse", "scenario"):
            os.environ["MIX"] = mix
            if cmd_loadtest(lab, [], prefix="demo-") == 1:
                warn("the %s load test on %d server(s) had no successful request" % (mix, servers))
            files.append(os.path.join(lab.settings.results, "demo-" + lab.result_name(mix) + ".json"))
        # The ceiling with short stages, starting at half the rate the browse run just had: the
        # demo stays under two minutes.
        env = dict(os.environ)
        os.environ.update(CEILING_STAGE=os.environ.get("DEMO_CEILING_STAGE") or "1s",
                          CEILING_MAX=os.environ.get("DEMO_CEILING_MAX") or "8s")
        path = os.path.join(lab.settings.results, "demo-" + lab.result_name("browse", "ceiling") + ".json")
        try:
            with open(files[-2]) as f:
                closed_loop = float(json.load(f).get("rps") or 0)
        except (OSError, ValueError):
            closed_loop = 0.0
        _, result = scaling.find_ceiling(lab, lab.entry_point(), "browse", path, closed_loop / 2 or None)
        os.environ.clear()
        os.environ.update(env)
        ceilings.append(float((result or {}).get("ceiling_rps") or 0))
        files.append(path)
    os.environ.pop("MIX", None)
    print()
    say("comparison: one server, then two; browse = listing + product page, scenario = + /report")
    compare.cmd_compare(lab, files)
    print()
    b = int(budget)
    say("connection budget %d: one server had DB_POOL_MAX=%d; two servers have %d each = %d; PostgreSQL allows %s"
        % (b, b, b // 2, b // 2 * 2, lab.db_connection_limit()))
    runs = [f for f in files if not f.endswith("-ceiling.json")]
    for path in runs:
        if not os.path.isfile(path):
            continue
        say("%s:" % os.path.basename(path)[:-5])
        say("    %s" % split_line(path))
        cpu = path[:-5] + ".cpu"
        if os.path.isfile(cpu):
            with open(cpu) as f:
                say("    %s" % f.read().strip())
    rps = []
    for path in runs:
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
    print("lab: ceilings on the browse mix (the highest rate within the SLO): one server %.0f requests/s, "
          "two servers %.0f (%.2fx)" % (ceilings[0], ceilings[1], ceilings[1] / ceilings[0] if ceilings[0] else 0.0))
    return 0
