"""shiftlab's pytest plugin (registered through the `pytest11` entry point):
fixtures that rehearse a deployment inside a project's own tests.

    def test_release_survives_a_canary(shiftlab_rehearse):
        outcome = shiftlab_rehearse("shiftlab.yaml", env={"VERSION": "2"})
        assert outcome.status == "SUCCESSFUL", outcome.reason

`shiftlab_rehearse(config, *, command=None, image=None, env=None, cpu=None,
memory=None, strategy=None, time_scale=None, backend=None, load_rps=20,
timeout=None, free_ports=True, queue_rate=None)` starts the whole stack from the config file (on free
ports by default, with its records in the test's tmp_path), deploys the new
revision under a bounded background load, waits for the end, stops
everything, and returns a `Rehearsal`. It works from plain (sync) tests.
A headless service (no service.loadBalancers) gets no load; with
`queue_rate` its tasks get QUEUE_URL, shiftlab's work queue fed that many
messages a second (shiftlab.headless), and `Rehearsal.queue` says whether
a message was lost or processed twice.

`shiftlab_stack(config, ...)` is the async form for tests that want to
drive the stack themselves: `async with shiftlab_stack("shiftlab.yaml") as
stack: ...` gives a started `shiftlab.stack.Stack`.

The imports are lazy: the plugin costs nothing to test runs that do not
use it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Rehearsal:
    """What a rehearsal ended with."""

    deployment: dict[str, Any]  # DescribeServiceDeployments' shape, plus "shiftlab"
    load: dict[str, Any] | None  # requests, statuses, byGroup, 5xxByGroup, p50/p90/p99
    events: list[dict[str, Any]]
    seconds: float
    # The rehearsal's timeout ended a deployment still IN_PROGRESS (it was then rolled back).
    timed_out: bool = False
    # With queue_rate: shiftlab.headless.Accounting (sent, processed, lost, duplicates, by_consumer).
    queue: Any = None

    @property
    def status(self) -> str:
        return str(self.deployment["status"])

    @property
    def reason(self) -> str | None:
        return self.deployment.get("statusReason")

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESSFUL"

    @property
    def triggered_alarms(self) -> list[str]:
        return list(self.deployment["alarms"]["triggeredAlarmNames"])


def _settings(config: str | Path | dict[str, Any], tmp: Path, time_scale: float | None, backend: str | None,
              free_ports: bool, strategy: str | None = None) -> Any:
    import copy

    from shiftlab.common.configfile import load_file
    from shiftlab.settings import load_settings, on_free_ports, with_fields

    data = copy.deepcopy(config) if isinstance(config, dict) else load_file(config)
    if free_ports:
        data = on_free_ports(data)
    if time_scale is not None:
        data["timeScale"] = time_scale
    data["controller"] = {**(data.get("controller") or {}), "stateDir": str(tmp)}
    if backend is not None:
        data["controller"]["backend"] = backend
    if strategy is not None:  # checked with the rest of the file's deploymentConfiguration
        with_fields(data, "deploymentConfiguration", {"strategy": strategy})
    return load_settings(data)


def _overrides(command: str | list[str] | None, image: str | None, env: dict[str, str] | None,
               cpu: int | str | None = None, memory: int | str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cpu is not None:
        out["cpu"] = cpu
    if memory is not None:
        out["memory"] = memory
    if command is not None:
        out["command"] = command
    if image is not None:
        out["image"] = image
    if env:
        out["env"] = dict(env)
    return out


@pytest.fixture
def shiftlab_rehearse(tmp_path: Path) -> Callable[..., Rehearsal]:
    def run(config: str | Path | dict[str, Any], *, command: str | list[str] | None = None,
            image: str | None = None, env: dict[str, str] | None = None, cpu: int | str | None = None,
            memory: int | str | None = None, strategy: str | None = None,
            time_scale: float | None = None, backend: str | None = None, load_rps: float = 20.0,
            timeout: float | None = None, free_ports: bool = True, queue_rate: float | None = None) -> Rehearsal:
        from shiftlab.rehearse import rehearse

        state = tmp_path / f"shiftlab-{len(list(tmp_path.glob('shiftlab-*')))}"
        settings = _settings(config, state, time_scale, backend, free_ports, strategy)
        overrides = _overrides(command, image, env, cpu, memory)
        queue = None
        if queue_rate is None:
            outcome = asyncio.run(rehearse(settings, overrides, None, load_rps, state, timeout))
        else:
            from shiftlab.headless import with_queue, with_queue_url

            settings, url = with_queue_url(settings)
            outcome, queue, _ = asyncio.run(with_queue(url, state, queue_rate, lambda before_stop: rehearse(
                settings, overrides, None, load_rps, state, timeout, before_stop=before_stop)))
        return Rehearsal(outcome.deployment, outcome.load.summary() if outcome.load else None, outcome.events,
                         outcome.seconds, outcome.timed_out, queue)

    return run


@pytest.fixture
def shiftlab_stack(tmp_path: Path) -> Callable[..., contextlib.AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def stack(config: str | Path | dict[str, Any], *, time_scale: float | None = None,
                    backend: str | None = None, free_ports: bool = True) -> AsyncIterator[Any]:
        from shiftlab.stack import Stack

        state = tmp_path / "shiftlab-stack"
        async with Stack(_settings(config, state, time_scale, backend, free_ports)) as s:
            yield s

    return stack
