#!/usr/bin/env python3
"""mirror-relay.py: one guest connection to Debian's mirror, for tests/vm/run.sh.

qemu's user network runs this once per TCP connection the guest opens to the mirror's stand-in
address (guestfwd ... -cmd:), with the guest's side on stdin and stdout; it relays the bytes to
HOST:PORT (the mirror this machine's apt uses) and back, and ends when both sides have closed
or after an hour.  The guest reaches nothing else.

Usage: mirror-relay.py HOST PORT
"""
import os
import socket
import sys
import threading

LIFETIME_S = 3600


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        upstream = socket.create_connection((host, port), timeout=30)
    except OSError as e:
        sys.stderr.write("mirror-relay: %s:%d: %s\n" % (host, port, e))
        return 1
    upstream.settimeout(None)

    def to_guest():
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            os.write(1, data)
        os.close(1)

    reader = threading.Thread(target=to_guest, daemon=True)
    reader.start()
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            upstream.sendall(data)
        upstream.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    reader.join(LIFETIME_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
