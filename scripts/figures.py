#!/usr/bin/env python3
"""figures.py: the measured figures of the docs, recorded once and checked everywhere.

A figure a learner compares with their own run (requests/s, p99, cores, ratios, the seed's time)
is never typed into README.md, SCENARIO.md, solution/ANSWERS.md or docs/ by hand.  It is written
between two HTML comments, invisible once the Markdown is rendered:

    PostgreSQL at <!--fig:s1_pg_cores-->1.81<!--/fig--> of 2 cores

and its value comes from docs/figures/recorded.json, which `record` writes from real runs of the
lab (the scenario's steps, the demo, the seed) together with the machine they ran on (cores, CPU
model, date, how busy it was at the start).  Units stay outside the markers; a figure recorded
over several rounds renders as a range ("150.2 to 161.0").

Usage: scripts/figures.py COMMAND [options]
  record [--out FILE] [--rounds N] [--duration S] [--add]
          brings up a throwaway lab (its own folder, free ports below 32768, full seed), runs the
          scenario's steps and `make demo` in it, writes FILE (docs/figures/recorded.json), stops
          the lab.  About 10 minutes a round (two by default: each figure then reads as the range
          of its rounds); stops by itself after --max-seconds (2700).  --add keeps FILE's rounds
          and adds these (same settings only), so the ranges span recordings of several days or
          machines, each kept with its machine (`make figures ADD=1`).
  rewrite [--recorded FILE]
          puts each marked figure's recorded value into the docs (only the text between markers).
  check [--recorded FILE]
          exits 1, naming file and line, when a marked figure differs from its recorded value,
          names an unknown figure, or when a figure-like number stands unmarked in an answer's
          "Measured:" lines or the answer key's tables (solution/ANSWERS.md).  Timing-free:
          tests/unit/test_figures.py runs it in `make test`.
  compare [--recorded FILE] FRESH
          prints each figure of FRESH (a file written by record) beside the recorded one, with
          the ratio fresh/recorded; `make bench` runs it after a fresh record.
  bench   record into a temporary file, then compare it with the recorded one (`make bench`).

`make figures` is `record` then `rewrite`: the one command that updates every figure.
Standard library only.  To add a figure: a FIGURES entry below (which run, which field, which
kind), the marker in the text, then `make figures`.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDED = os.path.join(REPO, "docs", "figures", "recorded.json")
# The files whose marked figures are checked and rewritten.
DOCS = ["README.md", "SCENARIO.md", "solution/ANSWERS.md", "solution/README.md", "docs/*.md"]
# Where an unmarked figure-like number is an error: the answer key's measured lines and tables.
STRICT = "solution/ANSWERS.md"
MARK = re.compile(r"<!--fig:([a-z0-9_]+)-->(.*?)<!--/fig-->")

# ---------------------------------------------------------------------------------------------
# What each run is: the command a learner types for it (for the record), and how record runs it.
# Step runs are named after the scenario's steps; demo runs are read from `make demo`'s results.
RUNS = {
    "s1": ("make loadtest", "Step 2: scenario mix, one server"),
    "b1": ("SERVER_CPUS=0.25 make scale SERVERS=1; MIX=browse make loadtest",
           "Step 2: browse mix, one server of 0.25 CPU"),
    "a_b": ("SERVER_CPUS=0.5 make scale SERVERS=1; MIX=browse make loadtest",
            "Step 3 A: browse mix, one server of 0.5 CPU"),
    "w1": ("SERVER_CPUS=1 make scale SERVERS=1; make loadtest", "Step 3 A: scenario mix, one worker"),
    "w2": ("SERVER_CPUS=2 make scale SERVERS=1; make loadtest", "Step 3 A: scenario mix, two workers"),
    "r": ("REPORT_MODE=rollup make up; LOAD_NAME=1-server-rollup make loadtest",
          "Step 3 C: scenario mix, rollup report"),
    "p20": ("DB_BUDGET=20 make scale SERVERS=1; LOAD_NAME=1-server-pool20 make loadtest",
            "Q4: scenario mix, pool of 20"),
    "s2": ("make scale SERVERS=2; make loadtest", "Step 5: scenario mix, two servers"),
    "b2": ("SERVER_CPUS=0.25 make scale SERVERS=2; MIX=browse make loadtest",
           "Step 5: browse mix, two servers of 0.25 CPU"),
    "b2_lc": ("SERVER_CPUS=0.25 BALANCE=least_conn make scale SERVERS=2; MIX=browse make loadtest",
              "Step 5b: browse mix, two servers of 0.25 CPU, least_conn"),
    "s2_lc": ("BALANCE=least_conn make scale SERVERS=2; make loadtest",
              "Step 5b: scenario mix, two servers, least_conn"),
    "s7p": ("DB_CPUS=0.5 make scale SERVERS=2; make loadtest",
            "Step 7: scenario mix, two servers, PostgreSQL of 0.5 CPU, no replica"),
    "s7r": ("DB_CPUS=0.5 DB_REPLICAS=1 make scale SERVERS=2; make loadtest",
            "Step 7: scenario mix, two servers, PostgreSQL of 0.5 CPU and one replica of 0.5 CPU"),
    "kill": ("make scale SERVERS=2; build/catalog-loadtest -c 20 -d 8s (entry point); kill app2 2 s in",
             "Q18: a server killed under load"),
    "c_s1": ("make scale SERVERS=1; make ceiling", "Step 2: the scenario mix's ceiling, one server"),
    "c_b1": ("SERVER_CPUS=0.25 make scale SERVERS=1; MIX=browse make ceiling",
             "Step 2: the browse mix's ceiling, one server of 0.25 CPU"),
    "c_s2": ("make scale SERVERS=2; make ceiling", "Step 5: the scenario mix's ceiling, two servers"),
    "c_b2": ("SERVER_CPUS=0.25 make scale SERVERS=2; MIX=browse make ceiling",
             "Step 5: the browse mix's ceiling, two servers of 0.25 CPU"),
    "d_c1": ("make demo", "make demo: the browse mix's ceiling, one server of 0.25 CPU"),
    "d_c2": ("make demo", "make demo: the browse mix's ceiling, two servers of 0.25 CPU"),
    "d_b1": ("make demo", "make demo: browse mix, one server of 0.25 CPU"),
    "d_s1": ("make demo", "make demo: scenario mix, one server of 0.25 CPU"),
    "d_b2": ("make demo", "make demo: browse mix, two servers of 0.25 CPU"),
    "d_s2": ("make demo", "make demo: scenario mix, two servers of 0.25 CPU"),
    "seed": ("make up (on an empty database)", "the full seed, 5,000 products and 500,000 orders"),
    "explain": ("EXPLAIN (ANALYZE) of the report statements (sql/statements.sql) in psql",
                "the report statements alone"),
}


def run_field(field):
    return lambda raw, run: raw[run][field]


def share(server):
    return lambda raw, run: raw[run]["shares"].get(server, 0.0)


def server_latency(server, field):
    """A server's p50 or p99 of a two-server run (the load generator's by_server)."""
    return lambda raw, run: raw[run]["latency_by_server"][server][field]


def ratio(top, bottom):
    return lambda raw, run: raw[top]["rps"] / max(raw[bottom]["rps"], 1e-9)


def route_p50(route):
    return lambda raw, run: raw[run]["p50_by_route"][route]  # a route renamed fails the recording


def ceiling_ratio(top, bottom):
    return lambda raw, run: raw[top]["ceiling_rps"] / max(raw[bottom]["ceiling_rps"], 1e-9)


def reports_rps(raw, run):
    return raw[run]["requests_by_route"].get("GET /report", 0) / max(raw[run]["duration_s"], 1e-9)


def server_ms_per_request(raw, run):
    return 1000.0 * raw[run]["server_cores"] / max(raw[run]["rps"], 1e-9)


# name: (run, kind, value function).  Kinds are how a value is written (render below).
FIGURES = {}


def _run_figures(run, *fields):
    kinds = {"rps": "rps", "p99_ms": "ms", "server_cores": "cores", "pg_cores": "cores",
             "verdict": "verdict", "failures": "count", "requests": "count"}
    for field in fields:
        FIGURES["%s_%s" % (run, field.replace("_ms", ""))] = (run, kinds[field], run_field(field))


for _run in ("s1", "b1", "s2", "b2", "r", "p20", "w1", "w2", "a_b", "d_b1", "d_s1", "d_b2", "d_s2", "b2_lc",
             "s2_lc", "s7p", "s7r"):
    _run_figures(_run, "rps", "p99_ms", "server_cores", "pg_cores", "verdict", "failures")
# The ceilings (make ceiling, and make demo's): the highest rate held within the SLO, and its p99.
for _run in ("c_s1", "c_b1", "c_s2", "c_b2", "d_c1", "d_c2"):
    FIGURES[_run + "_rps"] = (_run, "rps", run_field("ceiling_rps"))
    FIGURES[_run + "_p99"] = (_run, "ms", run_field("ceiling_p99_ms"))
# Step 5b: each server's p50 and p99 under round robin (s2, b2) and least_conn (s2_lc, b2_lc).
for _run in ("s2", "b2", "s2_lc", "b2_lc"):
    for _server in ("app", "app2"):
        for _field in ("p50", "p99"):
            FIGURES["%s_%s_%s" % (_run, _server, _field)] = (_run, "ms", server_latency(_server, _field))
FIGURES.update({
    "s1_report_p50": ("s1", "ms", route_p50("GET /report")),
    "s1_listing_p50": ("s1", "ms", route_p50("GET /products?category=electronics")),
    "s1_reports_rps": ("s1", "rps", reports_rps),
    "r_ratio": ("r", "ratio", ratio("r", "s1")),
    "p20_ratio": ("p20", "ratio", ratio("p20", "s1")),
    "w_ratio": ("w2", "ratio", ratio("w2", "w1")),
    "a_b_ratio": ("a_b", "ratio", ratio("a_b", "b1")),
    "s2_ratio": ("s2", "ratio", ratio("s2", "s1")),
    "b2_ratio": ("b2", "ratio", ratio("b2", "b1")),
    "s2_share_app": ("s2", "pct", share("app")),
    "s2_share_app2": ("s2", "pct", share("app2")),
    "b2_share_app": ("b2", "pct", share("app")),
    "b2_share_app2": ("b2", "pct", share("app2")),
    "b2_lc_ratio": ("b2_lc", "ratio", ratio("b2_lc", "b2")),
    "s2_lc_ratio": ("s2_lc", "ratio", ratio("s2_lc", "s2")),
    "d_browse_ratio": ("d_b2", "ratio", ratio("d_b2", "d_b1")),
    "d_scenario_ratio": ("d_s2", "ratio", ratio("d_s2", "d_s1")),
    "d_b1_server_ms": ("d_b1", "ms_fine", server_ms_per_request),
    "s7_ratio": ("s7r", "ratio", ratio("s7r", "s7p")),
    "s7r_lag_ms": ("s7r", "ms", run_field("lag_max_ms")),
    "c_s2_ratio": ("c_s2", "ratio", ceiling_ratio("c_s2", "c_s1")),
    "c_b2_ratio": ("c_b2", "ratio", ceiling_ratio("c_b2", "c_b1")),
    "d_ceiling_ratio": ("d_c2", "ratio", ceiling_ratio("d_c2", "d_c1")),
    "kill_requests": ("kill", "count", run_field("requests")),
    "kill_failures": ("kill", "count", run_field("failures")),
    "kill_share_app": ("kill", "pct", share("app")),
    "kill_share_app2": ("kill", "pct", share("app2")),
    "seed_s": ("seed", "s", run_field("seconds")),
    "explain_live_ms": ("explain", "ms_fine", run_field("live_ms")),
    "explain_rollup_ms": ("explain", "ms_fine", run_field("rollup_ms")),
})


def render_one(kind, value):
    if kind == "rps":
        return "{:,.1f}".format(value)
    if kind == "ms":
        return "{:,.0f}".format(value)
    if kind == "ms_fine":
        return "{:,.2f}".format(value) if value < 1 else "{:,.1f}".format(value)
    if kind == "cores":
        return "%.2f" % value
    if kind == "ratio":
        return "%.2f" % value
    if kind == "pct":
        return "%.1f" % value
    if kind == "s":
        return "%.1f" % value
    if kind == "count":
        return "{:,}".format(int(value))
    if kind == "verdict":
        return str(value).upper()
    raise ValueError("unknown kind %r" % kind)


def render(figure):
    """The text of a recorded figure: its value, or "LOW to HIGH" when its rounds differ."""
    kind, values = figure["kind"], figure["values"]
    if kind == "text":
        return values[0]
    if kind == "verdict":
        order = {"green": 0, "yellow": 1, "red": 2}
        levels = sorted(set(values), key=lambda v: order.get(v, 3))
        return " or ".join(render_one(kind, v) for v in levels)
    texts = [render_one(kind, v) for v in (min(values), max(values))]
    return texts[0] if texts[0] == texts[1] else "%s to %s" % tuple(texts)


def machines_of(data):
    """The machines of a recorded file, one per recording (`record --add` appends one); a file
    written before there could be several has one "machine"."""
    return data.get("machines") or [data["machine"]]


def _days(machines):
    """The recordings' dates: "2026-12-06", "2026-12-06 and 2026-12-07", "A, B and C"."""
    days = sorted(set(m["date"][:10] for m in machines))
    return days[0] if len(days) == 1 else "%s and %s" % (", ".join(days[:-1]), days[-1])


