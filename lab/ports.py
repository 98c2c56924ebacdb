"""Port choice, and which TCP ports something listens on.

choose() is pure: every component of the lab (PostgreSQL, the servers, nginx, Prometheus, the
exporters) picks its port the same way, so a busy port behaves alike everywhere: the port of
the last start when still free, else the configured one, else the next free one above it.
"""

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def listening_ports(proc_net=("/proc/net/tcp", "/proc/net/tcp6")):
    """The TCP ports something listens on, on any address (what `ss -tln` shows)."""
    ports = set()
    for path in proc_net:
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == LISTEN:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def choose(wanted, previous, busy, reserved=(), limit=65535):
    """The port to use: PREVIOUS (the last start's) when free, else WANTED when free, else the
    first free port above WANTED.  BUSY: ports something listens on; RESERVED: ports other
    parts of the lab own.  Returns (port, moved): moved is True when the port is not the one
    the user would expect (WANTED, or PREVIOUS when there was one)."""
    taken = set(busy) | set(reserved)
    if previous and previous not in taken:
        return previous, False
    if wanted not in taken:
        return wanted, bool(previous) and previous != wanted
    port = wanted + 1
    while port in taken:
        port += 1
    if port > limit:
        raise ValueError("no free TCP port above %d" % wanted)
    return port, True


def next_free(after, busy, reserved=(), used=()):
    """The first port above AFTER that is not busy, reserved or already used."""
    taken = set(busy) | set(reserved) | set(used)
    port = after + 1
    while port in taken:
        port += 1
    return port
