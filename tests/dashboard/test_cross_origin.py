"""A web page cannot drive the control plane (issue 10, item 1), shown in
real Chromium against a real stack:

- an attacker page on another local site (127.0.0.2) submits hidden forms
  (text/plain crafted to be JSON, and urlencoded) to POST /api/deployments
  and to the admin API's register, sends a `fetch(no-cors)` text/plain
  POST with a task command and a command hook, and tries a CORS JSON POST;
- a DNS-rebinding page: Chromium resolves rebind.test to 127.0.0.1
  (`--host-resolver-rules`), so http://rebind.test:<port>/ is, for the
  browser, the API's own origin; its same-origin JSON calls are refused
  by the Host check.

Nothing happens: no deployment, no registered target, no command ran. The
real dashboard in the same browser still deploys through its form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shiftlab.stack import Stack
from tests.controller.support import config
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Dashboard
from tests.helpers import free_port

pytestmark = pytest.mark.browser

REBIND = "rebind.test"

ATTACKER_PAGE = """<!doctype html><title>a page the user visits</title>
<iframe name="sink-form-deploy"></iframe><iframe name="sink-form-urlencoded"></iframe>
<iframe name="sink-form-register"></iframe>
<script>
const A = %(args)s;

// A form with enctype text/plain sends `name=value`: split so that the body is JSON.
function form(sink, action, enctype, name, value) {
  const f = document.createElement("form");
  Object.assign(f, { method: "POST", action, enctype, target: sink });
  const input = document.createElement("input");
  Object.assign(input, { type: "hidden", name, value });
  f.append(input);
  document.body.append(f);
  const frame = document.querySelector(`iframe[name=${sink}]`);
  const loaded = new Promise((r) => frame.addEventListener("load", r, { once: true }));
  f.submit();
  return loaded;
}

async function attack() {
  const out = {};
  await form("sink-form-deploy", A.api + "/api/deployments", "text/plain", A.deployName, A.deployValue);
  await form("sink-form-urlencoded", A.api + "/api/deployments", "application/x-www-form-urlencoded",
             "taskDefinition", A.evil);
  await form("sink-form-register", A.admin + "/admin/target-groups/green/register", "text/plain",
             A.registerName, A.registerValue);
  for (const [name, url, body] of [["no-cors deploy", A.api + "/api/deployments", A.evil],
                                   ["no-cors register", A.admin + "/admin/target-groups/green/register", A.register]]) {
    try {
      const r = await fetch(url, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body });
      out[name] = r.type;
    } catch (e) {
      out[name] = "failed: " + e;
    }
  }
  try {
    const r = await fetch(A.api + "/api/deployments", { method: "POST", headers: { "Content-Type": "application/json" },
                                                       body: A.evil });
    out["cors json deploy"] = "answered " + r.status;
  } catch (e) {
    out["cors json deploy"] = "blocked: " + e;
  }
  document.body.dataset.done = JSON.stringify(out);
}
attack();
</script>"""

SAME_ORIGIN_CALLS = """async ([path, body]) => {
  const read = await fetch(location.origin + "/" + path[0]);
  const write = await fetch(path[1], { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) });
  return [read.status, write.status, (await write.json()).error];
}"""


@pytest.fixture
async def rebinding_browser(need_browser: None) -> AsyncIterator[Any]:
    """Chromium that resolves rebind.test to 127.0.0.1, as a rebound DNS name does."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBIND} 127.0.0.1"])
        try:
            yield b
        finally:
            await b.close()


async def serve_attacker(args: dict[str, Any]) -> tuple[web.AppRunner, str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=ATTACKER_PAGE % {"args": json.dumps(args)}, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.2", port).start()
    return runner, f"http://127.0.0.2:{port}/"


async def nothing_happened(stack: Stack, marker: Path) -> None:
    assert stack.proxy is not None
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.api_url + "/api/deployments") as resp:
            assert (await resp.json())["serviceDeployments"] == [], "a page created a deployment"
        async with s.get(stack.proxy.admin_url + "/admin/target-groups/green") as resp:
            assert (await resp.json())["TargetHealthDescriptions"] == [], "a page registered a target"
    assert not await asyncio.to_thread(marker.exists), "a page ran a command"


