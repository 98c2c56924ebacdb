"""harness.py: what every integration test shares (python3 standard library only).

A test file does:

    import harness
    suite = harness.Suite("test_products")
    env = harness.make_db("test_products", products=200, orders=2000)
    with harness.Server(env) as server:
        status, headers, body = harness.http(server.port, "GET", "/products/1")
        suite.check("GET /products/1 answers 200", status == 200, f"got {status}")
    suite.finish()

tests/run.sh starts one throwaway PostgreSQL and exports PGHOST/PGPORT/PGUSER/PGPASSWORD and
DB_HOST/DB_PORT/DB_USER/DB_PASSWORD; each test makes its own database in it (make_db).
The binaries come from CATALOG_BUILD (run.sh sets it), default build/ of this repository.
"""

import http.client as http_client  # bound apart: http() below is this module's own
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, REPO_ROOT)
from pytools import pg, procs  # noqa: E402 (the toolkit the benchmarks and the lab share)
from pytools.ports import free_port  # noqa: E402,F401 (harness.free_port for the tests)


class Suite:
    """Counts checks, prints one line per check and the closing "NAME: N passed, N failed"."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, label, condition, detail=""):
        """Records one assertion; prints "ok label" or "FAIL label detail". Returns condition."""
        if condition:
            self.passed += 1
            print(f"ok   {label}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {label}" + (f": {detail}" if detail else ""), flush=True)
        return bool(condition)

    def equal(self, label, got, want):
        """check() that got == want, printing both values when they differ."""
        return self.check(label, got == want, f"got {got!r}, want {want!r}")

    def finish(self):
        """Prints the closing line and exits: 1 when any check failed, else 0."""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def build_dir():
    """Where the binaries are: $CATALOG_BUILD, default build/ of this repository."""
    return os.environ.get("CATALOG_BUILD") or os.path.join(REPO_ROOT, "build")


def binary(name):
    """Path of a built program (catalog-server, catalog-db, catalog-loadtest)."""
    return os.path.join(build_dir(), name)


def db_env(name):
    """The DB_* settings for database `name` on the test cluster (from run.sh's exports)."""
    return {
        "DB_HOST": os.environ.get("DB_HOST") or os.environ.get("PGHOST", "127.0.0.1"),
        "DB_PORT": os.environ.get("DB_PORT") or os.environ.get("PGPORT", "5432"),
        "DB_NAME": name,
        "DB_USER": os.environ.get("DB_USER") or os.environ.get("PGUSER", "postgres"),
        "DB_PASSWORD": os.environ.get("DB_PASSWORD") or os.environ.get("PGPASSWORD", "postgres"),
    }


def psql(sql, db="postgres", check=True):
    """Runs sql (one or more statements) with `psql -XAtq` on the test cluster; returns stdout
    with the final newline removed (rows one a line, columns separated by |).  Raises
    RuntimeError with psql's stderr when a statement fails (unless check=False)."""
    env = dict(os.environ)
    env.setdefault("PGHOST", env.get("DB_HOST", "127.0.0.1"))
    env.setdefault("PGPORT", env.get("DB_PORT", "5432"))
    env.setdefault("PGUSER", env.get("DB_USER", "postgres"))
    env.setdefault("PGPASSWORD", env.get("DB_PASSWORD", "postgres"))
    return pg.psql(sql, db=db, env=env, check=check)


def drop_db(name):
    """Drops database `name` if it exists, closing any session still using it."""
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def catalog_db(command, env_overrides=None, timeout=300):
    """Runs `catalog-db COMMAND` with os.environ plus env_overrides; returns the
    subprocess.CompletedProcess (returncode, stdout, stderr as text)."""
    env = dict(os.environ)
    env.update(env_overrides or {})
    return subprocess.run([binary("catalog-db"), command], env=env, capture_output=True,
                          text=True, timeout=timeout)


def make_db(name, products=200, orders=2000):
    """Drops and re-creates database `name`, seeded by `catalog-db seed` with SEED_PRODUCTS =
    products and SEED_ORDERS = orders.  Returns the env dict (DB_*) a server needs to use it.
    Raises RuntimeError with catalog-db's output when the seed fails."""
    drop_db(name)
    env = db_env(name)
    proc = catalog_db("seed", dict(env, SEED_PRODUCTS=str(products), SEED_ORDERS=str(orders),
                                   DB_WAIT_TRIES="5", DB_WAIT_INTERVAL_MS="500"))
    if proc.returncode != 0:
        raise RuntimeError(f"catalog-db seed of {name} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")
    return env


def _cluster_dir():
    folder = os.environ.get("CATALOG_TEST_PGDIR")
    if not folder:
        raise RuntimeError("CATALOG_TEST_PGDIR is not set: run the test through tests/run.sh")
    return folder


def cluster_stop():
    """Stops the test cluster (fast shutdown), e.g. to see a server survive a database outage.
    Raises RuntimeError when scripts/pg.sh fails."""
    proc = subprocess.run([os.path.join(REPO_ROOT, "scripts", "pg.sh"), "stop", _cluster_dir()],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"pg.sh stop failed: {proc.stderr.strip()}")


def cluster_start():
    """Starts the test cluster again on the same port (so every DB_PORT stays valid).
    Raises RuntimeError when scripts/pg.sh fails (e.g. the port was taken meanwhile)."""
    port = os.environ.get("PGPORT") or os.environ["DB_PORT"]
    proc = subprocess.run(
        [os.path.join(REPO_ROOT, "scripts", "pg.sh"), "start", _cluster_dir(), port],
        env=dict(os.environ, PG_FAST="1"), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"pg.sh start failed: {proc.stderr.strip()}")


class Server:
    """Runs catalog-server for a `with` block:

        with Server(dict(env, DB_POOL_MAX="2")) as server:
            http(server.port, "GET", "/health")

    Environment: os.environ, then HOST=127.0.0.1, a free PORT and ACCESS_LOG=0, then
    env_overrides (which may set any of them).  Entering waits until GET /health/live answers
    (raises RuntimeError with the server's stderr if it exits or does not answer in
    start_timeout_s).  Leaving sends SIGTERM and waits (SIGKILL after 10 s)."""

    def __init__(self, env_overrides=None, args=None, start_timeout_s=10, wait_live=True):
        self.env = dict(os.environ)
        self.env.update({"HOST": "127.0.0.1", "PORT": str(free_port()), "ACCESS_LOG": "0"})
        self.env.update({k: str(v) for k, v in (env_overrides or {}).items()})
        self.port = int(self.env["PORT"])
        self.args = list(args or [])
        self.start_timeout_s = start_timeout_s
        self.wait_live = wait_live
        self.proc = None
        self.returncode = None
        self._stderr_file = None

    def start(self):
        self._stderr_file = tempfile.TemporaryFile()
        self.proc = procs.start([binary("catalog-server")] + self.args, self._stderr_file,
                                env=self.env)
        if self.wait_live:
            self._wait_live()
        return self

    def _wait_live(self):
        def live():
            try:
                return http(self.port, "GET", "/health/live", timeout=1)[0] == 200
            except OSError:
                return False
        if procs.wait_until(live, self.start_timeout_s, alive=lambda: self.proc.poll() is None,
                            interval_s=0.05):
            return
        if self.proc.poll() is not None:
            raise RuntimeError(f"catalog-server exited with {self.proc.returncode} at "
                               f"start-up:\n{self.stderr_text()}")
        self.stop()
        raise RuntimeError(f"catalog-server did not answer GET /health/live on port {self.port}"
                           f" within {self.start_timeout_s} s:\n{self.stderr_text()}")

    def stderr_text(self):
        """Everything the server wrote so far (stdout and stderr), as text."""
        if not self._stderr_file:
            return ""
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout_s=10):
        """Sends sig and waits for the exit (SIGKILL after timeout_s).  Returns the exit status
        (negative: killed by that signal).  Safe to call twice."""
        if self.proc and self.returncode is None:
            self.returncode = procs.stop(self.proc, sig, timeout_s)
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def http(port, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection to 127.0.0.1:port.  body may be bytes, str, or a
    dict/list (sent as JSON with Content-Type application/json unless headers say otherwise).
    Returns (status, headers as a dict with lower-case names, body bytes); repeated headers are
    joined with ", ".  Raises OSError (e.g. ConnectionRefusedError, socket.timeout) when the
    server cannot be reached or does not answer in timeout seconds."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    conn = http_client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        merged = {}
        for name, value in response.getheaders():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return response.status, merged, data
    except http_client.HTTPException as error:
        raise OSError(f"bad HTTP response to {method} {path}: {error!r}") from error
    finally:
        conn.close()


def timed(port, method, path, body=None, timeout=15):
    """http() that never raises: (status or error text, headers, body bytes, seconds)."""
    start = time.monotonic()
    try:
        status, headers, data = http(port, method, path, body, timeout=timeout)
    except OSError as error:
        status, headers, data = f"error {error!r}", {}, b""
    return status, headers, data, time.monotonic() - start


def in_threads(calls):
    """Starts each call (a no-argument function) in its own thread.  Returns (threads,
    results): join the threads, then results[i] holds what calls[i] returned."""
    results = [None] * len(calls)

    def run(i):
        results[i] = calls[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    return threads, results


def http_json(port, method, path, body=None, headers=None, timeout=10):
    """http() whose body is parsed as JSON: returns (status, headers, value).  Raises
    ValueError with the raw body when it is not JSON."""
    status, response_headers, data = http(port, method, path, body, headers, timeout)
    try:
        return status, response_headers, json.loads(data)
    except ValueError as error:
        raise ValueError(f"{method} {path}: body is not JSON: {data[:200]!r}") from error


def raw(port, data, timeout=5):
    """Sends data (bytes) on a fresh connection and returns every byte read until the server
    closes the connection or timeout seconds pass without the connection closing."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(sock, deadline)[0]


def read_until_closed(sock, deadline):
    """Bytes read from sock until the server closes it (or resets it) or time.monotonic()
    passes deadline: (data, closed), closed False when the deadline came first."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except socket.timeout:
            return data, False
        if not chunk:
            return data, True
        data += chunk


def read_response(sock):
    """One Content-Length framed response read from sock: (status, {lower-case header: value},
    body); ("closed", headers so far, bytes so far) when the server closes first, or
    (error text, {}, b"") on a socket error (e.g. a timeout)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed", {}, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed", headers, body
            body += chunk
        return int(lines[0].split(" ")[1]), headers, body
    except OSError as error:
        return f"error {error!r}", {}, b""


def request_bytes(path, body=None):
    """The bytes of one HTTP/1.1 request for raw sockets: GET path, or POST path with body (a
    str) as application/json when body is given."""
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def spread_clients(port, n, busy_threads=6, settle_s=0.1, gap_s=0.01, timeout=20):
    """n keep-alive connections to the server on port, spread over its workers.  The listening
    socket wakes one idle worker, the same one each time, so they are opened (gap_s apart, after
    settle_s) while busy_threads clients keep the workers busy with /health/live (which needs no
    database).  timeout is the new sockets' timeout in seconds."""
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            timed(port, "GET", "/health/live")
    threads = [threading.Thread(target=busy) for _ in range(busy_threads)]
    for t in threads:
        t.start()
    socks = []
    try:
        time.sleep(settle_s)
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=timeout))
            time.sleep(gap_s)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return socks


