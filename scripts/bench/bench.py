"""bench.py: `make bench` (through scripts/bench.sh): the issue's measurements, side by side in
one run on one machine, printed as ratios and written to BENCHMARKS.md.

Everything runs against a throwaway PostgreSQL cluster in a temporary folder (scripts/pg.sh),
seeded full size, on loopback only, each load run bounded in time.  The pieces:
  0. the goals table of issue 16: /products/1 and the category listing against pgbench running
     the same statements, DB_POOL_MAX=1 against 10, server CPU per category request, the live
     report and the scenario mix against pgbench running the reference's statements, failed
     requests; with BENCH_BASELINE, an older build measured beside this one in the same run;
  1. the database's limit: pgbench running the server's own statements (read from
     sql/statements.sql) at the pool's concurrency vs the full stack on the same work;
  2. the server's CPU per request per route (process_cpu_seconds_total before and after) and
     its resident memory with 100 and with 10,000 open idle connections;
  3. the scenario's options: A (1 vs 2 worker threads), B (2 one-core servers behind nginx),
     C (REPORT_MODE=rollup vs live);
  4. catalog-loadtest against wrk (scripts/bench-loadtest.sh, when present);
  5. the accuracy of `catalog-loadtest ceiling`: against a target of known capacity
     (tests/integration/common/capacity_server.py: one request at a time, a fixed service time), the
     ceiling found divided by the saturation rate measured closed-loop in the same run (goal
     0.9-1.0).  BENCH_ONLY=ceiling runs this section alone (no database), printed, not written.
  6. the read replica: in a throwaway lab, the scenario mix on two servers with PostgreSQL at
     DB_CPUS=0.5, the primary alone against the primary and one replica of the same size (goal
     >= 1.6); no failed request while the replica is killed and started again under that load;
     the replica's lag (each server's /health) under that load plus 20 orders/s, p99 below
     DB_READ_MAX_LAG_MS.  BENCH_ONLY=replicas runs this section alone, printed, not written.

Environment: BENCH_DURATION (10, seconds per load run), BENCH_ROUNDS (2, alternating rounds of
the runs that are compared), BENCH_CONNECTIONS (100),
BENCH_PRODUCTS (5000), BENCH_ORDERS (500000), BENCH_OUTPUT (BENCHMARKS.md at the repository
root; empty: do not write), BENCH_KEEP (1: keep the temporary folder), CATALOG_BUILD (build),
BENCH_BASELINE (a build folder of an older tree, e.g. from `git worktree add`: section 0 measures
it too, against the same database), BENCH_BASELINE_NAME (what that tree is, for the report),
BENCH_ONLY (goals: section 0 only; or a comma-separated list of section 0's runs, such as
product,pool1: only those, printed and not written, for a quick side-by-side look while working),
BENCH_DB_TRANSPORT (tcp, the default: the servers and
pgbench reach PostgreSQL through 127.0.0.1, as the lab's servers do; unix: both through its
Unix-domain socket; section 0 measures the listing's server CPU over the other one too),
BENCH_CALLGRIND (1, the default when valgrind is installed: section 0 also counts
the server's instructions per category listing under callgrind; 0: skip),
BENCH_CEILING_SERVICE_MS (2: section 5's target serves one request per 2 ms at most),
BENCH_CEILING_NICE (-10 when root: section 5 runs its target and the load generator at this
nice level, so the neighbours' bursts stall them less; an open-model p99 sees every stall),
BENCH_REPLICA_DB_CPUS (0.5) and BENCH_REPLICA_SECONDS (20): section 6's database size and runs.

The modules, one a section (bench.py keeps only main()): settings.py (the environment above),
stack.py (the throwaway PostgreSQL, servers, catalog-loadtest, pgbench), goals.py (0, with
instructions.py for callgrind), database_limit.py (1), cost.py (2), scenario_options.py (3),
loadtest_vs_wrk.py (4), ceiling.py (5), replicas.py (6), machine.py (the machine's line), report.py (what is
printed, the tables, BENCHMARKS.md); server_sql.py gives pgbench the server's statements.
"""

import datetime
import os
import shutil
import subprocess
import tempfile
import time

