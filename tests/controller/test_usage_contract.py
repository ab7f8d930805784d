"""One contract for every UsageSampler (controller.usage): what the
collector may rely on, run against the process backend's (real tasks, their
process trees read from /proc) and the fake; tests/docker/test_docker_usage.py
runs it against the Docker engine's stats.

A harness starts a task (the sample service, idle or with CPU_BURN) and
gives the sampler that measures it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.backends.base import RUNNING, Backend, Task, TaskDefinition
from shiftlab.controller.backends.process import ProcessBackend
from shiftlab.controller.usage import CPU_UNITS_PER_VCPU, FakeUsageSampler, Usage, UsageSampler, process_tree
from tests.helpers import eventually

SAMPLE = ("{python}", "-m", "shiftlab.sample_service")


class Harness:
    name = "?"
    real = False

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.backend: Backend | None = None
        self.sampler: UsageSampler

    async def start(self, env: dict[str, str]) -> Task:
        raise NotImplementedError

    async def stop(self, task: Task) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close(stop_tasks=True)


class ProcessHarness(Harness):
    name = "process"
    real = True

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        backend = ProcessBackend(tmp_path / "state", start_timeout=20.0)
        self.backend = backend
        self.sampler = backend.usage_sampler()

    async def start(self, env: dict[str, str]) -> Task:
        assert self.backend is not None
        task = await self.backend.start_task("web", TaskDefinition("1", SAMPLE, env=env), "blue", None, {})
        assert task.state == RUNNING, task.stopped_reason
        return task

    async def stop(self, task: Task) -> None:
        assert self.backend is not None
        await self.backend.stop_task(task.task_id, 5.0)


class FakeHarness(Harness):
    """The fake: a burning task uses what CPU_BURN says, an idle one a little."""

    name = "fake"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.fake = FakeUsageSampler()
        self.sampler = self.fake

    async def start(self, env: dict[str, str]) -> Task:
        task = Task(f"t{len(self.fake.usage)}", "1", "blue", "web", None, "127.0.0.1", 1, RUNNING)
        burn = float(env.get("CPU_BURN", "0"))
        self.fake.usage[task.task_id] = Usage(burn * CPU_UNITS_PER_VCPU + 5.0, 20.0)
        return task

    async def stop(self, task: Task) -> None:
        self.fake.usage.pop(task.task_id, None)


HARNESSES = {"process": ProcessHarness, "fake": FakeHarness}


@pytest.fixture(params=list(HARNESSES))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    h = HARNESSES[request.param](tmp_path)
    try:
        yield h
    finally:
        await h.close()


async def test_every_running_task_is_measured_and_a_busy_one_uses_more_cpu(harness: Harness) -> None:
    idle = await harness.start({})
    busy = await harness.start({"CPU_BURN": "1"})
    await harness.sampler.sample([idle, busy])  # the first look: CPU from the next one on

    async def busy_shows() -> dict[str, Usage] | None:
        await asyncio.sleep(0.3)  # a window to measure over (the kernel counts CPU in 10 ms ticks)
        got = await harness.sampler.sample([idle, busy])
        if any(t.task_id not in got or got[t.task_id].cpu_units is None for t in (idle, busy)):
            return None
        # One vCPU busy is 1024 units; on a shared machine it gets less, but far more than the idle one.
        ok = (got[busy.task_id].cpu_units or 0) >= CPU_UNITS_PER_VCPU / 4 and (
            got[busy.task_id].cpu_units or 0) > 2 * (got[idle.task_id].cpu_units or 0)
        return got if ok else None

    got = await eventually(busy_shows, what="the busy task using more CPU than the idle one")
    for u in got.values():
        assert u.memory_mib > 1.0  # a Python process holds several MiB
        assert u.cpu_units is not None and u.cpu_units >= 0


async def test_a_stopped_task_is_left_out(harness: Harness) -> None:
    task = await harness.start({})
    assert task.task_id in await harness.sampler.sample([task])
    await harness.stop(task)

    async def gone() -> bool:
        return task.task_id not in await harness.sampler.sample([task])
    await eventually(gone, what="the stopped task left out")


async def test_no_tasks_no_usage(harness: Harness) -> None:
    assert await harness.sampler.sample([]) == {}


# --- the process backend's own: the tree, memory --------------------------------------


async def test_the_process_tree_includes_the_burning_children(tmp_path: Path) -> None:
    """CPU_BURN runs in child processes: they are the task's too (the tree, not the pid alone)."""
    h = ProcessHarness(tmp_path)
    try:
        task = await h.start({"CPU_BURN": "1"})
        assert task.pid is not None
        tree = await eventually(lambda: (lambda t: t if len(t) > 1 else None)(process_tree(task.pid or 0)),
                                what="the burning child in the tree")
        assert tree[0] == task.pid
    finally:
        await h.close()


async def test_a_memory_leak_grows_the_tasks_memory(tmp_path: Path) -> None:
    h = ProcessHarness(tmp_path)
    try:
        task = await h.start({"MEMORY_LEAK_MIB_PER_SECOND": "40", "MEMORY_LEAK_MAX_MIB": "80"})
        first = (await h.sampler.sample([task]))[task.task_id].memory_mib

        async def grown() -> Any:
            u = (await h.sampler.sample([task])).get(task.task_id)
            return u if u is not None and u.memory_mib >= first + 50 else None
        await eventually(grown, what="the leak in the task's RSS", timeout=20)
    finally:
        await h.close()
