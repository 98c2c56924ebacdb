"""stack.py: the parts every section runs: a throwaway PostgreSQL (Cluster), catalog-servers
(Server), catalog-loadtest (load), pgbench, and one load run with its CPU before and after
(stack_run), several rounds of it combined (combine), nginx in front of servers."""
import json
import os
import re
import statistics
import subprocess
import urllib.request

from settings import BUILD, CONNECTIONS, DURATION_S, PGBENCH, POOL, PRODUCTS, REPO_ROOT, TRANSPORT
import harness  # noqa: E402 (tests/integration/common, on sys.path through settings)
from pytools import procfs, procs  # noqa: E402
from pytools.pg import psql  # noqa: E402
from pytools.ports import free_port  # noqa: E402


class Cluster:
    """A throwaway PostgreSQL (scripts/pg.sh, PG_FAST=1) in folder/pg."""

    def __init__(self, folder):
        self.folder = os.path.join(folder, "pg")
        proc = subprocess.run([os.path.join(REPO_ROOT, "scripts", "pg.sh"), "start", self.folder],
                              env=dict(os.environ, PG_FAST="1"), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/pg.sh start failed: {proc.stderr.strip()}")
        out = proc.stdout
        self.env = dict(re.findall(r"export (\w+)=(\S+)", out))
        self.env["DB_NAME"] = "catalogdb"
        self.tcp_env = dict(self.env)
        # The cluster's Unix-domain socket is in its folder (scripts/pg.sh); libpq takes a
        # directory as the host.  pgbench and psql read PGHOST, the servers DB_HOST: one
        # transport for both sides of every comparison.
        self.unix_env = dict(self.env, PGHOST=self.folder, DB_HOST=self.folder)
        if TRANSPORT == "unix":
            self.env = self.unix_env

    def psql(self, sql):
        return psql(sql, db="catalogdb", env=dict(os.environ, **self.env), timeout=None)

    def cpu_seconds(self):
        """CPU seconds (user + system) of the whole cluster so far: the postmaster with the
        children it has reaped (cutime, cstime) and every live child (backends, walwriter...),
        from /proc."""
        with open(os.path.join(self.folder, "data", "postmaster.pid"), encoding="ascii") as f:
            postmaster = int(f.readline())
        return procfs.tree_cpu_s(postmaster)

    def stop(self):
        subprocess.run([os.path.join(REPO_ROOT, "scripts", "pg.sh"), "stop", self.folder],
                       capture_output=True)


class Server:
    """One catalog-server on a free loopback port; cpus: a taskset CPU list or None."""

    def __init__(self, cluster, folder, name, cpus=None, build=None, db_env=None, wrapper=(),
                 **settings):
        self.port = free_port()
        env = dict(os.environ, **(db_env or cluster.env))
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "ACCESS_LOG": "0",
                    "DB_POOL_MAX": str(POOL), "SERVER_ID": name})
        env.update({k: str(v) for k, v in settings.items()})
        command = list(wrapper) + [os.path.join(build or BUILD, "catalog-server")]
        if cpus is not None:
            command = ["taskset", "-c", cpus] + command
        self.log = open(os.path.join(folder, f"server-{name}-{self.port}.log"), "wb")
        self.proc = procs.start(command, self.log, env=env)
        if not procs.wait_http(f"http://127.0.0.1:{self.port}/health", 60 if wrapper else 10,
                               alive=lambda: self.proc.poll() is None, interval_s=0.05,
                               try_timeout_s=2):
            raise RuntimeError(f"catalog-server {name} did not start (see {self.log.name})")

    @property
    def pid(self):
        return self.proc.pid

    def metrics(self):
        """{metric line name with labels: value} from GET /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def cpu_seconds(self):
        return self.metrics()["process_cpu_seconds_total"]

    def cpu_split(self):
        """(user, system) CPU seconds of the server process so far, from /proc/PID/stat."""
        return procfs.cpu_split_s([self.pid])

    def stop(self):
        procs.stop(self.proc, timeout_s=15)
        self.log.close()


def load(folder, port, paths, label, connections=CONNECTIONS, duration_s=DURATION_S):
    """catalog-loadtest against 127.0.0.1:port cycling through paths.  Returns its JSON."""
    out = os.path.join(folder, "load-" + re.sub(r"[^A-Za-z0-9=._-]+", "_", label) + ".json")
    command = [os.path.join(BUILD, "catalog-loadtest"), "-c", str(connections),
               "-d", f"{duration_s}s", "--json", out, "--label", label]
    for path in paths:
        command += ["--path", path]
    command.append(f"http://127.0.0.1:{port}/")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    if not os.path.exists(out):
        raise RuntimeError(f"catalog-loadtest {label} failed: {proc.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def pgbench(cluster, script, clients=POOL, duration_s=DURATION_S, cpu=None):
    """pgbench -M prepared with script; returns (transactions/s, failed transactions).  With a
    list as cpu, appends (PostgreSQL CPU seconds over the run, transactions) to it."""
    cpu_before = cluster.cpu_seconds()
    proc = subprocess.run(
        [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(duration_s),
         "-D", "category=electronics", "-D", f"products={PRODUCTS}", "-f", script, "catalogdb"],
        env=dict(os.environ, **cluster.env), capture_output=True, text=True,
        timeout=duration_s + 60)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"pgbench {script} failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    failed = re.search(r"number of failed transactions: (\d+)", proc.stdout)
    if cpu is not None:
        done = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
        cpu.append((cluster.cpu_seconds() - cpu_before, int(done.group(1)) if done else 0))
    return float(match.group(1)), int(failed.group(1)) if failed else 0


def failure_kinds(result):
    return {"5xx": result.get("status_5xx", 0), "timeouts": result.get("timeouts", 0),
            "errors": result.get("errors", 0)}


def stack_run(server, folder, paths, label, cluster=None, **kwargs):
    """A load run against server with its CPU seconds before and after (and the cluster's, when
    given).  Returns a dict with rps, failures, requests, p50/p99 and cpu_ms_per_request."""
    cpu_before, split_before = server.cpu_seconds(), server.cpu_split()
    pg_before = cluster.cpu_seconds() if cluster else 0.0
    result = load(folder, server.port, paths, label, **kwargs)
    cpu_after, split_after = server.cpu_seconds(), server.cpu_split()
    pg_after = cluster.cpu_seconds() if cluster else 0.0
    requests = result["requests"]
    return {
        "pg_cpu_s": pg_after - pg_before,
        "label": label, "rps": result["rps"], "requests": requests,
        "cpu_s": cpu_after - cpu_before,
        "cpu_user_s": split_after[0] - split_before[0],
        "cpu_sys_s": split_after[1] - split_before[1],
        "failures": result["failures"], "p50": result["latency_ms"]["p50"],
        "kinds": failure_kinds(result),
        "p99": result["latency_ms"]["p99"],
        "cpu_ms_per_request": (cpu_after - cpu_before) * 1000 / requests if requests else None,
    }


def nginx_in_front(folder, ports):
    """harness.nginx_in_front (tests/integration/common/harness.py) in folder/nginx.  Returns
    (process, port)."""
    return harness.nginx_in_front(os.path.join(folder, "nginx"), ports)


def combine(runs):
    """Several rounds of the same run: the median rate, summed failures and requests, the worst
    p99, and CPU per request over all of them."""
    requests = sum(r["requests"] for r in runs)
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "rps_all": [r["rps"] for r in runs],
        "requests": requests,
        "failures": sum(r["failures"] for r in runs),
        "kinds": {k: sum(r["kinds"].get(k, 0) for r in runs) for k in ("5xx", "timeouts", "errors")},
        "p99": max(r["p99"] for r in runs),
        "cpu_ms_per_request": sum(r["cpu_s"] for r in runs) * 1000 / max(1, requests),
        "user_ms_per_request": sum(r.get("cpu_user_s", 0) for r in runs) * 1000 / max(1, requests),
        "sys_ms_per_request": sum(r.get("cpu_sys_s", 0) for r in runs) * 1000 / max(1, requests),
        "pg_ms_per_request": sum(r.get("pg_cpu_s", 0) for r in runs) * 1000 / max(1, requests),
        # cores used over the runs (each DURATION_S long): PostgreSQL's processes, the server
        "cores": (sum(r.get("pg_cpu_s", 0) for r in runs) / (len(runs) * DURATION_S),
                  sum(r["cpu_s"] for r in runs) / (len(runs) * DURATION_S)),
        "share": runs[-1].get("share", {}),
    }
