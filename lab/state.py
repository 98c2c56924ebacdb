"""The lab's one state file, LAB_DIR/run/state.json, and the lock around commands.

  {"layout": {"servers": 2, "budget": 10, "cpus": "0.25", "report_mode": "live"} | null,
   "servers": [{"id": "app", "port": 3001, "pool": 5, "cpus": "0.25", "report_mode": "live",
                "pid": 1234, "limit": "cgroup v2", "limit_detail": "cpu.max 25000 100000 in ...",
                "group": "/sys/fs/cgroup/catalog/app"}, ...],
   "ports": {"app": 3000, "nginx": 8080, "prometheus": 9090, "postgres": 5432, ...},
   "pids": {"prometheus": 4321, "postgres-exporter": 4400, ...},
   "exporter_pgport": {"postgres-exporter": 5432, ...},
   "events": [{"time": 1700000000, "servers": 1, "budget": 10, "cpus": ""}, ...],
   "replicas": [{"id": "replica1", "port": 5433, "pid": 2345, "cpus": "0.5", "limit": "cgroup v2",
                 "limit_short": "cgroup-v2", "limit_detail": "cpu.max ..."}, ...],
   "db_limit": {"cpus": "0.5", "limit": "cgroup v2", "limit_short": "...", "limit_detail": "..."}}
  (layout also has "db_replicas" and "db_cpus"; each server record "read_hosts")

Written whole to a temporary file and renamed over the old one after every step, so a reader
(make status, a test, a second command after a crash) always sees a complete state.
"""
import fcntl
import json
import os

from lab.errors import Failed

EMPTY = {"layout": None, "servers": [], "ports": {}, "pids": {}, "exporter_pgport": {},
         "events": [], "replicas": [], "db_limit": {}}


class State:
    def __init__(self, path):
        self.path = path
        self.data = json.loads(json.dumps(EMPTY))
        try:
            with open(path) as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                self.data.update(loaded)
        except (OSError, ValueError):
            pass

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value

    def save(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)

    # ---- servers ----
    def add_server(self, record):
        self.data["servers"] = [s for s in self.data["servers"] if s["port"] != record["port"]]
        self.data["servers"].append(record)
        self.save()

    def remove_server(self, port):
        self.data["servers"] = [s for s in self.data["servers"] if s["port"] != port]
        self.save()

    def server_on(self, port):
        for s in self.data["servers"]:
            if s["port"] == port:
                return s
        return None


class Lock:
    """flock on LAB_DIR/run/lock for the duration of a command that changes the lab."""

    held = {}  # path -> [fd, depth]: a command that runs another (demo: up, scale) holds it once

    def __init__(self, path, timeout_s=120):
        self.path, self.timeout_s = path, timeout_s
        self.fd = None

    def __enter__(self):
        import time
        if self.path in Lock.held:
            Lock.held[self.path][1] += 1
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                Lock.held[self.path] = [self.fd, 1]
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failed("another lab command holds %s" % self.path)
                time.sleep(0.2)

    def __exit__(self, *exc):
        entry = Lock.held[self.path]
        entry[1] -= 1
        if entry[1] == 0:
            del Lock.held[self.path]
            os.close(entry[0])
        return False
