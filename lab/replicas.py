"""The lab's PostgreSQL instances beyond the primary: hot standbys made with pg_basebackup
(streaming from the primary through a physical replication slot of their own), started and
stopped with scripts/pg.sh like the primary, as the same user, their data beside the primary's
(LAB_DIR/pg-replica1, ...).  Also DB_CPUS (each instance's CPU size, by lab/cgroups.py like
SERVER_CPUS) and the replay lag measured by WAL position (docs/lab.md, "Replicas").

State: lab.state["replicas"] is a list of {"id", "port", "pid", "cpus", "limit", "limit_detail"};
lab.state["db_limit"] the primary's {"cpus", "limit", "limit_detail"}."""
import glob
import os
import shutil
import subprocess
import time

from lab import cgroups, planner, ports, procs
from lab.errors import Failed
from lab.procs import say, warn
from pytools.procs import limit_child

LAG_SAMPLE_S = 1.0  # how long status samples the primary's WAL position per replica at most
LAG_SAMPLE_EVERY_S = 0.05


def pg_bin():
    """The PostgreSQL programs' folder scripts/pg.sh uses (PG_BIN, else the newest installed)."""
    if os.environ.get("PG_BIN"):
        return os.environ["PG_BIN"]
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.access(os.path.join(d, "pg_ctl"), os.X_OK)]
    return found[-1] if found else "/usr/lib/postgresql/15/bin"


def as_postgres(argv):
    """ARGV as the postgres user when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


def slot_of(rid):
    return "catalog_" + rid


def data_dir(settings, rid):
    """Beside the primary's: PG_DIR-replica1 (LAB_DIR/pg-replica1, or under /var/lib/catalog-lab)."""
    return settings.pg_dir.rstrip("/") + "-" + rid


def records(lab):
    return lab.state["replicas"]


def record_of(lab, rid):
    for r in records(lab):
        if r["id"] == rid:
            return r
    return None


def set_record(lab, record):
    lab.state["replicas"] = sorted([r for r in records(lab) if r["id"] != record["id"]] + [record],
                                   key=lambda r: planner.replica_number(r["id"]))
    lab.state.save()


def drop_record(lab, rid):
    lab.state["replicas"] = [r for r in records(lab) if r["id"] != rid]
    lab.state.save()


