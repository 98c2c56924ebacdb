"""How SERVER_CPUS is enforced for one server: the first of these that works on this machine.

  1. cgroup v2: a group with cpu.max under a subtree the lab may write (as root, under
     /sys/fs/cgroup; as a user, a delegated subtree given with LAB_CGROUP);
  2. systemd: as a user on cgroup v2 whose systemd has the cpu controller delegated,
     `systemd-run --user --scope -p CPUQuota=...` (systemd writes the same cpu.max);
  3. cgroup v1: a group of the `cpu` controller with cpu.cfs_quota_us / cpu.cfs_period_us;
  4. otherwise no quota at all: the server is pinned to whole CPUs (sched_setaffinity), and
     the lab says so and what that changes.

choose() only reads and writes files under the paths it is given, so the tests run it against
fake trees (a temporary folder laid out like /sys/fs/cgroup).  The server's own WORKERS default
reads cpu.max (v2) or cpu.cfs_quota_us (v1) of its group the same way: the lab also sets
WORKERS to the quota rounded up, so both agree.
"""
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal

PERIOD_US = 100000
CGROUP_FS = "/sys/fs/cgroup"


@dataclass
class CpuLimit:
    mechanism: str  # "none", "cgroup v2", "systemd", "cgroup v1", "pinning"
    detail: str = ""  # e.g. "cpu.max 25000 100000 in /sys/fs/cgroup/catalog/app"
    group: str = ""  # the cgroup folder the server joins (cgroup v2 and v1)
    cpus_list: tuple = ()  # CPUs the server is pinned to (pinning)
    prefix: list = field(default_factory=list)  # command prefix (systemd)
    workers: int = 0  # WORKERS for the server (0: its own default)
    warning: str = ""  # said before the start when no quota could be set

    def short(self):
        """For `make status`: cgroup-v2 / systemd / cgroup-v1 / pinned:0 / -."""
        if self.mechanism == "pinning":
            return "pinned:" + ",".join(str(c) for c in self.cpus_list)
        return {"none": "-", "cgroup v2": "cgroup-v2", "cgroup v1": "cgroup-v1"}.get(
            self.mechanism, self.mechanism)


def quota_us(cpus):
    return int(Decimal(cpus) * PERIOD_US)


def whole_cpus(cpus):
    return max(1, math.ceil(Decimal(cpus)))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def default_group(cgroup_fs=CGROUP_FS, uid=None):
    """LAB_CGROUP's default: the lab's group on the hierarchy this machine has."""
    uid = os.getuid() if uid is None else uid
    if os.path.exists(os.path.join(cgroup_fs, "cgroup.controllers")):
        return os.path.join(cgroup_fs, "catalog") if uid == 0 else ""
    return os.path.join(cgroup_fs, "cpu", "catalog")


def hierarchy_of(group):
    """'v2', 'v1' or '' for the hierarchy GROUP's parent belongs to."""
    parent = os.path.dirname(group.rstrip("/"))
    if os.path.exists(os.path.join(parent, "cgroup.controllers")):
        return "v2"
    if os.path.exists(os.path.join(parent, "cpu.cfs_quota_us")):
        return "v1"
    return ""


def setup_v2(group, server_id, cpus):
    """Creates GROUP/SERVER_ID with cpu.max; returns its folder.  OSError when not allowed."""
    parent = os.path.dirname(group.rstrip("/"))
    if "cpu" not in read(os.path.join(parent, "cgroup.controllers")).split():
        raise OSError("the cpu controller is not available in %s" % parent)
    if "cpu" not in read(os.path.join(parent, "cgroup.subtree_control")).split():
        write(os.path.join(parent, "cgroup.subtree_control"), "+cpu")
    os.makedirs(group, exist_ok=True)
    if "cpu" not in read(os.path.join(group, "cgroup.subtree_control")).split():
        write(os.path.join(group, "cgroup.subtree_control"), "+cpu")
    leaf = os.path.join(group, server_id)
    os.makedirs(leaf, exist_ok=True)
    write(os.path.join(leaf, "cpu.max"), "%d %d" % (quota_us(cpus), PERIOD_US))
    return leaf


def setup_v1(group, server_id, cpus):
    leaf = os.path.join(group, server_id)
    os.makedirs(leaf, exist_ok=True)
    write(os.path.join(leaf, "cpu.cfs_period_us"), str(PERIOD_US))
    write(os.path.join(leaf, "cpu.cfs_quota_us"), str(quota_us(cpus)))
    return leaf


def user_service_group(self_cgroup, uid):
    """The cgroup path of the user's systemd (user@UID.service) from /proc/self/cgroup text."""
    for line in self_cgroup.splitlines():
        if line.startswith("0::"):
            parts = line[3:].strip().split("/")
            name = "user@%d.service" % uid
            if name in parts:
                return "/".join(parts[: parts.index(name) + 1])
    return ""


