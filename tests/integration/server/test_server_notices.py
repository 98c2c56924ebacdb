"""test_server_notices.py: PostgreSQL's notices (issue 24 item 2) reach the server's own log as
one line each and never block a worker: a WARNING raised by a trigger, the notice every session
gets when a backend crashes (kill -9 of an unrelated backend, with the server's stderr on a pipe
nobody reads), and catalog-db's own one-line form.  It kills backends, so it runs on a cluster
of its own (scripts/pg.sh), not the suite's."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_notices"
suite = harness.Suite(NAME)
PG_SH = os.path.join(harness.REPO_ROOT, "scripts", "pg.sh")

# ---- a cluster of its own --------------------------------------------------------------------
pgdir = tempfile.mkdtemp(prefix="catalog-notices-pg.")
if os.geteuid() == 0:
    shutil.chown(pgdir, "postgres", "postgres")
started = subprocess.run([PG_SH, "start", pgdir], env=dict(os.environ, PG_FAST="1"),
                         capture_output=True, text=True, timeout=120)
if started.returncode != 0:
    suite.check("a PostgreSQL cluster of its own starts", False, started.stderr[-400:])
    suite.finish()
for line in started.stdout.splitlines():
    m = re.match(r"export (\w+)=(.*)$", line)
    if m:
        os.environ[m.group(1)] = m.group(2).strip("'\"")


def stop_cluster():
    subprocess.run([PG_SH, "stop", pgdir], capture_output=True, timeout=120)
    shutil.rmtree(pgdir, ignore_errors=True)


LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z catalog-server\[(\S+)\] (\w+) (.*)$")


def raw_libpq_lines(text):
    """Lines libpq's default notice processor would have written ("WARNING:  ...")."""
    return [x for x in text.splitlines()
            if re.match(r"^(WARNING|NOTICE|DETAIL|HINT|FATAL|ERROR):  ?", x)]


