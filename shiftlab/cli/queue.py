"""`shiftlab queue`: shiftlab's work queue (shiftlab.workqueue) for a
headless service's consumers: serve it on loopback, send it messages, read
its counts."""

from __future__ import annotations

import asyncio
import json
import sys

import click

DEFAULT_URL = "http://127.0.0.1:9300"


@click.group()
def queue() -> None:
    """shiftlab's work queue (SQLite, at-least-once) for headless services' consumers."""


@queue.command()
@click.option("--port", type=int, default=9300, show_default=True, help="On 127.0.0.1 (0: a free port).")
@click.option("--path", default=".shiftlab/queue.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="The queue's SQLite file: messages survive a restart.")
def serve(port: int, path: str) -> None:
    """Serve the queue's HTTP API in the foreground until Ctrl-C."""
    from shiftlab.workqueue import QueueServer, WorkQueue

    async def run() -> None:
        server = QueueServer(WorkQueue(path), port=port)
        await server.start()
        click.echo(f"work queue at {server.url} ({path}); QUEUE_URL={server.url}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            server.queue.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        click.echo(f"cannot serve: {exc}", err=True)
        sys.exit(1)


@queue.command()
@click.argument("count", type=click.IntRange(1, 1_000_000))
@click.option("--url", default=DEFAULT_URL, show_default=True)
def send(count: int, url: str) -> None:
    """Send COUNT messages ("job 1" ...)."""
    from shiftlab.workqueue import QueueClient

    client = QueueClient(url)
    try:
        sent = 0
        while sent < count:
            batch = min(500, count - sent)
            client.send([f"job {sent + i + 1}" for i in range(batch)])
            sent += batch
    except OSError as exc:
        click.echo(f"cannot send to {url}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"sent {count}")


@queue.command()
@click.option("--url", default=DEFAULT_URL, show_default=True)
def stats(url: str) -> None:
    """The queue's counts (sent, deleted, waiting, inFlight, redelivered, duplicates, deletedBy) as JSON."""
    from shiftlab.workqueue import QueueClient

    try:
        click.echo(json.dumps(QueueClient(url).stats(), indent=2))
    except OSError as exc:
        click.echo(f"cannot read {url}: {exc}", err=True)
        sys.exit(1)
