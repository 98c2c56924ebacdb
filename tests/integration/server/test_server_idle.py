"""test_server_idle.py: 10,000 idle connections at once (issue 7): while they are open a fresh
client's /health and /products/1 answer at normal latency and /metrics counts them; connections
beyond MAX_CONNECTIONS are closed at once; at the header or keep-alive deadline each idle one gets
the right answer (408 for a head left unfinished, a plain close for one that sent nothing or was
idle after a response), and the count drops back.  Then MAX_CONNECTIONS holds with workers
accepting at once."""

import os
import re
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_idle"
IDLE_CONNECTIONS = 10000
OVER_LIMIT = 20          # MAX_CONNECTIONS = IDLE_CONNECTIONS + OVER_LIMIT
DEADLINE_MS = 6000       # HTTP_HEADER_TIMEOUT_MS and HTTP_KEEPALIVE_TIMEOUT_MS
FAST_S = 0.2
suite = harness.Suite(NAME)

# One descriptor per connection here; the server raises its own soft limit to its hard limit.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
wanted = IDLE_CONNECTIONS + 1000
if soft < wanted:
    if hard != resource.RLIM_INFINITY and hard < wanted:
        suite.check(f"open-files hard limit allows {wanted} descriptors", False,
                    f"hard limit {hard}; raise it (ulimit -Hn) to run this test")
        suite.finish()
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(30000, hard) if hard != resource.RLIM_INFINITY
                                                else 30000, hard))


get = harness.request_bytes
read_until_closed = harness.read_until_closed


