"""DockerBackend beyond the shared contract: what only containers have
(published ports, host networking, images and pull policies, HEALTHCHECK,
OOM kills, logs that outlive the container) and a real controller crash."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shiftlab.controller.backends import docker as docker_backend
from shiftlab.controller.backends.base import (
    ESSENTIAL_CONTAINER_EXITED,
    RUNNING,
    STOPPED,
    TASK_FAILED_TO_START,
    USER_INITIATED,
    Task,
    TaskDefinition,
)
from shiftlab.controller.backends.docker import REASON_UNHEALTHY, DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.backends.docker_spec import task_labels
from shiftlab.controller.backends.lifecycle import REASON_OOM
from tests.controller.test_backend_contract import ENV_THEN_SERVE, Recorder
from tests.controller.test_task_lifecycle import (
    a_stop_during_the_start_wins,
    a_task_that_exits_during_its_check_stays_stopped,
)
from tests.docker.conftest import REPO, SAMPLE_IMAGE, owned
from tests.helpers import eventually

pytestmark = pytest.mark.docker

SERVICE = "web"


@pytest.fixture
async def make_backend(tmp_path: Path, owners: Callable[[], str],
                       test_images: dict[str, str]) -> AsyncIterator[Callable[..., DockerBackend]]:
    """Backends with an owner label of this test's own; closed with their tasks stopped at the end."""
    made: list[DockerBackend] = []

    def make(start_timeout: float = 20.0, **options: Any) -> DockerBackend:
        opts = DockerRuntime(**{"owner": owners(), "image": test_images["python"], **options})
        b = DockerBackend(tmp_path / f"state-{len(made)}", start_timeout=start_timeout, options=opts)
        made.append(b)
        return b

    yield make
    for b in reversed(made):
        await b.close(stop_tasks=True)


async def _get(task: Task, path: str = "/", method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, f"http://{task.host}:{task.port}{path}",
                                                       json=body) as r:
        return r.status, await r.json()


async def test_a_task_is_a_labelled_container_published_on_loopback(make_backend, docker_client) -> None:
    backend = make_backend()
    task = await backend.start_task(SERVICE, TaskDefinition("2", ENV_THEN_SERVE, env={"GREETING": "hi"}), "green",
                                    "d-1", {"SHIFTLAB_TARGET_GROUP": "green"})
    assert task.state == RUNNING and task.host == "127.0.0.1" and task.port > 0
    [container] = owned(docker_client, backend.owner, task=task.task_id)
    labels = container.labels
    assert (labels["io.shiftlab.service"], labels["io.shiftlab.revision"], labels["io.shiftlab.colour"],
            labels["io.shiftlab.deployment"]) == (SERVICE, "2", "green", "d-1")
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}  # never on every interface
    assert {int(b["HostPort"]) for b in bindings} == {task.port}
    line = await eventually(lambda: _env_line(backend, task), what="the ENV line")
    env = json.loads(line[4:])
    # Inside, the task listens on its container port; the target is the published one.
    assert env["PORT"] == "8080" and env["HOST"] == "0.0.0.0" and env["GREETING"] == "hi"
    assert (env["SHIFTLAB_TASK_ID"], env["SHIFTLAB_COLOUR"], env["SHIFTLAB_TARGET_GROUP"]) == (
        task.task_id, "green", "green")
    status, doc = await _get(task, "/x")
    assert status == 200 and doc["task"] == task.task_id


async def _env_line(backend: DockerBackend, task: Task) -> str | None:
    return next((ln for ln in (await backend.logs(task.task_id)).splitlines() if ln.startswith("ENV ")), None)


async def test_host_networking_gives_the_task_a_port_of_its_own(make_backend) -> None:
    backend = make_backend(network="host")
    tasks = [await backend.start_task(SERVICE, TaskDefinition("1", image=SAMPLE_IMAGE), "blue", None, {})
             for _ in range(2)]
    assert [t.state for t in tasks] == [RUNNING, RUNNING]
    assert tasks[0].port != tasks[1].port
    for t in tasks:
        assert t.host == "127.0.0.1"
        status, doc = await _get(t)
        assert status == 200 and doc["task"] == t.task_id


async def test_logs_outlive_the_removed_container(make_backend, docker_client) -> None:
    backend = make_backend()
    task = await backend.start_task(SERVICE, TaskDefinition("1", image=SAMPLE_IMAGE), "blue", None, {})
    stopped = await backend.stop_task(task.task_id, 5)
    assert (stopped.state, stopped.exit_code, stopped.stop_code) == (STOPPED, 0, USER_INITIATED)
    assert owned(docker_client, backend.owner) == []  # removed
    text = await backend.logs(task.task_id)
    assert "listening on 0.0.0.0:8080" in text and "stopped (SIGTERM)" in text
    assert await backend.logs(task.task_id, tail=1) == "sample service: stopped (SIGTERM)\n"


