"""The lab's commands: up, down, status, scale, restart, loadtest, compare, demo.  The make
targets of the same names are thin aliases (through scripts/lab.sh)."""
import os
import sys
import time

from lab import compare, demo, exporters, planner, procs, replicas, runs, scaling
from lab.errors import Failed
from lab.options import Wishes
from lab.procs import say
from lab.services import Lab
from lab.settings import Settings

SCRAPE_INTERVAL_S = 5  # deploy/prometheus/prometheus.yml.template

USAGE = """usage: scripts/lab.sh COMMAND
  up              install what is missing, start PostgreSQL (seeded), the servers, Prometheus
  scale N         N servers (app, app2, ...) behind nginx on {lb}; N=1: one server on {app};
                  DB_REPLICAS=M hot standbys of PostgreSQL (pg_basebackup, streaming; kept until
                  changed, 0 retires them), the servers reading from them (DB_READ_HOSTS)
  status          processes, ports, pool sizes, CPU limits, balancing, orders, /health; each
                  replica's state, replay lag (bytes and time, by WAL position), connections
  restart         rolling restart: each server in turn stopped (SIGTERM) and started again on
                  its port with its settings; behind nginx no GET fails (nginx retries them)
  loadtest        load the entry point (or BASE_URL): results/<layout>-<mix>[-<balance>].json,
                  a picture of requests/s and p99 over time (.html), where the CPU went, the limit
  ceiling         the highest arrival rate the current layout sustains within the SLO
                  (catalog-loadtest ceiling): results/<layout>-<mix>[-<balance>]-ceiling.json
  sweep N...      the ceiling at each server count behind nginx, the CPU split, the USL fit:
                  results/sweep-<mix>.json and .html; the lab returns to its layout afterwards
  compare         saved results side by side: runs paired by mix and size, ratios layout
                  against layout, ceilings beside their runs, sweeps (and results/runs.html)
  demo            up, load one server, scale to 2, load again, each layout's ceiling, compare
  down [--purge]  stop everything the lab started; --purge also deletes LAB_DIR
environment: LAB_DIR ({lab_dir}) LAB_PG_PORT LAB_REPLICA_PORT (replica i on it + i - 1)
  LAB_APP_PORT LAB_LB_PORT LAB_PROM_PORT
  LAB_PG_EXPORTER_PORT LAB_PROCESS_EXPORTER_PORT LAB_NODE_EXPORTER_PORT (a busy port: the next
  free one, said so) LAB_BIND ({bind}) LAB_CGROUP ({cgroup})
  DB_BUDGET (10: per PostgreSQL instance, split among the servers) SERVER_CPUS (no limit; e.g. 0.5)
  DB_REPLICAS (0; kept until changed) DB_CPUS (no limit; each PostgreSQL instance's CPUs; kept
  until changed, DB_CPUS= removes it; a change restarts PostgreSQL) MIX (scenario|browse)
  BALANCE (round_robin|least_conn|p2c: nginx's choice of server; kept until changed)
  REPORT_MODE (live|rollup: part of each server's settings; a change restarts the servers)
  LOAD_CONNECTIONS (100) LOAD_DURATION (30s) LOAD_THREADS (2) BASE_URL
  CEILING_STAGE (5s) CEILING_MAX (2m) CEILING_START (10) SLO_P99 (500ms) SLO_FAILURES (0)
  DEMO_DURATION (10s) DEMO_CONNECTIONS (50) DEMO_SERVER_CPUS (0.25)
  DEMO_CEILING_STAGE (1s) DEMO_CEILING_MAX (8s)
  SEED_PRODUCTS SEED_ORDERS (passed to catalog-db)"""


def cmd_up(lab, args):
    if os.environ.get("LAB_SKIP_DEPS", "0") != "1":
        lab.install_deps()
    lab.ensure_built()
    lab.up(Wishes.from_env())
    return 0


