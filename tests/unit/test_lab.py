"""Unit tests of the lab's pure parts (lab/): the planner (every transition between layouts, a
refused request, a command that died half-way, the balancing method), the choice of CPU limit
against fake cgroup trees (v2 as root, v2 delegated, systemd, v1, none), port choice, result
names, the USL fit against synthetic points, the limit named from a CPU split, and make
compare's pairing of synthetic result files.  No process is started.
Run: python3 tests/unit/test_lab.py  (tests/run.sh runs it with the unit tests)."""
import itertools
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from lab import cgroups, compare, configs, options, planner, ports, replicas, settings, split, usl  # noqa: E402
from lab.planner import Point, Record, Replica, Request, Server, Start, Stop  # noqa: E402

APP = 3000
RESERVED = {8080, 9090, 3002, 5432}


def layout(n, budget=10, cpus="", mode="live"):
    """The servers a settled layout of N servers has (as the lab would have started them)."""
    steps = planner.plan([], Request(n, budget, cpus, mode), APP, reserved=RESERVED).steps
    servers, _ = planner.simulate([], steps)
    return [Server(s.id, s.port, s.pool, s.cpus, s.report_mode, pid=100 + i) for i, s in enumerate(servers)]


def settled(servers, request):
    """True when SERVERS is exactly REQUEST's layout: app..appN once each, right pool, size, ports."""
    ids = sorted(s.id for s in servers)
    want = sorted(planner.server_id(i) for i in range(1, request.servers + 1))
    if ids != want:
        return False
    for s in servers:
        if (s.pool, s.cpus, s.report_mode) != (request.pool, request.cpus, request.report_mode):
            return False
        if (request.servers == 1) != (s.port == APP):
            return False
    return len({s.port for s in servers}) == len(servers)


def check_no_drop(test, before, request, steps):
    """Between any two steps something serves: once nginx points at a set, every member runs;
    a server in nginx's set is stopped only after nginx has been pointed away from it."""
    running = {(s.id, s.port) for s in before if s.alive}
    pointed = {(s.id, s.port) for s in before if s.alive}
    for step in steps:
        if isinstance(step, Start):
            running.add((step.id, step.port))
        elif isinstance(step, Point):
            test.assertTrue(set(step.servers) <= running, "nginx pointed at a server not running: %s" % (step,))
            test.assertTrue(step.servers, "nginx pointed at nothing")
            pointed = set(step.servers)
        elif isinstance(step, Stop):
            running.discard((step.id, step.port))
            if step.why == "old":
                test.assertNotIn((step.id, step.port), pointed, "stopped while nginx still sends to it")
            elif step.why == "in-place":
                # Only the move to one server on the app port may stop its occupant first.
                test.assertEqual(step.port, APP)
                test.assertEqual(request.servers, 1)


LAYOUTS = [(n, cpus, mode) for n in (1, 2, 3, 4) for cpus in ("", "0.25") for mode in ("live",)] + [(1, "", "rollup"), (2, "", "rollup")]


class Planner(unittest.TestCase):
    def test_every_transition_reaches_the_layout_and_drops_nothing(self):
        for (n1, c1, m1), (n2, c2, m2) in itertools.product([(0, "", "live")] + LAYOUTS, LAYOUTS):
            with self.subTest(before=(n1, c1, m1), after=(n2, c2, m2)):
                before = layout(n1, 10, c1, m1) if n1 else []
                request = Request(n2, 10, c2, m2)
                plan = planner.plan(before, request, APP, reserved=RESERVED)
                check_no_drop(self, before, request, plan.steps)
                after, pointed = planner.simulate(before, plan.steps)
                self.assertTrue(settled(after, request), after)
                self.assertEqual(sorted(pointed), sorted((s.id, s.port) for s in after))
                self.assertIsInstance(plan.steps[-1], Record)
                # Asking again changes nothing.
                again = planner.plan(after, request, APP, reserved=RESERVED)
                self.assertFalse(again.changes, again.steps)

    def test_same_layout_keeps_every_server(self):
        before = layout(3)
        plan = planner.plan(before, Request(3, 10), APP, reserved=RESERVED)
        self.assertFalse(plan.changes)
        self.assertEqual([type(s) for s in plan.steps], [Point, Record])

    def test_scaled_servers_avoid_the_app_port_busy_and_reserved_ports(self):
        busy = {3001, 3003}
        plan = planner.plan([], Request(3, 10), APP, busy=busy, reserved={3002, 8080})
        self.assertEqual([s.port for s in plan.steps if isinstance(s, Start)], [3004, 3005, 3006])

    def test_a_dead_server_is_forgotten_and_started_again(self):
        before = [s if s.id != "app2" else Server(s.id, s.port, s.pool, s.cpus, pid=s.pid, alive=False)
                  for s in layout(2)]
        plan = planner.plan(before, Request(2, 10), APP, reserved=RESERVED)
        self.assertEqual(plan.steps[0], Stop("app2", before[1].port, before[1].pid, "dead"))
        self.assertEqual([s.id for s in plan.steps if isinstance(s, Start)], ["app2"])
        after, _ = planner.simulate(before, plan.steps)
        self.assertTrue(settled(after, Request(2, 10)))

    def test_to_one_server_replaces_the_app_port_in_place_only_when_needed(self):
        # 1 server of another pool on the app port: it must go first (the only pause).
        plan = planner.plan(layout(1, 10), Request(1, 20), APP, reserved=RESERVED)
        kinds = [(type(s).__name__, getattr(s, "why", "")) for s in plan.steps]
        self.assertEqual(kinds, [("Stop", "in-place"), ("Start", ""), ("Point", ""), ("Record", "")])
        # From two servers (not on the app port): start first, then stop the old ones.
        plan = planner.plan(layout(2), Request(1, 10), APP, reserved=RESERVED)
        self.assertEqual([type(s).__name__ for s in plan.steps], ["Start", "Point", "Stop", "Stop", "Record"])

    def test_duplicate_ids_keep_one(self):
        twin = layout(2)
        dup = Server("app2", 3009, twin[1].pool, pid=999)
        plan = planner.plan(twin + [dup], Request(2, 10), APP, reserved=RESERVED)
        after, _ = planner.simulate(twin + [dup], plan.steps)
        self.assertTrue(settled(after, Request(2, 10)))

    def test_a_crash_after_any_step_is_repaired_by_the_next_command(self):
        for (n1, c1, _), (n2, c2, _) in itertools.product(LAYOUTS[:8], LAYOUTS[:8]):
            before = layout(n1, 10, c1)
            request = Request(n2, 10, c2)
            steps = planner.plan(before, request, APP, reserved=RESERVED).steps
            for k in range(len(steps)):
                with self.subTest(before=(n1, c1), after=(n2, c2), crashed_after=k):
                    # The state file holds what the first k steps did; the command died there.
                    half, _ = planner.simulate(before, steps[:k])
                    half = [Server(s.id, s.port, s.pool, s.cpus, s.report_mode, pid=500 + i) for i, s in enumerate(half)]
                    repair = planner.plan(half, request, APP, reserved=RESERVED)
                    check_no_drop(self, half, request, repair.steps)
                    after, _ = planner.simulate(half, repair.steps)
                    self.assertTrue(settled(after, request), (half, after))

    def test_a_start_recorded_whose_process_died_is_repaired(self):
        before = layout(1)
        request = Request(2, 10)
        steps = planner.plan(before, request, APP, reserved=RESERVED).steps
        half, _ = planner.simulate(before, steps[:1])  # app started on a new port, then crashed
        half = [Server(s.id, s.port, s.pool, s.cpus, pid=7, alive=(s.port == APP)) for s in half]
        after, _ = planner.simulate(half, planner.plan(half, request, APP, reserved=RESERVED).steps)
        self.assertTrue(settled(after, request))


