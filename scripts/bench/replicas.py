"""replicas.py: section 6, the read replica's goals (issue 23), in a throwaway lab of its own
(scripts/figures.py's Lab: its own LAB_DIR, free ports, the full seed): the scenario mix on two
servers with PostgreSQL at DB_CPUS=0.5, the primary alone against the primary and one replica
of the same size, taking turns; then, with the replica, orders at 20/s beside the load while the
servers' reports of the replica's lag are sampled; then the replica killed and started again
under that load.  BENCH_ONLY=replicas runs it alone."""
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from report import rates, ratio, say, table, verdict
from settings import BUILD, REPO_ROOT, ROUNDS

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import figures  # noqa: E402 (the throwaway lab and the result reader)

DB_CPUS = os.environ.get("BENCH_REPLICA_DB_CPUS", "0.5")
SECONDS = int(os.environ.get("BENCH_REPLICA_SECONDS", "20"))
ORDERS_PER_S = 20


def load(lab, name):
    """make loadtest (the scenario mix, 100 connections) for SECONDS; its figures."""
    since = time.time()
    out = lab.run("loadtest", extra={"LOAD_DURATION": "%ds" % SECONDS, "LOAD_NAME": name})
    files = figures.new_results(lab.results, since)
    if not files:
        raise RuntimeError("make loadtest wrote no result for " + name)
    run = figures.read_run(files[-1], out)
    say("  %-22s %8.1f requests/s, p99 %6.0f ms, %d failures; PostgreSQL %.2f cores, servers %.2f"
        % (name, run["rps"], run["p99_ms"], run["failures"], run["pg_cores"], run["server_cores"]))
    return run


