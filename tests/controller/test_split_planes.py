"""The two planes in two processes: `shiftlab proxy` and a controller-only
`shiftlab up` (controller.proxyAdminUrl). A controller killed with SIGKILL
mid-canary leaves the load balancer serving; restarted, it finishes the
deployment with the tasks it left, none orphaned or doubled. A proxy
restarted mid-deployment gets the recorded weights back."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.controller import eventlog
from shiftlab.controller.strategies import weights
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.proxy.config import load_balancer_from_dict
from shiftlab.settings import load_settings
from shiftlab.stack import proxy_mismatches
from tests.controller.subprocesses import (
    FINAL,
    Api,
    Processes,
    sample_pids,
    subprocess_config,
    task_pids,
    wait_exit,
)
from tests.controller.support import config, prod_url
from tests.helpers import eventually, free_port, lb_config, logged

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
    state: dict[str, Any] = {
        "TimeScale": 1, "Listeners": [{"Name": "prod", "Port": 8080}, {"Name": "test", "Port": 8081}],
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


# -- a controller killed mid-canary ----------------------------------------------------


async def test_controller_sigkilled_mid_canary_bake_while_the_proxy_serves(
        tmp_path: Path, processes: Processes) -> None:
    marker = processes.marker
    path, data = subprocess_config(tmp_path, marker, {
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
        restarts = logged(d["events"], eventlog.RECOVERY_RESTARTED)
        assert [r["stage"] for r in restarts] == ["PRODUCTION_TRAFFIC_SHIFT"], d["events"]
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
    marker = processes.marker
    path, data = subprocess_config(tmp_path, marker, {
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
        assert logged(d["events"], eventlog.RECOVERY_WEIGHTS_RESET)
        assert logged(d["events"], eventlog.RECOVERY_TARGETS_REGISTERED)
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
