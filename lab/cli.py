"""The lab's commands: up, down, status, scale, restart, loadtest, compare, demo.  The make
targets of the same names are thin aliases (through scripts/lab.sh)."""
import os
import shutil
import subprocess
import sys
import time

from lab import cgroups, compare, exporters, planner, procs, runs, scaling
from lab.procs import die, say, warn
from lab.services import Lab
from lab.settings import BUDGET_DEFAULT, Settings
from lab.state import Lock

SCRAPE_INTERVAL_S = 5  # deploy/prometheus/prometheus.yml.template

USAGE = """usage: scripts/lab.sh COMMAND
  up              install what is missing, start PostgreSQL (seeded), the servers, Prometheus
  scale N         N servers (app, app2, ...) behind nginx on {lb}; N=1: one server on {app}
  status          processes, ports, pool sizes, CPU limits, balancing, orders, /health
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
environment: LAB_DIR ({lab_dir}) LAB_PG_PORT LAB_APP_PORT LAB_LB_PORT LAB_PROM_PORT
  LAB_PG_EXPORTER_PORT LAB_PROCESS_EXPORTER_PORT LAB_NODE_EXPORTER_PORT (a busy port: the next
  free one, said so) LAB_BIND ({bind}) LAB_CGROUP ({cgroup})
  DB_BUDGET (10) SERVER_CPUS (no limit; e.g. 0.5) MIX (scenario|browse)
  BALANCE (round_robin|least_conn|p2c: nginx's choice of server; kept until changed)
  REPORT_MODE (live|rollup: part of each server's settings; a change restarts the servers)
  LOAD_CONNECTIONS (100) LOAD_DURATION (30s) LOAD_THREADS (2) BASE_URL
  CEILING_STAGE (5s) CEILING_MAX (2m) CEILING_START (10) SLO_P99 (500ms) SLO_FAILURES (0)
  DEMO_DURATION (10s) DEMO_CONNECTIONS (50) DEMO_SERVER_CPUS (0.25)
  DEMO_CEILING_STAGE (1s) DEMO_CEILING_MAX (8s)
  SEED_PRODUCTS SEED_ORDERS (passed to catalog-db)"""


def need_build(lab):
    s = lab.settings
    names = ("catalog-server", "catalog-db", "catalog-loadtest")
    missing = [n for n in names if not os.access(s.binary(n), os.X_OK)]
    if missing:
        say("building (%s is missing)" % s.binary(missing[0]))
        if subprocess.run(["make", "-C", s.repo, "--no-print-directory", "all"], stdout=subprocess.DEVNULL).returncode:
            die("the build failed; run make to see why")
    for n in names:
        if not os.access(s.binary(n), os.X_OK):
            die("%s is missing after the build" % s.binary(n))


def request_from_env(servers, budget=None, cpus=None, balance=None):
    """The layout asked for.  BALANCE from the environment, else BALANCE (the layout's, kept
    in the state like SERVERS), else round robin."""
    try:
        return planner.parse_request(servers, budget if budget is not None else os.environ.get("DB_BUDGET") or BUDGET_DEFAULT,
                                     os.environ.get("SERVER_CPUS", "") if cpus is None else cpus,
                                     os.environ.get("REPORT_MODE") or "live",
                                     os.environ.get("BALANCE") or balance or planner.BALANCE_DEFAULT)
    except planner.Refused as e:
        die(str(e))


