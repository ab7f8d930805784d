"""Building blocks of the end-to-end tests: a config for a real stack on
127.0.0.1 running the sample service, and running a deployment under load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from shiftlab.controller import eventlog
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.stack import Stack
from tests.helpers import REPO, free_port, lb_config, logged

SAMPLE = ["{python}", "-m", "shiftlab.sample_service"]


def green_alarm(name: str, metric: str, threshold: float, **extra: Any) -> dict[str, Any]:
    return {
        "AlarmName": name, "Namespace": "AWS/ApplicationELB", "MetricName": metric,
        "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/green/0123456789"},
                       {"Name": "LoadBalancer", "Value": "app/my-load-balancer/0123456789"}],
        "Period": 60, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        **({"Statistic": "Sum"} if "ExtendedStatistic" not in extra else {}), **extra,
    }


def config(tmp_path: Path, deployment: dict[str, Any], alarms: list[dict[str, Any]] | None = None,
           desired: int = 2, time_scale: float = 60.0, test_listener: bool = True) -> dict[str, Any]:
    prod, test = free_port(), free_port() if test_listener else None
    return {
        "timeScale": time_scale,
        "loadBalancer": lb_config(prod, test),
        "service": {
            "serviceName": "web", "desiredCount": desired,
            "taskDefinition": {"command": SAMPLE, "stopTimeout": 5},
            "loadBalancers": [{"targetGroupArn": "blue", "advancedConfiguration": {
                "alternateTargetGroupArn": "green", "productionListenerRule": "prod/default",
                "testListenerRule": ["prod/test", "test/default"] if test_listener else ["prod/test"]}}],
        },
        "deploymentConfiguration": deployment,
        "alarms": alarms or [],
        "controller": {"port": 0, "stateDir": str(tmp_path / "state"), "taskStartTimeoutSeconds": 20},
    }


def prod_url(data: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{data['loadBalancer']['Listeners'][0]['Port']}/"


def weight_steps(stack: Stack, deployment_id: str, kind: str = "production") -> list[float]:
    """Green's share at each verified weight change of the `kind` rules, in order."""
    assert stack.records is not None
    return [float(f["percent"]) for f in logged(stack.records.events(deployment_id), eventlog.WEIGHTS_VERIFIED)
            if f["traffic"] == kind]


async def run_with_load(stack: Stack, data: dict[str, Any], env: dict[str, str], rps: float = 40,
                        timeout: float = 90, headers: dict[str, str] | None = None) -> tuple[Any, LoadResult]:
    ctl = stack.controller
    assert ctl is not None
    stop = asyncio.Event()
    result = LoadResult()
    load = asyncio.create_task(run_load(prod_url(data), rps, timeout, stop=stop, result=result, headers=headers))
    try:
        d = ctl.create_deployment({"env": env})
        final = await ctl.wait_finished(d.id, timeout=timeout)
    finally:
        stop.set()
        await load
    return final, result



def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True,
                          timeout=timeout)


def write_on_free_ports(tmp_path: Path, data: dict[str, Any]) -> tuple[Path, str]:
    """For a stack run as `shiftlab up` in a subprocess: the admin API and the
    controller API on free ports, the file written. Returns it and the API URL."""
    api_port = free_port()
    data["controller"]["port"] = api_port
    data["loadBalancer"]["Admin"]["Port"] = free_port()
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, f"http://127.0.0.1:{api_port}"


async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """One CLI process; it must not block the event loop the stack runs on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shiftlab", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "COLUMNS": "160"})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"shiftlab {' '.join(args)} did not end within {timeout} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
