#!/usr/bin/env python3
# picture.py: pictures of load test runs: requests/s and p99 over time, as self-contained HTML.
"""Usage:
  lab/picture.py fetch --result RUN.json --start EPOCH --end EPOCH --out RUN.series.json
                 [--prometheus URL] [--label NAME]
  lab/picture.py render OUT.html RUN.series.json...

fetch keeps a run's series in RUN.series.json.  Requests, failures, p50 and p99 come from the
load generator itself: its --json file's per_second array (catalog-loadtest records each
second of the run), so the run is whole from its first second, whatever the servers behind it
(a server started a moment before has no history in Prometheus yet) and whatever ran before.
Prometheus (--prometheus) gives only the CPU: each API server's and PostgreSQL's, from the raw
samples of their CPU counters, one point per scrape interval (5 s) over the run.

render draws one or more such runs into OUT.html: inline SVG, no script, no network, so it
opens anywhere and can be mailed.  Runs share their axes (seconds since each run's start), so
they can be compared by eye: the same height means the same rate.  Series files written by
older versions (requests/s from Prometheus) still draw.
"""
import argparse
import html
import json
import math
import sys
import time
import urllib.parse
import urllib.request

SCRAPE_S = 5        # Prometheus scrapes every 5 s (deploy/prometheus/prometheus.yml.template)
AFTER_S = 2         # shown after the run's end
SERVER_COLOURS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
POSTGRES_COLOUR = "#ff7f0e"
FAILURE_COLOUR = "#d62728"


def raw_samples(prometheus, expr, at):
    """An instant query of a range selector: every raw sample, with its scrape's timestamp."""
    url = "%s/api/v1/query?%s" % (prometheus.rstrip("/"), urllib.parse.urlencode({"query": expr, "time": at}))
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError("Prometheus: %s" % body.get("error", "query failed"))
    return body["data"]["result"]


def counter_rates(values, start, end):
    """[[t, "v"], ...] of one counter (seconds) -> [[x, cores]] per scrape interval that overlaps
    [start, end], x its midpoint in seconds since start (clipped to the run); a reset counts from 0."""
    out = []
    for (t0, v0), (t1, v1) in zip(values, values[1:]):
        t0, t1, v0, v1 = float(t0), float(t1), float(v0), float(v1)
        if t1 <= t0 or t1 <= start or t0 >= end:
            continue
        used = v1 - v0 if v1 >= v0 else v1
        middle = min(max((t0 + t1) / 2.0, start), end)
        out.append([round(middle - start, 3), used / (t1 - t0)])
    return out


def cpu_series(prometheus, start, end):
    """{"cpu <server>": [[x, % of one core]], "cpu PostgreSQL": ...} from Prometheus's raw samples."""
    at = min(end + SCRAPE_S + 1, time.time())
    window_s = int(math.ceil(at - start)) + 2 * SCRAPE_S
    out = {}
    queries = [('process_cpu_seconds_total{job="catalog"}[%ds]' % window_s, lambda m: m.get("server", m.get("instance", "?"))),
               ('namedprocess_namegroup_cpu_seconds_total{groupname="postgres"}[%ds]' % window_s, lambda m: "PostgreSQL")]
    for expr, name_of in queries:
        summed = {}  # name -> instance -> {t: v} (modes and instances of one name summed by time)
        for one in raw_samples(prometheus, expr, at):
            name = name_of(one["metric"])
            series = summed.setdefault(name, {}).setdefault(one["metric"].get("instance", "?"), {})
            for t, v in one["values"]:
                series[float(t)] = series.get(float(t), 0.0) + float(v)
        for name, instances in summed.items():
            points = {}
            for samples in instances.values():  # a server moved to another port: two instances
                for x, cores in counter_rates(sorted(samples.items()), start, end):
                    points[x] = points.get(x, 0.0) + cores * 100
            out["cpu " + name] = [[x, round(v, 2)] for x, v in sorted(points.items())]
    return out


