"""The embedded metric format: metrics in a task's output, extracted as
CloudWatch Logs extracts them from a log event.

Specification (the rules below are its MUSTs):
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

- A log event (one line of the task's stdout/stderr) is an EMF document
  when it is a JSON object with an `_aws` member; other lines are logs and
  are left alone.
- `_aws` is an object with `Timestamp` (a number, milliseconds since the
  epoch) and `CloudWatchMetrics`, an array of MetricDirective objects.
- A MetricDirective has `Namespace` (a string), `Dimensions` (an array of
  DimensionSets, each an array of at most 30 dimension keys) and `Metrics`
  (an array of at most 100 MetricDefinitions).
- A MetricDefinition has `Name`, an optional `Unit` (a CloudWatch
  StandardUnit) and an optional `StorageResolution` (1 or 60, default 60).
- Every name a directive references is a target member of the root: a
  dimension's value a string, a metric's a number or an array of at most
  100 numbers.
- A document larger than a log event's limit (1 MB) is not a log event.

`parse(line, to_store, place)` returns the datapoints of a valid document,
[] for a line that is not one, and raises `EmfError` (with the member's
path) for an invalid document: nothing of it is stored, as CloudWatch
extracts nothing from it. `EmfTailer` reads the new output of a service's
tasks on each `tick` and files what it extracts into `CustomMetrics`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shiftlab.controller.cloudwatch import MAX_AGE_SECONDS, MAX_AHEAD_SECONDS, VALUE_LIMIT, Datapoint
from shiftlab.controller.metricstore import UNITS, CustomMetrics, Entry, metric_key

log = logging.getLogger("shiftlab.controller")

MAX_EVENT_BYTES = 1024 * 1024  # a CloudWatch Logs event's size limit, which EMF documents share
MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100
READ_LIMIT = 4 * 1024 * 1024  # bytes read from one task's output per tick; the rest waits for the next


class EmfError(ValueError):
    pass


def _string(value: Any, path: str, high: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= high:
        raise EmfError(f"{path}: must be a string of 1 to {high} characters")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise EmfError(f"{path}: must be an array")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EmfError(f"{path}: must be a number")
    x = float(value)
    if not math.isfinite(x) or abs(x) > VALUE_LIMIT:
        raise EmfError(f"{path}: must be a finite number within -2^360..2^360")
    return x


def parse(line: str | bytes, wall_now: float, to_store: Callable[[float], float],
          place: Callable[[float, int], float]) -> list[Datapoint]:
    """The datapoints of one log event. `to_store` maps a wall-clock time onto
    the store's clock; `place` files it by storage resolution."""
    text = (line.encode() if isinstance(line, str) else line).strip()
    if not text.startswith(b"{"):
        return []
    if len(text) > MAX_EVENT_BYTES:
        if b'"_aws"' not in text:
            return []  # a long JSON log line, not a metric document
        raise EmfError(f"the event is {len(text)} bytes, more than a log event's {MAX_EVENT_BYTES}")
    try:
        root = json.loads(text)
    except ValueError:
        return []  # a log line that merely starts with a brace
    if not isinstance(root, dict) or "_aws" not in root:
        return []
    aws = root["_aws"]
    if not isinstance(aws, dict):
        raise EmfError("_aws: must be an object")
    if "Timestamp" not in aws:
        raise EmfError("_aws.Timestamp: is required")
    stamp = _number(aws["Timestamp"], "_aws.Timestamp") / 1000.0
    if stamp < wall_now - MAX_AGE_SECONDS or stamp > wall_now + MAX_AHEAD_SECONDS:
        raise EmfError("_aws.Timestamp: must be within 14 days before and 2 hours after now")
    if "CloudWatchMetrics" not in aws:
        raise EmfError("_aws.CloudWatchMetrics: is required")
    out: list[Datapoint] = []
    for i, directive in enumerate(_array(aws["CloudWatchMetrics"], "_aws.CloudWatchMetrics")):
        p = f"_aws.CloudWatchMetrics[{i}]"
        if not isinstance(directive, dict):
            raise EmfError(f"{p}: must be an object")
        for required in ("Namespace", "Dimensions", "Metrics"):
            if required not in directive:
                raise EmfError(f"{p}.{required}: is required")
        namespace = _string(directive["Namespace"], f"{p}.Namespace", 255)
        if namespace.startswith(":"):
            raise EmfError(f"{p}.Namespace: may not start with ':'")
        dimension_sets: list[list[tuple[str, str]]] = []
        sets = _array(directive["Dimensions"], f"{p}.Dimensions")
        for j, keys in enumerate(sets):
            dp = f"{p}.Dimensions[{j}]"
            if len(_array(keys, dp)) > MAX_DIMENSIONS:
                raise EmfError(f"{dp}: has {len(keys)} dimensions, more than {MAX_DIMENSIONS}")
            pairs = []
            for k, key in enumerate(keys):
                _string(key, f"{dp}[{k}]", 255)
                if key not in root:
                    raise EmfError(f"{dp}[{k}]: the target member {key!r} is missing")
                pairs.append((key, _string(root[key], key, 1024)))
            dimension_sets.append(pairs)
        if not sets:
            dimension_sets.append([])  # no dimension set: the metrics without dimensions
        metrics = _array(directive["Metrics"], f"{p}.Metrics")
        if len(metrics) > MAX_METRICS:
            raise EmfError(f"{p}.Metrics: has {len(metrics)} metrics, more than {MAX_METRICS}")
        for k, definition in enumerate(metrics):
            mp = f"{p}.Metrics[{k}]"
            if not isinstance(definition, dict):
                raise EmfError(f"{mp}: must be an object")
            name = _string(definition.get("Name"), f"{mp}.Name", 255)
            unit = definition.get("Unit", "None")
            if unit not in UNITS:
                raise EmfError(f"{mp}.Unit: {unit!r} is not a CloudWatch unit ({', '.join(UNITS)})")
            resolution = definition.get("StorageResolution", 60)
            if isinstance(resolution, bool) or resolution not in (1, 60):
                raise EmfError(f"{mp}.StorageResolution: must be 1 or 60")
            if name not in root:
                raise EmfError(f"{mp}.Name: the target member {name!r} is missing")
            raw = root[name]
            values = [_number(v, f"{name}[{n}]") for n, v in enumerate(raw)] if isinstance(raw, list) \
                else [_number(raw, name)]
            if not values or len(values) > MAX_VALUES:
                raise EmfError(f"{name}: must hold 1 to {MAX_VALUES} values")
            at = place(to_store(stamp), int(resolution))
            entry = Entry(at, unit, float(len(values)), sum(values), min(values), max(values),
                          tuple((v, 1.0) for v in values))
            out += [Datapoint(metric_key(namespace, name, pairs), entry) for pairs in dimension_sets]
    return out


