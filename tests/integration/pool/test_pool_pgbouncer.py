"""test_pool_pgbouncer.py: the pool through Debian's PgBouncer in transaction pooling, the mode of
the Kubernetes layout (deploy/k8s/pgbouncer/pgbouncer.ini).  Debian 12's PgBouncer is 1.18,
which cannot keep protocol-level prepared statements in transaction mode (1.21 added
max_prepared_statements, which the Kubernetes image, 1.24, uses); with DB_PREPARE=0 every route
works there, pipelined (DB_PIPELINE=16, several statements under one sync point: one transaction
to PgBouncer; also with one connection carrying both workers' statements) or not, orders are neither lost nor doubled, and a client that leaves gets its
statement cancelled through PgBouncer."""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_pool_pgbouncer"
suite = harness.Suite(NAME)
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
if not os.path.exists(PGBOUNCER):
    suite.check("pgbouncer is installed (scripts/install-deps.sh test)", False, PGBOUNCER)
    suite.finish()

env = harness.make_db(NAME, products=300, orders=3000)
folder = tempfile.mkdtemp(prefix="catalog-pgbouncer.")
os.chmod(folder, 0o777)
port = harness.free_port()
with open(os.path.join(folder, "pgbouncer.ini"), "w") as f:
    f.write(f"""[databases]
{NAME} = host={env["DB_HOST"]} port={env["DB_PORT"]} dbname={NAME}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
max_client_conn = 100
default_pool_size = 3
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
""")
with open(os.path.join(folder, "userlist.txt"), "w") as f:
    f.write(f'"{env["DB_USER"]}" "{env["DB_PASSWORD"]}"\n')
# PgBouncer refuses to run as root: as root it runs as postgres, like the test cluster.
command = [PGBOUNCER, os.path.join(folder, "pgbouncer.ini")]
if os.geteuid() == 0:
    command = ["runuser", "-u", "postgres", "--"] + command
bouncer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def http(p, method, path, body=None, timeout=15):
    try:
        return harness.http(p, method, path, body, timeout=timeout)
    except OSError as error:
        return f"error {error!r}", {}, b""


def metrics(p):
    _, _, text = http(p, "GET", "/metrics")
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.decode().split("\n") if line and not line.startswith("#")}


try:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    through = dict(env, DB_HOST="127.0.0.1", DB_PORT=str(port), DB_POOL_MAX="4", WORKERS="2",
                   DB_PREPARE="0")
    # The last: one connection carrying both workers' statements, through PgBouncer.
    for pool_max, pipeline in (("4", "16"), ("4", "0"), ("1", "16")):
        label = f"DB_PIPELINE={pipeline}" + (" DB_POOL_MAX=1" if pool_max == "1" else "")
        with harness.Server(dict(through, SERVER_ID=f"bouncer{pool_max}-{pipeline}",
                                 DB_POOL_MAX=pool_max, DB_PIPELINE=pipeline)) as server:
            before = int(harness.psql("SELECT count(*) FROM orders", db=NAME))
            answers = []
            lock = threading.Lock()

            def client(i):
                mine = []
                for n in range(15):
                    path = ["/products/%d" % (i + 1), "/health", "/products",
                            "/products?category=books", "/report"][n % 5]
                    mine.append((path, http(server.port, "GET", path)[0]))
                    status, _, data = http(server.port, "POST", "/orders",
                                           {"product_id": i + 1, "quantity": 1})
                    mine.append(("POST /orders", status))
                with lock:
                    answers.extend(mine)
            threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            bad = [a for a in answers if a[1] not in (200, 201)]
            suite.equal(f"pgbouncer {label}: every route answers through PgBouncer 1.18", bad[:5],
                        [])
            created = sum(1 for a in answers if a[1] == 201)
            rows = int(harness.psql("SELECT count(*) FROM orders", db=NAME)) - before
            suite.equal(f"pgbouncer {label}: orders neither lost nor doubled", rows, created)
            m = metrics(server.port)
            if pipeline == "16":
                suite.check(f"pgbouncer {label}: statements were pipelined",
                            m.get("db_pool_pipelined_statements_total", 0) > 0,
                            repr(m.get("db_pool_pipelined_statements_total")))
                # Several statements in one segment are one transaction to PgBouncer.
                suite.check(f"pgbouncer {label}: requests arriving together shared a sync point",
                            m.get("db_pool_statements_total", 0)
                            > m.get("db_pool_sync_points_total", 0) > 0,
                            repr((m.get("db_pool_statements_total"),
                                  m.get("db_pool_sync_points_total"))))
            if pool_max == "1":
                suite.check(f"pgbouncer {label}: the one connection carried both workers'"
                            " statements", m.get("db_pool_foreign_statements_total", 0) > 0,
                            repr(m.get("db_pool_foreign_statements_total")))
            # A client that leaves while /report waits on a lock: cancelled through PgBouncer.
            locker = subprocess.Popen(
                ["psql", "-XAtq", "-d", NAME, "-c",
                 "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                granted = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                           " WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock'"
                           " AND l.granted")
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and harness.psql(granted, db=NAME) != "1":
                    time.sleep(0.05)
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"GET /report HTTP/1.1\r\nHost: t\r\n\r\n")
                waits = (f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{NAME}' AND"
                         " wait_event_type = 'Lock' AND query NOT LIKE '%LOCK TABLE%'")
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and harness.psql(waits) != "1":
                    time.sleep(0.05)
                suite.equal(f"pgbouncer {label}: /report waits on the lock", harness.psql(waits),
                            "1")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and harness.psql(waits) != "0":
                    time.sleep(0.05)
                suite.equal(f"pgbouncer {label}: after the client's reset it is cancelled",
                            harness.psql(waits), "0")
            finally:
                harness.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                             " query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
                             check=False)
                locker.wait(timeout=10)
            status, _, _ = http(server.port, "GET", "/products/1")
            suite.equal(f"pgbouncer {label}: and the next request answers", status, 200)
finally:
    bouncer.terminate()
    bouncer.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)

suite.finish()
