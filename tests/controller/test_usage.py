"""Task CPU and memory as ECS publishes them (controller.usage): the
service utilization formula, the per-minute statistic set, Container
Insights' sums, the per-revision dimension, and an AWS/ECS alarm reading
them from the store.

Service utilization, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html:
  "(Total CPU units used by tasks in service) x 100 / (Total CPU units
  specified in the task definition) x (Number of tasks in the service)";
  "Amazon ECS collects metrics every 20 seconds ... The minimum and maximum
  values are the smallest and largest of the 20 second metrics. The
  average is the aggregate of the 3 values"; "If the task is idle and using
  128 CPU units and 128 MiB of memory, the service reports 25% CPU
  utilization and 12.5% memory utilization" (512 CPU units, 1,024 MiB);
  "If you define CPU units at the task level, the utilization will not go
  above the defined task-level limit."
Container Insights, https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html:
  CpuUtilized/CpuReserved (Unit: None), MemoryUtilized/MemoryReserved
  (Unit: Megabytes) with TaskDefinitionFamily+ClusterName,
  ServiceName+ClusterName, ClusterName; RunningTaskCount, PendingTaskCount,
  DesiredTaskCount (Count) with ServiceName+ClusterName; the reservation,
  "If this is not specified in the task definition, then the instance CPU
  reservation is used."
"""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller.alarms import AlarmEvaluator, parse_alarms
from shiftlab.controller.metricstore import MetricStore, metric_key
from shiftlab.controller.usage import (
    ECS,
    INSIGHTS,
    TaskLook,
    Usage,
    UsageBook,
    docker_cpu_units,
    docker_memory_mib,
    feeds,
    reserved_of,
)

HOST = (2048.0, 4096.0)  # the instance: 2 vCPUs, 4 GiB
SERVICE = [("ClusterName", "local"), ("ServiceName", "web")]


def look(task: str, cpu: float | None, mem: float, revision: str = "1", cpu_def: int | None = 512,
         mem_def: int | None = 1024) -> TaskLook:
    return TaskLook(task, revision, Usage(cpu, mem), reserved_of(cpu_def, mem_def, HOST))


def book() -> UsageBook:
    return UsageBook("local", "web", lambda rev: "web-family", minute=1.0)  # a minute of 1 s: timeScale 60


def published(entries: list[Any]) -> dict[Any, Any]:
    return dict(entries)


def minute_of(looks: list[list[TaskLook]], counts: tuple[int, int, int] = (1, 0, 1)) -> dict[Any, Any]:
    b = book()
    for i, ls in enumerate(looks):
        assert b.add(10.0 + i / 3, ls, counts) == []  # three looks of minute 10
    return published(b.add(11.0, [], counts))  # the next minute's first look closes it


@pytest.mark.parametrize(("cpu_used", "mem_used", "cpu_pct", "mem_pct"), [
    (128, 128, 25.0, 12.5),  # the page's idle example
    (2048, 512, 100.0, 50.0),  # its busy one, with task-level cpu: not above the limit
    (256, 1024, 50.0, 100.0),
])
def test_the_pages_examples(cpu_used: float, mem_used: float, cpu_pct: float, mem_pct: float) -> None:
    got = minute_of([[look("a", cpu_used, mem_used)]] * 3)
    cpu = got[metric_key(ECS, "CPUUtilization", SERVICE)]
    mem = got[metric_key(ECS, "MemoryUtilization", SERVICE)]
    assert cpu.total / cpu.count == pytest.approx(cpu_pct)
    assert mem.total / mem.count == pytest.approx(mem_pct)
    assert cpu.unit == mem.unit == "Percent"
    assert cpu.at == 10.0  # filed at its minute's start


def test_average_is_the_formula_and_min_max_the_tasks() -> None:
    # Two tasks of 512 units: one uses 512 (100 %), the other 0 (0 %): the service 50 %.
    looks = [[look("a", 512, 100), look("b", 0, 300)], [look("a", 256, 100), look("b", 0, 300)],
             [look("a", 512, 100), look("b", 128, 300)]]
    cpu = minute_of(looks)[metric_key(ECS, "CPUUtilization", SERVICE)]
    assert cpu.count == 3  # one sample a 20-second look
    assert cpu.total / cpu.count == pytest.approx((50.0 + 25.0 + 62.5) / 3)
    assert (cpu.low, cpu.high) == (0.0, 100.0)
    assert cpu.raw is None  # a statistic set: no percentiles


