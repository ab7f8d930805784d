"""CloudWatch's part: scrape the proxy's stats into the metric store,
evaluate the alarms (their states go to the deployment as AlarmStates),
and publish metrics frames for the live views. The same loop runs the
load-balancer check (lbsync) once a second."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from shiftlab.controller import machine as m
from shiftlab.controller import serviceconnect
from shiftlab.controller.alarms import AlarmEvaluator, required_retention
from shiftlab.controller.appmetrics import AppMetrics
from shiftlab.controller.config import service_connect_names
from shiftlab.controller.eventbridge import alarm_state_change
from shiftlab.controller.lbsync import CHECK_INTERVAL
from shiftlab.controller.metricstore import PUBLISH_SECONDS, MetricStore
from shiftlab.controller.router import RouterError

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController

log = logging.getLogger("shiftlab.controller")

RATE_WINDOW = 2.0  # seconds of scrapes behind the live views' rates
FRAME_INTERVAL = 0.25  # seconds between metrics frames on the event stream


class Monitor:
    def __init__(self, svc: ServiceController) -> None:
        self.svc = svc
        alarms, scale = svc.settings.alarms, svc.time_scale
        self.store = MetricStore(retention_seconds=max(required_retention(alarms, scale) * 2, 60.0),
                                 publish_seconds=PUBLISH_SECONDS / scale)
        self.evaluators = {a.AlarmName: AlarmEvaluator(a, scale) for a in alarms}
        self.alarm_states: dict[str, str] = {}
        self.alarm_reasons: dict[str, str] = {}
        self.last_metrics: dict[str, Any] = {}
        self._recent: deque[dict[str, Any]] = deque()
        # The tasks' own metrics: scraped Prometheus endpoints, EMF in their output.
        self.app = AppMetrics(svc, self.store.custom)
        # Service Connect's endpoint (its metrics are its listener's and target groups').
        sc = svc.service.service_connect
        names = service_connect_names(sc, svc.service.namespace) if sc is not None else None
        self.endpoints = {names.discovery: (names.listener, names.blue, names.green)} if names else {}

    def scrape_interval(self) -> float:
        periods = [ev.period for ev in self.evaluators.values()]
        return min([0.5, *(p / 5 for p in periods)]) if periods else 0.5

    async def run(self) -> None:
        interval = max(self.scrape_interval(), 0.05)
        next_check = 0.0
        try:
            await self._loop(interval, next_check)
        finally:
            await self.app.close()

    async def _loop(self, interval: float, next_check: float) -> None:
        svc = self.svc
        while True:
            try:
                await self.app.tick(svc.clock.now())
                if svc.clock.now() >= next_check:
                    next_check = svc.clock.now() + CHECK_INTERVAL
                    await svc.lb.check()
                snap = await svc.router.stats()
                if self.endpoints:
                    serviceconnect.add_to_snapshot(snap, self.endpoints)
                now = svc.clock.now()
                self.store.add(snap, now)
                self.evaluate(now)
                self.publish_metrics(snap, now)
            except RouterError as exc:
                log.warning("cannot read the load balancer's stats: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("metrics scrape failed")
            await svc.clock.sleep(interval)

    def evaluate(self, now: float) -> None:
        changed = False
        for name, ev in self.evaluators.items():
            before = (ev.state, ev.reason, ev.since if ev.since is not None else now)
            result = ev.evaluate(self.store, now)
            if result.changed:
                self.svc.send_event(alarm_state_change(ev.alarm, (result.state, result.reason, now), before, now))
            self.alarm_reasons[name] = result.reason
            if self.alarm_states.get(name) != result.state:
                changed = True
                self.alarm_states[name] = result.state
        if changed or self.svc.current is not None:
            self.svc.runner.feed(m.AlarmStates(dict(self.alarm_states), dict(self.alarm_reasons)))

    def publish_metrics(self, snap: dict[str, Any], now: float) -> None:
        """A metrics frame for the live views: rates over the last ~2 s (one
        scrape apart is too noisy to read), at most four frames a second."""
        self._recent.append(snap)
        while len(self._recent) > 2 and snap["timestamp"] - self._recent[1]["timestamp"] >= RATE_WINDOW:
            self._recent.popleft()
        if now - self.last_metrics.get("at", 0.0) < FRAME_INTERVAL:
            return
        prev = self._recent[0] if len(self._recent) > 1 else None
        network = snap.get("namespace") == "AWS/NetworkELB"
        groups = {}
        for name, g in snap.get("targetGroups", {}).items():
            row = {"healthy": g.get("HealthyHostCount", 0), "unhealthy": g.get("UnHealthyHostCount", 0)}
            if prev is not None and network:
                # A network load balancer's: new connections and resets a second, connections open.
                p = prev["targetGroups"].get(name, {})
                dt = max(snap["timestamp"] - prev["timestamp"], 1e-6)
                new = g.get("NewFlowCount", 0) - p.get("NewFlowCount", 0)
                resets = sum(g.get(k, 0) - p.get(k, 0) for k in ("TCP_Target_Reset_Count", "TCP_ELB_Reset_Count"))
                row.update({"rps": round(max(new, 0) / dt, 2), "errorsPerSecond": round(max(resets, 0) / dt, 2),
                            "activeFlows": g.get("ActiveFlowCount", 0)})
            elif prev is not None:
                p = prev["targetGroups"].get(name, {})
                dt = max(snap["timestamp"] - prev["timestamp"], 1e-6)
                req = g.get("RequestCount", 0) - p.get("RequestCount", 0)
                err = (g.get("HTTPCode_Target_5XX_Count", 0) - p.get("HTTPCode_Target_5XX_Count", 0)
                       + g.get("HTTPCode_ELB_5XX_Count", 0) - p.get("HTTPCode_ELB_5XX_Count", 0))
                row.update({"rps": round(max(req, 0) / dt, 2), "errorsPerSecond": round(max(err, 0) / dt, 2),
                            "p99": _p99(snap, prev, name)})
            groups[name] = row
        self.last_metrics = {"at": now, "groups": groups}
        self.svc.publish({"type": "metrics", "at": now, "groups": groups, "alarms": self.alarms_view(),
                          **({"loadBalancerType": "network"} if network else {}),
                          **({"sources": sources} if (sources := self.app.counters()) else {})})

    def alarms_view(self) -> list[dict[str, Any]]:
        return [{"AlarmName": n, "StateValue": self.alarm_states.get(n, "INSUFFICIENT_DATA"),
                 "StateReason": self.alarm_reasons.get(n, "")} for n in self.evaluators]


def _p99(snap: dict[str, Any], prev: dict[str, Any], group: str) -> float | None:
    bounds = snap.get("responseTimeBuckets") or []
    now_b = snap["targetGroups"].get(group, {}).get("TargetResponseTime", {}).get("buckets")
    old_b = prev["targetGroups"].get(group, {}).get("TargetResponseTime", {}).get("buckets")
    if not now_b or not old_b or not bounds:
        return None
    delta = [a - b for a, b in zip(now_b, old_b, strict=False)]
    total = sum(delta)
    if total <= 0:
        return None
    rank, seen = 0.99 * total, 0
    for i, n in enumerate(delta):
        seen += n
        if seen >= rank:
            return bounds[min(i, len(bounds) - 1)]
    return bounds[-1]
