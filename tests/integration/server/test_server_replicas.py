"""test_server_replicas.py: reads on a hot standby (DB_READ_HOSTS).  A primary of its own and a
standby made from it with pg_basebackup -R (both with scripts/pg.sh, as postgres when run as
root, on free ports): reads reach the standby (its pg_stat_database counts them), writes the
primary; a standby that is stopped, or whose replay is paused while the primary writes, takes no
reads and fails no request; a standby's connections terminated under load fail no request (the
read is sent again on the primary); after an order's 201, GET /report on the standby has it once
the standby has replayed past the order's commit (waited on the WAL position, not on time)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_replicas"
suite = harness.Suite(NAME)
PG_SH = os.path.join(harness.REPO_ROOT, "scripts", "pg.sh")
MAX_LAG_MS = 300


def pg_bin(name):
    for version in sorted(os.listdir("/usr/lib/postgresql"), reverse=True):
        path = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.path.exists(path):
            return path
    return name


def as_postgres(argv):
    return (["runuser", "-u", "postgres", "--"] + argv) if os.getuid() == 0 else argv


def pg_sh(*args, fast=True):
    proc = subprocess.run([PG_SH] + list(args), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PG_FAST="1" if fast else "0"))
    if proc.returncode != 0:
        raise RuntimeError(f"pg.sh {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def psql_at(port, sql, db=NAME):
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres",
               PGPASSWORD="postgres")
    proc = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                          env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"psql on port {port} failed: {proc.stderr.strip()}\nSQL: {sql}")
    return proc.stdout.rstrip("\n")


def tup_returned(port):
    """Rows the standby's backends read for this test's database (pg_stat_database; asked from
    the postgres database, so that psql's own catalog reads are not counted)."""
    return int(psql_at(port, "SELECT tup_returned FROM pg_stat_database"
                             f" WHERE datname = '{NAME}'", db="postgres"))


def statements(port, db):
    return harness.metrics(port).get(f'db_pool_statements_total{{db="{db}"}}', 0.0)


def health(port):
    status, _, value = harness.http_json(port, "GET", "/health")
    return value if status == 200 else {}


def reads_on(port):
    return health(port).get("reads", [])


def replay_reached(standby_port, lsn):
    return psql_at(standby_port, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t"


def resume_replay(standby_port):
    """pg_wal_replay_resume(), until replay runs: the replay it resumes may cancel the very
    session that asked (a conflict with recovery), so it is asked again then."""
    for _ in range(10):
        try:
            psql_at(standby_port, "SELECT pg_wal_replay_resume()")
            if psql_at(standby_port, "SELECT pg_is_wal_replay_paused()") == "f":
                return
        except RuntimeError as error:
            if "conflict with recovery" not in str(error):
                raise
        time.sleep(0.2)
    raise RuntimeError("replay of the standby did not resume")


READS = ["/report", "/products", "/products/1", "/products?category=books"]


def read_many(port, n):
    """n reads over the read routes; the statuses that were not 200."""
    bad = []
    for i in range(n):
        status, _, _, _ = harness.timed(port, "GET", READS[i % len(READS)])
        if status != 200:
            bad.append(status)
    return bad


class Load:
    """threads clients reading (and one ordering every order_gap_s when given) until stopped;
    counts the answers and the ones that were not 2xx."""

    def __init__(self, port, threads=4, order_gap_s=None):
        self.port = port
        self.stop_event = threading.Event()
        self.answers = 0
        self.bad = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.reader, args=(i,)) for i in range(threads)]
        if order_gap_s:
            self.threads.append(threading.Thread(target=self.orderer, args=(order_gap_s,)))
        for t in self.threads:
            t.start()

    def record(self, status, path):
        with self.lock:
            self.answers += 1
            if not (isinstance(status, int) and 200 <= status < 300):
                self.bad.append((path, status))

    def reader(self, i):
        n = i
        while not self.stop_event.is_set():
            path = READS[n % len(READS)]
            status, _, _, _ = harness.timed(self.port, "GET", path)
            self.record(status, path)
            n += 1

    def orderer(self, gap_s):
        while not self.stop_event.is_set():
            status, _, _, _ = harness.timed(self.port, "POST", "/orders",
                                            {"product_id": 1, "quantity": 1})
            self.record(status, "POST /orders")
            time.sleep(gap_s)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join()
        return self.answers, self.bad