def _kinds(machines):
    """The machines grouped by what they are (cores, CPU, OS), in order of first recording."""
    groups = {}
    for m in machines:
        groups.setdefault((m["cores"], m["cpu_model"], m["os"]), []).append(m)
    return list(groups.items())


def machine_text(machines):
    """The machine line the docs carry next to the figures: what, when, and whether it was busy.
    MACHINES: a recorded file's list of them (machines_of)."""
    text = "; ".join("%d cores (%s), %s, %s" % (cores, model, os_name, _days(group))
                     for (cores, model, os_name), group in _kinds(machines))
    busy = [m for m in machines if m.get("provisional")]
    if busy:
        text += ("; provisional: the machine was already %.0f%% busy with other work when %s started"
                 % (100 * max(m["busy_share_at_start"] for m in busy),
                    "the recording" if len(machines) == 1 else "%d of the %d recordings" % (len(busy), len(machines))))
    return text


def machine_short_text(machines):
    """The machine in a few words, for a sentence: "2 cores, AMD EPYC, 2026-12-06"."""
    text = "; ".join("%d cores, %s, %s" % (cores, model, _days(group)) for (cores, model, _), group in _kinds(machines))
    return text + (", provisional" if any(m.get("provisional") for m in machines) else "")


def settings_text(recording):
    return ("%d connections for %d s per step run; `make demo`: %s connections for %s"
            % (recording["connections"], recording["duration_s"], recording["demo_connections"],
               recording["demo_duration"]))


