"""test_server_hostile.py: hostile HTTP (smuggling attempts, NUL, bare CR/LF, bad versions and
methods, bad percent-encoding) and hostile JSON and parameters (SQL in category, deep nesting,
duplicate keys, huge numbers): each gets the right 4xx, nothing is inserted or changed, and the
server keeps answering /health normally after every case."""

import json
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_hostile"
suite = harness.Suite(NAME)


def exchange(port, data, timeout=3):
    """Sends data; returns (status or None, body, closed_by_server, elapsed_s)."""
    start = time.monotonic()
    chunks, closed = [], False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = start + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, body, closed, time.monotonic() - start


def database_state():
    return harness.psql("SELECT (SELECT count(*) FROM orders), (SELECT coalesce(sum(total_cents),"
                        " 0) FROM orders), (SELECT max(id) FROM orders), (SELECT count(*) FROM"
                        " products), (SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM"
                        " products p)", db=NAME)


def health_ok(label):
    start = time.monotonic()
    try:
        status, _, body = harness.http(port, "GET", "/health", timeout=5)
    except OSError as error:
        status, body = repr(error), b""
    elapsed = time.monotonic() - start
    suite.check(f"after {label}: GET /health 200 in < 1 s",
                status == 200 and body.startswith(b'{"status":"ok"') and elapsed < 1.0,
                f"status {status}, {elapsed:.3f} s, {body[:80]!r}")


def hostile(label, data, want_statuses, must_close=True):
    """One raw request that must be refused with one of want_statuses (a 4xx/5xx JSON error),
    the connection closed, and /health fine afterwards."""
    status, body, closed, elapsed = exchange(port, data)
    suite.check(f"{label}: status in {want_statuses}", status in want_statuses,
                f"got {status}, body {body[:120]!r}")
    if status is not None:
        suite.check(f"{label}: JSON error body", body.startswith(b'{"error":'), repr(body[:120]))
    if must_close:
        suite.check(f"{label}: connection closed at once", closed and elapsed < 2,
                    f"closed {closed} after {elapsed:.2f} s")
    health_ok(label)


