"""make compare: the saved results read for what each is (a load test run, a ceiling, a sweep),
runs paired by mix and size (connections, duration), each pair's ratio printed layout against
layout, with the CPU split and each server's share; ceilings beside the runs of their layout.
read_result and report are pure (the unit tests feed them synthetic files); cmd_compare
finds the files and prints."""
import glob
import json
import os
import re
import subprocess
import sys

from lab.procs import die, say

WIDTH = 100


def infer_mix(result):
    routes = " ".join(result.get("by_route") or {})
    return "scenario" if "/report" in routes else "browse"


def read_result(path):
    """One saved result as a flat dict (kind, name, mix, layout, size, figures), or None when
    PATH is no result of the lab.  Results from before the lab wrote its fields get them from
    the name and the routes."""
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(r, dict):
        return None
    name = os.path.basename(path)[:-5] if path.endswith(".json") else os.path.basename(path)
    kind = r.get("kind") or ("run" if "rps" in r else None)
    if kind not in ("run", "ceiling", "sweep"):
        return None
    m = re.match(r"(?:demo-)?(\d+)-servers?", name)
    servers = r.get("servers") or (int(m.group(1)) if m else len(r.get("by_server") or {}) or 1)
    out = {"kind": kind, "name": name, "mix": r.get("mix") or infer_mix(r), "servers": servers,
           "server_cpus": r.get("server_cpus") or "", "balance": r.get("balance") or "round_robin",
           "report_mode": r.get("report_mode") or "live", "cpu": r.get("cpu") or {},
           "limit": (r.get("limit") or {}).get("part", "")}
    if kind == "run":
        lat = r.get("latency_ms") or {}
        by_server = r.get("by_server") or {}
        total = sum(v.get("requests", 0) for v in by_server.values()) or 1
        size = r.get("size") or {}
        out.update(connections=r.get("connections"), duration_s=round(float(r.get("duration_s") or 0)),
                   asked=size.get("duration"),
                   rps=float(r.get("rps") or 0), p99=float(lat.get("p99") or 0),
                   failures=r.get("failures", (r.get("errors") or 0) + (r.get("timeouts") or 0) + (r.get("status_5xx") or 0)),
                   shares=[(k, v.get("requests", 0) / total, (v.get("latency_ms") or {}).get("p99"))
                           for k, v in sorted(by_server.items(), key=lambda i: (len(i[0]), i[0]))])
    elif kind == "ceiling":
        out.update(connections=r.get("connections"), ceiling_rps=float(r.get("ceiling_rps") or 0),
                   slo=r.get("slo") or {})
    else:
        out.update(points=r.get("points") or [], usl=r.get("usl"), balance=r.get("balance") or "round_robin")
    return out


def layout_key(r):
    """What makes two results the same layout (make demo's apart from the learner's own)."""
    return (r["name"].startswith("demo-"), r["servers"], r["server_cpus"],
            r["balance"] if r["servers"] > 1 else "", r["report_mode"])


def cpu_text(cpu):
    if not cpu:
        return "-"
    return "%.2f %.2f %.2f %.2f" % (cpu.get("servers", 0), cpu.get("postgres", 0), cpu.get("nginx", 0),
                                    cpu.get("loadgen", 0))


def clip(text):
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def ratio_line(a, b, what, va, vb, extra=""):
    return clip("  %s / %s: %.2fx %s%s" % (b["name"], a["name"], vb / va if va else 0.0, what, extra))


def sizes_of(runs):
    """RUNS grouped by size: {(connections, label): [runs]}.  The duration asked for when the
    lab kept it, else the measured one, the same size within 15% (a run lasts a little longer
    than asked while the last answers come in)."""
    groups = {}
    for r in sorted(runs, key=lambda r: (r["connections"] or 0, r["duration_s"])):
        conns = r["connections"] or 0
        if r.get("asked"):
            groups.setdefault((conns, r["asked"]), []).append(r)
            continue
        for (c, label), members in groups.items():
            base = members[0]["duration_s"]
            if c == conns and not members[0].get("asked") and abs(r["duration_s"] - base) <= 0.15 * max(base, 1):
                members.append(r)
                break
        else:
            groups.setdefault((conns, "%d s" % r["duration_s"]), []).append(r)
    return groups


def pair_lines(group, label, what, value, extra=lambda a, b: ""):
    """Each pair's ratio, layout against layout: by name when it fits, else by the rows'
    letters (LABEL gives a run's letter)."""
    out = []
    for i, a in enumerate(group):
        for b in group[i + 1:]:
            if layout_key(a)[1:] == layout_key(b)[1:]:
                continue  # the same layout twice (the demo's and yours): no pair to learn from
            ratio = value(b) / value(a) if value(a) else 0.0
            line = "  %s / %s: %.2fx %s%s" % (b["name"], a["name"], ratio, what, extra(a, b))
            if len(line) > WIDTH:
                line = "  %s / %s: %.2fx %s%s" % (label(b), label(a), ratio, what, extra(a, b))
            out.append(clip(line))
    return out


def slo_text(slo):
    return "p99 <= %s ms, %s failures" % (slo.get("p99_ms", "?"), slo.get("failures", "?")) if slo else "SLO ?"


