"""test_server_seams.py: faults where the server meets its neighbours (issue 24): signals
across threads (a second SIGTERM while draining, SIGQUIT), a stray CRLF after a request, the
statuses of unknown methods and of the idempotency outcomes, and a database `catalog-db
migrate` has not touched."""

import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_seams"
suite = harness.Suite(NAME)


def on_lock(server_id, table, seconds, call):
    """Takes ACCESS EXCLUSIVE on table for `seconds` (a second session), starts call in a
    thread and waits until the server's backend waits on that lock: (lock, threads, results)
    as harness.in_threads returns them; join with joined()."""
    locker = harness.TableLock(NAME, table, seconds, grant_timeout_s=10)
    threads, results = harness.in_threads([call])
    harness.wait_for(lambda: harness.backends(
        f"catalog-server-{server_id}", "wait_event_type = 'Lock'") == 1, 5)
    return locker, threads, results


def joined(locker, threads):
    """Waits for the threads of on_lock and for its lock to end."""
    for t in threads:
        t.join()
    locker.wait(timeout=30)


def two_signals(server, first, second, lock_s, path):
    """A GET of path waits on a lock on products held lock_s seconds; the server is sent first,
    then second 0.3 s later.  Returns (the GET's status, the server's exit status)."""
    locker, threads, results = on_lock(
        server.env["SERVER_ID"], "products", lock_s,
        lambda: harness.timed(server.port, "GET", path, timeout=15))
    server.proc.send_signal(first)
    time.sleep(0.3)
    server.proc.send_signal(second)
    code = server.stop(timeout_s=15)
    joined(locker, threads)
    return results[0][0], code


def log_has(server, text, timeout_s=3):
    """True once the server's log holds text (the log writer thread writes it a little later)."""
    return harness.wait_for(lambda: text in server.stderr_text(), timeout_s)


env = harness.make_db(NAME, products=100, orders=500)

# ---- 1: signals ----------------------------------------------------------------------------
# A request waits on a lock; SIGTERM twice 0.3 s apart: the second is logged and changes
# nothing, the request is answered, the server says "stopped" and exits 0.
with harness.Server(dict(env, SERVER_ID="seams-signals", WORKERS="2")) as server:
    harness.http(server.port, "GET", "/products/1")  # the pool's connection is open
    status, code = two_signals(server, signal.SIGTERM, signal.SIGTERM, 1.5, "/products/2")
    log = server.stderr_text()
    suite.equal("SIGTERM twice 0.3 s apart: the request waiting on a lock is answered", status,
                200)
    suite.equal("SIGTERM twice: exit code as for one SIGTERM", code, 0)
    suite.check("SIGTERM twice: the 'stopped' line is logged", re.search(r" info stopped$", log,
                                                                          re.M), log[-600:])
    suite.check("SIGTERM twice: the second one is logged as ignored",
                "SIGTERM while stopping: ignored" in log, log[-600:])

# SIGINT then SIGTERM: the same (Ctrl-C, then an impatient kill).
with harness.Server(dict(env, SERVER_ID="seams-sigint", WORKERS="1")) as server:
    suite.equal("SIGINT then SIGTERM: answered, exit 0",
                two_signals(server, signal.SIGINT, signal.SIGTERM, 1.0, "/products/3"), (200, 0))

# SIGQUIT: exits at once (128 + 3), saying so, without waiting for the request in flight.
with harness.Server(dict(env, SERVER_ID="seams-sigquit", WORKERS="2")) as server:
    locker, threads, results = on_lock(
        "seams-sigquit", "products", 3,
        lambda: harness.timed(server.port, "GET", "/products/4", timeout=15))
    start = time.monotonic()
    code = server.stop(sig=signal.SIGQUIT, timeout_s=15)
    elapsed = time.monotonic() - start
    joined(locker, threads)
    log = server.stderr_text()
    suite.check("SIGQUIT with a request waiting 3 s on a lock: exits 131 before the lock ends",
                code == 131 and elapsed < 2.5, f"exit {code} after {elapsed:.1f} s")
    suite.check("SIGQUIT: logged", "SIGQUIT: exiting at once" in log, log[-600:])

# SIGTERM right after start-up, while the schema check's thread is still connecting (its
# password exchange runs OpenSSL's code): the process exits 0.  When the exit handlers ran
# under that thread, about one stop in four ended in SIGSEGV or SIGABRT.
codes = []
for i in range(20):
    server = harness.Server(dict(env, SERVER_ID=f"seams-quick{i}", WORKERS="1")).start()
    codes.append(server.stop())
suite.check("SIGTERM at once after start-up, 20 times: every exit 0",
            all(c == 0 for c in codes), str(codes))