top = tempfile.mkdtemp(prefix="catalog-replicas.", dir="/tmp")
os.chmod(top, 0o755)
primary_dir, standby_dir = os.path.join(top, "primary"), os.path.join(top, "standby")
primary_port, standby_port = harness.free_port(), harness.free_port()
try:
    pg_sh("start", primary_dir, str(primary_port))
    env = dict(harness.db_env(NAME), DB_HOST="127.0.0.1", DB_PORT=str(primary_port),
               DB_USER="postgres", DB_PASSWORD="postgres")
    seed = harness.catalog_db("seed", dict(env, SEED_PRODUCTS="200", SEED_ORDERS="2000"))
    if seed.returncode != 0:
        raise RuntimeError(f"seed failed: {seed.stdout}{seed.stderr}")
    # The standby, the way the lab makes one: pg_basebackup -R (streaming, standby.signal).
    os.makedirs(standby_dir)
    if os.getuid() == 0:
        shutil.chown(standby_dir, "postgres", "postgres")
    base = subprocess.run(as_postgres([
        pg_bin("pg_basebackup"), "-D", os.path.join(standby_dir, "data"), "-R", "-X", "stream",
        "-c", "fast", "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres"]),
        env=dict(os.environ, PGPASSWORD="postgres"), capture_output=True, text=True, timeout=120)
    if base.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed: {base.stderr}")
    pg_sh("start", standby_dir, str(standby_port))
    suite.equal("the standby is in recovery", psql_at(standby_port, "SELECT pg_is_in_recovery()"),
                "t")

    replica_env = dict(env, DB_READ_HOSTS=f"127.0.0.1:{standby_port}",
                       DB_READ_MAX_LAG_MS=str(MAX_LAG_MS), SERVER_ID="r1", WORKERS="2")

    # ---- reads reach the standby, writes the primary (DB_READ_PRIMARY=0: reads only there)
    with harness.Server(dict(replica_env, DB_READ_PRIMARY="0")) as server:
        port = server.port
        up = harness.wait_for(lambda: reads_on(port) == ["replica1"], 10)
        suite.check("/health: reads on replica1 once the monitor found it up", up,
                    repr(health(port)))
        h = health(port)
        suite.check("/health keeps its fields and adds the replicas'",
                    h.get("status") == "ok" and h.get("products") == 200
                    and h.get("replicas", [{}])[0].get("db") == "replica1"
                    and h["replicas"][0].get("address") == f"127.0.0.1:{standby_port}"
                    and h["replicas"][0].get("state") == "up", repr(h))
        before_rows = tup_returned(standby_port)
        before = (statements(port, "replica1"), statements(port, "primary"))
        bad = read_many(port, 40)
        after = (statements(port, "replica1"), statements(port, "primary"))
        suite.equal("40 reads answered 200", bad, [])
        suite.check("the 40 reads ran on the replica (db_pool_statements_total{db=replica1})",
                    after[0] - before[0] >= 40 and after[1] == before[1], repr((before, after)))
        # 10 reports alone read 10 x 200 product rows (a backend reports its counts when idle,
        # up to 10 s later: PostgreSQL's PGSTAT_IDLE_INTERVAL)
        harness.wait_for(lambda: tup_returned(standby_port) - before_rows >= 2000, 25)
        grown = tup_returned(standby_port) - before_rows
        suite.check("the standby's pg_stat_database counts them (tup_returned grew by >= 2000)",
                    grown >= 2000, f"grew by {grown}")
        orders_before = int(psql_at(primary_port, "SELECT count(*) FROM orders"))
        status, _, order = harness.http_json(port, "POST", "/orders",
                                             {"product_id": 1, "quantity": 2})
        suite.equal("POST /orders: 201", status, 201)
        suite.equal("the order is on the primary",
                    int(psql_at(primary_port, "SELECT count(*) FROM orders")), orders_before + 1)
        suite.check("the write ran on the primary's pool",
                    statements(port, "primary") > after[1], repr(statements(port, "primary")))
        status, _, order2 = harness.http_json(port, "POST", "/orders", {
            "product_id": 2, "quantity": 1}, headers={"Idempotency-Key": "replicas-1"})
        suite.equal("POST /orders with an Idempotency-Key: 201 (on the primary)", status, 201)

        # ---- read after write: the report from the standby has the order once it replayed
        status, _, _ = harness.http_json(port, "POST", "/orders", {"product_id": 3, "quantity": 1})
        lsn = psql_at(primary_port, "SELECT pg_current_wal_lsn()")
        want = int(psql_at(primary_port, "SELECT count(*) FROM orders"))
        replayed = harness.wait_for(lambda: replay_reached(standby_port, lsn), 20)
        suite.check(f"the standby replayed past the order's commit ({lsn})", replayed)
        r1 = statements(port, "replica1")
        status, _, report = harness.http_json(port, "GET", "/report")
        suite.check("GET /report from the replica includes the order (total_orders = the"
                    " primary's count after the 201)",
                    status == 200 and report.get("total_orders") == want
                    and statements(port, "replica1") > r1,
                    repr((status, want, report.get("total_orders"))))

        # ---- the standby's backends terminated under load: no request fails
        load = Load(port, threads=4)
        for _ in range(5):
            time.sleep(0.3)
            psql_at(standby_port, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE application_name = 'catalog-server-r1'")
        answers, bad = load.stop()
        suite.check(f"standby sessions terminated 5 times under load: {answers} answers, none failed",
                    answers > 0 and not bad, repr(bad[:5]))
        log = server.stderr_text()
        suite.check("the server logged the replica out of reads", "replica1" in log
                    and "no reads" in log, log[-400:])

    # ---- DB_READ_PRIMARY=1 (default): reads spread over both
    with harness.Server(replica_env) as server:
        port = server.port
        harness.wait_for(lambda: "replica1" in reads_on(port), 10)
        suite.equal("/health: reads on replica1 and the primary", sorted(reads_on(port)),
                    ["primary", "replica1"])
        before = (statements(port, "replica1"), statements(port, "primary"))
        bad = read_many(port, 40)
        after = (statements(port, "replica1"), statements(port, "primary"))
        suite.equal("40 reads spread: all 200", bad, [])
        suite.check("both instances ran some of them", after[0] - before[0] >= 10
                    and after[1] - before[1] >= 10, repr((before, after)))
        text = harness.timed(port, "GET", "/metrics")[2].decode()
        suite.check("pool metrics carry the instance (db=\"primary\", db=\"replica1\")",
                    'db_pool_max_connections{db="primary"} 10' in text
                    and 'db_pool_max_connections{db="replica1"} 10' in text
                    and 'db_pool_connections{db="replica1",state="idle"}' in text
                    and 'db_replica_reads{db="replica1"} 1' in text, "")

    # ---- a lagging standby (replay paused while the primary writes) takes no reads
    with harness.Server(dict(replica_env, DB_READ_PRIMARY="0")) as server:
        port = server.port
        harness.wait_for(lambda: reads_on(port) == ["replica1"], 10)
        psql_at(standby_port, "SELECT pg_wal_replay_pause()")
        load = Load(port, threads=3, order_gap_s=0.05)
        lagging = harness.wait_for(
            lambda: health(port).get("replicas", [{}])[0].get("state") == "lagging", 10)
        h = health(port)
        suite.check(f"replay paused under writes: replica1 lagging past {MAX_LAG_MS} ms",
                    lagging and h.get("reads") == ["primary"]
                    and h["replicas"][0].get("lag_ms", 0) > MAX_LAG_MS, repr(h))
        m = harness.metrics(port)
        suite.check("/metrics: db_replica_reads 0 and db_replica_lag_seconds past the limit",
                    m.get('db_replica_reads{db="replica1"}') == 0
                    and m.get('db_replica_lag_seconds{db="replica1"}', 0) > MAX_LAG_MS / 1000
                    and m.get('db_replica_lag_bytes{db="replica1"}', 0) > 0,
                    repr({k: v for k, v in m.items() if k.startswith("db_replica")}))
        time.sleep(0.5)
        r1 = statements(port, "replica1")
        time.sleep(2)
        suite.equal("while it lags, no read goes to replica1",
                    statements(port, "replica1"), r1)
        resume_replay(standby_port)
        back = harness.wait_for(lambda: reads_on(port) == ["replica1"], 10)
        answers, bad = load.stop()
        suite.check("replay resumed: replica1 takes reads again", back, repr(health(port)))
        suite.check(f"lag and catch-up under load: {answers} answers, none failed",
                    answers > 0 and not bad, repr(bad[:5]))

    # ---- a stopped standby takes no reads and fails no request
    with harness.Server(dict(replica_env, DB_READ_PRIMARY="0")) as server:
        port = server.port
        harness.wait_for(lambda: reads_on(port) == ["replica1"], 10)
        load = Load(port, threads=4)
        time.sleep(0.5)
        pg_sh("stop", standby_dir)
        down = harness.wait_for(
            lambda: health(port).get("replicas", [{}])[0].get("state") == "down", 5)
        time.sleep(1)
        r1 = statements(port, "replica1")
        time.sleep(1)
        still = statements(port, "replica1")
        answers, bad = load.stop()
        suite.check("replica1 stopped: /health says down, reads on the primary",
                    down and reads_on(port) == ["primary"], repr(health(port)))
        suite.equal("while it is down, no read goes to replica1", still, r1)
        suite.check(f"stopped under load: {answers} answers, none failed",
                    answers > 0 and not bad, repr(bad[:5]))
        pg_sh("start", standby_dir, str(standby_port))
        back = harness.wait_for(lambda: reads_on(port) == ["replica1"], 15)
        suite.check("started again: replica1 takes reads again", back, repr(health(port)))
        suite.equal("and they are answered", read_many(port, 8), [])
finally:
    for d in (standby_dir, primary_dir):
        try:
            pg_sh("stop", d)
        except RuntimeError as error:
            print(f"cleanup: {error}")
    shutil.rmtree(top, ignore_errors=True)

suite.finish()
