"""test_server_faults.py: faults an operator meets (issue 12), each against the real server:
a forged access-log line (a quote in the target), a client that half-closes after pipelined
requests, the descriptor table full (prlimit), stderr on a FIFO nobody reads, and the
connection timers (a keep-alive timer left armed while a query runs, the header deadline
replaced by the keep-alive one)."""

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NAME = "test_server_faults"
suite = harness.Suite(NAME)


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def read_all(sock, timeout):
    """Bytes read until the server closes sock or timeout s pass; (data, closed, reset)."""
    data, deadline = b"", time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True, True
        except socket.timeout:
            return data, False, False
        if not chunk:
            return data, True, False
        data += chunk


def statuses(data):
    """The status codes of the responses in data, in order."""
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def metric(port, name):
    """The value of an unlabelled metric on /metrics (None when absent)."""
    _, _, body = harness.http(port, "GET", "/metrics", timeout=5)
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


env = harness.make_db(NAME, products=100, orders=500)

# ---- 7: the access log cannot be forged ----------------------------------------------------
with harness.Server(dict(env, SERVER_ID="faults-log", ACCESS_LOG="1")) as server:
    forged = '/x"_200_1B_0.1ms"_\\'
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get(forged, "Connection: close\r\n"))
        answer, _, _ = read_all(sock, 5)
    suite.equal("a target with a quote: answered 404", statuses(answer), [404])
    time.sleep(0.3)
    lines = [line for line in server.stderr_text().splitlines() if " access " in line]
    line = next((x for x in lines if "/x" in x), "")
    # the format: ... access PEER "METHOD TARGET" STATUS BYTES DURATIONms
    m = re.search(r' access \S+ "((?:[^"\\]|\\.)*)" (\d+) (\d+) [0-9.]+ms$', line)
    suite.check("the access line parses as the documented format", m is not None, repr(line))
    if m:
        unescaped = re.sub(r"\\(.)", r"\1", m.group(1))
        suite.equal("the quoted request line unescapes to what was sent", unescaped,
                    "GET " + forged)
        suite.equal("the logged status is the real one", m.group(2), "404")

suite.finish()
