"""Task CPU and memory, measured: ECS's AWS/ECS service utilization and
Container Insights' metrics, from the tasks' real processes (or the Docker
engine's stats), into the metric store the alarms read.

What ECS publishes, and how shiftlab computes it
-------------------------------------------------
AWS/ECS CPUUtilization and MemoryUtilization, dimensions (ClusterName,
ServiceName), unit Percent
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html):

    Service CPU utilization = (Total CPU units used by tasks in service) x 100
        / ((CPU units specified in the task definition) x (number of tasks))

and the same for MiB of memory. "Amazon ECS collects metrics every 20
seconds ... The minimum and maximum values are the smallest and largest of
the 20 second metrics. The average is the aggregate of the 3 values"; the
Minimum and Maximum statistics are "the individual task with the lowest and
highest resource utilization". So each minute gets one datapoint, a
statistic set: SampleCount 3 (the 20-second looks), Sum the three service
values, Minimum/Maximum the lowest/highest task's value in any look. "If
you define CPU units at the task level, the utilization will not go above
the defined task-level limit": a task's CPU is counted up to its `cpu`.
"These metrics are collected for resources that have tasks in the RUNNING
state" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html):
a minute with no running task publishes nothing.

ECS/ContainerInsights
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html):
CpuUtilized, CpuReserved (CPU units, unit None), MemoryUtilized,
MemoryReserved (MiB, unit Megabytes) with (ClusterName),
(ClusterName, ServiceName) and (ClusterName, TaskDefinitionFamily); the
reservation "defined in the task definition ... If this is not specified
in the task definition, then the instance CPU reservation is used" (here:
this machine's CPUs, 1024 units each, and its memory). RunningTaskCount,
PendingTaskCount, DesiredTaskCount (Count) with (ClusterName, ServiceName).
One datapoint a minute: the average of the minute's looks (counts: the last
look).

Per revision (shiftlab's own, see README "Differences from AWS"): every
metric above with a TaskDefinitionFamily or ServiceName dimension is also
published with a `TaskDefinitionRevision` dimension added (the revision
number, "2" for the first deployment's green), so that an alarm can watch
green's CPU apart from blue's.

Time: a look every 20 s and a minute of 60 s, both divided by the time
scale, on the controller's injected clock; a minute's datapoint is filed at
the minute's start as soon as the first look of the next minute is taken.

Sources
-------
`UsageSampler.sample(tasks) -> {task_id: Usage}`: `ProcessUsageSampler`
(the task's process tree from /proc: utime+stime deltas and RSS),
`DockerUsageSampler` (the engine's stats, computed as `docker stats` does)
and `FakeUsageSampler` for unit tests; one contract test
(tests/controller/test_usage_contract.py). A backend offers its own with a
`usage_sampler()` method (`sampler_for`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shiftlab.controller.backends.base import PENDING, PROVISIONING, RUNNING, Task
from shiftlab.controller.metricstore import Entry, MetricKey, metric_key

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController

log = logging.getLogger("shiftlab.controller")

ECS = "AWS/ECS"
INSIGHTS = "ECS/ContainerInsights"
REVISION_DIMENSION = "TaskDefinitionRevision"  # shiftlab's own
CPU_UNITS_PER_VCPU = 1024
LOOK_SECONDS = 20.0  # "Amazon ECS collects metrics every 20 seconds"
MINUTE_SECONDS = 60.0  # "Amazon ECS sends metrics to CloudWatch at one-minute intervals"

ECS_METRICS = ("CPUUtilization", "MemoryUtilization")
RESOURCE_METRICS = ("CpuUtilized", "CpuReserved", "MemoryUtilized", "MemoryReserved")
COUNT_METRICS = ("RunningTaskCount", "PendingTaskCount", "DesiredTaskCount")
INSIGHTS_METRICS = (*RESOURCE_METRICS, *COUNT_METRICS)
UNITS = {"CPUUtilization": "Percent", "MemoryUtilization": "Percent", "CpuUtilized": "None", "CpuReserved": "None",
         "MemoryUtilized": "Megabytes", "MemoryReserved": "Megabytes", **{n: "Count" for n in COUNT_METRICS}}

# The dimension sets each metric is published with (names only, sorted as metric keys hold them).
_SERVICE = ("ClusterName", "ServiceName")
_FAMILY = ("ClusterName", "TaskDefinitionFamily")
DIMENSION_SETS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    **{(ECS, n): (_SERVICE, (*_SERVICE, REVISION_DIMENSION)) for n in ECS_METRICS},
    **{(INSIGHTS, n): (("ClusterName",), _SERVICE, _FAMILY, (*_SERVICE, REVISION_DIMENSION),
                       (*_FAMILY, REVISION_DIMENSION)) for n in RESOURCE_METRICS},
    **{(INSIGHTS, n): (_SERVICE,) for n in COUNT_METRICS},
}


def feeds(namespace: str, name: str, dimension_names: Iterable[str]) -> bool:
    """Whether this source publishes the metric with exactly these dimensions."""
    wanted = tuple(sorted(dimension_names))
    return any(tuple(sorted(s)) == wanted for s in DIMENSION_SETS.get((namespace, name), ()))


def fed(namespace: str, name: str, dimensions: Iterable[tuple[str, str]], cluster: str, service: str,
        families: Iterable[str]) -> bool:
    """Whether this source feeds the metric for this service: a dimension set
    it publishes, with the service's cluster, name and task definition family."""
    dims = dict(dimensions)
    if not feeds(namespace, name, dims):
        return False
    return (dims.get("ClusterName", cluster) == cluster and dims.get("ServiceName", service) == service
            and ("TaskDefinitionFamily" not in dims or dims["TaskDefinitionFamily"] in set(families)))


