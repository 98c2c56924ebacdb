"""The lab's parts carried out: PostgreSQL (scripts/pg.sh), the seed (catalog-db), the API
servers, nginx, Prometheus, the dashboard files; and a plan's steps (planner) applied to them,
the state file written after each step."""
import contextlib
import glob
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time

from lab import cgroups, configs, exporters, planner, ports, procs, replicas
from lab.errors import Failed
from lab.procs import say, warn
from lab.state import Lock, State

SERVER_STOP_TIMEOUT_S = 15
# What all the pools together may use on one instance: max_connections minus the slots reserved
# for superusers (and, from PostgreSQL 16, reserved_connections).
LIMIT_SQL = ("SELECT current_setting('max_connections')::int"
             " - current_setting('superuser_reserved_connections')::int"
             " - coalesce(current_setting('reserved_connections', true)::int, 0)")
SERVER_START_TIMEOUT_S = 20


def unchanged(candidate, target):
    """True (and CANDIDATE removed) when TARGET already has CANDIDATE's text."""
    try:
        with open(target) as a, open(candidate) as b:
            same = a.read() == b.read()
    except OSError:
        return False
    if same:
        os.unlink(candidate)
    return same



class Lab:
    def __init__(self, settings):
        self.settings = settings
        self.state = State(settings.state_file)
        self.changed = False

    # ---- the commands' work (lab/cli.py parses what is asked and calls these) ---------------
    @contextlib.contextmanager
    def locked(self):
        """The lab's lock held, and the state read again under it: another command may have
        changed it since this one started."""
        with Lock(self.settings.lock_file):
            self.state = State(self.settings.state_file)
            yield

    def install_deps(self):
        if subprocess.run([os.path.join(self.settings.repo, "scripts", "install-deps.sh"), "lab"]).returncode:
            raise Failed("missing packages (see above)")

    def ensure_built(self):
        s = self.settings
        names = ("catalog-server", "catalog-db", "catalog-loadtest")
        missing = [n for n in names if not os.access(s.binary(n), os.X_OK)]
        if missing:
            say("building (%s is missing)" % s.binary(missing[0]))
            if subprocess.run(["make", "-C", s.repo, "--no-print-directory", "all"], stdout=subprocess.DEVNULL).returncode:
                raise Failed("the build failed; run make to see why")
        for n in names:
            if not os.access(s.binary(n), os.X_OK):
                raise Failed("%s is missing after the build" % s.binary(n))

    def require_up(self, prometheus=True):
        """Failed unless PostgreSQL (and PROMETHEUS) run; loads PostgreSQL's exports."""
        if not self.pg_running():
            raise Failed("the lab is not up (PostgreSQL is not running); run make up first")
        self.load_pg_env()
        if prometheus and not self.prom_running():
            raise Failed("the lab is not up (Prometheus is not running); run make up first")

    def up(self, wishes):
        """PostgreSQL (seeded), the exporters, the dashboard and the layout last applied (one
        server on a fresh lab, with WISHES), restarting any of its processes that died."""
        s = self.settings
        s.mkdirs()
        with self.locked():
            if self.state["layout"]:
                servers, budget, cpus = self.layout()
                request = wishes.request(servers, budget, cpus, self.balance(), layout=self.state["layout"])
            else:
                # A fresh lab, or one after make down (which forgets the servers' layout): one
                # server; the replicas and DB_CPUS that ran before are kept, so up repairs them.
                request = wishes.request(1, layout={"db_replicas": len(replicas.records(self)),
                                                    "db_cpus": self.state["db_limit"].get("cpus") or ""})
            self.ensure_pg(request.db_cpus)
            self.ensure_seed()
            exporters.ensure(self)
            self.ensure_dashboard()
            before = self.changed
            self.apply_layout(request)
            self.say_where()
            if not self.changed and not before:
                say("nothing changed: everything was already up")

    def scale(self, wishes, servers):
        """SERVERS servers with WISHES; the running layout unchanged when refused."""
        self.settings.mkdirs()
        with self.locked():
            request = wishes.request(servers, balance=self.balance(), layout=self.state["layout"])
            self.require_up()
            self.apply_layout(request)
            if not self.changed:
                say("nothing changed: already %d server(s)%s with these settings"
                    % (request.servers, " and %d replica(s)" % request.db_replicas if request.db_replicas else ""))
            self.say_where()

    def say_where(self):
        """Where everything is: the entry point, the servers, Prometheus, PostgreSQL, the state."""
        servers, budget, _ = self.layout()
        entry = self.entry_point()
        say("entry point:  %s   (try: curl %s/health)" % (entry, entry))
        running = [r for r in replicas.running(self) if r.alive]
        each = " on each PostgreSQL instance" if running else ""
        if servers > 1:
            say("servers:      %d behind nginx on %d, DB_POOL_MAX=%d each%s (budget %d), balancing %s"
                % (servers, self.port("nginx"), budget // servers, each, budget, self.balance()))
        else:
            say("server:       app on %d, DB_POOL_MAX=%d%s" % (self.port("app"), budget, each))
        limits = sorted({"%s %s" % (r["id"], r.get("limit_detail") or "") for r in self.state["servers"] if r.get("cpus")})
        for line in limits:
            say("CPU limit:    %s" % line)
        say("Prometheus:   http://127.0.0.1:%d" % self.port("prometheus"))
        if self.nginx_running():
            say("dashboard:    http://127.0.0.1:%d/dashboard/ (docs/dashboard.md)" % self.port("nginx"))
        say("PostgreSQL:   127.0.0.1:%s, database %s (psql -h 127.0.0.1 -p %s -U postgres %s; password postgres)"
            % (os.environ.get("PGPORT"), self.settings.db_name, os.environ.get("PGPORT"), self.settings.db_name))
        for r in running:
            say("replica:      %s on 127.0.0.1:%d, a hot standby (the servers read from it: DB_READ_HOSTS)"
                % (r.id, r.port))
        if self.state["db_limit"].get("cpus"):
            say("DB CPU limit: %s CPUs per PostgreSQL instance, %s" % (self.state["db_limit"]["cpus"],
                                                                      self.state["db_limit"].get("limit_detail")))
        say("state:        %s (logs in %s)" % (self.settings.lab_dir, self.settings.logs))

    def restart(self):
        """A rolling restart of every server (new processes, same ids, ports and settings): each
        in turn gets SIGTERM and is waited for (it finishes the requests in flight; nginx sends
        the GETs it cannot place there to the others), is started again on the same port, and
        the next goes only once nginx routes to it again.  Same ports: no nginx reload (a reload
        closes clients' idle keep-alive connections, docs/lab.md).  With one server requests
        pause while it restarts."""
        self.settings.mkdirs()
        with self.locked():
            self.require_up(prometheus=False)
            servers = self.servers()
            if not servers:
                raise Failed("no server is running; run make up first")
            plan = planner.plan_restart(servers, self.layout()[0], self.nginx_running())
            if not plan.steps[0].behind_nginx:
                warn("one server without nginx in front: requests to it pause while it restarts")
            count = 0
            for step in plan.steps:
                srv = step.server
                if srv.alive:
                    procs.stop_pid(srv.pid, "catalog-server", 15)
                    say("stopped %s (pid %d) on port %d" % (srv.id, srv.pid, srv.port))
                self.state.remove_server(srv.port)
                if not self.start_server(srv.id, srv.port, srv.pool, srv.cpus, srv.report_mode, srv.read_hosts):
                    raise Failed("restart stopped: %s did not start again on port %d (the servers after it "
                                 "were not touched)" % (srv.id, srv.port))
                if step.behind_nginx and not self.nginx_routes_to(srv.id, 15):
                    warn("nginx does not route to %s 15 s after its restart" % srv.id)
                count += 1
            say("restarted %d server(s)" % count)

    def down(self, purge=False):
        """Stops everything the lab started; PURGE also deletes LAB_DIR (and the database)."""
        s = self.settings
        if os.path.isdir(s.run):
            with self.locked():
                for r in list(self.state["servers"]):
                    self.stop_server(r["port"])
                    say("stopped %s (port %d)" % (r["id"], r["port"]))
                self.stop_nginx()
                self.stop_prometheus()
                exporters.stop_all(self)
                if s.cgroup:
                    cgroups.remove_group(s.cgroup)
                self.state["layout"] = None
                self.state.save()
        if os.path.isdir(s.run):
            with self.locked():
                replicas.stop_all(self)
        if os.path.isdir(os.path.join(s.pg_dir, "data")) and self.pg_running():
            os.makedirs(s.logs, exist_ok=True)
            log = os.path.join(s.logs, "pg.log")
            with open(log, "a") as err:
                if subprocess.run([os.path.join(s.repo, "scripts", "pg.sh"), "stop", s.pg_dir],
                                  stderr=err, stdout=subprocess.DEVNULL).returncode:
                    raise Failed("PostgreSQL did not stop (log: %s)" % log)
            say("PostgreSQL stopped")
        if s.cgroup:  # DB_CPUS's groups, now empty, then the lab's
            cgroups.remove_group(s.cgroup, "postgres")
            cgroups.remove_group(s.cgroup)
        if purge:
            if s.lab_dir in ("/", "", os.path.expanduser("~"), s.repo):
                raise Failed("refusing to delete LAB_DIR=%s" % s.lab_dir)
            shutil.rmtree(s.lab_dir, ignore_errors=True)
            say("deleted %s (data, logs, results)" % s.lab_dir)
            if not os.path.abspath(s.pg_dir).startswith(os.path.abspath(s.lab_dir) + os.sep):
                shutil.rmtree(s.pg_dir, ignore_errors=True)
                say("deleted %s (the database)" % s.pg_dir)
                for folder in sorted(glob.glob(s.pg_dir.rstrip("/") + "-replica*")):
                    shutil.rmtree(folder, ignore_errors=True)
                    say("deleted %s (a replica)" % folder)
        say("down: nothing of the lab is running")

    @staticmethod
    def now():
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # ---- ports ----------------------------------------------------------------------------
    def lab_ports(self, but=None):
        """Ports the lab's other parts own (configured, and where they run now)."""
        out = set()
        for name, port in self.settings.ports.items():
            if name != but:
                out.add(port)
        for name, port in self.state["ports"].items():
            if name != but:
                out.add(port)
        for s in self.state["servers"]:
            out.add(s["port"])
        return out

    def pick_port(self, component, previous=None):
        """The port COMPONENT starts on (ports.choose); says so when it is not the expected one."""
        wanted = self.settings.ports[component]
        if previous is None:
            previous = self.state["ports"].get(component)
        busy = ports.listening_ports()
        reserved = self.lab_ports(but=component) - {previous, wanted} if component != "app" else set()
        port, moved = ports.choose(wanted, previous, busy, reserved)
        if moved:
            expected = previous or wanted
            say("port %d is busy; %s will use port %d instead (%s chooses another)"
                % (expected, self.label(component), port, self.settings.setting_of(component)))
        self.state["ports"][component] = port
        return port

    @staticmethod
    def label(component):
        return {"postgres": "PostgreSQL", "prometheus": "Prometheus", "app": "the single server"}.get(
            component, component)

    def port(self, component):
        return self.state["ports"].get(component, self.settings.ports[component])

    # ---- PostgreSQL -------------------------------------------------------------------------
    def pg(self, *args):
        return procs.run([os.path.join(self.settings.repo, "scripts", "pg.sh")] + list(args))

    def pg_running(self):
        return self.pg("status", self.settings.pg_dir)[0] == 0

    def load_pg_env(self):
        rc, out, _ = self.pg("env", self.settings.pg_dir)
        if rc != 0:
            return False
        self.apply_exports(out)
        return True

    def apply_exports(self, text):
        for line in text.splitlines():
            m = re.match(r"export ([A-Z_]+)=(.*)$", line)
            if m:
                os.environ[m.group(1)] = m.group(2)
        os.environ["DB_NAME"] = self.settings.db_name
        self.state["ports"]["postgres"] = int(os.environ["PGPORT"])

    def ensure_pg(self, cpus=""):
        """PostgreSQL running, with CPU size CPUS (DB_CPUS; restarted when it runs with another)."""
        s = self.settings
        if self.pg_running():
            self.load_pg_env()
            say("PostgreSQL already running on 127.0.0.1:%s" % os.environ["PGPORT"])
            self.resize_pg(cpus)
            return
        self.start_pg(cpus)

    def resize_pg(self, cpus):
        """Restarts the running primary when DB_CPUS asks another CPU size than it has."""
        had = self.state["db_limit"].get("cpus") or ""
        if had == cpus:
            return
        say("DB_CPUS changed (%s -> %s): restarting PostgreSQL with its new CPU limit; the servers' "
            "open connections to it drop and they connect again" % (had or "no limit", cpus or "no limit"))
        rc, _, err = self.pg("stop", self.settings.pg_dir)
        if rc != 0:
            raise Failed("PostgreSQL did not stop: %s" % err.strip())
        if self.settings.cgroup:
            cgroups.remove_group(self.settings.cgroup, "postgres")
        self.start_pg(cpus)

    def start_pg(self, cpus):
        s = self.settings
        previous = None
        try:
            with open(os.path.join(s.pg_dir, "port")) as f:
                previous = int(f.read().strip())
        except (OSError, ValueError):
            pass
        port = self.pick_port("postgres", previous)
        if not os.path.abspath(s.pg_dir).startswith(os.path.abspath(s.lab_dir) + os.sep):
            say("the database lives in %s: PostgreSQL runs as the postgres user, which cannot enter "
                "%s (a folder above it is closed to other users); LAB_PG_DIR names another place, "
                "make down PURGE=1 deletes it" % (s.pg_dir, s.lab_dir))
        log = os.path.join(s.logs, "pg.log")
        limit = replicas.limit_for(self, cpus, "postgres", 1)
        try:
            exports = replicas.start_pg(self, s.pg_dir, port, limit, log)
        except Failed:
            raise Failed("PostgreSQL did not start (log: %s)" % log) from None
        self.apply_exports(exports)
        self.state["db_limit"] = {"cpus": cpus, "limit": limit.mechanism, "limit_short": limit.short(),
                                  "limit_detail": limit.detail}
        self.state.save()
        size = ", %s CPUs (%s)" % (cpus, limit.detail) if cpus else ""
        say("PostgreSQL started on 127.0.0.1:%s (data %s%s)" % (os.environ["PGPORT"], s.pg_dir, size))
        self.changed = True

    def catalog_db(self, *args):
        return procs.run([self.settings.binary("catalog-db")] + list(args))

    def catalog_db_logged(self, command, failure):
        """catalog-db COMMAND with its output in the seed log; raises Failed saying FAILURE if it fails."""
        log = os.path.join(self.settings.logs, "seed.log")
        rc, out, err = self.catalog_db(command)
        with open(log, "a") as f:
            f.write(out + err)
        if rc != 0:
            print(procs.tail(log, 20), end="")
            raise Failed("%s (log: %s)" % (failure, log))

    def seed_status(self):
        """(exit status, last line) of catalog-db status: "Orders in DB: N ..." when seeded."""
        rc, out, err = self.catalog_db("status")
        return rc, ((out + err).strip().splitlines()[-1:] or [""])[0]

    def ensure_seed(self):
        rc, last = self.seed_status()
        if rc == 0:
            # A database seeded by an older version may lack newer schema: migrate is idempotent.
            self.catalog_db_logged("migrate", "migrating the database failed")
            say("database already seeded: %s" % last)
            return
        say("seeding the database (SEED_PRODUCTS=%s SEED_ORDERS=%s); docs/figures/recorded.json has how long "
            "the full size took on the machine it was recorded on"
            % (os.environ.get("SEED_PRODUCTS", "5000"), os.environ.get("SEED_ORDERS", "500000")))
        started = time.monotonic()
        self.catalog_db_logged("seed", "seeding failed")
        say("seeded in %.1f s: %s" % (time.monotonic() - started, self.seed_status()[1]))
        self.changed = True

    def psql(self, sql):
        rc, out, _ = procs.run(["psql", "-d", "postgres", "-tAc", sql])
        return out.strip() if rc == 0 else None

    def db_connection_limit(self):
        """max_connections minus the slots reserved for superusers (and, from PostgreSQL 16,
        reserved_connections): what all the pools together may use at most."""
        out = self.psql(LIMIT_SQL)
        return int(out) if out and out.isdigit() else None

    def server_connections(self):
        return self.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'catalog-server-%'")

    def postgres_pids(self):
        """Every PostgreSQL instance's processes: the primary's postmaster first, its children,
        then each replica's (the CPU line of make loadtest counts them all)."""
        try:
            with open(os.path.join(self.settings.pg_dir, "data", "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return replicas.pids(self)
        return [master] + procs.child_pids(master) + replicas.pids(self)

    # ---- servers ----------------------------------------------------------------------------
    def servers(self):
        """The server records as planner.Server, alive or not."""
        out = []
        for r in self.state["servers"]:
            out.append(planner.Server(r["id"], r["port"], r["pool"], r.get("cpus") or "",
                                      r.get("report_mode", "live"), r["pid"],
                                      procs.pid_is(r["pid"], "catalog-server"), r.get("read_hosts") or ""))
        return out

    def start_server(self, sid, port, pool, cpus, report_mode, read_hosts=""):
        s = self.settings
        if port in ports.listening_ports():
            warn("port %d is busy; cannot start %s there" % (port, sid))
            return False
        limit = cgroups.choose(cpus, sid, s.cgroup, number=planner.number_of(sid))
        if limit.warning:
            warn(limit.warning)
        log = os.path.join(s.logs, sid + ".log")
        size = ", %s CPUs (%s)" % (cpus, limit.mechanism) if cpus else ""
        with open(log, "a") as f:
            f.write("--- %s start %s on port %d, DB_POOL_MAX=%d%s\n" % (self.now(), sid, port, pool, size))
        env = dict(os.environ, PORT=str(port), HOST=s.bind, SERVER_ID=sid, DB_POOL_MAX=str(pool),
                   DB_NAME=s.db_name, ACCESS_LOG=os.environ.get("ACCESS_LOG", "0"), REPORT_MODE=report_mode)
        env.pop("WORKERS", None)
        env.pop("DB_READ_HOSTS", None)
        if read_hosts:
            env["DB_READ_HOSTS"] = read_hosts
        if limit.workers:
            env["WORKERS"] = str(limit.workers)
        try:
            pid = procs.spawn([s.binary("catalog-server")], log, env=env, limit=limit)
        except OSError as e:
            warn("could not start %s: %s" % (sid, e))
            return False
        self.state.add_server({"id": sid, "port": port, "pool": pool, "cpus": cpus, "report_mode": report_mode,
                               "read_hosts": read_hosts,
                               "pid": pid, "limit": limit.mechanism, "limit_short": limit.short(),
                               "limit_detail": limit.detail, "group": limit.group})
        if procs.wait_http("http://127.0.0.1:%d/health" % port, SERVER_START_TIMEOUT_S, pid=pid):
            say("started %s (pid %d) on 127.0.0.1:%d, DB_POOL_MAX=%d%s" % (sid, pid, port, pool, size))
            self.changed = True
            return True
        print(procs.tail(log, 15), end="")
        self.stop_server(port)
        print("lab: %s did not become ready on port %d (log above, full log: %s)" % (sid, port, log))
        return False

    def stop_server(self, port):
        record = self.state.server_on(port)
        if not record:
            return
        procs.stop_pid(record["pid"], "catalog-server", SERVER_STOP_TIMEOUT_S)
        self.state.remove_server(port)
        if record.get("group"):
            cgroups.remove_group(os.path.dirname(record["group"]), os.path.basename(record["group"]))
        self.changed = True

    # ---- nginx ------------------------------------------------------------------------------
    def nginx_pid(self):
        try:
            with open(self.settings.nginx_pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return 0
        return pid if procs.pid_is(pid, "nginx") else 0

    def nginx_running(self):
        return bool(self.nginx_pid())

    def nginx_cmd(self, *args):
        s = self.settings
        return [s.program("nginx"), "-e", os.path.join(s.logs, "nginx-error.log"), "-p", s.nginx_prefix] + list(args)

    def write_nginx_conf(self, path, server_ports, listen_port, balance):
        s = self.settings
        text = configs.nginx_conf(
            ports=server_ports, balance=balance, listen="%s:%d" % (s.bind, listen_port), prefix=s.nginx_prefix,
            pid_file=s.nginx_pid_file, error_log=os.path.join(s.logs, "nginx-error.log"),
            workers=s.nginx_workers, root=os.getuid() == 0, events_json=s.events_json,
            prom_port=self.port("prometheus"), dashboard_dir=s.dashboard_dir)
        with open(path, "w") as f:
            f.write(text)

    def apply_nginx(self, server_ports, balance):
        """nginx in front of the servers on SERVER_PORTS, choosing among them by BALANCE: the
        new config checked with nginx -t, then nginx started, or reloaded and its old workers
        waited for."""
        s = self.settings
        running = self.nginx_running()
        listen_port = self.port("nginx") if running else self.pick_port("nginx")
        candidate = s.nginx_conf + ".new"
        self.write_nginx_conf(candidate, server_ports, listen_port, balance)
        rc, out, err = procs.run(self.nginx_cmd("-t", "-q", "-c", candidate))
        if rc != 0:
            print(out + err, end="")
            raise Failed("the generated nginx config does not pass nginx -t (%s)" % candidate)
        addresses = " ".join("127.0.0.1:%d" % p for p in server_ports)
        if running:
            if unchanged(candidate, s.nginx_conf):
                return
            master = self.nginx_pid()
            old_workers = procs.child_pids(master)
            os.replace(candidate, s.nginx_conf)
            os.kill(master, signal.SIGHUP)
            deadline = time.monotonic() + 15
            while any(procs.pid_is(w, "nginx") for w in old_workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            say("nginx reloaded: 127.0.0.1:%d -> %s (%s)" % (listen_port, addresses, balance))
        else:
            os.replace(candidate, s.nginx_conf)
            rc, out, err = procs.run(self.nginx_cmd("-c", s.nginx_conf))
            deadline = time.monotonic() + 5
            while rc == 0 and not self.nginx_running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.nginx_running():
                print(out + err, end="")
                raise Failed("nginx did not start (log: %s)" % os.path.join(s.logs, "nginx-error.log"))
            self.state.save()
            say("nginx started on %s:%d -> %s (%s)" % (s.bind, listen_port, addresses, balance))
        self.changed = True

    def stop_nginx(self):
        pid = self.nginx_pid()
        if pid:
            workers = procs.child_pids(pid)  # collected first, so none outlives the master
            procs.stop_pid(pid, "nginx", 10)
            for w in workers:
                procs.stop_pid(w, "nginx", 5)
            say("nginx stopped")
        try:
            os.unlink(self.settings.nginx_pid_file)
        except OSError:
            pass

    # ---- Prometheus -------------------------------------------------------------------------
    def prom_pid(self):
        pid = self.state["pids"].get("prometheus", 0)
        return pid if procs.pid_is(pid, "prometheus") else 0

    def prom_running(self):
        return bool(self.prom_pid())

    def apply_prometheus(self, servers):
        """Prometheus scraping SERVERS [(id, port)] and the exporters; checked with promtool,
        then started, or reloaded (POST /-/reload)."""
        s = self.settings
        candidate = s.prom_conf + ".new"
        with open(candidate, "w") as f:
            f.write(configs.prometheus_conf(servers, exporters.jobs(self)))
        rc, out, err = procs.run([s.program("promtool"), "check", "config", candidate])
        if rc != 0:
            print(out + err, end="")
            raise Failed("the generated Prometheus config does not pass promtool check config (%s)" % candidate)
        if self.prom_running():
            if unchanged(candidate, s.prom_conf):
                return
            os.replace(candidate, s.prom_conf)
            if procs.http_get("http://127.0.0.1:%d/-/reload" % self.port("prometheus"), 5, method="POST") is None:
                os.kill(self.prom_pid(), signal.SIGHUP)
            say("Prometheus reloaded: scraping %d server(s)" % len(servers))
        else:
            port = self.pick_port("prometheus")
            os.replace(candidate, s.prom_conf)
            os.makedirs(s.prom_data, exist_ok=True)
            log = os.path.join(s.logs, "prometheus.log")
            pid = procs.spawn([s.program("prometheus"), "--config.file=" + s.prom_conf,
                               "--storage.tsdb.path=" + s.prom_data,
                               "--web.listen-address=%s:%d" % (s.bind, port), "--web.enable-lifecycle"], log)
            self.state["pids"]["prometheus"] = pid
            self.state.save()
            if not procs.wait_http("http://127.0.0.1:%d/-/ready" % port, 30, pid=pid):
                print(procs.tail(log, 10), end="")
                raise Failed("Prometheus did not become ready (log: %s)" % log)
            say("Prometheus started on %s:%d, scraping %d server(s) every 5 s" % (s.bind, port, len(servers)))
        self.changed = True

    def stop_prometheus(self):
        pid = self.prom_pid()
        if pid:
            procs.stop_pid(pid, "prometheus", 20)
            say("Prometheus stopped")
        self.state["pids"].pop("prometheus", None)
        self.state.save()

    # ---- dashboard and layout marks ----------------------------------------------------------
    def ensure_dashboard(self):
        s = self.settings
        stamp = os.path.join(s.dashboard_dir, "index.html")
        source = os.path.join(s.repo, "dashboard")
        try:
            built = os.path.getmtime(stamp)
            newer = [n for n in os.listdir(source) if os.path.isfile(os.path.join(source, n))
                     and os.path.getmtime(os.path.join(source, n)) > built]
            if not newer:
                return
        except OSError:
            pass
        log = os.path.join(s.logs, "dashboard.log")
        with open(log, "a") as err:
            rc = subprocess.run([os.path.join(source, "build.sh"), s.dashboard_dir], stdout=err,
                                stderr=err).returncode
        if rc != 0:
            warn("the dashboard could not be built (log: %s); /dashboard/ will answer 404" % log)

    def write_textfile(self, servers, budget):
        path = os.path.join(self.settings.textfile_dir, "lab.prom")
        text = configs.layout_textfile(servers, budget)
        try:
            with open(path) as f:
                if f.read() == text:
                    return
        except OSError:
            pass
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def record_event(self, request):
        self.state["events"].append({"time": int(time.time()), "servers": request.servers,
                                     "budget": request.budget, "cpus": request.cpus})
        self.state["events"] = self.state["events"][-200:]
        self.state.save()
        self.write_textfile(request.servers, request.budget)
        with open(self.settings.events_json + ".tmp", "w") as f:
            f.write(configs.events_json(self.state["events"]))
        os.replace(self.settings.events_json + ".tmp", self.settings.events_json)

    # ---- layout -------------------------------------------------------------------------------
    def layout(self):
        """(servers, budget, cpus) of the last applied layout; one server and the defaults
        when none yet."""
        from lab.settings import BUDGET_DEFAULT
        l = self.state["layout"] or {}
        return l.get("servers", 1), l.get("budget", BUDGET_DEFAULT), l.get("cpus") or ""

    def balance(self):
        """The balancing method of the last applied layout (round_robin when none yet)."""
        return (self.state["layout"] or {}).get("balance") or planner.BALANCE_DEFAULT

    def report_mode(self):
        return (self.state["layout"] or {}).get("report_mode") or "live"

    def result_name(self, mix, kind="run"):
        """The name of a result of the current layout with MIX (planner.result_name)."""
        servers, _, cpus = self.layout()
        return planner.result_name(servers, cpus, mix, self.balance(), self.report_mode(), kind)

    def entry_point(self):
        servers = self.layout()[0]
        if servers > 1:
            return "http://127.0.0.1:%d" % self.port("nginx")
        return "http://127.0.0.1:%d" % self.port("app")

    def layout_name(self):
        servers, _, cpus = self.layout()
        return planner.layout_name(servers, cpus)

    def app_port(self):
        """The single-server port: the one of the last start when free (or ours), else
        LAB_APP_PORT when free, else the next free port (said so)."""
        own = {r["port"] for r in self.state["servers"] if procs.pid_is(r["pid"], "catalog-server")}
        busy = ports.listening_ports() - own
        previous = self.state["ports"].get("app")
        reserved = self.lab_ports(but="app") - own
        port, moved = ports.choose(self.settings.ports["app"], previous, busy, reserved)
        if moved:
            say("port %d is busy; the single server will use port %d instead (LAB_APP_PORT chooses another)"
                % (previous or self.settings.ports["app"], port))
        self.state["ports"]["app"] = port
        return port

    def apply_layout(self, request):
        """The core of scale and up: validated first (a refusal changes nothing), then the
        planner's steps carried out one by one, the state saved after each."""
        limit = self.db_connection_limit()
        if limit is None:
            raise Failed("refused: cannot read max_connections from PostgreSQL. The running layout is unchanged.")
        standbys = replicas.running(self)
        replica_limits = {}
        for r in standbys:
            out = replicas.psql_at(r.port, LIMIT_SQL) if r.alive else None
            if out and out.isdigit():
                replica_limits[r.id] = int(out)
        try:
            planner.validate(request, planner.instance_limits(request, limit, replica_limits))
        except planner.Refused as e:
            raise Failed(str(e)) from e
        # The database first: the primary's CPU size, then the standbys the servers will read from.
        self.resize_pg(request.db_cpus)
        rplan = planner.plan_replicas(standbys, request.db_replicas, request.db_cpus)
        for r in rplan.restart:
            say("%s: DB_CPUS changed (%s -> %s): restarting it" % (r.id, r.cpus or "no limit", request.db_cpus or "no limit"))
            replicas.stop(self, r.id)
        taken = {r.port for r in standbys if r.alive}
        for rid in rplan.start + tuple(r.id for r in rplan.restart):
            taken.add(replicas.start(self, rid, request.db_cpus, taken))
        hosts = ",".join("127.0.0.1:%d" % r.port for r in sorted(replicas.running(self), key=lambda r: r.number)
                         if r.alive and r.number <= request.db_replicas)
        request = dataclasses.replace(request, read_hosts=hosts)
        app_port = self.app_port()
        own = {r["port"] for r in self.state["servers"]}
        busy = ports.listening_ports() - own
        reserved = self.lab_ports(but="app") - own
        plan = planner.plan(self.servers(), request, app_port, busy, reserved)
        self.execute(plan)
        # Only once no server reads from them: the standbys beyond DB_REPLICAS.
        for r in rplan.retire:
            replicas.retire(self, r.id)

    def execute(self, plan):
        started, started_ids = [], []
        for step in plan.steps:
            if isinstance(step, planner.Stop):
                if step.why == "dead":
                    say("%s on port %d had ended (pid %d is gone)" % (step.id, step.port, step.pid))
                    self.stop_server(step.port)
                elif step.why == "in-place":
                    say("port %d is taken by the old %s; replacing it (requests to it pause meanwhile)"
                        % (step.port, step.id))
                    self.stop_server(step.port)
                else:
                    record = self.state.server_on(step.port)
                    if record and record["pid"] == step.pid:
                        self.stop_server(step.port)
                        say("stopped the old %s on port %d" % (step.id, step.port))
            elif isinstance(step, planner.Start):
                if not self.start_server(step.id, step.port, step.pool, step.cpus, step.report_mode, step.read_hosts):
                    for port in started:
                        self.stop_server(port)
                    raise Failed("scale failed: %s did not start; the servers started for the new layout "
                                 "were stopped again" % step.id)
                started.append(step.port)
                started_ids.append(step.id)
            elif isinstance(step, planner.Point):
                self.apply_prometheus(list(step.servers))
                self.point_nginx(step.layout_servers, [p for _, p in step.servers], step.balance)
            elif isinstance(step, planner.Record):
                r = step.request
                self.state["layout"] = {"servers": r.servers, "budget": r.budget, "cpus": r.cpus,
                                        "report_mode": r.report_mode, "balance": r.balance,
                                        "db_replicas": r.db_replicas, "db_cpus": r.db_cpus}
                self.state.save()
                if plan.changes or not self.state["events"]:
                    self.record_event(r)
                else:
                    self.write_textfile(r.servers, r.budget)
        # nginx may still count a restarted server's old failures against it (fail_timeout):
        # the command returns once nginx sends each new server traffic, as restart does.
        if started_ids and self.nginx_running():
            for sid in started_ids:
                if not self.nginx_routes_to(sid, 15):
                    warn("nginx does not route to %s 15 s after its start" % sid)

    def point_nginx(self, layout_servers, server_ports, balance):
        """nginx in front of the servers.  With one server it still runs: it serves the
        dashboard at /dashboard/ and forwards the rest to the server."""
        self.apply_nginx(server_ports, balance)

    def nginx_routes_to(self, sid, timeout_s):
        """True once a /health through nginx is answered by server SID."""
        deadline = time.monotonic() + timeout_s
        url = "http://127.0.0.1:%d/health" % self.port("nginx")
        while time.monotonic() < deadline:
            body = procs.http_get(url, 2)
            if body and '"server":"%s"' % sid in body:
                return True
            time.sleep(0.1)
        return False
