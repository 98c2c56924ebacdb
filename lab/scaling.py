"""The ceiling of a layout (make ceiling) and the scaling curve over server counts (make
sweep): catalog-loadtest ceiling finds the highest arrival rate within the SLO, a short run
held at that rate says where the CPU went, and lab/usl.py fits Gunther's Universal
Scalability Law to the ceilings of a sweep.  docs/lab.md, "The ceiling and the sweep"."""
import dataclasses
import json
import math
import os

from lab import planner, split, usl
from lab.errors import Failed
from lab.options import LoadOptions
from lab.procs import die, say, warn
from lab.runs import annotate, explain_exit, lab_fields


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def find_ceiling(lab, url, options, path, start_rps=None):
    """The ceiling of whatever answers URL on OPTIONS' mix (LoadOptions), written to PATH (the load generator's
    JSON plus the lab's fields and, under "cpu", where the CPU went during a run held at the
    ceiling for one stage).  START_RPS: the first stage's rate unless CEILING_START says
    (a rate known to hold saves the doubling stages up to it).  Returns (exit status, the
    result or None)."""
    s = lab.settings
    mix = options.mix
    argv = [s.binary("catalog-loadtest"), "ceiling"] + options.ceiling_argv() + ["--json", path]
    if start_rps and not options.ceiling_start:
        argv += ["--start-rate", "%.0f" % max(start_rps, 1)]
    for p in options.paths:
        argv += ["--path", p]
    argv += list(options.extra_args) + [url]
    say("ceiling: %s, mix %s (%s); result in %s" % (url, mix, " ".join(options.paths), path))
    rc, search_cpu = split.meter_run(lab, argv)
    if rc == 3 and start_rps and not options.ceiling_start:
        # The first stage broke at the rate guessed from before: search again from the bottom.
        say("the first stage, at %.0f requests/s, broke the SLO: searching again from the default start" % start_rps)
        argv = [a for i, a in enumerate(argv) if a != "--start-rate" and (i == 0 or argv[i - 1] != "--start-rate")]
        rc, search_cpu = split.meter_run(lab, argv)
    if rc != 0:
        say("the ceiling search exited %d: %s" % (rc, explain_exit(rc) if rc != 3 else
                                                 "even the first stage broke the SLO"))
    result = read_json(path)
    if rc not in (0, 3) or result is None or result.get("kind") != "ceiling":
        return rc or 1, None
    fields = lab_fields(lab, mix, "ceiling")
    fields["target"] = url
    rate = float(result.get("ceiling_rps") or 0)
    cpu = None
    if rate > 0:
        # Where the CPU went at the ceiling: the search's own average mixes every stage.
        hold = options.ceiling_stage or "5s"
        held = path[:-5] + ".hold.json"
        hold_argv = [s.binary("catalog-loadtest"), "-R", "%.0f" % max(rate, 1), "-d", hold,
                     "--json", held] + options.ceiling_argv()[:4]
        for p in options.paths:
            hold_argv += ["--path", p]
        hold_argv.append(url)
        say("held at the ceiling, %.0f requests/s for %s, to see where the CPU went" % (rate, hold))
        _, cpu = split.meter_run(lab, hold_argv, quiet=True)
        held_result = read_json(held) or {}
        try:
            os.unlink(held)
        except OSError:
            pass
        if cpu is not None:
            threads = int(options.threads or 2)
            fields["cpu"] = {k: round(v, 3) for k, v in cpu.items()}
            key, sentence = split.limit_of(cpu, threads, (held_result.get("latency_ms") or {}).get("avg"))
            fields["limit"] = {"part": key, "text": sentence}
            print("CPU at the ceiling: " + split.split_text(cpu))
            say("the limit at the ceiling: " + sentence)
    elif search_cpu is not None:
        fields["cpu"] = {k: round(v, 3) for k, v in search_cpu.items()}
    return rc, annotate(path, fields)


def cmd_ceiling(lab, args):
    s = lab.settings
    s.mkdirs()
    options = LoadOptions.from_env()
    mix = options.mix
    if not lab.pg_running():
        raise Failed("the lab is not up (PostgreSQL is not running); run make up first")
    split.say_if_busy("make ceiling")
    url = options.base_url or lab.entry_point()
    path = os.path.join(s.results, lab.result_name(mix, "ceiling") + ".json")
    rc, result = find_ceiling(lab, url, options, path)
    if result is None:
        return rc
    say("ceiling of %s on the %s mix: %.0f requests/s (%s)" % (lab.layout_name(), mix,
                                                               result.get("ceiling_rps") or 0, path))
    return rc