@dataclass(frozen=True)
class Usage:
    """One task at one look: CPU units in use (1024 = one vCPU busy),
    averaged since the sampler's previous look at it (None at its first
    look), and memory in use in MiB."""

    cpu_units: float | None
    memory_mib: float


class UsageSampler(Protocol):
    async def sample(self, tasks: Sequence[Task]) -> dict[str, Usage]:
        """The usage of each of `tasks` that can be measured now; a task
        that is gone (or not yet measurable) is left out. Never blocks the
        event loop for long; never raises for one task's trouble."""
        ...


def sampler_for(backend: Any) -> UsageSampler | None:
    """The backend's own sampler (its `usage_sampler()`), or None."""
    make: Callable[[], UsageSampler] | None = getattr(backend, "usage_sampler", None)
    return make() if make is not None else None


class FakeUsageSampler:
    """For unit tests: what `usage` (by task id) or `by_revision` says, CPU from the first look on."""

    def __init__(self) -> None:
        self.usage: dict[str, Usage] = {}
        self.by_revision: dict[str, Usage] = {}
        self.calls = 0

    async def sample(self, tasks: Sequence[Task]) -> dict[str, Usage]:
        self.calls += 1
        out = {}
        for t in tasks:
            u = self.usage.get(t.task_id) or self.by_revision.get(t.revision)
            if u is not None:
                out[t.task_id] = u
        return out


# --- the process backend: /proc ----------------------------------------------

_PROC = Path("/proc")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    raw = _read(f"{_PROC}/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rfind(b")") + 2:].decode().split()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux: /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            threads = os.listdir(f"{_PROC}/{p}/task")
        except OSError:
            continue
        for tid in threads:
            kids = _read(f"{_PROC}/{p}/task/{tid}/children")
            if kids:
                todo += [int(k) for k in kids.split()]
    return out