def read_response(sock, timeout):
    """The status of one whole response (head and Content-Length body) read from sock, or None
    when the connection closes or times out first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
    except (ConnectionResetError, socket.timeout):
        return None
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    return int(match.group(1)) if match else None


def connections_open(port):
    _, _, metrics = harness.http(port, "GET", "/metrics", timeout=5)
    for line in metrics.decode().split("\n"):
        if line.startswith("http_connections_open "):
            return float(line.split()[1])
    return None


env = harness.make_db(NAME, products=120, orders=1000)
settings = {"SERVER_ID": "idle", "WORKERS": "2",
            "MAX_CONNECTIONS": str(IDLE_CONNECTIONS + OVER_LIMIT),
            "HTTP_HEADER_TIMEOUT_MS": str(DEADLINE_MS), "HTTP_KEEPALIVE_TIMEOUT_MS": str(DEADLINE_MS)}
with harness.Server(dict(env, **settings)) as server:
    port = server.port
    # Three kinds, in turn: nothing sent; a head left unfinished; one request answered, then idle.
    kinds = ("silent", "partial", "keep-alive")
    idle = {kind: [] for kind in kinds}
    open_error = None
    started = time.monotonic()
    try:
        for i in range(IDLE_CONNECTIONS):
            kind = kinds[i % 3]
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if kind == "partial":
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
            elif kind == "keep-alive":
                sock.sendall(get("/health/live"))
            idle[kind].append(sock)
    except OSError as error:
        open_error = repr(error)
    opened = sum(len(v) for v in idle.values())
    open_s = time.monotonic() - started
    suite.check(f"{IDLE_CONNECTIONS} connections opened ({open_s:.1f} s)",
                open_error is None and opened == IDLE_CONNECTIONS, f"{opened} opened, {open_error}")
    statuses = [read_response(s, 10) for s in idle["keep-alive"]]
    suite.equal(f"the {len(statuses)} keep-alive ones: each answered 200 once",
                sum(1 for s in statuses if s == 200), len(idle["keep-alive"]))

    # A fresh client meanwhile: new connections, and one keep-alive connection.
    latencies = []
    for i in range(10):
        for path in ("/health", f"/products/{i + 1}"):
            start = time.monotonic()
            try:
                status, _, _ = harness.http(port, "GET", path, timeout=5)
            except OSError as error:
                status = repr(error)
            latencies.append((path, status, time.monotonic() - start))
    worst = max(t for _, _, t in latencies)
    suite.check(f"with {opened} idle connections open: 10 x /health and /products/N on fresh "
                f"connections, each 200 in < {FAST_S} s (worst {worst * 1000:.0f} ms)",
                all(s == 200 for _, s, _ in latencies) and worst < FAST_S,
                f"{[(p, s, round(t, 3)) for p, s, t in latencies if s != 200 or t >= FAST_S]}")
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    worst = 0.0
    kept = []
    for path in ("/health", "/products/1") * 10:
        start = time.monotonic()
        client.sendall(get(path))
        kept.append(read_response(client, 5))
        worst = max(worst, time.monotonic() - start)
    client.close()
    suite.check(f"one keep-alive client meanwhile: 20 answers 200, each < {FAST_S} s "
                f"(worst {worst * 1000:.0f} ms)", kept == [200] * 20 and worst < FAST_S,
                f"{kept}")
    count = connections_open(port)
    suite.check(f"/metrics: http_connections_open >= {IDLE_CONNECTIONS} ({count})",
                count is not None and count >= IDLE_CONNECTIONS, repr(count))

    # Beyond MAX_CONNECTIONS: closed at once, without an answer; never a hang.
    probes, answered, closed, other = [], 0, 0, []
    for _ in range(2 * OVER_LIMIT):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            probes.append(sock)
            sock.sendall(get("/health/live"))
        except OSError:
            closed += 1
    for sock in probes:
        try:
            status = read_response(sock, 3)
        except OSError:
            status = None
        if status == 200:
            answered += 1
        elif status is None:
            closed += 1
        else:
            other.append(status)
    suite.check(f"{2 * OVER_LIMIT} more connections with {IDLE_CONNECTIONS} open and "
                f"MAX_CONNECTIONS={IDLE_CONNECTIONS + OVER_LIMIT}: each answered 200 or closed, "
                f"at least {OVER_LIMIT} closed ({answered} answered, {closed} closed)",
                not other and answered <= OVER_LIMIT and closed >= OVER_LIMIT and
                answered + closed == 2 * OVER_LIMIT, f"answered {answered} closed {closed} other {other}")
    for sock in probes:
        sock.close()
    checks_s = time.monotonic() - started
    suite.check(f"the checks above ran while all {opened} were open ({checks_s:.1f} s < "
                f"deadline {DEADLINE_MS / 1000:.0f} s)", checks_s < DEADLINE_MS / 1000 - 0.5,
                "too slow: raise DEADLINE_MS")
    time.sleep(0.2)
    status = None
    try:
        status, _, _ = harness.http(port, "GET", "/health", timeout=5)
    except OSError as error:
        status = repr(error)
    suite.equal("below the limit again: a fresh /health answers 200", status, 200)

    # At the deadline: 408 for an unfinished head, a plain close otherwise.
    deadline = started + DEADLINE_MS / 1000 + 10
    results = {kind: {"closed": 0, "408": 0, "other": []} for kind in kinds}
    for kind in kinds:
        for sock in idle[kind]:
            data, was_closed = read_until_closed(sock, deadline)
            r = results[kind]
            if was_closed:
                r["closed"] += 1
            if data.startswith(b"HTTP/1.1 408 "):
                r["408"] += 1
            elif data:
                r["other"].append(data[:40])
            sock.close()
    waited_s = time.monotonic() - started
    n = {kind: len(idle[kind]) for kind in kinds}
    suite.check(f"the {n['partial']} unfinished heads: each answered 408, then closed",
                results["partial"]["408"] == n["partial"] and
                results["partial"]["closed"] == n["partial"], repr(results["partial"])[:300])
    for kind in ("silent", "keep-alive"):
        r = results[kind]
        suite.check(f"the {n[kind]} {kind} ones: each closed at the deadline, nothing sent",
                    r["closed"] == n[kind] and r["408"] == 0 and not r["other"], repr(r)[:300])
    suite.check(f"all closed by the server within {waited_s:.1f} s of the first connect",
                waited_s < DEADLINE_MS / 1000 + 10)
    del idle
    count = None
    for _ in range(50):
        count = connections_open(port)
        if count is not None and count <= 2:
            break
        time.sleep(0.1)
    suite.check(f"/metrics: http_connections_open back to at most 2 ({count})",
                count is not None and count <= 2, repr(count))
    log = server.stderr_text()
    suite.check("the server logged no accept error (descriptors)", "accept:" not in log,
                log[-500:])
    code = server.stop()
    suite.equal("the server exits 0 on SIGTERM afterwards", code, 0)

# MAX_CONNECTIONS under workers accepting at once: many clients connect together to a server
# of 4 workers, round after round, and hold their connections; never more than MAX_CONNECTIONS
# are answered (a worker that read the count, then added to it, let two workers take the last
# place together).
RACE_LIMIT, RACE_CLIENTS, RACE_ROUNDS = 8, 48, 60
race = {"SERVER_ID": "race", "WORKERS": "4", "MAX_CONNECTIONS": str(RACE_LIMIT)}
with harness.Server(dict(env, **race)) as server:
    most, rounds = 0, []
    for _ in range(RACE_ROUNDS):
        gate = threading.Barrier(RACE_CLIENTS)
        socks = [None] * RACE_CLIENTS

        def connect(i):
            gate.wait()
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(get("/health/live"))
                socks[i] = sock
            except OSError:
                pass

        threads = [threading.Thread(target=connect, args=(i,)) for i in range(RACE_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Every answer is read before any socket closes: a close frees a place, and a client
        # still waiting in the listen backlog would then take it and be answered fairly.
        answered = 0
        for sock in socks:
            if sock is None:
                continue
            try:
                answered += read_response(sock, 3) == 200
            except OSError:
                pass
        for sock in socks:
            if sock is not None:
                sock.close()
        rounds.append(answered)
        most = max(most, answered)
        for _ in range(100):  # the server's count back to 0 before the next round
            try:
                count = connections_open(server.port)
            except OSError:  # still full: closed at once
                count = None
            if count is not None and count <= 1:
                break
            time.sleep(0.02)
    suite.check(f"{RACE_ROUNDS} rounds of {RACE_CLIENTS} clients connecting at once to 4 workers "
                f"with MAX_CONNECTIONS={RACE_LIMIT}: never more answered (most {most})",
                0 < most <= RACE_LIMIT, repr(rounds))

harness.drop_db(NAME)
suite.finish()
