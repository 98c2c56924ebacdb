"""The planner: from what runs and what is asked, the ordered steps to take.  Pure: no I/O.

A layout is N servers (app, app2, ...) with a connection budget split among them and an
optional CPU size.  The order of the steps is what keeps requests flowing during a change:

  1. forget servers whose process is gone (they answer nothing; their ports are free again);
  2. start the servers the new layout needs, each on a free port (one server: the app port);
  3. point nginx and Prometheus at the new set (nginx reloads gracefully);
  4. only then stop the servers that are no longer needed (they finish their requests);
  5. record the layout.

The layout also has M hot standbys of PostgreSQL (DB_REPLICAS: replica1, replica2, ...) and an
optional CPU size for each PostgreSQL instance (DB_CPUS).  plan_replicas says which standbys to
start (missing or dead) and which to retire (numbered above M); the lab starts the new ones
before the servers that read from them and retires the old ones after the servers have moved
off them (the servers' DB_READ_HOSTS is part of their settings, so a change restarts them).

A server whose settings fit the new layout is kept as it is, so asking twice changes nothing.
Only the move to one server on the app port can need that port's old occupant to go first
(a pause on that port, said so).  A refused request (validate) yields no steps at all.  Every
step is small and the state file is written after each, so a command that dies half-way leaves
a state from which the next plan() reaches the asked layout (tests/unit/test_lab_planner.py).
"""
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

MAX_SERVERS = 100
MAX_REPLICAS = 9
# BALANCE: nginx's method of choosing a server for each request (docs/lab.md, "Balancing").
BALANCES = {
    "round_robin": "",  # nginx's default: no directive
    "least_conn": "least_conn;",
    "p2c": "random two least_conn;",  # the power of two choices
}
BALANCE_DEFAULT = "round_robin"


class Refused(Exception):
    """A request the lab will not carry out; the message says why and what to do."""


@dataclass(frozen=True)
class Server:
    id: str
    port: int
    pool: int
    cpus: str = ""  # "" means no limit
    report_mode: str = "live"
    pid: int = 0
    alive: bool = True
    read_hosts: str = ""  # DB_READ_HOSTS: the replicas it reads from, "127.0.0.1:PORT,..."

    @property
    def number(self):
        return number_of(self.id)


@dataclass(frozen=True)
class Request:
    servers: int
    budget: int
    cpus: str = ""
    report_mode: str = "live"
    balance: str = BALANCE_DEFAULT
    db_replicas: int = 0
    db_cpus: str = ""  # each PostgreSQL instance's CPU size; "" means no limit
    read_hosts: str = ""  # filled in by the lab once the replicas' ports are known

    @property
    def pool(self):
        """DB_POOL_MAX of each server: what it may hold on each PostgreSQL instance."""
        return self.budget // self.servers


@dataclass(frozen=True)
class Replica:
    """A hot standby of the lab's PostgreSQL as it runs (or ran)."""
    id: str
    port: int
    pid: int = 0
    alive: bool = True
    cpus: str = ""

    @property
    def number(self):
        return replica_number(self.id)


@dataclass(frozen=True)
class ReplicaPlan:
    start: tuple  # ids to start (made first when they have no data), in order
    restart: tuple  # Replica records alive with another DB_CPUS: stopped, started again
    retire: tuple  # Replica records numbered above the count: stopped, data removed


@dataclass(frozen=True)
class Start:
    id: str
    port: int
    pool: int
    cpus: str
    report_mode: str
    read_hosts: str = ""


@dataclass(frozen=True)
class Stop:
    id: str
    port: int
    pid: int
    why: str = "old"  # "old" (after the hand-over), "dead" (gone already), "in-place" (port needed)


@dataclass(frozen=True)
class Point:
    """nginx and Prometheus now send to / scrape exactly these (id, port) pairs; nginx
    chooses among them by BALANCE."""
    servers: tuple
    layout_servers: int
    balance: str = BALANCE_DEFAULT


@dataclass(frozen=True)
class Record:
    request: Request


@dataclass(frozen=True)
class Restart:
    """Rolling restart of one server: stop it, start it again on its port, wait for nginx."""
    server: Server
    behind_nginx: bool


@dataclass
class Plan:
    steps: list = field(default_factory=list)

    @property
    def changes(self):
        return any(isinstance(s, (Start, Stop, Restart)) for s in self.steps)