class ProcessUsageSampler:
    """A task's process tree (the pid the process backend started, which
    leads its own session, and every descendant): CPU from utime+stime
    (fields 14 and 15 of /proc/<pid>/stat) between two looks, over the real
    time between them; memory the sum of the processes' RSS (field 24). A
    child that exits between two looks takes its CPU time with it (its
    delta counts as 0, never negative). Reading /proc runs in a thread."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ticks = float(os.sysconf("SC_CLK_TCK"))
        self.page = float(os.sysconf("SC_PAGE_SIZE"))
        self.monotonic = monotonic
        self._previous: dict[str, tuple[float, float]] = {}  # task id -> (CPU seconds, monotonic time)

    async def sample(self, tasks: Sequence[Task]) -> dict[str, Usage]:
        return await asyncio.to_thread(self.sample_now, list(tasks))

    def sample_now(self, tasks: Sequence[Task]) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        seen = set()
        for t in tasks:
            if t.pid is None:
                continue
            measured = self._measure(t.pid)
            if measured is None:
                continue
            cpu_seconds, rss = measured
            now = self.monotonic()
            seen.add(t.task_id)
            before = self._previous.get(t.task_id)
            self._previous[t.task_id] = (cpu_seconds, now)
            units = None
            if before is not None and now > before[1]:
                units = max(cpu_seconds - before[0], 0.0) / (now - before[1]) * CPU_UNITS_PER_VCPU
            out[t.task_id] = Usage(units, rss / 2**20)
        for gone in set(self._previous) - seen:
            del self._previous[gone]
        return out

    def _measure(self, pid: int) -> tuple[float, float] | None:
        cpu = rss = 0.0
        found = False
        for p in process_tree(pid):
            f = _stat_fields(p)
            # Index 0 is field 3 (state): utime 14 -> 11, stime 15 -> 12, rss 24 -> 21.
            if not f or len(f) < 22 or f[0] in ("Z", "X"):
                continue
            found = True
            cpu += (int(f[11]) + int(f[12])) / self.ticks
            rss += int(f[21]) * self.page
        return (cpu, rss) if found else None


# --- the Docker backend: the engine's stats ----------------------------------


def docker_cpu_units(stats: Mapping[str, Any], previous: Mapping[str, Any] | None) -> float | None:
    """CPU units in use, as `docker stats` computes its CPU %: the
    container's CPU time delta over the host's, times the online CPUs
    (then 1024 units a CPU). `previous` is an earlier look's cpu_stats
    (a one-shot look has no precpu_stats of its own)."""
    cpu = stats.get("cpu_stats") or {}
    pre = previous if previous is not None else (stats.get("precpu_stats") or {})
    try:
        used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    if system <= 0 or used < 0:
        return None
    return used / system * online * CPU_UNITS_PER_VCPU


def docker_memory_mib(stats: Mapping[str, Any]) -> float | None:
    """Memory in use as `docker stats` shows it: usage minus the page cache
    (cgroup v1: total_inactive_file; v2: inactive_file)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        cache = detail.get(key)
        if cache is not None and cache < usage:
            return (usage - cache) / 2**20
    return float(usage) / 2**20


class DockerUsageSampler:
    """The engine's stats of each task's container, one-shot (`stats`
    without a stream, no second look by the engine), all asked at once in
    the backend's thread pool; CPU from this look and the previous one."""

    def __init__(self, stats: Callable[[str], Any]) -> None:
        self.stats = stats  # async: task id -> the engine's stats dict, or None
        self._previous: dict[str, Mapping[str, Any]] = {}

    async def sample(self, tasks: Sequence[Task]) -> dict[str, Usage]:
        looks = await asyncio.gather(*(self.stats(t.task_id) for t in tasks), return_exceptions=True)
        out: dict[str, Usage] = {}
        seen = set()
        for t, stats in zip(tasks, looks, strict=True):
            if not isinstance(stats, Mapping):
                if isinstance(stats, BaseException):
                    log.debug("docker stats of task %s: %s", t.task_id, stats)
                continue
            memory = docker_memory_mib(stats)
            if memory is None:
                continue
            seen.add(t.task_id)
            units = docker_cpu_units(stats, self._previous.get(t.task_id))
            self._previous[t.task_id] = stats.get("cpu_stats") or {}
            out[t.task_id] = Usage(units, memory)
        for gone in set(self._previous) - seen:
            del self._previous[gone]
        return out


# --- from looks to datapoints (pure) ------------------------------------------


@dataclass(frozen=True)
class Reserved:
    """What a revision reserves: its task definition's cpu/memory, or the instance's."""

    cpu_units: float
    memory_mib: float
    cpu_limited: bool  # the task definition sets cpu: usage counts up to it


def host_reserved() -> tuple[float, float]:
    """This machine as the container instance: its CPUs (1024 units each) and its memory in MiB."""
    cpus = float(os.cpu_count() or 1) * CPU_UNITS_PER_VCPU
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        memory = 1024.0
    return cpus, float(memory)


