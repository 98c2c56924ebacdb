"""loadtest_vs_wrk.py: section 4, catalog-loadtest against wrk on the same target
(scripts/bench-loadtest.sh, when present)."""
import os
import subprocess

from report import say
from settings import BUILD, DURATION_S, REPO_ROOT


def section():
    """Runs scripts/bench-loadtest.sh.  Returns (title, body)."""
    bench_loadtest = os.path.join(REPO_ROOT, "scripts", "bench-loadtest.sh")
    if os.path.exists(bench_loadtest):
        say("\n== 4. catalog-loadtest vs wrk (scripts/bench-loadtest.sh)")
        proc = subprocess.run(["bash", bench_loadtest, BUILD],
                              env=dict(os.environ, DURATION=str(max(3, DURATION_S // 2)),
                                       ROUNDS="2"),
                              capture_output=True, text=True, timeout=600)
        text = (proc.stdout + proc.stderr).strip()
        for line in text.splitlines():
            say("  " + line)
        return ("4. catalog-loadtest against wrk",
                "scripts/bench-loadtest.sh (DURATION="
                f"{max(3, DURATION_S // 2)} ROUNDS=2), exit status "
                f"{proc.returncode}:\n\n```\n{text}\n```")
    say("\n== 4. skipped: scripts/bench-loadtest.sh is not there yet")
    return ("4. catalog-loadtest against wrk",
            "Skipped: scripts/bench-loadtest.sh was not there at the time.")