# ---------------------------------------------------------------------------------------------
# make bench's figures: read from BENCHMARKS.md (which make bench writes) when the docs are checked
# or rewritten, so README's "Measured" table follows the last run of record.  A table cell is
# (section number, the row's leading cells, the column's header); its first number is the figure.
BENCHMARKS = os.path.join(REPO, "BENCHMARKS.md")
BENCH_CELLS = {
    "bench_mix_pct": (1, ("scenario mix (category, product, report)",), "stack / pgbench"),
    "bench_category_pct": (1, ("/products?category=electronics",), "stack / pgbench"),
    "bench_product_pct": (1, ("/products/:id",), "stack / pgbench"),
    "bench_goal_product_before": (0, ("`/products/1`, stack (100 connections, `DB_POOL_MAX=10`) / pgbench plain",), "before"),
    "bench_goal_product": (0, ("`/products/1`, stack (100 connections, `DB_POOL_MAX=10`) / pgbench plain",), "new"),
    "bench_goal_pool1_before": (0, ("`/products/1` with `DB_POOL_MAX=1` / with 10 (one connection carries the load)",),
                                "before"),
    "bench_goal_pool1": (0, ("`/products/1` with `DB_POOL_MAX=1` / with 10 (one connection carries the load)",), "new"),
    "bench_goal_category_before": (0, ("`/products?category=electronics`, stack / pgbench with the reference's listing "
                                       "(every column)",), "before"),
    "bench_goal_category": (0, ("`/products?category=electronics`, stack / pgbench with the reference's listing "
                                "(every column)",), "new"),
    "bench_goal_report_before": (0, ("`/report` live (10 connections), stack / pgbench with the reference's SQL",),
                                 "before"),
    "bench_goal_report": (0, ("`/report` live (10 connections), stack / pgbench with the reference's SQL",), "new"),
    "bench_goal_mix_before": (0, ("scenario mix, stack / pgbench with the reference's three statements",), "before"),
    "bench_goal_mix": (0, ("scenario mix, stack / pgbench with the reference's three statements",), "new"),
    "bench_goal_cpu_before": (0, ("server CPU per category request at 100 connections (user + system, PostgreSQL over "
                                  "loopback TCP)",), "before"),
    "bench_goal_cpu": (0, ("server CPU per category request at 100 connections (user + system, PostgreSQL over "
                           "loopback TCP)",), "new"),
    "bench_nginx_cpu": (0, ("nginx sending the same listing from a file (one worker, sendfile off), CPU per request: "
                            "the cost of sending the bytes alone",), "new"),
    "bench_cpu_category": (2, ("GET /products?category=electronics",), "server CPU ms/request"),
    "bench_cpu_product": (2, ("GET /products/:id",), "server CPU ms/request"),
    "bench_cpu_report": (2, ("GET /report (live)",), "server CPU ms/request"),
    "bench_cpu_orders": (2, ("POST /orders",), "server CPU ms/request"),
    "bench_cpu_health": (2, ("GET /health",), "server CPU ms/request"),
    "bench_cpu_products": (2, ("GET /products (100 cheapest)",), "server CPU ms/request"),
    "bench_rollup_rps": (3, ("REPORT_MODE=rollup", "one server, WORKERS=1"), "requests/s"),
    "bench_rollup_p99": (3, ("REPORT_MODE=rollup", "one server, WORKERS=1"), "p99 ms"),
    "bench_a_ratio": (3, ("REPORT_MODE=live", "one server, WORKERS=2"), "vs 1 worker"),
    "bench_b_ratio": (3, ("REPORT_MODE=live", "B: 2 servers (WORKERS=1, one CPU each via taskset, DB_POOL_MAX=5 each) "
                                              "behind nginx"), "vs 1 worker"),
}
# Figures from a sentence of BENCHMARKS.md: (section number, a regular expression; group 1 is it).
BENCH_TEXT = {
    "bench_c_ratio": (3, r"rollup / live on the mix: ([0-9.]+)x with WORKERS=1"),
    "bench_rss_idle": (2, r"resident memory: ([0-9.]+) MiB started"),
    "bench_rss_100": (2, r"([0-9.]+) MiB with 100 open idle connections"),
    "bench_rss_10000": (2, r"([0-9.,]+) MiB with 10,000"),
    "bench_rss_per_connection": (2, r"([0-9.]+) KiB per extra connection"),
    "bench_loadtest_rps": (4, r"requests/s catalog-loadtest/wrk = ([0-9.]+)"),
    "bench_loadtest_p50": (4, r"p50 catalog-loadtest/wrk\s+= ([0-9.]+)"),
    "bench_loadtest_cpu": (4, r"CPU/request catalog-loadtest/wrk = ([0-9.]+)"),
}


