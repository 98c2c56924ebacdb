"""capacity_server.py: an HTTP target of known capacity for catalog-loadtest's ceiling: one
request at a time, each taking a fixed service time, so it serves at most 1 / service requests
per second however many connections wait (the rest queue, as on a saturated server).

One thread: every readable connection's requests are read and queued in arrival order; the
queue is served one request at a time, each answer due `service_s` after the previous one
(time.sleep up to that deadline, so Python's own cost per request is inside the service time
as long as it is smaller).  Answers are `200 {"ok":true}` with Content-Length, keep-alive.

Used by tests/integration/tools/test_loadtest.py (low capacity) and scripts/bench (high capacity).
As a program: python3 capacity_server.py SERVICE_MS  (prints its port, serves until killed).
"""

import collections
import select
import socket
import sys
import threading
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Server-Id: capacity\r\n"
            b"Content-Length: 11\r\n\r\n{\"ok\":true}")


class CapacityServer:
    """Serves on 127.0.0.1:port (0 = any free port) from a daemon thread until close()."""

    def __init__(self, service_s, port=0):
        self.service_s = service_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(1024)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.served = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.listener.close()

    def _serve(self):
        buffers = {}                    # socket -> bytes not yet a whole request
        queue = collections.deque()     # sockets, one entry per whole request, arrival order
        next_free = time.monotonic()
        while not self.stopping:
            readable, _, _ = select.select([self.listener, *buffers], [], [], 0 if queue else 0.05)
            for sock in readable:
                if sock is self.listener:
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buffers[conn] = b""
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    buffers.pop(sock, None)
                    sock.close()
                    continue
                pending = buffers[sock] + data
                while b"\r\n\r\n" in pending:  # GET requests: no bodies
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    queue.append(sock)
                buffers[sock] = pending
            if not queue:
                next_free = max(next_free, time.monotonic())
                continue
            sock = queue.popleft()
            next_free = max(next_free, time.monotonic() - self.service_s) + self.service_s
            delay = next_free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if sock in buffers:
                try:
                    sock.sendall(RESPONSE)
                    self.served += 1
                except OSError:
                    buffers.pop(sock, None)
                    sock.close()
        for sock in buffers:
            sock.close()


if __name__ == "__main__":
    server = CapacityServer(float(sys.argv[1]) / 1000.0)
    print(server.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()
