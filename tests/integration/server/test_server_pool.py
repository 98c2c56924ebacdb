"""test_server_pool.py: the database pool and faults: at most DB_POOL_MAX connections under load,
503 + Retry-After on acquire timeout, graceful shutdown with requests in flight, a database
restart, pg_terminate_backend mid-query, and concurrent POST /orders (no lost or doubled rows)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_pool"
suite = harness.Suite(NAME)
PGDIR = os.environ.get("CATALOG_TEST_PGDIR", "")
PG_SH = os.path.join(harness.REPO_ROOT, "scripts", "pg.sh")


def timed(method, path, body=None, timeout=15):
    """harness.timed against this test's server."""
    return harness.timed(port, method, path, body, timeout)


in_threads = harness.in_threads


def server_backends(server_id):
    return int(harness.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            f"'{NAME}' AND application_name = 'catalog-server-{server_id}'"))


def waiting_on_lock(server_id, count, timeout_s=5):
    """Waits until count of the server's backends wait on a lock; returns True if so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = int(harness.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                             f" 'catalog-server-{server_id}' AND wait_event_type = 'Lock'"))
        if n >= count:
            return True
        time.sleep(0.02)
    return False


def in_flight_on_lock(server_id, count, timeout_s=5):
    """Waits until count statements are in flight in the server (db_pool_statements_in_flight)
    and its backends wait on the lock: cheap statements that arrive together may share one
    backend (the pipelined pool), so the backends alone do not count them.  True if so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, _, text, _ = timed("GET", "/metrics")
        in_flight = [line.split()[1] for line in text.decode().split("\n")
                     if line.startswith("db_pool_statements_in_flight ")]
        if in_flight and float(in_flight[0]) >= count and waiting_on_lock(server_id, 1, 0.5):
            return True
        time.sleep(0.02)
    return False


def is_json_error(data, key="error"):
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get(key), str) and value[key] != ""


env = harness.make_db(NAME, products=300, orders=20000)

# ---- at most DB_POOL_MAX connections under concurrent load ---------------------------------------
with harness.Server(dict(env, SERVER_ID="pool-a", DB_POOL_MAX="2", WORKERS="2")) as server:
    port = server.port
    stop = threading.Event()
    counts = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def load(i):
        paths = ["/report", "/products", "/products?category=books", f"/products/{i + 1}"]
        n = 0
        while not stop.is_set():
            status, _, data, _ = timed("GET", paths[n % len(paths)])
            n += 1
            with lock:
                if status == 200:
                    counts["ok"] += 1
                else:
                    counts["bad"].append((paths[(n - 1) % len(paths)], status, data[:100]))

    observed = []

    def poll():
        # one psql session answering query after query: fast enough to poll every ~20 ms
        session = subprocess.Popen(["psql", "-XAtq", "-d", "postgres"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
        query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                 f"'{NAME}' AND application_name = 'catalog-server-pool-a';\n")
        while not stop.is_set():
            session.stdin.write(query)
            session.stdin.flush()
            observed.append(int(session.stdout.readline()))
            time.sleep(0.01)
        session.stdin.close()
        session.wait(timeout=10)
    threads = [threading.Thread(target=load, args=(i,)) for i in range(40)]
    threads.append(threading.Thread(target=poll))
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join()
    suite.check("pool limit: connections polled during the load", len(observed) > 20,
                f"{len(observed)} polls")
    suite.check("pool limit: never more than DB_POOL_MAX=2 connections in pg_stat_activity",
                max(observed or [99]) <= 2, f"max {max(observed or [None])}, seen {sorted(set(observed))}")
    suite.check("pool limit: the pool was used (2 connections seen)", 2 in observed,
                f"seen {sorted(set(observed))}")
    suite.check("pool limit: many requests served", counts["ok"] > 200, f"{counts['ok']} served")
    suite.equal("pool limit: every request succeeded", counts["bad"][:5], [])
    status, _, text, _ = timed("GET", "/metrics")
    lines = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.decode().split("\n")
             if line and not line.startswith("#")}
    suite.equal("pool limit: db_pool_max_connections 2", lines.get("db_pool_max_connections"), "2")
    waits = lines.get("db_pool_acquire_wait_ms_count",
                      lines.get("db_pool_acquire_wait_seconds_count", "0"))
    suite.check("pool limit: the pool wait histogram counts the waits", float(waits) > 0,
                repr(waits))

