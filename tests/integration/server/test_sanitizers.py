"""test_sanitizers.py: the ASan+UBSan server over a short mixed load (good and bad requests,
hostile raw bytes, connections dropped half-way), then SIGTERM: it must exit 0 with no leak
(LeakSanitizer runs at exit), no memory error and no undefined behaviour reported.  Against the
ThreadSanitizer build the same load (two workers sharing a pool of four, clients leaving while
their queries wait or run) must give no data race report.

Runs in the sanitized pass of `make test` (tests/run.sh build-san, and build-tsan), where
CATALOG_BUILD holds binaries built with SANITIZER=address,undefined (or thread); against a plain
build it checks nothing and says so.  A canary program that leaks on purpose first proves that
LeakSanitizer works here (it cannot under some ptrace-restricted containers, which would make a
clean result mean nothing); scripts/test-sanitized.sh runs a data-race canary for TSan.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

LOAD_DURATION_S = 6
LOAD_CONNECTIONS = 16


def instrumentation(path):
    """"asan" or "tsan" for a binary linked with AddressSanitizer or ThreadSanitizer, else None."""
    with open(path, "rb") as binary_file:
        data = binary_file.read()
    return "asan" if b"__asan_init" in data else "tsan" if b"__tsan_init" in data else None


def sanitizer_env(report_dir):
    """Sanitizer options for a program under test: reports go to files in report_dir (one per
    process, named asan.PID / ubsan.PID), so nothing is lost in a pipe nobody reads."""
    return {
        "ASAN_OPTIONS": f"detect_leaks=1:abort_on_error=0:exitcode=23:log_path={report_dir}/asan",
        "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={report_dir}/ubsan",
        "TSAN_OPTIONS": f"second_deadlock_stack=1:log_path={report_dir}/tsan",
    }


def reports(report_dir):
    """{file name: text} of every sanitizer report written in report_dir."""
    found = {}
    for path in sorted(glob.glob(os.path.join(report_dir, "*"))):
        with open(path, encoding="utf-8", errors="replace") as report:
            found[os.path.basename(path)] = report.read()
    return found


def first_lines(found, count=40):
    """The first lines of every report, for a failure message a person can act on."""
    return "\n".join(f"--- {name}\n" + "\n".join(text.splitlines()[:count])
                     for name, text in found.items())


def canary(suite, work_dir):
    """Builds and runs a program that leaks 4 KiB: LeakSanitizer must report it."""
    source = os.path.join(work_dir, "leak.c")
    program = os.path.join(work_dir, "leak")
    with open(source, "w", encoding="ascii") as out:
        out.write("#include <stdlib.h>\nvoid *keep;\n"
                  "int main(void) { keep = malloc(4096); keep = 0; return 0; }\n")
    compiler = os.environ.get("CC") or shutil.which("cc") or "clang"
    proc = subprocess.run([compiler, "-g", "-fsanitize=address", "-o", program, source],
                          capture_output=True, text=True, timeout=120)
    if not suite.check("the leak canary builds with -fsanitize=address", proc.returncode == 0,
                       proc.stderr.strip()):
        return False
    canary_dir = os.path.join(work_dir, "canary-reports")
    os.mkdir(canary_dir)
    proc = subprocess.run([program], env=dict(os.environ, **sanitizer_env(canary_dir)),
                          capture_output=True, text=True, timeout=60)
    found = reports(canary_dir)
    text = "".join(found.values())
    return suite.check("LeakSanitizer reports the canary's 4096-byte leak (exit 23)",
                       proc.returncode == 23 and "4096 byte(s) leaked" in text,
                       f"exit {proc.returncode}, reports: {first_lines(found) or proc.stderr}")


def hostile_bytes(port):
    """Requests a parser must refuse, and connections that vanish half-way; returns how many
    got an answer starting with "HTTP/1.1 4" (or were closed, which is also a refusal)."""
    requests = [
        b"GARBAGE\r\n\r\n",
        b"GET /products/1 HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"y" * 30000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(200)) + b"\r\n",
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /products?category=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /products/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n" + b"[" * 100 + b"]" * 100,
    ]
    refused = 0
    for data in requests:
        answer = harness.raw(port, data, timeout=3)
        if answer == b"" or answer.startswith(b"HTTP/1.1 4") or answer.startswith(b"HTTP/1.1 5"):
            refused += 1
    # Connections dropped mid-head and mid-body, and some left open for SIGTERM to meet.
    for partial in (b"GET /products/1 HTTP/1.1\r\nHo",
                    b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"prod"):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(partial)
    return refused, len(requests)


def main():
    suite = harness.Suite("test_sanitizers")
    server_binary = harness.binary("catalog-server")
    kind = instrumentation(server_binary)
    if not kind:
        print(f"skip: {server_binary} is not built with ASan or TSan; this test runs in the "
              "sanitized pass (make test runs tests/run.sh build-san and build-tsan)")
        suite.finish()

    work_dir = tempfile.mkdtemp(prefix="catalog-sanitizers-")
    try:
        if kind == "asan" and not canary(suite, work_dir):
            suite.finish()
        report_dir = os.path.join(work_dir, "reports")
        os.mkdir(report_dir)
        env = harness.make_db("test_sanitizers", products=200, orders=2000)
        env.update(sanitizer_env(report_dir))
        env.update({"WORKERS": "2", "DB_POOL_MAX": "4", "SERVER_ID": "san"})
        orders_before = int(harness.psql("SELECT count(*) FROM orders", db="test_sanitizers"))

        with harness.Server(env, start_timeout_s=30) as server:
            # Keep-alive connections that are still open when SIGTERM arrives.
            idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
            for sock in idle:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            refused, total = hostile_bytes(server.port)
            suite.equal("every hostile request is refused (4xx, 5xx or closed)", refused, total)

            result_path = os.path.join(work_dir, "load.json")
            paths = ["/products?category=electronics", "/products/1", "/products/999999",
                     "/products/abc", "/products?category=%zz", "/report", "/metrics", "/health",
                     'POST /orders {"product_id":1,"quantity":1}',
                     'POST /orders {"product_id":1,"quantity":0}',
                     'POST /orders {"product_id":999999,"quantity":1}',
                     "POST /orders {not json"]
            command = [harness.binary("catalog-loadtest"), "-c", str(LOAD_CONNECTIONS), "-t", "2",
                       "-d", f"{LOAD_DURATION_S}s", "--json", result_path]
            for path in paths:
                command += ["--path", path]
            command.append(f"http://127.0.0.1:{server.port}/")
            load = subprocess.run(command, env=dict(os.environ, **sanitizer_env(report_dir)),
                                  capture_output=True, text=True, timeout=LOAD_DURATION_S + 60)
            suite.check("the load run finishes", load.returncode in (0, 1),
                        f"exit {load.returncode}: {load.stderr[-2000:]}")
            try:
                with open(result_path, encoding="utf-8") as result_file:
                    result = json.load(result_file)
            except (OSError, ValueError) as error:
                result = {}
                suite.check("the load run writes its JSON result", False, repr(error))
            requests = result.get("requests", 0)
            print(f"load: {requests} requests in {LOAD_DURATION_S} s")
            # ThreadSanitizer slows the server several times more than ASan does.
            least = 2000 if kind == "asan" else 400
            suite.check(f"the load run sent at least {least} requests", requests >= least,
                        f"requests {requests}; {json.dumps(result)[:500]}")
            status, _, _ = harness.http(server.port, "GET", "/health/live")
            suite.equal("the server still answers after the load", status, 200)
            time.sleep(0.2)
            code = server.stop(signal.SIGTERM, timeout_s=60)
            for sock in idle:
                sock.close()

        found = reports(report_dir)
        suite.equal("SIGTERM: the sanitized server exits 0 (23: a leak, 66: a data race)", code, 0)
        suite.check("no leak, memory error or undefined behaviour reported", not found,
                    first_lines(found))
        stderr = server.stderr_text()
        suite.check("the server's own output names no sanitizer finding",
                    "Sanitizer" not in stderr and "runtime error" not in stderr, stderr[-3000:])
        orders_after = int(harness.psql("SELECT count(*) FROM orders", db="test_sanitizers"))
        suite.check("the load's valid orders were inserted", orders_after > orders_before,
                    f"{orders_before} before, {orders_after} after")
        harness.drop_db("test_sanitizers")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    suite.finish()


if __name__ == "__main__":
    main()
