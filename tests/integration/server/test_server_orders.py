"""test_server_orders.py: no order lost or doubled.  POST /orders with an Idempotency-Key through
two servers on one database (a retry on the other server gets the first answer and creates no
row; the same key with another body is a 422; a key still being processed is a 409; keys
expire after 24 hours; concurrent requests with one key create one row), the key's limits
(clear 400s), and the lost answer: the database connection killed (pg_terminate_backend) while
the INSERT waits on a lock held by a second session answers 500 "outcome unknown" without
Retry-After, and a retry with the key then creates exactly one order; likewise when the order
commits and its answer is lost on the way back (a relay between a third server and PostgreSQL
drops the answer and resets the connection): 500 "outcome unknown", the order exists once, and
a retry with the key on another server answers that order.  catalog-db migrate gives an
existing database the key table and function."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_orders"
ORDER = {"product_id": 3, "quantity": 2}


def order_count():
    return int(harness.psql("SELECT count(*) FROM orders", db=NAME))


def post(server, body=None, key=None, timeout=20):
    """POST /orders with body (default ORDER) and an Idempotency-Key if key is not None."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    data = json.dumps(ORDER if body is None else body) if not isinstance(body, str) else body
    return harness.http(server.port, "POST", "/orders", data, headers, timeout=timeout)


def error_of(body):
    try:
        return json.loads(body).get("error")
    except ValueError:
        return body[:200]


