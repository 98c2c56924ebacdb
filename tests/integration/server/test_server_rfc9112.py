"""test_server_rfc9112.py: RFC 9112 points against the real server: chunked request bodies
(POST /orders split at every byte boundary, the body limit, malformed sizes, other codings),
absolute-form targets, empty lines before a request, an invalid Host, `GET *`, and the close
after an error answer when input is still arriving (half-close and drain, not a reset)."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_rfc9112"
suite = harness.Suite(NAME)


def read_until_close(sock, timeout=5):
    """Reads until the server closes, resets or is silent for timeout seconds.
    Returns (bytes read, closed cleanly, reset)."""
    data = b""
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, False, True
        except socket.timeout:
            return data, False, False
        if not chunk:
            return data, True, False
        data += chunk


def exchange(port, parts, timeout=5, pause=0.0):
    """Sends each of parts (bytes) in its own write, pause s apart; returns (answer, closed,
    reset) once the server closes or timeout s pass."""
    data, closed, reset = b"", False, False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            sock.sendall(part)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = reset = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    return data, closed, reset


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def orders():
    return int(harness.psql("SELECT count(*) FROM orders", db=NAME))


def chunked_post(body_framing, extra=b""):
    return (b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n" + extra + b"Connection: close\r\n\r\n" + body_framing)


env = harness.make_db(NAME, products=50, orders=100)
with harness.Server(dict(env, SERVER_ID="rfc", WORKERS="2", HTTP_HEADER_TIMEOUT_MS="3000")) \
        as server:
    port = server.port

    # ---- chunked request bodies ------------------------------------------------------------
    framing = b'a\r\n{"product_\r\n13;note=x\r\nid":1,"quantity":2}\r\n0\r\nX-T: y\r\n\r\n'
    before = orders()
    data, _, _ = exchange(port, [chunked_post(framing)])
    suite.equal("chunked POST /orders: 201", statuses(data), [201])
    suite.check("chunked POST /orders: the order is in the body", b'"quantity":2' in data,
                repr(data[-200:]))
    request = chunked_post(framing)
    head_len = request.index(b"\r\n\r\n") + 4
    answers = []
    for cut in range(head_len, len(request)):
        data, _, _ = exchange(port, [request[:cut], request[cut:]], pause=0.01)
        answers.append(statuses(data))
    suite.check(f"chunked body split at each of its {len(request) - head_len} byte boundaries: "
                "201 every time", all(a == [201] for a in answers),
                repr([(i, a) for i, a in enumerate(answers) if a != [201]][:5]))
    suite.equal("chunked: one order per request", orders() - before, len(answers) + 1)

    # pipelined after a chunked body: the next request is answered too
    data, _, _ = exchange(port, [chunked_post(framing).replace(b"Connection: close\r\n", b"") +
                                 b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
    suite.equal("a request pipelined after a chunked body: answered", statuses(data), [201, 200])

    before = orders()
    big = b"4001\r\n" + b"x" * 16385 + b"\r\n0\r\n\r\n"  # HTTP_MAX_BODY_BYTES is 16384
    data, closed, _ = exchange(port, [chunked_post(big)])
    suite.equal("chunked body over HTTP_MAX_BODY_BYTES: 413", statuses(data), [413])
    many = b"1\r\nx\r\n" * 20000 + b"0\r\n\r\n"
    data, closed, _ = exchange(port, [chunked_post(many)])
    suite.equal("chunked body of 20,000 one-byte chunks (framing over the head limit): 413",
                statuses(data), [413])
    for label, bad in [("a size that is not hex", b"zz\r\n{}\r\n0\r\n\r\n"),
                       ("a negative size", b"-2\r\n{}\r\n0\r\n\r\n"),
                       ("a 0x size", b"0x2\r\n{}\r\n0\r\n\r\n"),
                       ("a size of 17 digits", b"00000000000000002\r\n{}\r\n0\r\n\r\n"),
                       ("data longer than its size", b"1\r\n{}\r\n0\r\n\r\n"),
                       ("a bare LF after the size", b"2\n{}\r\n0\r\n\r\n"),
                       ("an empty size line", b"\r\n{}\r\n0\r\n\r\n")]:
        data, closed, _ = exchange(port, [chunked_post(bad)])
        suite.equal(f"chunked, {label}: 400", statuses(data), [400])
    suite.equal("refused chunked bodies inserted nothing", orders(), before)

    for label, te, want in [("gzip, chunked", b"gzip, chunked", 501),
                            ("gzip alone (chunked not final)", b"gzip", 400),
                            ("chunked, gzip", b"chunked, gzip", 400)]:
        data, _, _ = exchange(port, [b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                     b"application/json\r\nTransfer-Encoding: " + te +
                                     b"\r\n\r\n0\r\n\r\n"])
        suite.equal(f"Transfer-Encoding: {label}: {want}", statuses(data), [want])
    data, _, _ = exchange(port, [chunked_post(b"2\r\n{}\r\n0\r\n\r\n", b"Content-Length: 2\r\n")])
    suite.equal("Transfer-Encoding with Content-Length: 400", statuses(data), [400])

    # ---- targets, empty lines, Host --------------------------------------------------------
    data, _, _ = exchange(port, [b"GET http://localhost:3000/health/live HTTP/1.1\r\nHost: t\r\n"
                                 b"Connection: close\r\n\r\n"])
    suite.equal("absolute-form GET http://host/health/live: 200", statuses(data), [200])
    data, _, _ = exchange(port, [b"GET http://localhost/products/1?x=1 HTTP/1.1\r\nHost: t\r\n"
                                 b"Connection: close\r\n\r\n"])
    suite.check("absolute-form with a query: the product", statuses(data) == [200] and
                b'"id":1' in data, repr(data[:200]))
    data, _, _ = exchange(port, [b"GET http://a b/ HTTP/1.1\r\nHost: t\r\n\r\n"])
    suite.equal("absolute-form with a space in the authority: 400", statuses(data), [400])
    data, _, _ = exchange(port, [b"\r\nGET /health/live HTTP/1.1\r\nHost: t\r\n\r\n\r\n"
                                 b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
    suite.equal("an empty line before a request (and between two): both answered",
                statuses(data), [200, 200])
    for host in [b"a b/c@@", b"a/b", b"u@a", b"a:port", b"[::1"]:
        data, _, _ = exchange(port, [b"GET /health/live HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"])
        suite.equal(f"Host: {host.decode()}: 400", statuses(data), [400])
    for host in [b"localhost:3000", b"[::1]:3000", b"127.0.0.1", b"catalog.example"]:
        data, _, _ = exchange(port, [b"GET /health/live HTTP/1.1\r\nHost: " + host +
                                     b"\r\nConnection: close\r\n\r\n"])
        suite.equal(f"Host: {host.decode()}: 200", statuses(data), [200])
    data, _, _ = exchange(port, [b"GET * HTTP/1.1\r\nHost: t\r\n\r\n"])
    suite.equal("GET *: 400", statuses(data), [400])

    # ---- an error answer with input still unread: readable, then a close, not a reset -----
    # The head and 64 KiB of its body arrive together; the server refuses at the head (413)
    # with the rest unread in its socket.  A plain close() there sends a reset.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 999999999\r\n\r\n" + b"x" * 65536)
        time.sleep(0.3)
        data, _, reset = read_until_close(sock)
    suite.equal("413 with 64 KiB unread: the answer is read", statuses(data), [413])
    suite.check("413 with 64 KiB unread: then a close (the server half-closes), not a reset",
                not reset, "connection reset")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nBad header\r\n\r\n" + b"y" * 65536)
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)
        data, closed, reset = read_until_close(sock)
    suite.check("400 with input unread, then the client's EOF: answer, then a clean close",
                statuses(data) == [400] and closed and not reset,
                f"{statuses(data)}, closed {closed}, reset {reset}")

    status, _, _ = harness.http(port, "GET", "/health")
    suite.equal("afterwards /health answers", status, 200)

suite.finish()
