"""`shiftlab up` and `shiftlab proxy` as real subprocesses of a test: starting
and stopping them, finding the tasks they run (by pid), and the two APIs they
serve, read without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shiftlab.controller.backends import procinfo
from tests.controller.support import config
from tests.helpers import eventually, free_port

MARK = "SHIFTLAB_SPLIT_TEST"
FINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


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
        self.marker = uuid.uuid4().hex  # in the environment of every task of the test
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        n = sum(1 for label, _ in self.started if label == name)
        with open(self.tmp_path / f"{name}{n + 1}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "shiftlab", *args], stdout=log, stderr=log,
                                    env={**os.environ, **(env or {})})
        self.started.append((name, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp_path.glob("**/*.log")) if "logs" not in p.parts)

    def stop_all(self) -> None:
        # Controllers first (Ctrl-C: they deregister and stop their tasks, and
        # stop the load balancer they started), then proxies.
        for kind in ("up", "proxy"):
            for name, proc in self.started:
                if name == kind and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)


def subprocess_config(tmp_path: Path, marker: str, deployment: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """A config file for `up` and `proxy` subprocesses: every port free, the
    tasks marked with `marker`."""
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