# ---- the sweep ---------------------------------------------------------------------------------

def parse_counts(text):
    counts = []
    for word in (text or "").replace(",", " ").split():
        if not word.isdigit() or not 1 <= int(word) <= planner.MAX_SERVERS:
            die("SERVERS must list server counts from 1 to %d, e.g. SERVERS=\"1 2 3 4\"; got '%s'"
                % (planner.MAX_SERVERS, text))
        if int(word) not in counts:
            counts.append(int(word))
    if not counts:
        die('usage: make sweep SERVERS="1 2 3 4" (the server counts to find the ceiling of)')
    return sorted(counts)


def analyse(points):
    """The table's figures from POINTS [{servers, ceiling_rps, ...}] (sorted by servers):
    each point's speedup and efficiency against one server's rate (measured, else the fit's
    lambda), and the USL fit when three counts or more.  Returns (rows, usl or None)."""
    fit = None
    good = [(p["servers"], p["ceiling_rps"]) for p in points if p["ceiling_rps"] > 0]
    if len({n for n, _ in good}) >= 3:
        fit = usl.fit(good)
    one = next((p["ceiling_rps"] for p in points if p["servers"] == 1 and p["ceiling_rps"] > 0), None)
    if one is None and fit:
        one = fit["lambda"]
    if one is None and points and points[0]["ceiling_rps"] > 0:  # per server of the smallest count
        one = points[0]["ceiling_rps"] / points[0]["servers"]
    rows = []
    for p in points:
        speedup = p["ceiling_rps"] / one if one else 0.0
        rows.append(dict(p, speedup=speedup, efficiency=speedup / p["servers"],
                         fitted=usl.value(fit, p["servers"]) if fit else None))
    return rows, fit


def table(rows, fit):
    """The sweep's table (under 100 columns) and the lines under it."""
    out = ["%7s %10s %8s %10s %9s   %s" % ("servers", "ceiling/s", "speedup", "efficiency", "USL fit",
                                           "CPU cores: servers, PostgreSQL, nginx, load generator")]
    for r in rows:
        cpu = r.get("cpu") or {}
        out.append("%7d %10.0f %7.2fx %9.0f%% %9s   %.2f, %.2f, %.2f, %.2f" % (
            r["servers"], r["ceiling_rps"], r["speedup"], 100 * r["efficiency"],
            "%.0f" % r["fitted"] if r["fitted"] is not None else "-", cpu.get("servers", 0),
            cpu.get("postgres", 0), cpu.get("nginx", 0), cpu.get("loadgen", 0)))
    if fit:
        peak = fit["peak_servers"]
        out.append("USL fit: lambda %.1f requests/s per server, sigma %.4f (contention), kappa %.5f "
                   "(coherency), R^2 %.3f" % (fit["lambda"], fit["sigma"], fit["kappa"], fit["r2"]))
        if fit["sigma"] >= 1:
            out.append("predicted peak: one server (sigma >= 1: every added server lowers the rate)")
        elif peak is None:
            out.append("predicted peak: no peak in sight (kappa about 0: the curve flattens "
                       "towards %.0f requests/s but never turns down)" % (fit["lambda"] / fit["sigma"])
                       if fit["sigma"] > 0 else "predicted peak: no peak in sight (kappa and sigma "
                       "about 0: linear so far)")
        else:
            out.append("predicted peak: N* = sqrt((1 - sigma) / kappa) = %.1f servers (%.0f requests/s); "
                       "past it each added server lowers the rate" % (peak, usl.value(fit, peak)))
    else:
        found = sum(1 for r in rows if r["ceiling_rps"] > 0)
        out.append("the USL fit needs three server counts or more with a ceiling (it has %d); speedups: %s" % (
            found, ", ".join("%d: %.2fx" % (r["servers"], r["speedup"]) for r in rows)))
    return out