def print_where(lab):
    servers, budget, _ = lab.layout()
    entry = lab.entry_point()
    say("entry point:  %s   (try: curl %s/health)" % (entry, entry))
    if servers > 1:
        say("servers:      %d behind nginx on %d, DB_POOL_MAX=%d each (budget %d), balancing %s"
            % (servers, lab.port("nginx"), budget // servers, budget, lab.balance()))
    else:
        say("server:       app on %d, DB_POOL_MAX=%d" % (lab.port("app"), budget))
    limits = sorted({"%s %s" % (r["id"], r.get("limit_detail") or "") for r in lab.state["servers"] if r.get("cpus")})
    for line in limits:
        say("CPU limit:    %s" % line)
    say("Prometheus:   http://127.0.0.1:%d" % lab.port("prometheus"))
    if lab.nginx_running():
        say("dashboard:    http://127.0.0.1:%d/dashboard/ (docs/dashboard.md)" % lab.port("nginx"))
    say("PostgreSQL:   127.0.0.1:%s, database %s (psql -h 127.0.0.1 -p %s -U postgres %s; password postgres)"
        % (os.environ.get("PGPORT"), lab.settings.db_name, os.environ.get("PGPORT"), lab.settings.db_name))
    say("state:        %s (logs in %s)" % (lab.settings.lab_dir, lab.settings.logs))


def cmd_up(lab, args):
    s = lab.settings
    if os.environ.get("LAB_SKIP_DEPS", "0") != "1":
        if subprocess.run([os.path.join(s.repo, "scripts", "install-deps.sh"), "lab"]).returncode:
            die("missing packages (see above)")
    need_build(lab)
    s.mkdirs()
    with Lock(s.lock_file):
        lab.state = type(lab.state)(s.state_file)
        lab.ensure_pg()
        lab.ensure_seed()
        exporters.ensure(lab)
        lab.ensure_dashboard()
        # up keeps the layout last applied (one server on a fresh lab), restarting any of its
        # processes that died.
        if lab.state["layout"]:
            servers, budget, cpus = lab.layout()
            request = request_from_env(servers, budget, cpus, lab.balance())
        else:
            request = request_from_env(1)
        before = lab.changed
        lab.apply_layout(request)
        print_where(lab)
        if not lab.changed and not before:
            say("nothing changed: everything was already up")
    return 0


def cmd_scale(lab, args):
    if not args or not args[0]:
        die("usage: make scale SERVERS=N (N servers behind nginx; 1 returns to one server on %d)" % lab.port("app"))
    need_build(lab)
    lab.settings.mkdirs()
    with Lock(lab.settings.lock_file):
        lab.state = type(lab.state)(lab.settings.state_file)
        request = request_from_env(args[0], balance=lab.balance())
        if not lab.pg_running():
            die("the lab is not up (PostgreSQL is not running); run make up first")
        lab.load_pg_env()
        if not lab.prom_running():
            die("the lab is not up (Prometheus is not running); run make up first")
        lab.apply_layout(request)
        if not lab.changed:
            say("nothing changed: already %d server(s) with these settings" % request.servers)
        print_where(lab)
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
        print(row("postgres", "pid %s" % master, os.environ["PGPORT"], "up  " + orders))
        print("%-12s %s, database allows %s, open now %s"
              % ("connections", budget_text(budget, servers), limit if limit is not None else "?",
                 in_use if in_use is not None else "?"))
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
    """A rolling restart of every server (new processes, same ids, ports and settings): each
    in turn gets SIGTERM and is waited for (it finishes the requests in flight; nginx sends
    the GETs it cannot place there to the others), is started again on the same port, and
    the next goes only once nginx routes to it again.  Same ports: no nginx reload (a reload
    closes clients' idle keep-alive connections, docs/lab.md).  With one server requests
    pause while it restarts."""
    need_build(lab)
    s = lab.settings
    s.mkdirs()
    with Lock(s.lock_file):
        lab.state = type(lab.state)(s.state_file)
        if not lab.pg_running():
            die("the lab is not up (PostgreSQL is not running); run make up first")
        lab.load_pg_env()
        servers = lab.servers()
        if not servers:
            die("no server is running; run make up first")
        plan = planner.plan_restart(servers, lab.layout()[0], lab.nginx_running())
        if not plan.steps[0].behind_nginx:
            warn("one server without nginx in front: requests to it pause while it restarts")
        count = 0
        for step in plan.steps:
            srv = step.server
            if srv.alive:
                procs.stop_pid(srv.pid, "catalog-server", 15)
                say("stopped %s (pid %d) on port %d" % (srv.id, srv.pid, srv.port))
            lab.state.remove_server(srv.port)
            if not lab.start_server(srv.id, srv.port, srv.pool, srv.cpus, srv.report_mode):
                die("restart stopped: %s did not start again on port %d (the servers after it were not touched)"
                    % (srv.id, srv.port))
            if step.behind_nginx and not lab.nginx_routes_to(srv.id, 15):
                warn("nginx does not route to %s 15 s after its restart" % srv.id)
            count += 1
        say("restarted %d server(s)" % count)
    return 0


def cmd_down(lab, args):
    s = lab.settings
    purge = "--purge" in args
    if os.path.isdir(s.run):
        with Lock(s.lock_file):
            lab.state = type(lab.state)(s.state_file)
            for r in list(lab.state["servers"]):
                lab.stop_server(r["port"])
                say("stopped %s (port %d)" % (r["id"], r["port"]))
            lab.stop_nginx()
            lab.stop_prometheus()
            exporters.stop_all(lab)
            if s.cgroup:
                cgroups.remove_group(s.cgroup)
            lab.state["layout"] = None
            lab.state.save()
    if os.path.isdir(os.path.join(s.pg_dir, "data")) and lab.pg_running():
        os.makedirs(s.logs, exist_ok=True)
        log = os.path.join(s.logs, "pg.log")
        with open(log, "a") as err:
            if subprocess.run([os.path.join(s.repo, "scripts", "pg.sh"), "stop", s.pg_dir],
                              stderr=err, stdout=subprocess.DEVNULL).returncode:
                die("PostgreSQL did not stop (log: %s)" % log)
        say("PostgreSQL stopped")
    if purge:
        if s.lab_dir in ("/", "", os.path.expanduser("~"), s.repo):
            die("refusing to delete LAB_DIR=%s" % s.lab_dir)
        shutil.rmtree(s.lab_dir, ignore_errors=True)
        say("deleted %s (data, logs, results)" % s.lab_dir)
        if not os.path.abspath(s.pg_dir).startswith(os.path.abspath(s.lab_dir) + os.sep):
            shutil.rmtree(s.pg_dir, ignore_errors=True)
            say("deleted %s (the database)" % s.pg_dir)
    say("down: nothing of the lab is running")
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "scale": cmd_scale,
            "restart": cmd_restart, "loadtest": runs.cmd_loadtest, "compare": compare.cmd_compare,
            "demo": runs.cmd_demo, "ceiling": scaling.cmd_ceiling, "sweep": scaling.cmd_sweep}


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
    except KeyboardInterrupt:
        return 130
