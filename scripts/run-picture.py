#!/usr/bin/env python3
# run-picture.py: pictures of load test runs: requests/s and p99 over time, as self-contained HTML.
"""Usage:
  scripts/run-picture.py fetch --prometheus URL --start EPOCH --end EPOCH --out RUN.series.json
                         [--result RUN.json] [--label NAME]
  scripts/run-picture.py render OUT.html RUN.series.json...

fetch reads from Prometheus every scrape of the servers' duration histograms (raw samples,
every route but /metrics) from a little before the run to a little after, and computes the
run's requests per second (all servers together and per server; each scrape interval's count
spread evenly over it, per second) and its p99 per 5 s (summed buckets of every server,
interpolated within a bucket as histogram_quantile does).  It keeps them with the load
generator's own figures (--result, its --json file) in RUN.series.json.

render draws one or more such runs into OUT.html: inline SVG, no script, no network, so it
opens anywhere and can be mailed.  Runs share their axes (seconds since each run's start), so
they can be compared by eye: the same height means the same rate.
"""
import argparse
import html
import json
import math
import sys
import time
import urllib.parse
import urllib.request

SCRAPE_S = 5        # Prometheus scrapes every 5 s
RATE_BIN_S = 1      # requests/s drawn per second (each scrape interval spread evenly over it)
P99_BIN_S = 5       # p99 per 5 s: enough requests in each for a 99th percentile
BEFORE_S = 10       # shown before the run's start
AFTER_S = 5         # and after its end
SERVER_COLOURS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def raw_samples(prometheus, expr, at):
    """An instant query of a range selector: every raw sample, with its scrape's timestamp."""
    url = "%s/api/v1/query?%s" % (prometheus.rstrip("/"), urllib.parse.urlencode({"query": expr, "time": at}))
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError("Prometheus: %s" % body.get("error", "query failed"))
    return body["data"]["result"]


