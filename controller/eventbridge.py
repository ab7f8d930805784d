"""ECS's and CloudWatch's events out, shaped as EventBridge delivers them,
to the targets of `controller.eventTargets` (a JSON-lines file, an HTTP
webhook) and to the controller's event stream (SSE `eventbridge` messages),
so that a team's Slack/ChatOps relay can be pointed at a rehearsal.

- "ECS Deployment State Change" (source aws.ecs): SERVICE_DEPLOYMENT_IN_PROGRESS,
  SERVICE_DEPLOYMENT_COMPLETED (INFO) and SERVICE_DEPLOYMENT_FAILED (ERROR),
  with the reason
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html).
- "ECS Service Action" (source aws.ecs): the ones shiftlab knows truthfully,
  SERVICE_STEADY_STATE (INFO) once a deployment or its rollback completes,
  and SERVICE_TASK_START_IMPAIRED (WARN) when new tasks keep failing
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html).
- "CloudWatch Alarm State Change" (source aws.cloudwatch): alarmName, state
  and previousState (value, reason, timestamp), configuration (description,
  metrics)
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).

Delivery never blocks the controller: `emit` queues the event for each
target (a bounded queue; when full, the event is dropped for that target
and counted); a task per target writes or POSTs them in order. A webhook
gets each event as a JSON body; a failure (an error status, a refused
connection, a timeout) is retried with exponential backoff (0.5 s, 1 s,
2 s, ... at most 30 s between tries) up to `maxAttempts` times, then
dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import aiohttp
from pydantic import AfterValidator, model_validator

from shiftlab.common.configfile import Model, in_range
from shiftlab.controller import eventlog

log = logging.getLogger("shiftlab.controller")

ACCOUNT = "000000000000"  # as the ARNs shiftlab makes up
REGION = "local"
QUEUE_LIMIT = 1000  # events a target may fall behind before new ones are dropped for it
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
REQUEST_TIMEOUT = 10.0

IN_PROGRESS = "SERVICE_DEPLOYMENT_IN_PROGRESS"
COMPLETED = "SERVICE_DEPLOYMENT_COMPLETED"
FAILED = "SERVICE_DEPLOYMENT_FAILED"
STEADY_STATE = "SERVICE_STEADY_STATE"
TASK_START_IMPAIRED = "SERVICE_TASK_START_IMPAIRED"
# The circuit breaker's count at which new tasks are "unable to consistently
# start": the second failure in a row (ECS's default threshold is at least 3,
# so this comes before the breaker trips; the count resets on a healthy task).
IMPAIRED_AFTER = 2


def _http_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


class EventTarget(Model):
    """One of `controller.eventTargets`: `file` (JSON lines, appended) or `url` (a webhook)."""

    file: str | None = None
    url: Annotated[str | None, AfterValidator(_http_url)] = None
    headers: dict[str, str] = {}
    maxAttempts: Annotated[int, in_range(1, 100)] = 5

    @model_validator(mode="after")
    def _one_target(self) -> EventTarget:
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of file and url")
        return self


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(detail_type: str, source: str, resources: Sequence[str], detail: dict[str, Any],
             at: float) -> dict[str, Any]:
    """EventBridge's event structure (version, id, detail-type, source, account, time, region, resources, detail)."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": ACCOUNT, "time": _iso(at), "region": REGION, "resources": list(resources),
            "detail": detail}


def deployment_events(status: str, reason: str | None, deployment_id: str, service_arn: str,
                      at: float) -> list[dict[str, Any]]:
    """What ECS sends as a deployment reaches `status`: in progress (a rollback
    too, which ECS announces as a failure of the deployment, then a rollback
    in progress), completed, failed. Other statuses send nothing."""

    def event(kind: str, name: str, why: str) -> dict[str, Any]:
        return envelope("ECS Deployment State Change", "aws.ecs", [service_arn], {
            "eventType": kind, "eventName": name, "deploymentId": deployment_id, "updatedAt": _iso(at),
            "reason": why}, at)

    if status == "IN_PROGRESS":
        return [event("INFO", IN_PROGRESS, f"ECS deployment {deployment_id} in progress.")]
    if status == "SUCCESSFUL":
        return [event("INFO", COMPLETED, f"ECS deployment {deployment_id} completed.")]
    if status == "ROLLBACK_IN_PROGRESS":
        return [event("ERROR", FAILED, reason or f"ECS deployment {deployment_id} failed."),
                event("INFO", IN_PROGRESS, f"ECS deployment: rolling back {deployment_id}"
                                           + (f" ({reason})." if reason else "."))]
    if status == "ROLLBACK_SUCCESSFUL":
        return [event("INFO", COMPLETED, f"ECS deployment {deployment_id} rolled back: the previous revision "
                                         "is in a steady state.")]
    if status in ("ROLLBACK_FAILED", "STOPPED"):
        return [event("ERROR", FAILED, reason or f"ECS deployment {deployment_id} {status.lower()}.")]
    return []


def service_action(event_type: str, event_name: str, service_arn: str, cluster_arn: str,
                   at: float) -> dict[str, Any]:
    """An "ECS Service Action" event as the page's examples show it: the
    service's ARN in `resources`; `detail` has eventType, eventName,
    clusterArn and createdAt (with milliseconds)."""
    created = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return envelope("ECS Service Action", "aws.ecs", [service_arn], {
        "eventType": event_type, "eventName": event_name, "clusterArn": cluster_arn, "createdAt": created}, at)