# ---- 503 + Retry-After when no connection frees up within the acquire timeout -----------------
with harness.Server(dict(env, SERVER_ID="pool-b", DB_POOL_MAX="1", WORKERS="1",
                         DB_POOL_ACQUIRE_TIMEOUT_MS="500")) as server:
    port = server.port
    timed("GET", "/health")  # the one connection is open and idle
    table_lock = harness.TableLock(NAME, hold_s=3)
    threads, results = in_threads([lambda: timed("GET", "/products/1")])
    suite.check("acquire timeout: the first request holds the only connection (waits on the lock)",
                waiting_on_lock("pool-b", 1), "no backend waits on the lock")
    # A cheap statement still joins a pipeline whose oldest statement has run for less than
    # 50 ms (POOL_STALL_MS in server/pool.c); past that, it waits for a connection.
    time.sleep(0.1)
    start = time.monotonic()
    status, headers, data, elapsed = timed("GET", "/products/2")
    suite.equal("acquire timeout: second request gets 503", status, 503)
    suite.check("acquire timeout: the 503 comes after 0.4..1.5 s", 0.4 <= elapsed <= 1.5,
                f"{elapsed:.3f} s")
    suite.check("acquire timeout: Retry-After header",
                headers.get("retry-after", "").isdigit(), repr(headers.get("retry-after")))
    suite.check("acquire timeout: JSON error body", is_json_error(data), repr(data[:120]))
    suite.equal("acquire timeout: X-Server-Id on the 503", headers.get("x-server-id"), "pool-b")
    status, _, data, _ = timed("GET", "/health/live")
    suite.equal("acquire timeout: /health/live answers meanwhile", status, 200)
    table_lock.wait()
    for t in threads:
        t.join()
    suite.equal("acquire timeout: the waiting request completes with 200 once the lock goes",
                results[0][0], 200)
    status, _, text, _ = timed("GET", "/metrics")
    timeouts = [line for line in text.decode().split("\n")
                if line.startswith("db_pool_acquire_timeouts_total ")]
    suite.check("acquire timeout: db_pool_acquire_timeouts_total >= 1",
                timeouts and float(timeouts[0].split()[1]) >= 1, repr(timeouts))
    status, _, _, _ = timed("GET", "/products/2")
    suite.equal("acquire timeout: afterwards requests succeed", status, 200)

# ---- graceful shutdown with requests in flight ------------------------------------------------
server = harness.Server(dict(env, SERVER_ID="pool-c", DB_POOL_MAX="4", WORKERS="2",
                             SHUTDOWN_TIMEOUT_MS="8000")).start()
port = server.port
try:
    timed("GET", "/health")
    table_lock = harness.TableLock(NAME, hold_s=2)
    threads, results = in_threads([lambda i=i: timed("GET", f"/products/{i + 1}")
                                   for i in range(3)])
    suite.check("shutdown: 3 requests in flight (waiting on the lock)",
                in_flight_on_lock("pool-c", 3), "not all in flight")
    signal_time = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.settimeout(1)
            answer = sock.recv(100)
        refused = f"connected, answer {answer[:40]!r}"
    except (ConnectionRefusedError, ConnectionResetError):
        refused = True
    except OSError as error:
        refused = f"{error!r}"
    suite.equal("shutdown: new connections refused after SIGTERM", refused, True)
    suite.check("shutdown: still running while requests are in flight",
                server.proc.poll() is None, f"exited {server.proc.poll()}")
    table_lock.wait()
    for t in threads:
        t.join()
    suite.equal("shutdown: in-flight requests complete with 200",
                [r[0] for r in results], [200, 200, 200])
    try:
        code = server.proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        code = "still running"
    elapsed = time.monotonic() - signal_time
    suite.equal("shutdown: exit status 0", code, 0)
    suite.check("shutdown: exits within SHUTDOWN_TIMEOUT_MS (8 s)", elapsed < 8,
                f"{elapsed:.2f} s")