class Refusals(unittest.TestCase):
    def test_refused_requests_give_no_steps_and_change_nothing(self):
        before = layout(3)
        snapshot = list(before)
        for request, limit, words in ((Request(3, 2), 97, "cannot give each of 3 servers"),
                                      (Request(4, 400), 97, "more than PostgreSQL allows (97")):
            with self.assertRaises(planner.Refused) as caught:
                planner.validate(request, limit)
                planner.plan(before, request, APP)
            self.assertIn(words, str(caught.exception))
            self.assertIn("The running layout is unchanged", str(caught.exception))
        self.assertEqual(before, snapshot)

    def test_bad_settings_are_refused_with_the_setting_named(self):
        for args, words in (((0, 10, ""), "SERVERS must be"), (("x", 10, ""), "SERVERS must be"),
                            ((101, 10, ""), "SERVERS must be"), ((2, 0, ""), "DB_BUDGET must be"),
                            ((2, 10, "0.001"), "SERVER_CPUS must be"), ((2, 10, "half"), "SERVER_CPUS must be")):
            with self.assertRaises(planner.Refused) as caught:
                planner.parse_request(*args)
            self.assertIn(words, str(caught.exception))
        self.assertEqual(planner.parse_request("2", "10", "0.5"), Request(2, 10, "0.5"))

    def test_layout_names(self):
        self.assertEqual(planner.layout_name(1, ""), "1-server")
        self.assertEqual(planner.layout_name(2, "0.25"), "2-servers-0.25cpu")

    def test_restart_goes_one_server_at_a_time_in_order(self):
        before = layout(3)
        plan = planner.plan_restart(list(reversed(before)), 3, True)
        self.assertEqual([s.server.id for s in plan.steps], ["app", "app2", "app3"])
        self.assertTrue(all(s.behind_nginx for s in plan.steps))
        self.assertFalse(planner.plan_restart(layout(1), 1, True).steps[0].behind_nginx)


