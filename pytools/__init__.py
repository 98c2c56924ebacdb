"""pytools: the Python plumbing the tests, the benchmarks and the lab share (standard library
only): starting, waiting for and stopping processes, free ports in the project's range, psql,
and reading /proc.

  ports    free_port(): a free loopback port below the kernel's ephemeral range
  procs    start, spawn (detached), wait_until, wait_http, stop, stop_pid, run, tail
  procfs   /proc: a process's stat fields and children, CPU times, the machine's busy share
  pg       psql(): one statement or several through `psql -XAtq`

Nothing to install: a program puts the repository's root on sys.path and imports it
(tests/integration/common/harness.py and scripts/bench/settings.py do; the lab runs from the root,
scripts/lab.sh sets PYTHONPATH):

    sys.path.insert(0, REPO_ROOT)
    from pytools import ports, procs
"""
