"""Debian's Prometheus (`apt-get install prometheus`: /usr/bin/prometheus and
/usr/bin/promtool) for the compose profile's tests: the real server as a
subprocess on 127.0.0.1, fed a config derived from compose/prometheus/prometheus.yml,
and the Grafana variables its dashboard's queries need.

Without the binaries the tests that need them skip (saying how to install
them), unless SHIFTLAB_REQUIRE_PROMETHEUS=1 (CI), where they fail."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import free_port

PLAIN = {"Accept-Encoding": "identity"}  # the tests' client does not decompress
INSTALL = "Debian: apt-get install --no-install-recommends prometheus"


def binaries() -> tuple[str, str]:
    """(prometheus, promtool), or skip (fail where SHIFTLAB_REQUIRE_PROMETHEUS=1)."""
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        reason = f"{' and '.join(missing)} not on PATH ({INSTALL})"
        if os.environ.get("SHIFTLAB_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"SHIFTLAB_REQUIRE_PROMETHEUS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    prometheus, promtool = found["prometheus"], found["promtool"]
    assert prometheus is not None and promtool is not None
    return prometheus, promtool


def derived_config(compose_conf: dict[str, Any], target: str, credentials_file: Path,
                   scrape_interval: str) -> dict[str, Any]:
    """The compose file's config with only what must differ outside the
    stack changed: the target (the admin port on 127.0.0.1 instead of
    `shiftlab:9090`), the credentials file (the container's path exists
    only there) and the scrape interval and timeout (a test waits for a few
    scrapes). Everything else (job, metrics_path, scheme, authorization
    type, target labels) is the compose file's, so a mistake there fails."""
    conf = copy.deepcopy(compose_conf)
    glob = conf["global"]
    glob["scrape_interval"] = glob["scrape_timeout"] = glob["evaluation_interval"] = scrape_interval
    (job,) = conf["scrape_configs"]
    assert "scrape_interval" not in job and "scrape_timeout" not in job, "a job's own interval: change it here too"
    (static,) = job["static_configs"]
    (_,) = static["targets"]
    static["targets"] = [target]
    job["authorization"]["credentials_file"] = str(credentials_file)
    return conf


def rate_interval(scrape_seconds: float, interval_seconds: float) -> str:
    """Grafana's `$__rate_interval`: max($__interval + scrape interval,
    4 x scrape interval), the scrape interval being the datasource's
    `timeInterval` (which the compose datasource sets to Prometheus's)."""
    return f"{max(interval_seconds + scrape_seconds, 4 * scrape_seconds):g}s"


def grafana_regex_escape(value: str) -> str:
    """How Grafana puts one selected value of a variable into a `=~` matcher."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\1", value)


async def promtool(binary: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [binary, *args], input=stdin, capture_output=True, text=True,
                                   timeout=60)


@dataclass
class Prometheus:
    url: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def api(self, client: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with client.get(f"{self.url}/api/v1/{path}", params=params, headers=PLAIN) as resp:
            body = await resp.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def ready(self, client: aiohttp.ClientSession) -> bool:
        async with client.get(f"{self.url}/-/ready") as resp:
            return resp.status == 200

    async def wait(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
        """Poll `await check()` until truthy (the server must stay up), with a deadline."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            if self.process.returncode is not None:
                raise AssertionError(f"prometheus exited ({self.process.returncode}) waiting for {what}:\n"
                                     + self.output())
            try:
                last = await check()
            except aiohttp.ClientError as exc:  # not up yet (an AssertionError fails at once)
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def run_prometheus(binary: str, config: Path, workdir: Path,
                         client: aiohttp.ClientSession) -> AsyncIterator[Prometheus]:
    """Debian's prometheus on 127.0.0.1 only (a free port; another try if a
    process took it first), its TSDB and log in `workdir`; stopped (killed
    if need be) on the way out, whatever happened."""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"prometheus-{attempt}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / f'tsdb-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        try:
            try:
                await prom.wait("prometheus to be ready", functools.partial(prom.ready, client))
            except AssertionError:
                if proc.returncode is not None and "address already in use" in prom.output() and attempt < 2:
                    continue
                raise
            yield prom
            return
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
