"""test_server_faults.py: faults an operator meets (issue 12), each against the real server:
a forged access-log line (a quote in the target), a client that half-closes after pipelined
requests, the descriptor table full (prlimit), stderr on a FIFO nobody reads, and the
connection timers (a keep-alive timer left armed while a query runs, the header deadline
replaced by the keep-alive one)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
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


def cpu_seconds(pid):
    """User + system CPU time the process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class PrlimitServer(harness.Server):
    """harness.Server started under `prlimit --nofile=N:N` (soft and hard limit N)."""

    def __init__(self, nofile, env_overrides=None):
        super().__init__(env_overrides)
        self.nofile = nofile

    def start(self):
        import tempfile
        self._stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["prlimit", f"--nofile={self.nofile}:{self.nofile}",
                                      harness.binary("catalog-server")], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                     stderr=self._stderr_file)
        self._wait_live()
        return self


def idle_clients(port, count):
    """count connections that send nothing (some may wait in the listen backlog)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


def quiet_while_exhausted(server, label):
    """CPU time and log bytes over 2 s while clients wait for descriptors."""
    cpu0, log0 = cpu_seconds(server.proc.pid), len(server.stderr_text())
    time.sleep(2)
    cpu = cpu_seconds(server.proc.pid) - cpu0
    logged = len(server.stderr_text()) - log0
    suite.check(f"{label}: no spin (CPU over 2 s < 0.3 s)", cpu < 0.3, f"{cpu:.2f} s of CPU")
    suite.check(f"{label}: no log flood (< 1 KB in 2 s)", logged < 1024, f"{logged} bytes")
    return cpu, logged


class FifoServer(harness.Server):
    """harness.Server whose stdout and stderr are a FIFO that this test opens but never reads
    (until read_fifo)."""

    def __init__(self, env_overrides=None):
        super().__init__(env_overrides)
        import tempfile
        self.folder = tempfile.mkdtemp(prefix="catalog-fifo-")
        self.fifo = os.path.join(self.folder, "stderr")
        os.mkfifo(self.fifo)
        self.reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)

    def start(self):
        writer = os.open(self.fifo, os.O_WRONLY)
        self.proc = subprocess.Popen([harness.binary("catalog-server")], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=writer, stderr=writer)
        os.close(writer)
        self._wait_live()
        return self

    def stderr_text(self):
        return ""

    def stop(self, *args, **kwargs):
        """harness.Server.stop, then the FIFO and its folder go too.  Safe to call twice."""
        status = super().stop(*args, **kwargs)
        if self.reader is not None:
            os.close(self.reader)
            self.reader = None
        shutil.rmtree(self.folder, ignore_errors=True)
        return status

    def read_fifo(self, seconds):
        """What the server wrote, read for `seconds`."""
        data, deadline = b"", time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = os.read(self.reader, 1 << 20)
            except BlockingIOError:
                time.sleep(0.05)
                continue
            if not chunk:
                time.sleep(0.05)
            data += chunk
        return data.decode("utf-8", "replace")


def pipelined(port, path, count, timeout=5):
    """count pipelined GETs of path on one connection; the number of 200 answers read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(get(path) * (count - 1) + get(path, "Connection: close\r\n"))
        data, _, _ = read_all(sock, timeout)
    return statuses(data).count(200)


env = harness.make_db(NAME, products=100, orders=500)

# ---- 7: the access log cannot be forged ----------------------------------------------------
with harness.Server(dict(env, SERVER_ID="faults-log", ACCESS_LOG="1")) as server:
    forged = '/x"_200_1B_0.1ms"_\\'
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get(forged, "Connection: close\r\n"))
        answer, _, _ = read_all(sock, 5)
    suite.equal("a target with a quote: answered 404", statuses(answer), [404])
    line = ""
    for _ in range(40):  # written by the log writer thread
        lines = [x for x in server.stderr_text().splitlines() if " access " in x and "/x" in x]
        if lines:
            line = lines[0]
            break
        time.sleep(0.05)
    # the format: ... access PEER "METHOD TARGET" STATUS BYTES DURATIONms
    m = re.search(r' access \S+ "((?:[^"\\]|\\.)*)" (\d+) (\d+) [0-9.]+ms$', line)
    suite.check("the access line parses as the documented format", m is not None, repr(line))
    if m:
        unescaped = re.sub(r"\\(.)", r"\1", m.group(1))
        suite.equal("the quoted request line unescapes to what was sent", unescaped,
                    "GET " + forged)
        suite.equal("the logged status is the real one", m.group(2), "404")

# ---- 1: out of file descriptors ------------------------------------------------------------
# At start-up under a small hard limit: MAX_CONNECTIONS is lowered to what fits, with a message.
with PrlimitServer(64, dict(env, SERVER_ID="faults-fd", WORKERS="2", DB_POOL_MAX="4")) as server:
    want = "MAX_CONNECTIONS=10000 does not fit the open-files limit of 64"
    for _ in range(40):  # the log writer thread may not have written it yet
        text = server.stderr_text()
        if want in text:
            break
        time.sleep(0.05)
    suite.check("prlimit 64: start-up says MAX_CONNECTIONS does not fit the open-files limit",
                want in text,
                text[-400:])
    socks = idle_clients(server.port, 90)
    cpu, logged = quiet_while_exhausted(server, "prlimit 64, 90 idle clients")
    for sock in socks:
        sock.close()
    time.sleep(0.3)
    status, _, _ = harness.http(server.port, "GET", "/health", timeout=5)
    suite.equal("prlimit 64: after the idle clients leave, GET /health answers", status, 200)
    print(f"# prlimit 64 at start, 90 idle clients: {cpu:.2f} s CPU, {logged} log bytes in 2 s")

