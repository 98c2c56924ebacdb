"""Starting processes, waiting for them to answer, and stopping them.

Two ways to hold a process: a Popen this program waits for (start, stop: the tests' and the
benchmarks' servers), or a PID kept in a file across commands (spawn, stop_pid: the lab's,
started detached in their own session and stopped after checking that the PID still belongs
to the program it was; a PID from an earlier boot is not ours)."""
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from pytools import procfs

children = {}  # pid -> Popen of the processes spawn() started (reaped when they end)


def start(argv, out, env=None):
    """Starts ARGV with stdin closed and stdout and stderr to OUT (a binary file the caller
    keeps); returns the Popen."""
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)


def stop(proc, sig=signal.SIGTERM, timeout_s=10):
    """Sends sig to a started process unless it has ended, waits for it (SIGKILL after
    timeout_s) and returns its exit status (negative: killed by that signal)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def limit_child(group="", cpus_list=()):
    """A preexec_fn for subprocess: the child joins the cgroup folder GROUP and is pinned to
    CPUS_LIST (each when given) before the program's first instruction; None when neither is."""
    if not group and not cpus_list:
        return None

    def before_exec():
        if group:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        if cpus_list:
            os.sched_setaffinity(0, cpus_list)
    return before_exec


def spawn(argv, log, env=None, group="", cpus_list=(), prefix=()):
    """Starts PREFIX + ARGV detached (its own session, stdin closed) with output appended to
    LOG; returns its PID.  Before the program's first instruction the child joins the cgroup
    folder GROUP and is pinned to CPUS_LIST, when given."""
    argv = list(prefix) + list(argv)
    out = open(log, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True,
                                preexec_fn=limit_child(group, cpus_list))
    finally:
        out.close()
    children[proc.pid] = proc
    return proc.pid


def reap(pid):
    """Collects PID's exit status when spawn() started it and it has ended."""
    proc = children.get(pid)
    if proc is not None and proc.poll() is not None:
        del children[pid]


def pid_is(pid, name):
    """True when PID is alive (a zombie is not) and its program is NAME."""
    if not pid or pid <= 0:
        return False
    reap(pid)
    comm, fields = procfs.stat_fields(pid)
    return comm is not None and comm == name[:15] and fields[0] != "Z"


def stop_pid(pid, name, timeout_s, warn=None):
    """SIGTERM, wait up to TIMEOUT_S, then SIGKILL (said through WARN).  Fine when PID is
    already gone or is no longer NAME."""
    if not pid_is(pid, name):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while pid_is(pid, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_is(pid, name):
        if warn:
            warn("%s (pid %d) did not stop in %ds; killing it" % (name, pid, timeout_s))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.2)
        reap(pid)


def wait_until(ready, timeout_s, alive=None, interval_s=0.1):
    """True once ready() is (polled every INTERVAL_S); False once alive() is not (the process
    ended) or after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def http_get(url, timeout_s=3, method="GET"):
    """The body of a 2xx answer to URL, or None."""
    try:
        request = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_http(url, timeout_s, alive=None, interval_s=0.1, try_timeout_s=1):
    """True once URL answers 2xx (each try waits TRY_TIMEOUT_S at most); False once alive() is
    not or after TIMEOUT_S (wait_until)."""
    return wait_until(lambda: http_get(url, try_timeout_s) is not None, timeout_s, alive,
                      interval_s)


def run(argv, env=None, input=None):
    """Runs ARGV to the end; returns (exit status, stdout, stderr) as text (127 when it cannot
    start)."""
    try:
        done = subprocess.run(argv, env=env, input=input, capture_output=True, text=True)
    except OSError as e:
        return 127, "", str(e)
    return done.returncode, done.stdout, done.stderr


def tail(path, lines=20):
    """The last LINES lines of the file at PATH ("" when it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
