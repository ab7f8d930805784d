"""The Lambda hook contract end to end: a real stack on 127.0.0.1 (the proxy,
the controller API, task processes), a deployment POSTed with hooks copied
from AWS (function ARNs, roleArn, targetType AWS_LAMBDA), their functions
mapped in lambdaFunctions to a real command. The command sees what a Lambda
function would see on AWS, call after call: the merged hookDetails of an
IN_PROGRESS answer, and, after a failure, the traffic-shift hooks again with
green at 0 ("Lambda hooks for Amazon ECS service deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import aiohttp

from tests.controller.support import config

FUNCTION = "arn:aws:lambda:us-west-2:123456789012:function:my-approval-hook"
ROLE = "arn:aws:iam::123456789012:role/ecs-lambda-invoke-role"

SCRIPT = """
import json, sys
event = json.load(sys.stdin)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(event) + "\\n")
details = event.get("hookDetails") or {}
stage, execution = event["lifecycleStage"], event["executionDetails"]
green_test = execution["testTrafficWeights"].get(execution["targetServiceRevisionArn"])
if stage == "TEST_TRAFFIC_SHIFT" and "round" not in details and green_test == 100:
    answer = {"hookStatus": "IN_PROGRESS", "callBackDelay": 1, "hookDetails": {"round": 1}}
elif stage == "POST_TEST_TRAFFIC_SHIFT":
    answer = {"hookStatus": "FAILED"}
else:
    answer = {"hookStatus": "SUCCEEDED"}
print(json.dumps(answer))
"""


async def test_hooks_copied_from_aws_run_through_the_api_and_again_on_rollback(stack_factory, tmp_path: Path) -> None:
    script, log = tmp_path / "hook.py", tmp_path / "calls.jsonl"
    script.write_text(SCRIPT)
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["lambdaFunctions"] = {"my-approval-hook": f"command:{shlex.join([sys.executable, str(script), str(log)])}"}
    stack = await stack_factory(data)
    hooks = [{"targetType": "AWS_LAMBDA", "hookTargetArn": FUNCTION, "roleArn": ROLE,
              "lifecycleStages": ["TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"],
              "hookDetails": {"S3_BUCKET_NAME": "my-approval-bucket"}}]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{stack.api_url}/api/deployments",
                          json={"deploymentConfiguration": {"lifecycleHooks": hooks}}) as resp:
            assert resp.status == 201, await resp.text()
            created = await resp.json()
        final = await stack.controller.wait_finished(created["shiftlab"]["id"], timeout=90)
        async with s.get(f"{stack.api_url}/api/deployments/{final.id}") as resp:
            described = await resp.json()
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    green = described["targetServiceRevision"]["arn"]
    blue = described["sourceServiceRevisions"][0]["arn"]
    seen = [(c["lifecycleStage"], c["executionDetails"]["testTrafficWeights"],
             c["executionDetails"]["productionTrafficWeights"], c["hookDetails"]) for c in calls]
    bucket = {"S3_BUCKET_NAME": "my-approval-bucket"}
    assert seen == [
        ("TEST_TRAFFIC_SHIFT", {green: 100, blue: 0}, {}, bucket),
        ("TEST_TRAFFIC_SHIFT", {green: 100, blue: 0}, {}, {**bucket, "round": 1}),  # merged, not replaced
        ("POST_TEST_TRAFFIC_SHIFT", {}, {}, bucket),  # another run starts from the configured details
        # The rollback: the traffic-shift hooks again, traffic back on blue.
        ("PRODUCTION_TRAFFIC_SHIFT", {}, {green: 0, blue: 100}, bucket),
        ("TEST_TRAFFIC_SHIFT", {green: 0, blue: 100}, {}, bucket),
    ]
    assert {c["resourceArn"] for c in calls} == {described["serviceDeploymentArn"]}
    assert all(c["executionDetails"]["targetServiceRevisionArn"] == green for c in calls)
    assert [(s["stage"], s["rollback"]) for s in described["shiftlab"]["stages"]][-3:] == [
        ("PRODUCTION_TRAFFIC_SHIFT", True), ("TEST_TRAFFIC_SHIFT", True), ("CLEAN_UP", True)]
    # The first deployment of the service: one ACTIVE revision, no RECONCILE_SERVICE.
    assert described["shiftlab"]["stages"][0]["stage"] == "PRE_SCALE_UP"