async def test_a_page_on_another_site_cannot_deploy_or_register(stack_factory, rebinding_browser,
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    stack: Stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    assert stack.proxy is not None
    api, admin = stack.api_url, stack.proxy.admin_url
    evil = {"taskDefinition": {"command": ["sh", "-c", f"touch {marker}"]},
            "deploymentConfiguration": {"lifecycleHooks": [
                {"hookTargetArn": f"command:touch {marker}", "lifecycleStages": ["PRE_SCALE_UP"]}]}}
    args = {
        "api": api, "admin": admin, "evil": json.dumps(evil),
        # name + "=" + value is {"taskDefinition": {"command": ["sh", "-c", "touch MARKER #="]}}
        "deployName": f'{{"taskDefinition": {{"command": ["sh", "-c", "touch {marker} #', "deployValue": '"]}}',
        "registerName": '{"Targets": [{"Id": "127.0.0.1", "Port": 9, "x": "', "registerValue": '"}]}',
        "register": json.dumps({"Targets": [{"Id": "127.0.0.1", "Port": 9}]}),
    }
    body = json.loads(args["deployName"] + "=" + args["deployValue"])
    assert body["taskDefinition"]["command"][2] == f"touch {marker} #=", "the form must send a deployment"
    runner, attacker_url = await serve_attacker(args)
    context = await rebinding_browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        answers: list[tuple[str, str, int]] = []
        page.on("response", lambda r: answers.append((r.request.method, r.url, r.status)))
        await page.goto(attacker_url)
        await page.wait_for_selector("body[data-done]", timeout=20_000)
        results = json.loads(await page.get_attribute("body", "data-done") or "{}")
        # The requests reached the APIs and were refused there (a 201 or 200 would be a hole).
        posts = sorted((url, status) for method, url, status in answers if method == "POST")
        # Two forms and a fetch to each API's URL; the CORS one never leaves the browser.
        assert posts == sorted([(f"{api}/api/deployments", 403)] * 3
                               + [(f"{admin}/admin/target-groups/green/register", 403)] * 2), answers
        assert results["no-cors deploy"] == results["no-cors register"] == "opaque", results
        # A JSON POST needs a CORS preflight, which the API does not approve: the POST is never sent.
        assert results["cors json deploy"].startswith("blocked: "), results
        await nothing_happened(stack, marker)

        # DNS rebinding: for the browser, http://rebind.test:PORT/ is the API's own origin.
        for base, paths, body in (
            (api, ("api/service", "/api/deployments"), evil),
            (admin, ("admin/state", "/admin/target-groups/green/register"),
             {"Targets": [{"Id": "127.0.0.1", "Port": 9}]}),
        ):
            rebound = base.replace("127.0.0.1", REBIND)
            tab = await context.new_page()
            opened = await tab.goto(rebound + "/")
            assert opened is not None and opened.status == 403
            read, write, error = await tab.evaluate(SAME_ORIGIN_CALLS, [list(paths), body])
            assert (read, write) == (403, 403), (rebound, read, write, error)
            assert f"Host '{REBIND}:" in error, error
        await nothing_happened(stack, marker)

        # The real dashboard, in the same browser, still deploys through its form.
        board = Dashboard(await context.new_page(), api + "/")
        await board.open()
        await board.deploy("GREETING=v2", "BLUE_GREEN")
        assert stack.controller is not None and stack.controller.current is not None
        final = await stack.controller.wait_finished(stack.controller.current.id, timeout=60)
        assert final.status == "SUCCESSFUL"
        assert board.problems == []
    finally:
        await context.close()
        await runner.cleanup()
