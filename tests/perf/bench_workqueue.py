#!/usr/bin/env python3
"""Throughput of shiftlab's work queue (shiftlab.workqueue): messages a
second through one send, receive and delete each, in-process (the SQLite
transactions alone, WAL with synchronous=NORMAL) and over HTTP with the tasks' client
(N consumer threads, as N consumer tasks). Run on demand; nothing is
asserted. A demo or a rehearsal sends tens of messages a second: the figure
to watch is that the HTTP path stays far above that.

    .venv/bin/python tests/perf/bench_workqueue.py                 # 2000 messages, 4 consumers
    .venv/bin/python tests/perf/bench_workqueue.py --messages 5000 --consumers 8
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shiftlab.workqueue import QueueClient, QueueServer, WorkQueue


def direct(path: Path, n: int) -> float:
    q = WorkQueue(path)
    started = time.perf_counter()
    q.send([f"m{i}" for i in range(n)])
    done = 0
    while done < n:
        for m in q.receive(10, 30):
            q.delete(m.id, m.receipt, "bench")
            done += 1
    seconds = time.perf_counter() - started
    q.close()
    return n / seconds


async def over_http(path: Path, n: int, consumers: int) -> float:
    server = QueueServer(WorkQueue(path))
    await server.start()
    try:
        await asyncio.to_thread(QueueClient(server.url).send, [f"m{i}" for i in range(n)])

        def consume(counts: list[int]) -> None:
            client = QueueClient(server.url)
            while True:
                got = client.receive(1, 30)
                if not got:
                    return
                client.delete(got[0], "bench")
                counts.append(1)

        counts: list[int] = []
        started = time.perf_counter()
        threads = [threading.Thread(target=consume, args=(counts,)) for _ in range(consumers)]
        for t in threads:
            t.start()
        def join() -> None:
            for t in threads:
                t.join(timeout=600)

        await asyncio.to_thread(join)
        return len(counts) / (time.perf_counter() - started)
    finally:
        await server.stop()
        server.queue.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--consumers", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = direct(Path(tmp) / "direct.sqlite", args.messages)
        h = asyncio.run(over_http(Path(tmp) / "http.sqlite", args.messages, args.consumers))
    print(f"in-process (send, receive 10, delete each): {d:,.0f} messages/s")
    print(f"over HTTP, {args.consumers} consumers (receive 1, delete):   {h:,.0f} messages/s")
    print(f"HTTP / in-process: {h / d:.2f}")


if __name__ == "__main__":
    main()
