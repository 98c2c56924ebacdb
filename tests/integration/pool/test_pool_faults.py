"""test_pool_faults.py: the pool under the faults an operator meets (issue 12 items 3, 4, 8, 10)
and its pipeline mode (issue 16): a lock on orders at cold start and warm leaves the product
routes answering; a client that resets while its statement waits gets that statement cancelled
in PostgreSQL and frees the connection; a lost connection never makes an order twice; forced
shutdown answers 503; cheap statements share connections, long ones never have one behind them,
a failing statement fails only its own request; DB_PIPELINE=0 turns pipelining off."""

import json
import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_pool_faults"
suite = harness.Suite(NAME)


timed = harness.timed
in_threads = harness.in_threads


metrics = harness.metrics


def backends(server_id, where="true"):
    return harness.backends(f"catalog-server-{server_id}", where)



def reset_after_send(port, request):
    """Sends request and closes with a TCP reset (SO_LINGER 0) once the server holds it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)
    return sock


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


env = harness.make_db(NAME, products=300, orders=5000)

# ---- item 3: a lock on orders at cold start: the product routes answer ------------------------
lock = harness.TableLock(NAME, "orders")
try:
    with harness.Server(dict(env, SERVER_ID="lock-cold", DB_POOL_MAX="4", WORKERS="2",
                             DB_CONNECT_TIMEOUT_MS="1000")) as server:
        calls = [lambda i=i: timed(server.port, "GET", f"/products/{i + 1}") for i in range(6)]
        threads, results = in_threads(calls)
        for t in threads:
            t.join()
        suite.equal("lock cold: GET /products/N answer 200 while orders is locked",
                    [r[0] for r in results], [200] * 6)
        suite.check("lock cold: each within 1 s (connect timeout 1 s)",
                    max(r[3] for r in results) < 1, f"{max(r[3] for r in results):.2f} s")
        status, _, data, _ = timed(server.port, "GET", "/health")
        suite.equal("lock cold: /health (counts products) answers 200", status, 200)
        # /report reads orders: it waits; the products keep answering meanwhile.
        threads, report = in_threads([lambda: timed(server.port, "GET", "/report")])
        harness.wait_for(lambda: backends("lock-cold", "wait_event_type = 'Lock'") >= 1)
        statuses = [timed(server.port, "GET", f"/products/{i + 1}")[0] for i in range(10)]
        suite.equal("lock cold: with /report waiting on the lock, products still 200",
                    statuses, [200] * 10)
        m = metrics(server.port)
        suite.equal("lock cold: no connect error counted", m.get("db_pool_connect_errors_total"), 0)
        lock.release()
        for t in threads:
            t.join()
        suite.equal("lock cold: /report completes once the lock goes", report[0][0], 200)
finally:
    lock.release()

# ---- item 3: warm (every statement prepared somewhere), new connections during the lock ------
with harness.Server(dict(env, SERVER_ID="lock-warm", DB_POOL_MAX="6", WORKERS="2",
                         DB_POOL_IDLE_TIMEOUT_MS="100000")) as server:
    for path in ["/products/1", "/report", "/health", "/products", "/products?category=books"]:
        timed(server.port, "GET", path)
    status, _, _, _ = timed(server.port, "POST", "/orders", {"product_id": 1, "quantity": 1})
    suite.equal("lock warm: an order before the lock", status, 201)
    lock = harness.TableLock(NAME, "orders")
    try:
        threads, orders = in_threads([lambda: timed(server.port, "POST", "/orders",
                                                    {"product_id": 2, "quantity": 1})])
        calls = [lambda i=i: timed(server.port, "GET", f"/products/{i + 1}") for i in range(12)]
        t2, results = in_threads(calls)
        for t in t2:
            t.join()
        suite.equal("lock warm: products answer 200 while an order waits on the lock",
                    [r[0] for r in results], [200] * 12)
    finally:
        lock.release()
    for t in threads:
        t.join()
    suite.equal("lock warm: the waiting order is created once the lock goes", orders[0][0], 201)

# ---- item 4: a client that resets while its statement waits: cancelled in PostgreSQL ----------
with harness.Server(dict(env, SERVER_ID="cancel", DB_POOL_MAX="1", WORKERS="1",
                         DB_POOL_ACQUIRE_TIMEOUT_MS="2000")) as server:
    timed(server.port, "GET", "/products/1")
    before = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
    lock = harness.TableLock(NAME, "orders")
    try:
        sock = reset_after_send(server.port, b"GET /report HTTP/1.1\r\nHost: t\r\n\r\n")
        waiting = harness.wait_for(lambda: backends("cancel", "wait_event_type = 'Lock'") == 1)
        suite.check("cancel: /report waits on the orders lock", waiting, "not waiting")
        reset(sock)
        freed = harness.wait_for(lambda: backends("cancel", "state = 'idle'") == 1, timeout_s=2)
        suite.check("cancel: after the reset the backend is idle in pg_stat_activity (cancelled)",
                    freed, harness.psql("SELECT state, wait_event_type, query FROM"
                                        " pg_stat_activity WHERE application_name ="
                                        " 'catalog-server-cancel'"))
        status, _, _, elapsed = timed(server.port, "GET", "/products/2")
        suite.equal("cancel: the next request succeeds on the one connection", status, 200)
        suite.check("cancel: at once, not after the acquire timeout", elapsed < 1,
                    f"{elapsed:.2f} s")
        suite.equal("cancel: still one connection", backends("cancel"), 1)
        m = metrics(server.port)
        suite.check("cancel: db_pool_cancel_requests_total counts it",
                    m.get("db_pool_cancel_requests_total", 0) >= 1, repr(m.get(
                        "db_pool_cancel_requests_total")))
        # An order abandoned while it waits: cancelled, so no row appears later.
        body = b'{"product_id": 3, "quantity": 1}'
        sock = reset_after_send(server.port, b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type:"
                                b" application/json\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
        suite.check("cancel: the order waits on the lock",
                    harness.wait_for(lambda: backends("cancel", "wait_event_type = 'Lock'") == 1), "")
        reset(sock)
        suite.check("cancel: the abandoned order's statement is cancelled at once",
                    harness.wait_for(lambda: backends("cancel", "state = 'idle'") == 1, timeout_s=2), "")
    finally:
        lock.release()
    time.sleep(0.3)
    after = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
    suite.equal("cancel: an order abandoned while waiting on the lock was not made",
                after - before, 0)
    status, _, _, _ = timed(server.port, "GET", "/report")
    suite.equal("cancel: /report answers 200 afterwards", status, 200)

# ---- item 10: a sent statement is never sent again (no doubled order) --------------------------
with harness.Server(dict(env, SERVER_ID="resend", DB_POOL_MAX="1", WORKERS="1")) as server:
    outcomes = []
    for i in range(4):
        timed(server.port, "GET", "/products/1")  # the connection is open and idle
        before = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
        if i % 2:
            # killed while idle: the next statement is written to a dead connection
            harness.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                         " application_name = 'catalog-server-resend'")
            status, _, data, _ = timed(server.port, "POST", "/orders",
                                       {"product_id": 4, "quantity": 1})
        else:
            # killed while the INSERT waits on a lock: it was sent and did not commit
            lock = harness.TableLock(NAME, "orders")
            threads, res = in_threads([lambda: timed(server.port, "POST", "/orders",
                                                     {"product_id": 4, "quantity": 1})])
            harness.wait_for(lambda: backends("resend", "wait_event_type = 'Lock'") == 1)
            harness.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                         " application_name = 'catalog-server-resend'")
            lock.release()
            for t in threads:
                t.join()
            status, _, data, _ = res[0]
        time.sleep(0.2)
        rows = int(harness.psql("SELECT count(*) FROM orders", db=NAME)) - before
        outcomes.append((i % 2, status, rows))
    suite.check("resend: every order attempt made 1 row if answered 201, else 0 (never 2)",
                all(rows == (1 if status == 201 else 0) for _, status, rows in outcomes),
                repr(outcomes))
    suite.check("resend: a statement killed while waiting is answered 5xx, not re-sent",
                all(isinstance(s, int) and s >= 500 for idle, s, _ in outcomes if not idle),
                repr(outcomes))

# ---- item 10: forced shutdown answers 503, not a bare close ------------------------------------
server = harness.Server(dict(env, SERVER_ID="forced", DB_POOL_MAX="1", WORKERS="1",
                             SHUTDOWN_TIMEOUT_MS="800")).start()
try:
    timed(server.port, "GET", "/products/1")
    lock = harness.TableLock(NAME, "orders")
    try:
        threads, res = in_threads([lambda: timed(server.port, "GET", "/report"),
                                   lambda: (time.sleep(0.3), timed(server.port, "GET",
                                                                    "/products/1"))[1]])
        harness.wait_for(lambda: backends("forced", "wait_event_type = 'Lock'") == 1)
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        code = server.proc.wait(timeout=10)
    finally:
        lock.release()
    suite.equal("forced shutdown: the running and the waiting request get 503",
                [r[0] for r in res], [503, 503])
    suite.check("forced shutdown: JSON error bodies", all(b"shutting down" in r[2] for r in res),
                repr([r[2][:80] for r in res]))
    suite.equal("forced shutdown: exit 0", code, 0)
    suite.equal("forced shutdown: nothing left running in PostgreSQL", harness.wait_for(
        lambda: backends("forced") == 0), True)
finally:
    server.stop()

# ---- issue 16: pipelining ---------------------------------------------------------------------
with harness.Server(dict(env, SERVER_ID="pipe", DB_POOL_MAX="1", WORKERS="2")) as server:
    stop = threading.Event()
    bad = []

    def load(i):
        n = 0
        while not stop.is_set():
            path = ["/products/%d" % (i + 1), "/health", "/products"][n % 3]
            status, _, data, _ = timed(server.port, "GET", path)
            if status != 200:
                bad.append((path, status, data[:80]))
            n += 1
    threads = [threading.Thread(target=load, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    # Orders that fail (overflowing total, unknown product) among them fail alone.
    answers = []
    for i in range(20):
        if i % 2:
            answers.append(timed(server.port, "POST", "/orders",
                                 {"product_id": 5, "quantity": 2147483647})[0])
        else:
            answers.append(timed(server.port, "POST", "/orders",
                                 {"product_id": 999999, "quantity": 1})[0])
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    m = metrics(server.port)
    suite.equal("pipeline: every GET under load answered 200", bad[:5], [])
    suite.equal("pipeline: failing orders fail alone (400 overflow, 404 unknown)",
                answers, [404, 400] * 10)
    suite.check("pipeline: statements were pipelined (db_pool_pipelined_statements_total)",
                m.get("db_pool_pipelined_statements_total", 0) > 0, repr(m.get(
                    "db_pool_pipelined_statements_total")))
    suite.equal("pipeline: db_pool_pipeline_depth_max shows the depth", m.get(
        "db_pool_pipeline_depth_max"), 64)
    suite.equal("pipeline: one connection carried it all", backends("pipe"), 1)

# A long statement never has a cheap one queued behind it.
with harness.Server(dict(env, SERVER_ID="pipe-long", DB_POOL_MAX="2", WORKERS="1")) as server:
    timed(server.port, "GET", "/products/1")
    lock = harness.TableLock(NAME, "orders")
    try:
        threads, report = in_threads([lambda: timed(server.port, "GET", "/report")])
        harness.wait_for(lambda: backends("pipe-long", "wait_event_type = 'Lock'") == 1)
        calls = [lambda i=i: timed(server.port, "GET", f"/products/{i + 1}") for i in range(20)]
        t2, results = in_threads(calls)
        for t in t2:
            t.join()
        suite.equal("pipeline: with /report stuck, products answer 200 on the other connection",
                    [r[0] for r in results], [200] * 20)
        suite.check("pipeline: and quickly", max(r[3] for r in results) < 1,
                    f"{max(r[3] for r in results):.2f} s")
    finally:
        lock.release()
    for t in threads:
        t.join()
    suite.equal("pipeline: /report answers once the lock goes", report[0][0], 200)

with harness.Server(dict(env, SERVER_ID="nopipe", DB_POOL_MAX="1", WORKERS="2",
                         DB_PIPELINE="0")) as server:
    calls = [lambda i=i: [timed(server.port, "GET", f"/products/{i + 1}")[0] for _ in range(20)]
             for i in range(8)]
    threads, results = in_threads(calls)
    for t in threads:
        t.join()
    m = metrics(server.port)
    suite.equal("DB_PIPELINE=0: every request 200", [s for r in results for s in r], [200] * 160)
    suite.equal("DB_PIPELINE=0: nothing pipelined", m.get("db_pool_pipelined_statements_total"), 0)
    suite.equal("DB_PIPELINE=0: depth 0 shown", m.get("db_pool_pipeline_depth_max"), 0)

suite.finish()
