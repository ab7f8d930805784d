"""The application's Prometheus metrics, scraped as CloudWatch Container
Insights' Prometheus monitoring does on ECS (the CloudWatch agent with
`ecs_service_discovery` and an `emf_processor`), into the metric store.

The `prometheus` section of shiftlab's file takes the shape of the agent's
`logs.metrics_collected.prometheus` object, so a team's own can be pasted:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-Setup-configure-ECS.html
(`ecs_service_discovery` with `task_definition_list` / `service_name_list_for_tasks`
entries: `sd_job_name`, `sd_metrics_ports`, `sd_metrics_path`,
`sd_task_definition_arn_pattern` / `sd_service_name_pattern`; `emf_processor`
with `metric_namespace`, default `ECS/ContainerInsights/Prometheus`, and
`metric_declaration` entries: `source_labels`, `label_separator`,
`label_matcher`, `dimensions`, `metric_selectors`) and the labels ECS
service discovery gives a target
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-Setup-autodiscovery-ecs.html).

Metric types, as the agent converts them
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-metrics-conversion.html):
a gauge's value is sent as it is; a counter's "delta from the previous
scrape" (so nothing from the first scrape); a summary's `_sum` and `_count`
as counters and its quantiles as they are; histograms are dropped.

A sample becomes a metric only when a declaration's `label_matcher` matches
its `source_labels` values (joined by `label_separator`) and one of its
`metric_selectors` matches its name; each of the declaration's dimension
sets whose labels the sample all has makes one metric.

Bad answers (no answer in `scrape_timeout`, not 200, a body over
`MAX_BODY_BYTES`, not the text format) are rejected whole: logged, counted
in `Scraper.rejected`, nothing stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BeforeValidator, Field, field_validator

from shiftlab.common.configfile import Model
from shiftlab.controller.cloudwatch import VALUE_LIMIT
from shiftlab.controller.metricstore import UNITS, CustomMetrics, Entry, MetricKey, metric_key

log = logging.getLogger("shiftlab.controller")

DEFAULT_NAMESPACE = "ECS/ContainerInsights/Prometheus"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_CONCURRENT = 16
MIN_TIMEOUT = 0.5  # real seconds
PARSE_IN_THREAD_BYTES = 64 * 1024
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 15s, 1m)")
    return float(m.group(1)) * _SECONDS[m.group(2)]


def _regex(v: Any) -> Any:
    if isinstance(v, str):
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
    return v


Regex = Annotated[str, BeforeValidator(_regex)]


def _duration(v: Any) -> Any:
    if isinstance(v, str):
        duration_seconds(v)
    return v


Duration = Annotated[str, BeforeValidator(_duration)]


class TaskDefinitionTargets(Model):
    sd_job_name: str | None = None
    sd_metrics_ports: str | None = None  # accepted as the agent's; shiftlab scrapes the task's one port
    sd_metrics_path: str = "/metrics"
    sd_task_definition_arn_pattern: Regex = ".*"
    sd_container_name_pattern: Regex | None = None


class ServiceNameTargets(Model):
    sd_job_name: str | None = None
    sd_metrics_ports: str | None = None
    sd_metrics_path: str = "/metrics"
    sd_service_name_pattern: Regex = ".*"
    sd_container_name_pattern: Regex | None = None


class EcsServiceDiscovery(Model):
    sd_frequency: Duration = "1m"
    sd_target_cluster: str | None = None
    sd_cluster_region: str | None = None
    sd_result_file: str | None = None
    task_definition_list: list[TaskDefinitionTargets] = []
    service_name_list_for_tasks: list[ServiceNameTargets] = []


class MetricDeclaration(Model):
    source_labels: Annotated[list[str], Field(min_length=1)]
    label_separator: str = ";"
    label_matcher: Regex
    dimensions: list[list[str]] = []
    metric_selectors: Annotated[list[Regex], Field(min_length=1)]

    @field_validator("dimensions")
    @classmethod
    def _dims(cls, v: list[list[str]]) -> list[list[str]]:
        for i, dims in enumerate(v):
            if len(dims) > 30:
                raise ValueError(f"dimensions[{i}] has {len(dims)} dimensions; a metric has at most 30")
        return v


class EmfProcessor(Model):
    metric_declaration_dedup: bool = True
    metric_namespace: str = DEFAULT_NAMESPACE
    metric_unit: dict[str, str] = {}
    metric_declaration: list[MetricDeclaration] = []

    @field_validator("metric_unit")
    @classmethod
    def _units(cls, v: dict[str, str]) -> dict[str, str]:
        for name, unit in v.items():
            if unit not in UNITS:
                raise ValueError(f"{name}: {unit!r} is not a CloudWatch unit ({', '.join(UNITS)})")
        return v

    @field_validator("metric_namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not 1 <= len(v) <= 255 or v.startswith(":"):
            raise ValueError(f"{v!r}: a namespace is 1 to 255 characters, not starting with ':'")
        return v


class PrometheusConfig(Model):
    """The `prometheus` section: the agent's object, plus the scrape timing
    the agent reads from its Prometheus configuration file (`global`)."""

    cluster_name: str | None = None
    log_group_name: str | None = None
    prometheus_config_path: str | None = None
    scrape_interval: Duration = "1m"
    scrape_timeout: Duration = "10s"
    ecs_service_discovery: EcsServiceDiscovery = EcsServiceDiscovery()
    emf_processor: EmfProcessor = EmfProcessor()

    def feeds(self, namespace: str, metric_name: str) -> bool:
        """Could a scraped metric be `namespace`/`metric_name`?"""
        return namespace == self.emf_processor.metric_namespace and any(
            re.search(s, metric_name) for d in self.emf_processor.metric_declaration for s in d.metric_selectors)


@dataclass(frozen=True)
class Target:
    """One task to scrape, with the labels ECS service discovery gives it."""

    task_id: str
    url: str
    labels: dict[str, str]


def targets(config: PrometheusConfig, tasks: Iterable[Any], cluster: str, service: str,
            family: str) -> list[Target]:
    """The service's running tasks that a `task_definition_list` or
    `service_name_list_for_tasks` entry selects, deduplicated by URL as
    the agent does (`{private_ip}:{port}/{metrics_path}`)."""
    sd = config.ecs_service_discovery
    out: dict[str, Target] = {}
    for task in tasks:
        arn = f"arn:aws:ecs:local:000000000000:task-definition/{family}:{task.revision}"
        chosen: list[tuple[str | None, str]] = []
        chosen += [(e.sd_job_name, e.sd_metrics_path) for e in sd.task_definition_list
                   if re.search(e.sd_task_definition_arn_pattern, arn)]
        chosen += [(e.sd_job_name, e.sd_metrics_path) for e in sd.service_name_list_for_tasks
                   if re.search(e.sd_service_name_pattern, service)]
        for job, path in chosen:
            url = f"http://{task.host}:{task.port}{path if path.startswith('/') else '/' + path}"
            if url in out:
                continue
            labels = {"ClusterName": cluster, "TaskDefinitionFamily": family, "TaskRevision": str(task.revision),
                      "TaskGroup": f"service:{service}", "ServiceName": service, "LaunchType": "FARGATE",
                      "container_name": family, "instance": f"{task.host}:{task.port}", "TaskId": task.task_id,
                      "job": job or family}
            out[url] = Target(task.task_id, url, labels)
    return list(out.values())


class ScrapeRejected(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    cumulative: bool  # a counter's (or a summary's _sum/_count): sent as the delta from the previous scrape


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def selected_chunks(text: str, selectors: list[re.Pattern[str]]) -> list[str]:
    """The exposition cut to the samples some selector matches, in pieces of
    one family each (its TYPE line first): parsing is most of a scrape's
    cost, and a sample no declaration selects never becomes a metric. Every
    sample line's name is still checked, so an answer that is not an
    exposition is rejected."""
    chunks: list[list[str]] = []
    current: list[str] | None = None
    current_key: str | None = None
    family, type_line = "", ""
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            if line.startswith("# TYPE "):
                type_line, family = line, line[7:].split(" ", 1)[0]
                current = None
            continue
        m = _NAME.match(line)
        if m is None or (m.end() < len(line) and line[m.end()] not in "{ \t"):
            raise ScrapeRejected(f"not the Prometheus text format: {line[:80]!r}")
        name = m.group(0)
        if not any(sel.search(name) for sel in selectors):
            continue
        belongs = bool(type_line) and (name == family or name.startswith(family + "_"))
        key = family if belongs else ""
        if current is None or key != current_key:
            current = [type_line] if belongs else []
            current_key = key
            chunks.append(current)
        current.append(line)
    return ["\n".join(c) + "\n" for c in chunks]


MAX_PARSED = 4096  # parsed pieces remembered (an unchanged piece is not parsed again)


def samples(text: str, selectors: list[re.Pattern[str]] | None = None,
            parsed: dict[str, list[Sample]] | None = None) -> list[Sample]:
    """The samples of one exposition (those `selectors` match, when given),
    typed as the agent treats them; raises ScrapeRejected for anything that
    is not the text format. `parsed`: pieces parsed before, reused when a
    piece comes again unchanged (most do between two scrapes)."""
    if selectors is None:
        return _parse(text)
    out: list[Sample] = []
    for chunk in selected_chunks(text, selectors):
        got = parsed.get(chunk) if parsed is not None else None
        if got is None:
            got = _parse(chunk)
            if parsed is not None:
                if len(parsed) >= MAX_PARSED:
                    parsed.clear()
                parsed[chunk] = got
        out += got
    return out


def _parse(text: str) -> list[Sample]:
    out: list[Sample] = []
    try:
        for family in text_string_to_metric_families(text):
            if family.type in ("histogram", "gaugehistogram", "info", "stateset"):
                continue  # "The Prometheus metrics with the unsupported histogram metric type are dropped"
            for s in family.samples:
                if family.type in ("counter", "summary") and s.name.endswith("_created"):
                    continue
                cumulative = family.type == "counter" or (
                    family.type == "summary" and (s.name.endswith("_sum") or s.name.endswith("_count")))
                out.append(Sample(s.name, dict(s.labels), float(s.value), cumulative))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on garbage
        raise ScrapeRejected(f"not the Prometheus text format: {type(exc).__name__}: {exc}") from None
    return out


def _usable(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= VALUE_LIMIT


class Converter:
    """Samples to CloudWatch datapoints per the emf_processor, keeping the
    previous value of each cumulative series (by target) for its delta."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config.emf_processor
        self._compiled = [(d, re.compile(d.label_matcher), [re.compile(s) for s in d.metric_selectors])
                          for d in self.config.metric_declaration]
        self.selectors = [sel for _, _, sels in self._compiled for sel in sels]
        self.parsed: dict[str, list[Sample]] = {}
        self._previous: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for url in list(self._previous):
            if url not in keep:
                del self._previous[url]

    def convert(self, target: Target, scraped: list[Sample], at: float) -> list[tuple[MetricKey, Entry]]:
        previous = self._previous.get(target.url, {})
        current: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        out: list[tuple[MetricKey, Entry]] = []
        seen: set[MetricKey] = set()
        for s in scraped:
            labels = {**s.labels, **target.labels}
            value = s.value
            if s.cumulative:
                series = (s.name, tuple(sorted(s.labels.items())))
                current[series] = value
                old = previous.get(series)
                if old is None:
                    continue  # the first scrape: no delta yet
                value = value - old if value >= old else value  # a counter reset: counted from zero
            if not _usable(value):
                continue
            unit = self.config.metric_unit.get(s.name, "None")
            for decl, matcher, selectors in self._compiled:
                joined = decl.label_separator.join(labels.get(k, "") for k in decl.source_labels)
                if not matcher.search(joined) or not any(sel.search(s.name) for sel in selectors):
                    continue
                for dims in decl.dimensions or [[]]:
                    if any(d not in labels for d in dims):
                        continue
                    key = metric_key(self.config.metric_namespace, s.name, ((d, labels[d]) for d in dims))
                    if key in seen and self.config.metric_declaration_dedup:
                        continue
                    seen.add(key)
                    out.append((key, Entry(at, unit, 1.0, value, value, value, ((value, 1.0),))))
        self._previous[target.url] = current
        return out


