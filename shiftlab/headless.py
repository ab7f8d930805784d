"""A headless service's rehearsal kit: a queue consumer service's config
(no load balancer; the activation hook at PRODUCTION_TRAFFIC_SHIFT; an
alarm on the consumers' MessagesFailed), shiftlab's work queue with a
bounded producer, and the accounting that shows whether a message was lost
or processed twice. The demo's `headless` scenario, the pytest plugin and
the tests use it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shiftlab.workqueue import QueueServer, WorkQueue

CONSUMER = ["{python}", "-m", "shiftlab.queue_consumer"]
ACTIVATION_HOOK = {"hookTargetArn": "command:{python} -m shiftlab.activation_hook",
                   "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}
FAILURE_ALARM_NAME = "queue-consumer-failures"
# The consumers' own metric (EMF in their output): any failed message in a minute.
FAILURE_ALARM = {
    "AlarmName": FAILURE_ALARM_NAME, "Namespace": "WorkQueue", "MetricName": "MessagesFailed",
    "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}


def headless_config(queue_url: str, state_dir: str, time_scale: float = 60.0, desired: int = 2,
                    bake_minutes: int = 3, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """A whole shiftlab.yaml (as data) for a queue consumer service: no
    `loadBalancer` section, no `service.loadBalancers`."""
    return {
        "timeScale": time_scale,
        "service": {
            "serviceName": "worker", "desiredCount": desired,
            "taskDefinition": {"command": CONSUMER, "stopTimeout": 5,
                               "environment": {"QUEUE_URL": queue_url, "EMF_INTERVAL_MS": "250",
                                               "VISIBILITY_TIMEOUT": "5", **(extra_env or {})}},
        },
        "deploymentConfiguration": {
            "strategy": "BLUE_GREEN", "bakeTimeInMinutes": bake_minutes,
            "lifecycleHooks": [dict(ACTIVATION_HOOK)],
            "alarms": {"alarmNames": [FAILURE_ALARM_NAME], "enable": True, "rollback": True},
        },
        "alarms": [dict(FAILURE_ALARM)],
        "controller": {"port": 0, "stateDir": state_dir, "taskStartTimeoutSeconds": 20},
    }


@dataclass(frozen=True)
class Accounting:
    """What the queue says of a run: sent, deleted (processed), lost (sent,
    never processed), duplicates (processed more than once), redelivered
    (received more than once: a failure or a stop in between), and the
    messages each consumer (revision) processed."""

    sent: int
    processed: int
    duplicates: int
    redelivered: int
    by_consumer: dict[str, int]

    @property
    def lost(self) -> int:
        return self.sent - self.processed

    @classmethod
    def of(cls, stats: dict[str, Any]) -> Accounting:
        return cls(stats["sent"], stats["deleted"], stats["duplicates"], stats["redelivered"],
                   {str(k): int(v) for k, v in stats["deletedBy"].items()})

    def line(self) -> str:
        by = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_consumer.items())) or "none"
        return (f"messages: {self.sent} sent, {self.processed} processed, {self.lost} lost, "
                f"{self.duplicates} processed twice, {self.redelivered} delivered again (at-least-once); "
                f"processed by {by}")


class QueueRun:
    """shiftlab's work queue served on loopback for one rehearsal, with a
    bounded producer (`produce`) and a wait for the consumers to empty it."""

    def __init__(self, path: Path | str, port: int = 0) -> None:
        self.queue = WorkQueue(path)
        self.server = QueueServer(self.queue, port=port)

    @property
    def url(self) -> str:
        return self.server.url

    async def __aenter__(self) -> QueueRun:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.stop()
        self.queue.close()

    async def produce(self, total: int, rate: float, stop: asyncio.Event | None = None) -> int:
        """Send up to `total` messages at `rate` a second (until `stop`); returns how many."""
        sent, started = 0, time.monotonic()
        while sent < total and not (stop is not None and stop.is_set()):
            due = int((time.monotonic() - started) * rate) + 1
            batch = min(due, total) - sent
            if batch > 0:
                self.queue.send([f"job {sent + i + 1}" for i in range(batch)])
                sent += batch
            await asyncio.sleep(min(0.05, 1.0 / rate))
        return sent

    async def drained(self, timeout: float) -> bool:
        """Until every message sent was processed (or `timeout` real seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.queue.stats()
            if s["deleted"] == s["sent"]:
                return True
            await asyncio.sleep(0.05)
        return False

    def accounting(self) -> Accounting:
        return Accounting.of(self.queue.stats())


def with_queue_url(settings: Any) -> tuple[Any, str]:
    """`settings` (shiftlab.settings.Settings) whose tasks get QUEUE_URL of a
    work queue on a free loopback port (over any the file gives), and that URL."""
    import dataclasses

    from shiftlab.common.ports import free_port

    assert settings.service is not None
    url = f"http://127.0.0.1:{free_port()}"
    td = settings.service.taskDefinition
    td = td.model_copy(update={"environment": {**td.environment, "QUEUE_URL": url}})
    service = settings.service.model_copy(update={"taskDefinition": td})
    return dataclasses.replace(settings, service=service), url


DRAIN_SECONDS = 30.0  # real seconds the revision left gets to empty the queue once the deployment ends


async def with_queue(queue_url: str, state_dir: Path | str, rate: float,
                     run: Callable[[Any], Awaitable[Any]]) -> tuple[Any, Accounting, dict[str, int] | None]:
    """A rehearsal (`run(before_stop)`, shiftlab.rehearse.rehearse's
    before_stop) beside shiftlab's work queue, served on the port of
    `queue_url` (the consumers' QUEUE_URL): messages at `rate` a second until
    the deployment ends, then, while the revision left still runs, until it
    has processed every one (at most DRAIN_SECONDS). Returns the rehearsal's
    outcome, the queue's accounting and what each consumer processed after
    the rollback put blue back (None: no rollback)."""
    from shiftlab.rehearse import rollback_at

    after: list[dict[str, int] | None] = [None]
    async with QueueRun(Path(state_dir) / "queue.sqlite", urlsplit(queue_url).port or 0) as q:
        stop = asyncio.Event()
        producer = asyncio.create_task(q.produce(int(rate * 3600), rate, stop))

        async def drain(events: list[dict[str, Any]]) -> None:
            stop.set()
            await producer
            await q.drained(DRAIN_SECONDS)
            back = rollback_at(events)
            after[0] = q.queue.deleted_since(back) if back is not None else None

        try:
            outcome = await run(drain)
        finally:
            stop.set()
            await producer
        return outcome, q.accounting(), after[0]
