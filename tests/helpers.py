"""Small helpers shared by the tests: free ports, polling with a deadline,
configs for a real stack on 127.0.0.1, and the fields of logged events."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from shiftlab.common.ports import free_port as free_port  # the tests take it from here
from shiftlab.controller.eventlog import EntryType

REPO = Path(__file__).resolve().parents[1]


def aws_walkthrough() -> Path:
    """AWS's ECS linear/canary walkthrough JSON, as users have it: in
    `shared/examples` beside the checkout (SHIFTLAB_AWS_EXAMPLES names
    another place). Missing input is an error, never an empty test."""
    candidates = [Path(p) for p in [os.environ.get("SHIFTLAB_AWS_EXAMPLES", "")] if p]
    candidates += [REPO.parent / "shared" / "examples" / "aws-walkthrough",
                   Path("/work/shared/examples/aws-walkthrough")]
    for path in candidates:
        if (path / "linear-deployment-configuration.json").is_file():
            return path
    raise FileNotFoundError("AWS walkthrough examples not found in " + ", ".join(map(str, candidates))
                            + ": set SHIFTLAB_AWS_EXAMPLES to their directory")


def logged(events: Iterable[Mapping[str, Any]], *types: EntryType) -> list[dict[str, Any]]:
    """The fields (`data`) of the events of these types (controller.eventlog),
    in the order they were logged."""
    names = {t.name for t in types}
    return [e["data"] for e in events if e["type"] in names]


async def eventually(predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def lb_config(prod_port: int, test_port: int | None = None, health: dict[str, Any] | None = None,
              dereg_seconds: int = 5) -> dict[str, Any]:
    """A load balancer with blue and green groups, a prod listener (with the
    test-header rule) and optionally a test listener."""
    hc = {"HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 2,
          "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 2, **(health or {})}
    fwd = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": "blue", "Weight": 100}, {"TargetGroupArn": "green", "Weight": 0}]}}
    listeners: list[dict[str, Any]] = [{"Name": "prod", "Port": prod_port, "DefaultActions": [fwd]}]
    if test_port is not None:
        listeners.append({"Name": "test", "Port": test_port, "DefaultActions": [fwd],
                          "TestTrafficRule": {"Enabled": False}})
    attrs = [{"Key": "deregistration_delay.timeout_seconds", "Value": str(dereg_seconds)}]
    return {
        "Name": "my-load-balancer",
        "Listeners": listeners,
        "TargetGroups": [{"Name": n, **hc, "TargetGroupAttributes": attrs} for n in ("blue", "green")],
        "Admin": {"Port": 0},
    }


def kill_left_over_proxies(root: Path) -> list[int]:
    """SIGKILL every load balancer a `shiftlab up` under `root` started and
    left running (it was itself SIGKILLed, as crash tests do), found by the
    pid files in its state directories; returns their pids."""
    import signal

    from shiftlab.controller.backends import procinfo
    from shiftlab.proxyprocess import PIDFILE, read_pidfile

    killed = []
    for pidfile in root.rglob(PIDFILE):
        rec = read_pidfile(pidfile.parent)
        if rec is not None and rec.alive():
            procinfo.signal_group(rec.pid, signal.SIGKILL)
            killed.append(rec.pid)
    return killed