try:
    env = harness.make_db(NAME, products=50, orders=100)

    # ---- a WARNING from a trigger: one log line in the server's format ----------------------
    harness.psql("""
        CREATE FUNCTION seams_warn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE WARNING 'seams notice for product %', NEW.product_id
                USING DETAIL = E'line one\\nline two', HINT = 'a hint';
            RETURN NEW;
        END $$;
        CREATE TRIGGER seams_warn BEFORE INSERT ON orders
            FOR EACH ROW EXECUTE FUNCTION seams_warn();""", db=NAME)
    with harness.Server(dict(env, SERVER_ID="notices")) as server:
        status, _, _ = harness.http(server.port, "POST", "/orders",
                                    {"product_id": 7, "quantity": 1})
        suite.equal("POST /orders with a trigger raising WARNING: 201", status, 201)
        harness.wait_for(lambda: "seams notice" in server.stderr_text(), 3)
        text = server.stderr_text()
        lines = [x for x in text.splitlines() if "seams notice" in x]
        suite.equal("the notice is one line", len(lines), 1)
        m = LINE.match(lines[0]) if lines else None
        suite.check("... in the server's format, with its SERVER_ID and level warn",
                    m and m.group(1) == "notices" and m.group(2) == "warn", repr(lines))
        suite.equal("... saying severity, SQLSTATE, message, detail and hint",
                    m.group(3) if m else None,
                    "database WARNING 01000: seams notice for product 7 (detail: line one line "
                    "two) (hint: a hint)")
        suite.equal("no raw libpq notice lines on stderr", raw_libpq_lines(text), [])
    harness.psql("DROP TRIGGER seams_warn ON orders; DROP FUNCTION seams_warn()", db=NAME)

    # ---- catalog-db: its own one line on stderr ---------------------------------------------
    harness.psql("""
        CREATE FUNCTION seams_ddl_warn() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE WARNING 'seams ddl %', tg_tag USING DETAIL = E'first\\nsecond';
        END $$;
        CREATE EVENT TRIGGER seams_ddl_warn ON ddl_command_end
            EXECUTE FUNCTION seams_ddl_warn();""", db=NAME)
    migrate = harness.catalog_db("migrate", env)
    harness.psql("DROP EVENT TRIGGER seams_ddl_warn; DROP FUNCTION seams_ddl_warn()", db=NAME)
    suite.equal("catalog-db migrate with an event trigger raising WARNING: exit 0",
                migrate.returncode, 0)
    notices = [x for x in migrate.stderr.splitlines() if "seams ddl" in x]
    suite.check("catalog-db prints each notice as one line 'catalog-db: database WARNING ...'",
                notices and all(re.match(r"^catalog-db: database WARNING 01000: seams ddl [A-Z ]+"
                                         r" \(detail: first second\)$", x) for x in notices),
                repr(migrate.stderr[-400:]))
    suite.equal("catalog-db: no raw libpq notice lines", raw_libpq_lines(migrate.stderr), [])

    # ---- a backend crash while the server's stderr is a pipe nobody reads --------------------
    folder = tempfile.mkdtemp(prefix="catalog-notices-fifo.")
    fifo = os.path.join(folder, "stderr")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    # Fill the pipe to its last byte first: from the start, stderr takes nothing (a small write
    # can still land in a pipe whose last page has room, so lines alone fill it unreliably).
    filler = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    for size in (4096, 1):
        while True:
            try:
                os.write(filler, b"." * (size - 1) + b"\n")
            except BlockingIOError:
                break
    os.close(filler)
    port = harness.free_port()
    server_env = dict(os.environ, **env, HOST="127.0.0.1", PORT=str(port), SERVER_ID="crash",
                      WORKERS="1", DB_POOL_MAX="2", ACCESS_LOG="0")
    proc = subprocess.Popen([harness.binary("catalog-server")], env=server_env,
                            stdin=subprocess.DEVNULL, stdout=writer, stderr=writer)
    os.close(writer)
    try:
        harness.wait_for(lambda: harness.timed(port, "GET", "/health/live", timeout=1)[0] == 200,
                         10)
        for _ in range(3):
            harness.http(port, "GET", "/products/1")  # the pool's connection is open
        # An unrelated session holds a lock the server's next statement waits on; killing its
        # backend makes PostgreSQL end every session with a WARNING, which the worker reads
        # while its statement is in flight (libpq's default wrote it to stderr, blocking).
        victim = subprocess.Popen(["psql", "-XAtq", "-d", NAME, "-c",
                                   "SET application_name = 'seams-victim'; BEGIN; "
                                   "LOCK TABLE products IN ACCESS EXCLUSIVE MODE; "
                                   "SELECT pg_sleep(60)"],
                                  env=dict(os.environ), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        harness.wait_for(lambda: harness.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
            "a.application_name = 'seams-victim' AND l.granted AND "
            "l.mode = 'AccessExclusiveLock'", db=NAME) == "1", 10)
        pid = int(harness.psql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'seams-victim'"))
        threads, waiting = harness.in_threads(
            [lambda: harness.timed(port, "GET", "/products/2", timeout=10)])
        harness.wait_for(lambda: harness.backends("catalog-server-crash",
                                                  "wait_event_type = 'Lock'") == 1, 5)
        os.kill(pid, signal.SIGKILL)  # PostgreSQL ends every session, with a WARNING to each
        victim.wait(timeout=30)
        time.sleep(0.3)
        results = [harness.timed(port, "GET", "/health/live", timeout=3) for _ in range(3)]
        suite.equal("kill -9 of an unrelated backend, stderr unread: /health/live answers",
                    [r[0] for r in results], [200, 200, 200])
        print(f"# /health/live after the crash: {', '.join(f'{r[3]:.3f} s' for r in results)}")
        threads[0].join()
        suite.equal("the request whose statement was in flight: 503", waiting[0][0], 503)
        # now read what was logged: the crash notice, one line in the server's format
        data, deadline = b"", time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = os.read(reader, 1 << 20)
            except BlockingIOError:
                chunk = b""
            if not chunk:
                if b"57P02" in data:
                    break
                time.sleep(0.05)
            data += chunk
        text = data.decode("utf-8", "replace")
        crash = [x for x in text.splitlines() if "57P02" in x]
        suite.check("the crash notice is logged as one line: database WARNING 57P02",
                    crash and all(LINE.match(x) and " database WARNING 57P02: terminating "
                                  "connection because of crash of another server process" in x
                                  for x in crash), repr(crash[:2]) or text[-300:])
        suite.equal("no raw libpq notice lines in the server's output", raw_libpq_lines(text),
                    [])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            while proc.poll() is None:
                try:
                    os.read(reader, 1 << 20)
                except BlockingIOError:
                    time.sleep(0.05)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(reader)
        shutil.rmtree(folder, ignore_errors=True)
finally:
    stop_cluster()

suite.finish()
