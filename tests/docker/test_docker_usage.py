"""The UsageSampler contract (tests/controller/test_usage_contract.py)
against the Docker backend's sampler: the engine's one-shot stats, CPU and
memory computed as `docker stats` does. Kept small: the contract's tests,
once each, with the sample service in the test image (shiftlab installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shiftlab.controller.backends.base import RUNNING, Task, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from tests.controller import test_usage_contract as contract

pytestmark = pytest.mark.docker


class DockerUsageHarness(contract.Harness):
    name = "docker"
    real = True

    def __init__(self, tmp_path: Path, owner: str, image: str) -> None:
        super().__init__(tmp_path)
        backend = DockerBackend(tmp_path / "state", start_timeout=30.0,
                                options=DockerRuntime(owner=owner, image=image))
        self.docker = backend
        self.backend = backend
        self.sampler = backend.usage_sampler()

    async def start(self, env: dict[str, str]) -> Task:
        task = await self.docker.start_task("web", TaskDefinition("1", contract.SAMPLE, env=env), "blue", None, {})
        assert task.state == RUNNING, task.stopped_reason
        return task

    async def stop(self, task: Task) -> None:
        await self.docker.stop_task(task.task_id, 5.0)


@pytest.fixture
async def harness(tmp_path: Path, owners: Callable[[], str],
                  test_images: dict[str, str]) -> AsyncIterator[contract.Harness]:
    h = DockerUsageHarness(tmp_path, owners(), test_images["python"])
    try:
        yield h
    finally:
        await h.close()


test_every_running_task_is_measured_and_a_busy_one_uses_more_cpu = (
    contract.test_every_running_task_is_measured_and_a_busy_one_uses_more_cpu)
test_a_stopped_task_is_left_out = contract.test_a_stopped_task_is_left_out
