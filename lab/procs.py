"""The lab's processes: what it says (say, warn, die) and its layer over pytools (the toolkit
the tests and benchmarks share): every process is started detached (its own session, stdin
closed, output to its log) and stopped by PID, after checking that the PID still belongs to
the program it was (a PID from an earlier boot is not ours)."""
import sys

from pytools import procs as _procs
from pytools.procfs import alive, child_pids, cpu_ticks, stat_fields  # noqa: F401 (the lab's names)
from pytools.procs import children, http_get, pid_is, reap, run, tail  # noqa: F401 (the lab's names)


def say(text):
    print("lab: " + text, flush=True)


def warn(text):
    print("lab: warning: " + text, file=sys.stderr, flush=True)


def die(text):
    sys.stdout.flush()
    print("lab: " + text, file=sys.stderr, flush=True)
    raise SystemExit(1)


def stop_pid(pid, name, timeout_s):
    """SIGTERM, wait up to TIMEOUT_S, then SIGKILL (with a warning).  Fine when PID is already
    gone."""
    _procs.stop_pid(pid, name, timeout_s, warn=warn)


def spawn(argv, log, env=None, limit=None):
    """Starts ARGV detached with output appended to LOG; returns its PID.  LIMIT (a
    cgroups.CpuLimit) applies before the program's first instruction: the child joins the
    cgroup or is pinned in between fork and exec; a systemd scope wraps the command."""
    if not limit:
        return _procs.spawn(argv, log, env=env)
    return _procs.spawn(argv, log, env=env, group=limit.group, cpus_list=limit.cpus_list,
                        prefix=limit.prefix or ())


def wait_http(url, timeout_s, pid=None):
    """True once URL answers 2xx; False after TIMEOUT_S or once PID has ended."""
    def running():
        reap(pid)
        return alive(pid)
    return _procs.wait_http(url, timeout_s, alive=running if pid else None)