def reserved_of(cpu: int | None, memory: int | None, host: tuple[float, float]) -> Reserved:
    return Reserved(float(cpu) if cpu else host[0], float(memory) if memory else host[1], bool(cpu))


@dataclass(frozen=True)
class TaskLook:
    task_id: str
    revision: str
    usage: Usage
    reserved: Reserved

    @property
    def cpu_used(self) -> float | None:
        u = self.usage.cpu_units
        if u is None:
            return None
        return min(u, self.reserved.cpu_units) if self.reserved.cpu_limited else u


@dataclass
class _Minute:
    index: int
    looks: list[tuple[list[TaskLook], tuple[int, int, int]]] = field(default_factory=list)


class UsageBook:
    """The looks of the current minute; `add` a look, get back the
    datapoints of the minute it closes (if any), filed at that minute's start."""

    def __init__(self, cluster: str, service: str, family: Callable[[str], str], minute: float) -> None:
        self.cluster, self.service, self.family = cluster, service, family
        self.minute = minute
        self._current: _Minute | None = None

    def add(self, at: float, looks: list[TaskLook], counts: tuple[int, int, int]) -> list[tuple[MetricKey, Entry]]:
        """`counts`: (running, pending, desired) tasks at this look."""
        index = math.floor(at / self.minute + 1e-9)
        out: list[tuple[MetricKey, Entry]] = []
        if self._current is not None and index != self._current.index:
            out = self.close()
        if self._current is None:
            self._current = _Minute(index)
        self._current.looks.append((looks, counts))
        return out

    def close(self) -> list[tuple[MetricKey, Entry]]:
        minute, self._current = self._current, None
        if minute is None or not minute.looks:
            return []
        at = minute.index * self.minute
        out: list[tuple[MetricKey, Entry]] = []
        running_looks = [looks for looks, _ in minute.looks if looks]
        if running_looks:
            for revision in (None, *sorted({t.revision for looks in running_looks for t in looks})):
                out += self._minute_of(at, running_looks, revision)
        running, pending, desired = minute.looks[-1][1]
        for name, value in (("RunningTaskCount", running), ("PendingTaskCount", pending),
                            ("DesiredTaskCount", desired)):
            out.append(self._entry(INSIGHTS, name, self._dims(None, service=True), at, [float(value)]))
        return out

    def _dims(self, revision: str | None, service: bool = False, family: str | None = None,
              cluster_only: bool = False) -> list[tuple[str, str]]:
        dims = [("ClusterName", self.cluster)]
        if cluster_only:
            return dims
        dims.append(("ServiceName", self.service) if service else ("TaskDefinitionFamily", family or ""))
        if revision is not None:
            dims.append((REVISION_DIMENSION, revision))
        return dims

    def _minute_of(self, at: float, running_looks: list[list[TaskLook]],
                   revision: str | None) -> list[tuple[MetricKey, Entry]]:
        out: list[tuple[MetricKey, Entry]] = []
        looks = [[t for t in ls if revision is None or t.revision == revision] for ls in running_looks]
        looks = [ls for ls in looks if ls]
        if not looks:
            return out
        service_dims = self._dims(revision, service=True)
        # AWS/ECS: per look, the service's utilization and each task's.
        for name, used_of, reserved_of_ in (
                ("CPUUtilization", lambda t: t.cpu_used, lambda t: t.reserved.cpu_units),
                ("MemoryUtilization", lambda t: t.usage.memory_mib, lambda t: t.reserved.memory_mib)):
            service_values, task_values = [], []
            for ls in looks:
                measured = [t for t in ls if used_of(t) is not None]
                if not measured:
                    continue
                service_values.append(100.0 * sum(used_of(t) for t in measured)
                                      / sum(reserved_of_(t) for t in measured))
                task_values += [100.0 * used_of(t) / reserved_of_(t) for t in measured]
            if service_values:
                out.append((metric_key(ECS, name, service_dims),
                            Entry(at, UNITS[name], float(len(service_values)), sum(service_values),
                                  min(task_values), max(task_values), None)))
        # Container Insights: the resource's sums, averaged over the minute's looks.
        out += self._resources(at, looks, service_dims)
        if revision is None:
            out += self._resources(at, looks, self._dims(None, cluster_only=True))
        for f in sorted({self.family(t.revision) for ls in looks for t in ls}):
            mine = [[t for t in ls if self.family(t.revision) == f] for ls in looks]
            out += self._resources(at, [ls for ls in mine if ls], self._dims(revision, family=f))
        return out

    def _resources(self, at: float, looks: list[list[TaskLook]],
                   dims: list[tuple[str, str]]) -> list[tuple[MetricKey, Entry]]:
        sums: dict[str, list[float]] = {n: [] for n in RESOURCE_METRICS}
        for ls in looks:
            cpu = [u for u in (t.cpu_used for t in ls) if u is not None]
            if cpu:
                sums["CpuUtilized"].append(sum(cpu))
            sums["CpuReserved"].append(sum(t.reserved.cpu_units for t in ls))
            sums["MemoryUtilized"].append(sum(t.usage.memory_mib for t in ls))
            sums["MemoryReserved"].append(sum(t.reserved.memory_mib for t in ls))
        return [self._entry(INSIGHTS, name, dims, at, values) for name, values in sums.items() if values]

    @staticmethod
    def _entry(namespace: str, name: str, dims: list[tuple[str, str]], at: float,
               values: list[float]) -> tuple[MetricKey, Entry]:
        v = sum(values) / len(values)
        return metric_key(namespace, name, dims), Entry(at, UNITS[name], 1.0, v, v, v, ((v, 1.0),))


