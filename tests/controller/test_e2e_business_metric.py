"""End to end: the AWS walkthrough's business alarm (CustomApp/Payments
TransactionFailureRate, loaded as is) watches a canary whose green tasks
publish the metric with boto3's put_metric_data to the controller's
CloudWatch endpoint, as the payments service does on AWS. A green that
reports failing transactions is rolled back; the same green reporting
none is promoted.

https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.controller.support import config, run_with_load
from tests.helpers import REPO, aws_walkthrough

BUSINESS = json.loads((aws_walkthrough() / "canary-business-alarm.json").read_text())
TASK = ["{python}", str(REPO / "tests" / "controller" / "data" / "payments_task.py")]
CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 20},
          "alarms": {"alarmNames": [BUSINESS["AlarmName"]], "enable": True, "rollback": True}}


def payments_config(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, CANARY, alarms=[BUSINESS])
    data["service"]["taskDefinition"]["command"] = TASK
    return data


async def test_green_reporting_failed_transactions_is_rolled_back_by_the_business_alarm(
        stack_factory: Any, tmp_path: Path) -> None:
    data = payments_config(tmp_path)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"PAYMENTS_FAILURE_RATE": "0.9"}, rps=10)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [BUSINESS["AlarmName"]]
    assert load.failed == 0  # the load balancer saw nothing wrong: only the business metric did
    ctl = stack.controller
    assert ctl.monitor.alarm_states[BUSINESS["AlarmName"]] == "ALARM"
    assert "0.9" in ctl.monitor.alarm_reasons[BUSINESS["AlarmName"]]


async def test_the_same_green_reporting_no_failures_is_promoted(stack_factory: Any, tmp_path: Path) -> None:
    data = payments_config(tmp_path)
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"PAYMENTS_FAILURE_RATE": "0.0"}, rps=10)
    assert final.status == "SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == []
    # The alarm had data (OK), it did not merely sit in INSUFFICIENT_DATA.
    assert stack.controller.monitor.alarm_states[BUSINESS["AlarmName"]] == "OK"
