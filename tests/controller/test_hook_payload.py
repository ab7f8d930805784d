"""The Lambda hook contract, field by field against AWS's own examples:
"Lambda hooks for Amazon ECS service deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html
("Lifecycle stage payloads", "Passing state with hookDetails" and "Lifecycle
hooks during rollback"). Each documented example payload is a row: the event
shiftlab sends at that stage, with the same ARNs and weights, is the
documented one."""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller import hooks
from shiftlab.controller import machine as m
from shiftlab.controller.machine.dispatch import merged_details

DEPLOYMENT = "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/EZe5RNVLH6PPzHXINuP28"
SERVICE = "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service"
GREEN = "arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/9313423515462893900"
BLUE = "arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/1920498462936580504"


def documented(execution_id: str, stage: str, test: dict[str, Any], production: dict[str, Any]) -> dict[str, Any]:
    return {
        "executionId": execution_id,
        "lifecycleStage": stage,
        "resourceArn": DEPLOYMENT,
        "executionDetails": {
            "serviceArn": SERVICE,
            "targetServiceRevisionArn": GREEN,
            "testTrafficWeights": test,
            "productionTrafficWeights": production,
        },
    }


# (stage, green's production and test share when the hook runs, the page's example)
EXAMPLES = [
    ("PRE_SCALE_UP", 0.0, 0.0, documented("e8d5a28f-eb01-4f3c-9454-a30ba6dc54bc", "PRE_SCALE_UP", {}, {})),
    ("POST_SCALE_UP", 0.0, 0.0, documented("8b095b05-7bb0-4c56-a223-a3f61f4f9295", "POST_SCALE_UP", {}, {})),
    ("TEST_TRAFFIC_SHIFT", 0.0, 100.0, documented("779085de-ab47-42bc-84ad-41f9914a8643", "TEST_TRAFFIC_SHIFT",
                                                  {GREEN: 100, BLUE: 0}, {})),
    ("POST_TEST_TRAFFIC_SHIFT", 0.0, 100.0,
     documented("3a0345ba-b029-404b-890d-7da2a4b266aa", "POST_TEST_TRAFFIC_SHIFT", {}, {})),
    ("PRE_PRODUCTION_TRAFFIC_SHIFT", 0.0, 100.0,
     documented("a2b3c4d5-e6f7-8901-abcd-ef1234567890", "PRE_PRODUCTION_TRAFFIC_SHIFT", {}, {GREEN: 0, BLUE: 100})),
    ("PRODUCTION_TRAFFIC_SHIFT", 100.0, 100.0,
     documented("f4fcae0f-9bec-41c6-ba87-0eaa0cef8af5", "PRODUCTION_TRAFFIC_SHIFT", {}, {GREEN: 100, BLUE: 0})),
    ("POST_PRODUCTION_TRAFFIC_SHIFT", 100.0, 100.0,
     documented("5f40ed04-7e54-437d-b95d-98bc872fec49", "POST_PRODUCTION_TRAFFIC_SHIFT", {}, {})),
    # "Lifecycle hooks during rollback": the PRODUCTION_TRAFFIC_SHIFT payload of a rollback.
    ("PRODUCTION_TRAFFIC_SHIFT", 0.0, 0.0,
     documented("70073435-cb99-457f-b900-6ee1dcad05ec", "PRODUCTION_TRAFFIC_SHIFT", {}, {GREEN: 0, BLUE: 100})),
]


@pytest.mark.parametrize(("stage", "production", "test", "expected"), EXAMPLES,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(EXAMPLES)])
def test_the_payload_is_the_documented_one(stage: str, production: float, test: float,
                                           expected: dict[str, Any]) -> None:
    body = hooks.payload(execution_id=expected["executionId"], stage=stage, resource_arn=DEPLOYMENT,
                         service_arn=SERVICE, target_revision_arn=GREEN, source_revision_arn=BLUE,
                         production_percent=production, test_percent=test, hook_details=None)
    assert body == expected
    assert list(body) == list(expected)  # the page's field order


def test_a_partial_shift_keeps_its_fraction() -> None:
    body = hooks.payload(execution_id="e", stage="PRODUCTION_TRAFFIC_SHIFT", resource_arn=DEPLOYMENT,
                         service_arn=SERVICE, target_revision_arn=GREEN, source_revision_arn=BLUE,
                         production_percent=12.5, test_percent=100.0, hook_details={"a": 1})
    assert body["executionDetails"]["productionTrafficWeights"] == {GREEN: 12.5, BLUE: 87.5}
    assert body["hookDetails"] == {"a": 1}


# "Passing state with hookDetails": the configured S3_BUCKET_NAME, then an
# IN_PROGRESS answer with approvalChecked; the next call gets both.
CONFIGURED = {"S3_BUCKET_NAME": "my-approval-bucket"}
ANSWERED = {"approvalChecked": True, "S3_BUCKET_NAME": "my-approval-bucket"}
MERGES = [
    (CONFIGURED, ANSWERED, {"approvalChecked": True, "S3_BUCKET_NAME": "my-approval-bucket"}),
    (CONFIGURED, {"approvalChecked": True}, {"S3_BUCKET_NAME": "my-approval-bucket", "approvalChecked": True}),
    (CONFIGURED, {"S3_BUCKET_NAME": "other"}, {"S3_BUCKET_NAME": "other"}),
    (CONFIGURED, None, CONFIGURED),
    (None, {"n": 1}, {"n": 1}),
]


@pytest.mark.parametrize(("configured", "answered", "next_call"), MERGES)
def test_hook_details_of_an_in_progress_answer_are_merged(configured: Any, answered: Any, next_call: Any) -> None:
    assert merged_details(configured, answered) == next_call


def test_the_next_invocation_gets_the_merged_details() -> None:
    """The pure machine: configured details, an IN_PROGRESS answer with only a
    counter, then the next InvokeHook carries both; a later answer with more
    keeps the earlier ones too."""
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
        {"hookTargetArn": "command:true", "lifecycleStages": ["PRE_SCALE_UP"], "hookDetails": CONFIGURED}]}
    d = m.Deployment(id="d1", service="web", config=config, time_scale=60.0, desired_count=2,
                     source_revision="1", target_revision="2", created_at=0.0)
    d, _ = m.step(d, m.Start(), 0.0)
    d, actions = m.step(d, m.Reconciled(), 0.0)
    first = next(a for a in actions if isinstance(a, m.InvokeHook))
    assert first.hook_details == CONFIGURED
    d, _ = m.step(d, m.HookAnswer(first.execution_id, "IN_PROGRESS", hook_details={"checks": 1}), 1.0)
    d, actions = m.step(d, m.Tick(), 1.0 + 30 / 60)  # callBackDelay 30 s by default, scaled
    second = next(a for a in actions if isinstance(a, m.InvokeHook))
    assert second.hook_details == {"S3_BUCKET_NAME": "my-approval-bucket", "checks": 1}
    d, _ = m.step(d, m.HookAnswer(first.execution_id, "IN_PROGRESS", hook_details={"checks": 2, "x": "y"}), 2.0)
    d, actions = m.step(d, m.Tick(), 3.0)
    third = next(a for a in actions if isinstance(a, m.InvokeHook))
    assert third.hook_details == {"S3_BUCKET_NAME": "my-approval-bucket", "checks": 2, "x": "y"}


def test_hook_details_that_are_not_an_object_fail_the_call() -> None:
    answer = hooks.parse_answer("e", '{"hookStatus": "IN_PROGRESS", "hookDetails": [1, 2]}')
    assert answer.status == "FAILED" and "hookDetails [1, 2] is not a JSON object" in (answer.error or "")
