"""Which tasks get AWS_ENDPOINT_URL_CLOUDWATCH: those whose 127.0.0.1 is the
controller's (process tasks, containers on the host's network). A container
on a network of its own would reach itself there, so it gets nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.backends.process import ProcessBackend
from shiftlab.stack import tasks_reach_controller


@pytest.mark.parametrize(("network", "reach"), [("host", True), (None, False), ("shiftlab-net", False)])
def test_docker_tasks_reach_the_controller_only_on_the_host_network(tmp_path: Path, network: str | None,
                                                                     reach: bool) -> None:
    backend = DockerBackend(tmp_path, options=DockerRuntime(owner="t", network=network))
    assert tasks_reach_controller("docker", backend) is reach


def test_process_tasks_reach_the_controller(tmp_path: Path) -> None:
    assert tasks_reach_controller("process", ProcessBackend(tmp_path)) is True
