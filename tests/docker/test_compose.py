"""compose/docker-compose.yml for real: the stack comes up, a deployment
started from the host runs through it (tasks as containers on the stack's
network), and `down` leaves no container, network or volume behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from shiftlab.client import ApiError, Client
from tests.docker.conftest import REPO, REQUIRE, SESSION, owned, remove_owned
from tests.helpers import free_port

pytestmark = pytest.mark.docker

COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"
FINAL = ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED")


def compose_command() -> list[str] | None:
    """`docker compose` (v2) if the engine's CLI has it, else `docker-compose` (v1)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@dataclass
class ComposeStack:
    command: list[str]
    env: dict[str, str]
    project: str
    network: str
    owner: str
    prod_port: int
    api: Client

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, "-f", str(COMPOSE_FILE), "-p", self.project, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def compose_stack(docker_client: Any) -> Iterator[ComposeStack]:
    command = compose_command()
    if command is None:
        message = "neither `docker compose` nor `docker-compose` is installed"
        if REQUIRE:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    project = f"shiftlabtest{SESSION}{uuid.uuid4().hex[:6]}"
    token = uuid.uuid4().hex
    ports = {"SHIFTLAB_PROD_PORT": free_port(), "SHIFTLAB_TEST_PORT": free_port(), "SHIFTLAB_API_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "SHIFTLAB_TOKEN": token,
           "SHIFTLAB_NETWORK": f"{project}-net", "SHIFTLAB_DOCKER_OWNER": f"{project}-tasks"}
    stack = ComposeStack(command, env, project, env["SHIFTLAB_NETWORK"], env["SHIFTLAB_DOCKER_OWNER"],
                         ports["SHIFTLAB_PROD_PORT"],
                         Client(f"http://127.0.0.1:{ports['SHIFTLAB_API_PORT']}", token))
    try:
        yield stack
    finally:
        # Whatever the test got to: the stack, its task containers, its network.
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "60")
        remove_owned(docker_client, stack.owner)
        for net in docker_client.networks.list(names=[stack.network]):
            net.remove()


def _wait(what: str, check: Any, timeout: float = 90, stack: ComposeStack | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (ApiError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            logs = ""
            if stack is not None:  # what the containers said, to see why
                done = stack.run("logs", "--no-color", "--tail", "60", timeout=60)
                logs = f"\n{stack.run('ps', '-a', timeout=60).stdout}{done.stdout}{done.stderr}"
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{logs}")
        time.sleep(0.2)


def _cli(s: ComposeStack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "shiftlab", *args], env=s.env, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _answer(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        doc: dict[str, Any] = json.load(r)
        return doc


def _scrape_from_the_network(docker_client: Any, s: ComposeStack, token: str | None) -> str:
    """What the `observability` profile's Prometheus gets: prometheus.yml's
    target and path, fetched from another container on the stack's network."""
    job = yaml.safe_load((REPO / "compose" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]
    url = f"http://{job['static_configs'][0]['targets'][0]}{job['metrics_path']}"
    image = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["shiftlab"]["image"]
    image = image.replace("${SHIFTLAB_TAG:-local}", s.env.get("SHIFTLAB_TAG", "local"))
    script = ("import sys, urllib.request, urllib.error\n"
              "h = {'Authorization': 'Bearer ' + sys.argv[2]} if sys.argv[2] else {}\n"
              "try:\n    print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=h), timeout=10)"
              ".read().decode())\n"
              "except urllib.error.HTTPError as e:\n    print('HTTP', e.code)\n")
    out: bytes = docker_client.containers.run(image, ["-c", script, url, token or ""], entrypoint="python3",
                                              network=s.network, remove=True)
    return out.decode()


def test_the_compose_stack_runs_a_deployment_and_down_leaves_nothing(compose_stack: ComposeStack, docker_client,
                                                                     test_images) -> None:
    s = compose_stack
    up = s.run("up", "-d")
    assert up.returncode == 0, up.stderr
    _wait("the controller API", lambda: s.api.get("/api/healthz"), stack=s)
    first = _wait("blue to answer", lambda: _answer(s.prod_port), stack=s)
    assert (first["colour"], first["revision"]) == ("blue", "1")
    # Tasks are containers on the stack's network, reached by name, published nowhere.
    tasks = owned(docker_client, s.owner)
    assert len(tasks) == 2
    for c in tasks:
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [s.network]
        assert not any(c.attrs["NetworkSettings"]["Ports"].values())
    # Prometheus (profile `observability`) reaches the load balancer's
    # /metrics over the network, with the stack's token and only with it.
    assert "shiftlab_healthy_host_count{" in _scrape_from_the_network(docker_client, s, s.env["SHIFTLAB_TOKEN"])
    assert _scrape_from_the_network(docker_client, s, None).strip() == "HTTP 401"

    _cli(s, "deploy", "--url", s.api.base, "--image", test_images["good"], "--strategy", "BLUE_GREEN")
    status = _wait("the deployment to end", lambda: (
        d := s.api.get("/api/deployments/latest"))["status"] in FINAL and d["status"], timeout=120)
    assert status == "SUCCESSFUL", s.run("logs").stdout[-3000:]
    after = _answer(s.prod_port)
    assert (after["colour"], after["revision"]) == ("green", "2")
    images = {c.labels["io.shiftlab.revision"]: c.attrs["Config"]["Image"] for c in owned(docker_client, s.owner)}
    assert images == {"2": test_images["good"]}
    # `shiftlab logs` from the host: the task list, then one task's output.
    listed = _cli(s, "logs", "--url", s.api.base)
    green_task = after["task"]
    assert green_task in listed and "revision 2" in listed
    assert "listening on 0.0.0.0:8080" in _cli(s, "logs", "--url", s.api.base, green_task)

    down = s.run("down", "--timeout", "60")
    assert down.returncode == 0, down.stderr
    label = f"com.docker.compose.project={s.project}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert owned(docker_client, s.owner) == []  # the controller removed its task containers on the way out
    assert docker_client.networks.list(names=[s.network]) == []
    assert docker_client.volumes.list(filters={"label": label}) == []
