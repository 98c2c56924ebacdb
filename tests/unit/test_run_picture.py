"""Unit tests of lab/picture.py: a run's picture is drawn from the load generator's own
per_second series (whole from its first second, nothing before it), with Prometheus only for
the CPU (its counters turned into per-interval rates over the run), and render still draws the
series files of older versions.  No Prometheus, no lab: synthetic files in a temporary folder.
Run: python3 tests/unit/test_run_picture.py  (tests/run.sh runs it with the unit tests)."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "lab", "picture.py")
spec = importlib.util.spec_from_file_location("run_picture", SCRIPT)
picture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(picture)


def result_with_seconds(rates, failures_at=()):
    """A catalog-loadtest --json result whose per_second has REQUESTS[k] answers in second k."""
    seconds = [{"t": k, "requests": n, "failures": 3 if k in failures_at else 0,
                "p50_ms": 10.0 + k if n else 0.0, "p99_ms": 40.0 + k if n else 0.0} for k, n in enumerate(rates)]
    return {"label": "2-servers", "target": "http://127.0.0.1:8080", "requests": sum(rates),
            "rps": sum(rates) / len(rates), "duration_s": float(len(rates)), "connections": 100,
            "errors": 0, "timeouts": 0, "non2xx": 0, "status_5xx": 3 * len(failures_at),
            "failures": 3 * len(failures_at), "latency_ms": {"p50": 12.0, "p99": 55.0},
            "per_second": seconds}


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, timeout=60)


class Picture(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_the_series_is_the_load_generators_from_its_first_second(self):
        # A plateau of 3,000 requests/s from the first second, as the load generator counted it
        # (Prometheus would have had nothing for a server started a moment before).
        rates = [3000] * 30
        with open(self.path("run.json"), "w") as f:
            json.dump(result_with_seconds(rates, failures_at={7}), f)
        done = run("fetch", "--result", self.path("run.json"), "--start", "1000", "--end", "1030",
                   "--out", self.path("run.series.json"))
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(self.path("run.series.json")) as f:
            series = json.load(f)["series"]
        self.assertEqual([p[1] for p in series["rps"]], rates)
        self.assertEqual(series["rps"][0], [0.5, 3000])   # the first second is there, whole
        self.assertTrue(all(p[0] >= 0 for key in series for p in series[key]), "a point before the run's start")
        self.assertEqual([p[1] for p in series["failures"]][7], 3)
        self.assertEqual(series["p99_ms"][2], [2.5, 42.0])
        self.assertEqual(series["p50_ms"][2], [2.5, 12.0])
        self.assertFalse(any(k.startswith("cpu ") for k in series), "no Prometheus given, no CPU")

        done = run("render", self.path("run.html"), self.path("run.series.json"))
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(self.path("run.html")) as f:
            page = f.read()
        self.assertNotIn("<script", page)
        # The requests/s chart's first polyline: 30 points, the first at the left edge's second,
        # all at one height (the plateau), none left of the plot (before 0 s).
        chart = page[page.index('aria-label="Requests per second"'):]
        points = [tuple(map(float, p.split(","))) for p in re.search(r'<polyline points="([^"]+)"', chart).group(1).split()]
        self.assertEqual(len(points), 30)
        self.assertEqual(len({y for _, y in points}), 1, "a plateau drawn as a flat line")
        left = 64  # the plot's left edge (svg_chart)
        self.assertTrue(all(x >= left for x, _ in points))
        self.assertLess(points[0][0] - left, 30, "the line starts within the first second")

    def test_a_silent_second_is_drawn_as_zero_and_its_latency_left_out(self):
        with open(self.path("run.json"), "w") as f:
            json.dump(result_with_seconds([100, 0, 100]), f)
        self.assertEqual(run("fetch", "--result", self.path("run.json"), "--start", "0", "--end", "3",
                             "--out", self.path("s.json")).returncode, 0)
        with open(self.path("s.json")) as f:
            series = json.load(f)["series"]
        self.assertEqual(series["rps"][1], [1.5, 0])
        self.assertIsNone(series["p99_ms"][1][1])

    def test_the_runs_short_last_second_is_a_rate_not_a_drop(self):
        for duration, last in ((30.6, [30.5, 166.7]), (30.3, None)):
            result = result_with_seconds([100] * 31)
            result["duration_s"] = duration
            with open(self.path("run.json"), "w") as f:
                json.dump(result, f)
            self.assertEqual(run("fetch", "--result", self.path("run.json"), "--start", "0", "--end", "31",
                                 "--out", self.path("s.json")).returncode, 0)
            with open(self.path("s.json")) as f:
                rps = json.load(f)["series"]["rps"]
            self.assertEqual(rps[29], [29.5, 100])
            if last:  # 100 answers in the 0.6 s the run lasted of its last second: 167/s
                self.assertEqual(rps[-1], last)
            else:  # 0.3 s: left out
                self.assertEqual(len(rps), 30)

    def test_a_result_without_per_second_is_refused_with_the_reason(self):
        result = result_with_seconds([1])
        del result["per_second"]
        with open(self.path("old.json"), "w") as f:
            json.dump(result, f)
        done = run("fetch", "--result", self.path("old.json"), "--start", "0", "--end", "1", "--out", self.path("x.json"))
        self.assertEqual(done.returncode, 1)
        self.assertIn("no per_second", done.stderr)

    def test_cpu_rates_cover_the_run_only(self):
        # process_cpu_seconds_total scraped every 5 s from 10 s before the run (start 100) to after
        # it (end 130): 0.25 cores while it ran, nothing before.
        samples = [[t, 0.0 if t <= 100 else (t - 100) * 0.25] for t in range(90, 141, 5)]
        rates = picture.counter_rates(samples, 100, 130)
        self.assertEqual(rates[0], [2.5, 0.25])
        self.assertEqual(rates[-1], [27.5, 0.25])
        self.assertTrue(all(0 <= x <= 30 for x, _ in rates))
        self.assertEqual(len(rates), 6)

    def test_render_still_draws_an_older_series_file(self):
        old = {"label": "1-server", "start": 0, "end": 30, "series": {
            "rps": [[k + 0.5, 150.0] for k in range(-10, 35)],
            "rps app": [[k + 0.5, 150.0] for k in range(-10, 35)],
            "p99_ms": [[k * 5 + 2.5, 900.0] for k in range(-2, 7)]}}
        with open(self.path("old.series.json"), "w") as f:
            json.dump(old, f)
        done = run("render", self.path("old.html"), self.path("old.series.json"))
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(self.path("old.html")) as f:
            self.assertIn("<polyline", f.read())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1, argv=[sys.argv[0]]).result
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    print("run_picture: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
