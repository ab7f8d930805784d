"""The tasks' own metrics from containers. The embedded metric format from a running container: the Docker backend
follows a container's output into its task's log file while it runs, so
that EMF lines reach the metric store before the container stops (as
CloudWatch Logs extracts them as the log events arrive,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html),
not when its logs are saved at its end. The sample service prints the AWS
walkthrough's `CustomApp/Payments TransactionFailureRate` every
EMF_INTERVAL_MS. And PutMetricData from a container on the host's network."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shiftlab.controller.backends.base import RUNNING, STOPPED, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.emf import EmfTailer
from shiftlab.controller.metricstore import CustomMetrics, metric_key
from shiftlab.settings import load_settings
from shiftlab.stack import Stack
from tests.controller.support import config
from tests.demo.support import interrupt
from tests.docker.conftest import REPO, SAMPLE_IMAGE, owned
from tests.helpers import eventually

pytestmark = pytest.mark.docker

KEY = metric_key("CustomApp/Payments", "TransactionFailureRate", [])


async def test_emf_from_a_running_container_reaches_the_store_before_it_stops(
        tmp_path: Path, owners: Callable[[], str]) -> None:
    backend = DockerBackend(tmp_path / "state", start_timeout=30.0,
                            options=DockerRuntime(owner=owners(), image=SAMPLE_IMAGE))
    custom = CustomMetrics(3600.0)
    tailer = EmfTailer(backend.logs_dir, custom, time.time)
    try:
        env = {"EMF_INTERVAL_MS": "100", "TRANSACTION_FAILURE_RATE": "1"}
        task = await backend.start_task("web", TaskDefinition("1", image=SAMPLE_IMAGE, env=env), "green", None, {})
        assert task.state == RUNNING, task.stopped_reason

        async def three_datapoints() -> bool:
            # Transactions are requests (a line is printed only for an interval that had some).
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.get(f"http://{task.host}:{task.port}/") as resp:
                        await resp.read()
            tailer.tick([(task.task_id, False)])
            await tailer.wait()
            return len(custom.entries(KEY)) >= 3

        await eventually(three_datapoints, timeout=30)
        assert tailer.rejected == 0
        # Still running: the datapoints came from its output as it ran, not from logs saved at its end.
        (now,) = await backend.tasks("web")
        assert now.state == RUNNING and now.stopped_at is None

        await backend.stop_task(task.task_id, 5.0)
        (stopped,) = await backend.tasks("web")
        assert stopped.state == STOPPED
        await backend.logs(task.task_id)  # its logs are saved by now

        async def read_to_the_end() -> bool:
            tailer.tick([(task.task_id, True)])
            await tailer.wait()
            return task.task_id in tailer._finished

        await eventually(read_to_the_end, timeout=10)
        # Every EMF line of the saved output counted once: following and saving did not repeat any.
        saved = (backend.logs_dir / f"{task.task_id}.log").read_text().splitlines()
        emf_lines = [line for line in saved if line.startswith("{") and '"_aws"' in line]
        assert tailer.extracted == len(emf_lines) >= 3
    finally:
        await backend.close(stop_tasks=True)


def test_the_business_metric_demo_rolls_back_with_the_docker_backend(docker_client: Any,
                                                                    owners: Callable[[], str]) -> None:
    """`shiftlab demo --scenario business-metric --backend docker`: green's
    containers print the failed transactions; the walkthrough's
    CustomApp/Payments alarm, fed by EMF while they run, rolls the canary back."""
    owner = owners()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiftlab", "demo", "--backend", "docker", "--image", SAMPLE_IMAGE,
         "--scenario", "business-metric", "--time-scale", "120", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, start_new_session=True,
        env={**os.environ, "SHIFTLAB_DOCKER_OWNER": owner})
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        interrupt(proc)  # Ctrl-C (the demo removes its containers), then SIGKILL
        out, _ = proc.communicate()
        raise AssertionError(f"the demo did not end within 120 s\n{out}") from None
    assert proc.returncode == 0, out
    assert "as expected: ROLLBACK_SUCCESSFUL" in out, out
    assert "ok     alarm payment-transaction-failure-rate trips" in out, out
    assert "ok     alarm service-5xx does not trip" in out, out
    assert owned(docker_client, owner) == [], "the demo left containers behind"


PUT_FROM_THE_TASK = """
import json, os, urllib.request
body = json.dumps({"Namespace": "CustomApp/Payments",
                   "MetricData": [{"MetricName": "TransactionFailureRate", "Value": 0.5}]}).encode()
req = urllib.request.Request(os.environ["AWS_ENDPOINT_URL_CLOUDWATCH"], data=body, headers={
    "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "GraniteServiceVersion20100801.PutMetricData"})
print(urllib.request.urlopen(req, timeout=10).status)
"""


async def test_a_container_on_the_host_network_gets_the_cloudwatch_endpoint(
        tmp_path: Path, owners: Callable[[], str], docker_client: Any) -> None:
    """On the host's network a container's 127.0.0.1 is the controller's: its
    tasks get AWS_ENDPOINT_URL_CLOUDWATCH as process tasks do, and a
    PutMetricData from inside one reaches the store."""
    owner = owners()
    data = config(tmp_path, {"strategy": "ROLLING"})
    data["service"]["taskDefinition"] = {"image": SAMPLE_IMAGE, "containerPort": 8080, "stopTimeout": 5}
    data["controller"].update({"backend": "docker", "taskStartTimeoutSeconds": 60})
    backend = DockerBackend(tmp_path / "state", start_timeout=60,
                            options=DockerRuntime(owner=owner, network="host"))
    stack = Stack(load_settings(copy.deepcopy(data)), backend=backend)
    await stack.start()
    try:
        ctl = stack.controller
        assert ctl is not None and "AWS_ENDPOINT_URL_CLOUDWATCH" in ctl.task_env
        (container, *_) = owned(docker_client, owner, colour="blue")
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env["AWS_ENDPOINT_URL_CLOUDWATCH"] == ctl.task_env["AWS_ENDPOINT_URL_CLOUDWATCH"]
        code, out = await asyncio.to_thread(container.exec_run, ["python3", "-c", PUT_FROM_THE_TASK])
        assert code == 0 and out.decode().strip() == "200", out
        assert [e for e in ctl.monitor.store.custom.entries(KEY)], "the datapoint did not reach the store"
    finally:
        await stack.stop()
    assert owned(docker_client, owner) == []
