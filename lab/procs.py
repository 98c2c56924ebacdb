"""Starting and stopping the lab's processes, and waiting for them.  Every process is started
detached (its own session, stdin closed, output to its log) and stopped by PID, after checking
that the PID still belongs to the program it was (a PID from an earlier boot is not ours)."""
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

children = {}  # pid -> Popen of the processes this command started (reaped when they end)


def say(text):
    print("lab: " + text, flush=True)


def warn(text):
    print("lab: warning: " + text, file=sys.stderr, flush=True)


def die(text):
    sys.stdout.flush()
    print("lab: " + text, file=sys.stderr, flush=True)
    raise SystemExit(1)


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...], or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (OSError, ValueError):
        return None, None
    comm = text[text.index("(") + 1: text.rindex(")")]
    return comm, text[text.rindex(")") + 2:].split()


def reap(pid):
    proc = children.get(pid)
    if proc is not None and proc.poll() is not None:
        del children[pid]


def pid_is(pid, name):
    """True when PID is alive (a zombie is not) and its program is NAME."""
    if not pid or pid <= 0:
        return False
    reap(pid)
    comm, fields = stat_fields(pid)
    return comm is not None and comm == name[:15] and fields[0] != "Z"


def alive(pid):
    comm, fields = stat_fields(pid) if pid and pid > 0 else (None, None)
    return comm is not None and fields[0] != "Z"


def child_pids(pid):
    """The PIDs whose parent is PID."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            _, fields = stat_fields(int(entry))
            if fields and fields[1] == str(pid):
                out.append(int(entry))
    return out


def stop_pid(pid, name, timeout_s):
    """SIGTERM, wait up to TIMEOUT_S, then SIGKILL.  Fine when PID is already gone."""
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
        warn("%s (pid %d) did not stop in %ds; killing it" % (name, pid, timeout_s))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.2)
        reap(pid)


def spawn(argv, log, env=None, limit=None):
    """Starts ARGV detached with output appended to LOG; returns its PID.  LIMIT (a
    cgroups.CpuLimit) applies before the program's first instruction: the child joins the
    cgroup or is pinned in between fork and exec; a systemd scope wraps the command."""
    group = limit.group if limit else ""
    cpus_list = limit.cpus_list if limit else ()
    if limit and limit.prefix:
        argv = list(limit.prefix) + list(argv)

    def before_exec():
        if group:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        if cpus_list:
            os.sched_setaffinity(0, cpus_list)

    out = open(log, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True,
                                preexec_fn=before_exec if (group or cpus_list) else None)
    finally:
        out.close()
    children[proc.pid] = proc
    return proc.pid


def http_get(url, timeout_s=3, method="GET"):
    """The body of a 2xx answer to URL, or None."""
    try:
        request = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_http(url, timeout_s, pid=None):
    """True once URL answers 2xx; False after TIMEOUT_S or once PID has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_get(url, 1) is not None:
            return True
        if pid:
            reap(pid)
        if pid and not alive(pid):
            return False
        time.sleep(0.1)
    return False


def run(argv, env=None, check=False, input=None):
    """Runs ARGV to the end; returns (exit status, stdout, stderr) as text."""
    try:
        done = subprocess.run(argv, env=env, input=input, capture_output=True, text=True)
    except OSError as e:
        return 127, "", str(e)
    return done.returncode, done.stdout, done.stderr


def cpu_ticks(pids):
    """User + system CPU of the processes and their reaped children, in clock ticks."""
    total = 0
    for pid in pids:
        _, fields = stat_fields(pid) if pid else (None, None)
        if fields:
            # After "(comm) ": state is field 0; utime, stime, cutime, cstime are 11 to 14.
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
