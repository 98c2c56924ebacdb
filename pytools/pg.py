"""psql for the tests and the benchmarks."""
import os
import subprocess


def psql(sql, db="postgres", env=None, check=True, timeout=120):
    """Runs sql (one or more statements) with `psql -XAtq -v ON_ERROR_STOP=1` on database db,
    with env (default os.environ: PGHOST, PGPORT, PGUSER, PGPASSWORD say where); returns stdout
    with the final newline removed (rows one a line, columns separated by |).  Raises
    RuntimeError with psql's stderr when a statement fails (unless check=False); timeout in
    seconds, None for none."""
    proc = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
        env=os.environ if env is None else env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"psql on {db} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                           f"SQL: {sql}")
    return proc.stdout.rstrip("\n")
