"""Where the CPU went during a run (the API servers, PostgreSQL, nginx, the load generator),
measured from /proc, and which part was the limit.  meter_run runs a program and measures;
limit_of and split_text are pure functions of what it measured."""
import os
import re
import subprocess
import sys
import time

from lab import procs
from pytools.procfs import busy_between, busy_fraction, machine_sample

BUSY_SHARE = 0.2  # make bench's line: above it the machine counts as busy (scripts/bench/report.py)
FULL = 0.85  # a part using this share of what it may use is at its limit


def say_if_busy(command):
    """Says, as make bench does, when other work kept the machine's CPUs busy before COMMAND
    started (its figures are then lower and noisier).  Returns the busy share."""
    busy = busy_fraction()
    if busy > BUSY_SHARE:
        procs.say("the machine was %.0f%% busy before %s started (other work on its CPUs): the figures "
                  "will be lower, and noisier, than on a quiet machine" % (100 * busy, command))
    else:
        procs.say("the machine was %.0f%% busy before %s started (quiet)" % (100 * busy, command))
    return busy


def pool_wait(lab):
    """(seconds waited for a database connection, acquisitions) summed over the servers' own
    /metrics (db_pool_acquire_wait_seconds)."""
    total, count = 0.0, 0
    for r in lab.state["servers"]:
        body = procs.http_get("http://127.0.0.1:%d/metrics" % r["port"], 2) or ""
        for name, value in re.findall(r"^db_pool_acquire_wait_seconds_(sum|count)(?:\{[^}]*\})? (\S+)$", body, re.M):
            try:
                if name == "sum":
                    total += float(value)
                else:
                    count += int(float(value))
            except ValueError:
                pass
    return total, count


def nginx_pids(lab):
    master = lab.nginx_pid()
    return [master] + procs.child_pids(master) if master else []


def meter_run(lab, argv, quiet=False):
    """Runs ARGV (the load generator; QUIET: its output dropped, its errors kept) and
    measures the cores each part used meanwhile.
    Returns (exit status, split): split has servers, postgres, nginx, loadgen (cores),
    machine (cores), machine_busy (the share of them busy, the lab's or not), server_quota and
    postgres_quota (cores, 0: none; postgres_quota is DB_CPUS over every instance), pool_wait_s
    and pool_acquires."""
    servers = [r["pid"] for r in lab.state["servers"]]
    pg, ngx = lab.postgres_pids(), nginx_pids(lab)
    before = [procs.cpu_ticks(servers), procs.cpu_ticks(pg), procs.cpu_ticks(ngx)]
    wait_before = pool_wait(lab)
    machine_before = machine_sample()
    start = time.time()
    sys.stdout.flush()
    try:
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL if quiet else None)
    except OSError as e:
        procs.warn("could not start %s: %s" % (argv[0], e))
        return 127, None
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except KeyboardInterrupt:
        child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = max(time.time() - start, 1e-9)
    machine_busy = busy_between(machine_before, machine_sample())
    hz = os.sysconf("SC_CLK_TCK")
    # The processes again: backends and nginx workers started during the run count from 0,
    # and those that ended are in their parent's reaped-children time.
    after = [procs.cpu_ticks(servers), procs.cpu_ticks(lab.postgres_pids()), procs.cpu_ticks(nginx_pids(lab))]
    wait_after = pool_wait(lab)
    n, _, cpus = lab.layout()
    pinned = {r.get("limit") for r in lab.state["servers"]} == {"pinning"}
    # DB_CPUS: each PostgreSQL instance's quota (none when pinned to whole cores instead).
    instances = [lab.state["db_limit"] or {}] + list(lab.state["replicas"] or [])
    pg_quota = sum(float(i["cpus"]) for i in instances if i.get("cpus") and i.get("limit") != "pinning")
    split = {
        "servers": (after[0] - before[0]) / hz / elapsed,
        "postgres": (after[1] - before[1]) / hz / elapsed,
        "nginx": (after[2] - before[2]) / hz / elapsed,
        "loadgen": (usage.ru_utime + usage.ru_stime) / elapsed,
        "machine": os.cpu_count() or 1,
        "machine_busy": machine_busy,  # the share of all CPUs busy, whatever used them
        # Pinned to whole cores instead of a quota (no cgroup to write): no quota to reach.
        "server_quota": float(cpus) * n if cpus and not pinned else 0.0,
        "postgres_quota": pg_quota,
        "pool_wait_s": max(wait_after[0] - wait_before[0], 0.0),
        "pool_acquires": max(wait_after[1] - wait_before[1], 0),
        "seconds": elapsed,
    }
    return child.returncode, split