def postmaster_pid(folder):
    try:
        with open(os.path.join(folder, "data", "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return 0


def running(lab):
    """The standbys as planner.Replica records, alive or not (pg.sh status on their folders)."""
    out = []
    for r in records(lab):
        folder = data_dir(lab.settings, r["id"])
        alive = lab.pg("status", folder)[0] == 0
        out.append(planner.Replica(r["id"], r["port"], r.get("pid", 0), alive, r.get("cpus") or ""))
    return out


def read_hosts(lab):
    """DB_READ_HOSTS for the servers: the running standbys, "127.0.0.1:PORT,..." by number."""
    return ",".join("127.0.0.1:%d" % r.port for r in sorted(running(lab), key=lambda r: r.number) if r.alive)


def limit_for(lab, cpus, name, number):
    """The CpuLimit of one PostgreSQL instance (cgroups.choose, as for a server)."""
    limit = cgroups.choose(cpus, name, lab.settings.cgroup, number=number, unit="catalog-lab-" + name if cpus else "")
    if limit.warning:
        warn(limit.warning.replace("each server", "each PostgreSQL instance"))
    return limit


def run_limited(argv, limit, **kwargs):
    """subprocess.run of ARGV inside LIMIT: what it starts (pg_ctl's postmaster) stays there."""
    argv = list(limit.prefix) + list(argv)
    return subprocess.run(argv, preexec_fn=limit_child(limit.group, limit.cpus_list), **kwargs)


def start_pg(lab, folder, port, limit, log):
    """scripts/pg.sh start FOLDER PORT inside LIMIT; its exports (stdout), or raises Failed."""
    with open(log, "a") as err:
        done = run_limited([os.path.join(lab.settings.repo, "scripts", "pg.sh"), "start", folder, str(port)],
                           limit, stdout=subprocess.PIPE, stderr=err, text=True)
    if done.returncode != 0:
        print(procs.tail(log, 20), end="")
        raise Failed("PostgreSQL did not start in %s (log: %s)" % (folder, log))
    return done.stdout


def psql_at(port, sql, database="postgres"):
    rc, out, _ = procs.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-d", database, "-tAc", sql])
    return out.strip() if rc == 0 else None


def make(lab, rid):
    """A new standby's data: pg_basebackup -R from the primary through slot catalog_RID (made
    here), with its own socket folder and cluster_name (the primary's pg_stat_replication names
    it by that)."""
    s = lab.settings
    folder = data_dir(s, rid)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    slot = slot_of(rid)
    # A slot left by a replica whose data is gone would hold WAL for nobody: replaced.
    lab.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
             " WHERE slot_name = '%s' AND NOT active" % slot)
    log = os.path.join(s.logs, rid + ".log")
    env = dict(os.environ, PGPASSWORD=os.environ.get("PGPASSWORD", "postgres"))
    argv = as_postgres(["env", "PGPASSWORD=" + env["PGPASSWORD"],
                        os.path.join(pg_bin(), "pg_basebackup"), "-h", "127.0.0.1", "-p", os.environ["PGPORT"],
                        "-U", os.environ.get("PGUSER", "postgres"), "-D", os.path.join(folder, "data"),
                        "-R", "-X", "stream", "-C", "-S", slot, "--checkpoint=fast"])
    started = time.monotonic()
    with open(log, "a") as f:
        f.write("--- %s pg_basebackup of 127.0.0.1:%s into %s\n" % (lab.now(), os.environ["PGPORT"], folder))
        f.flush()
        rc = subprocess.run(argv, cwd="/", stdout=f, stderr=f, env=env).returncode
    if rc != 0:
        print(procs.tail(log, 15), end="")
        raise Failed("pg_basebackup for %s failed (log: %s)" % (rid, log))
    with open(os.path.join(folder, "data", "postgresql.conf"), "a") as f:
        f.write("\n# catalog lab (lab/replicas.py): %s, a hot standby of the lab's PostgreSQL.\n"
                "unix_socket_directories = '%s'\ncluster_name = '%s'\nhot_standby = on\n" % (rid, folder, rid))
    say("%s made with pg_basebackup from the primary in %.1f s (data %s, slot %s)"
        % (rid, time.monotonic() - started, folder, slot))


def start(lab, rid, cpus, taken):
    """Starts standby RID (made first when it has no data) on its port: the last start's when
    free, else LAB_REPLICA_PORT + number - 1, else the next free one.  TAKEN: ports the lab's
    other standbys use.  Returns its port."""
    s = lab.settings
    folder = data_dir(s, rid)
    number = planner.replica_number(rid)
    if not os.path.isfile(os.path.join(folder, "data", "standby.signal")):
        make(lab, rid)
    previous = (record_of(lab, rid) or {}).get("port")
    wanted = s.ports["replica"] + number - 1
    reserved = (lab.lab_ports(but="replica") | set(taken)) - {previous, wanted}
    port, moved = ports.choose(wanted, previous, ports.listening_ports(), reserved)
    if moved:
        say("port %d is busy; %s will use port %d instead (LAB_REPLICA_PORT chooses another)"
            % (previous or wanted, rid, port))
    limit = limit_for(lab, cpus, rid, number + 1)
    log = os.path.join(s.logs, rid + ".log")
    start_pg(lab, folder, port, limit, log)
    set_record(lab, {"id": rid, "port": port, "pid": postmaster_pid(folder), "cpus": cpus,
                     "limit": limit.mechanism, "limit_short": limit.short(), "limit_detail": limit.detail})
    size = ", %s CPUs (%s)" % (cpus, limit.mechanism) if cpus else ""
    say("%s started on 127.0.0.1:%d, a hot standby streaming from the primary%s" % (rid, port, size))
    lab.changed = True
    return port


def stop(lab, rid):
    folder = data_dir(lab.settings, rid)
    if lab.pg("status", folder)[0] == 0:
        rc, _, err = lab.pg("stop", folder)
        if rc != 0:
            raise Failed("%s did not stop: %s" % (rid, err.strip()))
        say("%s stopped" % rid)
    if lab.settings.cgroup:
        cgroups.remove_group(lab.settings.cgroup, rid)


def retire(lab, rid):
    """Stops standby RID, removes its data and drops its slot on the primary."""
    stop(lab, rid)
    shutil.rmtree(data_dir(lab.settings, rid), ignore_errors=True)
    lab.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
             " WHERE slot_name = '%s' AND NOT active" % slot_of(rid))
    drop_record(lab, rid)
    say("%s retired: stopped, its data (%s) and replication slot removed" % (rid, data_dir(lab.settings, rid)))
    lab.changed = True


def stop_all(lab):
    for r in records(lab):
        stop(lab, r["id"])


def pids(lab):
    """Every standby's postmaster and its children (backends, the WAL receiver, the startup
    process that replays)."""
    out = []
    for r in records(lab):
        master = postmaster_pid(data_dir(lab.settings, r["id"]))
        if master and procs.alive(master):
            out += [master] + procs.child_pids(master)
    return out