def post(body, content_type="application/json", extra=b""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return (b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: " + content_type.encode() +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


env = harness.make_db(NAME, products=100, orders=500)
with harness.Server(dict(env, SERVER_ID="hostile", WORKERS="2",
                                HTTP_HEADER_TIMEOUT_MS="1500")) as server:
    port = server.port
    state = database_state()

    # ---- smuggling and framing ---------------------------------------------------------------
    body = b'{"product_id":1,"quantity":1}'
    n = str(len(body)).encode()
    hostile("Content-Length with Transfer-Encoding",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + n + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body, {400})
    hostile("Transfer-Encoding then Content-Length",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: " + n + b"\r\n\r\n" + body, {400})
    hostile("two different Content-Lengths",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + n + b"\r\nContent-Length: 5\r\n\r\n" + body, {400})
    hostile("Content-Length list '30, 5'",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + n + b", 5\r\n\r\n" + body, {400})
    hostile("negative Content-Length",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: -30\r\n\r\n" + body, {400})
    hostile("Content-Length +30",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: +" + n + b"\r\n\r\n" + body, {400})
    hostile("Content-Length 0x1e",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 0x1e\r\n\r\n" + body, {400})
    hostile("Content-Length of 30 digits",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000000000000000000000030\r\n\r\n" + body, {400, 413})
    hostile("chunked body whose size (30) does not match its data (29 bytes)",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1e\r\n" + body + b"\r\n0\r\n\r\n", {400})
    hostile("space before the colon",
            b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length : " + n + b"\r\n\r\n" + body, {400})
    hostile("obs-fold continuation line", b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n",
            {400})
    hostile("header line without a colon", b"GET /health HTTP/1.1\r\nHost: t\r\nJunk\r\n\r\n",
            {400})
    hostile("HTTP/1.1 without Host", b"GET /health HTTP/1.1\r\n\r\n", {400})
    hostile("two Host headers", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400})

    # ---- bytes that do not belong in a head -----------------------------------------------------
    hostile("NUL byte in the path", b"GET /hea\x00lth HTTP/1.1\r\nHost: t\r\n\r\n", {400})
    hostile("NUL byte in a header value", b"GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
            {400})
    hostile("bare LF line ends", b"GET /health HTTP/1.1\nHost: t\n\n", {400})
    hostile("bare LF after the request line", b"GET /health HTTP/1.1\nHost: t\r\n\r\n", {400})
    hostile("bare CR inside a header", b"GET /health HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n", {400})
    hostile("bare CR in the request line", b"GET /health\rHTTP/1.1\r\nHost: t\r\n\r\n", {400})
    hostile("control character in the path", b"GET /he\x01alth HTTP/1.1\r\nHost: t\r\n\r\n", {400})
    hostile("space in the target", b"GET /hea lth HTTP/1.1\r\nHost: t\r\n\r\n", {400, 505})
    # no line end in it: refused at once, or at the latest at the header deadline (1.5 s here)
    status, data, closed, elapsed = exchange(
        port, bytes.fromhex("16030100a5010000a10303") + bytes(range(32, 96)), timeout=4)
    suite.check("TLS hello on the plain port: 400 or 408, closed within the header deadline",
                status in (400, 408) and closed and elapsed < 2.5,
                f"got {status} {data[:80]!r}, closed {closed} after {elapsed:.2f} s")
    health_ok("TLS hello")
    hostile("binary garbage", os.urandom(300).replace(b"\n", b"x") + b"\r\n\r\n", {400, 414, 431})

    # ---- versions and methods -------------------------------------------------------------------
    hostile("HTTP/2.0", b"GET /health HTTP/2.0\r\nHost: t\r\n\r\n", {505, 400})
    hostile("HTTP/1.2", b"GET /health HTTP/1.2\r\nHost: t\r\n\r\n", {505, 400})
    hostile("HTTP/0.9 style (no version)", b"GET /health\r\n\r\n", {400})
    hostile("HTTP/x.y", b"GET /health HTTP/x.y\r\nHost: t\r\n\r\n", {400, 505})
    hostile("HTTPS/1.1", b"GET /health HTTPS/1.1\r\nHost: t\r\n\r\n", {400, 505})
    hostile("lower-case http/1.1", b"GET /health http/1.1\r\nHost: t\r\n\r\n", {400, 505})
    hostile("method with a bad character", b"G@T /health HTTP/1.1\r\nHost: t\r\n\r\n", {400})
    hostile("empty method", b" /health HTTP/1.1\r\nHost: t\r\n\r\n", {400})
    hostile("target not starting with /", b"GET health HTTP/1.1\r\nHost: t\r\n\r\n", {400})
    for method in [b"BREW", b"get", b"TRACE", b"CONNECT"]:
        status, body, closed, _ = exchange(port, method + b" /health HTTP/1.1\r\nHost: t\r\n"
                                           b"Connection: close\r\n\r\n")
        suite.check(f"method {method.decode()}: 501 (RFC 9110 9.1), JSON",
                    status == 501 and body.startswith(b'{"error":'),
                    f"got {status} {body[:80]!r}")
        health_ok(f"method {method.decode()}")

    # ---- query strings and parameters -----------------------------------------------------------
    for query in ["category=%zz", "category=%4", "category=%", "category=books%2"]:
        status, _, data = harness.http(port, "GET", f"/products?{query}")
        suite.check(f"/products?{query}: 400 JSON", status == 400 and data.startswith(b'{"error":'),
                    f"got {status} {data[:100]!r}")
    status, _, data = harness.http(port, "GET", "/products?category=books%00")
    suite.equal("/products?category=books%00: 400", status, 400)
    for sql in ["' OR '1'='1", "electronics' OR 1=1 --", "x'; DROP TABLE orders; --",
                "books\\'; DELETE FROM products; --", "electronics' UNION SELECT * FROM orders --",
                "%' OR category LIKE '%", "$1", "\u00e9lectronique \u2603", "a" * 4000]:
        path = "/products?category=" + urllib.parse.quote(sql, safe="")
        status, _, data = harness.http(port, "GET", path)
        suite.equal(f"SQL-ish category {sql[:40]!r}: 200 []", (status, data), (200, b"[]"))
    suite.equal("SQL in category changed nothing", database_state(), state)
    health_ok("SQL in category")
    for path in ["/products/1;DROP%20TABLE%20orders", "/products/1%20OR%201=1", "/products/1'",
                 "/products/%31"]:
        status, _, data = harness.http(port, "GET", path)
        suite.check(f"GET {path}: 400 or 404, never 200/500", status in (400, 404),
                    f"got {status} {data[:100]!r}")

    # ---- hostile JSON bodies: 400, nothing inserted ---------------------------------------------
    deep = b'{"product_id":1,"quantity":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep_objects = b'{"product_id":1,"quantity":1,"x":' + b'{"a":' * 3000 + b"1" + \
        b"}" * 3000 + b"}"
    cases = [
        ("deeply nested arrays (5,000)", deep, {400, 413}),
        ("deeply nested objects (3,000)", deep_objects, {400, 413}),
        ("duplicate quantity key", b'{"product_id":1,"quantity":1,"quantity":500}', {400}),
        ("duplicate product_id key", b'{"product_id":1,"product_id":2,"quantity":1}', {400}),
        ("trailing garbage", b'{"product_id":1,"quantity":1} x', {400}),
        ("two objects", b'{"product_id":1,"quantity":1}{"product_id":1,"quantity":1}', {400}),
        ("truncated JSON", b'{"product_id":1,"quantity":', {400}),
        ("NUL inside the body", b'{"product_id":1,"quantity":1\x00}', {400}),
        ("invalid UTF-8 in a string", b'{"product_id":1,"quantity":1,"note":"\xff\xfe"}', {400}),
        ("huge quantity 1e400", b'{"product_id":1,"quantity":1e400}', {400}),
        ("quantity 1e2 (a real)", b'{"product_id":1,"quantity":1e2}', {400}),
        ("quantity -0.0", b'{"product_id":1,"quantity":-0.0}', {400}),
        ("quantity 99999999999999999999999", b'{"product_id":1,"quantity":99999999999999999999999}',
         {400}),
        ("product_id 2^63", b'{"product_id":9223372036854775808,"quantity":1}', {400}),
        ("quantity NaN", b'{"product_id":1,"quantity":NaN}', {400}),
        ("string body", b'"product_id"', {400}),
        ("null body", b"null", {400}),
        ("single quotes", b"{'product_id':1,'quantity':1}", {400}),
    ]
    for label, body, want in cases:
        status, data, _, _ = exchange(port, post(body, extra=b"Connection: close\r\n"))
        suite.check(f"POST /orders {label}: {sorted(want)} JSON error",
                    status in want and data.startswith(b'{"error":'),
                    f"got {status} {data[:120]!r}")
    status, data, _, _ = exchange(port, post({"product_id": 1, "quantity": 1},
                                             content_type="text/plain",
                                             extra=b"Connection: close\r\n"))
    suite.equal("POST /orders text/plain: 415", status, 415)
    status, data, _, _ = exchange(port, post({"product_id": 1, "quantity": 1},
                                             content_type="application/x-www-form-urlencoded",
                                             extra=b"Connection: close\r\n"))
    suite.equal("POST /orders form content type: 415", status, 415)
    suite.equal("hostile bodies inserted and changed nothing", database_state(), state)
    health_ok("hostile JSON")

    # the server is alive and its process did not restart
    suite.check("server process still running", server.proc.poll() is None,
                f"exit {server.proc.poll()}")
    status, _, value = harness.http_json(port, "POST", "/orders", {"product_id": 1, "quantity": 1})
    suite.equal("a valid order after all of that: 201", status, 201)

suite.check("server exits 0 on SIGTERM after the hostile run", server.returncode == 0,
            f"exit {server.returncode}\n{server.stderr_text()[-1500:]}")
suite.finish()