class Scraper:
    """Scrapes the targets every `interval` seconds of the injected clock:
    `tick(now, targets)` starts a round (concurrent, at most MAX_CONCURRENT
    at once, each bounded by the timeout and MAX_BODY_BYTES) unless one is
    still running (counted in `overrun`); it never waits for the scrapes."""

    def __init__(self, config: PrometheusConfig, custom: CustomMetrics, time_scale: float,
                 now: Callable[[], float]) -> None:
        self.config = config
        self.custom = custom
        self.now = now
        self.interval = duration_seconds(config.scrape_interval) / time_scale
        # Scaled like every AWS duration, but at least half a second of real time (or the whole interval,
        # when shorter): a task's answer takes real time, and a loaded machine's 0.17 s is a GC pause.
        self.timeout = max(duration_seconds(config.scrape_timeout) / time_scale, min(MIN_TIMEOUT, self.interval))
        self.converter = Converter(config)
        self.scrapes = 0
        self.rejected = 0
        self.stored = 0
        self.overrun = 0
        self._next = -math.inf
        self._round: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(MAX_CONCURRENT)
        self._warned: dict[str, int] = {}

    def due(self, now: float) -> bool:
        return now >= self._next

    def tick(self, now: float, chosen: list[Target]) -> None:
        if now < self._next:
            return
        self._next = now + self.interval
        if self._round is not None and not self._round.done():
            self.overrun += 1
            return
        self.converter.forget(t.url for t in chosen)
        self._round = asyncio.create_task(self.round(chosen))

    async def round(self, chosen: list[Target]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        await asyncio.gather(*(self._scrape(t) for t in chosen))

    async def wait(self) -> None:
        if self._round is not None:
            await asyncio.shield(self._round)

    async def close(self) -> None:
        if self._round is not None and not self._round.done():
            self._round.cancel()
            await asyncio.gather(self._round, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _scrape(self, target: Target) -> None:
        async with self._limit:
            self.scrapes += 1
            try:
                text = await asyncio.wait_for(self._fetch(target.url), self.timeout)
                c = self.converter
                scraped = (await asyncio.to_thread(samples, text, c.selectors)) if len(text) > PARSE_IN_THREAD_BYTES \
                    else samples(text, c.selectors, c.parsed)
            except (ScrapeRejected, aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._reject(target, str(exc) or type(exc).__name__)
                return
            now = self.now()
            at = self.custom.place(now, 60)
            for key, entry in self.converter.convert(target, scraped, at):
                if self.custom.add(key, entry, now):
                    self.stored += 1

    async def _fetch(self, url: str) -> str:
        assert self._session is not None
        async with self._session.get(url, headers={"Accept": "text/plain;version=0.0.4"},
                                     allow_redirects=False) as resp:
            if resp.status != 200:
                raise ScrapeRejected(f"HTTP {resp.status}")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise ScrapeRejected(f"the body is over {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                raise ScrapeRejected("the body is not UTF-8") from None

    def _reject(self, target: Target, why: str) -> None:
        self.rejected += 1
        seen = self._warned.get(target.task_id, 0)
        if seen < 5:
            self._warned[target.task_id] = seen + 1
            log.warning("scrape of %s (task %s) rejected, nothing stored: %s", target.url, target.task_id, why)