# ---- the replay lag, by WAL position -----------------------------------------------------------

def lsn_value(text):
    """'16/B374D848' -> the byte position; None for no LSN."""
    try:
        high, low = text.split("/")
        return (int(high, 16) << 32) + int(low, 16)
    except (AttributeError, ValueError):
        return None


def lag_seconds(samples, replay, now):
    """How long ago the primary was at WAL position REPLAY: SAMPLES [(time, primary's LSN)] in
    time order, NOW the time of the reading.  0 when REPLAY is at or past the last sample; the
    time the primary's position passed REPLAY, interpolated between the two samples around it;
    None when REPLAY is before the first sample (the lag is longer than the samples reach)."""
    if not samples or replay is None:
        return None
    if replay >= samples[-1][1]:
        return 0.0
    if replay < samples[0][1]:
        return None
    for (t0, l0), (t1, l1) in zip(samples, samples[1:]):
        if l0 <= replay < l1:
            return max(now - (t0 + (t1 - t0) * (replay - l0) / (l1 - l0)), 0.0)
    return 0.0


def position_at(samples, when):
    """The primary's WAL position at time WHEN, interpolated between the SAMPLES around it
    [(time, LSN)] (the nearest sample's outside them)."""
    if when <= samples[0][0]:
        return samples[0][1]
    for (t0, l0), (t1, l1) in zip(samples, samples[1:]):
        if t0 <= when <= t1:
            return l0 + (l1 - l0) * (when - t0) / (t1 - t0) if t1 > t0 else l1
    return samples[-1][1]


def lag(primary_port, port, sample_s=LAG_SAMPLE_S):
    """(bytes, seconds) of the standby on PORT behind the primary on PRIMARY_PORT, by WAL
    position: the primary's pg_current_wal_lsn() sampled with timestamps before and after each
    reading of the standby's pg_last_wal_replay_lsn(); bytes: the primary's position at the
    reading (interpolated) minus the replay position; seconds: how long before the reading the
    primary passed the replay position.  Samples on while the replay position is before the
    first sample (the standby is further behind than the samples reach), at most SAMPLE_S:
    seconds None then.  (None, None) when an instance does not answer."""
    samples = []

    def sample():
        lsn = lsn_value(psql_at(primary_port, "SELECT pg_current_wal_lsn()"))
        samples.append((time.time(), lsn))
        return lsn is not None

    deadline = time.monotonic() + sample_s
    if not sample():
        return None, None
    while True:
        replay = lsn_value(psql_at(port, "SELECT pg_last_wal_replay_lsn()"))
        read_at = time.time()
        if replay is None or not sample():
            return None, None
        seconds = lag_seconds(samples, replay, read_at)
        if seconds is not None or time.monotonic() >= deadline:
            return max(round(position_at(samples, read_at)) - replay, 0), seconds
        time.sleep(LAG_SAMPLE_EVERY_S)


def status_lines(lab):
    """make status's lines of each standby, and whether one is in trouble."""
    lines, problems = [], 0
    primary_port = os.environ.get("PGPORT")
    states = {}
    out = lab.psql("SELECT application_name, state FROM pg_stat_replication") or ""
    for line in out.splitlines():
        name, _, state = line.partition("|")
        states[name] = state
    for r in running(lab):
        if not r.alive:
            lines.append("%-12s %-8s %-6s %s" % (r.id, "-", r.port, "DOWN (make up starts it again)"))
            problems = 1
            continue
        state = states.get(r.id, "not connected to the primary")
        lag_bytes, seconds = lag(primary_port, r.port)
        if lag_bytes is None:
            lag_text = "lag ?"
        else:
            lag_text = "lag %d bytes, %s" % (lag_bytes, "%.0f ms" % (seconds * 1000) if seconds is not None
                                                 else "over %.1f s" % LAG_SAMPLE_S)
        connections = psql_at(r.port, "SELECT count(*) FROM pg_stat_activity"
                                      " WHERE application_name LIKE 'catalog-server-%'") or "?"
        record = record_of(lab, r.id) or {}
        limit = record.get("limit_short") if record.get("cpus") else "-"
        lines.append("%-12s %-8s %-6s up  %s, %s (replay position against the primary's), "
                     "server connections %s, cpus %s limit %s"
                     % (r.id, "pid %d" % r.pid, r.port, state, lag_text, connections, r.cpus or "-", limit or "-"))
        if state not in ("streaming", "catchup"):
            problems = 1
    return lines, problems