def bench_sections(text):
    """{section number: its text} of BENCHMARKS.md ("## N. ..." headings)."""
    parts = re.split(r"^## (\d+)\. .*$", text, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def bench_figures(path=BENCHMARKS):
    """make bench's figures, {name: figure}, read from PATH; a figure it lacks is left out (the
    check then names it as unknown) and so is everything when PATH is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    sections = bench_sections(text)
    found = {}
    for name, (number, keys, column) in BENCH_CELLS.items():
        header = None
        for line in sections.get(number, "").split("\n"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
            if not cells:
                header = None
                continue
            if header is None:
                header = cells
                continue
            if tuple(cells[:len(keys)]) == keys and column in header:
                m = re.match(r"[0-9][0-9,]*(?:\.[0-9]+)?", cells[header.index(column)])
                if m:
                    found[name] = {"kind": "text", "values": [m.group(0)]}
                break
    for name, (number, pattern) in BENCH_TEXT.items():
        m = re.search(pattern, sections.get(number, ""))
        if m:
            found[name] = {"kind": "text", "values": [m.group(1)]}
    head = text.split("\n## ", 1)[0]
    machine = re.search(r"^- machine: ([^,]+), (\d+) CPUs", head, re.M)
    date = re.search(r"^- date: (\S+)", head, re.M)
    busy = re.search(r"^- load on the machine: (\d+%) busy before the start", head, re.M)
    if machine and date:
        found["bench_machine"] = {"kind": "text", "values": ["%s cores, %s, %s%s" % (
            machine.group(2), machine.group(1), date.group(1), ", %s busy before the start" % busy.group(1) if busy else "")]}
    return found


def load_recorded(path, bench_path=BENCHMARKS):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    figures = dict(data["figures"])
    figures.update(bench_figures(bench_path))
    figures["machine"] = {"kind": "text", "values": [machine_text(machines_of(data))]}
    figures["machine_short"] = {"kind": "text", "values": [machine_short_text(machines_of(data))]}
    figures["recording"] = {"kind": "text", "values": [settings_text(data["recording"])]}
    return figures


# ---------------------------------------------------------------------------------------------
# check and rewrite

def doc_files(root):
    import glob
    files = []
    for pattern in DOCS:
        files += sorted(glob.glob(os.path.join(root, pattern)))
    return files


# An unmarked number that looks measured: a decimal, a thousands separator, or a whole number
# followed by ms, %, requests/s (whole seconds and whole ratios are left alone: "8 s" is a
# setting, "near 1x" a yardstick; a measured ratio has decimals).
FIGURE_LIKE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?(?:ms\b|%|"
                         r"requests/s|reports per second)))")


def unmarked_figures(line):
    """The figure-like numbers of LINE outside markers and outside `code`."""
    bare = MARK.sub("", line)
    bare = re.sub(r"`[^`]*`", "", bare)
    # A CPU quota is a setting, not a measurement: "limit 0.25", "of 0.5 cores", "0.25 CPU".
    bare = re.sub(r"\b(?:limit|of) \d+(?:\.\d+)?|\d+(?:\.\d+)?[ -]CPU", "", bare)
    return FIGURE_LIKE.findall(bare)


def strict_lines(lines):
    """Line numbers (0-based) of the answer key's measured text: each "Measured:" paragraph and
    every table row after "## The tables"."""
    chosen, in_measured, in_tables = [], False, False
    for i, line in enumerate(lines):
        if line.startswith("## The tables"):
            in_tables = True
        if line.startswith("Measured:"):
            in_measured = True
        elif not line.strip() or line.startswith("**Q") or line.startswith("Reproduce:"):
            in_measured = False
        if in_measured or (in_tables and line.startswith("|")):
            chosen.append(i)
    return chosen


def check(root, recorded_path, bench_path=BENCHMARKS):
    figures = load_recorded(recorded_path, bench_path)
    problems = []
    for path in doc_files(root):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            for m in MARK.finditer(line):
                name, text = m.group(1), m.group(2)
                if name not in figures:
                    problems.append("%s:%d: figure '%s' is not in %s" % (rel, i + 1, name, recorded_path))
                elif text != render(figures[name]):
                    problems.append("%s:%d: figure '%s' says '%s', the recording says '%s' (make figures rewrites it)"
                                    % (rel, i + 1, name, text, render(figures[name])))
        if rel == STRICT:
            for i in strict_lines(lines):
                for number in unmarked_figures(lines[i]):
                    problems.append("%s:%d: '%s' is a figure without a marker: record it (scripts/figures.py, "
                                    "FIGURES) and write <!--fig:NAME-->...<!--/fig-->, or drop it"
                                    % (rel, i + 1, number))
    return problems


def rewrite(root, recorded_path, bench_path=BENCHMARKS):
    figures = load_recorded(recorded_path, bench_path)
    changed = []
    for path in doc_files(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()

        def put(m):
            name = m.group(1)
            if name not in figures:
                raise SystemExit("figures: %s names figure '%s', which %s does not have"
                                 % (os.path.relpath(path, root), name, recorded_path))
            return "<!--fig:%s-->%s<!--/fig-->" % (name, render(figures[name]))
        new = MARK.sub(put, text)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            changed.append(os.path.relpath(path, root))
    return changed


# ---------------------------------------------------------------------------------------------
# record

STARTED = time.monotonic()


def say(text):
    print("figures: [%3.0f s] %s" % (time.monotonic() - STARTED, text), flush=True)


def busy_share(seconds=2.0):
    """The whole machine's busy CPU share over SECONDS (/proc/stat), as make bench measures it."""
    def sample():
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]
    total_1, idle_1 = sample()
    time.sleep(seconds)
    total_2, idle_2 = sample()
    return 1 - (idle_2 - idle_1) / max(1, total_2 - total_1)


