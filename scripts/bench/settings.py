"""settings.py: where make bench finds things, and the BENCH_* environment it reads
(bench.py's docstring says what each setting does).  Importing it puts tests/integration/common
(harness.py, capacity_server.py) and the repository's root (pytools/) on sys.path."""
import glob
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "integration", "common"))
sys.path.insert(0, REPO_ROOT)

DURATION_S = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "100"))
PRODUCTS = int(os.environ.get("BENCH_PRODUCTS", "5000"))
ORDERS = int(os.environ.get("BENCH_ORDERS", "500000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
BUILD = os.environ.get("CATALOG_BUILD") or os.path.join(REPO_ROOT, "build")
OUTPUT = os.environ.get("BENCH_OUTPUT", os.path.join(REPO_ROOT, "BENCHMARKS.md"))
BASELINE = os.environ.get("BENCH_BASELINE", "")
BASELINE_NAME = os.environ.get("BENCH_BASELINE_NAME", "")  # e.g. "main at 8095eb7"
ONLY_CEILING = os.environ.get("BENCH_ONLY", "") == "ceiling"  # section 5 only
ONLY_REPLICAS = os.environ.get("BENCH_ONLY", "") == "replicas"  # section 6 only
ONLY_GOALS = os.environ.get("BENCH_ONLY", "") != ""  # set: section 0 only
ONLY_RUNS = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w and w != "goals"]
CEILING_SERVICE_MS = float(os.environ.get("BENCH_CEILING_SERVICE_MS", "2"))
CEILING_NICE = int(os.environ.get("BENCH_CEILING_NICE", "-10" if os.geteuid() == 0 else "0"))
TRANSPORT = os.environ.get("BENCH_DB_TRANSPORT", "tcp")
if TRANSPORT not in ("unix", "tcp"):
    sys.exit("bench: BENCH_DB_TRANSPORT must be unix or tcp")
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "1") == "1" and shutil.which("valgrind") is not None
PGBENCH = shutil.which("pgbench") or (sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench")) or ["pgbench"])[-1]
POOL = 10  # the contract's DB_POOL_MAX, and pgbench's client count
MIX = ["/products?category=electronics", "/products/1", "/report"]
CATEGORY = "/products?category=electronics"
OTHER_TRANSPORT = "tcp" if TRANSPORT == "unix" else "unix"
