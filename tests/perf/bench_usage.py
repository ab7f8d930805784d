#!/usr/bin/env python3
"""The CPU cost of measuring task CPU and memory (controller.usage) for 50
process tasks, a look every scaled 20 s (ECS's period) at timeScale 60 —
three looks a second — with each minute's AWS/ECS and
ECS/ContainerInsights datapoints filed in a metric store. Run on demand;
nothing is asserted (the goal: under 5 % of one core).

    .venv/bin/python tests/perf/bench_usage.py                 # 50 tasks, 20 s
    .venv/bin/python tests/perf/bench_usage.py --tasks 50 --seconds 30 --scale 60

The tasks are real processes, each leading its own session as the process
backend starts them, and each with one child (the tree the sampler walks):
a sleeping Python parent and a `sleep` child. The figure is this process's
CPU time (all threads: the /proc reads run in a worker thread) over the
wall-clock time, measured by getrusage, with the loop on the real clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shiftlab.controller.backends.base import RUNNING, Task
from shiftlab.controller.metricstore import MetricStore
from shiftlab.controller.usage import (
    LOOK_SECONDS,
    MINUTE_SECONDS,
    ProcessUsageSampler,
    TaskLook,
    UsageBook,
    host_reserved,
    reserved_of,
)

TASK = "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def spawn(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", TASK], start_new_session=True) for _ in range(n)]


async def bench(n: int, seconds: float, scale: float) -> None:
    procs = spawn(n)
    try:
        tasks = [Task(f"t{i}", "1" if i % 2 else "2", "blue", "web", None, "127.0.0.1", 0, RUNNING, pid=p.pid)
                 for i, p in enumerate(procs)]
        await asyncio.sleep(1.0)  # the children started
        sampler = ProcessUsageSampler()
        book = UsageBook("local", "web", lambda rev: "web", MINUTE_SECONDS / scale)
        store = MetricStore(retention_seconds=600.0 / scale, publish_seconds=MINUTE_SECONDS / scale)
        reserved = reserved_of(256, 512, host_reserved())
        interval = LOOK_SECONDS / scale
        looks = published = 0
        start_wall, start_cpu = time.monotonic(), cpu_seconds()
        next_at = start_wall
        while time.monotonic() - start_wall < seconds:
            now = time.monotonic()
            usage = await sampler.sample(tasks)
            rows = [TaskLook(t.task_id, t.revision, usage[t.task_id], reserved) for t in tasks if t.task_id in usage]
            for key, entry in book.add(now, rows, (len(rows), 0, n)):
                store.custom.add(key, entry, now)
                published += 1
            looks += 1
            next_at += interval
            await asyncio.sleep(max(next_at - time.monotonic(), 0.0))
        wall, cpu = time.monotonic() - start_wall, cpu_seconds() - start_cpu
        measured = len(usage)
        print(f"{n} tasks ({measured} measured, two processes each), timeScale {scale:g}: {looks} looks in "
              f"{wall:.1f} s ({looks / wall:.2f}/s), {published} datapoints filed")
        print(f"CPU: {cpu:.3f} s over {wall:.1f} s = {100 * cpu / wall:.2f} % of one core "
              f"({1000 * cpu / looks:.2f} ms a look)")
    finally:
        for p in procs:
            os.killpg(p.pid, 9)
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--scale", type=float, default=60.0)
    a = ap.parse_args()
    asyncio.run(bench(a.tasks, a.seconds, a.scale))


if __name__ == "__main__":
    main()
