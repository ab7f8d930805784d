"""The docker backend's options in the config file (`controller.docker`) and
a revision's cpu/memory limits (`taskDefinition.cpu`/`memory`, as ECS spells
them): what is refused and how, what the backend is given, and the
SHIFTLAB_DOCKER_* variables over the file. Pure: no engine, no stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller.backends.base import TaskDefinition
from shiftlab.controller.backends.docker_options import DockerRuntime, resolve
from shiftlab.controller.backends.docker_spec import run_options
from shiftlab.controller.config import ControllerRuntime, TaskDefinitionSpec
from shiftlab.settings import load_settings
from shiftlab.stack import Stack
from tests.controller.support import config

REPO = Path(__file__).resolve().parents[2]
NO_ENV: dict[str, str] = {}


def docker_file(tmp_path: Path, docker: dict[str, Any], **task: Any) -> dict[str, Any]:
    data = config(tmp_path, {"strategy": "CANARY"})
    data["controller"].update({"backend": "docker", "docker": docker})
    data["service"]["taskDefinition"] = {"image": "shiftlab/sample:local", **task}
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_settings(data)
    return e.value.problems


@pytest.fixture(autouse=True)
def _no_docker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables override the file: none may leak in from the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith("SHIFTLAB_DOCKER_"):
            monkeypatch.delenv(name)


# -- controller.docker ----------------------------------------------------------------------------


def test_the_section_is_optional_and_its_defaults_are_the_backends() -> None:
    assert ControllerRuntime().docker == DockerRuntime()
    assert resolve(None, NO_ENV) == DockerRuntime()


def test_every_field_reaches_the_backend(tmp_path: Path) -> None:
    docker = {"network": "shiftlab", "publishAddress": "127.0.0.2", "pull": "never", "pullStallTimeoutSeconds": 5,
              "cpus": 1.5, "memory": "512m", "python": "/usr/bin/python3", "image": "base:1", "owner": "me"}
    settings = load_settings(docker_file(tmp_path, docker))
    opts = resolve(settings.controller.docker, NO_ENV)
    assert opts == DockerRuntime(network="shiftlab", publishAddress="127.0.0.2", pull="never",
                                 pullStallTimeoutSeconds=5.0, cpus=1.5, memory="512m", python="/usr/bin/python3",
                                 image="base:1", owner="me")


def test_bad_values_are_refused_naming_the_field_and_the_value(tmp_path: Path) -> None:
    docker = {"pull": "sometimes", "cpus": 0, "memory": "lots", "pullStallTimeoutSeconds": 0,
              "publishAddress": "localhost", "network": "", "colour": "blue"}
    assert sorted(problems(docker_file(tmp_path, docker))) == sorted([
        "controller.docker.pull: 'sometimes' is not one of missing, never, always",
        "controller.docker.cpus: 0 is out of range (0, 1024]",
        "controller.docker.memory: 'lots' is not a size such as 512m or 2g",
        "controller.docker.pullStallTimeoutSeconds: 0 is out of range (0, 3600] seconds",
        "controller.docker.publishAddress: 'localhost' is not an IP address (Docker publishes ports on an "
        "address, e.g. 127.0.0.1)",
        "controller.docker.network: must not be empty (leave it out for the default)",
        "controller.docker.colour: unknown field",
    ])


def test_a_memory_without_a_unit_is_bytes_and_too_small(tmp_path: Path) -> None:
    assert problems(docker_file(tmp_path, {"memory": 512})) == [
        "controller.docker.memory: '512' is below Docker's minimum of 6m (a size without a unit is in bytes: "
        "512m, 2g)"]


def test_publishing_beyond_loopback_must_be_deliberate(tmp_path: Path) -> None:
    [line] = problems(docker_file(tmp_path, {"publishAddress": "0.0.0.0"}))
    assert line.startswith("controller.docker.publishAddress: 0.0.0.0 is not a loopback address")
    assert "publishBeyondLoopback: true" in line
    settings = load_settings(docker_file(tmp_path, {"publishAddress": "0.0.0.0", "publishBeyondLoopback": True}))
    opts = resolve(settings.controller.docker, NO_ENV)
    assert (opts.publishAddress, opts.publishBeyondLoopback) == ("0.0.0.0", True)
    # The same rule for the variables, and for options made in code.
    with pytest.raises(ConfigError, match=r"^SHIFTLAB_DOCKER_PUBLISH_ADDRESS: 10\.0\.0\.1 is not a loopback address"):
        resolve(None, {"SHIFTLAB_DOCKER_PUBLISH_ADDRESS": "10.0.0.1"})
    assert resolve(None, {"SHIFTLAB_DOCKER_PUBLISH_ADDRESS": "10.0.0.1",
                          "SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK": "1"}).publishAddress == "10.0.0.1"
    # A variable can take back what the file allowed: the file's field is named, since the file set it.
    with pytest.raises(ConfigError, match=r"^controller\.docker\.publishAddress: 0\.0\.0\.0 is not a loopback"):
        resolve(settings.controller.docker, {"SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK": "no"})
    with pytest.raises(ValidationError, match="is not a loopback address"):
        DockerRuntime(publishAddress="0.0.0.0")


def test_the_variables_override_the_file() -> None:
    section = parse(DockerRuntime, {"network": "filenet", "pull": "never", "cpus": 2, "memory": "1g",
                                    "owner": "from-file"})
    opts = resolve(section, {"SHIFTLAB_DOCKER_NETWORK": "envnet", "SHIFTLAB_DOCKER_MEMORY": "64m",
                             "SHIFTLAB_DOCKER_OWNER": " "})  # blank: not set
    assert (opts.network, opts.memory) == ("envnet", "64m")  # from the variables
    assert (opts.pull, opts.cpus, opts.owner) == ("never", 2.0, "from-file")  # from the file
    assert section.network == "filenet"  # the file's section is left as it was


def test_every_variable_reaches_its_field() -> None:
    opts = resolve(None, {
        "SHIFTLAB_DOCKER_NETWORK": "shiftlab", "SHIFTLAB_DOCKER_PUBLISH_ADDRESS": "10.0.0.1",
        "SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK": "yes", "SHIFTLAB_DOCKER_PULL": "never",
        "SHIFTLAB_DOCKER_PULL_STALL_TIMEOUT": "2.5", "SHIFTLAB_DOCKER_CPUS": "1.5", "SHIFTLAB_DOCKER_MEMORY": "512m",
        "SHIFTLAB_DOCKER_PYTHON": "python3.12", "SHIFTLAB_DOCKER_IMAGE": "base:2", "SHIFTLAB_DOCKER_OWNER": "ci"})
    assert opts == DockerRuntime(network="shiftlab", publishAddress="10.0.0.1", publishBeyondLoopback=True,
                                 pull="never", pullStallTimeoutSeconds=2.5, cpus=1.5, memory="512m",
                                 python="python3.12", image="base:2", owner="ci")


def test_bad_variables_are_all_refused_naming_each() -> None:
    with pytest.raises(ConfigError) as e:
        resolve(None, {"SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK": "maybe", "SHIFTLAB_DOCKER_PULL": "sometimes",
                       "SHIFTLAB_DOCKER_PULL_STALL_TIMEOUT": "soon", "SHIFTLAB_DOCKER_CPUS": "0",
                       "SHIFTLAB_DOCKER_MEMORY": "lots"})
    assert e.value.problems == [
        "SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK: 'maybe' is not one of 1, 0 (true, false)",
        "SHIFTLAB_DOCKER_PULL: 'sometimes' is not one of missing, never, always",
        "SHIFTLAB_DOCKER_PULL_STALL_TIMEOUT: 'soon' is not a number",
        "SHIFTLAB_DOCKER_CPUS: 0 is out of range (0, 1024]",
        "SHIFTLAB_DOCKER_MEMORY: 'lots' is not a size such as 512m or 2g",
    ]


def test_a_bad_variable_is_refused_by_validate_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = docker_file(tmp_path, {"pull": "never"})
    monkeypatch.setenv("SHIFTLAB_DOCKER_PULL", "sometimes")
    monkeypatch.setenv("SHIFTLAB_DOCKER_CPUS", "two")
    assert problems(data) == ["SHIFTLAB_DOCKER_PULL: 'sometimes' is not one of missing, never, always",
                              "SHIFTLAB_DOCKER_CPUS: 'two' is not a number"]
    # The process backend reads none of them.
    data["controller"]["backend"] = "process"
    load_settings(data)


def test_a_stack_refuses_a_bad_variable_before_anything_starts(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(docker_file(tmp_path, {}))
    monkeypatch.setenv("SHIFTLAB_DOCKER_MEMORY", "lots")
    with pytest.raises(ConfigError, match="SHIFTLAB_DOCKER_MEMORY: 'lots' is not a size"):
        Stack(settings)  # constructing binds nothing and starts nothing


def test_cli_validate_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(docker_file(tmp_path, {"pull": "sometimes"}, cpu="lots")))
    res = subprocess.run([sys.executable, "-m", "shiftlab", "validate", "-c", str(path)], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2, res
    assert "controller.docker.pull: 'sometimes' is not one of missing, never, always" in res.stderr
    assert "service.taskDefinition.cpu: 'lots' is not CPU units" in res.stderr
    assert "Traceback" not in res.stderr


# -- taskDefinition.cpu / memory --------------------------------------------------------------------


@pytest.mark.parametrize(("given", "units"), [(256, 256), ("512", 512), ("1 vCPU", 1024), ("0.5 vcpu", 512),
                                              ("2vCPU", 2048), (None, None)])
def test_cpu_as_ecs_takes_it(given: Any, units: int | None) -> None:
    assert TaskDefinitionSpec.model_validate({"image": "x", "cpu": given}).cpu == units


@pytest.mark.parametrize(("given", "mib"), [(512, 512), ("1024", 1024), ("1GB", 1024), ("2 GB", 2048),
                                            ("0.5 gb", 512), (None, None)])
def test_memory_as_ecs_takes_it(given: Any, mib: int | None) -> None:
    assert TaskDefinitionSpec.model_validate({"image": "x", "memory": given}).memory == mib


@pytest.mark.parametrize(("field", "given", "message"), [
    ("cpu", 64, "64 is out of range 128..196608"),
    ("cpu", "0.1 vCPU", "102 is out of range 128..196608"),
    ("cpu", 200000, "200000 is out of range 128..196608"),
    ("cpu", "lots", "'lots' is not CPU units (1024 = one vCPU) nor vCPUs such as '0.5 vCPU'"),
    ("cpu", 1.5, "1.5 is not CPU units (an integer, 1024 = one vCPU)"),
    ("memory", 4, "4 is out of range 6..16777216"),
    ("memory", "256m", "'256m' is not MiB (an integer) nor GB such as '1 GB'"),
])
def test_bad_limits_are_refused(tmp_path: Path, field: str, given: Any, message: str) -> None:
    assert problems(docker_file(tmp_path, {}, **{field: given})) == [f"service.taskDefinition.{field}: {message}"]


def test_a_revisions_limits_win_over_the_service_wide_ones() -> None:
    opts = DockerRuntime(cpus=2, memory="1g")
    both = run_options(opts, TaskDefinition("1", image="x", cpu=512, memory=256), None)
    assert (both["nano_cpus"], both["mem_limit"], both["memswap_limit"]) == (500_000_000, "256m", "256m")
    cpu_only = run_options(opts, TaskDefinition("1", image="x", cpu=2048), None)
    assert (cpu_only["nano_cpus"], cpu_only["mem_limit"]) == (2_000_000_000, "1g")
    neither = run_options(DockerRuntime(), TaskDefinition("1", image="x"), None)
    assert "nano_cpus" not in neither and "mem_limit" not in neither


def test_deploy_and_rehearse_take_cpu_and_memory() -> None:
    from shiftlab.cli.options import revision_overrides

    assert revision_overrides(None, "img", (), "512", "1 GB") == {"image": "img", "cpu": "512", "memory": "1 GB"}


def test_rehearse_refuses_a_bad_limit_before_starting(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "shiftlab", "rehearse", "-c", str(path), "--memory", "3",
                          "--load-rps", "0"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2, res
    assert "taskDefinition.memory: 3 is out of range 6..16777216" in res.stderr
