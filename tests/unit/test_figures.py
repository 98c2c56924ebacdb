"""The docs' measured figures against their recording (scripts/figures.py): every marked figure in
README.md, SCENARIO.md, solution/ and docs/ equals docs/figures/recorded.json, and the answer
key's measured lines carry no unmarked figure.  Timing-free: nothing is run, only files read.
Also checks the checker on made-up docs (a drifted figure, an unknown name, a hand-copied number,
a range).  Run: python3 tests/unit/test_figures.py  (tests/run.sh runs it with the unit tests)."""
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(REPO, "scripts"))

import figures  # noqa: E402

MACHINE = {"cores": 2, "cpu_model": "Test CPU", "os": "Debian GNU/Linux 12 (bookworm)",
           "date": "2026-01-02T03:04:05Z", "busy_share_at_start": 0.05, "provisional": False}
RECORDING = {"rounds": 1, "duration_s": 10, "connections": 100, "demo_duration": "15s",
             "demo_connections": "50"}


class TheRepository(unittest.TestCase):
    def test_docs_agree_with_the_recording(self):
        problems = figures.check(REPO, figures.RECORDED)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_the_recording_names_its_machine(self):
        with open(figures.RECORDED, encoding="utf-8") as f:
            data = json.load(f)
        machines = figures.machines_of(data)
        self.assertEqual(len(machines), len(data["recording"].get("recordings", [None])))
        for machine in machines:
            for key in ("cores", "cpu_model", "date", "busy_share_at_start", "provisional"):
                self.assertIn(key, machine)
        self.assertEqual(set(data["figures"]), set(figures.FIGURES))

    def test_benchmarks_md_has_every_bench_figure(self):
        found = figures.bench_figures(os.path.join(REPO, "BENCHMARKS.md"))
        missing = set(figures.BENCH_CELLS) | set(figures.BENCH_TEXT) | {"bench_machine"}
        self.assertEqual(sorted(missing - set(found)), [], "BENCHMARKS.md no longer has these (scripts/figures.py)")

    def test_the_answer_key_uses_the_recording(self):
        with open(os.path.join(REPO, "solution", "ANSWERS.md"), encoding="utf-8") as f:
            text = f.read()
        used = set(figures.MARK.findall(text))
        self.assertGreater(len(used), 40)
        self.assertIn("<!--fig:machine-->", text)