def flat_note(rows):
    """What the curve shows, explained by where the CPU went at the largest count ("" with one
    point)."""
    if len(rows) < 2:
        return ""
    last = rows[-1]
    cpu = last.get("cpu")
    why = split.limit_of(cpu)[1] if cpu else "not measured (no CPU figures for this point)"
    if last["efficiency"] >= 0.75:
        return ("the curve is close to linear up to %d servers (%.2fx one server, %.0f%% efficiency); "
                "at %d servers the limit was %s" % (last["servers"], last["speedup"], 100 * last["efficiency"],
                                                    last["servers"], why))
    return ("the curve flattens: %d servers reach %.2fx one server's ceiling (%.0f%% efficiency). "
            "At %d servers the limit was %s" % (last["servers"], last["speedup"], 100 * last["efficiency"],
                                                last["servers"], why))


def svg_page(title, rows, fit, subtitle):
    """A self-contained HTML page (inline SVG, no script, no network): the measured ceilings,
    the USL curve and the linear ideal, against the number of servers."""
    w, h, left, right, top, bottom = 720, 420, 70, 20, 20, 50
    n_max = max([r["servers"] for r in rows] + [1])
    if fit and fit["peak_servers"] and fit["peak_servers"] < 3 * n_max:
        n_max = max(n_max, math.ceil(fit["peak_servers"]) + 1)
    n_max += 1
    one = next((r["ceiling_rps"] / r["speedup"] for r in rows if r["speedup"]), 0)
    ys = [r["ceiling_rps"] for r in rows] + ([usl.value(fit, n / 10) for n in range(10, 10 * n_max + 1)] if fit else [])
    top_value = max(ys + [1]) * 1.1
    step = 10 ** math.floor(math.log10(top_value / 5))
    step = next(m * step for m in (1, 2, 5, 10) if top_value / (m * step) <= 6)
    y_max = step * math.ceil(top_value / step)

    def x_of(n):
        return left + (n / n_max) * (w - left - right)

    def y_of(v):
        return top + (1 - v / y_max) * (h - top - bottom)

    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
             'font-size="12"><defs><clipPath id="plot"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath>'
             '</defs>' % (w, h, left, top, w - left - right, h - top - bottom)]
    for i in range(int(round(y_max / step)) + 1):
        v = step * i
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" '
                     'text-anchor="end">%.0f</text>' % (left, w - right, y_of(v), y_of(v), left - 6, y_of(v) + 4, v))
    for n in range(0, n_max + 1):
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x_of(n), h - bottom + 18, n))
    parts.append('<text x="%d" y="%d" text-anchor="middle">servers</text>' % ((left + w - right) // 2, h - 8))
    parts.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">ceiling, '
                 'requests/s</text>' % ((top + h - bottom) // 2, (top + h - bottom) // 2))
    if one:
        parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 4" '
                     'clip-path="url(#plot)"/>' % (x_of(0), y_of(0), x_of(n_max), y_of(n_max * one)))
    if fit:  # the law is for one server and more
        pts = " ".join("%.1f,%.1f" % (x_of(n / 10), y_of(usl.value(fit, n / 10))) for n in range(10, 10 * n_max + 1))
        parts.append('<polyline fill="none" stroke="#1f77b4" stroke-width="2" clip-path="url(#plot)" '
                     'points="%s"/>' % pts)
    for r in rows:
        parts.append('<circle cx="%.1f" cy="%.1f" r="5" fill="#d62728"><title>%d servers: %.0f '
                     'requests/s</title></circle>' % (x_of(r["servers"]), y_of(r["ceiling_rps"]),
                                                      r["servers"], r["ceiling_rps"]))
    parts.append("</svg>")
    legend = ("<p>red dots: the ceiling measured at each count; blue line: the USL fit; grey dashes: "
              "linear scaling from one server.</p>")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title><style>body{font-family:"
            "sans-serif;margin:2em}pre{font-size:13px;white-space:pre-wrap}</style></head><body><h1>%s</h1><p>%s</p>%s%s"
            "<pre>%s</pre></body></html>\n" % (title, title, subtitle, "".join(parts), legend,
                                               "\n".join(table(rows, fit)).replace("&", "&amp;").replace("<", "&lt;")))


def cmd_sweep(lab, args):
    s = lab.settings
    s.mkdirs()
    options = LoadOptions.from_env()
    mix = options.mix
    counts = parse_counts(" ".join(args) or os.environ.get("SERVERS", ""))
    lab.ensure_built()
    with lab.locked():
        if not lab.pg_running() or not lab.prom_running():
            raise Failed("the lab is not up; run make up first")
        lab.load_pg_env()
        servers0, budget, cpus = lab.layout()
        balance, report_mode = lab.balance(), lab.report_mode()
        # The database stays as it is (DB_REPLICAS, DB_CPUS of the layout): only the servers sweep.
        kept = lab.state["layout"] or {}
        db = {"db_replicas": kept.get("db_replicas") or 0, "db_cpus": kept.get("db_cpus") or ""}
        before = planner.Request(servers0, budget, cpus, report_mode, balance, **db)
        try:  # the sweep's settings: the environment's, else the current layout's
            wanted = planner.parse_request(1, os.environ.get("DB_BUDGET") or budget, os.environ.get("SERVER_CPUS", cpus),
                                           os.environ.get("REPORT_MODE") or report_mode,
                                           os.environ.get("BALANCE") or balance, **db)
        except planner.Refused as e:
            die(str(e))
        for n in counts:
            try:
                planner.validate(dataclasses.replace(wanted, servers=n), lab.db_connection_limit() or 0)
            except planner.Refused as e:
                die(str(e))
        busy = split.say_if_busy("make sweep")
        say("sweep: the ceiling of %s servers on the %s mix, each behind nginx on %d (%s, %s CPU each); "
            "the lab returns to %s afterwards" % (", ".join(map(str, counts)), mix, lab.port("nginx"), wanted.balance,
                                                  wanted.cpus or "unlimited", lab.layout_name()))
        folder = os.path.join(s.results, "sweep-%s" % mix)
        os.makedirs(folder, exist_ok=True)
        points = []
        try:
            for n in counts:
                lab.apply_layout(dataclasses.replace(wanted, servers=n))
                url = "http://127.0.0.1:%d" % lab.port("nginx")  # one server too: the same path
                path = os.path.join(folder, lab.result_name(mix, "ceiling") + ".json")
                # The next count starts at half the last ceiling: fewer stages, same answer.
                previous = max([p["ceiling_rps"] for p in points] + [0]) / 2
                rc, result = find_ceiling(lab, url, options, path, previous or None)
                if result is None:
                    warn("no ceiling for %d server(s) (exit %d); the sweep goes on without it" % (n, rc))
                    continue
                cpu = result.get("cpu") or {}
                points.append({"servers": n, "ceiling_rps": float(result.get("ceiling_rps") or 0),
                               "server_cores": cpu.get("servers", 0.0), "db_cores": cpu.get("postgres", 0.0),
                               "nginx_cores": cpu.get("nginx", 0.0), "loadgen_cores": cpu.get("loadgen", 0.0),
                               "limit": (result.get("limit") or {}).get("part", ""), "cpu": cpu,
                               "result": os.path.relpath(path, s.results)})
        finally:
            say("back to the layout before the sweep: %s" % planner.layout_name(before.servers, before.cpus))
            lab.apply_layout(before)
    return report_sweep(lab, mix, points, wanted, busy)


def report_sweep(lab, mix, points, wanted, busy):
    s = lab.settings
    if not points:
        die("the sweep found no ceiling at any count")
    rows, fit = analyse(points)
    lines = table(rows, fit)
    note = flat_note(rows)
    print()
    for line in lines:
        print(line)
    if note:
        say(note)
    out = os.path.join(s.results, "sweep-%s.json" % mix)
    doc = {"kind": "sweep", "mix": mix, "balance": wanted.balance, "server_cpus": wanted.cpus,
           "report_mode": wanted.report_mode, "db_budget": wanted.budget, "machine_busy_before": round(busy, 3),
           "slo": next((read_json(os.path.join(s.results, p["result"])) or {}).get("slo") for p in points),
           "points": [{k: v for k, v in r.items() if k in ("servers", "ceiling_rps", "server_cores", "db_cores",
                                                          "nginx_cores", "loadgen_cores", "limit", "result",
                                                          "speedup", "efficiency")} for r in rows],
           "usl": ({"lambda": fit["lambda"], "sigma": fit["sigma"], "kappa": fit["kappa"],
                    "peak_servers": fit["peak_servers"], "r2": fit["r2"]} if fit else None),
           "note": note}
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(out + ".tmp", out)
    page = os.path.join(s.results, "sweep-%s.html" % mix)
    subtitle = "mix %s, %s CPU per server, balancing %s, budget %d database connections" % (
        mix, wanted.cpus or "unlimited", wanted.balance, wanted.budget)
    with open(page, "w") as f:
        f.write(svg_page("Ceiling against servers: %s mix" % mix, rows, fit, subtitle))
    say("the sweep: %s; its curve: %s" % (out, page))
    return 0
