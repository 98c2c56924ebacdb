"""goals.py: section 0, the goals table of issue 16: every row a ratio measured side by side in
this run (the stack against pgbench, one pool size against another, server CPU per listing),
for this build and, with BENCH_BASELINE, an older one."""
import os
import statistics
import urllib.request

from instructions import instructions_per_listing
from report import failures_text, rate_text, rates, ratio, say, table, verdict
from settings import (BASELINE, BASELINE_NAME, BUILD, CALLGRIND, CATEGORY, CONNECTIONS, DURATION_S,
                      MIX, ONLY_RUNS, OTHER_TRANSPORT, POOL, ROUNDS, TRANSPORT)
import harness  # noqa: E402 (tests/integration/common, on sys.path through settings)
from pytools import procfs  # noqa: E402
from stack import Server, combine, load, pgbench, stack_run


def static_listing_cpu(cluster, folder, path):
    """The floor under the server's CPU per listing: nginx (one worker, sendfile off, so it
    copies the bytes from user memory as the server does) sending the same listing body from a
    file at CONNECTIONS for DURATION_S.  Returns nginx's CPU ms per request (user, system)."""
    server = Server(cluster, folder, "static-body")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as r:
            body = r.read()
    finally:
        server.stop()
    conf_dir = os.path.join(folder, "nginx-static")
    os.makedirs(conf_dir, exist_ok=True)
    with open(os.path.join(conf_dir, "listing.json"), "wb") as f:
        f.write(body)
    proc, port = harness.start_nginx(conf_dir, f"""    sendfile off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ root {conf_dir}; try_files /listing.json =404; default_type application/json; }}
    }}
""", "/")
    try:
        def cpu():  # nginx's master and its worker, (user, system) seconds
            return procfs.cpu_split_s([proc.pid] + procfs.child_pids(proc.pid))

        load(folder, port, ["/"], "static warm-up", duration_s=1)
        before = cpu()
        result = load(folder, port, ["/"], "static listing")
        after = cpu()
        requests = max(1, result["requests"])
        return ((after[0] - before[0]) * 1000 / requests, (after[1] - before[1]) * 1000 / requests)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- 0. the goals table (issue 16): every row a ratio measured side by side in this run ----
GOALS = [
    # key, measure, goal text, test on the value
    ("product", "`/products/1`, stack (100 connections, `DB_POOL_MAX=10`) / pgbench plain",
     ">= 1.0", lambda v: v >= 1.0),
    ("pool1", "`/products/1` with `DB_POOL_MAX=1` / with 10 (one connection carries the load)",
     ">= 0.9", lambda v: v >= 0.9),
    ("category", "`/products?category=electronics`, stack / pgbench with the reference's listing "
     "(every column)", ">= 0.9",
     lambda v: v >= 0.9),
    ("category_cpu", "server CPU per category request at 100 connections (user + system, "
     f"PostgreSQL over {'its Unix-domain socket' if TRANSPORT == 'unix' else 'loopback TCP'})",
     "<= 0.25 ms", lambda v: v <= 0.25),
    ("report", "`/report` live (10 connections), stack / pgbench with the reference's SQL",
     ">= 2.5", lambda v: v >= 2.5),
    ("mix", "scenario mix, stack / pgbench with the reference's three statements", ">= 2.0",
     lambda v: v >= 2.0),
    ("failed", "every route, 0 failed requests at those loads", "0", lambda v: v == 0),
]
# Measured beside the goals, for reading them (no goal of their own).
FIGURES = [
    ("category_cpu_other", "the same, PostgreSQL over "
     + ("loopback TCP" if OTHER_TRANSPORT == "tcp" else "its Unix-domain socket")),
    ("category_instructions", "instructions per category listing in the server's user space "
     "(callgrind, 100 sequential listings, one worker)"),
    ("category_static_cpu", "nginx sending the same listing from a file (one worker, sendfile "
     "off), CPU per request: the cost of sending the bytes alone"),
    ("category_pg_cpu", "PostgreSQL CPU per category listing in the stack (all its processes)"),
    ("category_total_cpu", "server + PostgreSQL CPU per category listing"),
    ("pool1_cores", "`/products/1` with `DB_POOL_MAX=1`: cores used by PostgreSQL (one backend) "
     "/ by the server"),
    ("product_cores", "`/products/1` with `DB_POOL_MAX=10`: cores used by PostgreSQL / by the "
     "server"),
]


def goal_value_text(key, value):
    if value is None:
        return "-"
    if key in ("category_pg_cpu", "category_total_cpu"):
        return f"{value:.3f} ms"
    if key in ("category_cpu", "category_cpu_other", "category_static_cpu"):
        if isinstance(value, tuple):  # (total, user, system)
            return f"{value[0]:.3f} ms ({value[1]:.3f} user + {value[2]:.3f} system)"
        return f"{value:.3f} ms"
    if key in ("pool1_cores", "product_cores"):
        return f"{value[0]:.2f} / {value[1]:.2f} cores"
    if key == "category_instructions":
        return f"{value / 1e6:.2f} M"
    if key == "failed":
        return f"{value:,}"
    return f"{value:.2f}"