def service_action_events(entry_type: str, data: Mapping[str, Any], service_arn: str, cluster_arn: str,
                          at: float) -> list[dict[str, Any]]:
    """The service action events an event-log entry (type, data) stands for:
    SERVICE_STEADY_STATE when a deployment or its rollback completes (the
    service is at its desired count, its tasks healthy); SERVICE_TASK_START_IMPAIRED
    when a second new task in a row fails (`task.failed` with the circuit
    breaker's count at IMPAIRED_AFTER) or new tasks are not healthy within
    taskStartTimeoutSeconds without a circuit breaker (`task.not_healthy`)."""
    if entry_type == eventlog.STATUS_CHANGED.name and data.get("status") in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL"):
        return [service_action("INFO", STEADY_STATE, service_arn, cluster_arn, at)]
    if (entry_type == eventlog.TASK_FAILED.name and data.get("failures") == IMPAIRED_AFTER) \
            or entry_type == eventlog.TASK_NOT_HEALTHY.name:
        return [service_action("WARN", TASK_START_IMPAIRED, service_arn, cluster_arn, at)]
    return []


def _metric(metric: Any) -> dict[str, Any]:
    return {"namespace": metric.Namespace, "name": metric.MetricName,
            "dimensions": {d.Name: d.Value for d in metric.Dimensions or []}}


def alarm_configuration(alarm: Any) -> dict[str, Any]:
    """The `configuration` of an alarm state change event: description and metrics."""
    if alarm.Metrics is None:
        stat = {"metric": {"namespace": alarm.Namespace, "name": alarm.MetricName,
                           "dimensions": {d.Name: d.Value for d in alarm.Dimensions or []}},
                "period": alarm.Period, "stat": alarm.Statistic or alarm.ExtendedStatistic}
        metrics = [{"id": "m1", "metricStat": stat, "returnData": True}]
    else:
        metrics = []
        for q in alarm.Metrics:
            item: dict[str, Any] = {"id": q.Id, "returnData": q.ReturnData is not False}
            if q.MetricStat is not None:
                item["metricStat"] = {"metric": _metric(q.MetricStat.Metric), "period": q.MetricStat.Period,
                                      "stat": q.MetricStat.Stat}
            else:
                item["expression"] = q.Expression
            if q.Label is not None:
                item["label"] = q.Label
            metrics.append(item)
    out: dict[str, Any] = {"metrics": metrics}
    if alarm.AlarmDescription is not None:
        out["description"] = alarm.AlarmDescription
    return out


def alarm_state_change(alarm: Any, state: tuple[str, str, float], previous: tuple[str, str, float],
                       at: float) -> dict[str, Any]:
    """`state`, `previous`: (value, reason, timestamp)."""

    def shape(s: tuple[str, str, float]) -> dict[str, Any]:
        return {"value": s[0], "reason": s[1], "timestamp": dt.datetime.fromtimestamp(s[2], dt.UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "+0000")}

    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm.AlarmName}"
    return envelope("CloudWatch Alarm State Change", "aws.cloudwatch", [arn], {
        "alarmName": alarm.AlarmName, "state": shape(state), "previousState": shape(previous),
        "configuration": alarm_configuration(alarm)}, at)


class _Target:
    def __init__(self, spec: EventTarget, base: Path) -> None:
        self.spec = spec
        self.path = (base / spec.file) if spec.file is not None else None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.delivered = self.dropped = self.failed = 0

    @property
    def name(self) -> str:
        return self.spec.url or str(self.path)


class EventDelivery:
    """The targets and their delivery tasks; `emit` from anywhere on the loop."""

    def __init__(self, targets: Sequence[EventTarget], base: Path,
                 sleep: Any = asyncio.sleep) -> None:
        self.targets = [_Target(t, base) for t in targets]
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self.targets and not self._tasks:
            self._tasks = [asyncio.create_task(self._run(t)) for t in self.targets]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def emit(self, event: dict[str, Any]) -> None:
        for t in self.targets:
            try:
                t.queue.put_nowait(event)
            except asyncio.QueueFull:
                t.dropped += 1
                if t.dropped == 1 or t.dropped % 100 == 0:
                    log.warning("event target %s is %d events behind: %d dropped so far", t.name, QUEUE_LIMIT,
                                t.dropped)

    async def _run(self, t: _Target) -> None:
        while True:
            event = await t.queue.get()
            try:
                if t.path is not None:
                    await asyncio.to_thread(_append, t.path, event)
                    t.delivered += 1
                else:
                    await self._post(t, event)
            except asyncio.CancelledError:
                raise
            except Exception:
                t.failed += 1
                log.exception("event target %s: delivery failed", t.name)

    async def _post(self, t: _Target, event: dict[str, Any]) -> None:
        assert t.spec.url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        delay = BACKOFF_FIRST
        for attempt in range(1, t.spec.maxAttempts + 1):
            why = ""
            try:
                async with self._session.post(t.spec.url, json=event, headers=t.spec.headers) as resp:
                    if resp.status < 300:
                        t.delivered += 1
                        return
                    why = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
            if attempt < t.spec.maxAttempts:
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        t.failed += 1
        log.warning("event target %s: %s dropped after %d attempts (%s)", t.name, event["detail-type"],
                    t.spec.maxAttempts, why)


def _append(path: Path, event: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")
