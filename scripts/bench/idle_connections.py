"""idle_connections.py: the server's resident memory with many open, idle keep-alive connections.

    python3 scripts/bench/idle_connections.py PORT PID COUNT [COUNT...]

For each COUNT (ascending), opens connections to 127.0.0.1:PORT until COUNT are open, makes
each send one GET /health/live and read the answer (so the server has accepted it and set it
up as it would a real client's), then reads VmRSS of process PID.  Prints one JSON object:
{"baseline_kib": N, "rss_kib": {"COUNT": N, ...}, "open": N}.  Raises the soft open-files
limit to the hard one first; exits 1 when the connections cannot be opened or answered.
"""

import json
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: bench\r\n\r\n"
BATCH = 500  # connects in flight at once: stays under the listen backlog


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_batch(port, count):
    """Opens count connections, each sends REQUEST and reads one whole answer.  Returns them."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(REQUEST)
        sockets.append(sock)
    selector = selectors.DefaultSelector()
    pending = {}
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        pending[sock] = b""
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a connection before answering")
            pending[sock] += chunk
            head, _, body = pending[sock].partition(b"\r\n\r\n")
            if head and b"\r\n\r\n" in pending[sock]:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(body) >= length:
                    selector.unregister(sock)
                    del pending[sock]
    selector.close()
    if pending:
        raise RuntimeError(f"{len(pending)} connections got no answer within 30 s")
    return sockets


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: idle_connections.py PORT PID COUNT [COUNT...]")
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    counts = sorted(int(c) for c in sys.argv[3:])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = {"baseline_kib": rss_kib(pid), "rss_kib": {}}
    held = []
    try:
        for count in counts:
            while len(held) < count:
                held += open_batch(port, min(BATCH, count - len(held)))
            time.sleep(0.5)  # let the server settle (nothing should be in flight)
            result["rss_kib"][str(count)] = rss_kib(pid)
        result["open"] = len(held)
    except (OSError, RuntimeError) as error:
        result["error"] = str(error)
        print(json.dumps(result))
        sys.exit(1)
    finally:
        for sock in held:
            sock.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
