#!/usr/bin/env python3
"""CPU cost of scraping 50 Prometheus endpoints every scaled period, as the
controller does for a `prometheus` section (controller.promscrape.Scraper):
scrape_interval 1m at timeScale 60 is one scrape of each endpoint a second.
Run on demand, never in CI; nothing is asserted.

    .venv/bin/python tests/perf/bench_scrape.py [--endpoints 50] [--seconds 30] [--time-scale 60]

The endpoints are served by another process (one aiohttp server per port,
each answering what prometheus-client exposes for a process: its default
collectors plus three counters with labels, ~80 samples), so the figure is
the scraper's own: this process's CPU time (user + system) over the run,
as a percentage of one core. A metric_declaration selects a dozen metrics
of each endpoint, so the conversion and the store work too.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SERVER = r"""
import asyncio, sys
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

registry = CollectorRegistry()
ProcessCollector(registry=registry); PlatformCollector(registry=registry); GCCollector(registry=registry)
requests = Counter("http_requests", "Requests.", ["method", "status"], registry=registry)
failed = Counter("payments_transactions_failed", "Failed.", registry=registry)
Gauge("queue_depth", "Depth.", registry=registry).set(3)
for m in ("GET", "POST", "PUT"):
    for s in ("200", "404", "500"):
        requests.labels(m, s).inc(5)

async def metrics(_):
    failed.inc()
    return web.Response(body=generate_latest(registry), content_type="text/plain")

async def main(ports):
    app = web.Application(); app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    for p in ports:
        await web.TCPSite(runner, "127.0.0.1", p).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main([int(p) for p in sys.argv[1:]]))
"""


async def run(ports: list[int], seconds: float, time_scale: float) -> None:
    from shiftlab.controller.metricstore import CustomMetrics
    from shiftlab.controller.promscrape import PrometheusConfig, Scraper, Target

    endpoints = len(ports)
    config = PrometheusConfig.model_validate({"emf_processor": {"metric_declaration": [{
        "source_labels": ["job"], "label_matcher": "^bench$",
        "dimensions": [["ClusterName", "TaskDefinitionFamily"], ["ClusterName", "TaskId"]],
        "metric_selectors": ["^http_requests_total$", "^payments_", "^queue_depth$", "^process_"]}]}})
    custom = CustomMetrics(retention_seconds=600.0, minute=60.0 / time_scale)
    loop = asyncio.get_running_loop()
    scraper = Scraper(config, custom, time_scale, loop.time)
    targets = [Target(f"task{p}", f"http://127.0.0.1:{p}/metrics",
                      {"job": "bench", "ClusterName": "local", "TaskDefinitionFamily": "web",
                       "TaskId": f"task{p}"}) for p in ports]
    # One round to warm up (connections, imports), then the measured window.
    scraper.tick(loop.time(), targets)
    await scraper.wait()
    start_cpu, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    scrapes_before = scraper.scrapes
    while time.monotonic() - start < seconds:
        scraper.tick(loop.time(), targets)
        await asyncio.sleep(0.05)  # the monitor's loop ticks at least this often
    await scraper.wait()
    end_cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - start
    cpu = (end_cpu.ru_utime - start_cpu.ru_utime) + (end_cpu.ru_stime - start_cpu.ru_stime)
    done = scraper.scrapes - scrapes_before
    print(f"{endpoints} endpoints, scrape_interval 1m at timeScale {time_scale:g} "
          f"(every {scraper.interval:.3g} s): {done} scrapes in {wall:.1f} s, "
          f"{scraper.rejected} rejected, {scraper.overrun} overruns, {len(custom)} metrics stored")
    print(f"CPU: {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.1f} % of one core "
          f"({1000 * cpu / max(done, 1):.2f} ms per scrape)")
    await scraper.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--time-scale", type=float, default=60.0)
    args = parser.parse_args()
    from shiftlab.common.ports import free_port

    ports = [free_port() for _ in range(args.endpoints)]
    server = subprocess.Popen([sys.executable, "-c", SERVER, *map(str, ports)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        asyncio.run(run(ports, args.seconds, args.time_scale))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
