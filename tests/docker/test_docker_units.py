"""DockerBackend's pure parts: what a container is made of, and how it is
read back from the engine's answers. No engine needed. (The options:
tests/controller/test_runtime_config.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftlab.controller.backends.base import Task, TaskDefinition
from shiftlab.controller.backends.docker import DockerBackend, DockerUnavailable
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.backends.docker_spec import (
    L_HOST_PORT,
    L_OWNER,
    L_TASK,
    container_command,
    container_env,
    container_name,
    container_spec,
    found_task,
    has_healthcheck,
    owner_of,
    parse_docker_time,
    published_port,
    run_options,
    task_address,
    task_labels,
)
from shiftlab.stack import make_backend

TASK = Task("a" * 32, "3", "green", "web", "d-1", "127.0.0.1", 0, "PROVISIONING")


def test_publishing_on_loopback_is_the_default() -> None:
    kw = run_options(DockerRuntime(), TaskDefinition("1", image="x", container_port=9000), None)
    assert kw["ports"] == {"9000/tcp": ("127.0.0.1", None)}  # the engine picks the host port
    assert "network" not in kw and "network_mode" not in kw and "mem_limit" not in kw


def test_host_networking_and_named_networks() -> None:
    d = TaskDefinition("1", image="x")
    assert run_options(DockerRuntime(network="host"), d, 4321)["network_mode"] == "host"
    named = run_options(DockerRuntime(network="shiftlab"), d, None)
    assert named["network"] == "shiftlab" and "ports" not in named


def test_limits_are_passed_and_swap_is_not_allowed() -> None:
    kw = run_options(DockerRuntime(cpus=0.5, memory="256m"), TaskDefinition("1", image="x"), None)
    assert kw["nano_cpus"] == 500_000_000
    assert kw["mem_limit"] == kw["memswap_limit"] == "256m"


def test_python_placeholder_means_the_images_python() -> None:
    d = TaskDefinition("1", ("{python}", "-m", "app"), image="x")
    assert container_command(d, "python3") == ["python3", "-m", "app"]
    assert container_command(TaskDefinition("1", image="x"), "python3") is None  # the image's CMD


def test_env_port_and_identity_win_over_the_definition() -> None:
    d = TaskDefinition("3", image="x", env={"PORT": "1", "SHIFTLAB_COLOUR": "blue", "GREETING": "hi"})
    env = container_env(TASK, d, {"SHIFTLAB_TARGET_GROUP": "green"}, 8080)
    assert env["PORT"] == "8080" and env["SHIFTLAB_COLOUR"] == "green" and env["GREETING"] == "hi"
    assert env["HOST"] == "0.0.0.0" and env["SHIFTLAB_TARGET_GROUP"] == "green"
    assert env["SHIFTLAB_TASK_ID"] == TASK.task_id and env["SHIFTLAB_REVISION"] == "3"


def test_labels_and_names() -> None:
    labels = task_labels("me", TASK, TaskDefinition("3", image="x", container_port=9000, stop_timeout=2.5))
    assert labels[L_OWNER] == "me" and labels[L_TASK] == TASK.task_id
    assert labels["io.shiftlab.deployment"] == "d-1" and labels["io.shiftlab.stop-timeout"] == "2.5"
    assert labels["io.shiftlab.container-port"] == "9000"
    assert container_name("web", "green", TASK.task_id) == "shiftlab-web-green-aaaaaaaaaaaa"


def test_owner_follows_the_state_directory(tmp_path: Path) -> None:
    assert owner_of(tmp_path / "a") == owner_of(tmp_path / "b" / ".." / "a") != owner_of(tmp_path / "b")


def test_engine_answers_are_read() -> None:
    attrs = {"NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}},
             "Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
    assert published_port(attrs, 8080) == 32768
    assert published_port(attrs, 9000) is None and published_port({}, 8080) is None
    assert has_healthcheck(attrs)
    assert not has_healthcheck({"Config": {"Healthcheck": {"Test": ["NONE"]}}}) and not has_healthcheck({})
    assert parse_docker_time("2024-05-01T10:00:00.123456789Z") == pytest.approx(1714557600.123456)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None and parse_docker_time(None) is None


@pytest.mark.parametrize(("network", "host_port", "address"), [
    (None, None, ("127.0.0.1", 0)),  # published: the engine picks the port once the container runs
    ("host", 4321, ("127.0.0.1", 4321)),
    ("shiftlab", None, ("shiftlab-web-green-aaaaaaaaaaaa", 9000)),  # its name on that network
])
def test_where_a_new_task_is_reached(network: str | None, host_port: int | None, address: tuple[str, int]) -> None:
    opts = DockerRuntime(network=network)
    assert task_address(opts, "web", "green", TASK.task_id, 9000, host_port) == address


def test_the_container_spec_is_the_whole_create_call() -> None:
    d = TaskDefinition("3", ("{python}", "-m", "app"), env={"GREETING": "hi"}, image="ignored", container_port=9000,
                       stop_timeout=2.5, cpu=512, memory=256)
    spec = container_spec(DockerRuntime(python="python3.12"), "me", TASK, d, {"SHIFTLAB_TARGET_GROUP": "green"},
                          "app:3", None)
    assert spec == {
        "image": "app:3", "command": ["python3.12", "-m", "app"], "name": "shiftlab-web-green-aaaaaaaaaaaa",
        "environment": container_env(TASK, d, {"SHIFTLAB_TARGET_GROUP": "green"}, 9000),
        "labels": task_labels("me", TASK, d), "detach": True, "stop_signal": "SIGTERM",
        "ports": {"9000/tcp": ("127.0.0.1", None)}, "nano_cpus": 500_000_000, "mem_limit": "256m",
        "memswap_limit": "256m",
    }


def test_with_host_networking_the_task_listens_on_its_own_port_at_the_publish_address() -> None:
    opts = DockerRuntime(network="host", publishAddress="127.0.0.2")
    spec = container_spec(opts, "me", TASK, TaskDefinition("3", image="x", container_port=9000), {}, "x", 4321)
    assert (spec["environment"]["HOST"], spec["environment"]["PORT"]) == ("127.0.0.2", "4321")
    assert spec["labels"][L_HOST_PORT] == "4321" and spec["network_mode"] == "host" and "ports" not in spec


@pytest.mark.parametrize(("network", "address"), [
    (None, ("127.0.0.1", 32768)),
    ("host", ("127.0.0.1", 4321)),
    ("shiftlab", ("shiftlab-web-green-aaaaaaaaaaaa", 9000)),
])
def test_an_adopted_container_is_read_back_from_its_labels(network: str | None, address: tuple[str, int]) -> None:
    opts = DockerRuntime(network=network)
    d = TaskDefinition("3", image="x", container_port=9000, stop_timeout=2.5)
    spec = container_spec(opts, "me", TASK, d, {}, "x", 4321 if network == "host" else None)
    attrs = {"Id": "c0ffee", "Name": "/" + spec["name"], "State": {"StartedAt": "2024-05-01T10:00:00Z"},
             "NetworkSettings": {"Ports": {"9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}}}
    found = found_task(opts, spec["labels"], attrs)
    t = found.task
    assert (t.task_id, t.revision, t.colour, t.service, t.deployment_id) == (TASK.task_id, "3", "green", "web", "d-1")
    assert ((t.host, t.port), t.state, t.started_at) == (address, "PENDING", 1714557600.0)
    assert (found.container_id, found.container_port, found.stop_timeout) == ("c0ffee", 9000, 2.5)


async def test_no_engine_is_a_clear_error_that_names_the_way_out(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    backend = make_backend("docker", tmp_path)  # constructing contacts nothing
    assert isinstance(backend, DockerBackend)
    try:
        with pytest.raises(DockerUnavailable) as e:
            await backend.adopt("web")
        message = str(e.value)
        assert f"unix://{tmp_path}/no-docker.sock" in message
        assert "Start it" in message and "process backend" in message
        assert isinstance(e.value, OSError)  # `shiftlab up` prints it as "cannot start: ..."
    finally:
        await backend.close(stop_tasks=True)


def test_service_connect_aliases_are_host_names_of_the_container() -> None:
    """A client container resolves the alias as on ECS (`http://catalog:8080`): --add-host."""
    d = TaskDefinition("1", image="x", hosts={"catalog": "127.0.0.1"})
    assert run_options(DockerRuntime(network="host"), d, 4321)["extra_hosts"] == {"catalog": "127.0.0.1"}
    assert "extra_hosts" not in run_options(DockerRuntime(network="host"), TaskDefinition("1", image="x"), 4321)