class Replicas(unittest.TestCase):
    """The lab's state transitions with hot standbys (DB_REPLICAS, DB_CPUS), the per-instance
    budget, and the lag by WAL position."""

    def test_a_later_scale_keeps_the_replicas_and_db_cpus_and_0_retires_them(self):
        kept = {"servers": 1, "budget": 10, "db_replicas": 2, "db_cpus": "0.5"}
        request = options.Wishes().request(3, layout=kept)  # make scale SERVERS=3, nothing else
        self.assertEqual((request.servers, request.db_replicas, request.db_cpus), (3, 2, "0.5"))
        running = [Replica("replica1", 5433, cpus="0.5"), Replica("replica2", 5434, cpus="0.5")]
        plan = planner.plan_replicas(running, request.db_replicas, request.db_cpus)
        self.assertEqual((plan.start, plan.restart, plan.retire), ((), (), ()))  # nothing to do
        request = options.Wishes(db_replicas="0").request(3, layout=kept)  # DB_REPLICAS=0
        plan = planner.plan_replicas(running, request.db_replicas, request.db_cpus)
        self.assertEqual((plan.start, plan.restart), ((), ()))
        self.assertEqual([r.id for r in plan.retire], ["replica1", "replica2"])
        self.assertEqual(options.Wishes(db_cpus="").request(1, layout=kept).db_cpus, "")  # DB_CPUS= removes it

    def test_fewer_replicas_retire_the_highest_more_start_the_missing_dead_ones_start_again(self):
        running = [Replica("replica1", 5433), Replica("replica2", 5434, alive=False), Replica("replica3", 5435)]
        plan = planner.plan_replicas(running, 2)
        self.assertEqual(plan.start, ("replica2",))  # dead: started again (make up repairs it)
        self.assertEqual([r.id for r in plan.retire], ["replica3"])
        self.assertEqual(planner.plan_replicas([], 3).start, ("replica1", "replica2", "replica3"))

    def test_a_new_db_cpus_restarts_each_live_replica(self):
        running = [Replica("replica1", 5433, cpus=""), Replica("replica2", 5434, cpus="0.5")]
        plan = planner.plan_replicas(running, 2, "0.5")
        self.assertEqual([r.id for r in plan.restart], ["replica1"])
        self.assertEqual(plan.start, ())

    def test_servers_are_replaced_when_their_read_hosts_change(self):
        before = layout(2)  # started without replicas
        request = Request(2, 10, read_hosts="127.0.0.1:5433")
        plan = planner.plan(before, request, APP, reserved=RESERVED)
        starts = [s for s in plan.steps if isinstance(s, Start)]
        self.assertEqual([s.read_hosts for s in starts], ["127.0.0.1:5433"] * 2)
        after, _ = planner.simulate(before, plan.steps)
        self.assertTrue(settled(after, request))
        check_no_drop(self, before, request, plan.steps)
        again = planner.plan(after, request, APP, reserved=RESERVED)
        self.assertFalse(again.changes, again.steps)  # asking twice changes nothing

    def test_the_budget_is_refused_when_any_instance_cannot_carry_it(self):
        request = planner.parse_request(2, 60, "", db_replicas=1)
        limits = planner.instance_limits(request, 97, {"replica1": 40})
        self.assertEqual(limits, {"primary": 97, "replica1": 40})
        with self.assertRaises(planner.Refused) as caught:
            planner.validate(request, limits)
        self.assertIn("2 servers x DB_POOL_MAX=30 = 60 connections, more than replica1", str(caught.exception))
        self.assertIn("The running layout is unchanged", str(caught.exception))
        planner.validate(planner.parse_request(2, 40, "", db_replicas=1), limits)  # 40 fits both
        # A replica not running yet counts with the primary's limit (a standby may not have fewer).
        self.assertEqual(planner.instance_limits(planner.parse_request(2, 10, "", db_replicas=2), 97, {}),
                         {"primary": 97, "replica1": 97, "replica2": 97})

    def test_bad_replica_settings_are_refused_with_the_setting_named(self):
        for kwargs, words in (({"db_replicas": "x"}, "DB_REPLICAS must be"), ({"db_replicas": 10}, "DB_REPLICAS must be"),
                              ({"db_cpus": "none"}, "DB_CPUS must be")):
            with self.assertRaises(planner.Refused) as caught:
                planner.parse_request(1, 10, "", **kwargs)
            self.assertIn(words, str(caught.exception))

    def test_lag_in_time_is_how_long_ago_the_primary_passed_the_replay_position(self):
        samples = [(100.0, 1000), (100.1, 1000), (100.2, 3000), (100.3, 5000)]
        self.assertEqual(replicas.lag_seconds(samples, 5000, 100.35), 0.0)  # caught up
        self.assertEqual(replicas.lag_seconds(samples, 9000, 100.35), 0.0)
        self.assertAlmostEqual(replicas.lag_seconds(samples, 4000, 100.35), 0.1)  # passed 4000 at 100.25
        self.assertAlmostEqual(replicas.lag_seconds(samples, 1000, 100.35), 0.25)  # passed 1000 by 100.1
        self.assertIsNone(replicas.lag_seconds(samples, 999, 100.35))  # before every sample: longer ago
        # A replay position read at 100.15, between samples: the primary passed it 0.05 s before.
        self.assertAlmostEqual(replicas.lag_seconds(samples, 2000, 100.2), 0.05)
        self.assertEqual(replicas.position_at(samples, 100.25), 4000)  # bytes: against this
        self.assertEqual(replicas.position_at(samples, 99.0), 1000)
        self.assertEqual(replicas.position_at(samples, 101.0), 5000)
        self.assertEqual(replicas.lsn_value("16/B374D848"), (0x16 << 32) + 0xB374D848)
        self.assertIsNone(replicas.lsn_value(None))

    def test_the_dashboard_counts_every_postgresql_instance(self):
        """Each instance its own process-exporter group (the dashboard sums them and draws each
        replica apart); nothing else in one of them."""
        import re
        text = configs.process_exporter_conf("/tmp/lab.x/pg/data", "/tmp/lab.x/run/nginx", "/tmp/lab.x/run/p.yml")
        groups = dict(re.findall(r"- name: (postgres[-a-z0-9]*)\n    cmdline: \['(.*?)'\]", text))

        def group_of(data):
            cmdline = "/usr/lib/postgresql/15/bin/postgres -D %s -p 5433" % data
            found = [name for name, rx in groups.items() if re.search(rx, cmdline)]
            self.assertLessEqual(len(found), 1, (data, found))
            return found[0] if found else None
        for data, group in (("/tmp/lab.x/pg/data", "postgres"), ("/tmp/lab.x/pg-replica1/data", "postgres-replica1"),
                            ("/tmp/lab.x/pg-replica9/data", "postgres-replica9"), ("/tmp/lab.x/pg2/data", None),
                            ("/tmp/labxx/pg/data", None)):
            self.assertEqual(group_of(data), group, data)
        self.assertEqual(len(groups), 1 + configs.REPLICA_GROUPS)


