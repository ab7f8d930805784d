"""The config file's `controller.docker` section and a revision's cpu/memory,
seen on the containers the engine runs: limits, where ports are published,
which network a task joins; a revision's limits over the section's; a
SHIFTLAB_DOCKER_* variable over the file. Every container carries an owner
label of the test's own and is removed at the end whatever happened."""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from shiftlab.client import Client
from shiftlab.common.configfile import parse
from shiftlab.controller.backends.base import RUNNING, STOPPED, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_spec import container_name
from shiftlab.controller.config import DockerRuntime
from shiftlab.settings import load_settings
from shiftlab.stack import Stack, make_backend
from tests.docker.conftest import SAMPLE_IMAGE, SESSION, owned
from tests.docker.test_docker_rollouts import docker_config
from tests.helpers import eventually

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


def one_task_config(tmp_path: Path, docker: dict[str, Any]) -> dict[str, Any]:
    data = docker_config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["service"]["desiredCount"] = 1
    data["controller"]["docker"] = docker
    return data


@pytest.fixture(autouse=True)
def _no_docker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the file says must be what runs: no SHIFTLAB_DOCKER_* from the machine."""
    import os

    for name in list(os.environ):
        if name.startswith("SHIFTLAB_DOCKER_"):
            monkeypatch.delenv(name)


def limits(container: Any) -> tuple[int, int, int]:
    host = container.attrs["HostConfig"]
    return host["NanoCpus"], host["Memory"], host["MemorySwap"]


def bindings(container: Any) -> set[str]:
    return {b["HostIp"] for b in container.attrs["NetworkSettings"]["Ports"]["8080/tcp"] or []}


async def test_the_files_section_shapes_the_containers_and_a_revisions_limits_win(tmp_path, owners,
                                                                                 docker_client) -> None:
    owner = owners()
    data = one_task_config(tmp_path, {"owner": owner, "publishAddress": "127.0.0.2", "cpus": 0.5, "memory": "96m",
                                      "pull": "never"})
    stack = Stack(load_settings(copy.deepcopy(data)))
    await stack.start()
    try:
        ctl = stack.controller
        assert ctl is not None
        # Revision 1 has no limits of its own: the section's apply.
        [blue] = owned(docker_client, owner, revision="1")
        assert limits(blue) == (500_000_000, 96 * MiB, 96 * MiB)
        assert bindings(blue) == {"127.0.0.2"}
        [task] = ctl.sets["blue"].running()
        assert (task.host, task.port) == ("127.0.0.2", int(blue.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
                                                            ["HostPort"]))
        # Revision 2, deployed as `shiftlab deploy --cpu 256 --memory 64` does: its own limits win.
        client = Client(stack.api_url)
        d = await asyncio.to_thread(client.post, "/api/deployments",
                                    {"taskDefinition": {"cpu": "256", "memory": "64"}})
        final = await ctl.wait_finished(d["shiftlab"]["id"], timeout=120)
        assert final.status == "SUCCESSFUL", final.status_reason
        [green] = owned(docker_client, owner, revision="2")
        assert limits(green) == (250_000_000, 64 * MiB, 64 * MiB)
        assert bindings(green) == {"127.0.0.2"}  # the section still says where
        # Refused like any bad field, before a revision is registered.
        bad = await asyncio.to_thread(_post_error, client, {"taskDefinition": {"cpu": "64"}})
        assert "taskDefinition.cpu: 64 is out of range 128..196608" in bad
    finally:
        await stack.stop()
    assert owned(docker_client, owner) == []


def _post_error(client: Client, body: dict[str, Any]) -> str:
    from shiftlab.client import ApiError

    try:
        client.post("/api/deployments", body)
    except ApiError as exc:
        return "\n".join([str(exc), *exc.problems])
    raise AssertionError("the deployment was accepted")


async def test_a_variable_overrides_the_file(tmp_path, owners, docker_client,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    owner = owners()
    data = one_task_config(tmp_path, {"owner": owner, "publishAddress": "127.0.0.2", "cpus": 0.5, "memory": "96m"})
    monkeypatch.setenv("SHIFTLAB_DOCKER_MEMORY", "80m")
    monkeypatch.setenv("SHIFTLAB_DOCKER_PUBLISH_ADDRESS", "127.0.0.3")
    stack = Stack(load_settings(copy.deepcopy(data)))
    await stack.start()
    try:
        [blue] = owned(docker_client, owner)
        assert limits(blue) == (500_000_000, 80 * MiB, 80 * MiB)  # cpus from the file, memory from the variable
        assert bindings(blue) == {"127.0.0.3"}
        assert stack.controller is not None
        assert [t.host for t in stack.controller.sets["blue"].running()] == ["127.0.0.3"]
    finally:
        await stack.stop()
    assert owned(docker_client, owner) == []


async def test_host_networking_from_the_file(tmp_path: Path, owners, docker_client) -> None:
    owner = owners()
    section = parse(DockerRuntime, {"network": "host", "owner": owner, "memory": "64m"}, "controller.docker")
    backend = make_backend("docker", tmp_path / "state", 20, section)
    assert isinstance(backend, DockerBackend)
    try:
        task = await backend.start_task("web", TaskDefinition("1", image=SAMPLE_IMAGE, cpu=512), "blue", None, {})
        assert task.state == RUNNING and task.host == "127.0.0.1"
        [container] = owned(docker_client, owner, task=task.task_id)
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert limits(container) == (500_000_000, 64 * MiB, 64 * MiB)
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        # The container's interfaces are the host's: it listens on loopback only.
        assert (env["HOST"], env["PORT"]) == ("127.0.0.1", str(task.port))
    finally:
        await backend.close(stop_tasks=True)
    assert owned(docker_client, owner) == []


async def test_a_named_network_from_the_file(tmp_path: Path, owners, docker_client) -> None:
    """The task joins the network and is addressed by its container name,
    with nothing published; from the host the name does not resolve, so the
    start is cancelled once the container has been seen."""
    owner = owners()
    network = docker_client.networks.create(f"shiftlab-test-{SESSION}-{uuid.uuid4().hex[:6]}")
    section = parse(DockerRuntime, {"network": network.name, "owner": owner, "cpus": 0.25}, "controller.docker")
    backend = make_backend("docker", tmp_path / "state", 30, section)
    try:
        starting = asyncio.create_task(backend.start_task("web", TaskDefinition("1", image=SAMPLE_IMAGE), "green",
                                                          None, {}))
        [container] = await eventually(lambda: owned(docker_client, owner), timeout=30,
                                       what="the container to be created")
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {network.name}
        assert not container.attrs["HostConfig"]["PortBindings"]
        assert container.attrs["HostConfig"]["NanoCpus"] == 250_000_000
        [task] = await backend.tasks("web")
        assert (task.host, task.port) == (container_name("web", "green", task.task_id), 8080)
        assert task.state != STOPPED
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        await eventually(lambda: not owned(docker_client, owner), timeout=15, what="the container to go")
    finally:
        await backend.close(stop_tasks=True)
        for c in owned(docker_client, owner):
            c.remove(force=True)
        network.remove()