def per_second_series(result):
    """The load generator's per_second array -> {"rps", "failures", "p50_ms", "p99_ms"}, each
    [[x, value]] at the middle of its second (p50/p99 None in a second without an answer).  The
    run's last second is usually cut short (a 30 s run lasts 30.2 s: the last answers drain):
    its counts are divided by the part of it the run lasted, as a rate, or left out when that
    part is under half a second (a sliver would read as a sudden drop)."""
    seconds = result.get("per_second") or []
    duration = result.get("duration_s") or len(seconds)
    series = {"rps": [], "failures": [], "p50_ms": [], "p99_ms": []}
    for entry in seconds:
        x = entry["t"] + 0.5
        covered = min(1.0, duration - entry["t"])
        if covered < 0.5:
            continue
        answered = entry.get("requests", 0) > 0
        series["rps"].append([x, round(entry.get("requests", 0) / covered, 1)])
        series["failures"].append([x, round(entry.get("failures", 0) / covered, 1)])
        series["p50_ms"].append([x, entry.get("p50_ms") if answered else None])
        series["p99_ms"].append([x, entry.get("p99_ms") if answered else None])
    return series


def cmd_fetch(args):
    with open(args.result) as f:
        result = json.load(f)
    if "per_second" not in result:
        raise RuntimeError("%s has no per_second series (written by an older catalog-loadtest: run it again)"
                           % args.result)
    run = {"label": args.label or result.get("label"), "start": args.start, "end": args.end,
           "duration_s": result.get("duration_s") or (args.end - args.start), "bin_s": 1,
           "source": "catalog-loadtest per_second; CPU from Prometheus", "prometheus": args.prometheus,
           "result": {key: result.get(key) for key in
                      ("label", "target", "requests", "rps", "errors", "timeouts", "non2xx", "status_5xx",
                       "failures", "latency_ms", "connections", "duration_s")},
           "series": per_second_series(result)}
    if args.prometheus:
        try:
            run["series"].update(cpu_series(args.prometheus, args.start, args.end))
        except (OSError, RuntimeError, ValueError) as error:
            print("lab/picture.py: no CPU from Prometheus: %s" % error, file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")
    return 0


def add_series(total, values):
    if total is None:
        return list(values)
    return [None if a is None and b is None else (a or 0.0) + (b or 0.0) for a, b in zip(total, values)]


def nice_ceiling(value):
    """The smallest 1, 2 or 5 times a power of ten at or above value (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power


def svg_chart(title, unit, lines, x_min, x_max, y_max, run_marks, width=900, height=260):
    """lines: [(label, colour, dashed, [[x, y or None], ...])]; run_marks: x positions (run start/end)."""
    left, right, top, bottom = 64, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x_min) / float(x_max - x_min or 1) * plot_w

    def sy(y):
        return top + plot_h - (y / float(y_max or 1)) * plot_h

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'role="img" aria-label="%s">' % (width, height, width, height, html.escape(title))]
    out.append('<text x="%d" y="18" class="title">%s <tspan class="unit">(%s)</tspan></text>'
               % (left, html.escape(title), html.escape(unit)))
    for i in range(6):
        value = y_max * i / 5.0
        y = sy(value)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>' % (left, left + plot_w, y, y))
        label = ("%.0f" % value) if y_max >= 10 else ("%.2g" % value)
        out.append('<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>' % (left - 6, y + 4, label))
    tick_s = max(5, nice_ceiling((x_max - x_min) / 10.0))
    x = math.ceil(x_min / tick_s) * tick_s
    while x <= x_max:
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="grid"/>' % (sx(x), sx(x), top, top + plot_h))
        out.append('<text x="%.1f" y="%d" class="tick" text-anchor="middle">%gs</text>' % (sx(x), top + plot_h + 16, x))
        x += tick_s
    out.append('<text x="%d" y="%d" class="tick" text-anchor="end">seconds since the run started</text>'
               % (left + plot_w, height - 4))
    for mark in run_marks:
        if x_min <= mark <= x_max:
            out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="mark"/>' % (sx(mark), sx(mark), top, top + plot_h))
    for label, colour, dashed, data in lines:
        segments, current = [], []
        for px, py in data:
            if py is None or px < x_min or px > x_max:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append("%.1f,%.1f" % (sx(px), sy(min(py, y_max))))
        if current:
            segments.append(current)
        for segment in segments:
            if len(segment) == 1:
                cx, cy = segment[0].split(",")
                out.append('<circle cx="%s" cy="%s" r="2.5" fill="%s"/>' % (cx, cy, colour))
            else:
                out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                           % (" ".join(segment), colour, ' stroke-dasharray="6 4"' if dashed else ""))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>' % (left, top, plot_w, plot_h))
    legend_x = left + 8
    for label, colour, dashed, _ in lines:
        out.append('<rect x="%d" y="%d" width="14" height="3" fill="%s"/>' % (legend_x, top + 8, colour))
        out.append('<text x="%d" y="%d" class="legend">%s</text>' % (legend_x + 18, top + 13, html.escape(label)))
        legend_x += 30 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out)


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def route_server_table(result):
    """The load generator's requests and p50/p99 by route and server (its by_route_server,
    from each answer's X-Server-Id), as an HTML table; "" when the run has none."""
    cells = result.get("by_route_server") or {}
    if not any(cells.values()):
        return ""
    routes = result.get("by_route") or {}
    rows = ["<table><tr><th>route</th><th>server</th><th>requests</th><th>share of the route</th>"
            "<th>p50 ms</th><th>p99 ms</th><th>5xx</th></tr>"]
    for route, servers in cells.items():
        answered = (routes.get(route) or {}).get("requests") or sum(
            (s.get("requests") or 0) for s in servers.values())
        for k, (server, tally) in enumerate(servers.items()):
            latency = tally.get("latency_ms") or {}
            share = 100.0 * (tally.get("requests") or 0) / answered if answered else 0.0
            rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%.1f%%</td><td>%s</td><td>%s</td>"
                        "<td>%s</td></tr>" % (html.escape(route) if k == 0 else "",
                                              html.escape(server), fmt(tally.get("requests")), share,
                                              fmt(latency.get("p50")), fmt(latency.get("p99")),
                                              fmt(tally.get("status_5xx"))))
    rows.append("</table>")
    return ("<p>By route and server, from the load generator (each answer's X-Server-Id): "
            "requests, each server's share of the route, and latency.</p>" + "".join(rows))


