"""test_pool_resolver.py: a name lookup that hangs never stalls a worker (issue 24, item 5).

DB_HOST is a name whose lookup blocks (a getaddrinfo shim loaded with LD_PRELOAD, built here
from tests/integration/common/helpers/hang_getaddrinfo.c) until the test lets it answer.  With one
worker, while the lookup hangs: GET /health/live, which needs no database, must still answer,
and a request that needs the database must get a quick 503 with Retry-After rather than no
answer.  Once the lookup answers, reads work.  On the old code libpq looked the name up inside
PQconnectStartParams on the worker thread: the first database request froze the worker, and
every client of it (/health/live included) got no answer."""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_pool_resolver"
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common", "helpers",
                      "hang_getaddrinfo.c")
HANG_NAME = "catalog-db.hang.invalid"
suite = harness.Suite(NAME)


def build_shim(work):
    shim = os.path.join(work, "hang_getaddrinfo.so")
    compiler = os.environ.get("CC") or shutil.which("cc") or "clang"
    proc = subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", shim, HELPER, "-ldl"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot build the getaddrinfo shim: {proc.stderr}")
    return shim


work = tempfile.mkdtemp(prefix="catalog-resolver.")
try:
    shim = build_shim(work)
    hang_file = os.path.join(work, "hang")
    env = harness.make_db(NAME, products=20, orders=0)
    address = env["DB_HOST"] if env["DB_HOST"][:1].isdigit() else "127.0.0.1"
    settings = dict(env, SERVER_ID="resolver", WORKERS="1", DB_HOST=HANG_NAME,
                    LD_PRELOAD=shim, HANG_NAME=HANG_NAME, HANG_FILE=hang_file,
                    HANG_ADDRESS=address,
                    # The shim is not instrumented: AddressSanitizer must not insist on coming
                    # first in the list of libraries.
                    ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    with open(hang_file, "w", encoding="ascii"):
        pass
    with harness.Server(settings, start_timeout_s=20) as server:
        port = server.port
        db_status, db_headers, _, db_seconds = harness.timed(port, "GET", "/products/1",
                                                             timeout=8)
        live, _, _, live_seconds = harness.timed(port, "GET", "/health/live", timeout=5)
        second, _, _, _ = harness.timed(port, "GET", "/products/2", timeout=8)
        os.unlink(hang_file)  # the lookup answers now
        recovered = harness.wait_for(
            lambda: harness.timed(port, "GET", "/products/3", timeout=8)[0] == 200, timeout_s=15)
        log = server.stderr_text()
    # A server stopped while its lookup hangs does not wait for it.
    with open(hang_file, "w", encoding="ascii"):
        pass
    stuck = harness.Server(settings, start_timeout_s=20).start()
    harness.timed(stuck.port, "GET", "/products/1", timeout=8)
    stopped_rc = stuck.stop(timeout_s=10)
finally:
    if os.path.exists(os.path.join(work, "hang")):
        os.unlink(os.path.join(work, "hang"))
    shutil.rmtree(work, ignore_errors=True)

print(f"# while the lookup hung: GET /products/1 {db_status!r} after {db_seconds:.2f} s,"
      f" /health/live {live!r} after {live_seconds:.2f} s", flush=True)
suite.equal("/health/live answers while the lookup of DB_HOST hangs", live, 200)
suite.equal("a request that needs the database gets 503 rather than no answer", db_status, 503)
suite.equal("the 503 carries Retry-After", db_headers.get("retry-after"), "1")
suite.equal("the next one too (no worker waits on the lookup)", second, 503)
suite.check("once the lookup answers, reads work (200)", recovered, log[-800:])
suite.equal("SIGTERM while the lookup hangs: the server exits 0", stopped_rc, 0)
suite.check("the log says the lookup has not finished",
            f"lookup of DB_HOST '{HANG_NAME}' has not finished" in log, log[-800:])
suite.finish()
