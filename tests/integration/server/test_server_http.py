"""test_server_http.py: HTTP/1.1 behaviour of catalog-server on real sockets: keep-alive,
pipelining (answers in order), HTTP/1.0, the 414/431/413 limits, the header deadline (408 for a
trickled head or body), and 2,000 idle keep-alive connections at once."""

import os
import resource
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_http"
IDLE_CONNECTIONS = 2000
suite = harness.Suite(NAME)

# The idle-connection check needs more descriptors than the usual 1024 (the server inherits it).
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
wanted = IDLE_CONNECTIONS + 500
if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason, self.headers, self.body, self.raw_head = \
            status, reason, headers, body, raw_head

    def __repr__(self):
        return f"<{self.status} {self.body[:80]!r}>"


class Client:
    """One socket; reads responses one by one (Content-Length framing, as the server sends)."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def response(self, head_only=False):
        """The next response, or None when the connection closes (or times out) first."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(rest) < length:
            if not self._fill():
                return None
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return Response(int(status) if status.isdigit() else 0, reason, headers, rest[:length],
                        head)

    def wait_closed(self, timeout):
        """True when the server closes the connection within timeout seconds."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buffer += chunk
        return False

    def close(self):
        self.sock.close()


def get(path, host=True, extra=""):
    return (f"GET {path} HTTP/1.1\r\n" + ("Host: t\r\n" if host else "") + extra + "\r\n").encode()


def health_ok(port, label):
    """After each hostile case: a fresh GET /health answers 200 quickly."""
    start = time.monotonic()
    try:
        status, _, _ = harness.http(port, "GET", "/health", timeout=5)
    except OSError as error:
        status = repr(error)
    elapsed = time.monotonic() - start
    suite.check(f"after {label}: GET /health 200 in < 1 s", status == 200 and elapsed < 1.0,
                f"status {status}, {elapsed:.3f} s")


env = harness.make_db(NAME, products=120, orders=1000)

# ---- keep-alive, pipelining, HTTP/1.0 ----------------------------------------------------------
with harness.Server(dict(env, SERVER_ID="http-1", WORKERS="2")) as server:
    port = server.port

    client = Client(port)
    statuses = []
    for i in range(1, 6):
        client.send(get(f"/products/{i}"))
        r = client.response()
        statuses.append((r.status, r.headers.get("connection")) if r else None)
    suite.equal("keep-alive: 5 requests answered on one socket",
                statuses, [(200, statuses[0][1] if statuses[0] else None)] * 5)
    suite.check("keep-alive: no Connection: close",
                all(s and (s[1] or "").lower() != "close" for s in statuses), repr(statuses))
    client.close()

    # pipelined: all in one write, the slow /report first; answers come back in request order
    client = Client(port)
    paths = ["/report", "/products/2", "/health/live", "/products/abc", "/products/3", "/health",
             "/nope", "/products?category=books"]
    client.send(b"".join(get(p) for p in paths))
    answers = [client.response() for _ in paths]
    got = [(a.status, a.body[:12]) if a else None for a in answers]
    want_status = [200, 200, 200, 400, 200, 200, 404, 200]
    suite.equal("pipelined: statuses in request order", [g[0] if g else None for g in got],
                want_status)
    suite.check("pipelined: bodies in request order",
                all(answers) and answers[0].body.startswith(b'{"generated_at"') and
                answers[1].body.startswith(b'{"id":2,') and answers[4].body.startswith(b'{"id":3,')
                and answers[7].body.startswith(b"["), repr(got))
    client.send(get("/products/4"))
    r = client.response()
    suite.check("pipelined: the socket still serves afterwards", r and r.status == 200, repr(r))
    client.close()

    # pipelined POSTs with bodies, then a GET
    client = Client(port)
    body = b'{"product_id":5,"quantity":2}'
    post = (b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    client.send(post + post + get("/products/5"))
    answers = [client.response() for _ in range(3)]
    suite.equal("pipelined POST, POST, GET: statuses",
                [a.status if a else None for a in answers], [201, 201, 200])
    client.close()

    # HTTP/1.0 without keep-alive: one answer, then the server closes
    client = Client(port)
    client.send(b"GET /health HTTP/1.0\r\n\r\n")
    r = client.response()
    suite.equal("HTTP/1.0: status", r.status if r else None, 200)
    suite.check("HTTP/1.0: server closes after the answer", client.wait_closed(2), "still open")
    client.close()

    # HTTP/1.0 with keep-alive: stays open
    client = Client(port)
    client.send(b"GET /products/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r1 = client.response()
    client.send(b"GET /products/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r2 = client.response()
    suite.equal("HTTP/1.0 keep-alive: two answers on one socket",
                [r1.status if r1 else None, r2.status if r2 else None], [200, 200])
    suite.equal("HTTP/1.0 keep-alive: Connection: keep-alive echoed",
                (r1.headers.get("connection") or "").lower() if r1 else None, "keep-alive")
    client.close()

    # HTTP/1.1 Connection: close
    client = Client(port)
    client.send(get("/health", extra="Connection: close\r\n"))
    r = client.response()
    suite.equal("Connection: close: status", r.status if r else None, 200)
    suite.equal("Connection: close: echoed", (r.headers.get("connection") or "").lower()
                if r else None, "close")
    suite.check("Connection: close: server closes", client.wait_closed(2), "still open")
    client.close()

    # Expect: 100-continue
    client = Client(port)
    client.send(b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() +
                b"\r\n\r\n")
    # exactly one interim 100 while the body has not come (bounded read: 0.3 s or 1 MB)
    client.sock.settimeout(0.3)
    early = b""
    try:
        while len(early) < 1 << 20:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            early += chunk
    except socket.timeout:
        pass
    client.sock.settimeout(5)
    suite.equal("Expect: 100-continue: exactly one '100 Continue' before the body is sent",
                early.count(b"100 Continue"), 1)
    client.buffer = early[early.find(b"\r\n\r\n") + 4:] if b"\r\n\r\n" in early else b""
    client.send(body)
    r = client.response()
    suite.equal("Expect: 100-continue: then 201", r.status if r else None, 201)
    client.close()

    # ---- 2,000 idle keep-alive connections -----------------------------------------------------
    idle = []
    open_error = None
    try:
        for _ in range(IDLE_CONNECTIONS):
            c = Client(port, timeout=10)
            c.send(get("/health/live"))
            idle.append(c)
    except OSError as error:
        open_error = repr(error)
    suite.check(f"{IDLE_CONNECTIONS} connections opened", open_error is None and
                len(idle) == IDLE_CONNECTIONS, f"{len(idle)} opened, {open_error}")
    answered = sum(1 for c in idle if (lambda r: r and r.status == 200)(c.response()))
    suite.equal(f"{IDLE_CONNECTIONS} connections each answered once", answered, len(idle))
    latencies = []
    for i in range(20):
        start = time.monotonic()
        status, _, _ = harness.http(port, "GET", f"/products/{i + 1}", timeout=5)
        latencies.append((status, time.monotonic() - start))
    worst = max(t for _, t in latencies)
    suite.check(f"with {len(idle)} idle connections open: 20 fresh requests 200, each < 0.2 s",
                all(s == 200 for s, _ in latencies) and worst < 0.2,
                f"worst {worst:.3f} s, statuses {[s for s, _ in latencies]}")
    status, _, metrics = harness.http(port, "GET", "/metrics")
    open_line = [line for line in metrics.decode().split("\n")
                 if line.startswith("http_connections_open ")]
    suite.check(f"http_connections_open >= {len(idle)}",
                open_line and float(open_line[0].split()[1]) >= len(idle), repr(open_line))
    # the idle ones still work
    still = 0
    for c in idle[::100]:
        c.send(get("/health/live"))
        r = c.response()
        still += 1 if r and r.status == 200 else 0
    suite.equal("idle connections still answer", still, len(idle[::100]))
    for c in idle:
        c.close()
    del idle

# ---- limits and deadlines, lowered through the environment --------------------------------------
limits = {"HTTP_MAX_REQUEST_LINE": "256", "HTTP_MAX_HEADER_BYTES": "1024",
          "HTTP_MAX_HEADERS": "10", "HTTP_MAX_BODY_BYTES": "200", "HTTP_HEADER_TIMEOUT_MS": "1000"}
with harness.Server(dict(env, SERVER_ID="http-2", WORKERS="2", **limits)) as server:
    port = server.port

    def expect(label, data, want_status, closes=True, send_slowly=None):
        client = Client(port)
        client.send(data)
        r = client.response()
        suite.equal(f"{label}: status", r.status if r else None, want_status)
        if r and want_status >= 400:
            suite.check(f"{label}: JSON error body", r.body.startswith(b'{"error":'), r.body[:100])
            suite.equal(f"{label}: X-Server-Id", r.headers.get("x-server-id"), "http-2")
        if closes:
            suite.check(f"{label}: connection closed after the error", client.wait_closed(2),
                        "still open")
        client.close()
        health_ok(port, label)

    expect("request line of 200 bytes (under 256)", get("/products?category=" + "a" * 160), 200,
           closes=False)
    expect("request line of 300 bytes", get("/products?category=" + "a" * 260), 414)
    expect("request line of 100 kB", get("/products?category=" + "a" * 100000), 414)
    expect("head of 1,100 bytes", get("/health", extra="X-Big: " + "b" * 1100 + "\r\n"), 431)
    expect("header of 100 kB", get("/health", extra="X-Big: " + "b" * 100000 + "\r\n"), 431)
    expect("9 headers (limit 10)", get("/health", extra="".join(
        f"X-H{i}: v\r\n" for i in range(8))), 200, closes=False)
    expect("12 headers (limit 10)", get("/health", extra="".join(
        f"X-H{i}: v\r\n" for i in range(11))), 431)
    expect("200 small headers", get("/health", extra="".join(
        f"X{i}: v\r\n" for i in range(200))), 431)
    before = harness.psql("SELECT count(*) FROM orders", db=NAME)
    big = b'{"product_id":1,"quantity":1,"pad":"' + b"x" * 300 + b'"}'
    expect("body of 340 bytes (limit 200)",
           b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big, 413)
    expect("Content-Length 1 GB announced, no body sent",
           b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: 1000000000\r\n\r\n", 413)
    suite.equal("oversized bodies inserted nothing",
                harness.psql("SELECT count(*) FROM orders", db=NAME), before)

    # the header deadline: a head trickled byte by byte gets 408 (or a close) after ~1 s
    client = Client(port, timeout=5)
    start = time.monotonic()
    trickle = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 40
    sent_all = True
    for byte in trickle:
        try:
            client.send(bytes([byte]))
        except OSError:
            sent_all = False
            break
        if time.monotonic() - start > 3:
            break
        if select.select([client.sock], [], [], 0.05)[0]:
            break  # the answer is there (the server drains what follows, then closes)
    r = client.response()
    elapsed = time.monotonic() - start
    suite.equal("trickled head: 408", r.status if r else None, 408)
    suite.check("trickled head: answered after ~1 s (0.9..2.5 s)", 0.9 <= elapsed <= 2.5,
                f"{elapsed:.2f} s, sent all: {sent_all}")
    suite.check("trickled head: connection closed", client.wait_closed(2), "still open")
    client.close()
    health_ok(port, "trickled head")

    # a body trickled past the deadline also ends
    client = Client(port, timeout=5)
    start = time.monotonic()
    client.send(b"POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{")
    for _ in range(30):
        try:
            client.send(b" ")
        except OSError:
            break
        if select.select([client.sock], [], [], 0.1)[0]:
            break
    r = client.response()
    elapsed = time.monotonic() - start
    suite.equal("trickled body: 408", r.status if r else None, 408)
    suite.check("trickled body: ended within 2.5 s", elapsed <= 2.5, f"{elapsed:.2f} s")
    client.close()
    health_ok(port, "trickled body")

    # a connection that never sends anything is closed after the deadline
    client = Client(port, timeout=5)
    start = time.monotonic()
    closed = client.wait_closed(4)
    elapsed = time.monotonic() - start
    suite.check("silent connection: closed within 0.9..2.5 s", closed and 0.9 <= elapsed <= 2.5,
                f"closed {closed} after {elapsed:.2f} s")
    client.close()

    # the deadline is per request: a keep-alive connection idle between requests is not a 408
    client = Client(port)
    client.send(get("/health/live"))
    r1 = client.response()
    time.sleep(1.5)
    client.send(get("/health/live"))
    r2 = client.response()
    suite.equal("keep-alive idle 1.5 s between requests (header deadline 1 s): both 200",
                [r1.status if r1 else None, r2.status if r2 else None], [200, 200])
    client.close()

suite.finish()
