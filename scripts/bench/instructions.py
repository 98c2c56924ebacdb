"""instructions.py: the server's user-space instructions per category listing, counted under
callgrind (section 0's figure that does not move with the machine's load)."""
import http.client
import os
import re

from settings import CATEGORY
from stack import Server


def instructions_per_listing(cluster, folder, build, label):
    """The server's user-space instructions per category listing under callgrind (one worker,
    DB_POOL_MAX=1, keep-alive, one listing at a time): a run with 20 listings and one with
    120, the difference over 100, so start-up and connection set-up cancel out.  Repeatable
    to a fraction of a percent whatever else the machine runs; kernel time is not in it."""
    totals = []
    for count in (20, 120):
        out = os.path.join(folder, f"callgrind-{label}-{count}.out")
        server = Server(cluster, folder, f"{label}-callgrind", build=build, WORKERS=1,
                        DB_POOL_MAX=1, wrapper=["valgrind", "--tool=callgrind",
                                                f"--callgrind-out-file={out}"])
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            for _ in range(count):
                connection.request("GET", CATEGORY)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"callgrind run: {CATEGORY} answered {response.status}")
            connection.close()
        finally:
            server.stop()
        with open(out, encoding="utf-8", errors="replace") as f:
            match = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
        if not match:
            raise RuntimeError(f"callgrind run: no totals in {out}")
        totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / 100