class Orders(threading.Thread):
    """POST /orders at ORDERS_PER_S through nginx until stopped; counts answers by status."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop, self.status = url + "/orders", threading.Event(), {}

    def run(self):
        body = json.dumps({"product_id": 1, "quantity": 1}).encode()
        next_at = time.monotonic()
        while not self.stop.is_set():
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as f:
                    code = f.status
            except urllib.error.HTTPError as e:
                code = e.code
            except OSError:
                code = "error"
            self.status[code] = self.status.get(code, 0) + 1
            next_at += 1.0 / ORDERS_PER_S
            self.stop.wait(max(next_at - time.monotonic(), 0))


def loadgen(lab, seconds, out, rate=None):
    """catalog-loadtest on the scenario mix through nginx, in the background (RATE: an open
    model at that many requests/s, else closed-loop on 100 connections)."""
    url = "http://127.0.0.1:%d" % lab.state()["ports"]["nginx"]
    argv = [os.path.join(BUILD, "catalog-loadtest"), "-c", "100", "-d", "%ds" % seconds, "--json", out]
    if rate:
        argv += ["-R", "%.0f" % rate]
    for path in ("/products?category=electronics", "/products/1", "/report"):
        argv += ["--path", path]
    return url, subprocess.Popen(argv + [url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def failures(path):
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    return int(r["failures"]), int(r["requests"])


def replica_section(folder):
    """Section 6.  Returns (title, text)."""
    say(f"\n== 6. Read replica: the scenario mix, two servers, PostgreSQL of {DB_CPUS} CPU "
        f"(DB_CPUS), alone and with one hot standby of the same size")
    lab = figures.Lab(time.monotonic() + 1800)
    try:
        lab.run("up")
        alone, with_replica = [], []
        for i in range(ROUNDS):
            lab.run("scale", "2", extra={"DB_CPUS": DB_CPUS, "DB_REPLICAS": "0"})
            alone.append(load(lab, "bench-primary-%d" % i))
            lab.run("scale", "2", extra={"DB_CPUS": DB_CPUS, "DB_REPLICAS": "1"})
            with_replica.append(load(lab, "bench-replica-%d" % i))
        gain = ratio(statistics.median(r["rps"] for r in with_replica),
                     statistics.median(r["rps"] for r in alone))

        # Lag: the load plus orders at 20/s, the servers' own measure of the replica's lag.
        lags, sampled = [], threading.Event()
        sampler = threading.Thread(target=figures.sample_lag, args=(lab, lags, sampled, 0.25), daemon=True)
        url, gen = loadgen(lab, SECONDS, os.path.join(folder, "replica-lag.json"))
        orders = Orders(url)
        sampler.start()
        orders.start()
        gen.wait(timeout=SECONDS + 60)
        orders.stop.set()
        sampled.set()
        orders.join()
        sampler.join()
        lags = sorted(lags)
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else float("nan")
        say("  lag under the load and %d orders/s: p50 %s ms, p99 %s ms, max %s ms over %d samples; "
            "orders %s" % (ORDERS_PER_S, lags[len(lags) // 2] if lags else "-", p99,
                           lags[-1] if lags else "-", len(lags), orders.status))

        # The replica killed (SIGKILL of its postmaster) 5 s in and started again (make up)
        # 5 s later, under load at a rate the primary alone can carry (80% of its closed-loop
        # rate above): past that, requests would fail for want of capacity, whatever the
        # failover does (the closed-loop runs above already fail some on their own).
        kill_rate = 0.8 * statistics.median(r["rps"] for r in alone)
        kill_json = os.path.join(folder, "replica-kill.json")
        url, gen = loadgen(lab, SECONDS, kill_json, rate=kill_rate)
        orders = Orders(url)
        orders.start()
        time.sleep(5)
        pid = lab.state()["replicas"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        say("  replica1 (pid %d) killed 5 s into the run" % pid)
        time.sleep(5)
        lab.run("up")
        gen.wait(timeout=SECONDS + 120)
        orders.stop.set()
        orders.join()
        failed, requests = failures(kill_json)
        order_failures = sum(n for code, n in orders.status.items() if code != 201)
        say("  replica killed and restarted under load at %.0f requests/s: %d of %d requests failed; "
            "orders %s" % (kill_rate, failed, requests, orders.status))
    finally:
        lab.down()

    max_lag = int(os.environ.get("DB_READ_MAX_LAG_MS", "1000"))
    rows = [
        ("scenario mix, DB_CPUS=%s, two servers: primary + 1 replica / primary alone" % DB_CPUS,
         "%.2f (%s against %s requests/s)" % (gain, rates([r["rps"] for r in with_replica]),
                                             rates([r["rps"] for r in alone])),
         ">= 1.6, " + verdict(gain >= 1.6)),
        ("failed requests while the replica is killed and restarted under load (%.0f requests/s, "
         "80%% of what the primary alone carries)" % kill_rate,
         "%d of %d (orders: %d not 201)" % (failed, requests, order_failures),
         "0, " + verdict(failed == 0 and order_failures == 0)),
        ("replay lag under that load plus %d orders/s, p99 (the servers' /health)" % ORDERS_PER_S,
         "%s ms (max %s, %d samples)" % (p99, lags[-1] if lags else "-", len(lags)),
         "below DB_READ_MAX_LAG_MS (%d), %s" % (max_lag, verdict(bool(lags) and p99 < max_lag))),
    ]
    text = table(("measure", "measured", "goal"), rows)
    for line in text.splitlines():
        say("  " + line)
    return ("6. Read replica",
            f"A throwaway lab (scripts/figures.py's, full seed): two servers behind nginx, the "
            f"scenario mix at 100 connections for {SECONDS} s per run, PostgreSQL at DB_CPUS={DB_CPUS} "
            f"per instance; the primary alone and with one replica take turns, {ROUNDS} rounds, "
            f"medians. The lag is each server's own measure (`/health`, by WAL position), sampled "
            f"every 0.25 s during a run with orders at {ORDERS_PER_S}/s beside the load; the kill is "
            f"SIGKILL of the replica's postmaster 5 s into a run with those orders at 80% of the "
            f"primary's closed-loop rate (an open model: more than the primary alone can carry "
            f"would fail for want of capacity, not for the failover), `make up` 5 s later.\n\n{text}")