import settings  # noqa: F401 (first: it puts tests/integration/common and the repository's root on sys.path)
import cost  # noqa: E402
import database_limit  # noqa: E402
import loadtest_vs_wrk  # noqa: E402
import report  # noqa: E402
import scenario_options  # noqa: E402
import server_sql  # noqa: E402
from ceiling import ceiling_section  # noqa: E402
from goals import goals_section  # noqa: E402
from replicas import replica_section  # noqa: E402
from machine import machine  # noqa: E402
from pytools import procfs  # noqa: E402
from report import say  # noqa: E402
from settings import (BUILD, CONNECTIONS, DURATION_S, ONLY_CEILING, ONLY_GOALS, ONLY_REPLICAS,  # noqa: E402
                      ORDERS, OUTPUT, PRODUCTS, REPO_ROOT)
from stack import Cluster, Server  # noqa: E402


def main():
    folder = tempfile.mkdtemp(prefix="catalog-bench.")
    if ONLY_CEILING or ONLY_REPLICAS:
        say(f"bench: {machine()}; machine busy {procfs.busy_fraction():.0%} before the start")
        try:
            (ceiling_section if ONLY_CEILING else replica_section)(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    os.chmod(folder, 0o755)  # pg.sh runs PostgreSQL as the postgres user when we are root
    started = datetime.datetime.now(datetime.timezone.utc)
    sections = []
    busy_before = procfs.busy_fraction()
    load_before = os.getloadavg()
    commit = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    say(f"bench: {machine()}")
    say(f"bench: commit {commit}; machine busy {busy_before:.0%} before the start (load average "
        f"{load_before[0]:.2f}); each load run {DURATION_S} s, {CONNECTIONS} connections")
    cluster = Cluster(folder)
    servers = []
    try:
        # ---- set-up: a full-size seed ----------------------------------------------------
        began = time.monotonic()
        seed = subprocess.run([os.path.join(BUILD, "catalog-db"), "seed"],
                              env=dict(os.environ, **cluster.env, SEED_PRODUCTS=str(PRODUCTS),
                                       SEED_ORDERS=str(ORDERS)),
                              capture_output=True, text=True, timeout=600)
        if seed.returncode != 0:
            raise RuntimeError(f"seed failed: {seed.stdout}{seed.stderr}")
        cluster.psql("VACUUM ANALYZE")  # visibility map: index-only scans, as in a settled db
        seed_s = time.monotonic() - began
        say(f"bench: seeded {PRODUCTS} products, {ORDERS} orders in {seed_s:.1f} s "
            f"(catalog-db seed + VACUUM ANALYZE)")
        scripts = os.path.join(folder, "pgbench")
        os.makedirs(scripts)
        for name, text in server_sql.pgbench_scripts().items():
            with open(os.path.join(scripts, name), "w", encoding="utf-8") as f:
                f.write(text)

        def script(name):
            return os.path.join(scripts, name)

        title, text, _ = goals_section(cluster, folder, script)
        if title is None:
            return
        sections.append((title, text))

        if not ONLY_GOALS:  # BENCH_ONLY=goals: the goals table only
            main_server = Server(cluster, folder, "app")
            servers.append(main_server)
            section, limit = database_limit.section(cluster, folder, main_server, script)
            sections.append(section)
            sections.append(cost.section(cluster, folder, main_server, limit))
            sections.append(scenario_options.section(cluster, folder))
            sections.append(loadtest_vs_wrk.section())
            sections.append(ceiling_section(folder))
            sections.append(replica_section(folder))
    finally:
        for server in servers:
            server.stop()
        cluster.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(folder, ignore_errors=True)

    finished = datetime.datetime.now(datetime.timezone.utc)
    busy_after = procfs.busy_fraction()
    load_after = os.getloadavg()
    say(f"\nbench: done in {(finished - started).total_seconds():.0f} s; machine busy "
        f"{busy_after:.0%} right after (load average {load_after[0]:.2f})")
    if not OUTPUT:
        return
    report.write(sections, started, finished, commit, seed_s, (busy_before, busy_after),
                 (load_before, load_after))


if __name__ == "__main__":
    main()
