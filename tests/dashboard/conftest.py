"""Fixtures of the dashboard tests: a real Stack (proxy, controller, API,
sample-service processes), a bounded load on its production listener, and
Debian's Chromium driven headless by Playwright.

Nothing here downloads a browser: Playwright launches /usr/bin/chromium.
Without it (or without playwright) the browser tests are skipped, unless
SHIFTLAB_REQUIRE_BROWSER=1 (CI), where they fail instead."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shiftlab.loadgen import LoadResult, run_load
from shiftlab.stack import Stack
from tests.controller.support import prod_url

CHROMIUM = Path("/usr/bin/chromium")
# This machine refuses outside connections: these keep Chromium from trying.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-proxy-server"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1440, "height": 1000}


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def need_browser() -> None:
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("SHIFTLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SHIFTLAB_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
async def browser(need_browser: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def load() -> AsyncIterator[Callable[..., LoadResult]]:
    """Start a bounded load (rps for at most `seconds`) that ends with the test."""
    stop = asyncio.Event()
    runs: list[asyncio.Task[LoadResult]] = []

    def start(data: dict[str, Any], rps: float = 30, seconds: float = 100) -> LoadResult:
        result = LoadResult()
        runs.append(asyncio.create_task(run_load(prod_url(data), rps, seconds, stop=stop, result=result)))
        return result

    yield start
    stop.set()
    await asyncio.gather(*runs)


@dataclass
class Dashboard:
    """The page in a browser tab, and what its console said."""

    page: Any
    url: str
    problems: list[str] = field(default_factory=list)

    async def open(self) -> None:
        await self.page.goto(self.url)
        await self.wait_attr("#conn", "data-state", "live")

    async def wait_attr(self, selector: str, name: str, value: str, timeout: float = 30) -> None:
        from playwright.async_api import expect

        await expect(self.page.locator(selector)).to_have_attribute(name, value, timeout=timeout * 1000)

    async def weights(self) -> dict[str, float]:
        text = await self.page.get_attribute("#weights", "data-production")
        return dict(json.loads(text or "{}"))

    async def test_weights(self) -> dict[str, dict[str, float]]:
        """The test rules' weights shown: percent by target group, by rule."""
        text = await self.page.get_attribute("#weights", "data-test")
        return dict(json.loads(text or "{}"))

    async def wait_weights(self, expected: dict[str, float], timeout: float = 30) -> None:
        """Until the production weights shown are `expected` (percent by target group)."""
        await self.page.wait_for_function(
            """(expected) => {
                const shown = JSON.parse(document.querySelector("#weights").dataset.production || "{}");
                return Object.entries(expected).every(([g, p]) => Math.abs((shown[g] ?? -1) - p) < 0.01);
            }""", arg=expected, timeout=timeout * 1000)

    async def points(self) -> int:
        return int(await self.page.get_attribute("#chart", "data-points") or 0)

    async def deploy(self, env: str, strategy: str = "", configuration: dict[str, Any] | None = None) -> None:
        """Fill in and send the page's deployment form, as a person would."""
        await self.page.select_option("#strategy", strategy)
        await self.page.fill("#env", env)
        if configuration is not None:
            await self.page.click("#dc-details summary")
            await self.page.fill("#dc", json.dumps(configuration))
        await self.page.click("#deploy")
        await self.page.wait_for_selector("#deploy-problems.ok:not([hidden])", timeout=10_000)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def dashboard(browser: Any) -> AsyncIterator[Callable[..., Any]]:
    """Open the dashboard of a stack in a fresh browser context."""
    contexts: list[Any] = []
    boards: list[Dashboard] = []

    async def open_page(stack: Stack, open_it: bool = True) -> Dashboard:
        context = await browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = await context.new_page()
        board = Dashboard(page, stack.api_url + "/")
        boards.append(board)

        def on_console(msg: Any) -> None:
            if msg.type in ("error", "warning"):
                board.problems.append(f"console.{msg.type}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: board.problems.append(f"uncaught: {exc}"))
        if open_it:
            await board.open()
        return board

    yield open_page
    for c in contexts:
        await c.close()
    # Shown with a failing test's output: a page error often explains a timeout.
    for board in boards:
        if board.problems:
            print(f"browser console of {board.url}:", *board.problems, sep="\n  ")
