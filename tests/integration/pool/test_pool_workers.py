"""test_pool_workers.py: one pool connection carries the cheap statements of every worker thread
(issue 16): with DB_POOL_MAX=1 and WORKERS=2, requests from clients of both workers are in
flight on the one backend at once (none waits for the connection to come to its thread), their
answers come back to the right clients, and when that backend is killed mid-pipeline every
request is answered and no order is lost or doubled."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_pool_workers"
suite = harness.Suite(NAME)
timed = harness.timed
in_threads = harness.in_threads
APP = "catalog-server-workers"


metrics = harness.metrics


def backends(where="true"):
    return harness.backends(APP, where)


def send_all(socks, requests):
    """Writes each request on its socket, back to back (well within the pool's 50 ms during
    which statements may still join a pipeline)."""
    for sock, request in zip(socks, requests):
        sock.sendall(request)


def read_answer(sock):
    """The status and body of one response (Content-Length framed), or an error text."""
    status, _, body = harness.read_response(sock)
    return status, body


def post_order(product_id, quantity):
    return harness.request_bytes("/orders", f'{{"product_id":{product_id},"quantity":{quantity}}}')


env = harness.make_db(NAME, products=300, orders=2000)
N = 12  # statements per round: within DB_PIPELINE (64)

with harness.Server(dict(env, SERVER_ID="workers", DB_POOL_MAX="1", WORKERS="2")) as server:
    port = server.port
    timed(port, "GET", "/products/1")  # the one connection is open

    # ---- one backend, statements of both workers in flight on it at once -------------------
    spread = None
    for attempt in range(5):
        socks = harness.spread_clients(port, N)
        before = metrics(port)
        lock = harness.TableLock(NAME)
        try:
            send_all(socks, [harness.request_bytes(f"/products/{i + 1}") for i in range(N)])
            harness.wait_for(lambda: metrics(port).get("db_pool_statements_in_flight", 0)
                     + metrics(port).get("db_pool_waiting_requests", 0) >= N)
            during = metrics(port)
            lock_waiters = backends("wait_event_type = 'Lock'")
        finally:
            lock.release()
        answers = [read_answer(s) for s in socks]
        for s in socks:
            s.close()
        after = metrics(port)
        foreign = (after.get("db_pool_foreign_statements_total", 0)
                   - before.get("db_pool_foreign_statements_total", 0))
        spread = (during, lock_waiters, answers, foreign)
        # A round counts when clients of both workers took part and every statement came
        # within the 50 ms during which statements may join a pipeline (a loaded machine can
        # stall a thread longer).
        if foreign > 0 and (during.get("db_pool_statements_in_flight"),
                            during.get("db_pool_waiting_requests")) == (float(N), 0.0):
            break
    during, lock_waiters, answers, foreign = spread
    suite.check("one connection: statements of both workers shared it "
                "(db_pool_foreign_statements_total grew)", foreign > 0, repr(foreign))
    suite.equal("one connection: all in flight at once on it, none waiting for the connection",
                (during.get("db_pool_statements_in_flight"),
                 during.get("db_pool_waiting_requests")), (float(N), 0.0))
    suite.equal("one connection: one backend, blocked by the lock", lock_waiters, 1)
    suite.equal("one connection: every request answered 200",
                [a[0] for a in answers], [200] * N)
    suite.check("one connection: each client got its own product",
                all(f'"id":{i + 1},'.encode() in a[1] for i, a in enumerate(answers)),
                repr([a[1][:40] for a in answers]))
    suite.equal("one connection: still one backend", backends(), 1)

    # ---- under load from many clients: right answers, one backend ---------------------------
    stop = threading.Event()
    wrong = []

    def load(i):
        n = 0
        while not stop.is_set():
            pid = (i * 7 + n) % 300 + 1
            status, _, data, _ = timed(port, "GET", f"/products/{pid}")
            if status != 200 or f'"id":{pid},'.encode() not in data:
                wrong.append((pid, status, data[:60]))
            n += 1
    before = metrics(port)
    threads = [threading.Thread(target=load, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    after = metrics(port)
    suite.equal("load: every answer 200 with the product asked for", wrong[:5], [])
    suite.check("load: statements crossed workers (db_pool_foreign_statements_total)",
                after.get("db_pool_foreign_statements_total", 0)
                > before.get("db_pool_foreign_statements_total", 0),
                repr(after.get("db_pool_foreign_statements_total")))
    suite.equal("load: one backend carried it", backends(), 1)
    grew = {k: after.get(k, 0) - before.get(k, 0)
            for k in ("db_pool_statements_total", "db_pool_sync_points_total")}
    suite.check("load: requests arriving together shared a sync point (more statements than "
                "db_pool_sync_points_total)",
                grew["db_pool_statements_total"] > grew["db_pool_sync_points_total"] > 0,
                repr(grew))

    # ---- the backend killed mid-pipeline: every request answered, no order lost or doubled ----
    outcomes = []
    rounds_with_both = 0
    # At least four rounds, and more (up to twelve) until one had clients of both workers before
    # its first order: how the listening socket spreads the clients over the workers is up to
    # the kernel, and about one round in three has all of the first six on one worker.
    for attempt in range(12):
        if attempt >= 4 and rounds_with_both:
            break
        socks = harness.spread_clients(port, N)
        before = metrics(port)
        base_q = 1000 + 100 * attempt  # a quantity of its own per order: rows are traceable
        # Reads, and orders (nothing is queued behind an order, so one per pipeline at most).
        requests = [post_order(1, base_q + i) if i in (N // 2, N - 1) else
                    harness.request_bytes(f"/products/{i + 1}") for i in range(N)]
        lock = harness.TableLock(NAME)
        try:
            send_all(socks, requests)
            harness.wait_for(lambda: metrics(port).get("db_pool_statements_in_flight", 0)
                     + metrics(port).get("db_pool_waiting_requests", 0) >= N)
            during = metrics(port)
            harness.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                         f" application_name = '{APP}'")
        finally:
            lock.release()
        # Those in flight fail; those still waiting (behind an order nothing joins) run on a
        # new connection.
        answers = [read_answer(s) for s in socks]
        for s in socks:
            s.close()
        if (during.get("db_pool_foreign_statements_total", 0)
                > before.get("db_pool_foreign_statements_total", 0)):
            rounds_with_both += 1
        for i, (status, body) in enumerate(answers):
            if i in (N // 2, N - 1):
                rows = int(harness.psql("SELECT count(*) FROM orders WHERE product_id = 1 AND"
                                        f" quantity = {base_q + i}", db=NAME))
                outcomes.append(("order", status, rows, body[:60]))
            else:
                outcomes.append(("get", status, None, body[:60]))
        outcomes.append(("in flight", during.get("db_pool_statements_in_flight"), None, b""))
    suite.check("kill: some rounds had both workers' statements on the killed connection",
                rounds_with_both > 0, repr(rounds_with_both))
    answered = [(kind, s) for kind, s, _, _ in outcomes if kind in ("get", "order")]
    suite.check("kill: every request answered (200/201, or 5xx for those in flight)",
                all(isinstance(s, int) and (s in (200, 201) or s >= 500) for _, s in answered),
                repr(outcomes))
    suite.check("kill: some statements in flight were cut off (5xx)",
                any(isinstance(s, int) and s >= 500 for _, s in answered), repr(outcomes))
    suite.check("kill: an order answered 201 made 1 row, any other answer 0 (never 2)",
                all(rows == (1 if s == 201 else 0) for kind, s, rows, _ in outcomes
                    if kind == "order"), repr(outcomes))
    suite.check("kill: an order cut off in flight is 500 outcome unknown, never 503 retry",
                all(s == 201 or (s == 500 and b"outcome unknown" in body)
                    for kind, s, _, body in outcomes if kind == "order"), repr(outcomes))
    status, _, _, _ = timed(port, "GET", "/products/2")
    suite.equal("kill: the pool recovers (next request 200)", status, 200)

suite.finish()