def cmd_render(args):
    runs = []
    for path in args.series:
        with open(path) as f:
            run = json.load(f)
        run["path"] = path
        runs.append(run)
    if not runs:
        print("lab/picture.py: no runs to draw", file=sys.stderr)
        return 2
    def duration(run):
        return run.get("duration_s") or (run["end"] - run["start"])

    def values(key, prefix=False):
        return [p[1] for run in runs for k, points in run["series"].items()
                if (k.startswith(key) if prefix else k == key) for p in points if p[1] is not None]

    x_min = 0  # nothing before a run's start: the series begin with its first second
    x_max = max(duration(run) for run in runs) + AFTER_S
    rps_max = nice_ceiling(max(values("rps") or [1]) * 1.05)
    p99_max = nice_ceiling(max(values("p99_ms") or [1]) * 1.05)
    cpu_max = nice_ceiling(max(values("cpu ", prefix=True) or [1]) * 1.05)
    marks = [duration(run) for run in runs]

    def colour(i):
        return COLOURS[i % len(COLOURS)]

    # One colour per server name on the whole page (app is the same colour in every run).
    server_names = sorted({key.split(" ", 1)[1] for run in runs for key in run["series"]
                           if key.startswith(("rps ", "cpu ")) and key != "cpu PostgreSQL"},
                          key=lambda name: (len(name), name))

    def server_colour(name):
        if name == "PostgreSQL":
            return POSTGRES_COLOUR
        return SERVER_COLOURS[server_names.index(name) % len(SERVER_COLOURS)]

    body = []
    title = "Load test runs" if len(runs) > 1 else "Load test run: %s" % (runs[0].get("label") or "run")
    body.append("<h1>%s</h1>" % html.escape(title))
    body.append("<p>Each second of the run as the load generator saw it (catalog-loadtest's per_second "
                "series: answers, failures, p50 and p99 of that second's answers), from its first second to "
                "its last; the CPU of the API servers and of PostgreSQL from Prometheus, one point per 5 s "
                "scrape. Dashed grey lines: each run's end. Axes are shared: the same height means the same "
                "figure in every run.</p>")
    if len(runs) > 1:
        body.append(svg_chart("Requests per second, every run", "req/s",
                              [(r.get("label") or "run %d" % (i + 1), colour(i), False, r["series"].get("rps", []))
                               for i, r in enumerate(runs)], x_min, x_max, rps_max, marks))
        body.append(svg_chart("p99 latency, every run", "ms",
                              [(r.get("label") or "run %d" % (i + 1), colour(i), False, r["series"].get("p99_ms", []))
                               for i, r in enumerate(runs)], x_min, x_max, p99_max, marks))
    body.append("<table><tr><th>run</th><th>started</th><th>target</th><th>connections</th><th>requests</th>"
                "<th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>errors</th><th>timeouts</th><th>5xx</th></tr>")
    for i, run in enumerate(runs):
        result = run.get("result") or {}
        latency = result.get("latency_ms") or {}
        body.append("<tr><td><span class=\"swatch\" style=\"background:%s\"></span>%s</td><td>%s</td><td>%s</td>"
                    "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                        colour(i), html.escape(run.get("label") or "run"),
                        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["start"])),
                        html.escape(str(result.get("target", "–"))), fmt(result.get("connections")),
                        fmt(result.get("requests")), fmt(result.get("rps")), fmt(latency.get("p50")),
                        fmt(latency.get("p99")), fmt(result.get("errors")), fmt(result.get("timeouts")),
                        fmt(result.get("status_5xx", result.get("non2xx")))))
    body.append("</table>")
    for i, run in enumerate(runs):
        series = run["series"]
        end = [duration(run)]
        lines = [("requests/s", colour(i), False, series.get("rps", []))]
        if any(p[1] for p in series.get("failures", [])):
            lines.append(("failures/s", FAILURE_COLOUR, False, series["failures"]))
        # Series of older versions: each server's requests/s from Prometheus.
        lines += [(key[4:], server_colour(key[4:]), True, series[key]) for key in sorted(series) if key.startswith("rps ")]
        body.append('<section class="run"><h2>%s</h2>' % html.escape(run.get("label") or "run"))
        body.append(svg_chart("Requests per second", "req/s", lines, x_min, x_max, rps_max, end))
        latency = [("p99", colour(i), False, series.get("p99_ms", []))]
        if "p50_ms" in series:
            latency.append(("p50", colour(i), True, series["p50_ms"]))
        body.append(svg_chart("Latency, each second", "ms", latency, x_min, x_max, p99_max, end))
        cpu = sorted((key for key in series if key.startswith("cpu ")), key=lambda k: (k == "cpu PostgreSQL", len(k), k))
        if cpu:
            body.append(svg_chart("CPU: API servers and PostgreSQL (from Prometheus, per 5 s)", "% of one core",
                                  [(key[4:], server_colour(key[4:]), key == "cpu PostgreSQL", series[key]) for key in cpu],
                                  x_min, x_max, cpu_max, end))
        body.append(route_server_table(run.get("result") or {}))
        body.append("</section>")
    page = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body { font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; margin: 16px; color: #1f2328; background: #fff; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 18px 0 4px; }
svg { display: block; margin: 6px 0; background: #fafbfc; border: 1px solid #d0d7de; border-radius: 4px; }
svg .title { font-size: 14px; font-weight: bold; } svg .unit { font-weight: normal; fill: #59636e; }
svg .tick { font-size: 11px; fill: #59636e; } svg .legend { font-size: 12px; }
svg .grid { stroke: #e5e8eb; } svg .frame { fill: none; stroke: #afb8c1; }
svg .mark { stroke: #8c959f; stroke-dasharray: 3 3; }
table { border-collapse: collapse; margin: 10px 0; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
</style></head><body>
%s
</body></html>
""" % (html.escape(title), "\n".join(body))
    with open(args.out, "w") as f:
        f.write(page)
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="lab/picture.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="keep a run's series (the load generator's, CPU from Prometheus)")
    fetch.add_argument("--prometheus", help="e.g. http://127.0.0.1:9090 (for the CPU; without it, no CPU)")
    fetch.add_argument("--start", type=float, required=True, help="run start, seconds since the epoch")
    fetch.add_argument("--end", type=float, required=True, help="run end, seconds since the epoch")
    fetch.add_argument("--out", required=True)
    fetch.add_argument("--result", required=True, help="the load generator's --json file of the run")
    fetch.add_argument("--label")
    render = commands.add_parser("render", help="draw runs into one HTML file")
    render.add_argument("out")
    render.add_argument("series", nargs="+")
    args = parser.parse_args(argv)
    try:
        return cmd_fetch(args) if args.command == "fetch" else cmd_render(args)
    except (OSError, RuntimeError, ValueError) as error:
        print("lab/picture.py: %s" % error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
