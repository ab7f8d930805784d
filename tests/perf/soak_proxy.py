#!/usr/bin/env python3
"""Soak `shiftlab proxy` under hostile clients and report its memory and file
descriptors over time. Run on demand, never in CI (pytest does not collect
tests/perf); nothing here asserts a timing.

    .venv/bin/python tests/perf/soak_proxy.py                      # 60 s, 1000 hostile clients
    .venv/bin/python tests/perf/soak_proxy.py --duration 14400     # hours: waves of clients

Each wave, while a bounded normal load runs on keep-alive connections:
- `--flooders` clients pipeline `--pipeline` requests for a 60 KiB answer
  each and never read a byte;
- `--stallers` clients ask for an endless download and never read;
- then all of them leave, and the proxy must give back what they cost.
The proxy, the backend and the load are separate processes; the proxy's
RSS (VmRSS) and open descriptors are read from /proc every second. The
summary gives the peak RSS with the hostile clients connected, the RSS and
descriptors after each wave, and the normal load's errors and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIG = b"HTTP/1.1 200 OK\r\nContent-Length: 61440\r\n\r\n" + b"x" * 61440
SMALL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
STREAM_CHUNK = b"10000\r\n" + b"s" * 65536 + b"\r\n"
MAX_NORMAL_REQUESTS = 2_000_000  # the normal load's count bound


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_figures(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a process."""
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


# -- the backend: answers by path --------------------------------------------