def report(results):
    """The lines of make compare for RESULTS (read_result's dicts)."""
    lines = []
    runs = [r for r in results if r["kind"] == "run"]
    ceilings = [r for r in results if r["kind"] == "ceiling"]
    sweeps = [r for r in results if r["kind"] == "sweep"]
    for mix in sorted({r["mix"] for r in runs + ceilings}):
        mix_ceilings = sorted((c for c in ceilings if c["mix"] == mix), key=lambda c: (c["servers"], c["name"]))
        ceiling_of = {}
        for c in mix_ceilings:
            ceiling_of.setdefault(layout_key(c), c)
        sizes = sizes_of([r for r in runs if r["mix"] == mix])
        for (conns, secs), group in sizes.items():
            group.sort(key=lambda r: (r["servers"], r["name"]))
            letter = {id(r): chr(ord("a") + i) for i, r in enumerate(group)}
            lines.append("")
            lines.append("%s mix, %d connections for %s:" % (mix, conns, secs))
            lines.append("    %-42s %8s %8s %4s %9s  %s" % ("run", "req/s", "p99 ms", "fail", "ceiling/s",
                                                           "CPU: srv pg ngx gen"))
            for r in group:
                c = ceiling_of.get(layout_key(r))
                name = r["name"]
                if len(name) > 42:  # a name of its own line, the figures under it
                    lines.append("  %s %s" % (letter[id(r)], name))
                    name = ""
                lines.append(clip("  %s %-42s %8.1f %8.1f %4d %9s  %s" % (
                    letter[id(r)] if name else " ", name, r["rps"], r["p99"], r["failures"] or 0,
                    "%.0f" % c["ceiling_rps"] if c else "-", cpu_text(r["cpu"]))))
                if len(r["shares"]) > 1:
                    lines.append(clip("    per server: %s" % (", ".join(
                        "%s %.0f%% (p99 %s ms)" % (k, 100 * share, "%.0f" % p99 if p99 is not None else "?")
                        for k, share, p99 in r["shares"]))))
            lines += pair_lines(group, lambda r: letter[id(r)], "requests/s", lambda r: r["rps"],
                                lambda a, b: ", p99 %.2fx" % (b["p99"] / a["p99"]) if a["p99"] else "")
        if len(sizes) > 1:
            lines.append("  not paired across sizes: the %s mix's runs differ in connections or duration:" % mix)
            lines.append(clip("    %s" % "; ".join("%d connections for %s" % s for s in sizes)))
        by_slo = {}
        for c in mix_ceilings:
            by_slo.setdefault((json.dumps(c["slo"], sort_keys=True), c.get("connections")), []).append(c)
        for (_, conns), group in by_slo.items():
            letter = {id(c): chr(ord("a") + i) for i, c in enumerate(group)}
            lines.append("")
            lines.append(clip("%s mix, ceilings (the highest arrival rate within %s; %s connections):"
                              % (mix, slo_text(group[0]["slo"]), conns if conns is not None else "?")))
            lines.append("    %-42s %12s  %s" % ("layout (results ...-ceiling.json)", "requests/s",
                                                 "CPU at it: srv pg ngx gen"))
            for c in group:
                name = c["name"][:-len("-ceiling")] if c["name"].endswith("-ceiling") else c["name"]
                if len(name) > 42:
                    lines.append("  %s %s" % (letter[id(c)], name))
                    name = ""
                lines.append(clip("  %s %-42s %12.0f  %s" % (letter[id(c)] if name else " ", name,
                                                            c["ceiling_rps"], cpu_text(c["cpu"]))))
            lines += pair_lines(group, lambda c: letter[id(c)], "ceiling", lambda c: c["ceiling_rps"])
        if len(by_slo) > 1:
            lines.append("  not paired across these groups: the %s mix's ceilings differ in SLO or connections" % mix)
    for s in sorted(sweeps, key=lambda s: s["name"]):
        lines.append("")
        points = ", ".join("%d: %.0f" % (p.get("servers", 0), p.get("ceiling_rps", 0)) for p in s["points"])
        lines.append(clip("%s (a sweep, %s mix): ceilings by servers %s" % (s["name"], s["mix"], points)))
        u = s.get("usl")
        if u:
            peak = u.get("peak_servers")
            lines.append(clip("  USL sigma %.4f, kappa %.5f, R^2 %.3f, peak %s" % (
                u["sigma"], u["kappa"], u["r2"], "%.1f servers" % peak if peak else "none in sight")))
    lines.append("")
    lines.append("CPU: cores used by the API servers, PostgreSQL, nginx and the load generator.")
    return lines


def pictures_of(lab, files):
    series = [f[:-5] + ".series.json" for f in files if os.path.isfile(f[:-5] + ".series.json")]
    if not series:
        return
    out = os.path.join(lab.settings.results, "runs.html")
    if subprocess.run([sys.executable, os.path.join(lab.settings.repo, "lab", "picture.py"), "render",
                       out] + series).returncode == 0:
        say("the runs side by side, over time: %s" % out)


def cmd_compare(lab, args):
    s = lab.settings
    s.mkdirs()
    files = list(args)
    if not files:
        files = sorted((f for f in glob.glob(os.path.join(s.results, "*.json")) if not f.endswith(".series.json")),
                       key=os.path.getmtime)
    results = [r for r in (read_result(f) for f in files) if r]
    if not results:
        die("no saved load test results in %s; run make loadtest first" % s.results)
    if len(results) == 1:
        die("only one saved result (%s); compare needs two: make loadtest again in another layout "
            "(make scale SERVERS=2) or with MIX=browse" % results[0]["name"])
    for line in report(results):
        print(line)
    pictures_of(lab, [f for f, r in zip(files, (read_result(f) for f in files)) if r and r["kind"] == "run"])
    return 0