def machine_info():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
                    break
    except OSError:
        pass
    os_name = "unknown OS"
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            os_name = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', f.read(), re.M)).get("PRETTY_NAME", os_name)
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    busy = busy_share()
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "os": os_name,
        "kernel": os.uname().release,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "busy_share_at_start": round(busy, 3),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        # Above a fifth busy before the first run, other work shares the cores being measured.
        "provisional": busy > 0.2,
    }


def port_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(count):
    """A first port such that COUNT consecutive ports below the ephemeral range are free."""
    import random
    for _ in range(200):
        base = random.randrange(10000, 32000 - count)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise SystemExit("figures: no block of %d free ports below 32768" % count)


class Lab:
    """A throwaway lab: its own LAB_DIR, ports, cgroup; every command bounded in time."""

    def __init__(self, deadline):
        self.deadline = deadline
        base = free_block(21)
        self.dir = tempfile.mkdtemp(prefix="catalog-figures.")
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as postgres when we are root
        # A CPU-quota group of its own beside the lab's default one (v2 as root, or v1), so that it
        # never shares one with a developer's lab; none where the lab finds its own (a user's v2).
        sys.path.insert(0, REPO)
        from lab import cgroups
        default = cgroups.default_group()
        self.cgroup = os.path.join(os.path.dirname(default), "catalog-figures-%d" % os.getpid()) if default else ""
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith(("PG", "DB_", "LOAD_", "DEMO_", "MAKE")) or k in
                       ("BASE_URL", "SERVER_CPUS", "MIX", "REPORT_MODE", "WORKERS", "SERVERS", "PURGE",
                        "SEED_PRODUCTS", "SEED_ORDERS", "MFLAGS"))}
        env.update(LAB_DIR=self.dir, LAB_APP_PORT=str(base), LAB_LB_PORT=str(base + 12),
                   LAB_PROM_PORT=str(base + 13), LAB_PG_PORT=str(base + 14), LAB_GRAFANA_PORT=str(base + 15),
                   LAB_PG_EXPORTER_PORT=str(base + 16), LAB_PROCESS_EXPORTER_PORT=str(base + 17),
                   LAB_NODE_EXPORTER_PORT=str(base + 18), LAB_REPLICA_PORT=str(base + 19),
                   LAB_SKIP_DEPS="1", ACCESS_LOG="0",
                   LAB_CGROUP=self.cgroup, PYTHONPATH=REPO)
        self.env = env
        self.results = os.path.join(self.dir, "results")

    def run(self, *args, extra=None, capture=False):
        remaining = self.deadline - time.monotonic()
        if remaining < 5:
            raise TimeoutError("out of time before: lab %s" % " ".join(args))
        env = dict(self.env, **(extra or {}))
        say("lab %s%s" % (" ".join("%s=%s" % kv for kv in (extra or {}).items()) + " " if extra else "",
                          " ".join(args)))
        proc = subprocess.run([os.path.join(REPO, "scripts", "lab.sh")] + list(args), env=env,
                              timeout=remaining, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout
        with open(os.path.join(self.dir, "record.log"), "a", encoding="utf-8") as f:
            f.write(out)
        if proc.returncode not in (0, 3) and args[0] != "down":
            sys.stdout.write(out[-3000:])
            raise RuntimeError("lab %s failed (exit %d)" % (" ".join(args), proc.returncode))
        return out

    def state(self):
        with open(os.path.join(self.dir, "run", "state.json"), encoding="utf-8") as f:
            return json.load(f)

    def down(self):
        """make down PURGE=1 for this lab, then its CPU group and folder go; never fails."""
        try:
            subprocess.run([os.path.join(REPO, "scripts", "lab.sh"), "down", "--purge"], env=self.env, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, OSError):
            pass
        if self.cgroup and os.path.isdir(self.cgroup):
            for name in os.listdir(self.cgroup):
                if os.path.isdir(os.path.join(self.cgroup, name)):
                    try:
                        os.rmdir(os.path.join(self.cgroup, name))
                    except OSError:
                        pass
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# The lab's CPU line, "API servers 0.24 cores (limit ...), PostgreSQL 0.63 cores; ..." (or, once
# it counts nginx and the load generator too, "PostgreSQL 0.63, nginx ...").
CPU_LINE = re.compile(r"API servers ([0-9.]+) cores.*?PostgreSQL ([0-9.]+)")


def new_results(results, since):
    """The load test results (*.json, not *.series.json) written in RESULTS since SINCE (a
    time.time()), oldest first."""
    import glob
    files = [f for f in glob.glob(os.path.join(results, "*.json"))
             if not f.endswith(".series.json") and os.path.getmtime(f) >= since - 1]
    return sorted(files, key=os.path.getmtime)


def read_run(path, cpu_text=""):
    """The figures of one load test: PATH (catalog-loadtest --json) and where the CPU went: the
    result's own "cpu" (servers, postgres) when the lab wrote one, else the lab's CPU line, from
    CPU_TEXT (what make loadtest printed) or else PATH's .cpu file beside it."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    raw = {
        "file": os.path.basename(path),
        "rps": r["rps"], "p99_ms": r["latency_ms"]["p99"], "failures": r["failures"], "requests": r["requests"],
        "duration_s": r["duration_s"], "verdict": (r.get("verdict") or {}).get("level", ""),
        "p50_by_route": {k: v["latency_ms"]["p50"] for k, v in r.get("by_route", {}).items()},
        "requests_by_route": {k: v["requests"] for k, v in r.get("by_route", {}).items()},
    }
    total = sum(v["requests"] for v in r.get("by_server", {}).values()) or 1
    raw["shares"] = {k: 100.0 * v["requests"] / total for k, v in r.get("by_server", {}).items()}
    raw["latency_by_server"] = {k: {"p50": v["latency_ms"]["p50"], "p99": v["latency_ms"]["p99"]}
                                for k, v in r.get("by_server", {}).items() if "latency_ms" in v}
    cpu = r.get("cpu") or {}
    if "servers" in cpu and "postgres" in cpu:
        raw["server_cores"], raw["pg_cores"] = float(cpu["servers"]), float(cpu["postgres"])
        return raw
    found = CPU_LINE.findall(cpu_text)
    if not found and os.path.isfile(path[:-5] + ".cpu"):
        with open(path[:-5] + ".cpu", encoding="utf-8") as f:
            found = CPU_LINE.findall(f.read())
    if not found:
        raise RuntimeError("no CPU line (API servers ... PostgreSQL ...) for %s" % os.path.basename(path))
    raw["server_cores"], raw["pg_cores"] = float(found[-1][0]), float(found[-1][1])
    return raw


def read_ceiling(path):
    """The figures of one ceiling search (catalog-loadtest ceiling --json, as the lab writes it)."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    if r.get("kind") != "ceiling":
        raise RuntimeError("%s is not a ceiling result" % os.path.basename(path))
    return {"file": os.path.basename(path), "ceiling_rps": float(r["ceiling_rps"]),
            "ceiling_p99_ms": float(r.get("ceiling_p99_ms") or 0)}


def demo_runs(results, since, out):
    """{d_b1, d_s1, d_b2, d_s2, d_c1, d_c2: figures} of the results make demo wrote since SINCE:
    the server count and the mix from each file's name (1-server..., 2-servers..., -browse,
    -ceiling), the CPU line from its .cpu file or from the demo's output (OUT: "lab: NAME:" then
    its CPU line)."""
    runs = {}
    for path in new_results(results, since):
        stem = os.path.basename(path)[:-5]
        m = re.search(r"(\d+)-servers?", stem)
        if m and stem.endswith("-ceiling") and not stem.endswith(".hold"):
            runs["d_c" + m.group(1)] = read_ceiling(path)
            continue
        if not m or re.search(r"ceiling|sweep", stem):
            continue
        key = "d_%s%s" % ("b" if "browse" in stem else "s", m.group(1))
        block = re.search(r"%s:\n(?:.*\n){0,3}?.*(CPU during the run:.*)" % re.escape(stem), out)
        runs[key] = read_run(path, block.group(1) if block else "")
    missing = sorted({"d_b1", "d_s1", "d_b2", "d_s2", "d_c1", "d_c2"} - set(runs))
    if missing:
        raise RuntimeError("make demo wrote no result for %s" % ", ".join(missing))
    return runs


def explain_ms(lab, sql):
    """PostgreSQL's own Execution Time of SQL (EXPLAIN ANALYZE), in ms; the best of three."""
    st = lab.state()
    port = st["ports"]["postgres"]
    env = dict(os.environ, PGPASSWORD="postgres")
    best = None
    for _ in range(3):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "catalogdb", "-At",
                              "-c", "EXPLAIN (ANALYZE) " + sql], env=env, capture_output=True, text=True,
                             timeout=60).stdout
        m = re.search(r"Execution Time: ([0-9.]+) ms", out)
        if m:
            best = float(m.group(1)) if best is None else min(best, float(m.group(1)))
    if best is None:
        raise RuntimeError("EXPLAIN ANALYZE gave no Execution Time")
    return best


