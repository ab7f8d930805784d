"""The shared Backend contract (tests/controller/test_backend_contract.py),
run against DockerBackend: the same test functions, given a harness that
makes containers misbehave and looks at them through the engine.

The contract's tests are collected here once more, parametrized for
docker only, so that they carry the `docker` mark (skipped without an
engine, failed in CI without one) and the contract file needs no Docker.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.backends.base import Backend, Task, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from tests.controller import test_backend_contract as contract
from tests.controller.test_backend_contract import backends  # noqa: F401  (a fixture the contract's tests use)
from tests.docker.conftest import owned
from tests.helpers import eventually

pytestmark = pytest.mark.docker

START_TIMEOUT = 5.0  # a container and a Python need longer than a process to listen

# Listens (on every interface: the published port reaches the container's
# address, not its loopback), ignores SIGTERM, and starts a child that
# ignores it too. Only SIGKILL ends it; the container takes the child along.
STUBBORN = tuple(part.replace("'127.0.0.1'", "'0.0.0.0'") for part in contract.STUBBORN)

class DockerHarness(contract.Harness):
    name = "docker"
    real = True

    def __init__(self, tmp_path: Path, owner: str, images: dict[str, str], client: Any) -> None:
        super().__init__(tmp_path)
        self.options = DockerRuntime(owner=owner, image=images["python"])
        self.client = client
        self.owner = owner

    def backend(self) -> Backend:
        return DockerBackend(self.state_dir, start_timeout=START_TIMEOUT, options=self.options)

    async def crash(self, backend: Backend) -> None:
        # A dead controller's event stream goes quiet; its containers run on.
        await backend.close(stop_tasks=False)

    async def start_exiting(self, backend: Backend, exit_code: int) -> Task:
        cmd = ("{python}", "-c", f"import sys; print('bye'); sys.exit({exit_code})")
        return await backend.start_task(contract.SERVICE, TaskDefinition("1", cmd), "green", "d-1", {})

    async def start_never_listening(self, backend: Backend) -> Task:
        cmd = ("{python}", "-c", "import time; time.sleep(600)")
        return await backend.start_task(contract.SERVICE, TaskDefinition("1", cmd, stop_timeout=2.0), "green",
                                        "d-1", {})

    async def start_stubborn(self, backend: Backend) -> Task:
        task = await backend.start_task(contract.SERVICE, TaskDefinition("1", STUBBORN), "blue", None, {})
        await eventually(lambda: contract._line_starting(backend, task, "CHILD "), what="the stubborn child")
        return task

    async def env_seen(self, backend: Backend, task: Task) -> dict[str, str]:
        line = await eventually(lambda: contract._line_starting(backend, task, "ENV "), what="the ENV line")
        import json

        env: dict[str, str] = json.loads(line[4:])
        return env

    def port_inside(self, task: Task, definition: TaskDefinition) -> int:
        # The container listens on its container port; the target is the published host port.
        return definition.container_port

    def kill_from_outside(self, backend: Backend, task: Task) -> None:
        [container] = owned(self.client, self.owner, task=task.task_id)
        container.kill()  # SIGKILL, as `docker kill`

    async def gone(self, backend: Backend, task: Task) -> bool:
        return all(c.status not in ("running", "restarting", "paused")
                   for c in owned(self.client, self.owner, task=task.task_id))


@pytest.fixture
def harness(tmp_path: Path, owners: Any, test_images: dict[str, str], docker_client: Any) -> DockerHarness:
    return DockerHarness(tmp_path, owners(), test_images, docker_client)


def _contract_tests() -> dict[str, Any]:
    """Fresh copies of the contract's tests that take a harness, without their process/fake parametrization."""
    found = {}
    for name, fn in vars(contract).items():
        if not name.startswith("test_") or not isinstance(fn, types.FunctionType):
            continue
        if not any(m.name == "parametrize" and m.args[0] == "harness" for m in getattr(fn, "pytestmark", [])):
            continue  # a process-only test
        copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
        copy.__doc__, copy.__annotations__ = fn.__doc__, dict(fn.__annotations__)
        found[name] = copy
    return found


globals().update(_contract_tests())