def cmd_scale(lab, args):
    if not args or not args[0]:
        raise Failed("usage: make scale SERVERS=N (N servers behind nginx; 1 returns to one server on %d)"
                     % lab.port("app"))
    lab.ensure_built()
    lab.scale(Wishes.from_env(), args[0])
    return 0


def row(name, pid, port, text):
    return "%-12s %-8s %-6s %s" % (name, pid, port, text)


def budget_text(budget, servers):
    """"budget 10 (3 per server x 3 = 9 in use)": the pools take budget // servers each, so
    with a budget that does not divide evenly some of it stays unused, and status says so."""
    pool = budget // servers
    used = pool * servers
    spare = "" if used == budget else ", %d unused" % (budget - used)
    return "budget %d (%d per server x %d = %d in use%s)" % (budget, pool, servers, used, spare)


def scrape_targets(lab):
    """Prometheus's active targets: [(job, health)], health "up", "down" or "unknown"
    (not scraped yet); [] when it does not answer."""
    import json
    body = procs.http_get("http://127.0.0.1:%d/api/v1/targets?state=active" % lab.port("prometheus"), 3)
    try:
        targets = json.loads(body)["data"]["activeTargets"] if body else []
    except (ValueError, KeyError, TypeError):
        targets = []
    return [(t.get("scrapePool", "?"), t.get("health", "unknown")) for t in targets]


def scrape_text(lab):
    """"scrape targets: 5 of 5 up".  Right after make up Prometheus has not loaded its targets
    or scraped them yet (it scrapes every 5 s): wait up to one interval for that, then say what
    is still to come rather than "0 of 0"."""
    expected = len(lab.state["servers"]) + sum(1 for name in exporters.NAMES if exporters.pid_of(lab.state, name))
    deadline = time.time() + SCRAPE_INTERVAL_S + 1
    targets = scrape_targets(lab)
    while (len(targets) < expected or any(h == "unknown" for _, h in targets)) and time.time() < deadline:
        time.sleep(0.5)
        targets = scrape_targets(lab)
    up = sum(1 for _, h in targets if h == "up")
    waiting = max(expected - len(targets), 0) + sum(1 for _, h in targets if h == "unknown")
    text = "scrape targets: %d of %d up" % (up, max(expected, len(targets)))
    if waiting:
        text += " (%d not scraped yet: Prometheus scrapes every %d s; make status again in a moment)" % (
            waiting, SCRAPE_INTERVAL_S)
    return text


