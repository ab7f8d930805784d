"""A lifecycle hook copied from AWS works unchanged: its hookTargetArn names
a Lambda function, and shiftlab's own `lambdaFunctions` section says what
runs in its place (a command or a URL), with Lambda's limit on one
invocation (900 s unless the mapping says less). The driver on the
in-memory load balancer and backend and a fake clock; the hooks are real
commands.

AWS: the hook configuration of "Lambda hooks for Amazon ECS service
deployments" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html),
DeploymentLifecycleHook (targetType AWS_LAMBDA | PAUSE, the API reference),
and Lambda's timeout, 1..900 seconds
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.controller import eventlog
from shiftlab.controller.backends import procinfo
from shiftlab.controller.backends.fake import FakeBackend, FakeWorld
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter
from shiftlab.controller.service import ServiceController
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.controller.support import config
from tests.helpers import eventually, logged

FUNCTION = "arn:aws:lambda:us-west-2:123456789012:function:my-approval-hook"
# The Lambda hooks page's example, as it is.
AWS_HOOK = {
    "hookTargetArn": FUNCTION,
    "roleArn": "arn:aws:iam::123456789012:role/ecs-lambda-invoke-role",
    "lifecycleStages": ["POST_SCALE_UP"],
    "hookDetails": {"S3_BUCKET_NAME": "my-approval-bucket"},
}
Start = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def controllers(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Start]:
    router = FakeRouter({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"blue": 1, "green": 0},
                         "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
    started: list[tuple[ServiceController, Records]] = []

    async def start(deployment: dict[str, Any], functions: dict[str, Any]) -> ServiceController:
        data = config(tmp_path, deployment)
        data["lambdaFunctions"] = functions
        s = load_settings(data)
        records = Records(tmp_path / "records.sqlite")
        ctl = ServiceController(s.controller_settings(), router, FakeBackend(FakeWorld(), clock=clock.now), records,
                                clock=clock)
        await ctl.start()
        started.append((ctl, records))
        return ctl

    yield start
    for ctl, records in started:
        await ctl.stop()
        records.close()


def hook_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys, time\nevent = json.load(sys.stdin)\n" + body)
    return f"command:{shlex.join([sys.executable, str(script)])}"


@pytest.mark.parametrize("key", [FUNCTION, "my-approval-hook"])
async def test_a_hook_copied_from_aws_calls_the_command_its_function_is_mapped_to(controllers, clock, tmp_path,
                                                                                   key) -> None:
    seen = tmp_path / "event.json"
    command = hook_script(tmp_path, f"open({str(seen)!r}, 'w').write(json.dumps(event))\n"
                                    "print(json.dumps({'hookStatus': 'SUCCEEDED'}))\n")
    ctl = await controllers({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
                              "lifecycleHooks": [{**AWS_HOOK, "targetType": "AWS_LAMBDA"}]},
                            {key: command})
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=600)
    assert final.status == "SUCCESSFUL", final.status_reason
    event = json.loads(seen.read_text())
    assert event["lifecycleStage"] == "POST_SCALE_UP"
    assert event["hookDetails"] == {"S3_BUCKET_NAME": "my-approval-bucket"}
    assert event["resourceArn"] == ctl.describe(final)["serviceDeploymentArn"]
    answered = logged(ctl.records.events(d.id), eventlog.HOOK_ANSWERED)
    assert [(a["target"], a["status"]) for a in answered] == [(FUNCTION, "SUCCEEDED")]


@pytest.mark.parametrize(("mapping", "limit"), [
    pytest.param(lambda cmd: cmd, 900, id="Lambda's longest by default"),
    pytest.param(lambda cmd: {"target": cmd, "timeout": 120}, 120, id="the function's own timeout"),
])
async def test_one_invocation_may_run_as_long_as_its_lambda_may(controllers, clock, tmp_path, mapping,
                                                                 limit) -> None:
    pid_file = tmp_path / "pid"
    command = hook_script(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(3600)\n")
    ctl = await controllers({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [AWS_HOOK]},
                            {"my-approval-hook": mapping(command)})
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await eventually(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the hook to run")
    await clock.settle()
    began = ctl.current.hook.started_at  # the call starts with the hook run
    await clock.advance(limit - 1 - (clock.now() - began))
    assert ctl.current.hook is not None and ctl.current.hook.answers == []  # still running at limit - 1 s
    assert not logged(ctl.records.events(d.id), eventlog.HOOK_ANSWERED)
    await clock.advance(1.0)
    await eventually(lambda: logged(ctl.records.events(d.id), eventlog.HOOK_ANSWERED), timeout=30,
                     what="the hook's answer")
    answered = logged(ctl.records.events(d.id), eventlog.HOOK_ANSWERED)
    assert [(a["status"], a["error"]) for a in answered] == [
        ("FAILED", f"the command did not finish within {limit} s")]
    final = await finished(ctl, clock, d.id, within=600)
    assert final.status == "ROLLBACK_SUCCESSFUL"
    pid = int(pid_file.read_text())
    await eventually(lambda: not procinfo.is_alive(pid, None), timeout=10, what="the hook's process to be gone")


def test_lambda_functions_are_read_as_documented(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
        AWS_HOOK, {**AWS_HOOK, "hookTargetArn": FUNCTION.replace("my-approval-hook", "other") + ":live"}]})
    data["lambdaFunctions"] = {"my-approval-hook": "command:true",
                               "arn:aws:lambda:us-west-2:123456789012:function:other": {
                                   "target": "http://127.0.0.1:9/hook", "timeout": 60}}
    s = load_settings(data)
    assert s.controller_settings().lambda_functions["my-approval-hook"].timeout == 900
    assert s.deployment.lifecycleHooks[0].hookTargetArn == FUNCTION  # the AWS JSON stays as it is


@pytest.mark.parametrize(("functions", "problem"), [
    ({"my-approval-hook": "python3 check.py"},
     "lambdaFunctions.my-approval-hook.target: 'python3 check.py' is neither command:<command line> nor an "
     "http(s) URL"),
    ({"my-approval-hook": {"target": "command:true", "timeout": 901}},
     "lambdaFunctions.my-approval-hook.timeout: 901 is out of range 1..900"),
    ({"not a name": "command:true"},
     "lambdaFunctions.not a name: 'not a name' is neither a Lambda function ARN nor a function name"),
    (["command:true"], "lambdaFunctions: must be a mapping of Lambda function ARN or name to command:... or an "
                       "http(s) URL"),
])
def test_a_bad_mapping_is_refused_naming_it(tmp_path: Path, functions: Any, problem: str) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [AWS_HOOK]})
    data["lambdaFunctions"] = functions
    with pytest.raises(ConfigError) as caught:
        load_settings(data)
    assert problem in caught.value.problems


async def test_reconcile_service_runs_only_when_a_second_revision_is_active(controllers, clock, tmp_path) -> None:
    """DeploymentLifecycleHook: RECONCILE_SERVICE "only happens when you start a new
    service deployment with more than 1 service revision in an ACTIVE state". The
    first deployment starts with one (skipped, with an event); stopped without
    rollback, it leaves its tasks running, so the next one starts with two: it
    reconciles (the stray tasks go) and its RECONCILE_SERVICE hook runs."""
    calls = tmp_path / "calls"
    command = hook_script(tmp_path, f"open({str(calls)!r}, 'a').write(event['lifecycleStage'] + '\\n')\n"
                                    "print(json.dumps({'hookStatus': 'SUCCEEDED'}))\n")
    ctl = await controllers({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
        {**AWS_HOOK, "lifecycleStages": ["RECONCILE_SERVICE"]},
        {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]}, {"my-approval-hook": command})
    first = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await _until(clock, lambda: ctl.current.hook is not None and ctl.current.hook.kind == "PAUSE")
    # DescribeServiceDeployments while the PAUSE waits.
    [detail] = ctl.describe(ctl.current)["lifecycleHookDetails"]
    assert detail["targetType"] == "PAUSE" and detail["status"] == "AWAITING_ACTION"
    assert detail["timeoutAction"] == "ROLLBACK" and "targetArn" not in detail
    assert [s["stage"] for s in ctl.current.stages][:2] == ["PRE_SCALE_UP", "SCALE_UP"]
    assert logged(ctl.records.events(first.id), eventlog.STAGE_SKIPPED) == [
        {"stage": "RECONCILE_SERVICE", "reason": "only one service revision is ACTIVE"}]
    ctl.stop_deployment(first.id, rollback=False)
    assert (await finished(ctl, clock, first.id)).status == "STOPPED"
    stray = [t.task_id for t in ctl.sets["green"].running()]
    assert len(stray) == 2 and not calls.exists()

    second = ctl.create_deployment({"env": {"GREETING": "v3"}})
    await eventually(lambda: calls.exists() and calls.read_text() == "RECONCILE_SERVICE\n", timeout=30,
                     what="the RECONCILE_SERVICE hook")
    await _until(clock, lambda: ctl.current.hook is not None and ctl.current.hook.kind == "PAUSE")
    assert [s["stage"] for s in ctl.current.stages][:2] == ["RECONCILE_SERVICE", "PRE_SCALE_UP"]
    assert not set(stray) & {t.task_id for t in ctl.sets["green"].running()}  # reconciled away
    assert not logged(ctl.records.events(second.id), eventlog.STAGE_SKIPPED)
    ctl.approve(second.id)
    assert (await finished(ctl, clock, second.id, within=600)).status == "SUCCESSFUL"


async def _until(clock: FakeClock, predicate: Callable[[], Any]) -> None:
    await run_until(clock, predicate, "the condition", within=600)