class TheChecker(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="catalog-figures-test.")
        os.makedirs(os.path.join(self.root, "solution"))
        os.makedirs(os.path.join(self.root, "docs"))
        self.recorded = os.path.join(self.root, "recorded.json")
        with open(self.recorded, "w", encoding="utf-8") as f:
            json.dump({"machine": MACHINE, "recording": RECORDING, "figures": {
                "s1_rps": {"kind": "rps", "values": [159.3]},
                "b2_ratio": {"kind": "ratio", "values": [1.88, 1.99]},
                "s1_verdict": {"kind": "verdict", "values": ["yellow"]},
            }}, f)

    def tearDown(self):
        shutil.rmtree(self.root)

    def write(self, rel, text):
        with open(os.path.join(self.root, rel), "w", encoding="utf-8") as f:
            f.write(text)

    def read(self, rel):
        with open(os.path.join(self.root, rel), encoding="utf-8") as f:
            return f.read()

    def test_agreeing_figures_pass(self):
        self.write("README.md", "one server: <!--fig:s1_rps-->159.3<!--/fig--> requests/s, "
                                "two: <!--fig:b2_ratio-->1.88 to 1.99<!--/fig-->x\n")
        self.assertEqual(figures.check(self.root, self.recorded), [])

    def test_a_drifted_figure_fails_with_its_place(self):
        self.write("docs/lab.md", "intro\none server: <!--fig:s1_rps-->33.8<!--/fig--> requests/s\n")
        problems = figures.check(self.root, self.recorded)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("docs/lab.md:2", problems[0])
        self.assertIn("'33.8'", problems[0])
        self.assertIn("'159.3'", problems[0])

    def test_an_unknown_figure_fails(self):
        self.write("SCENARIO.md", "<!--fig:nope-->1<!--/fig-->\n")
        problems = figures.check(self.root, self.recorded)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("'nope' is not in", problems[0])

    def test_rewrite_puts_the_recording_in(self):
        self.write("README.md", "a <!--fig:s1_rps-->33.8<!--/fig--> b <!--fig:s1_verdict-->RED<!--/fig--> c\n")
        self.assertEqual(figures.rewrite(self.root, self.recorded), ["README.md"])
        self.assertEqual(self.read("README.md"),
                         "a <!--fig:s1_rps-->159.3<!--/fig--> b <!--fig:s1_verdict-->YELLOW<!--/fig--> c\n")
        self.assertEqual(figures.check(self.root, self.recorded), [])
        self.assertEqual(figures.rewrite(self.root, self.recorded), [])

    def test_a_hand_copied_figure_in_the_answer_key_fails(self):
        self.write("solution/ANSWERS.md",
                   "**Q7: x.** y.\nReproduce: `make loadtest` (2.5 s).\n"
                   "Measured: <!--fig:s1_rps-->159.3<!--/fig--> requests/s, p99 984 ms, 1,751.8 on\n"
                   "the browse mix (1.73x); `app 11109 (50.0%)` quoted; 0 failures, 10 connections.\n\n"
                   "Prose with 12.5 ms is not the answer key's measured text.\n\n"
                   "## The tables, filled in\n\n| requests/s | <!--fig:s1_rps-->159.3<!--/fig--> | 637.6 |\n")
        problems = figures.check(self.root, self.recorded)
        found = sorted(p.split("'")[1] for p in problems)
        self.assertEqual(found, ["1,751.8", "1.73", "637.6", "984"], problems)
        self.assertTrue(all("without a marker" in p for p in problems), problems)

    def test_a_new_bench_run_is_a_drift_until_rewritten(self):
        bench = os.path.join(self.root, "BENCHMARKS.md")
        self.write("BENCHMARKS.md", "# Benchmarks\n\n- date: 2026-01-02 03:04 UTC\n- machine: Test CPU, 2 CPUs, 1 GiB\n\n"
                   "## 1. The database's limit\n\n| work | pgbench statements/s | stack / pgbench |\n|---|---|---|\n"
                   "| scenario mix (category, product, report) | 182 (183/182) | 97% |\n\n"
                   "## 3. Options\n\nOption C, rollup / live on the mix: 13.3x with WORKERS=1, 9x\n")
        self.write("README.md", "mix <!--fig:bench_mix_pct-->100<!--/fig-->%, C <!--fig:bench_c_ratio-->13.3<!--/fig-->x "
                                "(<!--fig:bench_machine-->?<!--/fig-->)\n")
        problems = figures.check(self.root, self.recorded, bench)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("'100', the recording says '97'", problems[0])
        figures.rewrite(self.root, self.recorded, bench)
        self.assertEqual(self.read("README.md"), "mix <!--fig:bench_mix_pct-->97<!--/fig-->%, C <!--fig:bench_c_ratio-->"
                         "13.3<!--/fig-->x (<!--fig:bench_machine-->2 cores, Test CPU, 2026-01-02<!--/fig-->)\n")
        self.assertEqual(figures.check(self.root, self.recorded, bench), [])

    def test_compare_prints_each_figure_with_its_ratio(self):
        fresh = os.path.join(self.root, "fresh.json")
        with open(self.recorded, encoding="utf-8") as f:
            data = json.load(f)
        data["figures"]["s1_rps"]["values"] = [318.6]
        with open(fresh, "w", encoding="utf-8") as f:
            json.dump(data, f)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            figures.compare(self.recorded, fresh)
        line = [l for l in out.getvalue().splitlines() if l.startswith("s1_rps ")][0]
        self.assertEqual(line.split(), ["s1_rps", "159.3", "318.6", "2.00", "(outside", "the", "range)", "<-",
                                        "moved"])
        self.assertIn("1 of 3 figures moved", out.getvalue())
        # The other two are unchanged: within the range the docs state.
        self.assertIn("1 of 2 fresh figures lie within the recorded range", out.getvalue())  # b2_ratio; verdicts are not ranges

    def test_the_demo_results_are_found_by_layout_and_mix(self):
        results = os.path.join(self.root, "results")
        os.makedirs(results)
        run = {"rps": 100.0, "latency_ms": {"p99": 50.0, "p50": 10.0}, "failures": 0, "requests": 1500,
               "duration_s": 15.0, "verdict": {"level": "green"}, "by_route": {}, "by_server": {"app": {"requests": 1500}}}
        for stem in ("1-server-0.25cpu-browse", "1-server-0.25cpu", "2-servers-0.25cpu-browse", "2-servers-0.25cpu"):
            with open(os.path.join(results, stem + ".json"), "w", encoding="utf-8") as f:
                json.dump(dict(run, rps=len(stem)), f)
        for stem, rate in (("1-server-0.25cpu-browse-ceiling", 1280.0), ("2-servers-0.25cpu-browse-ceiling", 2040.0)):
            with open(os.path.join(results, stem + ".json"), "w", encoding="utf-8") as f:
                json.dump({"kind": "ceiling", "ceiling_rps": rate, "ceiling_p99_ms": 80.0}, f)
        with open(os.path.join(results, "2-servers-0.25cpu.cpu"), "w", encoding="utf-8") as f:
            f.write("CPU during the run: API servers 0.02 cores (limit 0.5), PostgreSQL 1.90 cores; this machine has 2\n")
        out = "".join("lab: %s:\nlab:     requests per server: app 1 (100%%)\nlab:     CPU during the run: API servers "
                      "0.%d0 cores (limit 0.25), PostgreSQL 0.50 cores; this machine has 2\n" % (stem, i + 1)
                      for i, stem in enumerate(("1-server-0.25cpu-browse", "1-server-0.25cpu", "2-servers-0.25cpu-browse")))
        runs = figures.demo_runs(results, 0, out)
        self.assertEqual(sorted(runs), ["d_b1", "d_b2", "d_c1", "d_c2", "d_s1", "d_s2"])
        self.assertEqual((runs["d_c1"]["ceiling_rps"], runs["d_c2"]["ceiling_rps"]), (1280.0, 2040.0))
        self.assertEqual(runs["d_b1"]["rps"], len("1-server-0.25cpu-browse"))
        self.assertEqual(runs["d_s1"]["server_cores"], 0.2)
        self.assertEqual(runs["d_b2"]["server_cores"], 0.3)
        self.assertEqual((runs["d_s2"]["server_cores"], runs["d_s2"]["pg_cores"]), (0.02, 1.9))
        os.unlink(os.path.join(results, "2-servers-0.25cpu.cpu"))
        with self.assertRaises(RuntimeError):  # no CPU line anywhere for it
            figures.demo_runs(results, 0, out)
        # The lab's later forms: a CPU line naming nginx and the load generator, the result's own "cpu".
        line = "CPU during the run: API servers 0.04 cores (limit 0.5), PostgreSQL 1.70, nginx 0.05, load generator 0.1"
        self.assertEqual(figures.read_run(os.path.join(results, "2-servers-0.25cpu.json"), line)["pg_cores"], 1.7)
        with open(os.path.join(results, "2-servers-0.25cpu.json"), "w", encoding="utf-8") as f:
            json.dump(dict(run, cpu={"servers": 0.05, "postgres": 1.8, "nginx": 0.05}), f)
        self.assertEqual(figures.demo_runs(results, 0, out)["d_s2"]["pg_cores"], 1.8)

    def test_ranges_and_kinds_render(self):
        self.assertEqual(figures.render({"kind": "rps", "values": [1751.84, 1690.0]}), "1,690.0 to 1,751.8")
        self.assertEqual(figures.render({"kind": "ms", "values": [4580.2]}), "4,580")
        self.assertEqual(figures.render({"kind": "verdict", "values": ["red", "yellow", "red"]}), "YELLOW or RED")
        self.assertEqual(figures.render({"kind": "cores", "values": [0.214, 0.206]}), "0.21")
        self.assertIn("provisional", figures.machine_text([dict(MACHINE, provisional=True, busy_share_at_start=0.6)]))


