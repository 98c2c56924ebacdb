"""scenario_options.py: section 3, the scenario's options on its mix: A (1 against 2 worker
threads), B (2 one-core servers behind nginx), C (REPORT_MODE=rollup against live)."""
import os

from report import failures_text, rates, ratio, say, table, verdict
from settings import CONNECTIONS, DURATION_S, MIX, POOL, ROUNDS
from stack import Server, combine, failure_kinds, load, nginx_in_front, stack_run


def section(cluster, folder):
    """Every layout in both report modes, ROUNDS rounds alternating.  Returns (title, body)."""
    servers = []
    nginx = None
    try:
        say("\n== 3. options A (workers), B (2 one-core servers behind nginx), C (rollup)")
        option_rows = []
        rounds = {}
        for _ in range(ROUNDS):
            for mode in ("live", "rollup"):
                for workers in (1, 2):
                    server = Server(cluster, folder, f"a{workers}-{mode}", WORKERS=workers,
                                    REPORT_MODE=mode)
                    servers.append(server)
                    rounds.setdefault((mode, f"A{workers}"), []).append(
                        stack_run(server, folder, MIX, f"A WORKERS={workers} {mode}"))
                    server.stop()
                    servers.clear()
                pair = [Server(cluster, folder, name, cpus=str(index % (os.cpu_count() or 1)),
                               WORKERS=1, DB_POOL_MAX=POOL // 2, REPORT_MODE=mode)
                        for index, name in enumerate(("app", "app2"))]
                servers.extend(pair)
                nginx, lb_port = nginx_in_front(folder, [s.port for s in pair])
                before = sum(s.cpu_seconds() for s in pair)
                result = load(folder, lb_port, MIX, f"B 2 servers {mode}")
                after = sum(s.cpu_seconds() for s in pair)
                rounds.setdefault((mode, "B"), []).append({
                    "rps": result["rps"], "failures": result["failures"],
                    "p99": result["latency_ms"]["p99"], "requests": result["requests"],
                    "cpu_s": after - before, "kinds": failure_kinds(result),
                    "share": {k: v["requests"] for k, v in result.get("by_server", {}).items()}})
                nginx.terminate()
                nginx.wait(timeout=10)
                nginx = None
                for server in pair:
                    server.stop()
                servers.clear()
        results = {key: combine(runs) for key, runs in rounds.items()}
        for mode in ("live", "rollup"):
            base = results[(mode, "A1")]["rps"]
            for key, label in (("A1", "one server, WORKERS=1"), ("A2", "one server, WORKERS=2"),
                               ("B", "B: 2 servers (WORKERS=1, one CPU each via taskset, "
                                     "DB_POOL_MAX=5 each) behind nginx")):
                run = results[(mode, key)]
                option_rows.append([f"REPORT_MODE={mode}", label,
                                    f"{run['rps']:,.0f} ({rates(run['rps_all'])})",
                                    f"{ratio(run['rps'], base):.2f}x", failures_text(run),
                                    f"{run['p99']:.1f}", f"{run['cpu_ms_per_request']:.3f}"])
                say(f"  {mode} {label}: {run['rps']:,.0f} req/s ({ratio(run['rps'], base):.2f}x)"
                    f", failures {run['failures']}, p99 {run['p99']:.1f} ms")
        c_ratio_1 = ratio(results[("rollup", "A1")]["rps"], results[("live", "A1")]["rps"])
        c_ratio_2 = ratio(results[("rollup", "A2")]["rps"], results[("live", "A2")]["rps"])
        c_ratio_b = ratio(results[("rollup", "B")]["rps"], results[("live", "B")]["rps"])
        c_line = (f"Option C, rollup / live on the mix: {c_ratio_1:.1f}x with WORKERS=1, "
                  f"{c_ratio_2:.1f}x with WORKERS=2, {c_ratio_b:.1f}x behind nginx "
                  "(target >= 10x)")
        c_line += ": " + verdict(min(c_ratio_1, c_ratio_2, c_ratio_b) >= 10)
        say("  " + c_line)
        shares = results[("live", "B")].get("share", {})
        return (
            "3. The scenario's three options, on the scenario's mix",
            f"catalog-loadtest -c {CONNECTIONS} on the mix (category, /products/1, /report), "
            f"{ROUNDS} rounds of {DURATION_S} s per row (median, every round in brackets), "
            "the layouts alternating. Ratios against one server with one worker in the same "
            "report mode. Server CPU is per request, summed over the servers.\n\n"
            + table(["report mode", "layout", "requests/s", "vs 1 worker", "failures",
                     "p99 ms", "server CPU ms/request"], option_rows)
            + f"\n\n{c_line}.\n\nRound robin behind nginx (live): "
            + ", ".join(f"{k} {v}" for k, v in sorted(shares.items())))
    finally:
        if nginx is not None:
            nginx.terminate()
        for server in servers:
            server.stop()
