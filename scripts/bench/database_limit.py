"""database_limit.py: section 1, the database's limit: pgbench running the server's own
statements (server_sql.py) at the pool's concurrency against the full stack on the same work."""
import statistics

from report import failures_text, rates, ratio, say, table, verdict
from settings import CATEGORY, CONNECTIONS, DURATION_S, MIX, POOL, ROUNDS
from stack import combine, load, pgbench, stack_run


def section(cluster, folder, main_server, script):
    """Rounds of pgbench and the stack (main_server) alternating on the mix and on each route
    alone.  Returns ((title, body), {pgbench script: (pgbench rate, combined stack run)})."""
    say("\n== 1. pgbench (the server's statements, -M prepared, -c 10) vs the full stack")
    load(folder, main_server.port, MIX, "warm-up", duration_s=2)  # caches, hint bits
    rows, limit = [], {}
    for label, pgscript, per_tx, paths in [
            ("scenario mix (category, product, report)", "mix.sql", 3, MIX),
            ("/products?category=electronics", "category.sql", 1, [CATEGORY]),
            ("/products/:id", "product.sql", 1, ["/products/1"])]:
        pg_rates, pg_failed, runs = [], 0, []
        for _ in range(ROUNDS):  # alternating, so a burst of outside load hits both alike
            tps, failed = pgbench(cluster, script(pgscript))
            pg_rates.append(tps * per_tx)
            pg_failed += failed
            runs.append(stack_run(main_server, folder, paths, "stack " + label))
        pg_rate = statistics.median(pg_rates)
        run = combine(runs)
        limit[pgscript] = (pg_rate, run)
        rows.append([label, f"{pg_rate:,.0f} ({rates(pg_rates)})",
                     f"{run['rps']:,.0f} ({rates(run['rps_all'])})",
                     f"{ratio(run['rps'], pg_rate):.0%}",
                     failures_text(run) + (f" + pgbench {pg_failed}" if pg_failed else ""),
                     f"{run['p99']:.1f}"])
        say(f"  {label}: pgbench {pg_rate:,.0f} statements/s ({rates(pg_rates)}), stack "
            f"{run['rps']:,.0f} req/s ({rates(run['rps_all'])}) = "
            f"{ratio(run['rps'], pg_rate):.0%}, failures {run['failures']}")
    return (
        "1. The database's limit: pgbench vs the full stack",
        "pgbench runs the server's own statements (read from sql/statements.sql at bench time) "
        f"with -M prepared, -c {POOL} -j 2; the stack is catalog-loadtest -c {CONNECTIONS} "
        f"-> catalog-server (DB_POOL_MAX={POOL}, default WORKERS) -> the same PostgreSQL. "
        "pgbench draws product ids at random in 1..5000; the stack asks for /products/1 "
        "(the scenario's path; one cached index lookup either way). Rates: statements/s "
        "for pgbench, requests/s for the stack (one request = one statement); "
        f"{ROUNDS} rounds of {DURATION_S} s each, pgbench and the stack alternating; the "
        "median, with every round in brackets.\n\n"
        + table(["work", "pgbench statements/s", "stack requests/s", "stack / pgbench",
               "failed requests", "stack p99 ms"], rows)
        + "\n\nTargets: the stack at >= 95% of pgbench on the mix: "
        + verdict(ratio(limit["mix.sql"][1]["rps"], limit["mix.sql"][0]) >= 0.95)
        + "; no failed request at the scenario's load: "
        + verdict(limit["mix.sql"][1]["failures"] == 0)
        + "; >= 90% of pgbench on each of the two routes alone: "
        + verdict(all(ratio(limit[k][1]["rps"], limit[k][0]) >= 0.90
                      for k in ("category.sql", "product.sql")))
        + ". Note: on a machine whose CPUs other processes also want, the kernel shares "
        "CPU time per runnable thread, so the side with more threads (the stack: load "
        "generator, server workers and 10 backends; pgbench: 2 threads and 10 backends) "
        "gets a larger share; and the stack's load generator and server compete with "
        "PostgreSQL for the same CPUs, which pgbench's lighter client does less."), limit
