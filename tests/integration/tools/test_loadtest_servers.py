"""test_loadtest_servers.py: catalog-loadtest's route-by-server table against the servers' own
/metrics: two catalog-servers (SERVER_ID one and two) behind nginx round robin, the scenario's
three routes through nginx for 2 s; each server's http_requests_total, by route, before and
after the run, must equal the load generator's by_route_server cells for that server exactly.

Real parts: the test cluster's PostgreSQL (tests/run.sh starts it), two catalog-servers, nginx
(its config written here, in a temporary folder, on a free loopback port).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_loadtest_servers"
suite = harness.Suite("loadtest_servers")
# The load generator's route names and the servers' route labels (server/route_table.h's table).
ROUTES = {"GET /products?category=electronics": "/products", "GET /products/1": "/products/:id",
          "GET /report": "/report"}


def requests_by_route(port):
    """{route label: answers} from the server's http_requests_total (every method and status)."""
    status, _, data = harness.http(port, "GET", "/metrics")
    counts = {}
    for m in re.finditer(rb'^http_requests_total\{[^}]*route="([^"]+)"[^}]*\} (\d+)$', data, re.M):
        route = m.group(1).decode()
        counts[route] = counts.get(route, 0) + int(m.group(2))
    return counts


def main():
    folder = tempfile.mkdtemp(prefix="catalog-loadtest-servers.")
    os.chmod(folder, 0o755)
    env = harness.make_db(NAME, products=200, orders=2000)
    servers = [harness.Server(dict(env, SERVER_ID=sid, DB_POOL_MAX="3")).start()
               for sid in ("one", "two")]
    nginx = None
    try:
        nginx, port = harness.nginx_in_front(folder, [s.port for s in servers], "/health/live")
        before = {sid: requests_by_route(s.port) for sid, s in zip(("one", "two"), servers)}
        out = os.path.join(folder, "run.json")
        proc = subprocess.run([harness.binary("catalog-loadtest"), "-c", "8", "-t", "2", "-d", "2",
                               "--json", out, f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60)
        after = {sid: requests_by_route(s.port) for sid, s in zip(("one", "two"), servers)}
        suite.equal("load through nginx: exit 0", proc.returncode, 0)
        with open(out) as f:
            r = json.load(f)
        suite.equal("no failures", r["failures"], 0)
        table = r.get("by_route_server") or {}
        suite.equal("by_route_server: the three routes", sorted(table), sorted(ROUTES))
        for name, label in ROUTES.items():
            for sid in ("one", "two"):
                served = after[sid].get(label, 0) - before[sid].get(label, 0)
                cell = ((table.get(name) or {}).get(sid) or {}).get("requests")
                suite.check(f"{name} on {sid}: the load generator's {cell} == the server's own "
                            f"/metrics count {served}", cell == served and served > 0,
                            (cell, served))
        suite.check("the text shows the route-by-server table",
                    "By route and server" in proc.stdout
                    and re.search(r"GET /report\s+(one|two)\s+\d+", proc.stdout), proc.stdout)
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for s in servers:
            s.stop()
        harness.drop_db(NAME)
        shutil.rmtree(folder, ignore_errors=True)
    suite.finish()


if __name__ == "__main__":
    main()
