"""cost.py: section 2, the server's CPU per request per route (process_cpu_seconds_total before
and after a run) and its resident memory with 100 and with 10,000 open idle connections."""
import json
import os
import subprocess
import sys

from report import say, table, verdict
from settings import CONNECTIONS, DURATION_S, HERE
from stack import Server, stack_run


def section(cluster, folder, main_server, limit):
    """Measures on main_server (section 1's, which it stops) and servers of its own; limit:
    section 1's runs.  Returns (title, body)."""
    servers = []
    try:
        say("\n== 2. server CPU per request (process_cpu_seconds_total) and memory")
        cost_rows = []
        for label, (_, run) in [("GET /products?category=electronics", limit["category.sql"]),
                                ("GET /products/:id", limit["product.sql"]),
                                ("mix (live report)", limit["mix.sql"])]:
            cost_rows.append([label, run["requests"], f"{run['cpu_ms_per_request']:.4f}"])
        short_s = max(3, DURATION_S // 2)
        extra = [("GET /products (100 cheapest)", ["/products"]),
                 ("GET /report (live)", ["/report"]),
                 ("GET /health", ["/health"]),
                 ("POST /orders", ['POST /orders {"product_id":1,"quantity":1}'])]
        for label, paths in extra:
            run = stack_run(main_server, folder, paths, "cost " + label, duration_s=short_s)
            cost_rows.append([label, run["requests"], f"{run['cpu_ms_per_request']:.4f}"])
        rollup_server = Server(cluster, folder, "rollup", REPORT_MODE="rollup")
        servers.append(rollup_server)
        run = stack_run(rollup_server, folder, ["/report"], "cost report rollup",
                        duration_s=short_s)
        cost_rows.append(["GET /report (REPORT_MODE=rollup)", run["requests"],
                          f"{run['cpu_ms_per_request']:.4f}"])
        for row in cost_rows:
            say(f"  {row[0]}: {row[2]} ms CPU per request over {row[1]} requests")
        main_server.stop()
        rollup_server.stop()
        servers.clear()

        memory_server = Server(cluster, folder, "memory", MAX_CONNECTIONS=10100)
        servers.append(memory_server)
        proc = subprocess.run([sys.executable, os.path.join(HERE, "idle_connections.py"),
                               str(memory_server.port), str(memory_server.pid), "100", "10000"],
                              capture_output=True, text=True, timeout=300)
        memory = json.loads(proc.stdout or "{}")
        memory_server.stop()
        servers.clear()
        rss = memory.get("rss_kib", {})
        memory_line = (f"resident memory: {memory.get('baseline_kib', 0) / 1024:.1f} MiB started, "
                       f"{rss.get('100', 0) / 1024:.1f} MiB with 100 open idle connections, "
                       f"{rss.get('10000', 0) / 1024:.1f} MiB with 10,000"
                       + (f" (error: {memory['error']})" if "error" in memory else ""))
        if "100" in rss and "10000" in rss:
            memory_line += (f"; {(rss['10000'] - rss['100']) / 9900:.2f} KiB per extra "
                            "connection")
        say("  " + memory_line)
        return (
            "2. Cost per request and memory",
            "Server CPU = the change of process_cpu_seconds_total (user + system) over a run "
            "divided by the requests of that run (catalog-loadtest, "
            f"{CONNECTIONS} connections). Targets: /products?category=electronics <= 0.5 ms "
            "(Node original ~7 ms), /products/:id <= 0.03 ms (Node ~0.28 ms).\n\n"
            + table(["route", "requests", "server CPU ms/request"], cost_rows)
            + "\n\nTargets: /products?category=electronics <= 0.5 ms: "
            + verdict(limit["category.sql"][1]["cpu_ms_per_request"] <= 0.5)
            + "; /products/:id <= 0.03 ms: "
            + verdict(limit["product.sql"][1]["cpu_ms_per_request"] <= 0.03)
            + " (CPU time per request rises when the CPUs are contended: more context "
            "switches, colder caches, smaller batches per wake-up)."
            + "\n\nMemory (VmRSS; each connection made one GET /health/live and stays open, "
            "idle, keep-alive; scripts/bench/idle_connections.py): " + memory_line + ".")
    finally:
        for server in servers:
            server.stop()
