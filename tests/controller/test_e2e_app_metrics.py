"""End to end, process backend, real processes: the sample service's green
fails payment transactions (TRANSACTION_FAILURE_RATE) while every request
still answers 200, so only the application's own metrics can tell.

- By EMF: the sample service prints CustomApp/Payments TransactionFailureRate
  in the embedded metric format; the AWS walkthrough's business alarm,
  loaded as is, rolls the canary back.
- By Prometheus: the controller scrapes the tasks' /metrics as Container
  Insights does (a `prometheus` section shaped as the CloudWatch agent's),
  payments_transactions_failed_total's per-scrape delta goes to
  ECS/ContainerInsights/Prometheus by ClusterName and TaskDefinitionFamily;
  an alarm on its Sum rolls the canary back.
- The same green failing nothing is promoted, both alarms OK.

https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-metrics-conversion.html
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shiftlab.controller.promscrape import DEFAULT_NAMESPACE
from tests.controller.support import config, run_with_load
from tests.helpers import aws_walkthrough

BUSINESS = json.loads((aws_walkthrough() / "canary-business-alarm.json").read_text())
SCRAPED = {"AlarmName": "failed-payments-scraped", "Namespace": DEFAULT_NAMESPACE,
           "MetricName": "payments_transactions_failed_total", "Statistic": "Sum", "Period": 60,
           "EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
           "Dimensions": [{"Name": "ClusterName", "Value": "local"}, {"Name": "TaskDefinitionFamily", "Value": "web"}]}
PROMETHEUS = {
    "ecs_service_discovery": {"sd_frequency": "1m", "task_definition_list": [
        {"sd_job_name": "payments", "sd_metrics_ports": "8080", "sd_metrics_path": "/metrics",
         "sd_task_definition_arn_pattern": ".*:task-definition/web:[0-9]+"}]},
    "emf_processor": {"metric_declaration": [
        {"source_labels": ["job"], "label_matcher": "^payments$",
         "dimensions": [["ClusterName", "TaskDefinitionFamily"]],
         "metric_selectors": ["^payments_transactions_(failed_)?total$"]}]},
}


def canary(alarm: dict[str, Any]) -> dict[str, Any]:
    return {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 20},
            "alarms": {"alarmNames": [alarm["AlarmName"]], "enable": True, "rollback": True}}


def emf_config(tmp_path: Path) -> dict[str, Any]:
    return config(tmp_path, canary(BUSINESS), alarms=[BUSINESS])


# The new revision is the one that publishes the metric (as in the walkthrough): the alarm has no
# dimensions, so a blue publishing 0 beside it would pull the Average down, as it would on AWS.
EMF_GREEN = {"EMF_INTERVAL_MS": "250"}


def scrape_config(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, canary(SCRAPED), alarms=[SCRAPED])
    data["prometheus"] = PROMETHEUS
    return data


async def test_green_failing_transactions_is_rolled_back_by_the_walkthroughs_alarm_via_emf(
        stack_factory: Any, tmp_path: Path) -> None:
    data = emf_config(tmp_path)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {**EMF_GREEN, "TRANSACTION_FAILURE_RATE": "0.9"}, rps=10)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [BUSINESS["AlarmName"]]
    assert load.failed == 0  # the load balancer saw nothing wrong
    app = stack.controller.monitor.app
    assert app.emf is not None and app.emf.extracted > 0 and app.emf.rejected == 0


async def test_green_failing_transactions_is_rolled_back_via_a_scraped_prometheus_counter(
        stack_factory: Any, tmp_path: Path) -> None:
    data = scrape_config(tmp_path)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"TRANSACTION_FAILURE_RATE": "0.5"}, rps=10)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [SCRAPED["AlarmName"]]
    assert load.failed == 0
    scraper = stack.controller.monitor.app.scraper
    assert scraper is not None and scraper.stored > 0 and scraper.rejected == 0
    # What the live views' metrics frames carry (`sources`).
    counters = stack.controller.monitor.app.counters()["prometheus"]
    assert counters["scrapes"] > 0 and counters["rejected"] == 0 and counters["datapoints"] == scraper.stored


async def test_the_same_green_failing_nothing_is_promoted_with_both_alarms_ok(
        stack_factory: Any, tmp_path: Path) -> None:
    data = config(tmp_path, {**canary(BUSINESS), "alarms": {
        "alarmNames": [BUSINESS["AlarmName"], SCRAPED["AlarmName"]], "enable": True, "rollback": True}},
        alarms=[BUSINESS, SCRAPED])
    data["prometheus"] = PROMETHEUS
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {**EMF_GREEN, "TRANSACTION_FAILURE_RATE": "0"}, rps=10)
    assert final.status == "SUCCESSFUL", final.status_reason
    states = stack.controller.monitor.alarm_states
    # Both alarms had data: OK, not INSUFFICIENT_DATA.
    assert states[BUSINESS["AlarmName"]] == "OK" and states[SCRAPED["AlarmName"]] == "OK"