class Balance(unittest.TestCase):
    def test_balance_is_checked_and_kept_in_the_request(self):
        for balance in planner.BALANCES:
            self.assertEqual(planner.parse_request(2, 10, "", "live", balance).balance, balance)
        self.assertEqual(planner.parse_request(2, 10, "").balance, "round_robin")
        with self.assertRaises(planner.Refused) as caught:
            planner.parse_request(2, 10, "", "live", "random")
        self.assertIn("BALANCE must be round_robin|least_conn|p2c", str(caught.exception))

    def test_a_new_balance_points_nginx_again_without_restarting_a_server(self):
        before = layout(2)
        plan = planner.plan(before, Request(2, 10, "", "live", "least_conn"), APP, reserved=RESERVED)
        self.assertFalse(plan.changes, plan.steps)  # no server started or stopped
        points = [s for s in plan.steps if isinstance(s, Point)]
        self.assertEqual([p.balance for p in points], ["least_conn"])
        self.assertEqual(plan.steps[-1].request.balance, "least_conn")  # what the state keeps

    def test_every_method_in_the_generated_nginx_config(self):
        lines = {"round_robin": "BALANCE=round_robin: nginx's default", "least_conn": "least_conn;",
                 "p2c": "random two least_conn;"}
        for balance, line in lines.items():
            text = configs.nginx_conf(ports=[3001, 3002], balance=balance, listen="127.0.0.1:8080",
                                      prefix="/tmp/p", pid_file="/tmp/p/pid", error_log="/tmp/p/e", workers="1",
                                      root=False, events_json="/tmp/e.json", prom_port=9090, dashboard_dir="/tmp/d")
            upstream = text[text.index("upstream catalog_app {"):text.index("keepalive 64;")]
            self.assertIn(line, upstream, balance)
            self.assertNotIn("@BALANCE_LINE@", text)
            others = [v for k, v in planner.BALANCES.items() if v and k != balance]
            self.assertFalse(any(o in upstream.replace(line, "") for o in others), upstream)


class ResultNames(unittest.TestCase):
    def test_every_setting_that_changes_the_outcome_is_in_the_name(self):
        self.assertEqual(planner.result_name(1, "", "scenario"), "1-server-scenario")
        self.assertEqual(planner.result_name(2, "0.25", "browse"), "2-servers-0.25cpu-browse-round_robin")
        self.assertEqual(planner.result_name(2, "", "scenario", "p2c", "rollup", "ceiling"),
                         "2-servers-scenario-p2c-rollup-ceiling")
        names = set()
        for servers, cpus, mix, balance, mode, kind in itertools.product(
                (1, 2, 3), ("", "0.25", "0.5"), ("scenario", "browse"), planner.BALANCES, ("live", "rollup"),
                ("run", "ceiling")):
            name = planner.result_name(servers, cpus, mix, balance, mode, kind)
            key = (servers, cpus, mix, balance if servers > 1 else "", mode, kind)
            names.add((name, key))
        # One name per outcome-changing setting set (balance means nothing with one server).
        self.assertEqual(len({n for n, _ in names}), len({k for _, k in names}))
        self.assertFalse(any(n.startswith("sweep-") for n, _ in names))


def usl_points(lam, sigma, kappa, counts):
    return [(n, lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))) for n in counts]


class UslFit(unittest.TestCase):
    def test_known_sigma_and_kappa_recovered_within_5_percent(self):
        for lam, sigma, kappa, counts in ((1000, 0.05, 0.002, range(1, 9)), (160, 0.3, 0.05, (1, 2, 3, 4)),
                                          (800, 0.02, 0.0005, (1, 2, 3, 4)), (500, 0.2, 0.01, (1, 2, 4, 6))):
            with self.subTest(sigma=sigma, kappa=kappa):
                fit = usl.fit(usl_points(lam, sigma, kappa, counts))
                self.assertAlmostEqual(fit["sigma"], sigma, delta=0.05 * sigma)
                self.assertAlmostEqual(fit["kappa"], kappa, delta=0.05 * kappa)
                self.assertAlmostEqual(fit["lambda"], lam, delta=0.05 * lam)
                self.assertGreater(fit["r2"], 0.999)
                self.assertAlmostEqual(fit["peak_servers"], ((1 - sigma) / kappa) ** 0.5,
                                       delta=0.05 * ((1 - sigma) / kappa) ** 0.5)

    def test_noisy_points_stay_close(self):
        noise = (1.01, 0.99, 1.0, 1.015, 0.985, 1.0, 0.995, 1.005)
        points = [(n, x * e) for (n, x), e in zip(usl_points(1000, 0.1, 0.01, range(1, 9)), noise)]
        fit = usl.fit(points)
        self.assertAlmostEqual(fit["sigma"], 0.1, delta=0.05)
        self.assertAlmostEqual(fit["kappa"], 0.01, delta=0.005)
        self.assertGreater(fit["r2"], 0.98)

    def test_bounds_and_no_peak(self):
        linear = usl.fit(usl_points(300, 0, 0, (1, 2, 3)))
        self.assertIsNone(linear["peak_servers"])
        self.assertLess(linear["kappa"], usl.KAPPA_ZERO)
        # Falling rates would fit negative sigma: the bounds hold it at 0 and kappa takes it.
        fit = usl.fit([(1, 100), (2, 210), (3, 330), (4, 300)])
        self.assertGreaterEqual(fit["sigma"], 0)
        self.assertGreaterEqual(fit["kappa"], 0)
        self.assertGreater(fit["lambda"], 0)
        with self.assertRaises(ValueError):
            usl.fit([(1, 100), (2, 190), (2, 185)])