def wait_for(predicate, timeout_s=5):
    """True once predicate() is, polled every 20 ms; its last value after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def backends(application_name, where="true"):
    """The PostgreSQL sessions of application_name (a server's is catalog-server-SERVER_ID)
    for which the SQL condition where holds, from pg_stat_activity."""
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                    f" '{application_name}' AND {where}"))


def metrics(port):
    """Every sample on the server's /metrics: {name with its labels: value}."""
    _, _, text, _ = timed(port, "GET", "/metrics")
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.decode().split("\n") if line and not line.startswith("#")}


class TableLock:
    """ACCESS EXCLUSIVE on table of database db, held by a psql session for hold_s seconds, so
    every statement on that table waits: a way to keep a server's connections busy on demand.
    Returns once the lock is granted (raises RuntimeError if not within grant_timeout_s)."""

    def __init__(self, db, table="products", hold_s=60, grant_timeout_s=5):
        self.db = db
        self.hold_s = hold_s
        self.proc = subprocess.Popen(
            ["psql", "-XAtq", "-d", db, "-c",
             f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({hold_s});"
             " COMMIT;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE"
                f" c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                db=db) == "1", grant_timeout_s):
            raise RuntimeError(f"the {table} lock was not taken within {grant_timeout_s} s")

    def release(self):
        """Ends the lock now (the session's backend is terminated) and waits for psql."""
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
             f" '{self.db}' AND application_name = 'psql' AND pid <> pg_backend_pid()"
             f" AND query LIKE '%pg_sleep({self.hold_s})%'", check=False)
        self.proc.wait(timeout=10)

    def wait(self, timeout=30):
        """Waits for the lock to end by itself (hold_s after it was taken)."""
        self.proc.wait(timeout=timeout)


def start_nginx(conf_dir, http_body, probe_path, port=None):
    """Starts nginx (one worker, in the foreground) with conf_dir as its prefix and http_body
    inside its http block, the text "{port}" in it replaced by port (default: free_port()); waits
    until probe_path answers there.  Returns (process, port).  Raises RuntimeError (see
    conf_dir/error.log) when nginx exits or does not answer within 10 s.  scripts/bench uses it
    too."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = port or free_port()
    os.makedirs(os.path.join(conf_dir, "tmp"), exist_ok=True)
    user = "user root;\n" if os.getuid() == 0 else ""
    conf = f"""{user}worker_processes 1;
daemon off;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {conf_dir}/tmp; proxy_temp_path {conf_dir}/tmp;
    fastcgi_temp_path {conf_dir}/tmp; uwsgi_temp_path {conf_dir}/tmp; scgi_temp_path {conf_dir}/tmp;
{http_body.replace("{port}", str(port))}}}
"""
    with open(os.path.join(conf_dir, "nginx.conf"), "w", encoding="utf-8") as f:
        f.write(conf)
    proc = subprocess.Popen([nginx, "-p", conf_dir, "-c", os.path.join(conf_dir, "nginx.conf")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(conf_dir, "stderr.log"), "wb"))
    if not procs.wait_http(f"http://127.0.0.1:{port}{probe_path}", 10,
                           alive=lambda: proc.poll() is None, interval_s=0.05, try_timeout_s=2):
        proc.kill()
        raise RuntimeError(f"nginx did not start (see {conf_dir}/error.log)")
    return proc, port


def nginx_in_front(conf_dir, ports, probe_path="/health", port=None):
    """start_nginx round-robining port (default: free_port()) over the catalog-servers on ports,
    with keep-alive connections to them.  Returns (process, port)."""
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
    return start_nginx(conf_dir, f"""    upstream catalog {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{
            proxy_pass http://catalog;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffers 16 64k;
        }}
    }}
""", probe_path, port)
