#!/usr/bin/env python3
"""Throughput of a network load balancer's TCP path (`shiftlab proxy` with
`loadBalancer.Type: network`) next to a direct connection and HAProxy
(`mode tcp`) from the same run.

Run on demand, never in CI (pytest does not collect tests/perf):

    apt-get install -y haproxy          # optional: without it the HAProxy column is skipped
    .venv/bin/python tests/perf/bench_tcp.py [--duration 5] [--repeat 1]

Each component is its own process: the backends (this script's `_backend`
role: two asyncio servers on uvloop), HAProxy (one thread, `mode tcp`,
weights 9/1), `shiftlab proxy -c <generated config>` as a user runs it
(weights 90/10 on the default action, TCP health checks, counters), and
the load (`_loadgen`). Two cases:

- stream: 8 connections, the backend sends without end, the client counts
  what arrives (MB/s): the copy path, buffers and flow control;
- ping-pong: 64 connections, 100-byte line and answer in turn (round trips
  per second): the per-read and per-write cost.

Everything is bounded in time (and the ping-pong in count). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHUNK = b"x" * 65536
LINE = b"y" * 99 + b"\n"
MAX_ROUND_TRIPS = 20_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within {timeout} s")


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- the backend: "S" streams, anything else is answered line by line ------------

class Backend(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        self.streaming = False
        self.paused = False

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"S\n") and not self.streaming:
            self.streaming = True
            self.pump()
            return
        if not self.streaming:
            self.t.write(data)  # echo: one line in, one line out

    def pump(self) -> None:
        while self.streaming and not self.paused and not self.t.is_closing():
            self.t.write(CHUNK)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.streaming = False


async def serve_backends(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for port in ports:
        await loop.create_server(Backend, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


# -- the load --------------------------------------------------------------

async def stream_load(port: int, connections: int, duration: float) -> dict[str, Any]:
    received = 0

    async def one() -> None:
        nonlocal received
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"S\n")
        end = time.monotonic() + duration
        while time.monotonic() < end:
            data = await reader.read(262144)
            if not data:
                break
            received += len(data)
        writer.close()

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), duration + 10)
    seconds = time.monotonic() - t0
    return {"MB/s": received / seconds / 1e6}


async def ping_load(port: int, connections: int, duration: float) -> dict[str, Any]:
    trips = 0
    end = time.monotonic() + duration

    async def one() -> None:
        nonlocal trips
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < end and trips < MAX_ROUND_TRIPS:
            writer.write(LINE)
            if not await reader.readline():
                break
            trips += 1
        writer.close()

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), duration + 10)
    return {"trips/s": trips / (time.monotonic() - t0)}


def loadgen_main(args: list[str]) -> None:
    case, port, connections, duration = args[0], int(args[1]), int(args[2]), float(args[3])
    install_uvloop()
    fn = stream_load if case == "stream" else ping_load
    print(json.dumps(asyncio.run(fn(port, connections, duration))))


# -- the run ---------------------------------------------------------------

def shiftlab_config(port: int, backends: list[int], admin: int) -> dict[str, Any]:
    return {"timeScale": 1, "loadBalancer": {
        "Name": "bench", "Type": "network",
        "Listeners": [{"Name": "tcp", "Port": port, "DefaultActions": [{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": "a", "Weight": 90}, {"TargetGroupArn": "b", "Weight": 10}]}}]}],
        "TargetGroups": [{"Name": "a", "Targets": [f"127.0.0.1:{backends[0]}"]},
                         {"Name": "b", "Targets": [f"127.0.0.1:{backends[1]}"]}],
        "Admin": {"Port": admin}}}


def haproxy_config(port: int, backends: list[int]) -> str:
    return "\n".join([
        "global", "  nbthread 1", "  maxconn 4096",
        "defaults", "  mode tcp", "  timeout connect 10s", "  timeout client 350s", "  timeout server 350s",
        "listen bench", f"  bind 127.0.0.1:{port}", "  balance roundrobin",
        f"  server a 127.0.0.1:{backends[0]} weight 9", f"  server b 127.0.0.1:{backends[1]} weight 1", ""])


def run_case(case: str, port: int, connections: int, duration: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "_loadgen", case, str(port), str(connections), str(duration)],
                         capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise SystemExit(f"the load generator failed against port {port}:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per case and target (default 5)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the best is kept (default 1)")
    opts = ap.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-tcp-"))
    try:
        backends = [free_port(), free_port()]
        procs.append(subprocess.Popen([sys.executable, __file__, "_backend", *map(str, backends)]))
        for backend_port in backends:
            wait_for_port(backend_port, 10, "the backend")
        targets: dict[str, int] = {"direct": backends[0]}

        sl_port, admin = free_port(), free_port()
        import yaml

        cfg = work / "shiftlab.yaml"
        cfg.write_text(yaml.safe_dump(shiftlab_config(sl_port, backends, admin)))
        procs.append(subprocess.Popen([sys.executable, "-m", "shiftlab", "proxy", "-c", str(cfg)], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(sl_port, 20, "shiftlab proxy")
        time.sleep(1.0)  # the first TCP health checks: targets leave `initial` (they are routed to anyway)
        targets["shiftlab"] = sl_port

        haproxy = shutil.which("haproxy")
        if haproxy:
            hp_port = free_port()
            (work / "haproxy.cfg").write_text(haproxy_config(hp_port, backends))
            procs.append(subprocess.Popen([haproxy, "-f", str(work / "haproxy.cfg")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for_port(hp_port, 10, "haproxy")
            targets["haproxy"] = hp_port
        else:
            print("haproxy is not installed (apt-get install -y haproxy): no HAProxy column")

        cases = [("stream", 8, "MB/s"), ("ping", 64, "trips/s")]
        results: dict[tuple[str, str], float] = {}
        for case, conns, unit in cases:
            for name, port in targets.items():
                best = max(run_case(case, port, conns, opts.duration)[unit] for _ in range(opts.repeat))
                results[(case, name)] = best
        print(f"\nTCP path, {opts.duration:g} s per case, best of {opts.repeat}")
        print(f"{'case':<22}" + "".join(f"{n:>14}" for n in targets) + f"{'sl/direct':>12}"
              + (f"{'sl/haproxy':>12}" if "haproxy" in targets else ""))
        for case, conns, unit in cases:
            row = f"{case + ' ' + str(conns) + 'c ' + unit:<22}"
            row += "".join(f"{results[(case, n)]:>14,.1f}" for n in targets)
            row += f"{results[(case, 'shiftlab')] / results[(case, 'direct')]:>12.2f}"
            if "haproxy" in targets:
                row += f"{results[(case, 'shiftlab')] / results[(case, 'haproxy')]:>12.2f}"
            print(row)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_backend":
        install_uvloop()
        asyncio.run(serve_backends([int(p) for p in sys.argv[2:]]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_loadgen":
        loadgen_main(sys.argv[2:])
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        main()
