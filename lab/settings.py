"""What the environment asks of the lab: folders, ports, programs (docs/lab.md lists them)."""
import hashlib
import os
import shutil
import stat

from lab import cgroups

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debian puts nginx (and other daemons) in /usr/sbin, which a normal account's PATH lacks.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
BUDGET_DEFAULT = 10


def find_program(name):
    """The path of NAME on PATH or in the sbin folders; NAME itself when it is nowhere."""
    path = os.environ.get("PATH", os.defpath) + ":" + ":".join(SBIN)
    return shutil.which(name, path=path) or name


def env_int(name, default):
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SystemExit("lab: %s must be a TCP port (1-65535), got '%s'" % (name, value))
    return int(value)


def others_can_enter(path):
    """True when every folder from / down to PATH (or its nearest existing parent) lets other
    users through (o+x): the postgres user reaches PATH only then."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def default_pg_dir(lab_dir):
    """LAB_DIR/pg, except for root when a folder above LAB_DIR is closed to other users (a clone
    in /root, mode 0700 on Debian): PostgreSQL runs as the postgres user, which could not reach
    it, so the cluster lives in /var/lib/catalog-lab/<a hash of LAB_DIR> instead."""
    if os.geteuid() != 0 or others_can_enter(lab_dir):
        return os.path.join(lab_dir, "pg")
    digest = hashlib.sha256(os.path.abspath(lab_dir).encode()).hexdigest()[:12]
    return os.path.join("/var/lib/catalog-lab", digest)


class Settings:
    def __init__(self):
        e = os.environ
        self.repo = REPO
        self.lab_dir = e.get("LAB_DIR") or os.path.join(REPO, "var")
        self.build = e.get("CATALOG_BUILD") or os.path.join(REPO, "build")
        self.bind = e.get("LAB_BIND") or "127.0.0.1"
        self.db_name = e.get("DB_NAME") or "catalogdb"
        # Each port: (setting, default).  A busy one is replaced by the next free one, said so.
        self.port_settings = {
            "app": ("LAB_APP_PORT", 3000),
            "nginx": ("LAB_LB_PORT", 8080),
            "prometheus": ("LAB_PROM_PORT", 9090),
            "postgres": ("LAB_PG_PORT", 5432),
            "replica": ("LAB_REPLICA_PORT", 5433),  # replica i on LAB_REPLICA_PORT + i - 1
            "grafana": ("LAB_GRAFANA_PORT", 3002),
            "postgres-exporter": ("LAB_PG_EXPORTER_PORT", 9187),
            "process-exporter": ("LAB_PROCESS_EXPORTER_PORT", 9256),
            "node-exporter": ("LAB_NODE_EXPORTER_PORT", 9100),
        }
        self.ports = {k: env_int(name, d) for k, (name, d) in self.port_settings.items()}
        self.cgroup = e["LAB_CGROUP"] if "LAB_CGROUP" in e else cgroups.default_group()
        self.dashboard_dir = e.get("LAB_DASHBOARD_DIR") or os.path.join(self.build, "dashboard")
        self.nginx_workers = e.get("LAB_NGINX_WORKERS") or "auto"
        run = self.run = os.path.join(self.lab_dir, "run")
        self.logs = os.path.join(self.lab_dir, "log")
        self.results = os.path.join(self.lab_dir, "results")
        self.pg_dir = e.get("LAB_PG_DIR") or default_pg_dir(self.lab_dir)
        self.prom_data = os.path.join(self.lab_dir, "prometheus")
        self.state_file = os.path.join(run, "state.json")
        self.lock_file = os.path.join(run, "lock")
        self.nginx_prefix = os.path.join(run, "nginx")
        self.nginx_conf = os.path.join(self.nginx_prefix, "nginx.conf")
        self.nginx_pid_file = os.path.join(self.nginx_prefix, "nginx.pid")
        self.prom_conf = os.path.join(run, "prometheus.yml")
        self.textfile_dir = os.path.join(run, "textfile")
        self.events_json = os.path.join(run, "events.json")
        self.process_exporter_conf = os.path.join(run, "process-exporter.yml")

    def program(self, name):
        return find_program(name)

    def binary(self, name):
        return os.path.join(self.build, name)

    def setting_of(self, component):
        return self.port_settings[component][0]

    def mkdirs(self):
        for d in (self.run, self.logs, self.results, os.path.join(self.nginx_prefix, "logs"),
                  self.textfile_dir):
            os.makedirs(d, exist_ok=True)
