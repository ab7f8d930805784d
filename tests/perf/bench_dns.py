#!/usr/bin/env python3
"""DNS answers per second of the `route53` section's server (proxy/dns.py):
weighted A answers for one name, over UDP and over TCP, with the server in a
process of its own as `shiftlab up` runs it (uvloop when installed). Run on
demand, never in CI; nothing is asserted.

    .venv/bin/python tests/perf/bench_dns.py [--seconds 5] [--window 64] [--max-queries 500000]

Figures:
- in-process: Zone.answer_wire alone (parse, choose by weight, build the
  answer): the ceiling of one core, no sockets;
- UDP: one client socket keeping `--window` queries outstanding (each new
  query sent as an answer arrives), answers counted by id;
- TCP: one connection, the same window of length-prefixed queries (RFC 7766
  pipelining).
Each run is bounded by time and by count. The ratios say what the sockets
and the event loop cost next to the answer itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import dns.message  # noqa: E402

from shiftlab.common.ports import free_port  # noqa: E402
from shiftlab.proxy.dns import Route53Config, Zone  # noqa: E402

NAME = "app.shiftlab.test."
CONFIG = {"HostedZone": {"Name": "shiftlab.test"}, "ResourceRecordSets": [
    {"Name": NAME, "TTL": 60, "SetIdentifier": "blue", "Weight": 95, "ResourceRecords": [{"Value": "127.0.0.2"}]},
    {"Name": NAME, "TTL": 60, "SetIdentifier": "green", "Weight": 5, "ResourceRecords": [{"Value": "127.0.0.3"}]},
]}

SERVER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[3])
from shiftlab.proxy.dns import DnsServer, Route53Config, Zone
async def main():
    server = DnsServer(Zone(Route53Config.model_validate(json.loads(sys.argv[1]))), "127.0.0.1", int(sys.argv[2]))
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def queries(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        q = dns.message.make_query(NAME, "A")
        q.id = i
        out.append(q.to_wire())
    return out


def in_process(seconds: float, limit: int) -> float:
    zone = Zone(Route53Config.model_validate(CONFIG), rng=random.Random(1))
    wires = queries(1024)
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while n < limit and time.perf_counter() < deadline:
        for w in wires:
            zone.answer_wire(w)
        n += len(wires)
    return n / (time.perf_counter() - t0)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, wires: list[bytes], window: int, limit: int, deadline: float, done: asyncio.Future[int]):
        self.wires, self.window, self.limit, self.deadline, self.done = wires, window, limit, deadline, done
        self.sent = self.answered = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for _ in range(self.window):
            self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if self.sent < self.limit and time.perf_counter() < self.deadline:
            self.transport.sendto(self.wires[self.sent % len(self.wires)])
            self.sent += 1
        elif self.answered >= self.sent and not self.done.done():
            self.done.set_result(self.answered)

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.answered += 1
        self._send()


async def over_udp(port: int, seconds: float, window: int, limit: int) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    t0 = time.perf_counter()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _UdpClient(queries(4096), window, limit, t0 + seconds, done), remote_addr=("127.0.0.1", port))
    try:
        answered = await asyncio.wait_for(done, seconds + 10)  # a lost datagram ends the run at the timeout
    except TimeoutError:
        answered = proto.answered
    elapsed = time.perf_counter() - t0
    transport.close()
    return answered / elapsed


async def over_tcp(port: int, seconds: float, window: int, limit: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wires = [struct.pack("!H", len(w)) + w for w in queries(4096)]
    t0 = time.perf_counter()
    deadline = t0 + seconds
    sent = answered = 0
    for _ in range(window):
        writer.write(wires[sent % len(wires)])
        sent += 1
    while answered < sent:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        await reader.readexactly(length)
        answered += 1
        if sent < limit and time.perf_counter() < deadline:
            writer.write(wires[sent % len(wires)])
            sent += 1
    elapsed = time.perf_counter() - t0
    writer.close()
    return answered / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--max-queries", type=int, default=500_000)
    args = ap.parse_args()
    import json

    core = in_process(args.seconds, args.max_queries)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(CONFIG), str(port), str(REPO)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        udp = asyncio.run(over_udp(port, args.seconds, args.window, args.max_queries))
        tcp = asyncio.run(over_tcp(port, args.seconds, args.window, args.max_queries))
    finally:
        server.terminate()
        server.wait(10)
    print(f"DNS answers per second (weighted A, {args.seconds:g} s each, window {args.window}):")
    print(f"  in-process (Zone.answer_wire)  {core:>10,.0f}/s")
    print(f"  UDP, server process            {udp:>10,.0f}/s   ({udp / core:.2f} of in-process)")
    print(f"  TCP, one pipelined connection  {tcp:>10,.0f}/s   ({tcp / core:.2f} of in-process)")


if __name__ == "__main__":
    main()