finally:
    server.stop()

# a request stuck longer than SHUTDOWN_TIMEOUT_MS does not keep the process alive
server = harness.Server(dict(env, SERVER_ID="pool-d", DB_POOL_MAX="2", WORKERS="1",
                             SHUTDOWN_TIMEOUT_MS="1000")).start()
port = server.port
try:
    timed("GET", "/health")
    table_lock = harness.TableLock(NAME, hold_s=6)
    threads, results = in_threads([lambda: timed("GET", "/products/1")])
    waiting_on_lock("pool-d", 1)
    signal_time = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = "still running after 5 s"
    elapsed = time.monotonic() - signal_time
    suite.check("shutdown timeout 1 s with a stuck request: exits in 0.8..3 s",
                isinstance(code, int) and 0.8 <= elapsed <= 3, f"exit {code} after {elapsed:.2f} s")
    suite.equal("shutdown timeout: exit status 0", code, 0)
    table_lock.release()
    for t in threads:
        t.join()
    suite.check("shutdown timeout: the stuck client got an answer or a close, not a hang",
                results[0][3] < 8, repr(results[0][:2]))
finally:
    server.stop()

# ---- the database restarts under the server -----------------------------------------------------
with harness.Server(dict(env, SERVER_ID="pool-e", DB_POOL_MAX="4", WORKERS="2",
                         DB_CONNECT_TIMEOUT_MS="1000")) as server:
    port = server.port
    for i in range(8):
        timed("GET", f"/products/{i + 1}")
    pg_port = os.environ.get("PGPORT") or os.environ.get("DB_PORT")
    suite.check("restart: CATALOG_TEST_PGDIR is set (tests/run.sh)", PGDIR != "", "")
    stopped = subprocess.run([PG_SH, "stop", PGDIR], capture_output=True, text=True, timeout=60)
    try:
        suite.equal("restart: the cluster stopped", stopped.returncode, 0)
        down = [timed("GET", path, timeout=10) for path in
                ["/products/1", "/products", "/report", "/health", "/products/2", "/products/3"]]
        statuses = [d[0] for d in down]
        suite.check("restart: database down: every request answers 5xx",
                    all(isinstance(s, int) and 500 <= s <= 599 for s in statuses), repr(statuses))
        worst = max(d[3] for d in down)
        suite.check("restart: database down: each answer in < 2 s (acquire timeout 5 s)",
                    worst < 2, f"worst {worst:.2f} s")
        suite.check("restart: database down: JSON error bodies",
                    all(is_json_error(d[2]) or is_json_error(d[2], "message") for d in down),
                    repr([d[2][:60] for d in down]))
        suite.check("restart: /health answers 500 {\"status\":\"error\",\"message\":...}",
                    down[3][0] == 500 and down[3][2].startswith(b'{"status":"error","message":'),
                    f"got {down[3][0]} {down[3][2][:100]!r}")
        status, _, _, _ = timed("GET", "/health/live")
        suite.equal("restart: /health/live still 200", status, 200)
        suite.check("restart: server still running", server.proc.poll() is None,
                    f"exit {server.proc.poll()}")
    finally:
        started = subprocess.run([PG_SH, "start", PGDIR, pg_port], capture_output=True,
                                 text=True, timeout=120, env=dict(os.environ, PG_FAST="1"))
    suite.equal("restart: the cluster started again on its port", started.returncode, 0)
    start = time.monotonic()
    recovered = None
    while time.monotonic() - start < 15:
        status, _, _, _ = timed("GET", "/products/1", timeout=5)
        if status == 200:
            recovered = time.monotonic() - start
            break
        time.sleep(0.1)
    suite.check("restart: requests succeed again within 5 s of the database's return",
                recovered is not None and recovered < 5, f"recovered after {recovered}")
    results = [timed("GET", p)[0] for p in ["/products/1", "/report", "/health", "/products"] * 3]
    suite.equal("restart: then every request succeeds", results, [200] * 12)
    suite.check("restart: same server process (not restarted)", server.proc.poll() is None, "")