# -- images ---------------------------------------------------------------------------------------


async def test_pull_policy_never_refuses_an_image_that_is_not_here(make_backend) -> None:
    backend = make_backend(pull="never")
    image = f"shiftlab-test/absent:{uuid.uuid4().hex[:8]}"
    task = await backend.start_task(SERVICE, TaskDefinition("1", image=image), "green", "d-1", {})
    assert task.state == STOPPED and task.stop_code == TASK_FAILED_TO_START
    assert task.stopped_reason is not None
    assert task.stopped_reason.startswith(f"CannotPullContainerError: image {image} is not on this machine")
    assert "docker build" in task.stopped_reason
    # A local image needs no registry with policy never.
    assert (await backend.start_task(SERVICE, TaskDefinition("1", image=SAMPLE_IMAGE), "blue", None, {})
            ).state == RUNNING


async def test_a_registry_that_refuses_fails_the_pull_at_once(make_backend) -> None:
    backend = make_backend()
    closed = _closed_port()
    image = f"127.0.0.1:{closed}/shiftlab/absent:1"  # a registry on loopback that is not there
    task = await asyncio.wait_for(backend.start_task(SERVICE, TaskDefinition("1", image=image), "green", "d-1", {}),
                                  60)
    assert task.state == STOPPED and task.stop_code == TASK_FAILED_TO_START
    assert task.stopped_reason is not None and task.stopped_reason.startswith(
        f"CannotPullContainerError: pull of {image} failed")
    assert "build or load the image on this machine" in task.stopped_reason


async def test_a_registry_that_never_answers_does_not_hang_the_pull(make_backend) -> None:
    """The engine's connection is accepted and then nothing is said: the
    pull fails after the stall timeout instead of waiting for ever."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        backend = make_backend(pull="always", pullStallTimeoutSeconds=1.0)
        image = f"127.0.0.1:{port}/shiftlab/silent:1"
        task = await asyncio.wait_for(
            backend.start_task(SERVICE, TaskDefinition("1", image=image), "green", "d-1", {}), 60)
        assert task.state == STOPPED and task.stop_code == TASK_FAILED_TO_START
        assert task.stopped_reason is not None and "CannotPullContainerError" in task.stopped_reason
        assert accepted, "the engine never reached the silent registry"
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


# -- health ------------------------------------------------------------------------------------------


async def test_a_healthcheck_gates_running_and_an_unhealthy_task_is_stopped(make_backend, docker_client,
                                                                           test_images) -> None:
    backend = make_backend()
    seen = Recorder()
    backend.subscribe(seen)
    task = await backend.start_task(SERVICE, TaskDefinition("1", image=test_images["healthcheck"]), "green", "d-1",
                                    {})
    assert task.state == RUNNING
    # RUNNING came after Docker's own verdict, not before.
    [container] = owned(docker_client, backend.owner, task=task.task_id)
    assert container.attrs["State"]["Health"]["Status"] == "healthy"
    status, _ = await _get(task, "/_shiftlab/faults", "PUT", {"healthFail": True})
    assert status == 200
    told = await eventually(lambda: seen.stopped(task.task_id), timeout=20, what="the unhealthy task to stop")
    assert told.stopped_reason == REASON_UNHEALTHY
    assert told.stop_code == "ServiceSchedulerInitiated"


async def test_a_task_unhealthy_from_the_start_fails_to_start(make_backend, test_images) -> None:
    backend = make_backend()
    definition = TaskDefinition("1", image=test_images["healthcheck"], env={"HEALTH_FAIL": "1"}, stop_timeout=2)
    task = await backend.start_task(SERVICE, definition, "green", "d-1", {})
    assert task.state == STOPPED and task.stop_code == TASK_FAILED_TO_START
    assert task.stopped_reason == "Task failed to start: its HEALTHCHECK says unhealthy"


async def test_an_oom_killed_task_says_so(make_backend) -> None:
    backend = make_backend(memory="32m")
    hog = ("{python}", "-c", "x = bytearray(256 * 1024 * 1024); print('survived')")
    task = await backend.start_task(SERVICE, TaskDefinition("1", hog), "green", "d-1", {})
    assert task.state == STOPPED and task.exit_code == 128 + signal.SIGKILL
    assert task.stop_code == ESSENTIAL_CONTAINER_EXITED
    assert task.stopped_reason is not None and REASON_OOM in task.stopped_reason


# -- the lifecycle's races, on containers (tests/controller/test_task_lifecycle.py) ---------------------------


async def test_a_task_that_exits_while_its_port_check_returns_stays_stopped(
        make_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    await a_task_that_exits_during_its_check_stays_stopped(make_backend(), docker_backend, monkeypatch)


async def test_a_stop_asked_for_while_the_task_starts_wins(make_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    await a_stop_during_the_start_wins(make_backend(), docker_backend, monkeypatch)


# -- ownership and a real crash ------------------------------------------------------------------------


async def test_backends_of_different_owners_never_adopt_each_others_tasks(make_backend, docker_client) -> None:
    mine, theirs = make_backend(), make_backend()
    task = await mine.start_task(SERVICE, TaskDefinition("1", image=SAMPLE_IMAGE), "blue", None, {})
    assert await theirs.adopt(SERVICE) == []
    await theirs.close(stop_tasks=True)
    [container] = owned(docker_client, mine.owner, task=task.task_id)
    assert container.status == "running"


CRASHING_CONTROLLER = """
import asyncio, json, sys
from pathlib import Path
from shiftlab.controller.backends.base import TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime

async def main():
    backend = DockerBackend(Path(sys.argv[1]), start_timeout=30, options=DockerRuntime(owner=sys.argv[2]))
    tasks = [await backend.start_task("web", TaskDefinition("1", image=sys.argv[3]), "blue", None, {})
             for _ in range(2)]
    print(json.dumps([[t.task_id, t.port, t.state] for t in tasks]), flush=True)
    await asyncio.sleep(600)  # until killed

asyncio.run(main())
"""


async def test_adopt_after_a_real_controller_crash(tmp_path: Path, owners, docker_client) -> None:
    """The controller process is SIGKILLed; its containers serve on, are
    adopted by a new one (with a container it had created but not started
    reported and removed), and are stopped by it."""
    owner = owners()
    state = tmp_path / "state"
    controller = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_CONTROLLER, str(state), owner,
                                                      SAMPLE_IMAGE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
    backend = DockerBackend(state, start_timeout=20, options=DockerRuntime(owner=owner))
    try:
        assert controller.stdout is not None
        started = json.loads(await asyncio.wait_for(controller.stdout.readline(), 60))
        assert [s for _, _, s in started] == [RUNNING, RUNNING]
        controller.kill()
        await controller.wait()
        assert {c.status for c in owned(docker_client, owner)} == {"running"}  # not the controller's children
        # A container the dead controller had created but not yet started.
        never = Task(uuid.uuid4().hex, "1", "blue", SERVICE, None, "127.0.0.1", 0, "PROVISIONING")
        docker_client.containers.create(SAMPLE_IMAGE, labels=task_labels(owner, never, TaskDefinition("1")))

        seen = Recorder()
        backend.subscribe(seen)
        adopted = {t.task_id: t for t in await backend.adopt(SERVICE)}
        assert {i: (t.state, t.port) for i, t in adopted.items() if i != never.task_id} == {
            i: (RUNNING, port) for i, port, _ in started}
        assert adopted[never.task_id].state == STOPPED
        assert adopted[never.task_id].stop_code == TASK_FAILED_TO_START
        assert {t.task_id for t in await backend.adopt(SERVICE)} == set(adopted)  # nothing twice
        for i, _, _ in started:
            status, doc = await _get(adopted[i])
            assert status == 200 and doc["task"] == i
        # Watched again: an exit is heard, a stop is obeyed.
        first, second = started[0][0], started[1][0]
        [container] = owned(docker_client, owner, task=first)
        container.kill()
        told = await eventually(lambda: seen.stopped(first), timeout=10, what="the adopted task's exit")
        assert told.exit_code == 128 + signal.SIGKILL
        stopped = await backend.stop_task(second, 5)
        assert stopped.state == STOPPED and stopped.stop_code == USER_INITIATED
        await eventually(lambda: not owned(docker_client, owner), timeout=10, what="every container to be removed")
        assert "stopped (SIGTERM)" in await backend.logs(second)  # kept after its container went
    finally:
        if controller.returncode is None:
            controller.kill()
            await controller.wait()
        await backend.close(stop_tasks=True)


async def test_a_cancelled_start_leaves_no_container(make_backend, docker_client) -> None:
    backend = make_backend()
    cmd = ("{python}", "-c", "import time; time.sleep(600)")
    starting = asyncio.create_task(backend.start_task(SERVICE, TaskDefinition("1", cmd), "green", None, {}))
    await eventually(lambda: owned(docker_client, backend.owner), timeout=30, what="the container to be created")
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    await eventually(lambda: not owned(docker_client, backend.owner), timeout=15, what="the container to go")