def goals_section(cluster, folder, script):
    """Measures every row of GOALS for this build and, with BENCH_BASELINE (a build folder of
    an older tree), for that build too, alternating: pgbench, then each build's stack, for
    ROUNDS rounds.  Returns (title, body, {build label: {key: value}})."""
    builds = [("new", BUILD)]
    if BASELINE:
        builds.insert(0, ("before", BASELINE))
    say("\n== 0. the goals: every ratio side by side in this run ("
        + " vs ".join(f"{label}: {path}" for label, path in builds) + ")")
    # pgbench: (script, statements per transaction); the stack: (paths, connections, server).
    work = {
        "product": ("product.sql", 1, ["/products/1"], CONNECTIONS, "pool10"),
        "pool1": (None, 1, ["/products/1"], CONNECTIONS, "pool1"),
        "category": ("category_reference.sql", 1, [CATEGORY], CONNECTIONS, "pool10"),
        "report": ("report_reference.sql", 1, ["/report"], POOL, "pool10"),
        "mix": ("mix_reference.sql", 3, MIX, CONNECTIONS, "pool10"),
        # The server's CPU only (no pgbench): the listing with PostgreSQL over the other
        # transport.
        "category_other": (None, 1, [CATEGORY], CONNECTIONS, "other"),
    }
    if ONLY_RUNS:
        unknown = [w for w in ONLY_RUNS if w not in work]
        if unknown:
            raise SystemExit(f"bench: BENCH_ONLY: no run named {', '.join(unknown)} "
                             f"(the runs: goals, {', '.join(work)})")
        work = {key: value for key, value in work.items() if key in ONLY_RUNS}
    other_env = cluster.tcp_env if OTHER_TRANSPORT == "tcp" else cluster.unix_env
    pg = {key: [] for key in work}
    pg_cpu = []  # (PostgreSQL CPU s, transactions) of pgbench's reference listing
    stack = {(label, key): [] for label, _ in builds for key in work}
    for _ in range(ROUNDS):
        for key, (pgscript, per_tx, paths, connections, which) in work.items():
            if pgscript:
                tps, failed = pgbench(cluster, script(pgscript),
                                      cpu=pg_cpu if key == "category" else None)
                pg[key].append((tps * per_tx, failed))
            for label, build in builds:
                settings = {"DB_POOL_MAX": 1} if which == "pool1" else {}
                server = Server(cluster, folder, f"{label}-{which}", build=build,
                                db_env=other_env if which == "other" else None, **settings)
                try:
                    load(folder, server.port, paths, "warm-up", connections=connections,
                         duration_s=1)
                    stack[(label, key)].append(stack_run(server, folder, paths,
                                                         f"{label} {key}", cluster=cluster,
                                                         connections=connections))
                finally:
                    server.stop()
    pg_rate = {key: statistics.median(r for r, _ in runs) for key, runs in pg.items() if runs}
    if ONLY_RUNS:  # a quick look: the runs, side by side, and nothing written
        for key in work:
            for label, _ in builds:
                r = combine(stack[(label, key)])
                base = pg_rate.get(key) or (combine(stack[(label, "product")])["rps"]
                                            if key == "pool1" and "product" in work else None)
                say(f"  {label} {key}: stack {rate_text(r['rps'])} req/s ({rates(r['rps_all'])})"
                    + (f", pgbench {rate_text(pg_rate[key])}" if key in pg_rate else "")
                    + (f", ratio {ratio(r['rps'], base):.2f}" if base else "")
                    + f", failures {r['failures']}, CPU {r['cpu_ms_per_request']:.4f} ms/request"
                    f", cores PG {r['cores'][0]:.2f} server {r['cores'][1]:.2f}")
        return None, None, None
    values, rows, detail = {}, [], []
    pg_rate = {key: statistics.median(r for r, _ in runs) for key, runs in pg.items() if runs}
    for label, _ in builds:
        run = {key: combine(stack[(label, key)]) for key in work}
        v = {
            "product": ratio(run["product"]["rps"], pg_rate["product"]),
            "pool1": ratio(run["pool1"]["rps"], run["product"]["rps"]),
            "category": ratio(run["category"]["rps"], pg_rate["category"]),
            "category_cpu": (run["category"]["cpu_ms_per_request"],
                             run["category"]["user_ms_per_request"],
                             run["category"]["sys_ms_per_request"]),
            "category_pg_cpu": run["category"]["pg_ms_per_request"],
            "category_total_cpu": (run["category"]["cpu_ms_per_request"]
                                   + run["category"]["pg_ms_per_request"]),
            "category_cpu_other": (run["category_other"]["cpu_ms_per_request"],
                                   run["category_other"]["user_ms_per_request"],
                                   run["category_other"]["sys_ms_per_request"]),
            "pool1_cores": run["pool1"]["cores"],
            "product_cores": run["product"]["cores"],
            "report": ratio(run["report"]["rps"], pg_rate["report"]),
            "mix": ratio(run["mix"]["rps"], pg_rate["mix"]),
            "failed": sum(r["failures"] for r in run.values()),
        }
        values[label] = v
        for key in work:
            r = run[key]
            pg_text = (f"{rate_text(pg_rate[key])} ({rates(x for x, _ in pg[key])})"
                       if key in pg_rate else "-")
            detail.append([label, key, pg_text, f"{rate_text(r['rps'])} ({rates(r['rps_all'])})",
                           failures_text(r), f"{r['p99']:.1f}",
                           f"{r['cpu_ms_per_request']:.4f} ({r['user_ms_per_request']:.4f} + "
                           f"{r['sys_ms_per_request']:.4f})"])
            say(f"  {label} {key}: pgbench {pg_text}, stack {rate_text(r['rps'])} req/s "
                f"({rates(r['rps_all'])}), failures {r['failures']}, p99 {r['p99']:.1f} ms, "
                f"CPU {r['cpu_ms_per_request']:.4f} ms/request")
    pg_reference_ms = (sum(c for c, _ in pg_cpu) * 1000 / max(1, sum(n for _, n in pg_cpu))
                       if pg_cpu else None)
    static = static_listing_cpu(cluster, folder, "/products?category=electronics")
    for label, _ in builds:
        values[label]["category_static_cpu"] = (static[0] + static[1], static[0], static[1])
    if CALLGRIND:
        for label, build in builds:
            values[label]["category_instructions"] = instructions_per_listing(
                cluster, folder, build, label)
    header = ["measure"] + [label for label, _ in builds] + ["goal", "met"]
    for key, measure, goal, test in GOALS:
        new = values["new"][key]
        if isinstance(new, tuple):
            new = new[0]
        rows.append([measure] + [goal_value_text(key, values[label][key]) for label, _ in builds]
                    + [goal, "yes" if test(new) else "**no**"])
        say(f"  {measure}: " + ", ".join(f"{label} {goal_value_text(key, values[label][key])}"
                                         for label, _ in builds)
            + f" (goal {goal}): {verdict(test(new))}")
    for key, measure in FIGURES:
        if all(key in values[label] for label, _ in builds):
            rows.append([measure] + [goal_value_text(key, values[label][key])
                                     for label, _ in builds] + ["-", "-"])
            say(f"  {measure}: " + ", ".join(f"{label} {goal_value_text(key, values[label][key])}"
                                             for label, _ in builds))
    if pg_reference_ms is not None:
        rows.append(["PostgreSQL CPU per listing under pgbench's reference listing (text, every "
                     "column)"] + [f"{pg_reference_ms:.3f} ms" for _ in builds] + ["-", "-"])
        say(f"  PostgreSQL CPU per listing under pgbench's reference listing: "
            f"{pg_reference_ms:.3f} ms")
    pg_failed = sum(f for runs in pg.values() for _, f in runs)
    body = (
        "Every ratio is measured in this run, side by side: for each row pgbench (`-M prepared "
        f"-c {POOL} -j 2`, the statement named) and then the stack (catalog-loadtest -> one "
        "catalog-server, default WORKERS, fresh for each run after a 1 s warm-up) take turns, "
        f"{ROUNDS} rounds of {DURATION_S} s; medians. 'pgbench plain' runs the server's own "
        "lookup statement, read from sql/statements.sql (the stack may ask for "
        "binary columns; pgbench gets text). The reference's report joins every order row to "
        "its product and groups by category (scripts/bench/server_sql.py REFERENCE_REPORT); "
        "the reference's category listing selects every column (the server's leaves out the "
        "category, which it writes from the request), and its three statements are that "
        "listing, the lookup and that report."
        + (f" 'before' is the build in `{BASELINE}`"
           + (f" ({BASELINE_NAME})" if BASELINE_NAME else " (an older tree)")
           + ", its server against the same database (with this tree's schema and seed)."
           if BASELINE else "")
        + f" PostgreSQL is reached over {'its Unix-domain socket' if TRANSPORT == 'unix' else 'loopback TCP'} "
        "(BENCH_DB_TRANSPORT) by pgbench and the servers alike; server CPU is the server "
        "process's user and system time over the run (/proc/PID/stat; "
        "`process_cpu_seconds_total` for the total; the kernel splits the two by sampling "
        "at each clock tick, so the split is rough in short runs, the total is not)."
        + "\n\n" + table(header, rows)
        + ("\n\nFailed pgbench transactions: %d." % pg_failed if pg_failed else "")
        + "\n\nThe runs behind it:\n\n"
        + table(["build", "work", "pgbench statements/s", "stack requests/s", "failed requests",
                 "stack p99 ms", "server CPU ms/request (user + system)"], detail))
    return "0. The goals, side by side", body, values