class Limit(unittest.TestCase):
    def split(self, **cores):
        base = {"servers": 0.1, "postgres": 0.1, "nginx": 0.05, "loadgen": 0.1, "machine": 2,
                "server_quota": 0.0, "pool_wait_s": 0.0, "pool_acquires": 0}
        base.update(cores)
        return base

    def test_each_part_named(self):
        cases = ((dict(servers=0.49, server_quota=0.5), "servers"),
                 (dict(servers=0.4, postgres=1.5), "postgres"),
                 # DB_CPUS=0.5 on the primary and one replica: PostgreSQL at its quota, with the
                 # pool waiting behind it: the quota is named, not the pool.
                 (dict(postgres=0.96, postgres_quota=1.0, pool_wait_s=40.0, pool_acquires=1000),
                  "postgres_quota"),
                 (dict(servers=0.5, nginx=1.2, loadgen=0.3), "nginx"),
                 (dict(loadgen=1.9), "loadgen"),
                 (dict(pool_wait_s=40.0, pool_acquires=1000), "pool"),
                 # Other work filled the machine: the lab's biggest user is named, not the pool.
                 (dict(postgres=1.2, machine_busy=0.97, pool_wait_s=40.0, pool_acquires=1000), "postgres"),
                 (dict(postgres=0.25, servers=0.14, machine_busy=1.0), "others"),
                 ({}, "none"))
        for cores, part in cases:
            with self.subTest(part=part):
                key, text = split.limit_of(self.split(**cores), loadgen_threads=2, mean_latency_ms=50)
                self.assertEqual(key, part, text)
        self.assertIn("PostgreSQL", split.limit_of(self.split(servers=0.4, postgres=1.5))[1])
        self.assertIn("DB_REPLICAS", split.limit_of(self.split(postgres=0.5, postgres_quota=0.5))[1])
        self.assertEqual(split.limit_of(self.split(postgres=0.3, postgres_quota=0.5))[0], "none")
        line = split.split_text(self.split(nginx=0.3, loadgen=0.7))
        self.assertIn("nginx 0.30", line)
        self.assertIn("load generator 0.70", line)


def write_json(folder, name, data):
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        import json
        json.dump(data, f)
    return path


def run_result(servers, mix, rps, connections=100, duration=30.0, p99=100.0, lab=True, **extra):
    """A load test result as the lab keeps it (LAB: with the lab's fields, else as before)."""
    routes = {"GET /products/1": {}, "GET /products?category=electronics": {}}
    if mix == "scenario":
        routes["GET /report"] = {}
    by_server = {("app" if i == 1 else "app%d" % i): {"requests": 100 * i, "latency_ms": {"p99": 10.0 * i}}
                 for i in range(1, servers + 1)}
    r = {"connections": connections, "duration_s": duration, "rps": rps, "requests": int(rps * duration),
         "latency_ms": {"avg": 50, "p99": p99}, "by_route": routes, "by_server": by_server, "failures": 0}
    if lab:
        r.update(kind="run", servers=servers, mix=mix)
    r.update(extra)
    return r


