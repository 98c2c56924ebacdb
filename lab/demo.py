"""The unattended demo (make demo): up, load one server, scale to two, load again, each
layout's ceiling, compare.  It drives the lab's methods and the load runs with its own
settings (DEMO_*), passed as values."""
import dataclasses
import json
import os

from lab import compare, scaling
from lab.options import LoadOptions, Wishes
from lab.procs import say, warn
from lab.runs import loadtest


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
    e = os.environ
    duration = e.get("DEMO_DURATION") or "10s"
    connections = e.get("DEMO_CONNECTIONS") or "50"
    cpus = e["DEMO_SERVER_CPUS"] if "DEMO_SERVER_CPUS" in e else "0.25"
    budget = e.get("DB_BUDGET") or "10"
    wishes = dataclasses.replace(Wishes.from_env(), budget=budget, cpus=cpus)
    load = dataclasses.replace(LoadOptions.from_env(), duration=duration, connections=connections)
    ceiling = dataclasses.replace(load, mix="browse", ceiling_stage=e.get("DEMO_CEILING_STAGE") or "1s",
                                  ceiling_max=e.get("DEMO_CEILING_MAX") or "8s")
    say("demo: one server, then two, each %s CPU(s); %s connections for %s per run, then each layout's "
        "ceiling on the browse mix; results named demo-*" % (cpus or "unlimited", connections, duration))
    if e.get("LAB_SKIP_DEPS", "0") != "1":
        lab.install_deps()
    lab.ensure_built()
    lab.up(wishes)
    files, ceilings = [], []
    for servers in (1, 2):
        lab.ensure_built()
        lab.scale(wishes, str(servers))
        for mix in ("browse", "scenario"):
            if loadtest(lab, dataclasses.replace(load, mix=mix), prefix="demo-") == 1:
                warn("the %s load test on %d server(s) had no successful request" % (mix, servers))
            files.append(os.path.join(lab.settings.results, "demo-" + lab.result_name(mix) + ".json"))
        # The ceiling with short stages, starting at half the rate the browse run just had: the
        # demo stays under two minutes.
        path = os.path.join(lab.settings.results, "demo-" + lab.result_name("browse", "ceiling") + ".json")
        try:
            with open(files[-2]) as f:
                closed_loop = float(json.load(f).get("rps") or 0)
        except (OSError, ValueError):
            closed_loop = 0.0
        _, result = scaling.find_ceiling(lab, lab.entry_point(), ceiling, path, closed_loop / 2 or None)
        ceilings.append(float((result or {}).get("ceiling_rps") or 0))
        files.append(path)
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
