"""Free TCP ports on loopback that stay free until they are bound.

A port the kernel hands out for `bind(0)` comes from the ephemeral range
(Linux: 32768-60999), the same range every outgoing connection takes its
local port from. Between picking a port and binding it, the proxy's
connections to its targets, a load generator's or Docker's own can take
it: `rehearse` then fails with "address already in use". So a port is
picked below the ephemeral range, where only a listener would take it, at
random (so that two processes rarely try the same), and not twice among the
last few thousand one process handed out.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import deque
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST = 10_000  # above the registered ports most local servers use
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

_given: deque[int] = deque(maxlen=4096)  # bounded: a long run starts many tasks
_lock = threading.Lock()


def ephemeral_range(text: str | None = None) -> tuple[int, int]:
    """The kernel's ephemeral range (IANA's 49152-65535 where there is no /proc)."""
    if text is None:
        try:
            text = _RANGE_FILE.read_text()
        except OSError:
            return 49152, 65535
    low, high = (int(part) for part in text.split())
    return low, high


def candidate_ports(ephemeral: tuple[int, int] | None = None) -> range:
    """Where free ports are picked: below the ephemeral range, or above it
    when too little room is left below."""
    low, high = ephemeral or ephemeral_range()
    if low - LOWEST >= 4096:
        return range(LOWEST, low)
    return range(high + 1, 65536)


def is_free(port: int, host: str = LOOPBACK) -> bool:
    # Without SO_REUSEADDR a port in TIME_WAIT counts as taken: stricter than
    # the listener that will bind it (aiohttp sets SO_REUSEADDR).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    ports = candidate_ports()
    with _lock:
        for _ in range(1000):
            port = random.choice(ports)
            if port not in _given and is_free(port, host):
                _given.append(port)
                return port
    raise OSError(f"no free port on {host} in {ports.start}-{ports.stop - 1}")