def kill_run(lab, results):
    """Q18: 8 s of load through nginx with two servers; app2 is killed 2 s in."""
    lab.run("scale", "2")
    st = lab.state()
    app2 = [r for r in st["servers"] if r["id"] == "app2"][0]["pid"]
    out = os.path.join(results, "fig-kill.json")
    url = "http://127.0.0.1:%d" % st["ports"]["nginx"]
    say("load through %s, app2 (pid %d) killed 2 s in" % (url, app2))
    build = os.environ.get("CATALOG_BUILD") or os.path.join(REPO, "build")
    load = subprocess.Popen([os.path.join(build, "catalog-loadtest"), "-c", "20", "-d", "8s", "--json", out,
                             url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    os.kill(app2, signal.SIGKILL)
    load.wait(timeout=60)  # app2 stays dead: make demo, next, starts with make up, which restarts it
    raw = read_run(out, "API servers 0 cores, PostgreSQL 0 cores")  # a bare catalog-loadtest: no CPU line
    del raw["server_cores"], raw["pg_cores"]
    return raw


def sample_lag(lab, lags, stop, every_s=0.5):
    """Appends to LAGS the lag_ms of each replica each server's /health reports (those it can
    measure), every EVERY_S seconds until STOP is set."""
    ports = [r["port"] for r in lab.state()["servers"]]
    while not stop.wait(every_s):
        for port in ports:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as f:
                    body = json.load(f)
            except (OSError, ValueError):
                continue
            lags += [int(r.get("lag_ms") or 0) for r in body.get("replicas") or [] if (r.get("lag_ms") or 0) >= 0]


def record_round(lab, raw, duration, connections):
    res = lab.results
    step = {"LOAD_DURATION": "%ds" % duration, "LOAD_CONNECTIONS": str(connections)}

    def load(key, name, **extra):
        since = time.time()
        out = lab.run("loadtest", extra=dict(step, LOAD_NAME=name, **extra))
        files = new_results(res, since)
        if not files:
            raise RuntimeError("make loadtest wrote no result for %s" % key)
        raw[key] = read_run(files[-1], out)
        r = raw[key]
        say("%s: %.1f requests/s, p99 %.0f ms, %s; servers %.2f cores, PostgreSQL %.2f"
            % (key, r["rps"], r["p99_ms"], r["verdict"], r["server_cores"], r["pg_cores"]))

    def ceiling(key, **extra):
        """make ceiling with its own defaults (what a learner types), not the step runs' sizes."""
        since = time.time()
        lab.run("ceiling", extra=extra)
        files = [f for f in new_results(res, since) if f.endswith("-ceiling.json")]
        if not files:
            raise RuntimeError("make ceiling wrote no result for %s" % key)
        raw[key] = read_ceiling(files[-1])
        say("%s: ceiling %.1f requests/s (p99 %.0f ms)" % (key, raw[key]["ceiling_rps"], raw[key]["ceiling_p99_ms"]))

    lab.run("scale", "1")
    load("s1", "fig-s1")
    ceiling("c_s1")
    lab.run("scale", "1", extra={"SERVER_CPUS": "0.25"})
    load("b1", "fig-b1", MIX="browse")
    ceiling("c_b1", MIX="browse")
    lab.run("scale", "1", extra={"SERVER_CPUS": "0.5"})
    load("a_b", "fig-a", MIX="browse")
    lab.run("scale", "1", extra={"SERVER_CPUS": "1"})
    load("w1", "fig-w1")
    lab.run("scale", "1", extra={"SERVER_CPUS": "2"})
    load("w2", "fig-w2")
    lab.run("down")
    lab.run("up", extra={"REPORT_MODE": "rollup"})
    load("r", "fig-r")
    lab.run("down")
    lab.run("up")
    lab.run("scale", "1", extra={"DB_BUDGET": "20"})
    load("p20", "fig-p20")
    lab.run("scale", "1")
    lab.run("scale", "2")
    load("s2", "fig-s2")
    ceiling("c_s2")
    lab.run("scale", "2", extra={"SERVER_CPUS": "0.25"})
    load("b2", "fig-b2", MIX="browse")
    ceiling("c_b2", MIX="browse")
    lab.run("scale", "2", extra={"SERVER_CPUS": "0.25", "BALANCE": "least_conn"})
    load("b2_lc", "fig-b2-lc", MIX="browse")
    lab.run("scale", "2", extra={"BALANCE": "least_conn"})
    load("s2_lc", "fig-s2-lc")
    lab.run("scale", "2", extra={"BALANCE": "round_robin"})
    raw["kill"] = kill_run(lab, res)
    # Step 7: the database at half a CPU, without and with a replica of the same size; the
    # replica's lag as the servers report it (/health), sampled through the run.
    lab.run("up")
    lab.run("scale", "2", extra={"DB_CPUS": "0.5"})
    load("s7p", "fig-s7-primary")
    lab.run("scale", "2", extra={"DB_REPLICAS": "1"})
    lags, stop = [], threading.Event()
    threading.Thread(target=sample_lag, args=(lab, lags, stop), daemon=True).start()
    try:
        load("s7r", "fig-s7-replica")
    finally:
        stop.set()
    raw["s7r"]["lag_max_ms"] = max(lags) if lags else 0
    say("s7r: replica lag at most %d ms over %d samples of /health" % (raw["s7r"]["lag_max_ms"], len(lags)))
    lab.run("scale", "2", extra={"DB_REPLICAS": "0", "DB_CPUS": ""})


def record(out_path, rounds, duration, connections, max_seconds, add=False):
    """Records ROUNDS rounds into OUT_PATH; with ADD, they are added to the rounds OUT_PATH has
    (merge_recordings), so its ranges span every recording kept.  0, or 1 when a run failed."""
    old = None
    if add:
        try:
            with open(out_path, encoding="utf-8") as f:
                old = json.load(f)
            machines_of(old)
        except (OSError, ValueError, KeyError) as e:
            say("--add: cannot read the recording to add to (%s): %s" % (out_path, e))
            return 1
        wanted = {"duration_s": duration, "connections": connections}
        differ = ["%s %s, not %s" % (k, old["recording"].get(k), v) for k, v in wanted.items()
                  if old["recording"].get(k) != v]
        if differ:
            say("--add: %s was recorded with other settings (%s); a range over both would mix them"
                % (out_path, "; ".join(differ)))
            return 1
    started = time.monotonic()
    deadline = started + max_seconds
    say("measuring how busy the machine is before starting (2 s)")
    machine = machine_info()
    say("machine: " + machine_text([machine]))
    if machine["provisional"]:
        say("the machine is %.0f%% busy already: these figures are provisional (recorded as such)"
            % (100 * machine["busy_share_at_start"]))
    lab = Lab(deadline)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    raws = []
    try:
        say("throwaway lab in %s" % lab.dir)
        out = lab.run("up")
        m = re.search(r"seeded in ([0-9.]+) s", out)
        if not m:
            raise RuntimeError("make up did not say how long the seed took")
        seed = {"seconds": float(m.group(1))}
        say("seed: %.1f s" % seed["seconds"])
        sys.path.insert(0, os.path.join(REPO, "scripts", "bench"))
        import server_sql
        sql = server_sql.statements()
        explain = {"live_ms": explain_ms(lab, sql["report"]), "rollup_ms": explain_ms(lab, sql["report_rollup"])}
        say("report statement: live %.1f ms, rollup %.1f ms" % (explain["live_ms"], explain["rollup_ms"]))
        for i in range(rounds):
            raw = {"seed": seed, "explain": explain}
            say("round %d of %d: the scenario's steps, %d connections for %d s each" % (i + 1, rounds, connections,
                                                                                      duration))
            record_round(lab, raw, duration, connections)
            raws.append(raw)
        demo_duration, demo_connections = "15s", "50"
        say("make demo (%s connections for %s per run)" % (demo_connections, demo_duration))
        since = time.time()
        out = lab.run("demo", extra={"DEMO_DURATION": demo_duration, "DEMO_CONNECTIONS": demo_connections})
        for key, demo_raw in demo_runs(lab.results, since, out).items():
            if "ceiling_rps" in demo_raw:
                say("%s (%s): ceiling %.1f requests/s" % (key, demo_raw["file"], demo_raw["ceiling_rps"]))
            else:
                say("%s (%s): %.1f requests/s, servers %.2f cores, PostgreSQL %.2f"
                    % (key, demo_raw["file"], demo_raw["rps"], demo_raw["server_cores"], demo_raw["pg_cores"]))
            for raw in raws:
                raw[key] = demo_raw
    except KeyboardInterrupt:
        say("interrupted; stopping the lab")
        lab.down()
        return 1
    except Exception as e:  # whatever went wrong, the lab is stopped and its folder removed
        say("failed: %s: %s; stopping the lab" % (type(e).__name__, e))
        lab.down()
        return 1
    lab.down()
    figures = {}
    for name, (run, kind, fn) in sorted(FIGURES.items()):
        values = [fn(raw, run) for raw in raws]
        values = [round(v, 4) if isinstance(v, float) else v for v in values]
        command, what = RUNS[run]
        figures[name] = {"kind": kind, "values": values, "run": run, "what": what, "command": command}
    elapsed = time.monotonic() - started
    machine["busy_share_at_end"] = round(busy_share(1.0), 3)
    data = {
        "about": "Figures of the lab, recorded by scripts/figures.py record (make figures); the docs carry them "
                 "between <!--fig:NAME--> markers and tests/unit/test_figures.py checks they agree.",
        "machines": [machine],
        "recording": {"rounds": rounds, "duration_s": duration, "connections": connections,
                      "demo_duration": "15s", "demo_connections": "50",
                      "recordings": [{"date": machine["date"], "rounds": rounds, "seconds": round(elapsed, 1)}]},
        "figures": figures,
    }
    if old is not None:
        data = merge_recordings(old, data)
    write_recorded(data, out_path)
    say("wrote %s (%d figures, %d rounds%s) in %.0f s"
        % (out_path, len(figures), data["recording"]["rounds"],
           ", %d recordings" % len(data["machines"]) if old is not None else "", elapsed))
    return 0


def merge_recordings(old, new):
    """One recording from two of the same settings: each figure's values are OLD's rounds then
    NEW's (a figure OLD lacks, or recorded as another kind, has NEW's only; one only OLD has is
    gone: FIGURES no longer names it), the machines and the recordings' dates both kept."""
    def recordings(data):
        rec = data["recording"]
        return rec.get("recordings") or [{"date": machines_of(data)[0]["date"], "rounds": rec["rounds"],
                                          "seconds": rec.get("seconds")}]
    figures = {}
    for name, figure in new["figures"].items():
        before = old["figures"].get(name)
        kept = before["values"] if before and before["kind"] == figure["kind"] else []
        figures[name] = dict(figure, values=kept + figure["values"])
    both = recordings(old) + recordings(new)
    recording = {k: v for k, v in new["recording"].items() if k != "seconds"}
    recording.update(rounds=sum(r["rounds"] for r in both), recordings=both)
    return {"about": new["about"], "machines": machines_of(old) + machines_of(new), "recording": recording,
            "figures": figures}


def write_recorded(data, path):
    """PATH, written whole and renamed into place: one line per figure, so that a new recording's
    diff shows which figures moved."""
    def one(value):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    lines = ["{"]
    for key in ("about", "machines", "recording"):
        lines.append(" %s: %s," % (one(key), one(data[key])))
    lines.append(' "figures": {')
    names = sorted(data["figures"])
    for i, name in enumerate(names):
        lines.append("  %s: %s%s" % (one(name), one(data["figures"][name]), "," if i < len(names) - 1 else ""))
    lines += [" }", "}", ""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------------------------------------
# compare (make bench)

def compare(recorded_path, fresh_path):
    """Prints each recorded figure beside FRESH's, with fresh/recorded, marking a figure that moved
    by more than a quarter or a verdict that changed, and counting the fresh figures that lie
    within the range the docs state (the recorded rounds' lowest to highest); a summary at the end."""
    with open(recorded_path, encoding="utf-8") as f:
        old = json.load(f)
    with open(fresh_path, encoding="utf-8") as f:
        new = json.load(f)
    print("figures: the recorded run (%s)\nfigures: against a fresh one (%s)"
          % (machine_text(machines_of(old)), machine_text(machines_of(new))))
    print("%-22s %-20s %-20s %s" % ("figure", "recorded", "fresh", "fresh/recorded"))
    moved, within, ranged = [], 0, 0
    for name in sorted(old["figures"]):
        a, b = old["figures"][name], new["figures"].get(name)
        if b is None:
            print("%-22s %-20s %-20s" % (name, render(a), "(not recorded)"))
            continue
        ratio_text, flag = "", ""
        if a["kind"] == "verdict":
            flag = "  <- changed" if render(a) != render(b) else ""
        else:
            lo = sum(a["values"]) / len(a["values"])
            hi = sum(b["values"]) / len(b["values"])
            ratio_text = "%.2f" % (hi / lo) if lo else "-"
            flag = "  <- moved" if lo and not 0.8 <= hi / lo <= 1.25 else ""
            if a["kind"] != "text":
                ranged += 1
                inside = all(min(a["values"]) <= v <= max(a["values"]) for v in b["values"])
                within += inside
                ratio_text += "" if inside else " (outside the range)"
        if flag:
            moved.append(name)
        print("%-22s %-20s %-20s %s%s" % (name, render(a), render(b), ratio_text, flag))
    print("figures: %d of %d figures moved by more than a quarter (or changed verdict)%s"
          % (len(moved), len(old["figures"]), "; make figures records them again" if moved else ""))
    rounds = old.get("recording", {}).get("rounds", 1)
    print("figures: %d of %d fresh figures lie within the recorded range (%d round%s recorded)"
          % (within, ranged, rounds, "" if rounds == 1 else "s"))
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="scripts/figures.py", description=__doc__,
                                     epilog="See the file's opening comment and CONTRIBUTING.md, \"Figures\".",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="run the lab's recording runs, write the recorded file")
    p.add_argument("--out", default=RECORDED)
    p.add_argument("--rounds", type=int, default=2, help="rounds of the step runs (figures become ranges; 2)")
    p.add_argument("--duration", type=int, default=10, help="seconds per step run (default 10)")
    p.add_argument("--connections", type=int, default=100, help="connections per step run (default 100)")
    p.add_argument("--max-seconds", type=int, default=2700, help="stop (and fail) after this long (2700)")
    p.add_argument("--add", action="store_true",
                   help="add the rounds to those of --out (recorded with the same settings) instead of replacing them")
    for name, text in (("rewrite", "put the recorded figures into the docs"),
                       ("check", "fail when a doc's figure differs from the recording")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--recorded", default=RECORDED)
        p.add_argument("--root", default=REPO, help=argparse.SUPPRESS)
    p = sub.add_parser("compare", help="a fresh recording beside the recorded one, with ratios")
    p.add_argument("--recorded", default=RECORDED)
    p.add_argument("fresh")
    p = sub.add_parser("bench", help="record into a temporary file, then compare (make bench)")
    p.add_argument("--recorded", default=RECORDED)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record(args.out, args.rounds, args.duration, args.connections, args.max_seconds, args.add)
    if args.command == "rewrite":
        changed = rewrite(args.root, args.recorded, os.path.join(args.root, "BENCHMARKS.md"))
        say("rewrote %s" % (", ".join(changed) if changed else "nothing (every figure already agrees)"))
        problems = check(args.root, args.recorded, os.path.join(args.root, "BENCHMARKS.md"))
        for p in problems:
            print(p)
        return 1 if problems else 0
    if args.command == "check":
        problems = check(args.root, args.recorded, os.path.join(args.root, "BENCHMARKS.md"))
        for p in problems:
            print(p)
        if not problems:
            say("every marked figure agrees with %s" % os.path.relpath(args.recorded, args.root))
        with open(args.recorded, encoding="utf-8") as f:
            machines = machines_of(json.load(f))
        if any(m.get("provisional") for m in machines):
            say("note: the recording is provisional (%s); make figures on a quiet machine replaces it"
                % machine_text(machines))
        return 1 if problems else 0
    if args.command == "compare":
        return compare(args.recorded, args.fresh)
    if args.command == "bench":
        fd, fresh = tempfile.mkstemp(prefix="catalog-figures-fresh.", suffix=".json")
        os.close(fd)
        try:
            rc = record(fresh, 1, 10, 100, 1500)
            if rc == 0:
                rc = compare(args.recorded, fresh)
        finally:
            os.unlink(fresh)
        return rc
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # scripts/figures.py compare ... | head
        sys.stderr.close()
        sys.exit(0)
