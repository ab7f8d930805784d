"""A lifecycle hook call's time limit is kept on the controller's clock: a
hook that never answers is FAILED once the clock passed the limit (here a
fake one, so no test waits 30 s), and a command hook's process is killed."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from shiftlab.controller import hooks
from shiftlab.controller.backends import procinfo
from shiftlab.controller.clock import FakeClock
from tests.helpers import eventually

BODY = {"executionId": "e-1", "lifecycleStage": "POST_SCALE_UP"}


async def test_a_command_hook_that_never_answers_fails_at_the_limit_and_is_killed(tmp_path: Path) -> None:
    clock = FakeClock()
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    command = shlex.join([sys.executable, "-c", script])
    call = asyncio.create_task(hooks.call_command(f"command:{command}", BODY, 30.0, clock))
    # The process starts for real: wait (event loop, real time) until it runs and the limit is set.
    await eventually(lambda: pid_file.exists() and pid_file.read_text() and clock.next_wake() is not None,
                     timeout=10, what="the hook's process to start")
    pid = int(pid_file.read_text())
    await clock.advance(29.9)
    assert not call.done()
    await clock.advance(0.1)
    answer = await asyncio.wait_for(call, 10)
    assert answer.status == "FAILED" and answer.error == "the command did not finish within 30 s"
    await eventually(lambda: not procinfo.is_alive(pid, None), timeout=10, what="the hook's process to be gone")


async def test_a_url_hook_that_never_answers_fails_at_the_limit() -> None:
    clock = FakeClock()
    asked = asyncio.Event()
    never = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        asked.set()
        await never.wait()
        return web.json_response({"hookStatus": "SUCCEEDED"})

    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hook"
            call = asyncio.create_task(hooks.call_url(session, url, BODY, 30.0, clock))
            await asyncio.wait_for(asked.wait(), 10)
            await clock.advance(30.0)
            answer = await asyncio.wait_for(call, 10)
            assert answer.status == "FAILED" and answer.error == f"{url} did not answer within 30 s"
    finally:
        never.set()
        await runner.cleanup()
