"""The sample service's own metrics: its counters on GET /metrics in the
Prometheus text format (read back with prometheus-client's parser), and the
business fault, failed transactions, published as TransactionFailureRate in
the embedded metric format (the AWS walkthrough's CustomApp/Payments metric),
which controller.emf accepts as CloudWatch Logs would.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from shiftlab.controller.emf import parse
from shiftlab.controller.metricstore import metric_key
from tests.controller.test_sample_service import Service, http, start  # noqa: F401  (fixtures)


async def _get_many(http: aiohttp.ClientSession, url: str, count: int) -> None:  # noqa: F811
    for _ in range(count):
        async with http.get(url) as r:
            assert r.status == 200  # a failed transaction is not a failed request


async def test_metrics_count_requests_and_failed_transactions(
        start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:  # noqa: F811
    s = await start(TRANSACTION_FAILURE_RATE="0.25")
    await _get_many(http, s.url + "/pay", 8)
    async with http.get(s.url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    values = {sample.name: sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples if not sample.name.endswith("_created")}
    assert values["payments_transactions_total"] == 8
    assert values["payments_transactions_failed_total"] == 2
    # /metrics is not a counted request.
    async with http.get(s.url + "/_shiftlab/faults") as r:
        assert (await r.json())["requests"] == 8


async def test_the_failure_rate_is_published_in_embedded_metric_format(
        start: Callable[..., Awaitable[Service]], http: aiohttp.ClientSession) -> None:  # noqa: F811
    s = await start(TRANSACTION_FAILURE_RATE="0.5", EMF_INTERVAL_MS="100")
    await _get_many(http, s.url + "/pay", 10)
    assert s.proc.stdout is not None
    line = b""
    while b"_aws" not in line:
        line = await asyncio.wait_for(s.proc.stdout.readline(), 10)
    doc = json.loads(line)
    assert doc["TransactionFailureRate"] == 0.5
    [point] = parse(line, time.time(), lambda at: at, lambda at, resolution: at)
    assert point.key == metric_key("CustomApp/Payments", "TransactionFailureRate", [])


async def test_a_bad_emf_interval_is_refused_at_start(start: Callable[..., Awaitable[Service]]) -> None:  # noqa: F811
    s = await start(EMF_INTERVAL_MS="often", wait=False)
    assert await s.proc.wait() == 2
    assert "EMF_INTERVAL_MS" in await s.output()
