"""The exporters the dashboard reads: prometheus-postgres-exporter (connections,
transactions), prometheus-process-exporter (the CPU of the lab's PostgreSQL, nginx and
Prometheus) and prometheus-node-exporter (the host's CPU, and lab_layout_servers from the
textfile folder).  Project instances on loopback ports, each port chosen like every other
(ports.choose), each PID in the state file.  A missing package is a warning: the lab works
without them, the dashboard then lacks their panels."""
import os

from lab import configs, procs
from lab.procs import say, warn

NAMES = ("postgres-exporter", "process-exporter", "node-exporter")
JOBS = {"postgres-exporter": "postgres", "process-exporter": "processes", "node-exporter": "node"}


def binary(name):
    return "/usr/bin/prometheus-" + name


def program(name):
    return "prometheus-" + name


def pid_of(state, name):
    """The PID of the running exporter NAME, or 0."""
    pid = state["pids"].get(name, 0)
    return pid if procs.pid_is(pid, program(name)) else 0


def command(lab, name, port):
    s = lab.settings
    listen = "127.0.0.1:%d" % port
    if name == "postgres-exporter":
        env = dict(os.environ, DATA_SOURCE_NAME="postgresql://%s:%s@127.0.0.1:%s/%s?sslmode=disable" % (
            os.environ["PGUSER"], os.environ["PGPASSWORD"], os.environ["PGPORT"], s.db_name))
        return [binary(name), "--web.listen-address=" + listen, "--disable-settings-metrics"], env
    if name == "process-exporter":
        return [binary(name), "-web.listen-address", listen, "-config.path", s.process_exporter_conf,
                "-threads=false", "-gather-smaps=false"], None
    return [binary(name), "--web.listen-address=" + listen, "--collector.disable-defaults",
            "--collector.cpu", "--collector.loadavg", "--collector.meminfo", "--collector.textfile",
            "--collector.textfile.directory=" + s.textfile_dir], None


def process_conf(lab):
    s = lab.settings
    data_dir = os.path.join(s.pg_dir, "data")
    try:  # the data directory exactly as the postmaster was started with it (line 2)
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            data_dir = f.read().splitlines()[1] or data_dir
    except (OSError, IndexError):
        pass
    return configs.process_exporter_conf(data_dir, s.nginx_prefix, s.prom_conf)


def start(lab, name):
    s, state = lab.settings, lab.state
    port = lab.pick_port(name)
    if name == "process-exporter":
        with open(s.process_exporter_conf, "w") as f:
            f.write(process_conf(lab))
    argv, env = command(lab, name, port)
    log = os.path.join(s.logs, name + ".log")
    with open(log, "a") as f:
        f.write("--- %s start %s on 127.0.0.1:%d\n" % (lab.now(), name, port))
    pid = procs.spawn(argv, log, env=env)
    state["pids"][name] = pid
    state["ports"][name] = port
    state["exporter_pgport"][name] = int(os.environ["PGPORT"])
    state.save()
    if not procs.wait_http("http://127.0.0.1:%d/metrics" % port, 15, pid=pid):
        print(procs.tail(log, 5), end="")
        warn("%s does not answer on 127.0.0.1:%d (log: %s); the dashboard lacks its panels" % (name, port, log))
        stop(lab, name)
        return False
    say("started %s (pid %d) on 127.0.0.1:%d" % (name, pid, port))
    lab.changed = True
    return True


def stop(lab, name):
    pid = lab.state["pids"].get(name, 0)
    if procs.pid_is(pid, program(name)):
        procs.stop_pid(pid, program(name), 10)
        say("%s stopped" % name)
    lab.state["pids"].pop(name, None)
    lab.state.save()


def ensure(lab):
    """Starts the exporters that are not running; restarts one started for another
    PostgreSQL port, or a process-exporter whose config changed."""
    for name in NAMES:
        if not os.access(binary(name), os.X_OK):
            warn("prometheus-%s is not installed (scripts/install-deps.sh lab installs it); "
                 "the dashboard lacks its panels" % name)
            continue
        if pid_of(lab.state, name):
            stale = lab.state["exporter_pgport"].get(name) != int(os.environ["PGPORT"])
            if name == "process-exporter":
                try:
                    with open(lab.settings.process_exporter_conf) as f:
                        stale = stale or f.read() != process_conf(lab)
                except OSError:
                    stale = True
            if not stale:
                continue
            stop(lab, name)
        start(lab, name)


def stop_all(lab):
    for name in NAMES:
        stop(lab, name)


def jobs(lab):
    """(job, port) of the running exporters, for the Prometheus config."""
    return [(JOBS[n], lab.state["ports"][n]) for n in NAMES if pid_of(lab.state, n)]