def test_a_look_without_a_cpu_figure_counts_for_memory_only() -> None:
    got = minute_of([[look("a", None, 512)], [look("a", 256, 512)]])
    cpu = got[metric_key(ECS, "CPUUtilization", SERVICE)]
    assert (cpu.count, cpu.total) == (1.0, 50.0)
    assert got[metric_key(ECS, "MemoryUtilization", SERVICE)].count == 2


def test_no_cpu_or_memory_in_the_task_definition_counts_against_the_instance() -> None:
    got = minute_of([[look("a", 1024, 1024, cpu_def=None, mem_def=None)]])
    assert got[metric_key(ECS, "CPUUtilization", SERVICE)].total == pytest.approx(50.0)
    assert got[metric_key(ECS, "MemoryUtilization", SERVICE)].total == pytest.approx(25.0)
    assert got[metric_key(INSIGHTS, "CpuReserved", SERVICE)].total == 2048.0


def test_no_running_task_publishes_no_utilization_but_the_counts() -> None:
    got = minute_of([[], [], []], counts=(0, 2, 2))
    assert metric_key(ECS, "CPUUtilization", SERVICE) not in got
    assert got[metric_key(INSIGHTS, "RunningTaskCount", SERVICE)].total == 0.0
    assert got[metric_key(INSIGHTS, "PendingTaskCount", SERVICE)].total == 2.0
    assert got[metric_key(INSIGHTS, "DesiredTaskCount", SERVICE)].total == 2.0


@pytest.mark.parametrize(("name", "dims", "value", "unit"), [
    ("CpuUtilized", SERVICE, 384.0, "None"),
    ("CpuReserved", SERVICE, 1024.0, "None"),
    ("MemoryUtilized", SERVICE, 400.0, "Megabytes"),
    ("MemoryReserved", SERVICE, 2048.0, "Megabytes"),
    ("CpuUtilized", [("ClusterName", "local")], 384.0, "None"),
    ("CpuUtilized", [("ClusterName", "local"), ("TaskDefinitionFamily", "web-family")], 384.0, "None"),
    ("RunningTaskCount", SERVICE, 2.0, "Count"),
])
def test_container_insights_sums_over_the_tasks(name: str, dims: list[tuple[str, str]], value: float,
                                                unit: str) -> None:
    got = minute_of([[look("a", 256, 100), look("b", 128, 300)]], counts=(2, 0, 2))
    entry = got[metric_key(INSIGHTS, name, dims)]
    assert (entry.total, entry.unit, entry.count) == (value, unit, 1.0)


def test_per_revision_tells_greens_cpu_from_blues() -> None:
    looks = [[look("b1", 0, 100, revision="1"), look("g1", 512, 100, revision="2")]]
    got = minute_of(looks)
    assert got[metric_key(ECS, "CPUUtilization", SERVICE)].total == 50.0
    assert got[metric_key(ECS, "CPUUtilization", [*SERVICE, ("TaskDefinitionRevision", "2")])].total == 100.0
    assert got[metric_key(ECS, "CPUUtilization", [*SERVICE, ("TaskDefinitionRevision", "1")])].total == 0.0
    family_green = [("ClusterName", "local"), ("TaskDefinitionFamily", "web-family"), ("TaskDefinitionRevision", "2")]
    assert got[metric_key(INSIGHTS, "CpuUtilized", family_green)].total == 512.0


@pytest.mark.parametrize(("namespace", "name", "dims", "fed"), [
    (ECS, "CPUUtilization", ["ClusterName", "ServiceName"], True),
    (ECS, "MemoryUtilization", ["ServiceName", "ClusterName"], True),
    (ECS, "CPUUtilization", ["ClusterName"], False),  # the cluster's: EC2 instances only
    (ECS, "CPUReservation", ["ClusterName"], False),
    (INSIGHTS, "CpuUtilized", ["ClusterName", "TaskDefinitionFamily"], True),
    (INSIGHTS, "MemoryUtilized", ["ClusterName"], True),
    (INSIGHTS, "RunningTaskCount", ["ClusterName", "ServiceName"], True),
    (INSIGHTS, "NetworkRxBytes", ["ClusterName", "ServiceName"], False),
])
def test_what_this_source_feeds(namespace: str, name: str, dims: list[str], fed: bool) -> None:
    assert feeds(namespace, name, dims) is fed


