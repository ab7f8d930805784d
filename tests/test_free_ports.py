"""Free ports are picked where no outgoing connection can take them before
they are bound (the CI failure: `rehearse` refused to start, "address
already in use" on a port of the ephemeral range that a connection had
taken between the pick and the bind)."""

from __future__ import annotations

import socket

import pytest

from shiftlab.common.ports import LOWEST, candidate_ports, ephemeral_range, free_port, is_free


@pytest.mark.parametrize(("proc", "expected"), [
    ("32768\t60999\n", range(LOWEST, 32768)),   # Linux's default
    ("49152 65535", range(LOWEST, 49152)),      # IANA's, as on BSDs
    ("1024 60999", range(61000, 65536)),        # no room below: above the range
])
def test_ports_are_picked_outside_the_ephemeral_range(proc: str, expected: range) -> None:
    assert candidate_ports(ephemeral_range(proc)) == expected


def test_free_ports_are_outside_this_machines_ephemeral_range_distinct_and_bindable() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high for p in ports)
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()


def test_a_port_with_a_listener_is_not_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        assert not is_free(s.getsockname()[1])
