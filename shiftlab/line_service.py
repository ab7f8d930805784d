"""A non-HTTP sample task for a network load balancer: a line protocol over
long-lived TCP connections, each line answered with the revision that read it.

    client: hello\\n
    task:   OK 2 green t-1: hello\\n        (OK <revision> <colour> <task>: <line>)
    task:   ERROR 2 green t-1: hello\\n     (a fault, see ERROR_RATE)

A connection stays open for as many lines as the client sends, so the
rehearsal can show an open connection staying on its revision while new
connections follow the weights. Standard library only; run it as
`python -m shiftlab.line_service`.

Environment:
  HOST (127.0.0.1), PORT (8080)
  SHIFTLAB_REVISION (or REVISION), SHIFTLAB_COLOUR, SHIFTLAB_TASK_ID
  ERROR_RATE (0..1): the n-th line of the task answers ERROR iff
  floor(n*r) > floor((n-1)*r) (deterministic, as sample_service's)
  EXIT_AT_START (1/true): exit 1 at once, as a revision that cannot start
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
from fractions import Fraction

MAX_LINE = 64 * 1024
TRUE = ("1", "true", "yes", "on")


class LineServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.revision = env.get("SHIFTLAB_REVISION") or env.get("REVISION") or "1"
        self.colour = env.get("SHIFTLAB_COLOUR", "-")
        self.task = env.get("SHIFTLAB_TASK_ID", "-")
        rate = Fraction(env.get("ERROR_RATE", "0") or "0").limit_denominator(10_000)
        if not 0 <= rate <= 1:
            raise ValueError(f"ERROR_RATE {env.get('ERROR_RATE')!r} is not within 0..1")
        self.error_rate = rate
        self.lines = 0

    def answer(self, line: bytes) -> bytes:
        self.lines += 1
        n, r = self.lines, self.error_rate
        failed = math.floor(n * r) > math.floor((n - 1) * r)
        head = "ERROR" if failed else "OK"
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        return f"{head} {self.revision} {self.colour} {self.task}: {text}\n".encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(self.answer(line))
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


async def serve(env: dict[str, str]) -> None:
    server_state = LineServer(env)
    host, port = env.get("HOST", "127.0.0.1"), int(env.get("PORT", "8080"))
    server = await asyncio.start_server(server_state.handle, host, port, limit=MAX_LINE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"line service revision {server_state.revision} on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    if env.get("EXIT_AT_START", "").lower() in TRUE:
        print("line service: EXIT_AT_START set, exiting", file=sys.stderr, flush=True)
        return 1
    try:
        asyncio.run(serve(env))
    except ValueError as exc:
        print(f"line service: bad environment: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