class EmfTailer:
    """Reads what a service's tasks wrote since the last tick (their log files
    under the backend's `logs_dir`) and files the EMF metrics in it.
    Invalid documents are logged (the first few per task) and counted in
    `rejected`; `extracted` counts datapoints stored."""

    def __init__(self, logs_dir: Path, custom: CustomMetrics, now: Callable[[], float]) -> None:
        self.logs_dir = logs_dir
        self.custom = custom
        self.now = now
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._warned: dict[str, int] = {}
        self._finished: set[str] = set()  # stopped tasks whose output has been read to its end
        self.extracted = 0
        self.rejected = 0
        self._round: asyncio.Task[None] | None = None

    def tick(self, tasks: list[tuple[str, bool]]) -> None:
        """Read the output of `tasks` ((task id, stopped) pairs) in a thread,
        unless the last read is still going: never blocks the loop."""
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._read_all(tasks))

    async def wait(self) -> None:
        if self._round is not None:
            await asyncio.shield(self._round)

    async def _read_all(self, tasks: list[tuple[str, bool]]) -> None:
        try:
            chunks = await asyncio.to_thread(self._read_new, tasks)
            for task_id, lines in chunks:
                for line in lines:
                    self._line(task_id, line)
        except Exception:
            log.exception("reading the tasks' output for metrics failed")

    def _read_new(self, tasks: list[tuple[str, bool]]) -> list[tuple[str, list[bytes]]]:
        out = []
        for task_id, stopped in tasks:
            if task_id in self._finished:
                continue
            path = self.logs_dir / f"{task_id}.log"
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0
            offset = self._offsets.get(task_id, 0)
            if size <= offset:
                if stopped:  # its output is complete and read: forget it
                    self._finished.add(task_id)
                    self._offsets.pop(task_id, None)
                    rest = self._partial.pop(task_id, b"")
                    if rest:
                        out.append((task_id, [rest]))
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(READ_LIMIT)
            self._offsets[task_id] = offset + len(data)
            data = self._partial.pop(task_id, b"") + data
            lines = data.split(b"\n")
            rest = lines.pop()
            if len(rest) > MAX_EVENT_BYTES:
                lines.append(rest)  # no newline in sight: judged as it is, so the buffer stays bounded
            elif rest:
                self._partial[task_id] = rest
            out.append((task_id, lines))
        return out

    def _line(self, task_id: str, line: bytes) -> None:
        wall = time.time()
        now = self.now()
        try:
            points = parse(line, wall, lambda at: now - (wall - at), self.custom.place)
        except EmfError as exc:
            self.rejected += 1
            seen = self._warned.get(task_id, 0)
            if seen < 5:
                self._warned[task_id] = seen + 1
                log.warning("task %s: an invalid embedded-metric-format line, no metric extracted: %s",
                            task_id, exc)
            return
        for point in points:
            if self.custom.add(point.key, point.entry, now):
                self.extracted += 1
