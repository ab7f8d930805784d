"""The embedded metric format from a running container: the Docker backend
follows a container's output into its task's log file while it runs, so
that EMF lines reach the metric store before the container stops (as
CloudWatch Logs extracts them as the log events arrive,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html),
not when its logs are saved at its end. The sample service prints the AWS
walkthrough's `CustomApp/Payments TransactionFailureRate` every
EMF_INTERVAL_MS."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from shiftlab.controller.backends.base import RUNNING, STOPPED, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.emf import EmfTailer
from shiftlab.controller.metricstore import CustomMetrics, metric_key
from tests.docker.conftest import SAMPLE_IMAGE
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