# --- the loop on the controller's clock ----------------------------------------


class UsageCollector:
    """Looks at the service's running tasks every 20 s (scaled) and files
    each minute's datapoints in the store's published metrics. A look that
    is still on its way when the next is due makes that one wait: looks
    never pile up."""

    def __init__(self, svc: ServiceController, sampler: UsageSampler | None) -> None:
        self.svc = svc
        self.sampler = sampler
        scale = max(svc.time_scale, 1e-9)
        self.look_interval = LOOK_SECONDS / scale
        self.book = UsageBook(svc.service.clusterName, svc.name, self.family, MINUTE_SECONDS / scale)
        self._host = host_reserved()
        self._reserved: dict[str, Reserved] = {}
        self.looks = 0
        self.failures = 0

    def family(self, revision: str) -> str:
        spec = self.svc.state.revisions.get(revision) or {}
        return str(spec.get("family") or self.svc.name)

    def reserved(self, revision: str) -> Reserved:
        r = self._reserved.get(revision)
        if r is None:
            spec = self.svc.state.revisions.get(revision) or {}
            r = self._reserved[revision] = reserved_of(spec.get("cpu"), spec.get("memory"), self._host)
        return r

    async def run(self) -> None:
        if self.sampler is None:
            return
        clock = self.svc.clock
        step = self.look_interval
        at = math.floor(clock.now() / step + 1e-9) * step  # the look's time on the 20-second grid (scaled)
        while True:
            try:
                await self.look(at)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("task usage look failed")
            # The next grid point after this look (a look late past one skips it: looks never pile up).
            after = clock.now()
            at = (math.floor(after / step + 1e-9) + 1) * step
            await clock.sleep(at - after)

    async def look(self, at: float) -> None:
        """One look, filed as taken at `at` (its grid point, not the moment the sleep ended)."""
        svc = self.svc
        assert self.sampler is not None
        tasks = await svc.backend.tasks(svc.name)
        running = [t for t in tasks if t.state == RUNNING]
        pending = sum(1 for t in tasks if t.state in (PROVISIONING, PENDING))
        usage = await self.sampler.sample(running) if running else {}
        self.looks += 1
        looks = [TaskLook(t.task_id, t.revision, usage[t.task_id], self.reserved(t.revision))
                 for t in running if t.task_id in usage]
        published = self.book.add(at, looks, (len(running), pending, svc.service.desiredCount))
        custom = svc.monitor.store.custom
        now = svc.clock.now()
        for key, entry in published:
            custom.add(key, entry, now)

