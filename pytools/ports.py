"""Free TCP ports for the processes a test or a benchmark starts, in the project's range:
below the kernel's ephemeral range (CONTRIBUTING.md), so that no outgoing connection can take a
port between this check and the server's bind."""
import os
import random
import socket

LOW = 20000  # tests/run.sh gives 10000-19999 to the tests it runs beside the others


def port_range():
    """(low, high), inclusive: CATALOG_TEST_PORTS=LOW-HIGH when set (tests/run.sh sets it),
    else 20000 up to just below the kernel's ephemeral range (32767 when that starts at 21000
    or lower), as tests/run.sh computes it."""
    wanted = os.environ.get("CATALOG_TEST_PORTS", "")
    low, _, high = wanted.partition("-")
    if low.isdigit() and high.isdigit() and int(low) < int(high):
        return int(low), int(high)
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    return LOW, (ephemeral if ephemeral > 21000 else 32768) - 1


def free_port():
    """A loopback TCP port nothing is bound to right now, picked at random in port_range().
    Raises RuntimeError after 200 busy picks."""
    low, high = port_range()
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {low} and {high}")
