"""What the dashboard reads from the controller API besides the documented
calls: its static files, /api/traffic (weights in force and target health,
from the proxy), the stream's `?token=` and streams ending on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp

from tests.controller.support import config
from tests.helpers import eventually

TOKEN = "dashboard-test-token"


async def _all_healthy(reading: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    data = await reading
    blue = data["targetHealth"]["blue"]
    return data if blue and set(blue.values()) == {"healthy"} else None


async def test_traffic_shows_the_weights_in_force_and_target_health(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))

    async def traffic() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(stack.api_url + "/api/traffic") as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data

    # Targets start in `initial`, until the proxy's health checks pass.
    data = await eventually(lambda: _all_healthy(traffic()), timeout=20, what="blue's targets healthy")
    rules = {r["rule"]: r for r in data["rules"]}
    assert rules["prod/default"]["kind"] == "production"
    assert rules["prod/default"]["weights"] == {"blue": 1, "green": 0}
    assert rules["prod/default"]["percent"] == {"blue": 100.0, "green": 0.0}
    assert {rules["prod/test"]["kind"], rules["test/default"]["kind"]} == {"test"}
    blue = data["targetHealth"]["blue"]
    assert len(blue) == 2
    tasks = stack.controller.sets["blue"].running()
    assert set(blue) == {f"{t.host}:{t.port}" for t in tasks}
    assert data["targetHealth"]["green"] == {}


async def test_dashboard_files_are_served_and_nothing_else(stack_factory, tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["controller"]["token"] = TOKEN
    stack = await stack_factory(data)
    async with aiohttp.ClientSession() as s:
        # The page and its files hold no data: open even when the API needs a token.
        for path, kind in (("/", "text/html"), ("/dashboard/app.js", "text/javascript"),
                           ("/dashboard/plot.js", "text/javascript"), ("/dashboard/dashboard.css", "text/css")):
            async with s.get(stack.api_url + path) as resp:
                assert (resp.status, resp.content_type) == (200, kind), path
                assert len(await resp.read()) > 100
        for path in ("/dashboard/index.html", "/dashboard/nothing.js", "/dashboard/..%2fapi.py",
                     "/dashboard/__init__.py"):
            async with s.get(stack.api_url + path) as resp:
                assert resp.status in (401, 404), path
        async with s.get(stack.api_url + "/api/traffic") as resp:
            assert resp.status == 401


async def test_the_stream_takes_the_token_as_a_query_parameter(stack_factory, tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["controller"]["token"] = TOKEN
    stack = await stack_factory(data)
    url = stack.api_url + "/api/stream"
    async with aiohttp.ClientSession() as s:
        for params, headers in (({}, {}), ({"token": "wrong"}, {}), ({}, {"Authorization": "Bearer wrong"})):
            async with s.get(url, params=params, headers=headers) as resp:
                assert resp.status == 401, (params, headers)
        for params, headers in (({"token": TOKEN}, {}), ({}, {"Authorization": f"Bearer {TOKEN}"})):
            async with s.get(url, params=params, headers=headers) as resp:
                assert resp.status == 200 and resp.content_type == "text/event-stream"
                assert await resp.content.readline() == b"event: service\n"


async def test_open_streams_end_when_the_api_stops(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    async with aiohttp.ClientSession() as s, s.get(stack.api_url + "/api/stream") as resp:
        assert await resp.content.readline() == b"event: service\n"
        stopping = asyncio.create_task(stack.stop())
        # The stream ends (EOF) instead of holding the shutdown for aiohttp's timeout (60 s, twice).
        rest = await asyncio.wait_for(resp.content.read(), 20)
        assert b"event: end" not in rest
        await asyncio.wait_for(stopping, 20)