def standard_service_group(cgroup_fs, uid):
    """systemd's own place for user@UID.service when it exists there: where a login's
    processes sit in a session scope beside the user manager (ssh, a text console), not
    under it, /proc/self/cgroup does not name it."""
    path = "/user.slice/user-%d.slice/user@%d.service" % (uid, uid)
    return path if os.path.isdir(os.path.join(cgroup_fs, path.lstrip("/"))) else ""


def systemd_probe():
    """True when `systemd-run --user --scope -p CPUQuota=` works for this user."""
    program = shutil.which("systemd-run")
    if not program:
        return False
    try:
        done = subprocess.run([program, "--user", "--scope", "--quiet", "--collect",
                               "-p", "CPUQuota=50%", "true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose(cpus, server_id, group, *, uid=None, cgroup_fs=CGROUP_FS, self_cgroup=None,
           probe=systemd_probe, cores=None, number=1, unit=""):
    """The CpuLimit for server SERVER_ID (the NUMBER-th) with SERVER_CPUS=CPUS.  GROUP: the
    lab's cgroup folder (LAB_CGROUP; empty: none to try directly).  UNIT: a name for the
    systemd scope."""
    if not cpus:
        return CpuLimit("none")
    uid = os.getuid() if uid is None else uid
    workers = whole_cpus(cpus)
    why = []
    kind = hierarchy_of(group) if group else ""
    if kind == "v2":
        try:
            leaf = setup_v2(group, server_id, cpus)
            return CpuLimit("cgroup v2", "cpu.max %d %d in %s" % (quota_us(cpus), PERIOD_US, leaf),
                            group=leaf, workers=workers)
        except OSError as e:
            why.append("cgroup v2 at %s is not writable here (%s)" % (group, e.strerror or e))
    unified = os.path.exists(os.path.join(cgroup_fs, "cgroup.controllers"))
    if unified and uid != 0:
        if self_cgroup is None:
            self_cgroup = read("/proc/self/cgroup")
        service = user_service_group(self_cgroup, uid) or standard_service_group(cgroup_fs, uid)
        controllers = read(os.path.join(cgroup_fs, service.lstrip("/"), "cgroup.controllers")).split() if service else []
        if "cpu" in controllers and probe():
            percent = Decimal(cpus) * 100
            prefix = ["systemd-run", "--user", "--scope", "--quiet", "--collect",
                      "-p", "CPUQuota=%s%%" % format(percent.normalize(), "f")]
            if unit:
                prefix += ["--unit", unit]
            return CpuLimit("systemd", "systemd-run --user --scope -p CPUQuota=%s%% (cpu.max %d %d)"
                            % (format(percent.normalize(), "f"), quota_us(cpus), PERIOD_US),
                            prefix=prefix + ["--"], workers=workers)
        if not service:
            why.append("cgroup v2, and this account has no systemd user instance to delegate the cpu controller")
        elif "cpu" not in controllers:
            why.append("cgroup v2, and your systemd user instance has no cpu controller delegated")
        else:
            why.append("cgroup v2, and systemd-run --user --scope -p CPUQuota= does not work here")
    if kind == "v1":
        try:
            leaf = setup_v1(group, server_id, cpus)
            return CpuLimit("cgroup v1", "cpu.cfs_quota_us %d / cpu.cfs_period_us %d in %s"
                            % (quota_us(cpus), PERIOD_US, leaf), group=leaf, workers=workers)
        except OSError as e:
            why.append("the cgroup v1 cpu controller at %s is not writable (%s)" % (group, e.strerror or e))
    if not kind and group:
        why.append("no cgroup cpu controller at %s" % os.path.dirname(group.rstrip("/")))
    if not why:
        why.append("no writable cgroup cpu controller")
    if cores is None:
        cores = sorted(os.sched_getaffinity(0))
    count = min(workers, len(cores))
    first = (number - 1) % len(cores)
    chosen = tuple(cores[(first + i) % len(cores)] for i in range(count))
    listed = ",".join(str(c) for c in chosen)
    warning = ("no CPU quota can be set on this machine (%s); pinning %s to CPU %s instead: "
               "a whole core each, not %s CPU, so each server can use up to %d core(s): the "
               "one-server runs come out faster and the gain from a second server smaller "
               "than with a quota (docs/lab.md)" % ("; ".join(why), server_id, listed, cpus, count))
    return CpuLimit("pinning", "pinned to CPU %s (sched_setaffinity): no quota" % listed,
                    cpus_list=chosen, workers=count, warning=warning)


def remove_group(group, server_id=None):
    """Removes GROUP/SERVER_ID (or GROUP) when no process is left in it.  Never fails."""
    path = os.path.join(group, server_id) if server_id else group
    if not os.path.isdir(path):
        return
    if server_id and read(os.path.join(path, "cgroup.procs")).strip():
        return
    try:
        os.rmdir(path)
    except OSError:
        pass