# Descriptors exhausted at run time (the hard limit lowered under a running server): accepting
# pauses, one log line, a metric; a client that waited in the backlog is answered afterwards.
with harness.Server(dict(env, SERVER_ID="faults-emfile", WORKERS="2", DB_POOL_MAX="2")) as server:
    pid = server.proc.pid
    harness.http(server.port, "GET", "/products/1")  # the pool's connection is open
    limit = open_fds(pid) + 10
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
    socks = idle_clients(server.port, 90)
    waiter = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    waiter.sendall(get("/health/live", "Connection: close\r\n"))
    cpu, logged = quiet_while_exhausted(server, "EMFILE at run time, 90 idle clients")
    lines = [x for x in server.stderr_text().splitlines() if "accept:" in x]
    suite.equal("EMFILE: one log line about accept", len(lines), 1)
    for sock in socks:
        sock.close()
    answer, closed, _ = read_all(waiter, 5)
    waiter.close()
    suite.equal("EMFILE: the client that waited in the backlog is answered", statuses(answer),
                [200])
    paused = metric(server.port, "http_accept_paused_total")
    suite.check("EMFILE: /metrics counts the pauses", paused is not None and paused >= 1,
                repr(paused))
    print(f"# EMFILE at run time, 90 idle clients: {cpu:.2f} s CPU, {logged} log bytes in 2 s")

# ---- 2: a log reader that does not read ----------------------------------------------------
# Every request writes an access line (~110 bytes): a FIFO's 64 KiB fill after ~600 of them.
server = FifoServer(dict(env, SERVER_ID="faults-fifo", ACCESS_LOG="1", WORKERS="2"))
with server:
    answered = sum(pipelined(server.port, "/health/live", 1000) for _ in range(30))
    suite.equal("stderr on a FIFO nobody reads: 30,000 requests all answered", answered, 30000)
    dropped = metric(server.port, "log_lines_dropped_total")
    suite.check("log_lines_dropped_total counts the lines that did not fit",
                dropped is not None and dropped > 0, repr(dropped))
    text = server.read_fifo(1.5)
    reports = [x for x in text.splitlines() if "lines dropped" in x]
    suite.check("the drops are reported in one line once the reader reads", len(reports) == 1,
                repr(reports) if reports else text[-300:])
    # stuck again (a pipe's worth of lines), then SIGTERM: the exit does not wait for the reader
    pipelined(server.port, "/health/live", 2000)
    start = time.monotonic()
    code = server.stop()
    elapsed = time.monotonic() - start
    suite.check("SIGTERM with the reader stuck: exits 0 within 3 s",
                code == 0 and elapsed < 3, f"exit {code} after {elapsed:.1f} s")
    print(f"# stuck stderr reader: {answered} of 30000 answered, {dropped} lines dropped")

# ---- 5: half-close after pipelined requests ------------------------------------------------
with harness.Server(dict(env, SERVER_ID="faults-half", WORKERS="2")) as server:
    paths = ["/products/1", "/report", "/products/2", "/health", "/products/3"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"".join(get(p) for p in paths))
        sock.shutdown(socket.SHUT_WR)
        answer, closed, reset = read_all(sock, 5)
    suite.equal("half-close after 5 pipelined requests: 5 answers, in order",
                statuses(answer), [200] * 5)
    suite.check("half-close: then the server closes (no reset)", closed and not reset,
                f"closed {closed}, reset {reset}")
    # a partial request after the complete ones can never complete: answered ones, then close
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/health") * 2 + b"GET /hea")
        sock.shutdown(socket.SHUT_WR)
        answer, closed, _ = read_all(sock, 5)
    suite.equal("half-close with a partial third request: 2 answers", statuses(answer), [200] * 2)
    suite.check("half-close with a partial request: closed", closed)


# ---- 8: timers -----------------------------------------------------------------------------
def small_window_client(port):
    """A client with a 64 KiB receive buffer, so the server's writes fill up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


LISTINGS = 150  # ~4.6 MB of answers: more than loopback's socket buffers hold
with harness.Server(dict(env, SERVER_ID="faults-timers", HTTP_KEEPALIVE_TIMEOUT_MS="1000",
                         HTTP_HEADER_TIMEOUT_MS="1000")) as server:
    harness.http(server.port, "GET", "/report")  # prepared and warm
    # A partial write (the client reads late), then a query that waits 2.5 s on a lock: the
    # keep-alive timer of the write must not close the connection while the query runs.
    locker = harness.TableLock(NAME, "orders", 2.5)
    sock = small_window_client(server.port)
    sock.sendall(get("/products") * LISTINGS + get("/report", "Connection: close\r\n"))
    time.sleep(0.2)
    answer, closed, _ = read_all(sock, 10)
    sock.close()
    locker.wait(timeout=30)
    got = statuses(answer)
    suite.equal("partial write, then a query waiting 2.5 s (keep-alive 1 s): every answer",
                (len(got), got[-1:] if got else None), (LISTINGS + 1, [200]))

    # A partial write while the next head is incomplete: the 1 s header deadline stays (the
    # keep-alive deadline does not replace it): 408 about a second after the head began.
    sock = small_window_client(server.port)
    sock.sendall(get("/products") * LISTINGS + b"GET /health HTTP/1.1\r\nHost: t\r\n")
    time.sleep(0.2)
    answer, closed, _ = read_all(sock, 10)
    ended = time.monotonic()
    sock.close()
    got = statuses(answer)
    suite.equal("partial write, then a head left unfinished: the answers, then 408",
                (len(got), got[-1:] if got else None), (LISTINGS + 1, [408]))

suite.finish()