class Recordings(unittest.TestCase):
    """record --add: a second day's rounds join the first's; each day keeps its machine."""

    def recording(self, date, values, rounds, **settings):
        return {"about": "x", "machines": [dict(MACHINE, date=date)],
                "recording": dict(RECORDING, rounds=rounds, **settings,
                                  recordings=[{"date": date, "rounds": rounds, "seconds": 600.0}]),
                "figures": {name: {"kind": kind, "values": v} for name, (kind, v) in values.items()}}

    def test_rounds_add_up_and_ranges_span_both(self):
        old = self.recording("2026-12-06T20:00:00Z", {"s1_rps": ("rps", [118.3, 133.5]),
                                                      "gone": ("rps", [1.0, 2.0])}, 2)
        new = self.recording("2026-12-07T02:00:00Z", {"s1_rps": ("rps", [104.0]), "b2_ratio": ("ratio", [1.5])}, 1)
        merged = figures.merge_recordings(old, new)
        self.assertEqual(merged["figures"]["s1_rps"]["values"], [118.3, 133.5, 104.0])
        self.assertEqual(figures.render(merged["figures"]["s1_rps"]), "104.0 to 133.5")
        self.assertEqual(merged["figures"]["b2_ratio"]["values"], [1.5])  # new in this recording
        self.assertNotIn("gone", merged["figures"])  # FIGURES no longer names it
        self.assertEqual(merged["recording"]["rounds"], 3)
        self.assertEqual([r["rounds"] for r in merged["recording"]["recordings"]], [2, 1])
        self.assertEqual(len(merged["machines"]), 2)
        self.assertEqual(figures.machine_text(merged["machines"]),
                         "2 cores (Test CPU), Debian GNU/Linux 12 (bookworm), 2026-12-06 and 2026-12-07")
        self.assertEqual(figures.machine_short_text(merged["machines"]), "2 cores, Test CPU, 2026-12-06 and 2026-12-07")

    def test_a_file_with_one_machine_still_reads(self):
        old = {"about": "x", "machine": dict(MACHINE, date="2026-12-06T20:00:00Z"),
               "recording": dict(RECORDING, rounds=2, seconds=1219.1),
               "figures": {"s1_rps": {"kind": "rps", "values": [118.3, 133.5]}}}
        new = self.recording("2026-12-07T02:00:00Z", {"s1_rps": ("rps", [140.0])}, 1)
        merged = figures.merge_recordings(old, new)
        self.assertEqual(merged["recording"]["recordings"][0], {"date": "2026-12-06T20:00:00Z", "rounds": 2,
                                                                 "seconds": 1219.1})
        self.assertEqual(figures.render(merged["figures"]["s1_rps"]), "118.3 to 140.0")

    def test_other_machines_are_named_each(self):
        machines = [dict(MACHINE, date="2026-12-06T20:00:00Z"),
                    dict(MACHINE, cores=8, cpu_model="Apple M2", date="2026-12-08T10:00:00Z", provisional=True,
                         busy_share_at_start=0.3)]
        text = figures.machine_text(machines)
        self.assertTrue(text.startswith("2 cores (Test CPU), Debian GNU/Linux 12 (bookworm), 2026-12-06; "
                                        "8 cores (Apple M2), "), text)
        self.assertIn("provisional: the machine was already 30% busy with other work when 1 of the 2 recordings "
                      "started", text)

    def test_add_refuses_other_settings_before_running(self):
        root = tempfile.mkdtemp(prefix="catalog-figures-test.")
        try:
            path = os.path.join(root, "recorded.json")
            figures.write_recorded(self.recording("2026-12-06T20:00:00Z", {"s1_rps": ("rps", [1.0])}, 1), path)
            with open(path, encoding="utf-8") as f:
                before = f.read()
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
                rc = figures.record(path, 1, 20, 100, 60, add=True)  # the file has 10 s runs
            self.assertEqual(rc, 1)
            self.assertIn("duration_s 10, not 20", err.getvalue())
            with open(path, encoding="utf-8") as f:
                self.assertEqual(f.read(), before)
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
                rc = figures.record(os.path.join(root, "none.json"), 1, 10, 100, 60, add=True)
            self.assertEqual(rc, 1)
            self.assertIn("cannot read the recording to add to", err.getvalue())
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1, argv=[sys.argv[0]]).result
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    print("figures: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
