"""`shiftlab up` runs the load balancer in a process of its own: a controller
killed with SIGKILL leaves it serving (no request fails, as on AWS, where a
crashed deployment controller never takes the ALB down), and `up` restarted
adopts it. Ctrl-C stops what `up` started, and only that."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shiftlab.controller import eventlog
from shiftlab.controller.backends import procinfo
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.proxyprocess import PIDFILE, read_pidfile
from tests.controller.subprocesses import FINAL, Api, Processes, subprocess_config, task_pids, wait_exit
from tests.controller.support import prod_url
from tests.helpers import eventually, free_port, logged


def proxy_pids(config_path: Path) -> set[int]:
    """Live `shiftlab proxy` processes of this config file, whoever started them."""
    wanted = ["shiftlab", "proxy", "-c", str(config_path)]
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = procinfo.cmdline(int(entry.name)) or []
        if any(argv[i:i + len(wanted)] == wanted for i in range(len(argv))) and not procinfo.is_zombie(
                int(entry.name)):
            out.add(int(entry.name))
    return out


async def test_up_killed_mid_canary_under_load_fails_no_request_and_adopts_its_proxy(
        tmp_path: Path, processes: Processes) -> None:
    marker = processes.marker
    path, data = subprocess_config(tmp_path, marker, {
        "strategy": "CANARY", "bakeTimeInMinutes": 1,
        "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 10}})
    stop = asyncio.Event()
    load = LoadResult()
    load_task: asyncio.Task[LoadResult] | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        try:
            up = processes.start("up", "up", "-c", str(path))
            await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30,
                             what="the controller")
            # One bounded load for the whole test: at most 90 s, at most 40 x 90 requests.
            load_task = asyncio.create_task(run_load(prod_url(data), 40, 90, stop=stop, result=load,
                                                     max_requests=40 * 90))
            async with session.post(f"{api.controller}/api/deployments",
                                    json={"taskDefinition": {"env": {"GREETING": "v2"}}}) as resp:
                assert resp.status < 300, await resp.text()
                dep_id = (await resp.json())["shiftlab"]["id"]

            async def in_canary_bake() -> bool:
                d = await api.deployment(dep_id)
                return d["lifecycleStage"] == "PRODUCTION_TRAFFIC_SHIFT" and \
                    d["shiftlab"]["productionTrafficWeight"] == 30
            await eventually(in_canary_bake, timeout=40, what="the canary step's bake")
            proxies = proxy_pids(path)
            tasks = task_pids(marker)

            up.send_signal(signal.SIGKILL)
            assert await wait_exit(up) == -signal.SIGKILL
            ok_at_kill = load.statuses[200]
            # No controller now: the load balancer serves on at the weights in force.
            await eventually(lambda: load.statuses[200] >= ok_at_kill + 40 or load.failed, timeout=20,
                             what="40 answers with the controller dead")
            assert load.failed == 0, load.summary()

            up = processes.start("up", "up", "-c", str(path))
            await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30,
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
        summary = load.summary()
        assert load.failed == 0 and load.connection_errors == 0, summary
        assert load.by_group["blue"] > 0 and load.by_group["green"] > 0, summary
        # Crash recovery as the README says: traffic had moved (30 %), so it resumed and finished.
        assert d["status"] == "SUCCESSFUL", (d["statusReason"], processes.logs())
        assert [r["stage"] for r in logged(d["events"], eventlog.RECOVERY_RESTARTED)] == ["PRODUCTION_TRAFFIC_SHIFT"]
        # The same load balancer process throughout: adopted, not started twice.
        assert len(proxies) == 1 and proxy_pids(path) == proxies
        assert task_pids(marker) <= tasks

        # Ctrl-C on the restarted `up` stops the load balancer it adopted and every task.
        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
    assert proxy_pids(path) == set()
    assert task_pids(marker) == set()


async def serves_blue(session: aiohttp.ClientSession, data: dict[str, Any]) -> bool:
    """The production listener answers 200 from blue (its listeners open at
    once, with a 503 until blue's targets are registered)."""
    try:
        async with session.get(prod_url(data)) as resp:
            return resp.status == 200 and resp.headers.get("X-Shiftlab-Target-Group") == "blue"
    except (aiohttp.ClientError, TimeoutError):
        return False


def run_up(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`shiftlab up` expected to refuse: it must exit by itself."""
    return subprocess.run([sys.executable, "-m", "shiftlab", "up", "-c", str(path), *args], capture_output=True,
                          text=True, timeout=60)


async def test_ctrl_c_on_up_stops_the_proxy_it_started_and_every_task(tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        await eventually(lambda: serves_blue(session, data), timeout=10, what="blue behind the production listener")
    rec = read_pidfile(state_dir)
    assert rec is not None and rec.alive() and proxy_pids(path) == {rec.pid}
    assert rec.admin_url == api.admin
    assert stat.S_IMODE((state_dir / PIDFILE).stat().st_mode) == 0o600
    # A session of its own: a terminal's Ctrl-C reaches `up` alone, which stops the proxy last.
    assert os.getsid(rec.pid) == rec.pid != os.getsid(up.pid)
    tasks = task_pids(processes.marker)
    assert len(tasks) == 2
    # The terminal says where the load balancer listens and where its log is.
    out = (tmp_path / "up1.log").read_text()
    prod = data["loadBalancer"]["Listeners"][0]["Port"]
    assert f"prod on 127.0.0.1:{prod}" in out
    assert f"started by this `up`: pid {rec.pid}, log {state_dir / 'proxy.log'}" in out
    assert "load balancer my-load-balancer" in (state_dir / "proxy.log").read_text()

    up.send_signal(signal.SIGINT)
    assert await wait_exit(up, timeout=30) == 0
    assert not rec.alive() and proxy_pids(path) == set()
    assert task_pids(processes.marker) == set()
    assert read_pidfile(state_dir) is None


async def test_a_proxy_the_user_started_is_adopted_and_runs_on_after_ctrl_c(
        tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        proxy = processes.start("proxy", "proxy", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.admin}/admin/healthz", proxy), timeout=30, what="the proxy")
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        await eventually(lambda: serves_blue(session, data), timeout=10, what="blue behind the production listener")
        assert proxy_pids(path) == {proxy.pid}  # adopted: no second one
        assert read_pidfile(state_dir) is None  # not ours to stop
        assert "it runs on when `up` stops" in (tmp_path / "up1.log").read_text()

        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
        assert proxy.poll() is None and proxy_pids(path) == {proxy.pid}
        # Its targets left before the tasks stopped.
        assert await api.health("blue") == {} and await api.health("green") == {}
    assert task_pids(processes.marker) == set()


async def test_a_second_up_for_the_same_file_or_state_directory_is_refused_and_changes_nothing(
        tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        tasks, pidfile = task_pids(processes.marker), (state_dir / PIDFILE).read_bytes()
        proxies = proxy_pids(path)

        # The same file: its controller answers where this one would listen.
        res = await asyncio.to_thread(run_up, path, "--state-dir", str(tmp_path / "elsewhere"))
        assert res.returncode == 1, res.stderr
        assert f"cannot start: another `shiftlab up` is running for this file at {api.controller}" in res.stderr
        assert not (tmp_path / "elsewhere").exists()
        # Another file (another controller port) with the same state directory: its lock is held.
        other = tmp_path / "other.yaml"
        other.write_text(yaml.safe_dump({**data, "controller": {**data["controller"], "port": free_port()}}))
        res = await asyncio.to_thread(run_up, other)
        assert res.returncode == 1, res.stderr
        assert (f"cannot start: another `shiftlab up` (pid {up.pid}) is running with the state directory "
                f"{state_dir}") in res.stderr

        assert "Traceback" not in res.stderr
        assert task_pids(processes.marker) == tasks and proxy_pids(path) == proxies
        assert (state_dir / PIDFILE).read_bytes() == pidfile
        assert await serves_blue(session, data)
        assert up.poll() is None


async def test_a_proxy_that_dies_under_up_is_started_again_with_the_weights_and_targets(
        tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        first = read_pidfile(state_dir)
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)

        def restarted() -> Any:
            rec = read_pidfile(state_dir)
            return rec if rec is not None and rec.pid != first.pid and rec.alive() else None
        second = await eventually(restarted, timeout=20, what="a new load balancer")
        # The controller registers blue on the new one.
        await eventually(lambda: serves_blue(session, data), timeout=20, what="blue behind the new load balancer")
        assert proxy_pids(path) == {second.pid}
        assert f"the load balancer (pid {first.pid}) exited" in (tmp_path / "up1.log").read_text()

        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
    assert proxy_pids(path) == set() and task_pids(processes.marker) == set()


async def test_up_refuses_a_proxy_of_another_configuration_and_leaves_it(
        tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        proxy = processes.start("proxy", "proxy", "-c", str(path), "--time-scale", "1")
        await eventually(lambda: api.serving(f"{api.admin}/admin/healthz", proxy), timeout=30, what="the proxy")
        res = await asyncio.to_thread(run_up, path)
    assert res.returncode == 2, res.stderr
    assert f"timeScale: 60, but the load balancer at {api.admin} runs at 1" in res.stderr
    assert proxy.poll() is None and proxy_pids(path) == {proxy.pid}
    assert task_pids(processes.marker) == set()
    assert read_pidfile(Path(data["controller"]["stateDir"])) is None


def test_up_whose_proxy_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    path, data = subprocess_config(tmp_path, "unused", {"strategy": "CANARY"})
    with socket.socket() as taken:  # the production listener's port, in use
        taken.bind(("127.0.0.1", data["loadBalancer"]["Listeners"][0]["Port"]))
        taken.listen()
        res = run_up(path)
    assert res.returncode == 1, res.stderr
    assert "cannot start: the load balancer exited with 1: " in res.stderr
    assert "address already in use" in res.stderr and "Traceback" not in res.stderr
    assert proxy_pids(path) == set()
    assert read_pidfile(Path(data["controller"]["stateDir"])) is None


async def test_up_after_a_crash_refuses_its_proxy_if_the_file_changed_and_leaves_everything_serving(
        tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        up.send_signal(signal.SIGKILL)
        assert await wait_exit(up) == -signal.SIGKILL
        rec, tasks = read_pidfile(state_dir), task_pids(processes.marker)
        assert rec is not None and rec.alive() and len(tasks) == 2

        moved = free_port()
        path.write_text(yaml.safe_dump({**data, "timeScale": 30, "loadBalancer": {
            **data["loadBalancer"], "Admin": {"Port": moved}}}))
        res = await asyncio.to_thread(run_up, path)
        assert res.returncode == 2, res.stderr
        assert f"loadBalancer.Admin.Port: {moved}, but the load balancer answers at {api.admin}" in res.stderr
        assert f"timeScale: 30, but the load balancer at {api.admin} runs at 60" in res.stderr
        assert (f"(it was started by an earlier `shiftlab up` of {state_dir}: stop it with `kill {rec.pid}`, "
                f"and `up` starts one with this file)") in res.stderr
        # Untouched: the same load balancer serves blue's same tasks.
        assert rec.alive() and read_pidfile(state_dir) == rec and task_pids(processes.marker) == tasks
        assert await serves_blue(session, data)

        path.write_text(yaml.safe_dump(data))  # as it was: adopted, and Ctrl-C stops it all
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        assert "adopted from an earlier `shiftlab up`" in (tmp_path / "up2.log").read_text()
        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
    assert not rec.alive() and task_pids(processes.marker) == set()


async def test_an_admin_port_of_0_is_a_free_port_kept_for_restarts(tmp_path: Path, processes: Processes) -> None:
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    data["loadBalancer"]["Admin"]["Port"] = 0
    path.write_text(yaml.safe_dump(data))
    state_dir = Path(data["controller"]["stateDir"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        first = read_pidfile(state_dir)
        assert first is not None and not first.admin_url.endswith(":0")
        assert await api.answers(f"{first.admin_url}/admin/healthz")
        up.send_signal(signal.SIGKILL)
        assert await wait_exit(up) == -signal.SIGKILL
        # Restarted, `up` finds it where the pid file says.
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        assert read_pidfile(state_dir) == first and proxy_pids(path) == {first.pid}
        assert await serves_blue(session, data)
        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
    assert not first.alive() and task_pids(processes.marker) == set()


async def test_up_with_a_token_in_its_environment_hands_it_to_the_proxy_it_starts(
        tmp_path: Path, processes: Processes) -> None:
    """As the compose stack runs it (SHIFTLAB_TOKEN, no token in the file):
    the load balancer `up` starts resolves the same token, and `up` sends it
    (it sent none, and `up` refused to start: "GET /admin/state: 401")."""
    path, data = subprocess_config(tmp_path, processes.marker, {"strategy": "CANARY"})
    token = "t0ken-of-the-c0mpose-stack"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path), env={"SHIFTLAB_TOKEN": token})
        bearer = {"Authorization": f"Bearer {token}"}

        async def controller_answers() -> bool:
            assert up.poll() is None, f"up exited with {up.returncode}: {processes.logs()}"
            try:
                async with session.get(f"{api.controller}/api/healthz", headers=bearer) as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False
        await eventually(controller_answers, timeout=30, what="the controller")
        async with session.get(f"{api.admin}/admin/state") as resp:
            assert resp.status == 401
        async with session.get(f"{api.admin}/admin/state", headers=bearer) as resp:
            assert resp.status == 200
        assert await serves_blue(session, data)
        up.send_signal(signal.SIGINT)
        assert await wait_exit(up, timeout=30) == 0
    assert task_pids(processes.marker) == set()