def server_id(number):
    return "app" if number == 1 else "app%d" % number


def number_of(server_id):
    rest = server_id[3:]
    return int(rest) if rest.isdigit() else 1


def replica_id(number):
    return "replica%d" % number


def replica_number(replica_id):
    rest = replica_id[len("replica"):]
    return int(rest) if rest.isdigit() else 0


def parse_cpus(cpus, setting):
    """CPUS ("" or a number of CPUs, at least 0.01) checked; SETTING names it in the refusal."""
    cpus = cpus or ""
    if cpus:
        try:
            ok = re.fullmatch(r"[0-9]*\.?[0-9]+", cpus) and Decimal(cpus) >= Decimal("0.01")
        except InvalidOperation:
            ok = False
        if not ok:
            raise Refused("%s must be a number of CPUs such as 0.5 or 1 (at least 0.01), got '%s'" % (setting, cpus))
    return cpus


def parse_request(servers, budget, cpus, report_mode="live", balance=BALANCE_DEFAULT, db_replicas=0, db_cpus=""):
    """Checks the user's settings (strings from the environment); returns a Request."""
    if not re.fullmatch(r"[0-9]{1,3}", str(servers)) or not 1 <= int(servers) <= MAX_SERVERS:
        raise Refused("SERVERS must be a whole number from 1 to %d, got '%s'" % (MAX_SERVERS, servers))
    if not re.fullmatch(r"[0-9]{1,6}", str(budget)) or int(budget) < 1:
        raise Refused("DB_BUDGET must be a whole number of at least 1, got '%s'" % budget)
    cpus = parse_cpus(cpus, "SERVER_CPUS")
    if not re.fullmatch(r"[0-9]{1,2}", str(db_replicas)) or int(db_replicas) > MAX_REPLICAS:
        raise Refused("DB_REPLICAS must be a whole number from 0 to %d, got '%s'" % (MAX_REPLICAS, db_replicas))
    db_cpus = parse_cpus(db_cpus, "DB_CPUS")
    if report_mode not in ("live", "rollup"):
        raise Refused("REPORT_MODE must be live or rollup, got '%s'" % report_mode)
    if balance not in BALANCES:
        raise Refused("BALANCE must be %s, got '%s'" % ("|".join(BALANCES), balance))
    return Request(int(servers), int(budget), cpus, report_mode, balance, int(db_replicas), db_cpus)


def instance_limits(request, primary_limit, replica_limits=None):
    """{instance: connection limit} for REQUEST's instances: the primary's PRIMARY_LIMIT, and each
    replica's from REPLICA_LIMITS (id -> limit) or, for one not running yet, the primary's (a
    standby starts from the primary's settings and may not have fewer connections)."""
    limits = {"primary": primary_limit}
    for i in range(1, request.db_replicas + 1):
        limits[replica_id(i)] = (replica_limits or {}).get(replica_id(i), primary_limit)
    return limits


def validate(request, db_limit):
    """Refuses a layout the database cannot carry.  DB_LIMIT: max_connections minus reserved,
    of the primary (a number) or of each instance ({"primary": N, "replica1": N, ...}): every
    server holds up to DB_POOL_MAX connections on each instance, so each must fit them all."""
    n, budget = request.servers, request.budget
    if budget < n:
        raise Refused("refused: a budget of %d database connections cannot give each of %d servers "
                      "a connection; raise DB_BUDGET (at least %d) or use fewer servers. The running "
                      "layout is unchanged." % (budget, n, n))
    limits = db_limit if isinstance(db_limit, dict) else {"primary": db_limit}
    for instance, limit in limits.items():
        if n * request.pool > limit:
            where = "PostgreSQL" if instance == "primary" else "%s (a hot standby of PostgreSQL)" % instance
            raise Refused("refused: %d servers x DB_POOL_MAX=%d = %d connections, more than %s "
                          "allows (%d: max_connections minus reserved slots). Lower DB_BUDGET or raise "
                          "max_connections. The running layout is unchanged."
                          % (n, request.pool, n * request.pool, where, limit))


