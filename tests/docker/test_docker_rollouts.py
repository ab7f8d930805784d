"""Whole rollouts with the Docker backend: `shiftlab rehearse` promoting a
good image and rolling back a bad one, the circuit breaker tripped by a
container killed mid-rollout, and a controller killed and restarted that
adopts its containers. Traffic goes only to 127.0.0.1."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.client import ApiError, Client
from shiftlab.controller import eventlog
from shiftlab.controller.backends.docker import DockerBackend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.settings import load_settings
from shiftlab.stack import Stack
from tests.controller.support import config, green_alarm, prod_url, weight_steps, write_on_free_ports
from tests.docker.conftest import REPO, SAMPLE_IMAGE, owned
from tests.helpers import eventually, kill_left_over_proxies, logged

pytestmark = pytest.mark.docker

FINAL = ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED")


def docker_config(tmp_path: Path, deployment: dict[str, Any], alarms: list[dict[str, Any]] | None = None
                  ) -> dict[str, Any]:
    data = config(tmp_path, deployment, alarms)
    data["service"]["taskDefinition"] = {"image": SAMPLE_IMAGE, "containerPort": 8080, "stopTimeout": 5}
    data["controller"].update({"backend": "docker", "taskStartTimeoutSeconds": 60})
    return data


class ContainerWatch:
    """Polls the engine (in a thread) for an owner's containers while a test
    runs: which ones were seen, of which colour and image."""

    def __init__(self, client: Any, owner: str) -> None:
        self.client, self.owner = client, owner
        self.seen: dict[str, tuple[str, str]] = {}  # container id -> (colour, image)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for c in owned(self.client, self.owner):
                self.seen.setdefault(c.id, (c.labels["io.shiftlab.colour"], c.attrs["Config"]["Image"]))

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def of(self, colour: str) -> list[tuple[str, str]]:
        return [(cid, image) for cid, (c, image) in self.seen.items() if c == colour]


def rehearse(path: Path, owner: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIFTLAB_DOCKER_OWNER": owner}
    return subprocess.run([sys.executable, "-m", "shiftlab", "rehearse", "-c", str(path), "--backend", "docker",
                           "--json", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_rehearse_promotes_a_good_image_by_a_linear_rollout(tmp_path, owners, docker_client, test_images) -> None:
    owner = owners()
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(docker_config(tmp_path, {
        "strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 1},
        "bakeTimeInMinutes": 1})))
    with ContainerWatch(docker_client, owner) as watch:
        done = rehearse(path, owner, "--image", test_images["good"], "--load-rps", "30")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "SUCCESSFUL"
    assert outcome["stages"][-1] == "CLEAN_UP"
    load = outcome["load"]
    assert load["connectionErrors"] == 0 and load["5xxByGroup"] == {}, load
    assert set(load["byGroup"]) == {"blue", "green"}
    # Blue ran the service's image, green the new one; two of each, none replaced.
    assert sorted(image for _, image in watch.of("blue")) == [SAMPLE_IMAGE] * 2
    assert sorted(image for _, image in watch.of("green")) == [test_images["good"]] * 2
    assert owned(docker_client, owner) == []  # rehearse leaves nothing running


def test_rehearse_rolls_back_a_bad_image_on_a_canary_alarm(tmp_path, owners, docker_client, test_images) -> None:
    owner = owners()
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(docker_config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])))
    with ContainerWatch(docker_client, owner) as watch:
        done = rehearse(path, owner, "--image", test_images["bad"], "--load-rps", "30")
    assert done.returncode == 1, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "ROLLBACK_SUCCESSFUL" and outcome["triggeredAlarms"] == ["green-5xx"]
    assert outcome["secondsFromFirst5xxToRollback"] is not None
    load = outcome["load"]
    # Blue served throughout: every 5xx came from green, no request failed to connect,
    # and the same two blue containers ran from start to end.
    assert set(load["5xxByGroup"]) == {"green"} and load["connectionErrors"] == 0, load
    assert sum(n for s, n in load["statuses"].items() if int(s) >= 500) == load["5xxByGroup"]["green"]
    assert load["byGroup"]["blue"] > load["byGroup"]["green"]
    assert len(watch.of("blue")) == 2
    assert {image for _, image in watch.of("green")} == {test_images["bad"]}
    assert owned(docker_client, owner) == []


async def test_a_container_killed_mid_rollout_trips_the_circuit_breaker(tmp_path, owners, docker_client,
                                                                      test_images) -> None:
    owner = owners()
    data = docker_config(tmp_path, {
        "strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 30},
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    backend = DockerBackend(tmp_path / "state", start_timeout=60, options=DockerRuntime(owner=owner))
    stack = Stack(load_settings(copy.deepcopy(data)), backend=backend)
    await stack.start()
    try:
        ctl = stack.controller
        assert ctl is not None
        blue_before = {t.task_id for t in ctl.sets["blue"].running()}
        deployment = asyncio.create_task(_deploy(stack, data, test_images["good"]))
        await eventually(lambda: ctl.current is not None and ctl.current.production_percent == 10, timeout=60,
                         what="the first linear step")
        # Kill green's containers (the scheduler replaces them) until the breaker trips.
        killed = 0
        deadline = time.monotonic() + 90
        while not deployment.done():
            assert time.monotonic() < deadline, "the circuit breaker never tripped"
            for c in owned(docker_client, owner, colour="green"):
                if c.status == "running":
                    await asyncio.to_thread(c.kill)
                    killed += 1
            await asyncio.sleep(0.5)
        final, load = deployment.result()
        assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
        assert final.circuit_breaker_status == "TRIGGERED" and final.failure_count >= 3
        assert killed >= 3
        assert weight_steps(stack, final.id) == [10]
        assert stack.router is not None
        assert await stack.router.weights("prod/default") == {"blue": 1, "green": 0}
        assert {t.task_id for t in ctl.sets["blue"].running()} == blue_before
        assert load.by_group["blue"] > 0
        # A replacement whose start began before the rollback stopped green must not run on.
        await eventually(lambda: not owned(docker_client, owner, colour="green"), timeout=10,
                         what="green's containers to be removed after the rollback")
        assert ctl.sets[ctl.alternate].tasks == {}
    finally:
        await stack.stop()
    assert owned(docker_client, owner) == []


async def _deploy(stack: Stack, data: dict[str, Any], image: str) -> Any:
    ctl = stack.controller
    assert ctl is not None
    stop = asyncio.Event()
    result = LoadResult()
    load = asyncio.create_task(run_load(prod_url(data), 20, 180, stop=stop, result=result))
    try:
        d = ctl.create_deployment({"image": image})
        final = await ctl.wait_finished(d.id, timeout=180)
    finally:
        stop.set()
        await load
    return final, result


def _wait_api(client: Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/api/healthz")
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_controller_killed_mid_canary_adopts_its_containers_when_restarted(tmp_path, owners, docker_client,
                                                                            test_images) -> None:
    owner = owners()
    data = docker_config(tmp_path, {"strategy": "CANARY", "bakeTimeInMinutes": 1,
                                    "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 6}})
    path, api_url = write_on_free_ports(tmp_path, data)
    client = Client(api_url)
    env = {**os.environ, "SHIFTLAB_DOCKER_OWNER": owner}

    def up(n: int) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"up{n}.log", "wb") as out:  # the child keeps its own descriptor
            return subprocess.Popen([sys.executable, "-m", "shiftlab", "up", "-c", str(path)], stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=REPO)

    first = up(1)
    second = None
    try:
        _wait_api(client)
        d = client.post("/api/deployments", {"taskDefinition": {"image": test_images["good"]}})
        dep_id = d["shiftlab"]["id"]
        deadline = time.monotonic() + 60
        while client.get("/api/deployments/current")["shiftlab"]["productionTrafficWeight"] != 30:
            assert time.monotonic() < deadline, "the canary step never happened"
            time.sleep(0.05)
        before = {t["taskId"] for t in client.get("/api/tasks")["tasks"] if t["lastStatus"] == "RUNNING"}
        assert len(before) == 4  # 2 blue, 2 green
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # The containers serve on while no controller runs.
        running = {c.labels["io.shiftlab.task"] for c in owned(docker_client, owner) if c.status == "running"}
        assert running == before
        second = up(2)
        _wait_api(client)
        deadline = time.monotonic() + 90
        while (status := client.get(f"/api/deployments/{dep_id}")["status"]) not in FINAL:
            assert time.monotonic() < deadline, f"deployment stuck in {status}"
            time.sleep(0.1)
        assert status == "SUCCESSFUL"
        events = client.get(f"/api/deployments/{dep_id}")["events"]
        assert [r["stage"] for r in logged(events, eventlog.RECOVERY_RESTARTED)] == ["PRODUCTION_TRAFFIC_SHIFT"], events
        now = {t["taskId"] for t in client.get("/api/tasks")["tasks"] if t["lastStatus"] == "RUNNING"}
        # Green's containers were adopted, not started twice; blue's are gone.
        assert len(now) == 2 and now <= before
        assert {c.labels["io.shiftlab.task"] for c in owned(docker_client, owner)} == now
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(60)
        left = kill_left_over_proxies(tmp_path)  # the killed `up`'s load balancer, had none adopted it
    # Ctrl-C stopped and removed everything, started before or after the crash, the load balancer too.
    assert owned(docker_client, owner) == [] and left == []
