"""The two planes in two processes: `shiftlab proxy` and a controller-only
`shiftlab up` (controller.proxyAdminUrl). A controller killed with SIGKILL
mid-canary leaves the load balancer serving; restarted, it finishes the
deployment with the tasks it left, none orphaned or doubled. A proxy
restarted mid-deployment gets the recorded weights back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from controller.backends import procinfo
from controller.stack import proxy_mismatches
from controller.strategies import weights
from proxy.config import load_balancer_from_dict
from shiftlab.configfile import ConfigError
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.settings import load_settings
from tests.controller.support import config, prod_url
from tests.helpers import eventually, free_port, lb_config

MARK = "SHIFTLAB_SPLIT_TEST"
FINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


# -- configuration -------------------------------------------------------------------


def _settings_data(**controller: Any) -> dict[str, Any]:
    data = config(Path("/nonexistent"), {"strategy": "CANARY"})
    data["controller"].update(controller)
    return data


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9090", "127.0.0.1:9090", "http://127.0.0.1:99999",
                                 "http://127.0.0.1:9090/?x=1"])
def test_proxy_admin_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_settings_data(proxyAdminUrl=url))
    assert exc.value.problems[0].startswith("controller.proxyAdminUrl: "), exc.value.problems


def test_proxy_admin_url_beyond_loopback_needs_the_proxys_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    with pytest.raises(ConfigError) as exc:
        load_settings(_settings_data(proxyAdminUrl="http://10.1.2.3:9090"))
    assert exc.value.problems == [
        "controller.proxyAdminUrl: 10.1.2.3 is not a loopback address; a load balancer there is reached only "
        "with a token (set loadBalancer.Admin.Token or the SHIFTLAB_TOKEN environment variable, as for the proxy)"]
    data = _settings_data(proxyAdminUrl="http://10.1.2.3:9090/")
    data["loadBalancer"]["Admin"]["Token"] = "s3cret-token-for-tests"
    assert load_settings(data).controller.proxyAdminUrl == "http://10.1.2.3:9090"
    monkeypatch.setenv("SHIFTLAB_TOKEN", "s3cret-token-for-tests")
    assert load_settings(_settings_data(proxyAdminUrl="http://10.1.2.3:9090")).controller.proxyAdminUrl
    for loopback in ("http://127.0.0.1:9090", "http://localhost:9090", "http://[::1]:9090"):
        monkeypatch.delenv("SHIFTLAB_TOKEN")
        assert load_settings(_settings_data(proxyAdminUrl=loopback)).controller.proxyAdminUrl == loopback
        monkeypatch.setenv("SHIFTLAB_TOKEN", "s3cret-token-for-tests")


def test_up_checks_the_option_as_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.controller.support import run_cli

    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, {"strategy": "CANARY"})))
    res = run_cli("up", "-c", str(path), "--proxy-admin-url", "http://10.1.2.3:9090", timeout=60)
    assert res.returncode == 2, res.stderr
    assert "controller.proxyAdminUrl: 10.1.2.3 is not a loopback address" in res.stderr
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_proxy_running_another_load_balancer_is_named_field_by_field() -> None:
    conf = load_balancer_from_dict(lb_config(8080, 8081))
    state = {"TimeScale": 1, "Listeners": [{"Name": "prod", "Port": 8080}, {"Name": "test", "Port": 8081}],
             "TargetGroups": [{"TargetGroupName": "blue"}, {"TargetGroupName": "green"}]}
    assert proxy_mismatches(conf, 1.0, state, "URL") == []
    moved = [{"Name": "test", "Port": 9999}]
    assert proxy_mismatches(conf, 60.0, {**state, "Listeners": moved,
                                         "TargetGroups": state["TargetGroups"][:1]}, "URL") == [
        "loadBalancer.Listeners[0]: 'prod' is not a listener of the load balancer at URL (it has test) "
        "(run `shiftlab proxy` and `shiftlab up` with the same file and timeScale)",
        "loadBalancer.Listeners[1].Port: 8081, but the load balancer at URL listens on 9999 for 'test' "
        "(run `shiftlab proxy` and `shiftlab up` with the same file and timeScale)",
        "loadBalancer.TargetGroups[1]: 'green' is not a target group of the load balancer at URL "
        "(run `shiftlab proxy` and `shiftlab up` with the same file and timeScale)",
        "timeScale: 60, but the load balancer at URL runs at 1 "
        "(run `shiftlab proxy` and `shiftlab up` with the same file and timeScale)",
    ]


# -- processes -----------------------------------------------------------------------


def task_pids(marker: str) -> set[int]:
    """Every live process started as a task of this test (found by the
    environment its task definition gives it, whoever its parent is)."""
    needle = f"{MARK}={marker}".encode()
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(entry.name)
        if needle in env and not procinfo.is_zombie(pid):
            out.add(pid)
    return out


class Processes:
    """`shiftlab` subprocesses of one test; all stopped at the end, pass or fail."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        n = sum(1 for label, _ in self.started if label == name)
        with open(self.tmp_path / f"{name}{n + 1}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "shiftlab", *args], stdout=log, stderr=log)
        self.started.append((name, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp_path.glob("*.log")))

    def stop_all(self) -> None:
        # Controllers first (Ctrl-C: they deregister and stop their tasks), then proxies.
        for kind in ("up", "proxy"):
            for name, proc in self.started:
                if name == kind and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    marker = uuid.uuid4().hex
    procs.marker = marker  # type: ignore[attr-defined]
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.logs())  # shown when the test failed
        for pid in task_pids(marker):  # only if the test failed before its own checks
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def split_config(tmp_path: Path, marker: str, deployment: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    data = config(tmp_path, deployment)
    data["loadBalancer"]["Admin"]["Port"] = free_port()
    data["controller"]["port"] = free_port()
    data["service"]["taskDefinition"]["environment"] = {MARK: marker}
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


class Api:
    """The controller API and the proxy's admin API, without blocking the loop."""

    def __init__(self, session: aiohttp.ClientSession, data: dict[str, Any]) -> None:
        self.session = session
        self.controller = f"http://127.0.0.1:{data['controller']['port']}"
        self.admin = f"http://127.0.0.1:{data['loadBalancer']['Admin']['Port']}"

    async def get(self, url: str) -> Any:
        async with self.session.get(url) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def answers(self, url: str) -> bool:
        try:
            await self.get(url)
            return True
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def serving(self, url: str, proc: subprocess.Popen[bytes]) -> bool:
        """`url` answers; a process that exited instead fails the test at once."""
        assert proc.poll() is None, f"pid {proc.pid} exited with {proc.returncode}"
        return await self.answers(url)

    async def deployment(self, dep_id: str) -> Any:
        return await self.get(f"{self.controller}/api/deployments/{dep_id}")

    async def weights(self, rule: str) -> dict[str, int]:
        listener, _, which = rule.partition("/")
        data = await self.get(f"{self.admin}/admin/listeners/{listener}/rules/{which}")
        fwd = next(a for a in data["Actions"] if a["Type"] == "forward")["ForwardConfig"]
        return {t["TargetGroupArn"]: t["Weight"] for t in fwd["TargetGroups"]}

    async def health(self, group: str) -> dict[str, str]:
        data = await self.get(f"{self.admin}/admin/target-groups/{group}")
        return {t["Id"]: t["TargetHealth"]["State"] for t in data["TargetHealthDescriptions"]}

    async def healthy(self, group: str, n: int) -> bool:
        states = list((await self.health(group)).values())
        return len(states) == n and all(s == "healthy" for s in states)


async def sample_pids(marker: str, stop: asyncio.Event, seen: set[int], counts: list[int]) -> None:
    """Which task processes exist, ten times a second, until `stop` (bounded: 5 minutes)."""
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        pids = task_pids(marker)
        seen |= pids
        counts.append(len(pids))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    await eventually(lambda: proc.poll() is not None, timeout=timeout, interval=0.05, what=f"pid {proc.pid} to exit")
    code = proc.returncode
    assert code is not None
    return code


# -- a controller killed mid-canary ----------------------------------------------------


async def test_controller_sigkilled_mid_canary_bake_while_the_proxy_serves(
        tmp_path: Path, processes: Processes) -> None:
    marker: str = processes.marker  # type: ignore[attr-defined]
    path, data = split_config(tmp_path, marker, {
        "strategy": "CANARY", "bakeTimeInMinutes": 1,
        "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 10}})
    up_args = ("up", "-c", str(path), "--proxy-admin-url", f"http://127.0.0.1:{data['loadBalancer']['Admin']['Port']}")
    stop = asyncio.Event()
    load = LoadResult()
    seen: set[int] = set()
    counts: list[int] = []
    load_task: asyncio.Task[LoadResult] | None = None
    sampler = asyncio.create_task(sample_pids(marker, stop, seen, counts))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        try:
            proxy = processes.start("proxy", "proxy", "-c", str(path))
            await eventually(lambda: api.serving(f"{api.admin}/admin/healthz", proxy), timeout=30, what="the proxy")
            controller = processes.start("up", *up_args)
            await eventually(lambda: api.serving(f"{api.controller}/api/healthz", controller), timeout=30,
                             what="the controller")
            await eventually(lambda: api.healthy("blue", 2), timeout=30, what="blue healthy")
            # One bounded load for the whole test: at most 120 s, at most 40 x 120 requests.
            load_task = asyncio.create_task(run_load(prod_url(data), 40, 120, stop=stop, result=load,
                                                     max_requests=40 * 120))
            async with session.post(f"{api.controller}/api/deployments",
                                    json={"taskDefinition": {"env": {"GREETING": "v2"}}}) as resp:
                assert resp.status < 300, await resp.text()
                dep_id = (await resp.json())["shiftlab"]["id"]

            async def in_canary_bake() -> bool:
                d = await api.deployment(dep_id)
                return d["lifecycleStage"] == "PRODUCTION_TRAFFIC_SHIFT" and \
                    d["shiftlab"]["productionTrafficWeight"] == 30
            await eventually(in_canary_bake, timeout=40, what="the canary step's bake")
            tasks = (await api.get(f"{api.controller}/api/tasks"))["tasks"]
            running = {t["pid"]: t for t in tasks if t["lastStatus"] == "RUNNING"}
            green = {pid for pid, t in running.items() if t["revision"] == "2"}
            blue = set(running) - green
            assert len(blue) == 2 and len(green) == 2, tasks
            assert task_pids(marker) == set(running)

            controller.send_signal(signal.SIGKILL)
            assert await wait_exit(controller) == -signal.SIGKILL
            ok_at_kill, failed_at_kill = load.statuses[200], load.failed
            # Nobody controls anything now: the load balancer serves on, at the weights in force.
            await eventually(lambda: load.statuses[200] >= ok_at_kill + 60, timeout=20,
                             what="60 answers with the controller dead")
            assert load.failed == failed_at_kill == 0, load.summary()
            assert await api.weights("prod/default") == {"blue": 70, "green": 30}
            assert task_pids(marker) == set(running)
            assert not await api.answers(f"{api.controller}/api/healthz")

            controller = processes.start("up", *up_args)
            await eventually(lambda: api.serving(f"{api.controller}/api/healthz", controller), timeout=30,
                             what="the restarted controller")

            async def finished() -> Any:
                d = await api.deployment(dep_id)
                return d if d["status"] in FINAL else None
            d = await eventually(finished, timeout=60, interval=0.1, what="the deployment's end")
            stop.set()
            await load_task
        finally:
            stop.set()
            if load_task is not None and not load_task.done():
                load_task.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        # README's rule: production traffic had moved to green (30 %), so it resumed.
        assert d["status"] == "SUCCESSFUL", (d["statusReason"], processes.logs())
        messages = [e["message"] for e in d["events"]]
        assert any("controller restarted during PRODUCTION_TRAFFIC_SHIFT" in m for m in messages), messages
        assert await api.weights("prod/default") == {"blue": 0, "green": 1}
        # The green tasks were adopted and now serve; blue stopped; nothing was started twice.
        tasks = (await api.get(f"{api.controller}/api/tasks"))["tasks"]
        assert {t["pid"] for t in tasks if t["lastStatus"] == "RUNNING"} == green
        assert task_pids(marker) == green
        assert seen == blue | green and max(counts) <= 4, (seen, max(counts))
    summary = load.summary()
    assert load.failed == 0 and load.connection_errors == 0, summary
    assert load.by_group["blue"] > 0 and load.by_group["green"] > 0, summary
    # Ctrl-C on the controller stops what it started; the proxy has nothing left to send to.
    processes.stop_all()
    assert task_pids(marker) == set()


# -- a proxy restarted mid-deployment ----------------------------------------------------


async def test_proxy_restarted_mid_canary_gets_the_recorded_weights_back(
        tmp_path: Path, processes: Processes) -> None:
    marker: str = processes.marker  # type: ignore[attr-defined]
    path, data = split_config(tmp_path, marker, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 10}})
    # This time from the file's controller section rather than the option.
    data["controller"]["proxyAdminUrl"] = f"http://127.0.0.1:{data['loadBalancer']['Admin']['Port']}"
    path.write_text(yaml.safe_dump(data))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        proxy = processes.start("proxy", "proxy", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.admin}/admin/healthz", proxy), timeout=30, what="the proxy")
        controller = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", controller), timeout=30,
                         what="the controller")
        async with session.post(f"{api.controller}/api/deployments",
                                json={"taskDefinition": {"env": {"GREETING": "v2"}}}) as resp:
            assert resp.status < 300, await resp.text()
            dep_id = (await resp.json())["shiftlab"]["id"]

        async def canary_step() -> Any:
            d = await api.deployment(dep_id)
            return d if d["shiftlab"]["productionTrafficWeight"] == 30 else None
        d = await eventually(canary_step, timeout=40, what="the canary step")
        test_percent = d["shiftlab"]["testTrafficWeight"]

        proxy.send_signal(signal.SIGTERM)
        assert await wait_exit(proxy) == 0
        proxy = processes.start("proxy", "proxy", "-c", str(path))  # same file: same ports
        await eventually(lambda: api.serving(f"{api.admin}/admin/healthz", proxy), timeout=30, what="the proxy again")

        want_test = dict(zip(("blue", "green"), weights(test_percent), strict=True))

        async def restored() -> bool:
            targets = {**await api.health("blue"), **await api.health("green")}
            return (await api.weights("prod/default") == {"blue": 70, "green": 30}
                    and await api.weights("prod/test") == want_test
                    and await api.weights("test/default") == want_test and len(targets) == 4)
        # The file says 100/0 and no targets: only the controller can have put these back.
        await eventually(restored, timeout=15, what="the recorded weights and targets back on the new proxy")
        d = await api.deployment(dep_id)
        assert d["status"] == "IN_PROGRESS", d["statusReason"]

        async def finished() -> Any:
            d = await api.deployment(dep_id)
            return d if d["status"] in FINAL else None
        d = await eventually(finished, timeout=60, interval=0.1, what="the deployment's end")
        assert d["status"] == "SUCCESSFUL", (d["statusReason"], processes.logs())
        assert any("load balancer restarted" in e["message"] for e in d["events"])
        assert await api.weights("prod/default") == {"blue": 0, "green": 1}

        # Ctrl-C on the controller alone: its tasks leave the target groups before they stop.
        controller.send_signal(signal.SIGINT)
        assert await wait_exit(controller, timeout=30) == 0

        async def no_targets() -> bool:
            return await api.health("blue") == {} and await api.health("green") == {}
        await eventually(no_targets, timeout=10, what="no targets left on the proxy")
        assert proxy.poll() is None
    assert task_pids(marker) == set()


async def test_a_rehearsal_runs_its_own_proxy_even_when_the_file_names_one(tmp_path: Path) -> None:
    from shiftlab.rehearse import rehearse
    from shiftlab.settings import on_free_ports

    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["controller"]["proxyAdminUrl"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert "proxyAdminUrl" not in on_free_ports(yaml.safe_load(yaml.safe_dump(data)))["controller"]
    outcome = await rehearse(load_settings(data), {"env": {"GREETING": "v2"}}, load_rps=20,
                             state_dir=tmp_path / "rehearsal", timeout=60)
    assert outcome.ok, outcome.deployment["statusReason"]
    assert outcome.load is not None and outcome.load.failed == 0 and outcome.load.statuses[200] > 0
