"""The sample service, run as the real process a task would be (its faults'
arithmetic is also tested directly): deterministic errors, latency, health,
faults changed at runtime, keep-alive, and its ways of exiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shiftlab import sample_service
from shiftlab.sample_service import FaultError, Faults
from tests.helpers import eventually, free_port

FAULTS = "/_shiftlab/faults"


class Service:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def output(self) -> str:
        assert self.proc.stdout is not None
        return (await self.proc.stdout.read()).decode()


async def _listening(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


async def _start(argv: list[str], env: dict[str, str], cwd: Path | None = None, wait: bool = True) -> Service:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, "PORT": str(port), **env}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    service = Service(proc, port)
    if wait:
        await eventually(lambda: proc.returncode is not None or _listening(port), what="the service to listen")
        assert proc.returncode is None, await service.output()
    return service


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    started: list[Service] = []

    async def run(argv: list[str] | None = None, cwd: Path | None = None, wait: bool = True, **env: str) -> Service:
        s = await _start(argv or [sys.executable, "-m", "shiftlab.sample_service"], env, cwd, wait)
        started.append(s)
        return s

    yield run
    for s in started:
        if s.proc.returncode is None:
            s.proc.kill()
        await s.proc.wait()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def _statuses(http: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    out = []
    for _ in range(count):
        async with http.get(url) as r:
            out.append(r.status)
    return out


# -- answers ------------------------------------------------------------------------


async def test_answers_say_who_answered(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:
    s = await start(SHIFTLAB_REVISION="4", SHIFTLAB_COLOUR="green", SHIFTLAB_TARGET_GROUP="tg-green",
                    SHIFTLAB_TASK_ID="t-1", GREETING="hi")
    async with http.post(f"{s.url}/orders?x=1", data=b"x" * 70_000) as r:
        doc = await r.json()
        assert r.status == 200
        assert r.headers["X-Shiftlab-Revision"] == "4"
        assert r.headers["X-Shiftlab-Colour"] == "green"
        assert r.headers["X-Shiftlab-Target-Group"] == "tg-green"
    assert doc["revision"] == "4" and doc["colour"] == "green" and doc["targetGroup"] == "tg-green"
    assert doc["task"] == "t-1" and doc["path"] == "/orders" and doc["method"] == "POST"
    assert doc["bodyBytes"] == 70_000 and doc["greeting"] == "hi"


async def test_revision_falls_back_to_REVISION(start: Callable[..., Awaitable[Service]],
                                               http: aiohttp.ClientSession) -> None:
    s = await start(REVISION="9")
    async with http.get(s.url) as r:
        assert (await r.json())["revision"] == "9"


async def test_chunked_uploads_are_read_and_counted(start: Callable[..., Awaitable[Service]],
                                                    http: aiohttp.ClientSession) -> None:
    s = await start()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"y" * 1000

    async with http.put(f"{s.url}/up", data=body()) as r:
        assert r.status == 200
        assert (await r.json())["bodyBytes"] == 3000
    async with http.get(s.url) as r:  # the connection is still in step
        assert (await r.json())["request"] == 2


async def test_keep_alive_serves_two_requests_on_one_connection(start: Callable[..., Awaitable[Service]]) -> None:
    s = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    try:
        answers = []
        for path, body in (("/one", b"abc"), ("/two", b"")):
            writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if line)
            payload = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 10)
            assert head.startswith("HTTP/1.1 200")
            assert "Connection" not in headers
            answers.append(payload)
        assert b'"/one"' in answers[0] and b'"bodyBytes": 3' in answers[0]
        assert b'"/two"' in answers[1]
    finally:
        writer.close()


# -- faults -----------------------------------------------------------------------------


async def test_errors_follow_the_deterministic_pattern(start: Callable[..., Awaitable[Service]],
                                                       http: aiohttp.ClientSession) -> None:
    s = await start(ERROR_RATE="0.3")
    statuses = []
    for _ in range(10):
        async with http.get(f"{s.url}/health") as r:  # health checks are not counted
            assert r.status == 200
        statuses.extend(await _statuses(http, s.url, 1))
    # floor(0.3 n) steps up at n = 4, 7, 10
    assert [i + 1 for i, code in enumerate(statuses) if code == 500] == [4, 7, 10]
    assert set(statuses) == {200, 500}


async def test_half_the_requests_fail_every_other_one(start: Callable[..., Awaitable[Service]],
                                                      http: aiohttp.ClientSession) -> None:
    s = await start(ERROR_RATE="0.5")
    assert await _statuses(http, s.url, 6) == [200, 500] * 3


async def test_latency_delays_requests_but_not_health(start: Callable[..., Awaitable[Service]],
                                                      http: aiohttp.ClientSession) -> None:
    s = await start(LATENCY_MS="300")
    began = time.monotonic()
    assert await _statuses(http, s.url, 2) == [200, 200]
    assert time.monotonic() - began >= 0.6  # never sooner than the sleeps it was told to do
    async with http.put(s.url + FAULTS, json={"latencyMs": 20_000}) as r:
        assert r.status == 200
    slow = asyncio.create_task(_statuses(http, s.url, 1))
    try:
        async with http.get(f"{s.url}/health") as r:
            assert r.status == 200
        assert not slow.done()  # health answered while a normal request still sleeps
    finally:
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow


async def test_failing_health(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:
    s = await start(HEALTH_FAIL="true")
    async with http.get(f"{s.url}/health") as r:
        assert r.status == 503
        assert (await r.json())["status"] == "failing"
    assert await _statuses(http, s.url, 1) == [200]  # only health fails
    async with http.put(s.url + FAULTS, json={"healthFail": False}) as r:
        assert r.status == 200
    async with http.get(f"{s.url}/health") as r:
        assert r.status == 200


async def test_faults_change_at_runtime(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:
    s = await start()
    assert await _statuses(http, s.url, 2) == [200, 200]
    async with http.put(s.url + FAULTS, json={"errorRate": 1}) as r:
        assert r.status == 200
        assert (await r.json())["errorRate"] == 1.0
    assert await _statuses(http, s.url, 2) == [500, 500]
    for bad in ({"errorRate": 1.5}, {"errorRate": "x"}, {"latencyMs": -1}, {"exitAfter": 0}, {"colour": "red"},
                ["errorRate"], {"errorRate": 0, "healthFail": "maybe"}):
        async with http.put(s.url + FAULTS, json=bad) as r:
            assert r.status == 400, bad
            assert "error" in await r.json()
    async with http.get(s.url + FAULTS) as r:
        # Nothing of the refused changes was applied, not even their valid parts.
        assert await r.json() == {"errorRate": 1.0, "latencyMs": 0.0, "healthFail": False, "exitAfter": None,
                                  "requests": 4, "transactionFailureRate": 0.0, "failedTransactions": 0}
    async with http.post(s.url + FAULTS, json={}) as r:
        assert r.status == 405


# -- exits ------------------------------------------------------------------------------


async def test_sigterm_exits_cleanly(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:
    s = await start()
    assert await _statuses(http, s.url, 1) == [200]
    s.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(s.proc.wait(), 10) == 0
    out = await s.output()
    assert out.count("listening on") == 1  # one line at start, none per request
    assert "stopped" in out


async def test_exit_at_start(start: Callable[..., Awaitable[Service]]) -> None:
    s = await start(wait=False, EXIT_AT_START="1")
    assert await asyncio.wait_for(s.proc.wait(), 10) == 1
    assert not await _listening(s.port)


async def test_exit_after_n_requests(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:
    s = await start(EXIT_AFTER="2")
    assert await _statuses(http, s.url, 2) == [200, 200]  # the last one is still answered
    assert await asyncio.wait_for(s.proc.wait(), 10) == 1


async def test_bad_environment_is_refused(start: Callable[..., Awaitable[Service]]) -> None:
    s = await start(wait=False, ERROR_RATE="lots")
    assert await asyncio.wait_for(s.proc.wait(), 10) == 2
    assert "ERROR_RATE='lots'" in await s.output()


async def test_runs_alone_as_a_script(start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession,
                                      tmp_path: Path) -> None:
    """Copied alone (as into a bare image) and run with only the standard library."""
    shutil.copy(sample_service.__file__, tmp_path / "sample_service.py")
    s = await start([sys.executable, "-I", "sample_service.py"], cwd=tmp_path, SHIFTLAB_REVISION="5")
    async with http.get(s.url) as r:
        assert r.headers["X-Shiftlab-Revision"] == "5"


# -- the faults' arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "requests", "failures"), [
    (0.0, 100, 0), (1.0, 100, 100), (0.29, 100, 29), (0.1, 1000, 100), (0.05, 1000, 50), ("0.333", 1000, 333),
])
def test_the_error_count_is_exact(rate: Any, requests: int, failures: int) -> None:
    faults = Faults()
    faults.update({"errorRate": rate})
    assert sum(faults.next_request()[1] for _ in range(requests)) == failures


def test_exit_after_counts_from_when_it_was_set() -> None:
    faults = Faults()
    for _ in range(5):
        assert faults.next_request()[3] is False
    faults.update({"exitAfter": 2})
    assert [faults.next_request()[3] for _ in range(2)] == [False, True]
    faults.update({"exitAfter": None})
    assert faults.next_request()[3] is False


def test_faults_from_env_names_the_bad_value() -> None:
    with pytest.raises(FaultError, match="LATENCY_MS='slow'"):
        sample_service.faults_from_env({"LATENCY_MS": "slow"})
    f = sample_service.faults_from_env({"ERROR_RATE": "0.25", "HEALTH_FAIL": "yes", "EXIT_AFTER": "3"})
    assert f.view() == {"errorRate": 0.25, "latencyMs": 0.0, "healthFail": True, "exitAfter": 3, "requests": 0,
                        "transactionFailureRate": 0.0, "failedTransactions": 0}