class TableLock:
    """A second session holding LOCK TABLE orders IN SHARE MODE (inserts wait, reads do not)
    until release()."""

    def __init__(self):
        env = dict(os.environ)
        env.setdefault("PGHOST", env.get("DB_HOST", "127.0.0.1"))
        env.setdefault("PGPORT", env.get("DB_PORT", "5432"))
        self.proc = subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", NAME],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.proc.stdin.write("BEGIN;\nLOCK TABLE orders IN SHARE MODE;\n\\echo locked\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"the locking session said {line!r}")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def backend_waiting_on_lock(timeout_s=10):
    """The pid of a backend of this database waiting on a lock (the INSERT), or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = harness.psql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                           " AND wait_event_type = 'Lock' LIMIT 1", db=NAME)
        if pid:
            return int(pid)
        time.sleep(0.05)
    return None


class CuttableProxy:
    """A TCP relay from a loopback port to the test PostgreSQL, so a test can lose answers:
    with hold() the database's bytes are dropped instead of relayed (what was sent still runs
    and commits), and cut() resets every relayed connection, as a network failure would."""

    def __init__(self, host, port):
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.holding = threading.Event()
        self.lock = threading.Lock()
        self.clients = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.clients.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, client, True),
                             daemon=True).start()

    def _relay(self, src, dst, from_database):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_database and self.holding.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold(self):
        self.holding.set()

    def cut(self):
        """Resets every relayed connection (RST to the server), then relays normally again."""
        with self.lock:
            clients, self.clients = self.clients, []
        for client, upstream in clients:
            # shutdown wakes the relay threads blocked in recv (a bare close would not); the
            # zero linger makes the last close a reset.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        self.holding.clear()

    def close(self):
        self.listener.close()
        self.cut()


def wait_for(sql, want, timeout_s=10):
    """Polls psql until sql answers want; returns the last answer."""
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        got = harness.psql(sql, db=NAME)
        if got == want:
            break
        time.sleep(0.05)
    return got


def check_answer_lost_after_commit(suite, lossy, b, proxy, key):
    """The order commits, then its answer is lost on the way back (the database connection
    is reset before the server reads it): 500 "outcome unknown", the order exists, and a
    retry with the key answers that order instead of placing a second one."""
    label = f"answer lost after commit, key {key}" if key else "answer lost after commit, no key"
    before = order_count()
    proxy.hold()
    thread, result = in_thread(post, lossy, None, key)
    committed = wait_for("SELECT count(*) FROM orders", str(before + 1))
    proxy.cut()
    thread.join(timeout=30)
    status, headers, body = result[0] if result else (None, {}, b"")
    suite.equal(f"{label}: the order was committed", committed, str(before + 1))
    suite.equal(f"{label}: 500 outcome unknown, no Retry-After",
                (status, error_of(body), "retry-after" in headers), (500, "outcome unknown", False))
    if key:
        placed = harness.psql("SELECT order_id FROM order_idempotency_keys"
                              f" WHERE idempotency_key = '{key}'", db=NAME)
        status, headers, body = post(b, key=key)
        got_id = json.loads(body).get("id") if status == 201 else None
        suite.check(f"{label}: the retry on the other server answers the committed order",
                    status == 201 and str(got_id) == placed
                    and headers.get("idempotent-replayed") == "true",
                    f"{status} {body!r}, committed order {placed}")
    suite.equal(f"{label}: one order, not two", order_count(), before + 1)
    status, _, _ = post(lossy)
    suite.equal(f"{label}: the server reconnects and takes the next order", status, 201)


def check_forced_shutdown(suite, env, b):
    """SIGTERM while a keyed INSERT waits on a lock, past SHUTDOWN_TIMEOUT_MS: the statement
    was sent and may still commit (here: when the lock goes), so the answer is 500 "outcome
    unknown", not a 503 inviting a retry; a retry with the key then finds or places the order,
    once."""
    before = order_count()
    server = harness.Server(dict(env, SERVER_ID="stopping", WORKERS="1", DB_POOL_MAX="1",
                                 SHUTDOWN_TIMEOUT_MS="1000")).start()
    try:
        status, _, _ = post(server)
        suite.equal("server stopping takes an order", status, 201)
        lock = TableLock()
        try:
            thread, result = in_thread(post, server, None, "shutdown-1")
            suite.check("forced shutdown: the INSERT waits on the lock",
                        backend_waiting_on_lock() is not None)
            server.proc.send_signal(signal.SIGTERM)
            thread.join(timeout=30)
        finally:
            lock.release()
        status, headers, body = result[0] if result else (None, {}, b"")
        suite.equal("forced shutdown mid-INSERT: 500 outcome unknown, no Retry-After",
                    (status, error_of(body), "retry-after" in headers),
                    (500, "outcome unknown", False))
        try:
            code = server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = "still running"
        suite.equal("forced shutdown: the server exits 0", code, 0)
    finally:
        server.stop()
    status, _, _ = post(b, key="shutdown-1")
    suite.equal("forced shutdown: the retry with the key on server b: 201", status, 201)
    suite.equal("forced shutdown: one order for the key, not two", order_count(), before + 2)


def in_thread(fn, *args):
    """Runs fn(*args) in a thread; returns (thread, result list that gets fn's value)."""
    result = []

    def run():
        try:
            result.append(fn(*args))
        except OSError as error:
            result.append(("error", repr(error), b""))
    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def raw_post(server, extra_headers):
    """POST /orders of ORDER with extra header lines (bytes) sent as they are."""
    body = json.dumps(ORDER).encode()
    return harness.raw(server.port, b"POST /orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       b"Content-Type: application/json\r\n" + extra_headers
                       + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def check_key_limits(suite, a):
    before = order_count()
    for label, key, want in [
            ("an empty key", "", "Idempotency-Key must be 1 to 255 printable ASCII characters"),
            ("a 256-character key", "k" * 256,
             "Idempotency-Key must be 1 to 255 printable ASCII characters")]:
        status, _, body = post(a, key=key)
        suite.equal(f"Idempotency-Key, {label}: 400 with a message", (status, error_of(body)),
                    (400, want))
    answer = raw_post(a, b"Idempotency-Key: caf\xc3\xa9\r\n")
    suite.check("Idempotency-Key with a non-ASCII byte: 400 with the message",
                answer.startswith(b"HTTP/1.1 400") and b"printable ASCII" in answer,
                answer[:300])
    answer = raw_post(a, b"Idempotency-Key: one\r\nidempotency-key: two\r\n")
    suite.check("two Idempotency-Key headers: 400 naming them",
                answer.startswith(b"HTTP/1.1 400") and b"more than one Idempotency-Key" in answer,
                answer[:300])
    suite.equal("no order from a refused key", order_count(), before)
    status, _, _ = post(a, key="~" + "k" * 253 + " ")
    suite.equal("a 255-character printable key: 201", status, 201)


def check_retries(suite, a, b):
    before = order_count()
    status, headers, first = post(a, key="retry-1")
    suite.equal("key retry-1 on server a: 201", status, 201)
    suite.check("the first answer is not marked as a replay",
                "idempotent-replayed" not in headers, repr(headers))
    status, headers, again = post(b, key="retry-1")
    suite.equal("the same key and body on server b: 201", status, 201)
    suite.equal("server b answers the first answer byte for byte", again, first)
    suite.equal("server b marks it Idempotent-Replayed: true",
                headers.get("idempotent-replayed"), "true")
    reordered = '{ "quantity": 2,\n  "product_id": 3 }'
    status, _, again = post(a, body=reordered, key="retry-1")
    suite.equal("the same order written differently: the first answer", (status, again),
                (201, first))
    suite.equal("three requests with one key: one order", order_count(), before + 1)

    status, _, body = post(b, body={"product_id": 3, "quantity": 5}, key="retry-1")
    suite.equal("the same key with another body: 422 with the contract's message",
                (status, error_of(body)), (422, "Idempotency-Key reused with a different body"))
    status, _, body = post(b, body={"product_id": 4, "quantity": 2}, key="retry-1")
    suite.equal("the same key for another product: 422", status, 422)
    status, _, body = post(a, body={"product_id": 999999, "quantity": 1}, key="missing-1")
    suite.equal("a key for a product that does not exist: 404", status, 404)
    status, _, _ = post(a, body={"product_id": 1, "quantity": 1}, key="missing-1")
    suite.equal("the 404 recorded nothing: the key then places its order", status, 201)
    suite.equal("orders after the 422s and the 404: one more", order_count(), before + 2)

    # Expiry: a key used more than 24 hours ago is forgotten.
    harness.psql("UPDATE order_idempotency_keys SET created_at = now() - interval '25 hours'"
                 " WHERE idempotency_key = 'retry-1'", db=NAME)
    status, headers, fresh = post(b, key="retry-1")
    first_id, fresh_id = json.loads(first)["id"], json.loads(fresh)["id"] if status == 201 else 0
    suite.check("after 24 hours the key places a new order (201, new id, not a replay)",
                status == 201 and fresh_id != first_id and "idempotent-replayed" not in headers,
                f"{status} {fresh!r} {headers}")
    suite.equal("the key now names the new order",
                harness.psql("SELECT order_id FROM order_idempotency_keys"
                             " WHERE idempotency_key = 'retry-1'", db=NAME), str(fresh_id))
    suite.equal("orders after the expired key: one more", order_count(), before + 3)


def check_concurrent_same_key(suite, a, b):
    before = order_count()
    lock = TableLock()
    try:
        thread, result = in_thread(post, a, None, "busy-1")
        pid = backend_waiting_on_lock()
        suite.check("key busy-1 on server a waits on the lock", pid is not None)
        statuses = []
        for server in (b, b, b):
            status, headers, body = post(server, key="busy-1")
            statuses.append((status, error_of(body), headers.get("retry-after")))
        suite.equal("the same key on server b meanwhile: 409 with Retry-After, three times",
                    statuses, [(409, "a request with this Idempotency-Key is still being"
                                " processed", "1")] * 3)
    finally:
        lock.release()
    thread.join(timeout=30)
    status, _, first = result[0] if result else (None, None, b"")
    suite.equal("server a's request finishes once the lock is gone: 201", status, 201)
    status, _, again = post(b, key="busy-1")
    suite.equal("a retry on b afterwards: the first answer", (status, again), (201, first))

    # A burst: eight clients, one key, both servers, no lock to order them.
    answers, threads = [], []
    for i in range(8):
        t, r = in_thread(post, a if i % 2 else b, None, "burst-1")
        threads.append(t)
        answers.append(r)
    for t in threads:
        t.join(timeout=30)
    got = [r[0] for r in answers if r]
    bodies = {body for status, _, body in got if status == 201}
    suite.check("the burst: every answer 201 or 409, the 201s all one order",
                len(got) == 8 and {s for s, _, _ in got} <= {201, 409} and len(bodies) == 1,
                repr([(s, body[:80]) for s, _, body in got]))
    suite.equal("two keys, many requests: two orders", order_count(), before + 2)


def check_lost_answer(suite, a, key):
    """The connection is killed while the INSERT waits on a lock: 500 "outcome unknown"."""
    label = f"with key {key}" if key else "without a key"
    before = order_count()
    lock = TableLock()
    try:
        thread, result = in_thread(post, a, None, key)
        pid = backend_waiting_on_lock()
        suite.check(f"{label}: the INSERT waits on the lock", pid is not None)
        if pid:
            harness.psql(f"SELECT pg_terminate_backend({pid})", db=NAME)
        thread.join(timeout=30)
    finally:
        lock.release()
    status, headers, body = result[0] if result else (None, {}, b"")
    suite.equal(f"{label}: connection killed mid-INSERT: 500 outcome unknown",
                (status, error_of(body)), (500, "outcome unknown"))
    suite.check(f"{label}: no Retry-After (a retry without a key could double the order)",
                "retry-after" not in headers, repr(headers))
    suite.equal(f"{label}: the killed INSERT left no order", order_count(), before)
    if key:
        status, headers, body = post(a, key=key)
        suite.check(f"{label}: the retry with the key places the order (201, not a replay)",
                    status == 201 and "idempotent-replayed" not in headers, f"{status} {body!r}")
        status, _, again = post(a, key=key)
        suite.equal(f"{label}: a second retry is the same answer", again, body)
        suite.equal(f"{label}: exactly one order in the end", order_count(), before + 1)
    else:
        status, _, _ = post(a)
        suite.equal(f"{label}: the server reconnects and takes the next order", status, 201)


def main():
    suite = harness.Suite(NAME)
    env = harness.make_db(NAME, products=50, orders=100)
    # An existing database from before the keys: migrate adds them (and is idempotent).
    harness.psql("DROP FUNCTION place_order_with_key; DROP TABLE order_idempotency_keys",
                 db=NAME)
    for run in ("first", "second"):
        proc = harness.catalog_db("migrate", env)
        suite.equal(f"catalog-db migrate ({run} run) on a database without the keys: exit 0",
                    proc.returncode, 0)
    suite.equal("migrate created the key table and the function",
                harness.psql("SELECT to_regclass('order_idempotency_keys') IS NOT NULL,"
                             " to_regproc('place_order_with_key') IS NOT NULL", db=NAME), "t|t")

    # One pool connection per server, warmed up, so a lock on orders cannot stall a new
    # connection's start (that is the pool's business, tested in test_server_pool.py).
    common = dict(env, WORKERS="1", DB_POOL_MAX="1", DB_POOL_IDLE_TIMEOUT_MS="600000")
    with harness.Server(dict(common, SERVER_ID="a")) as a, \
            harness.Server(dict(common, SERVER_ID="b")) as b:
        for server in (a, b):
            status, _, _ = post(server, key=f"warm-{server.env['SERVER_ID']}")
            suite.equal(f"server {server.env['SERVER_ID']} takes a keyed order", status, 201)
        check_key_limits(suite, a)
        check_retries(suite, a, b)
        check_concurrent_same_key(suite, a, b)
        check_lost_answer(suite, a, None)
        check_lost_answer(suite, a, "lost-1")
        proxy = CuttableProxy(env["DB_HOST"], env["DB_PORT"])
        try:
            with harness.Server(dict(common, SERVER_ID="lossy", DB_HOST="127.0.0.1",
                                     DB_PORT=str(proxy.port))) as lossy:
                status, _, _ = post(lossy)
                suite.equal("server lossy (through a relay) takes an order", status, 201)
                check_answer_lost_after_commit(suite, lossy, b, proxy, None)
                check_answer_lost_after_commit(suite, lossy, b, proxy, "cut-1")
        finally:
            proxy.close()
        check_forced_shutdown(suite, env, b)
        suite.equal("orders with a key each have theirs (no key without an order)",
                    harness.psql("SELECT count(*) FROM order_idempotency_keys k"
                                 " LEFT JOIN orders o ON o.id = k.order_id WHERE o.id IS NULL",
                                 db=NAME), "0")
    harness.drop_db(NAME)
    suite.finish()


if __name__ == "__main__":
    main()
