"""Load tests against the lab (make loadtest): the run, where the CPU went, the picture."""
import json
import os
import subprocess
import sys
import time

from lab import procs, split
from lab.options import LoadOptions
from lab.procs import say, warn


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


def cmd_loadtest(lab, args):
    return loadtest(lab, LoadOptions.from_env())


def loadtest(lab, options, prefix=""):
    """One load run as OPTIONS ask (LoadOptions), its result named PREFIX + the layout's."""
    s = lab.settings
    s.mkdirs()
    mix = options.mix
    paths = options.paths
    base = options.base_url or lab.entry_point()
    name = options.name or prefix + lab.result_name(mix)
    result = os.path.join(s.results, name + ".json")
    connections, duration, threads = options.connections, options.duration, options.threads
    say("load test: %s, mix %s (%s), %s connections, %s; result in %s"
        % (base, mix, " ".join(paths), connections, duration, result))
    argv = [s.binary("catalog-loadtest"), "-c", connections, "-d", duration,
            "-t", threads, "--json", result, "--label", name]
    for path in paths:
        argv += ["--path", path]
    argv += list(options.extra_args) + [base]
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