# ---- 7: a stray CRLF after a request -------------------------------------------------------
def recv_for(sock, seconds):
    """Bytes read for `seconds`; (data, closed by the server)."""
    return harness.read_until_closed(sock, time.monotonic() + seconds)


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


LIVE = b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n"
ORDER_BODY = b'{"product_id":1,"quantity":1}'
ORDER = (b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(ORDER_BODY), ORDER_BODY))
# HTTP_HEADER_TIMEOUT_MS 300: a connection left "reading a head" gets 408 after 0.3 s; an idle
# one waits for its 5 s keep-alive.
with harness.Server(dict(env, SERVER_ID="seams-crlf", HTTP_HEADER_TIMEOUT_MS="300",
                         HTTP_KEEPALIVE_TIMEOUT_MS="5000")) as server:
    for label, first, stray in [("a GET with a CRLF after it", LIVE + b"\r\n", b""),
                                ("a POST with a CRLF after its body", ORDER + b"\r\n", b""),
                                ("a GET, then a CRLF sent on its own", LIVE, b"\r\n"),
                                ("a GET, then two CRLFs on their own", LIVE, b"\r\n\r\n")]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(first)
            answer, _ = recv_for(sock, 0.3)
            if stray:
                sock.sendall(stray)
            later, closed = recv_for(sock, 1.2)
            suite.check(f"{label}: answered, then nothing unasked for 1.2 s (header timeout "
                        "0.3 s), connection open",
                        len(statuses(answer)) == 1 and later == b"" and not closed,
                        f"first {statuses(answer)}, then {later[:60]!r}, closed {closed}")
            sock.sendall(LIVE)
            answer, _ = recv_for(sock, 1)
            suite.equal(f"{label}: the next request on the connection is answered",
                        statuses(answer), [200])
    # a CRLF split in two (its CR read alone, as a partial head): a head sent well after it
    # gets a deadline of its own, not the one its CR set (that one passed long ago)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(LIVE)
        answer, _ = recv_for(sock, 0.2)
        sock.sendall(b"\r")
        time.sleep(0.1)
        sock.sendall(b"\n")
        later, _ = recv_for(sock, 0.6)
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")
        time.sleep(0.1)
        sock.sendall(b"Host: t\r\n\r\n")
        later += recv_for(sock, 0.5)[0]
    suite.check("a CR and its LF sent apart, then a head in two parts 0.6 s later: both 200",
                statuses(answer + later) == [200, 200], f"{statuses(answer + later)}")
    # a head begun after the empty lines still has its deadline: 408
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(LIVE + b"\r\nGET /health/live HTTP/1.1\r\n")
        answer, closed = recv_for(sock, 1.5)
    suite.check("a CRLF, then a head left unfinished: 200, then 408 and the close",
                statuses(answer) == [200, 408] and closed, f"{statuses(answer)}, closed {closed}")