def cmd_status(lab, args):
    s = lab.settings
    s.mkdirs()
    problems = 0
    servers, budget, _ = lab.layout()
    say("lab in %s: layout %s, balancing %s, entry point %s"
        % (s.lab_dir, lab.layout_name(), lab.balance(), lab.entry_point()))
    if lab.pg_running() and lab.load_pg_env():
        rc, orders = lab.seed_status()
        problems |= rc != 0
        limit = lab.db_connection_limit()
        in_use = lab.server_connections()
        master = (lab.postgres_pids() or ["?"])[0]
        db_limit = lab.state["db_limit"]
        size = ("  cpus %s limit %s" % (db_limit["cpus"], db_limit.get("limit_short") or "-")
                if db_limit.get("cpus") else "")
        print(row("postgres", "pid %s" % master, os.environ["PGPORT"], "up  " + orders + size))
        standbys = replicas.records(lab)
        print("%-12s %s%s, database allows %s, open now %s"
              % ("connections", budget_text(budget, servers), " on each instance" if standbys else "",
                 limit if limit is not None else "?", in_use if in_use is not None else "?"))
        lines, trouble = replicas.status_lines(lab)
        for line in lines:
            print(line)
        problems |= trouble
        if db_limit.get("cpus") and db_limit.get("limit_detail"):
            print("%-12s %s: %s" % ("cpu limit", "postgres", db_limit["limit_detail"]))
    else:
        print(row("postgres", "-", "-", "DOWN (not running)"))
        problems = 1
    records = sorted(lab.state["servers"], key=lambda r: (planner.number_of(r["id"]), r["port"]))
    for r in records:
        pid = r["pid"]
        if not procs.pid_is(pid, "catalog-server"):
            health = "DEAD (process %d is gone; make up restarts it)" % pid
            problems = 1
        else:
            body = procs.http_get("http://127.0.0.1:%d/health" % r["port"], 3)
            if body is not None:
                health = "report %s, health ok %s" % (r.get("report_mode", "live"), body.strip())
            else:
                health = "UNHEALTHY (/health does not answer 200)"
                problems = 1
        limit = r.get("limit_short") or "-"
        print("%-12s %-8s %-6s pool %-3s cpus %-4s limit %-10s %s"
              % ("server " + r["id"], "pid %d" % pid, r["port"], r["pool"], r.get("cpus") or "-", limit, health))
    if not records:
        print("%-12s %s" % ("servers", "none running"))
        problems = 1
    for r in records:
        if r.get("cpus") and r.get("limit_detail"):
            print("%-12s %s: %s" % ("cpu limit", r["id"], r["limit_detail"]))
    if lab.nginx_running():
        try:
            with open(s.nginx_conf) as f:
                upstreams = " ".join(w.split()[1] for w in f if w.strip().startswith("server 127.0.0.1:"))
        except OSError:
            upstreams = "?"
        print(row("nginx", "pid %d" % lab.nginx_pid(), lab.port("nginx"), "up  -> %s (BALANCE=%s)"
                  % (upstreams, lab.balance())))
    elif servers > 1:
        print(row("nginx", "-", lab.port("nginx"), "DOWN"))
        problems = 1
    else:
        print(row("nginx", "-", "-", "not running (one server: clients use port %d)" % lab.port("app")))
    if lab.prom_running():
        print(row("prometheus", "pid %d" % lab.prom_pid(), lab.port("prometheus"), "up  " + scrape_text(lab)))
    else:
        print(row("prometheus", "-", "-", "DOWN"))
        problems = 1
    for name in exporters.NAMES:
        pid = exporters.pid_of(lab.state, name)
        label = name.replace("-exporter", "-exp")
        if pid:
            print(row(label, "pid %d" % pid, lab.state["ports"].get(name, "?"),
                      "up  (Prometheus job %s)" % exporters.JOBS[name]))
        else:
            print(row(label, "-", "-", "not running (make up starts it; the dashboard lacks its panels)"))
    if lab.nginx_running():
        print("%-12s http://127.0.0.1:%d/dashboard/" % ("dashboard", lab.port("nginx")))
    return 1 if problems else 0


def cmd_restart(lab, args):
    """A rolling restart of every server (Lab.restart)."""
    lab.ensure_built()
    lab.restart()
    return 0


def cmd_down(lab, args):
    lab.down(purge="--purge" in args)
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "scale": cmd_scale,
            "restart": cmd_restart, "loadtest": runs.cmd_loadtest, "compare": compare.cmd_compare,
            "demo": demo.cmd_demo, "ceiling": scaling.cmd_ceiling, "sweep": scaling.cmd_sweep}


def usage(settings):
    return USAGE.format(lb=settings.ports["nginx"], app=settings.ports["app"], lab_dir=settings.lab_dir,
                        bind=settings.bind, cgroup=settings.cgroup or "none to try")


def main(argv):
    sys.stdout.reconfigure(line_buffering=True)  # our lines and the programs' in order
    settings = Settings()
    command = argv[0] if argv else "help"
    if command in ("help", "-h", "--help"):
        print(usage(settings))
        return 0
    if command not in COMMANDS:
        print(usage(settings), file=sys.stderr)
        return 2
    lab = Lab(settings)
    try:
        return COMMANDS[command](lab, argv[1:]) or 0
    except (Failed, planner.Refused) as e:
        # The library's failures, said as die() says them: after what was printed so far.
        sys.stdout.flush()
        print("lab: %s" % e, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