def limit_of(split, loadgen_threads=2, mean_latency_ms=None, requests=None):
    """Which part was the limit, from the SPLIT (meter_run): (key, sentence).  Keys: servers
    (at their CPU quota), postgres_quota (PostgreSQL at DB_CPUS over its instances), loadgen (the
    load generator at its threads' CPU), postgres, nginx
    (the machine's CPUs full, whatever used them, and this part the lab's biggest user),
    others (full, but mostly with work that is not the lab's), pool (requests waited for a
    database connection a large part of their time), none."""
    quota, machine = split.get("server_quota") or 0.0, split.get("machine") or 1
    parts = {k: split.get(k) or 0.0 for k in ("servers", "postgres", "nginx", "loadgen")}
    used = sum(parts.values())
    if quota and parts["servers"] >= FULL * quota:
        return "servers", ("the API servers, at their CPU quota (%.2f of %.2f cores): more servers, "
                           "or more CPU each, raise the ceiling" % (parts["servers"], quota))
    pg_quota = split.get("postgres_quota") or 0.0
    if pg_quota and parts["postgres"] >= FULL * pg_quota:
        return "postgres_quota", ("PostgreSQL, at its CPU quota (%.2f of %.2f cores, DB_CPUS over its "
                                  "instances): more servers add nothing; a read replica (DB_REPLICAS) "
                                  "or a bigger database raises the ceiling" % (parts["postgres"], pg_quota))
    if parts["loadgen"] >= FULL * loadgen_threads:
        return "loadgen", ("the load generator itself (%.2f cores for its %d threads): its rate is "
                           "the most it can send, not what the target can take" % (parts["loadgen"], loadgen_threads))
    busy = max(split.get("machine_busy") or 0.0, used / machine)
    if busy >= FULL:
        top = max(parts, key=parts.get)
        names = {"servers": "the API servers", "postgres": "PostgreSQL", "nginx": "nginx",
                 "loadgen": "the load generator itself"}
        others = busy * machine - used
        if others > used:
            return "others", ("other work on this machine: its %d cores were full (%.0f%% busy), and "
                              "the lab's parts used only %.2f of them (%s the most, %.2f): the "
                              "figures say more about the machine's load than about the layout"
                              % (machine, 100 * busy, used, names[top], parts[top]))
        return top, ("%s: the machine's %d cores were full (%.0f%% busy), %s the biggest share "
                     "(%.2f cores)%s" % (names[top], machine, 100 * busy, names[top], parts[top],
                                         "; other work on the machine took %.2f" % others if others >= 0.25 else ""))
    acquires, waited = split.get("pool_acquires") or 0, split.get("pool_wait_s") or 0.0
    if acquires and mean_latency_ms and waited / acquires * 1000 >= 0.3 * mean_latency_ms:
        return "pool", ("the pool: requests waited %.1f ms on average for a database connection, "
                        "%.0f%% of their mean latency, with CPU to spare" % (
                            waited / acquires * 1000, 100 * waited / acquires * 1000 / mean_latency_ms))
    return "none", ("nothing: no part was at its CPU limit (%.2f of %d cores used) and the pool "
                    "kept up; the load offered set the rate" % (used, machine))


def split_text(split, limit_text=None):
    """The CPU line: every part's cores, the servers' quota (LIMIT_TEXT says how it is
    enforced), the machine's cores."""
    quota = split.get("server_quota") or 0.0
    limit = limit_text or ("%.2f" % quota if quota else "none")
    busy = split.get("machine_busy")
    return ("API servers %.2f cores (limit %s), PostgreSQL %.2f, nginx %.2f, load generator %.2f; "
            "this machine has %d%s" % (split["servers"], limit, split["postgres"], split["nginx"], split["loadgen"],
                                       split["machine"], ", %.0f%% busy" % (100 * busy) if busy is not None else ""))