def plan_replicas(running, count, cpus=""):
    """The standbys to start, restart and retire to go from RUNNING (Replica records, alive or
    not) to COUNT standbys of CPU size CPUS.  Pure."""
    alive = {r.id: r for r in running if r.alive and r.number <= count}
    start = tuple(replica_id(i) for i in range(1, count + 1) if replica_id(i) not in alive)
    restart = tuple(r for r in sorted(alive.values(), key=lambda r: r.number) if r.cpus != cpus)
    retire = tuple(r for r in sorted(running, key=lambda r: r.number) if r.number > count)
    return ReplicaPlan(start, restart, retire)


def fits(server, request, app_port):
    return (server.alive and server.pool == request.pool and server.cpus == request.cpus
            and server.report_mode == request.report_mode and server.read_hosts == request.read_hosts
            and server.number <= request.servers
            and ((request.servers == 1 and server.port == app_port)
                 or (request.servers > 1 and server.port != app_port)))


def plan(running, request, app_port, busy=(), reserved=()):
    """The steps from RUNNING (Server records, alive or not) to REQUEST.  APP_PORT: the
    single-server port; BUSY: ports something else listens on; RESERVED: the lab's other
    ports.  Scaled servers take the free ports above the app port."""
    steps = []
    keep, old = [], []
    kept_ids = set()
    for s in sorted(running, key=lambda s: (s.number, s.port)):
        if not s.alive:
            steps.append(Stop(s.id, s.port, s.pid, "dead"))
        elif fits(s, request, app_port) and s.id not in kept_ids:
            keep.append(s)
            kept_ids.add(s.id)
        else:
            old.append(s)
    wanted = [server_id(i) for i in range(1, request.servers + 1) if server_id(i) not in kept_ids]
    used = {s.port for s in keep} | {s.port for s in old}
    taken = set(busy) | set(reserved) | {app_port}
    started = []
    for want in wanted:
        if request.servers == 1:
            port = app_port
            for s in old:
                if s.port == app_port:
                    steps.append(Stop(s.id, s.port, s.pid, "in-place"))
            old = [s for s in old if s.port != app_port]
        else:
            port = app_port + 1
            while port in taken or port in used:
                port += 1
        used.add(port)
        steps.append(Start(want, port, request.pool, request.cpus, request.report_mode, request.read_hosts))
        started.append((want, port))
    final = sorted([(s.id, s.port) for s in keep] + started, key=lambda e: number_of(e[0]))
    steps.append(Point(tuple(final), request.servers, request.balance))
    for s in old:
        steps.append(Stop(s.id, s.port, s.pid, "old"))
    steps.append(Record(request))
    return Plan(steps)


def plan_restart(running, layout_servers, nginx_up):
    """A rolling restart: each live server in turn (by number), dead ones started again too."""
    behind = layout_servers > 1 and nginx_up
    return Plan([Restart(s, behind) for s in sorted(running, key=lambda s: (s.number, s.port))])


def layout_name(servers, cpus):
    """1-server, 2-servers, 2-servers-0.5cpu: the name of a layout."""
    name = "%d-server%s" % (servers, "s" if servers > 1 else "")
    return name + ("-%scpu" % cpus if cpus else "")


def result_name(servers, cpus, mix, balance=BALANCE_DEFAULT, report_mode="live", kind="run"):
    """The name of a result: every setting that changes its outcome, so that no two kinds of
    run share one.  The layout, the mix, the balancing method when nginx has a choice (two
    servers or more), "rollup" for that report mode, and the kind: 2-servers-0.25cpu-browse,
    2-servers-scenario-least_conn-ceiling, 1-server-scenario-rollup."""
    name = "%s-%s" % (layout_name(servers, cpus), mix)
    if servers > 1:
        name += "-" + balance
    if report_mode != "live":
        name += "-" + report_mode
    if kind != "run":
        name += "-" + kind
    return name


def simulate(running, steps):
    """What the steps leave (for the tests and for the lab's own check): the server records
    and the set nginx points at.  A Start adds a live record; a Stop removes it."""
    servers = list(running)
    pointed = None
    for step in steps:
        if isinstance(step, Start):
            servers.append(Server(step.id, step.port, step.pool, step.cpus, step.report_mode, pid=-1,
                                  read_hosts=step.read_hosts))
        elif isinstance(step, Stop):
            servers = [s for s in servers if not (s.id == step.id and s.port == step.port)]
        elif isinstance(step, Point):
            pointed = step.servers
    return servers, pointed
