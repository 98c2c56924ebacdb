"""report.py: what make bench prints and writes: say() (every line also kept for the report's
appendix), the figures' text (rates, ratios, verdicts, failures), markdown tables, and
BENCHMARKS.md itself."""
import os

from machine import machine
from settings import CONNECTIONS, DURATION_S, ORDERS, OUTPUT, PRODUCTS, ROUNDS

log_lines = []  # everything printed, for the report's appendix


def say(text=""):
    print(text, flush=True)
    log_lines.append(text)


def failures_text(run):
    """"0", or "65 (5xx 60, timeouts 5)"."""
    detail = ", ".join(f"{k} {v}" for k, v in run.get("kinds", {}).items() if v)
    return f"{run['failures']} ({detail})" if detail else str(run["failures"])


def verdict(met):
    return "met" if met else "NOT met"


def rate_text(value):
    """A rate: whole numbers, one decimal below 100 (a few reports per second)."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def rates(values):
    return "/".join(rate_text(v) for v in values)


def ratio(a, b):
    return a / b if b else float("nan")


def table(header, rows):
    """A markdown table (also readable as plain text)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write(sections, started, finished, commit, seed_s, busy, load):
    """Writes OUTPUT (BENCHMARKS.md): the run's facts, SECTIONS [(title, body)] and everything
    said.  busy and load: (before, after) the run, the machine's busy share and load averages."""
    busy_before, busy_after = busy
    load_before, load_after = load
    others = ("Other developers' builds, tests and load runs were using this machine's CPUs "
              "during the run: absolute figures are lower, and noisier, than on a quiet "
              "machine; the ratios were measured side by side and suffer less."
              if max(busy_before, busy_after) > 0.2 else
              # The load average trails by minutes (earlier work, the bench's own runs); the
              # busy share is measured over one second.
              "The machine was otherwise idle (its CPUs' busy share, measured over one second "
              "before and after; the load average trails earlier work by minutes).")
    with open(OUTPUT, "w", encoding="utf-8") as out:
        out.write("# Benchmarks\n\n")
        out.write("Written by `make bench` (scripts/bench.sh -> scripts/bench/bench.py); every "
                  "figure below comes from one run on one machine.\n\n")
        out.write(f"- date: {started:%Y-%m-%d %H:%M} UTC ({(finished - started).total_seconds():.0f}"
                  " s)\n")
        out.write(f"- machine: {machine()}\n")
        out.write(f"- commit: {commit}\n")
        out.write(f"- command: `make bench` (BENCH_DURATION={DURATION_S} "
                  f"BENCH_ROUNDS={ROUNDS} BENCH_CONNECTIONS={CONNECTIONS})\n")
        out.write(f"- data: a throwaway cluster (scripts/pg.sh, PG_FAST=1: fsync off, which only "
                  f"matters for POST /orders) seeded with {PRODUCTS} products and {ORDERS} "
                  f"orders by catalog-db seed in {seed_s:.1f} s, then VACUUM ANALYZE\n")
        out.write(f"- load on the machine: {busy_before:.0%} busy before the start (load "
                  f"average {load_before[0]:.2f}), {busy_after:.0%} right after (load average "
                  f"{load_after[0]:.2f}). {others}\n")
        out.write("- everything (load generator, servers, nginx, PostgreSQL) shares the same "
                  f"{os.cpu_count()} CPUs over loopback.\n\n")
        for title, body in sections:
            out.write(f"## {title}\n\n{body}\n\n")
        out.write("## Output of the run\n\n```\n" + "\n".join(log_lines) + "\n```\n")
    say(f"bench: wrote {OUTPUT}")
