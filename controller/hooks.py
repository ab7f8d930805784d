"""Calling lifecycle hooks: an http(s) URL (POST of ECS's payload) or a local
command (`command:...`: the payload on stdin, the answer on stdout, as a
Lambda function would take and return them); a Lambda function's ARN calls
what `lambdaFunctions` maps it to.

Whatever goes wrong becomes an answer the state machine understands: a
FAILED status with the reason, never an exception. A call's time limit is
kept on the controller's clock (an HTTP hook's socket timeouts also apply).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import aiohttp

from shiftlab.controller.clock import Clock, RealClock, wait_for
from shiftlab.controller.config import LAMBDA_MAX_SECONDS, LambdaFunctions, LifecycleHook, lambda_function
from shiftlab.controller.machine import HookAnswer

STATUSES = ("SUCCEEDED", "FAILED", "IN_PROGRESS")


# The stages whose payload carries each weight map; every other stage's map
# is empty ({}), as the examples of AWS's Lambda hooks page show them
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html,
# "Lifecycle stage payloads"; a rollback re-invokes TEST_TRAFFIC_SHIFT and
# PRODUCTION_TRAFFIC_SHIFT hooks with the weights moving back to blue).
TEST_WEIGHTS_STAGES = ("TEST_TRAFFIC_SHIFT",)
PRODUCTION_WEIGHTS_STAGES = ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")


def payload(*, execution_id: str, stage: str, resource_arn: str, service_arn: str, target_revision_arn: str,
            source_revision_arn: str, production_percent: float, test_percent: float,
            hook_details: Any) -> dict[str, Any]:
    """ECS's hook event, field by field as the Lambda hooks page shows it:
    executionId, lifecycleStage, resourceArn (the service deployment),
    executionDetails (the service, the target revision and the weight maps
    of revision ARN to percent) and, when there are any, hookDetails."""
    def split(green: float) -> dict[str, float]:
        return {target_revision_arn: _number(green), source_revision_arn: _number(round(100.0 - green, 4))}

    body: dict[str, Any] = {
        "executionId": execution_id,
        "lifecycleStage": stage,
        "resourceArn": resource_arn,
        "executionDetails": {
            "serviceArn": service_arn,
            "targetServiceRevisionArn": target_revision_arn,
            "testTrafficWeights": split(test_percent) if stage in TEST_WEIGHTS_STAGES else {},
            "productionTrafficWeights": split(production_percent) if stage in PRODUCTION_WEIGHTS_STAGES else {},
        },
    }
    if hook_details is not None:
        body["hookDetails"] = hook_details
    return body


def _number(x: float) -> float:
    """100.0 as 100, as AWS's examples write whole percentages; 0.5 stays 0.5."""
    return int(x) if float(x).is_integer() else x


def parse_answer(execution_id: str, raw: str | bytes) -> HookAnswer:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return HookAnswer(execution_id, "FAILED", error=f"the answer is not JSON: {_clip(raw)!r}")
    if not isinstance(data, dict) or data.get("hookStatus") not in STATUSES:
        return HookAnswer(execution_id, "FAILED",
                          error=f"the answer has no hookStatus of {', '.join(STATUSES)}: {_clip(raw)!r}")
    delay = data.get("callBackDelay")
    if delay is not None and (not isinstance(delay, int | float) or delay < 0):
        return HookAnswer(execution_id, "FAILED", error=f"callBackDelay {delay!r} is not a number of seconds")
    details = data.get("hookDetails")
    if details is not None and not isinstance(details, dict):
        # "The hookDetails field is a dictionary" (the Lambda hooks page).
        return HookAnswer(execution_id, "FAILED",
                          error=f"hookDetails {_clip(json.dumps(details))} is not a JSON object")
    return HookAnswer(execution_id, data["hookStatus"], callback_delay=delay, hook_details=details)


def _clip(raw: str | bytes) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) < 200 else text[:197] + "..."


async def call_url(session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: float,
                   clock: Clock | None = None) -> HookAnswer:
    eid = body["executionId"]

    async def post() -> tuple[int, bytes]:
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.read()

    try:
        status, text = await wait_for(clock or RealClock(), post(), timeout)
        if not 200 <= status < 300:
            return HookAnswer(eid, "FAILED", error=f"{url} answered HTTP {status}")
        return parse_answer(eid, text)
    except TimeoutError:
        return HookAnswer(eid, "FAILED", error=f"{url} did not answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return HookAnswer(eid, "FAILED", error=f"{url}: {exc}")


async def call_command(command: str, body: dict[str, Any], timeout: float, clock: Clock | None = None,
                       env: Mapping[str, str] | None = None) -> HookAnswer:
    """`env`: set in the command's environment besides the controller's own."""
    eid = body["executionId"]
    argv = shlex.split(command.removeprefix("command:"))
    if argv and argv[0] == "{python}":
        argv[0] = sys.executable
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        return HookAnswer(eid, "FAILED", error=f"cannot run {argv[0] if argv else command!r}: {exc.strerror}")
    try:
        out, err = await wait_for(clock or RealClock(), proc.communicate(json.dumps(body).encode()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return HookAnswer(eid, "FAILED", error=f"the command did not finish within {timeout:g} s")
    if proc.returncode != 0:
        return HookAnswer(eid, "FAILED",
                          error=f"the command exited with {proc.returncode}: {_clip(err.strip() or out.strip())}")
    return parse_answer(eid, out)


async def invoke_hook(session: aiohttp.ClientSession, hook: LifecycleHook, functions: LambdaFunctions,
                      body: dict[str, Any], remaining: float | None, clock: Clock | None = None,
                      env: Mapping[str, str] | None = None) -> HookAnswer:
    """One invocation of `hook`: what `functions` (lambdaFunctions) maps its
    Lambda function to, or its URL or command. It may run as long as a
    Lambda may (900 s, or the function's own timeout), never past
    `remaining` (seconds left of the hook's timeoutConfiguration)."""
    target, limit = hook.hookTargetArn or "", float(LAMBDA_MAX_SECONDS)
    if hook.kind == "LAMBDA":
        function = lambda_function(target, functions)
        if function is None:
            return HookAnswer(body["executionId"], "FAILED",
                              error=f"the Lambda function {target!r} has no mapping in lambdaFunctions")
        target, limit = function.target, float(function.timeout)
    if remaining is not None:
        limit = max(0.001, min(limit, remaining))
    return await invoke(session, target, body, limit, clock, env)


async def invoke(session: aiohttp.ClientSession, target: str, body: dict[str, Any], timeout: float,
                 clock: Clock | None = None, env: Mapping[str, str] | None = None) -> HookAnswer:
    if target.startswith("command:"):
        return await call_command(target, body, timeout, clock, env)
    if target.startswith(("http://", "https://")):
        return await call_url(session, target, body, timeout, clock)
    return HookAnswer(body["executionId"], "FAILED",
                      error=f"{target!r}: shiftlab calls http(s) URLs and command: hooks "
                            "(a Lambda function ARN through lambdaFunctions)")