# ---- pg_terminate_backend on the server's connection mid-query --------------------------------
with harness.Server(dict(env, SERVER_ID="pool-f", DB_POOL_MAX="1", WORKERS="1")) as server:
    port = server.port
    timed("GET", "/health")
    for label, method, path, body in [("GET", "GET", "/products/5", None),
                                      ("POST", "POST", "/orders",
                                       {"product_id": 5, "quantity": 1})]:
        orders_before = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
        table_lock = harness.TableLock(NAME, hold_s=3)
        threads, results = in_threads([lambda: timed(method, path, body)])
        suite.check(f"terminate {label}: the query waits on the lock",
                    waiting_on_lock("pool-f", 1), "not waiting")
        killed = harness.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE application_name = 'catalog-server-pool-f'")
        suite.equal(f"terminate {label}: one backend terminated", killed, "1")
        table_lock.wait()
        for t in threads:
            t.join()
        status, headers, data, elapsed = results[0]
        ok = 200 if method == "GET" else 201
        suite.check(f"terminate {label}: one clean answer (5xx JSON error or {ok})",
                    (status == ok) or (isinstance(status, int) and 500 <= status <= 599 and
                                       is_json_error(data)), f"got {status} {data[:100]!r}")
        orders_after = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
        if method == "POST":
            suite.equal("terminate POST: rows added = 1 if 201 else 0",
                        orders_after - orders_before, 1 if status == 201 else 0)
        after = [timed("GET", f"/products/{i + 1}")[0] for i in range(5)]
        suite.equal(f"terminate {label}: the next requests succeed", after, [200] * 5)
        suite.check(f"terminate {label}: server still running", server.proc.poll() is None, "")

# ---- concurrent POST /orders: no lost or doubled writes -----------------------------------------
with harness.Server(dict(env, SERVER_ID="pool-g", DB_POOL_MAX="4", WORKERS="2")) as server:
    port = server.port
    max_before = int(harness.psql("SELECT max(id) FROM orders", db=NAME))
    count_before = int(harness.psql("SELECT count(*) FROM orders", db=NAME))

    def writer(t):
        mine = []
        for i in range(50):
            status, _, data, _ = timed("POST", "/orders",
                                       {"product_id": (t * 50 + i) % 300 + 1, "quantity": i % 5 + 1})
            mine.append((status, json.loads(data) if status == 201 else data[:100]))
        return mine
    threads, results = in_threads([lambda t=t: writer(t) for t in range(8)])
    for t in threads:
        t.join()
    answers = [a for r in results for a in r]
    created = [value for status, value in answers if status == 201]
    suite.equal("concurrent orders: all 400 answered 201", len(created), 400)
    suite.equal("concurrent orders: the failures", [a for a in answers if a[0] != 201][:3], [])
    ids = [value["id"] for value in created]
    suite.equal("concurrent orders: ids unique", len(set(ids)), len(ids))
    new_rows = harness.psql(f"SELECT id, product_id, quantity, total_cents FROM orders WHERE id >"
                            f" {max_before} ORDER BY id", db=NAME).split("\n")
    suite.equal("concurrent orders: new rows = 201 answers",
                int(harness.psql("SELECT count(*) FROM orders", db=NAME)) - count_before,
                len(created))
    suite.equal("concurrent orders: the rows are exactly the answered ones",
                sorted(new_rows),
                sorted(f"{v['id']}|{v['product_id']}|{v['quantity']}|{v['total_cents']}"
                       for v in created))

suite.finish()