class Backend(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.pending = b""
        self.streaming = False

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        while (end := data.find(b"\r\n\r\n")) >= 0:
            head, data = data[:end], data[end + 4:]
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            if path.startswith(b"/big"):
                self.transport.write(BIG)
            elif path.startswith(b"/stream"):
                self.transport.write(STREAM_HEAD)
                self.streaming = True
                self.resume_writing()
            else:
                self.transport.write(SMALL)
        self.pending = data

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        # An endless stream, written as fast as the proxy takes it.
        self.paused = False
        while self.streaming and not self.paused and not self.transport.is_closing():
            self.transport.write(STREAM_CHUNK)


async def serve_backend(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(Backend, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# -- the clients -------------------------------------------------------------


class NormalLoad:
    """Keep-alive clients sending small requests one after the other, each
    answer checked; bounded in count and by the caller's stop."""

    def __init__(self, port: int, workers: int) -> None:
        self.port = port
        self.workers = workers
        self.ok = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*[self._worker() for _ in range(self.workers)])

    async def _worker(self) -> None:
        while not self.stop.is_set() and self.ok + self.errors < MAX_NORMAL_REQUESTS:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.1)
                continue
            try:
                while not self.stop.is_set() and self.ok + self.errors < MAX_NORMAL_REQUESTS:
                    started = time.perf_counter()
                    writer.write(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
                    async with asyncio.timeout(10):
                        head = await reader.readuntil(b"\r\n\r\n")
                        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                        await reader.readexactly(length)
                    if head.startswith(b"HTTP/1.1 200"):
                        self.ok += 1
                        self.latencies.append(time.perf_counter() - started)
                    else:
                        self.errors += 1
                    await asyncio.sleep(0.01)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, IndexError, ValueError):
                self.errors += 1
            finally:
                writer.transport.abort()


def open_hostile(port: int, flooders: int, stallers: int, pipeline: int) -> list[socket.socket]:
    """Sockets that send and never read: pipelined floods and stalled downloads."""
    socks = []
    flood = b"GET /big HTTP/1.1\r\nHost: soak\r\n\r\n" * pipeline
    for i in range(flooders + stallers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        data = flood if i < flooders else b"GET /stream HTTP/1.1\r\nHost: soak\r\n\r\n"
        with contextlib.suppress(BlockingIOError):
            s.send(data)  # what the kernel takes; the rest is never sent
        socks.append(s)
    return socks


# -- the driver --------------------------------------------------------------


def config(path: Path, listen: int, admin: int, backend: int, idle: int) -> None:
    fwd = {"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 9}, {"TargetGroupArn": "green", "Weight": 1}],
        "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 3600}}}
    groups = [{"Name": n, "Targets": [f"127.0.0.1:{backend}"], "HealthCheckPath": "/health",
               "HealthCheckIntervalSeconds": 10} for n in ("blue", "green")]
    path.write_text(json.dumps({"loadBalancer": {
        "Name": "soak", "Listeners": [{"Name": "prod", "Port": listen, "DefaultActions": [fwd]}],
        "TargetGroups": groups, "Admin": {"Port": admin},
        "LoadBalancerAttributes": [{"Key": "idle_timeout.timeout_seconds", "Value": str(idle)}]}}))


def start(args: argparse.Namespace) -> tuple[Path, int, list[subprocess.Popen[bytes]]]:
    """The backend and `shiftlab proxy` as processes; the listener's port."""
    tmp = Path(tempfile.mkdtemp(prefix="shiftlab-soak-"))
    listen, admin, backend = free_port(), free_port(), free_port()
    config(tmp / "soak.json", listen, admin, backend, args.idle)
    procs = [subprocess.Popen([sys.executable, __file__, "_backend", str(backend)])]
    with open(tmp / "proxy.log", "w") as log:
        procs.append(subprocess.Popen([sys.executable, "-m", "shiftlab", "proxy", "-c", str(tmp / "soak.json")],
                                      cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    return tmp, listen, procs


async def drive(args: argparse.Namespace, tmp: Path, listen: int, proxy: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", listen), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proxy.poll() is not None:
                print(f"the proxy did not start; see {tmp / 'proxy.log'}")
                return 1
            await asyncio.sleep(0.1)
    load = NormalLoad(listen, args.workers)
    load_task = asyncio.ensure_future(load.run())
    await asyncio.sleep(2)
    rss0, fds0 = proc_figures(proxy.pid)
    print(f"start: RSS {rss0:.1f} MiB, {fds0} fds; {args.flooders} flooders x {args.pipeline} pipelined, "
          f"{args.stallers} stalled downloads per wave; idle timeout {args.idle} s")
    print(f"{'t (s)':>7} {'wave':>5} {'phase':>9} {'RSS MiB':>8} {'fds':>6} {'ok':>8} {'errors':>7}")
    started = time.monotonic()
    peak = rss0
    after: list[tuple[float, int]] = []
    wave = 0
    while time.monotonic() - started < args.duration:
        wave += 1
        socks = open_hostile(listen, args.flooders, args.stallers, args.pipeline)
        held_until = time.monotonic() + args.hold
        while time.monotonic() < held_until:
            await asyncio.sleep(1)
            rss, fds = proc_figures(proxy.pid)
            peak = max(peak, rss)
            print(f"{time.monotonic() - started:7.0f} {wave:5} {'hostile':>9} {rss:8.1f} {fds:6} {load.ok:8} "
                  f"{load.errors:7}", flush=True)
        for s in socks:
            s.close()
        for _ in range(args.rest):
            await asyncio.sleep(1)
            rss, fds = proc_figures(proxy.pid)
            print(f"{time.monotonic() - started:7.0f} {wave:5} {'after':>9} {rss:8.1f} {fds:6} {load.ok:8} "
                  f"{load.errors:7}", flush=True)
        after.append(proc_figures(proxy.pid))
    load.stop.set()
    await load_task
    lat = sorted(load.latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else float("nan")
    print()
    print(f"peak RSS with hostile clients: {peak:.1f} MiB (start {rss0:.1f}; goal: bounded, under 100 MiB)")
    for i, (rss, fds) in enumerate(after, 1):
        print(f"after wave {i}: RSS {rss:.1f} MiB, {fds} fds (start {fds0})")
    print(f"normal load: {load.ok} ok, {load.errors} errors, p99 {p99:.1f} ms")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_backend":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_backend(int(sys.argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60, help="seconds of waves (default 60; hours are fine)")
    ap.add_argument("--flooders", type=int, default=500, help="pipelining clients per wave")
    ap.add_argument("--stallers", type=int, default=500, help="clients that stop reading a download, per wave")
    ap.add_argument("--pipeline", type=int, default=200, help="requests each flooder pipelines")
    ap.add_argument("--hold", type=int, default=20, help="seconds the hostile clients stay connected")
    ap.add_argument("--rest", type=int, default=10, help="seconds between waves")
    ap.add_argument("--idle", type=int, default=60, help="the load balancer's idle timeout (s)")
    ap.add_argument("--workers", type=int, default=8, help="normal keep-alive clients")
    args = ap.parse_args()
    tmp, listen, procs = start(args)
    try:
        return asyncio.run(drive(args, tmp, listen, procs[-1]))
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