# ---- 8: unknown methods and the statuses /metrics names ------------------------------------
def exchange(port, data, timeout=5):
    """Sends data on one connection; (statuses of the answers, closed by the server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer, deadline = b"", time.monotonic() + timeout
        closed = False
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                closed = True
                break
            answer += chunk
    return statuses(answer), closed


def requests_total(port, method, route, code):
    """http_requests_total for these labels (0 when absent)."""
    _, _, body = harness.http(port, "GET", "/metrics")
    m = re.search(rf'^http_requests_total{{method="{method}",route="{route}",'
                  rf'status_code="{code}"}} (\d+)$'.encode(), body, re.M)
    return int(m.group(1)) if m else 0


with harness.Server(dict(env, SERVER_ID="seams-methods")) as server:
    port = server.port
    for method in ["FOO", "BREW", "TRACE", "get"]:
        got, closed = exchange(port, f"{method} /health HTTP/1.1\r\nHost: t\r\n\r\n".encode() +
                               b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        suite.equal(f"{method} /health, then GET /health/live on the same connection: 501, 200",
                    got, [501, 200])
    # with a body: its framing is known, so it is read and the next request follows
    got, _ = exchange(port, b"FOO /products HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                      b"hello" + b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    suite.equal("FOO with a 5-byte body, then a GET: 501, 200", got, [501, 200])
    got, _ = exchange(port, b"FOO /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    suite.equal("FOO on an unknown path: 501", got, [501])
    got, _ = exchange(port, b"PUT /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    suite.equal("PUT /health (a method the server knows): still 405", got, [405])
    suite.equal("/metrics: the four unknown methods on /health counted as status_code 501",
                requests_total(port, "OTHER", "/health", 501), 4)
    # the idempotency outcomes get their own label, not "other"
    order = {"product_id": 1, "quantity": 1}
    harness.http(port, "POST", "/orders", order, {"Idempotency-Key": "seams-422"})
    status, _, _ = harness.http(port, "POST", "/orders", {"product_id": 1, "quantity": 2},
                                {"Idempotency-Key": "seams-422"})
    suite.equal("same key, another quantity: 422", status, 422)
    suite.equal("/metrics: the 422 counted as status_code 422",
                requests_total(port, "POST", "/orders", 422), 1)
    # 409: the key's first request still running (it waits on a lock on orders)
    locker, threads, results = on_lock(
        "seams-methods", "orders", 1.5,
        lambda: harness.http(port, "POST", "/orders", order, {"Idempotency-Key": "seams-409"},
                             timeout=15))
    status, _, _ = harness.http(port, "POST", "/orders", order, {"Idempotency-Key": "seams-409"})
    suite.equal("the same key while its first request waits on a lock: 409", status, 409)
    joined(locker, threads)
    suite.equal("the first request is then answered 201", results[0][0], 201)
    suite.equal("/metrics: the 409 counted as status_code 409",
                requests_total(port, "POST", "/orders", 409), 1)
    suite.equal("/metrics: nothing counted as status_code other",
                sum(requests_total(port, m, r, "other") for m in ["GET", "POST", "OTHER"]
                    for r in ["/health", "/orders", "unmatched", "/products"]), 0)


# ---- 9: a database `catalog-db migrate` has not touched ------------------------------------
# An older schema: without what later versions of sql/schema.sql added (the keyed orders'
# function and table, the live report's covering index).
OLD = NAME + "_old"
old_env = harness.make_db(OLD, products=100, orders=500)
harness.psql("DROP FUNCTION place_order_with_key(integer, integer, varchar); "
             "DROP TABLE order_idempotency_keys; DROP INDEX orders_product_id_total_cents_idx",
             db=OLD)
MIGRATE_LINE = "run catalog-db migrate"
with harness.Server(dict(old_env, SERVER_ID="seams-old")) as server:
    port = server.port
    log_has(server, MIGRATE_LINE, 5)
    lines = [x for x in server.stderr_text().splitlines() if MIGRATE_LINE in x]
    suite.equal("unmigrated database: one log line says to run catalog-db migrate", len(lines), 1)
    line = lines[0] if lines else ""
    print(f"# {line}")
    suite.check("... naming the function, the table and the index",
                all(name in line for name in ["place_order_with_key", "order_idempotency_keys",
                                              "orders_product_id_total_cents_idx"]), line)
    status, _, ready = harness.http_json(port, "GET", "/health/ready")
    suite.equal("unmigrated: /health/ready stays 200 (reads work)", status, 200)
    suite.check("unmigrated: /health/ready says what is missing and to run catalog-db migrate",
                MIGRATE_LINE in str(ready.get("schema")) and
                "place_order_with_key" in str(ready.get("schema")), repr(ready))
    status, _, answer = harness.http_json(port, "POST", "/orders", {"product_id": 1, "quantity": 1},
                                          {"Idempotency-Key": "seams-old-1"})
    suite.check("unmigrated: a keyed order is answered 503 saying to run catalog-db migrate",
                status == 503 and MIGRATE_LINE in answer.get("error", ""), f"{status} {answer}")
    status, _, _ = harness.http(port, "POST", "/orders", {"product_id": 1, "quantity": 1})
    suite.equal("unmigrated: an order without a key is placed", status, 201)
    status, _, _ = harness.http(port, "GET", "/report")
    suite.equal("unmigrated: GET /report answers", status, 200)

    migrate = harness.catalog_db("migrate", old_env)
    suite.equal("catalog-db migrate on the old database: exit 0", migrate.returncode, 0)
    # the server looks again every few seconds while something is missing
    healed = harness.wait_for(
        lambda: "schema" not in harness.http_json(port, "GET", "/health/ready")[2], 15)
    suite.check("after the migrate: /health/ready no longer mentions the schema", healed)
    suite.check("after the migrate: one line says everything is there",
                log_has(server, "everything this server needs is in the database now", 3),
                server.stderr_text()[-400:])
    status, _, _ = harness.http(port, "POST", "/orders", {"product_id": 1, "quantity": 1},
                                {"Idempotency-Key": "seams-old-2"})
    suite.equal("after the migrate: a keyed order is placed (201)", status, 201)
with harness.Server(dict(old_env, SERVER_ID="seams-migrated")) as server:
    harness.http(server.port, "GET", "/health/ready")
    time.sleep(0.5)
    suite.check("a server started on the migrated database logs nothing about the schema",
                "schema" not in server.stderr_text(), server.stderr_text()[-400:])
harness.drop_db(OLD)

suite.finish()