class Compare(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        import shutil
        shutil.rmtree(self.folder)

    def results(self, files):
        return [compare.read_result(write_json(self.folder, name, data)) for name, data in files]

    def test_pairs_by_mix_and_size_never_against_the_first_run(self):
        results = self.results([
            ("1-server-0.25cpu-scenario", run_result(1, "scenario", 150, server_cpus="0.25")),
            ("1-server-0.25cpu-browse", run_result(1, "browse", 1000, server_cpus="0.25")),
            ("2-servers-0.25cpu-browse-round_robin", run_result(2, "browse", 1900, server_cpus="0.25")),
            ("2-servers-0.25cpu-scenario-round_robin", run_result(2, "scenario", 156, server_cpus="0.25")),
            ("demo-1-server-0.25cpu-browse", run_result(1, "browse", 900, connections=50, duration=10.0,
                                                        server_cpus="0.25")),
        ])
        lines = compare.report(results)
        text = "\n".join(lines)
        self.assertTrue(all(len(line) <= 100 for line in lines), max(lines, key=len))
        self.assertIn("2-servers-0.25cpu-browse-round_robin / 1-server-0.25cpu-browse: 1.90x requests/s", text)
        self.assertIn("2-servers-0.25cpu-scenario-round_robin / 1-server-0.25cpu-scenario: 1.04x requests/s", text)
        # No ratio across mixes, nor across sizes; the size difference is said.
        self.assertNotIn("browse-round_robin / 1-server-0.25cpu-scenario", text)
        self.assertNotIn("/ demo-1-server", text)
        self.assertNotIn("demo-1-server-0.25cpu-browse:", text.replace("demo-1-server-0.25cpu-browse ", ""))
        self.assertIn("differ in connections or duration", text)
        self.assertIn("app 33% (p99 10 ms), app2 67% (p99 20 ms)", text)

    def test_ceilings_beside_their_runs_and_a_sweep_breaks_nothing(self):
        slo = {"p99_ms": 500, "failures": 0}
        results = self.results([
            ("1-server-browse", run_result(1, "browse", 1000)),
            ("2-servers-browse-round_robin", run_result(2, "browse", 1800)),
            ("1-server-browse-ceiling", {"kind": "ceiling", "ceiling_rps": 950, "slo": slo, "servers": 1,
                                         "mix": "browse", "stages": [], "cpu": {"servers": 0.5, "postgres": 0.3}}),
            ("2-servers-browse-round_robin-ceiling", {"kind": "ceiling", "ceiling_rps": 1805, "slo": slo,
                                                      "servers": 2, "mix": "browse", "stages": []}),
            ("sweep-browse", {"kind": "sweep", "mix": "browse", "points": [
                {"servers": 1, "ceiling_rps": 950}, {"servers": 2, "ceiling_rps": 1805},
                {"servers": 3, "ceiling_rps": 2500}],
                "usl": {"lambda": 960, "sigma": 0.05, "kappa": 0.001, "r2": 0.99, "peak_servers": 30.8}}),
        ])
        text = "\n".join(compare.report(results))
        self.assertRegex(text, r"1-server-browse +1000.0 +100.0 +0 +950 ")
        self.assertRegex(text, r"2-servers-browse-round_robin +1800.0 +100.0 +0 +1805 ")
        self.assertIn("2-servers-browse-round_robin-ceiling / 1-server-browse-ceiling: 1.90x ceiling", text)
        self.assertIn("sweep-browse (a sweep, browse mix): ceilings by servers 1: 950, 2: 1805, 3: 2500", text)
        self.assertIn("peak 30.8 servers", text)

    def test_long_names_pair_by_letter_and_a_run_a_little_longer_is_the_same_size(self):
        results = self.results([
            ("demo-1-server-0.25cpu-scenario-rollup", run_result(1, "scenario", 800, duration=10.4,
                                                                 connections=50)),
            ("demo-2-servers-0.25cpu-scenario-least_conn-rollup", run_result(2, "scenario", 1200, duration=11.3,
                                                                             connections=50)),
            ("demo-3-servers-0.25cpu-scenario-least_conn-rollup", run_result(3, "scenario", 1300, duration=10.0,
                                                                             connections=50, size={"duration": "10s"})),
        ])
        lines = compare.report(results)
        text = "\n".join(lines)
        self.assertTrue(all(len(line) <= 100 for line in lines), max(lines, key=len))
        self.assertIn("  b / a: 1.50x requests/s", text)
        self.assertIn("scenario mix, 50 connections for 10 s:", text)  # 10.4 s and 11.3 s: one size
        self.assertIn("scenario mix, 50 connections for 10s:", text)  # the lab's own record of the size
        self.assertIn("differ in connections or duration", text)

    def test_a_file_that_is_no_result_is_left_out(self):
        path = write_json(self.folder, "notes", {"hello": 1})
        self.assertIsNone(compare.read_result(path))
        old = compare.read_result(write_json(self.folder, "2-servers", run_result(2, "scenario", 150, lab=False)))
        self.assertEqual((old["kind"], old["mix"], old["servers"]), ("run", "scenario", 2))


def fake_tree(root, kind, cpu_delegated=True, uid=1000):
    """A temporary folder laid out like /sys/fs/cgroup: v2 (unified), v1 (cpu hierarchy at
    cpu/), or nothing."""
    def put(path, text=""):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    if kind == "v2":
        put(os.path.join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n")
        put(os.path.join(root, "cgroup.subtree_control"), "cpu memory pids\n")
        service = os.path.join(root, "user.slice", "user-%d.slice" % uid, "user@%d.service" % uid)
        put(os.path.join(service, "cgroup.controllers"), "cpu memory pids\n" if cpu_delegated else "memory pids\n")
        put(os.path.join(service, "cgroup.subtree_control"), "")
        put(os.path.join(service, "app.slice", "cgroup.controllers"), "cpu memory pids\n" if cpu_delegated else "memory pids\n")
        put(os.path.join(service, "app.slice", "cgroup.subtree_control"), "")
    elif kind == "v1":
        put(os.path.join(root, "cpu", "cpu.cfs_quota_us"), "-1\n")
        put(os.path.join(root, "cpu", "cpu.cfs_period_us"), "100000\n")
    return root


def read(path):
    with open(path) as f:
        return f.read()


USER_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n"


class Cgroups(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_no_cpus_means_no_limit(self):
        self.assertEqual(cgroups.choose("", "app", "/nowhere").mechanism, "none")

    def test_v2_as_root_writes_cpu_max_under_the_lab_group(self):
        fake_tree(self.root, "v2")
        group = os.path.join(self.root, "catalog")
        limit = cgroups.choose("0.25", "app2", group, uid=0, cgroup_fs=self.root, number=2)
        self.assertEqual(limit.mechanism, "cgroup v2")
        self.assertEqual(read(os.path.join(group, "app2", "cpu.max")), "25000 100000")
        self.assertIn("cpu", read(os.path.join(group, "cgroup.subtree_control")))
        self.assertEqual(limit.group, os.path.join(group, "app2"))
        self.assertEqual(limit.workers, 1)
        self.assertEqual(limit.short(), "cgroup-v2")
        self.assertEqual(cgroups.default_group(self.root, uid=0), os.path.join(self.root, "catalog"))
        # 1.5 CPUs: the quota 150000 per 100000, two workers (what the server would pick too).
        limit = cgroups.choose("1.5", "app", group, uid=0, cgroup_fs=self.root)
        self.assertEqual(read(os.path.join(group, "app", "cpu.max")), "150000 100000")
        self.assertEqual(limit.workers, 2)

    def test_v2_delegated_subtree_given_with_lab_cgroup(self):
        fake_tree(self.root, "v2")
        app_slice = os.path.join(self.root, "user.slice", "user-1000.slice", "user@1000.service", "app.slice")
        group = os.path.join(app_slice, "catalog")
        limit = cgroups.choose("0.5", "app", group, uid=1000, cgroup_fs=self.root, self_cgroup=USER_CGROUP,
                               probe=lambda: self.fail("systemd is not needed when the subtree is writable"))
        self.assertEqual(limit.mechanism, "cgroup v2")
        self.assertEqual(read(os.path.join(group, "app", "cpu.max")), "50000 100000")

    def test_v2_as_a_user_with_cpu_delegated_to_systemd(self):
        fake_tree(self.root, "v2")
        self.assertEqual(cgroups.default_group(self.root, uid=1000), "")
        limit = cgroups.choose("0.25", "app", "", uid=1000, cgroup_fs=self.root, self_cgroup=USER_CGROUP,
                               probe=lambda: True)
        self.assertEqual(limit.mechanism, "systemd")
        self.assertEqual(limit.prefix[:3], ["systemd-run", "--user", "--scope"])
        self.assertIn("CPUQuota=25%", limit.prefix)
        self.assertEqual(limit.prefix[-1], "--")
        self.assertEqual(limit.workers, 1)

    def test_v2_from_a_login_session_finds_the_user_manager_beside_it(self):
        # ssh or a text console: the shell is in session-N.scope, beside user@UID.service
        # (as seen in the Debian 12 guest of make test-vm).
        fake_tree(self.root, "v2")
        session = "0::/user.slice/user-1000.slice/session-10.scope\n"
        limit = cgroups.choose("0.25", "app", "", uid=1000, cgroup_fs=self.root, self_cgroup=session,
                               probe=lambda: True)
        self.assertEqual(limit.mechanism, "systemd")
        # No user manager at all (no login, no lingering): pinning, saying why.
        limit = cgroups.choose("0.25", "app", "", uid=1001, cgroup_fs=self.root, self_cgroup=session,
                               probe=lambda: self.fail("no user manager to ask"), cores=[0, 1])
        self.assertEqual(limit.mechanism, "pinning")
        self.assertIn("no systemd user instance", limit.warning)

    def test_v2_as_a_user_without_delegation_pins_and_says_why(self):
        fake_tree(self.root, "v2", cpu_delegated=False)
        limit = cgroups.choose("0.25", "app2", "", uid=1000, cgroup_fs=self.root, self_cgroup=USER_CGROUP,
                               probe=lambda: True, cores=[0, 1], number=2)
        self.assertEqual(limit.mechanism, "pinning")
        self.assertEqual(limit.cpus_list, (1,))
        self.assertIn("no CPU quota can be set on this machine", limit.warning)
        self.assertIn("no cpu controller delegated", limit.warning)
        self.assertIn("a whole core each, not 0.25 CPU", limit.warning)
        self.assertEqual(limit.short(), "pinned:1")
        # systemd present but refusing: pinning too, saying so.
        fake_tree(self.root, "v2")
        limit = cgroups.choose("0.25", "app", "", uid=1000, cgroup_fs=self.root, self_cgroup=USER_CGROUP,
                               probe=lambda: False, cores=[0, 1])
        self.assertEqual(limit.mechanism, "pinning")
        self.assertIn("systemd-run --user --scope -p CPUQuota= does not work here", limit.warning)

    def test_v1_writes_quota_and_period(self):
        fake_tree(self.root, "v1")
        group = os.path.join(self.root, "cpu", "catalog")
        self.assertEqual(cgroups.default_group(self.root, uid=0), group)
        limit = cgroups.choose("0.5", "app", group, uid=0, cgroup_fs=self.root)
        self.assertEqual(limit.mechanism, "cgroup v1")
        self.assertEqual(read(os.path.join(group, "app", "cpu.cfs_quota_us")), "50000")
        self.assertEqual(read(os.path.join(group, "app", "cpu.cfs_period_us")), "100000")

    def test_v1_not_writable_pins(self):
        fake_tree(self.root, "v1")
        cpu = os.path.join(self.root, "cpu")
        os.chmod(cpu, 0o555)
        try:
            if os.access(cpu, os.W_OK):
                self.skipTest("root writes anywhere: covered by the integration test as a user")
            limit = cgroups.choose("2", "app", os.path.join(cpu, "catalog"), uid=1000, cgroup_fs=self.root,
                                   cores=[0, 1, 2, 3])
            self.assertEqual(limit.mechanism, "pinning")
            self.assertEqual(limit.cpus_list, (0, 1))
            self.assertIn("not writable", limit.warning)
        finally:
            os.chmod(cpu, 0o755)

    def test_no_cgroup_at_all_pins_whole_cores(self):
        fake_tree(self.root, "none")
        limit = cgroups.choose("1.5", "app3", os.path.join(self.root, "catalog"), uid=0, cgroup_fs=self.root,
                               cores=[0, 1], number=3)
        self.assertEqual(limit.mechanism, "pinning")
        self.assertEqual(limit.cpus_list, (0, 1))  # 1.5 CPUs: two whole cores, from core (3-1)%2
        self.assertEqual(limit.workers, 2)
        self.assertIn("no cgroup cpu controller", limit.warning)


class Ports(unittest.TestCase):
    def test_choice(self):
        self.assertEqual(ports.choose(8080, None, set()), (8080, False))
        self.assertEqual(ports.choose(8080, None, {8080, 8081}), (8082, True))
        self.assertEqual(ports.choose(8080, 8085, {8080}), (8085, False))  # the last start's port
        self.assertEqual(ports.choose(8080, 8085, {8085}), (8080, True))   # it is busy now
        self.assertEqual(ports.choose(9090, None, set(), reserved={9090}), (9091, True))
        self.assertEqual(ports.next_free(3000, {3001}, {3002}, [3003]), 3004)

    def test_listening_ports_reads_proc_net_tcp(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("  sl  local_address rem_address   st\n"
                    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n"
                    "   1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000\n")
        try:
            self.assertEqual(ports.listening_ports((f.name,)), {8080})
        finally:
            os.unlink(f.name)


class PgDir(unittest.TestCase):
    """Where the lab's cluster lives: LAB_DIR/pg unless root's postgres user could not enter it."""

    def test_closed_home(self):
        with tempfile.TemporaryDirectory() as top:
            os.chmod(top, 0o755)
            home = os.path.join(top, "root")
            os.makedirs(os.path.join(home, "catalog", "var"))
            os.chmod(home, 0o700)  # Debian's /root
            lab_dir = os.path.join(home, "catalog", "var")
            self.assertFalse(settings.others_can_enter(lab_dir))
            self.assertFalse(settings.others_can_enter(os.path.join(lab_dir, "not-yet")))
            got = settings.default_pg_dir(lab_dir)
            if os.geteuid() == 0:
                self.assertTrue(got.startswith("/var/lib/catalog-lab/"), got)
                self.assertEqual(got, settings.default_pg_dir(lab_dir + "/"))  # one lab, one place
                self.assertNotEqual(got, settings.default_pg_dir(os.path.join(top, "other")))
            else:  # a normal user runs PostgreSQL as themselves: var/ it is
                self.assertEqual(got, os.path.join(lab_dir, "pg"))
            os.chmod(home, 0o711)
            self.assertTrue(settings.others_can_enter(lab_dir))
            self.assertEqual(settings.default_pg_dir(lab_dir), os.path.join(lab_dir, "pg"))


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Entry(unittest.TestCase):
    """The lab's entry point and the Makefile around it, as a user meets them."""

    def run_lab(self, *args):
        """python3 -m lab ARGS with stdout a pipe whose reader has already gone (make status |
        head, once head has its lines): every write fails with EPIPE."""
        import subprocess
        reader, writer = os.pipe()
        os.close(reader)
        try:
            return subprocess.run([sys.executable, "-m", "lab"] + list(args), stdout=writer,
                                  stderr=subprocess.PIPE, cwd=REPO, timeout=60)
        finally:
            os.close(writer)

    def test_a_reader_that_stops_early_gets_no_traceback(self):
        done = self.run_lab("help")
        self.assertNotIn(b"Traceback", done.stderr)
        self.assertNotIn(b"BrokenPipeError", done.stderr)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_budget_text_says_how_much_is_in_use(self):
        from lab import cli
        self.assertEqual(cli.budget_text(10, 3), "budget 10 (3 per server x 3 = 9 in use, 1 unused)")
        self.assertEqual(cli.budget_text(10, 2), "budget 10 (5 per server x 2 = 10 in use)")
        self.assertEqual(cli.budget_text(10, 1), "budget 10 (10 per server x 1 = 10 in use)")

    def test_the_solutions_nginx_uses_the_labs_health_check_settings(self):
        """SCENARIO asks the learner to compare solution/'s hand-written nginx with the lab's
        generated one."""
        import re
        from lab import configs
        lab_conf = configs.nginx_conf(ports=[3101], listen="127.0.0.1:8080", prefix="/p", pid_file="/p/pid",
                                      error_log="/p/err", workers="1", root=False, events_json="/p/e.json",
                                      prom_port=9090, dashboard_dir="/p/d")
        want = set(re.findall(r"server \S+ (max_fails=\S+ fail_timeout=\S+);", lab_conf))
        self.assertEqual(len(want), 1, lab_conf)
        for name in ("nginx.hand.conf",):
            with open(os.path.join(REPO, "solution", name)) as f:
                got = set(re.findall(r"^\s*server \S+ ([^;]*);", f.read(), re.M))
            self.assertEqual(got, want, "solution/%s" % name)

    def test_a_fresh_build_keeps_every_object(self):
        """make deletes objects it made through a chain of pattern rules (intermediate files);
        the next make (a second make up) then compiles them all again."""
        import shutil
        import subprocess
        if not shutil.which("make"):
            self.skipTest("no make")
        with tempfile.TemporaryDirectory() as empty:
            plan = subprocess.run(["make", "-n", "--no-print-directory", "BUILD=" + empty, "all"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60).stdout
        removed = [w for line in plan.splitlines() if line.startswith("rm ") and not line.startswith("rm -f")
                   for w in line.split()[1:] if w.endswith(".o")]
        self.assertEqual(removed, [], "make would delete these after the build, and build them again next time")
        self.assertIn("catalog-server", plan)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1, argv=[sys.argv[0]]).result
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    print("lab: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
