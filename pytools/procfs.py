"""Reading /proc: a process's stat fields and children, CPU times in clock ticks or seconds,
and the whole machine's busy share.  A process that is gone counts as nothing."""
import os
import time

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# In the fields after "(comm) ": state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
UTIME, STIME, CUTIME, CSTIME = 11, 12, 13, 14


def stat_fields(pid):
    """(comm, the fields of /proc/PID/stat after the command name: [state, ppid, ...]), or
    (None, None) when PID is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (OSError, ValueError):
        return None, None
    comm = text[text.index("(") + 1: text.rindex(")")]
    return comm, text[text.rindex(")") + 2:].split()


def alive(pid):
    """True when PID exists and is not a zombie."""
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


def cpu_ticks(pids):
    """User + system CPU of the processes and their reaped children, in clock ticks."""
    total = 0
    for pid in pids:
        _, fields = stat_fields(pid) if pid else (None, None)
        if fields:
            total += sum(int(fields[i]) for i in (UTIME, STIME, CUTIME, CSTIME))
    return total


def cpu_split_s(pids):
    """(user, system) CPU seconds of the processes themselves so far (not their children)."""
    user = system = 0
    for pid in pids:
        _, fields = stat_fields(pid)
        if fields:
            user += int(fields[UTIME])
            system += int(fields[STIME])
    return user / TICKS_PER_S, system / TICKS_PER_S


def tree_cpu_s(root):
    """CPU seconds (user + system) of ROOT with the children it has reaped, plus every live
    child's own: all a forking server has used so far (PostgreSQL's postmaster and backends)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        _, fields = stat_fields(int(entry))
        if not fields:
            continue  # gone meanwhile
        if int(entry) == root:
            total += sum(int(fields[i]) for i in (UTIME, STIME, CUTIME, CSTIME))
        elif fields[1] == str(root):
            total += int(fields[UTIME]) + int(fields[STIME])
    return total / TICKS_PER_S


def machine_sample():
    """(all, idle) clock ticks of the machine's CPUs so far (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_between(first, second):
    """The machine's busy share between two machine_sample()s."""
    return 1 - (second[1] - first[1]) / max(1, second[0] - first[0])


def busy_fraction(seconds=1.0):
    """The whole machine's busy CPU share over SECONDS (make bench's and the lab's check)."""
    first = machine_sample()
    time.sleep(seconds)
    return busy_between(first, machine_sample())
