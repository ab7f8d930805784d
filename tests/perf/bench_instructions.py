#!/usr/bin/env python3
"""Instructions per request of `shiftlab proxy`, counted by valgrind's
callgrind: the same figure whatever else the machine is doing, so a change
can be compared with the code before it on a busy machine, where wall-clock
throughput swings by 2x. Run on demand, never in CI; nothing is asserted.

    .venv/bin/python tests/perf/bench_instructions.py                      # this checkout, full and bare
    .venv/bin/python tests/perf/bench_instructions.py --baseline ../old    # and another checkout, side by side

The proxy runs under callgrind with instrumentation off while it starts;
it is switched on (callgrind_control -i on) for exactly `--requests`
keep-alive requests after a warm-up, then off, and the Ir count of that
window is divided by the number of requests. The config is bench_proxy's:
`full` (ten rules that do not match, a 90/10 sticky forward) or `bare` (the
forward alone), so full/bare is the feature tax. Slow (a minute or two per
case under valgrind); needs valgrind.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import free_port, shiftlab_load_balancer

REPO = Path(__file__).resolve().parents[2]


def wait_answers(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on {port} after {timeout:.0f} s")
        time.sleep(0.5)


def requests(port: int, n: int) -> None:
    """`n` requests on one keep-alive connection, each checked."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    conn.close()


def proxy_command(source: Path, config: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    module = ["shiftlab", "proxy"] if (source / "shiftlab" / "proxy").exists() else ["proxy"]
    return [sys.executable, "-m", *module, "-c", str(config)], env


def measure(source: Path, full: bool, n: int, warmup: int, work: Path) -> float:
    backends = [free_port(), free_port()]
    port, admin = free_port(), free_port()
    config = work / f"{'full' if full else 'bare'}.json"
    config.write_text(json.dumps({"loadBalancer": shiftlab_load_balancer(port, admin, *backends, full=full)}))
    backend = subprocess.Popen([sys.executable, str(REPO / "tests/perf/bench_proxy.py"), "_backend",
                                *map(str, backends)])
    out = work / "callgrind.out"
    cmd, env = proxy_command(source, config)
    proxy = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                              *cmd], env=env, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_answers(port, 600)
        requests(port, warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(proxy.pid)], check=True, capture_output=True)
        requests(port, n)
        subprocess.run(["callgrind_control", "-i", "off", str(proxy.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], check=True, capture_output=True)
        dumps = sorted(work.glob("callgrind.out*"))
        total = 0
        for dump in dumps:
            m = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.M)
            total += int(m.group(1)) if m else 0
        return total / n
    finally:
        for p in (proxy, backend):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
            if p.poll() is None:
                p.kill()
        for dump in work.glob("callgrind.out*"):
            dump.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="requests counted per case")
    ap.add_argument("--warmup", type=int, default=300, help="requests before counting starts")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to count the same way")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("needs valgrind (apt-get install valgrind)")
        return 1
    sources = [("this checkout", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="shiftlab-instr-") as tmp:
        for name, source in sources:
            full = measure(source, True, args.requests, args.warmup, Path(tmp))
            bare = measure(source, False, args.requests, args.warmup, Path(tmp))
            rows.append((name, full, bare))
    print(f"{'':16} {'full Ir/req':>12} {'bare Ir/req':>12} {'feature tax':>12}")
    for name, full, bare in rows:
        print(f"{name:16} {full:12,.0f} {bare:12,.0f} {100 * (full - bare) / bare:11.1f}%")
    if len(rows) == 2:
        (_, f1, b1), (_, f0, b0) = rows
        print(f"{'this/baseline':16} {f1 / f0:12.3f} {b1 / b0:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
