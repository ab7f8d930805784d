"""The application's own metrics, from its tasks: the Prometheus endpoints
the `prometheus` section selects (controller.promscrape) and the embedded
metric format in their output (controller.emf), both into the store's
custom metrics that the alarms read. `tick(now)` is called from the
monitor's loop on the injected clock; the reading and scraping it starts
runs in the background and never holds the loop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlab.controller.backends.base import RUNNING, STOPPED
from shiftlab.controller.emf import EmfTailer
from shiftlab.controller.metricstore import CustomMetrics
from shiftlab.controller.promscrape import PrometheusConfig, Scraper, targets

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController


class AppMetrics:
    def __init__(self, svc: ServiceController, custom: CustomMetrics) -> None:
        self.svc = svc
        logs_dir = getattr(svc.backend, "logs_dir", None)
        # Tasks whose output is a file that grows while they run (the process backend's; the docker
        # backend's, which follows a container's output into it).
        self.emf = EmfTailer(Path(logs_dir), custom, svc.clock.now) \
            if logs_dir is not None and getattr(svc.backend, "live_output", False) else None
        config: PrometheusConfig | None = svc.settings.prometheus
        self.scraper = Scraper(config, custom, svc.time_scale, svc.clock.now) if config is not None else None

    async def tick(self, now: float) -> None:
        if self.emf is None and (self.scraper is None or not self.scraper.due(now)):
            return
        tasks = await self.svc.backend.tasks(self.svc.name)
        if self.emf is not None:
            self.emf.tick([(t.task_id, t.state == STOPPED) for t in tasks])
        if self.scraper is not None and self.scraper.due(now):
            svc = self.svc
            spec = svc.service.taskDefinition
            self.scraper.tick(now, targets(svc.settings.prometheus, [t for t in tasks if t.state == RUNNING],
                                           svc.service.clusterName, svc.name, spec.family or svc.name))

    def counters(self) -> dict[str, Any]:
        """What the sources did, for the live views (metrics frames)."""
        out: dict[str, Any] = {}
        if self.scraper is not None:
            s = self.scraper
            out["prometheus"] = {"scrapes": s.scrapes, "rejected": s.rejected, "datapoints": s.stored,
                                 "overrun": s.overrun}
        if self.emf is not None:
            out["emf"] = {"datapoints": self.emf.extracted, "rejected": self.emf.rejected}
        return out

    async def close(self) -> None:
        if self.scraper is not None:
            with contextlib.suppress(Exception):
                await self.scraper.close()
        if self.emf is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.emf.wait()
