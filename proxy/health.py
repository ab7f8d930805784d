"""Active health checks, one loop per target, with ALB's thresholds.

Checks go straight to the target (not through a listener), so they never
show up in RequestCount, as on ALB. Intervals and timeouts are AWS seconds
divided by the time scale, with floors so that a rehearsal at a high time
scale does not mark a healthy but busy target unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from shiftlab.proxy.state import DRAINING, HEALTHY, INITIAL, UNHEALTHY, Target, TargetGroupState

MIN_INTERVAL = 0.1
MIN_TIMEOUT = 1.0


def next_state(t: Target, ok: bool, reason: str, healthy_n: int, unhealthy_n: int) -> None:
    """Apply one check result to a target (pure apart from mutating `t`).
    ALB: a newly registered target "must pass one health check to be
    considered healthy"; the thresholds apply after that (a healthy target
    goes after `unhealthy_n` failures in a row, an unhealthy one comes back
    after `healthy_n` passes in a row)."""
    if ok:
        t.ok_streak += 1
        t.fail_streak = 0
        if t.state == INITIAL or (t.state != HEALTHY and t.ok_streak >= healthy_n):
            t.state, t.reason = HEALTHY, ""
    else:
        t.fail_streak += 1
        t.ok_streak = 0
        if t.state == UNHEALTHY:
            t.reason = reason
        elif t.fail_streak >= unhealthy_n:
            t.state, t.reason = UNHEALTHY, reason
        elif t.state == INITIAL:
            t.reason = "Elb.InitialHealthChecking"


class HealthChecker:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        # (group, target id) -> the Target object checked and its loop; a
        # target re-registered under the same id is a new object.
        self.tasks: dict[tuple[str, str], tuple[Target, asyncio.Task[None]]] = {}

    def sync(self, group: TargetGroupState) -> None:
        """Start loops for new targets of `group`, end loops of removed ones."""
        if not group.conf.HealthCheckEnabled:
            return
        for key in [k for k, (t, _) in self.tasks.items()
                    if k[0] == group.name and group.targets.get(k[1]) is not t]:
            self.tasks.pop(key)[1].cancel()
        for tid, t in group.targets.items():
            key = (group.name, tid)
            entry = self.tasks.get(key)
            if entry is None or entry[1].done():
                self.tasks[key] = (t, asyncio.get_running_loop().create_task(self._loop(group, t)))

    async def _loop(self, group: TargetGroupState, t: Target) -> None:
        c = group.conf
        interval = max(c.HealthCheckIntervalSeconds / group.time_scale, MIN_INTERVAL)
        timeout = max(c.HealthCheckTimeoutSeconds / group.time_scale, MIN_TIMEOUT)
        codes = c.matcher_codes
        port = t.port if c.HealthCheckPort == "traffic-port" else int(c.HealthCheckPort)
        host = f"[{t.host}]" if ":" in t.host else t.host
        url = f"http://{host}:{port}{c.HealthCheckPath}"
        tcp = c.HealthCheckProtocol == "TCP"
        while group.targets.get(t.id) is t:
            ok, reason = await (self.check_tcp(t.host, port, timeout) if tcp else self.check(url, codes, timeout))
            if t.state != DRAINING and group.targets.get(t.id) is t:
                before = t.state
                next_state(t, ok, reason, c.HealthyThresholdCount, c.UnhealthyThresholdCount)
                if t.state != before:
                    group.refresh()
            await asyncio.sleep(interval)

    async def check(self, url: str, codes: frozenset[int], seconds: float) -> tuple[bool, str]:
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=seconds), allow_redirects=False,
                headers={"User-Agent": "ELB-HealthChecker/2.0"},
            ) as resp:
                await resp.read()
                if resp.status in codes:
                    return True, ""
                return False, "Target.ResponseCodeMismatch"
        except TimeoutError:
            return False, "Target.Timeout"
        except aiohttp.ClientError:
            return False, "Target.FailedHealthChecks"

    @staticmethod
    async def check_tcp(host: str, port: int, seconds: float) -> tuple[bool, str]:
        """NLB's TCP health check: "the load balancer attempts to open a TCP
        connection with the target"; the check passes if it opens. It is
        closed at once, with nothing sent."""
        try:
            async with asyncio.timeout(seconds):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return False, "Target.Timeout"
        except OSError:
            return False, "Target.FailedHealthChecks"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, ""

    async def close(self) -> None:
        for _, task in self.tasks.values():
            task.cancel()
        for _, task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
