"""A free TCP port for a server a test starts."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so no client socket (Spark's JVM opens
    many) can take it between this check and the server binding it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        low = int(handle.read().split()[0])
    for _ in range(200):
        port = random.randint(20000, low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