def spread(intervals, first, last, width):
    """intervals: [(t0, t1, amount)]; -> amounts per bin [first + k*width, +width), each interval's
    amount spread evenly over its time span (the best a 5 s scrape can tell)."""
    count = int(math.ceil((last - first) / float(width)))
    bins = [0.0] * count
    covered = [False] * count
    for t0, t1, amount in intervals:
        if t1 <= t0:
            continue
        k0 = max(0, int((t0 - first) // width))
        k1 = min(count - 1, int((t1 - first) // width))
        for k in range(k0, k1 + 1):
            lo, hi = first + k * width, first + (k + 1) * width
            overlap = min(hi, t1) - max(lo, t0)
            if overlap > 0:
                bins[k] += amount * overlap / (t1 - t0)
                covered[k] = covered[k] or overlap >= 0.5 * width or (t1 >= hi and t0 <= lo)
    return bins, covered


def counter_intervals(values):
    """[[t, "v"], ...] of one counter -> [(t0, t1, increase)], a reset counting from 0."""
    out = []
    for (t0, v0), (t1, v1) in zip(values, values[1:]):
        v0, v1 = float(v0), float(v1)
        out.append((float(t0), float(t1), v1 - v0 if v1 >= v0 else v1))
    return out


def quantile(q, buckets):
    """Prometheus's histogram_quantile over {upper bound: count in that bucket (not cumulative)}."""
    bounds = sorted(buckets)
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank, cumulative, lower = q * total, 0.0, 0.0
    for bound in bounds:
        previous = cumulative
        cumulative += buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            if buckets[bound] <= 0:
                return bound
            return lower + (bound - lower) * (rank - previous) / buckets[bound]
        lower = bound
    return lower


def cmd_fetch(args):
    first = math.floor(args.start) - BEFORE_S
    last = math.ceil(args.end) + AFTER_S
    at = min(last, time.time())
    window_s = int(math.ceil(at - first)) + 2 * SCRAPE_S
    run = {"label": args.label, "start": args.start, "end": args.end, "bin_s": RATE_BIN_S,
           "p99_bin_s": P99_BIN_S, "prometheus": args.prometheus, "series": {}}
    if args.result:
        try:
            with open(args.result) as f:
                result = json.load(f)
            run["result"] = {key: result.get(key) for key in
                             ("label", "target", "requests", "rps", "errors", "timeouts", "non2xx",
                              "latency_ms", "connections", "duration_s", "unfinished", "by_route",
                              "by_server", "by_route_server")}
            run["label"] = run["label"] or result.get("label")
        except (OSError, ValueError) as error:
            print("run-picture: cannot read %s: %s" % (args.result, error), file=sys.stderr)
    # Every scrape's cumulative buckets of every server instance, summed over routes (all the
    # series of one target carry the same scrape timestamp).
    raw = raw_samples(args.prometheus, 'http_request_duration_ms_bucket{route!="/metrics"}[%ds]' % window_s, at)
    per_target = {}   # (instance, server) -> le -> {t: cumulative}
    for one in raw:
        labels = one["metric"]
        target = (labels.get("instance", "?"), labels.get("server", labels.get("instance", "?")))
        le = float(labels.get("le", "inf").replace("+Inf", "inf"))
        series = per_target.setdefault(target, {}).setdefault(le, {})
        for t, v in one["values"]:
            series[float(t)] = series.get(float(t), 0.0) + float(v)
    total_rate = None
    by_server = {}
    p99_buckets = None
    for (instance, server), by_le in per_target.items():
        for le, samples in by_le.items():
            values = sorted(samples.items())
            intervals = counter_intervals(values)
            if math.isinf(le):
                bins, covered = spread(intervals, first, last, RATE_BIN_S)
                rate = [b / RATE_BIN_S if c else None for b, c in zip(bins, covered)]
                by_server[server] = add_series(by_server.get(server), rate)
                total_rate = add_series(total_rate, rate)
            bins, covered = spread(intervals, first, last, P99_BIN_S)
            if p99_buckets is None:
                p99_buckets = [dict() for _ in bins]
            for k, (b, c) in enumerate(zip(bins, covered)):
                if c:
                    p99_buckets[k][le] = p99_buckets[k].get(le, 0.0) + b
    if total_rate is None:
        print("run-picture: Prometheus has no request counts for this run (was it scraping the servers?)",
              file=sys.stderr)
        total_rate = []
    run["series"]["rps"] = [[round(first + (k + 0.5) * RATE_BIN_S - args.start, 3), v] for k, v in enumerate(total_rate)]
    for server, rate in sorted(by_server.items()):
        run["series"]["rps " + server] = [[round(first + (k + 0.5) * RATE_BIN_S - args.start, 3), v]
                                          for k, v in enumerate(rate)]
    # Cumulative buckets per bin -> per-bucket counts -> p99 as Prometheus would compute it.
    p99 = []
    for k, cumulative in enumerate(p99_buckets or []):
        bounds = sorted(cumulative)
        per_bucket, previous = {}, 0.0
        for bound in bounds:
            per_bucket[bound] = max(0.0, cumulative[bound] - previous)
            previous = cumulative[bound]
        p99.append([round(first + (k + 0.5) * P99_BIN_S - args.start, 3), quantile(0.99, per_bucket) if bounds else None])
    run["series"]["p99_ms"] = p99
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
        print("run-picture: no runs to draw", file=sys.stderr)
        return 2
    x_min = -BEFORE_S
    x_max = max(run["end"] - run["start"] for run in runs) + AFTER_S
    top_rps = max([p[1] for run in runs for p in run["series"].get("rps", []) if p[1] is not None] or [1])
    top_p99 = max([p[1] for run in runs for p in run["series"].get("p99_ms", []) if p[1] is not None] or [1])
    rps_max, p99_max = nice_ceiling(top_rps * 1.05), nice_ceiling(top_p99 * 1.05)
    marks = [0] + [run["end"] - run["start"] for run in runs]

    def colour(i):
        return COLOURS[i % len(COLOURS)]

    # One colour per server name on the whole page (app is the same colour in every run).
    server_names = sorted({key[4:] for run in runs for key in run["series"] if key.startswith("rps ")},
                          key=lambda name: (len(name), name))

    def server_colour(name):
        return SERVER_COLOURS[server_names.index(name) % len(SERVER_COLOURS)]

    body = []
    title = "Load test runs" if len(runs) > 1 else "Load test run: %s" % (runs[0].get("label") or "run")
    body.append("<h1>%s</h1>" % html.escape(title))
    body.append("<p>Requests per second (all servers) and p99 latency over time, from the servers' "
                "metrics in Prometheus (scraped every 5 s, so each scrape interval's requests are spread evenly over "
                "it: edges look softer than they were); p99 per 5 s from the servers' duration histograms, "
                "interpolated within a bucket. "
                "Dashed grey lines: each run's start and end. Axes are shared: the same height means the same "
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
                        fmt(result.get("non2xx"))))
    body.append("</table>")
    for i, run in enumerate(runs):
        servers = sorted(key for key in run["series"] if key.startswith("rps "))
        lines = [("all servers", colour(i), False, run["series"].get("rps", []))]
        lines += [(key[4:], server_colour(key[4:]), True, run["series"][key]) for key in servers]
        body.append('<section class="run"><h2>%s</h2>' % html.escape(run.get("label") or "run"))
        body.append(svg_chart("Requests per second", "req/s", lines, x_min, x_max, rps_max, [0, run["end"] - run["start"]]))
        body.append(svg_chart("p99 latency", "ms", [("all servers", colour(i), False, run["series"].get("p99_ms", []))],
                              x_min, x_max, p99_max, [0, run["end"] - run["start"]]))
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
    parser = argparse.ArgumentParser(prog="run-picture.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="keep a run's series from Prometheus")
    fetch.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    fetch.add_argument("--start", type=float, required=True, help="run start, seconds since the epoch")
    fetch.add_argument("--end", type=float, required=True, help="run end, seconds since the epoch")
    fetch.add_argument("--out", required=True)
    fetch.add_argument("--result", help="the load generator's --json file of the run")
    fetch.add_argument("--label")
    render = commands.add_parser("render", help="draw runs into one HTML file")
    render.add_argument("out")
    render.add_argument("series", nargs="+")
    args = parser.parse_args(argv)
    try:
        return cmd_fetch(args) if args.command == "fetch" else cmd_render(args)
    except (OSError, RuntimeError, ValueError) as error:
        print("run-picture: %s" % error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