# --- the engine's stats, as `docker stats` computes them ---------------------------------


def test_docker_cpu_as_docker_stats_computes_it() -> None:
    # 0.5 s of the container's CPU over 2 s of the host's 2 CPUs (4 CPU-seconds): 50 % of one CPU.
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000}, "system_cpu_usage": 6_000_000_000,
                           "online_cpus": 2}}
    before = {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 2_000_000_000}
    assert docker_cpu_units(stats, before) == pytest.approx(0.5 / 4 * 2 * 1024)
    assert docker_cpu_units(stats, None) is None  # a one-shot look has no precpu_stats


@pytest.mark.parametrize(("memory_stats", "mib"), [
    ({"usage": 300 * 2**20, "stats": {"total_inactive_file": 100 * 2**20}}, 200.0),  # cgroup v1
    ({"usage": 300 * 2**20, "stats": {"inactive_file": 50 * 2**20}}, 250.0),  # cgroup v2
    ({"usage": 300 * 2**20}, 300.0),
    ({}, None),
])
def test_docker_memory_is_usage_minus_the_cache(memory_stats: dict[str, Any], mib: float | None) -> None:
    assert docker_memory_mib({"memory_stats": memory_stats}) == mib


# --- an alarm copied from AWS reads them ---------------------------------------------------


CPU_ALARM = {
    "AlarmName": "web-cpu-high", "Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
    "Dimensions": [{"Name": "ClusterName", "Value": "local"}, {"Name": "ServiceName", "Value": "web"}],
    "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 80.0,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "missing",
}


@pytest.mark.parametrize(("cpu_used", "state"), [(512, "ALARM"), (64, "OK")])
def test_an_aws_ecs_alarm_reads_the_minutes(cpu_used: float, state: str) -> None:
    (alarm,) = parse_alarms([CPU_ALARM], ["blue", "green"])
    store = MetricStore(retention_seconds=60.0, publish_seconds=1.0)
    b = book()
    for i in range(7):
        at = 10.0 + i / 3
        for key, entry in b.add(at, [look("a", cpu_used, 100)], (1, 0, 1)):
            store.custom.add(key, entry, at)
    ev = AlarmEvaluator(alarm, time_scale=60.0)
    assert ev.evaluate(store, 12.0).state == state


# --- `validate`: this source feeds AWS/ECS and ECS/ContainerInsights alarms on the service -------------


def _warnings(tmp_path: Any, alarm: dict[str, Any]) -> list[str]:
    from shiftlab.settings import load_settings
    from tests.controller.support import config

    data = config(tmp_path, {"strategy": "CANARY", "bakeTimeInMinutes": 0}, alarms=[alarm])
    return load_settings(data).warnings()


def _dims(**kv: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in kv.items()]


@pytest.mark.parametrize(("namespace", "name", "dims", "warned"), [
    ("AWS/ECS", "CPUUtilization", _dims(ClusterName="local", ServiceName="web"), False),
    ("AWS/ECS", "MemoryUtilization", _dims(ClusterName="local", ServiceName="web", TaskDefinitionRevision="2"),
     False),
    ("ECS/ContainerInsights", "CpuUtilized", _dims(ClusterName="local", TaskDefinitionFamily="web"), False),
    ("ECS/ContainerInsights", "RunningTaskCount", _dims(ClusterName="local", ServiceName="web"), False),
    ("AWS/ECS", "CPUUtilization", _dims(ClusterName="local", ServiceName="other"), True),  # another service
    ("AWS/ECS", "CPUUtilization", _dims(ClusterName="prod", ServiceName="web"), True),  # another cluster
    ("AWS/ECS", "CPUReservation", _dims(ClusterName="local"), True),  # EC2 instances' only
    ("ECS/ContainerInsights", "CpuUtilized", _dims(ClusterName="local", TaskDefinitionFamily="x"), True),
])
def test_validate_warns_only_when_nothing_feeds_the_alarm(tmp_path: Any, namespace: str, name: str,
                                                          dims: list[dict[str, str]], warned: bool) -> None:
    alarm = {**CPU_ALARM, "Namespace": namespace, "MetricName": name, "Dimensions": dims}
    got = [w for w in _warnings(tmp_path, alarm) if "nothing in this rehearsal feeds" in w]
    assert bool(got) is warned, got
