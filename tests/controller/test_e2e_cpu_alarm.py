"""End to end: an AWS/ECS CPUUtilization alarm, as it is written on AWS
(ClusterName, ServiceName), watches a canary on the process backend, with
real tasks whose CPU is read from their process trees. A green that burns
CPU (the sample service's CPU_BURN, a busy child process) is rolled back;
the same green without the fault is promoted.

The task definition's cpu is low (256 units, a quarter of a vCPU): a busy
loop uses the whole of it ("If you define CPU units at the task level, the
utilization will not go above the defined task-level limit"), and the
Maximum statistic is "the utilization of the task with the highest
resource usage in the service"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shiftlab.controller.metricstore import metric_key
from tests.controller.support import config, run_with_load

CPU_ALARM = {
    "AlarmName": "web-cpu-high", "Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
    "Dimensions": [{"Name": "ClusterName", "Value": "local"}, {"Name": "ServiceName", "Value": "web"}],
    "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 80.0,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "missing",
}
CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
          "bakeTimeInMinutes": 2, "alarms": {"alarmNames": [CPU_ALARM["AlarmName"]], "enable": True,
                                             "rollback": True}}


def cpu_config(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, CANARY, alarms=[CPU_ALARM])
    data["service"]["taskDefinition"]["cpu"] = 256
    return data


async def test_green_burning_cpu_is_rolled_back_by_the_cpu_alarm(stack_factory: Any, tmp_path: Path) -> None:
    data = cpu_config(tmp_path)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"CPU_BURN": "1"}, rps=10)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [CPU_ALARM["AlarmName"]]
    assert load.failed == 0  # the load balancer saw nothing wrong: only the tasks' CPU did
    ctl = stack.controller
    assert ctl.monitor.alarm_states[CPU_ALARM["AlarmName"]] == "ALARM"
    # Green's own CPU, apart from blue's, under its revision.
    green = ctl.monitor.store.custom.entries(metric_key(
        "AWS/ECS", "CPUUtilization", [("ClusterName", "local"), ("ServiceName", "web"),
                                      ("TaskDefinitionRevision", final.target_revision)]))
    assert green and max(e.high for e in green) == 100.0  # at the task-level limit


async def test_the_same_green_without_the_burn_is_promoted(stack_factory: Any, tmp_path: Path) -> None:
    data = cpu_config(tmp_path)
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"GREETING": "calm"}, rps=10)
    assert final.status == "SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == []
    # The alarm had data (OK), it did not merely sit in INSUFFICIENT_DATA.
    assert stack.controller.monitor.alarm_states[CPU_ALARM["AlarmName"]] == "OK"
