"""test_loadtest.py: catalog-loadtest against local python targets: exact counts, per-route and
per-server tallies, 5xx in the verdict, fixed rate, timeouts, nothing listening, compare.

No database needed.  Every run is 1-2 s on loopback; the whole file takes about 15 s.
"""

import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

suite = harness.Suite("loadtest")
LOADTEST = harness.binary("catalog-loadtest")
TMP = tempfile.mkdtemp(prefix="catalog-loadtest-test.")


class Target(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A keep-alive HTTP/1.1 server counting what it serves: per path, per method, per
    X-Server-Id it hands out (alternating between `server_ids`, as a round-robin balancer would
    show), and connections accepted.  /fail answers 503; /chunked answers with a chunked body."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, server_ids=("s1", "s2")):
        self.lock = threading.Lock()
        self.by_path = {}
        self.by_server = {}
        self.by_method = {}
        self.bodies = []
        self.connections = 0
        self.close_headers = 0
        self.server_ids = server_ids
        self.served = 0
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        pair = super().get_request()
        with self.lock:
            self.connections += 1
        return pair

    def total(self):
        with self.lock:
            return sum(self.by_path.values())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one segment (else Nagle + delayed ACK add 40 ms).
    wbufsize = -1

    def log_message(self, *args):
        pass

    def handle_any(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with server.lock:
            server_id = server.server_ids[server.served % len(server.server_ids)]
            server.served += 1
            server.by_path[self.path] = server.by_path.get(self.path, 0) + 1
            server.by_server[server_id] = server.by_server.get(server_id, 0) + 1
            server.by_method[self.command] = server.by_method.get(self.command, 0) + 1
            if body:
                server.bodies.append(body)
            if (self.headers.get("Connection") or "").lower() == "close":
                server.close_headers += 1
        if self.path == "/stall" and server.by_path["/stall"] == 3:
            time.sleep(1.0)  # one slow answer: the -R schedule keeps running behind it
        status = 503 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("X-Server-Id", server_id)
        self.send_header("Content-Type", "application/json")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n")
        else:
            payload = b'{"ok":true}'
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    do_GET = do_POST = handle_any


def run(*args, env_extra=None, timeout_s=30):
    """Runs catalog-loadtest; returns (exit code, stdout, stderr, JSON result or None, seconds)."""
    json_path = os.path.join(TMP, f"run-{time.monotonic_ns()}.json")
    env = dict(os.environ)
    env.pop("BASE_URL", None)
    env.update(env_extra or {})
    start = time.monotonic()
    proc = subprocess.run([LOADTEST, "--json", json_path, *args], capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    elapsed = time.monotonic() - start
    result = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            result = json.load(f)
    return proc.returncode, proc.stdout, proc.stderr, result, elapsed


def show(proc_out, proc_err):
    return f"\n--- stdout\n{proc_out}\n--- stderr\n{proc_err}"


def test_exact_counts_default_routes():
    target = Target()
    code, out, err, r, _ = run("-c", "6", "-t", "2", "-d", "1.5", f"http://127.0.0.1:{target.port}")
    suite.equal("scenario run exits 0", code, 0)
    if not suite.check("scenario run writes JSON", r is not None, show(out, err)):
        return
    served = target.total()
    suite.check("requests > 0", r["requests"] > 0, r["requests"])
    suite.equal("requests counted == requests the server served", r["requests"], served)
    suite.equal("no errors", r["errors"], 0)
    suite.equal("no timeouts", r["timeouts"], 0)
    suite.equal("no unfinished requests", r["unfinished"], 0)
    want_routes = ["GET /products?category=electronics", "GET /products/1", "GET /report"]
    suite.equal("by_route has the scenario's three routes in order", list(r["by_route"]), want_routes)
    for name in want_routes:
        path = name.split(" ", 1)[1]
        suite.equal(f"route {path}: count == server's", r["by_route"][name]["requests"],
                    target.by_path.get(path, 0))
    counts = [r["by_route"][n]["requests"] for n in want_routes]
    suite.check("each connection walks the routes in turn (counts within 6 of each other)",
                max(counts) - min(counts) <= 6, counts)
    suite.equal("by_server tallies == server's X-Server-Id tallies",
                {k: v["requests"] for k, v in r["by_server"].items()}, target.by_server)
    suite.equal("keep-alive: one connection per -c", target.connections, 6)
    for key in ("avg", "p50", "p90", "p99", "p999", "max"):
        suite.check(f"latency_ms.{key} present and positive", r["latency_ms"].get(key, 0) > 0,
                    r["latency_ms"])
    suite.check("p50 <= p90 <= p99 <= p999 <= max",
                r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
                <= r["latency_ms"]["p999"] <= r["latency_ms"]["max"] * 1.005, r["latency_ms"])
    suite.check("rps == requests / duration (within the rounding of duration_s)",
                abs(r["rps"] - r["requests"] / r["duration_s"]) <= r["rps"] * 0.002, r)
    suite.equal("verdict green", r["verdict"]["level"], "green")
    for text in ("Requests", "requests/s", "Timeouts", "Non-2xx", "5xx", "p50", "p99.9",
                 "By server (X-Server-Id)", "Verdict: GREEN"):
        suite.check(f"summary shows '{text}'", text in out, out)
    suite.check("progress line once a second on stderr, plain text when not a tty",
                "progress: 1/" in err and "\r" not in err and "\033" not in err, repr(err))
    target.shutdown()
    return r


def test_paths_post_chunked_and_5xx():
    target = Target(server_ids=("only",))
    body = '{"product_id":1,"quantity":1}'
    code, out, err, r, _ = run("-c", "4", "-t", "1", "-d", "1", "--path", f"POST /orders {body}",
                               "--path", "/chunked", "--path", "/fail",
                               f"http://127.0.0.1:{target.port}")
    if not suite.check("custom paths run writes JSON", r is not None, show(out, err)):
        return
    suite.equal("exits 0 (some 2xx)", code, 0)
    suite.equal("counts exact with POST, chunked and 503", r["requests"], target.total())
    suite.equal("POST bodies arrive intact", set(target.bodies), {body.encode()})
    suite.equal("POST count", r["by_route"]["POST /orders"]["requests"],
                target.by_method.get("POST", 0))
    suite.equal("chunked responses parse without errors", r["by_route"]["GET /chunked"]["errors"], 0)
    fails = r["by_route"]["GET /fail"]["requests"]
    suite.equal("503s counted as 5xx", r["status_5xx"], fails)
    suite.equal("503s counted as non-2xx", r["non2xx"], fails)
    suite.equal("failures = errors + timeouts + 5xx", r["failures"], fails)
    suite.equal("more than 10 5xx make the verdict red", r["verdict"]["level"], "red")
    suite.check("5xx shown on their own line", f"5xx         {fails}" in out, out)


def test_no_keepalive():
    target = Target()
    code, out, err, r, _ = run("-c", "3", "-d", "1", "--no-keepalive", "--path", "/x",
                               f"http://127.0.0.1:{target.port}")
    if not suite.check("--no-keepalive run writes JSON", r is not None, show(out, err)):
        return
    suite.equal("--no-keepalive: counts exact", r["requests"], target.total())
    # Connections still being opened when the run ends are closed without a request.
    suite.check("--no-keepalive: one connection per request",
                target.total() <= target.connections <= target.total() + 3,
                (target.connections, target.total()))
    suite.equal("--no-keepalive: every request says Connection: close", target.close_headers,
                target.total())
    suite.equal("--no-keepalive: no errors", r["errors"], 0)


def test_fixed_rate():
    target = Target()
    code, out, err, r, _ = run("-c", "4", "-d", "2", "-R", "100", "--path", "/r",
                               f"http://127.0.0.1:{target.port}")
    if not suite.check("-R run writes JSON", r is not None, show(out, err)):
        return
    suite.check("-R 100 for 2 s sends 200 +- 10 requests", 190 <= r["requests"] <= 210,
                r["requests"])
    suite.equal("-R: counts exact", r["requests"], target.total())
    suite.equal("-R recorded in the JSON", r["rate_rps"], 100)


def test_coordinated_omission():
    """One 1 s stall at a fixed 20 requests/s on one connection: the ~20 requests that should
    have gone out during the stall count from their intended send times, so p90 shows the stall.
    (Measured from the actual send, only the stalled request would be slow and p90 ~ 1 ms.)"""
    target = Target()
    code, out, err, r, _ = run("-c", "1", "-t", "1", "-d", "2", "-R", "20", "--path", "/stall",
                               f"http://127.0.0.1:{target.port}")
    if not suite.check("-R with a stall writes JSON", r is not None, show(out, err)):
        return
    suite.check("-R keeps the schedule through a stall (~40 requests)", 36 <= r["requests"] <= 42,
                r["requests"])
    suite.check("-R latency from intended send times: p90 > 500 ms", r["latency_ms"]["p90"] > 500,
                r["latency_ms"])
    suite.check("-R: max ~ the stall (>= 950 ms)", r["latency_ms"]["max"] >= 950, r["latency_ms"])


def test_many_server_ids():
    target = Target(server_ids=[f"id{i}" for i in range(80)])
    code, out, err, r, _ = run("-c", "2", "-t", "1", "-d", "0.5", "--path", "/",
                               f"http://127.0.0.1:{target.port}")
    if not suite.check("80 server ids: JSON written", r is not None, show(out, err)):
        return
    suite.equal("80 server ids: 63 named + (other)", len(r["by_server"]), 64)
    suite.check("80 server ids: (other) holds the rest", "(other)" in r["by_server"],
                list(r["by_server"]))
    suite.equal("80 server ids: every response tallied once",
                sum(v["requests"] for v in r["by_server"].values()), r["requests"])


def test_url_path_and_base_url():
    target = Target()
    code, out, err, r, _ = run("-c", "2", "-d", "0.5", f"http://127.0.0.1:{target.port}/only/this")
    suite.equal("a URL with a path tests that path", list(target.by_path), ["/only/this"])
    target2 = Target()
    code, out, err, r, _ = run("-c", "2", "-d", "0.5", "--path", "/a",
                               env_extra={"BASE_URL": f"http://127.0.0.1:{target2.port}"})
    suite.equal("BASE_URL is the default target", list(target2.by_path), ["/a"])
    suite.equal("BASE_URL run exits 0", code, 0)


def test_never_answers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # accepts (in the kernel) but never reads or answers
    port = listener.getsockname()[1]
    code, out, err, r, elapsed = run("-c", "4", "-d", "1", "--timeout", "300ms", "--path", "/",
                                     f"http://127.0.0.1:{port}")
    if not suite.check("silent server: JSON written", r is not None, show(out, err)):
        return
    suite.check("silent server: timeouts counted (>= 4)", r["timeouts"] >= 4, r["timeouts"])
    suite.equal("silent server: no responses", r["requests"], 0)
    suite.check("silent server: run ends on time (< 1 s + timeout + 0.7 s)", elapsed < 2.0, elapsed)
    suite.equal("silent server: exit status 1", code, 1)
    suite.check("silent server: says there was no response", "no response at all" in err, err)
    suite.equal("silent server: verdict red", r["verdict"]["level"], "red")
    listener.close()


def test_nothing_listening():
    port = harness.free_port()
    code, out, err, r, elapsed = run("-c", "4", "-d", "1", f"http://127.0.0.1:{port}")
    suite.equal("nothing listening: exit status 1", code, 1)
    suite.check("nothing listening: clear message",
                "could not connect" in err and "Connection refused" in err
                and "Is the server running" in err, err)
    if r is not None:
        suite.check("nothing listening: connection errors counted", r["errors_by_kind"]["connect"] > 0,
                    r["errors_by_kind"])
    suite.check("nothing listening: ends on time", elapsed < 2.5, elapsed)


def test_usage_errors_and_compare(run_a):
    code, out, err, _, _ = run("http://[::1")
    suite.equal("bad URL: exit 2", code, 2)
    suite.check("bad URL: says so", "bad URL" in err, err)
    code, out, err, _, _ = run("-c", "zero")
    suite.equal("bad -c: exit 2", code, 2)
    proc = subprocess.run([LOADTEST, "--help"], capture_output=True, text=True, timeout=10)
    suite.check("--help lists the flags", proc.returncode == 0 and all(
        f in proc.stdout for f in ("-c", "-d", "-t", "--timeout", "--path", "-R", "--no-keepalive",
                                   "--json")), proc.stdout)
    if run_a is None:
        return
    a = os.path.join(TMP, "one-server.json")
    b = os.path.join(TMP, "two-servers.json")
    with open(a, "w") as f:
        json.dump(run_a, f)
    doubled = dict(run_a, rps=run_a["rps"] * 2, label="")
    with open(b, "w") as f:
        json.dump(doubled, f)
    proc = subprocess.run([LOADTEST, "compare", a, b], capture_output=True, text=True, timeout=10)
    suite.equal("compare exits 0", proc.returncode, 0)
    suite.check("compare labels columns by file name and shows the rps ratio",
                "one-server" in proc.stdout and "two-servers" in proc.stdout
                and "2.00x" in proc.stdout, proc.stdout + proc.stderr)
    proc = subprocess.run([LOADTEST, "compare", a, "/nonexistent.json"], capture_output=True,
                          text=True, timeout=10)
    suite.check("compare with a missing file: exit 2 and names it",
                proc.returncode == 2 and "/nonexistent.json" in proc.stderr, proc.stderr)


def test_per_second():
    """The run second by second (JSON per_second): whole from its first second, adding up to
    the run's totals, failures in the seconds they happened."""
    target = Target()
    code, out, err, r, _ = run("-c", "4", "-t", "2", "-d", "3", "-R", "200", "--path", "/products",
                               "--path", "/fail", f"http://127.0.0.1:{target.port}")
    if not suite.check("per_second: JSON written", r is not None, show(out, err)):
        return
    seconds = r.get("per_second", [])
    suite.check("per_second: one entry a second, at least the run's 3, numbered from 0",
                len(seconds) >= 3 and [s["t"] for s in seconds] == list(range(len(seconds))), seconds)
    suite.check("per_second: every one of the run's 3 seconds has answers (none missing at the start)",
                len(seconds) >= 3 and all(s["requests"] > 0 for s in seconds[:3]), seconds)
    suite.equal("per_second: the requests add up to the run's", sum(s["requests"] for s in seconds),
                r["requests"])
    suite.equal("per_second: the failures add up to the run's (the 503s of /fail)",
                sum(s["failures"] for s in seconds), r["failures"])
    suite.check("per_second: p50 <= p99 in every second with answers",
                all(0 < s["p50_ms"] <= s["p99_ms"] for s in seconds if s["requests"]), seconds)
    target.shutdown()


if __name__ == "__main__":
    if not os.access(LOADTEST, os.X_OK):
        suite.check(f"{LOADTEST} is built", False, "run make first")
        suite.finish()
    first = test_exact_counts_default_routes()
    test_paths_post_chunked_and_5xx()
    test_no_keepalive()
    test_fixed_rate()
    test_coordinated_omission()
    test_many_server_ids()
    test_url_path_and_base_url()
    test_never_answers()
    test_nothing_listening()
    test_usage_errors_and_compare(first)
    test_per_second()
    suite.finish()
