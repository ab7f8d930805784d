"""`deploy --watch` and `watch` in a CI log (not a terminal): a line per
event as it happens and the outcome, not one screen at the end; a
deployment named by the short id the views show."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.controller.support import config


async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shiftlab", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_deploy_watch_logs_each_event_then_the_outcome(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "LINEAR", "linearConfiguration": {
        "stepPercent": 50, "stepBakeTimeInMinutes": 1}}))
    code, out, err = await cli("deploy", "--url", stack.api_url, "--env", "GREETING=v2", "--watch")
    assert code == 0, err
    lines = out.splitlines()
    stages = [m.group(1) for line in lines if (m := re.fullmatch(r"\d\d:\d\d:\d\d stage +(\w+)", line))]
    assert stages[-3:] == ["POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"], out
    assert any("production traffic: 50% green (verified)" in line for line in lines), out
    assert lines[-1].startswith("deployment ") and lines[-1].split()[2] == "SUCCESSFUL", out
    assert "│ green           2/2" in out, "the view as it ended, before the outcome"


async def test_watch_takes_the_short_id(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "CANARY", "canaryConfiguration": {
        "canaryPercent": 50, "canaryBakeTimeInMinutes": 2}}))
    d = stack.controller.create_deployment({"env": {"GREETING": "v2"}})
    code, out, err = await cli("watch", "--url", stack.api_url, d.id[:12])
    assert code == 0, err
    assert out.splitlines()[-1] == f"deployment {d.id}: SUCCESSFUL (deployment completed)", out
