"""Neither control-plane API does anything for a request a web page could
make (issue 10, item 1), over real sockets against a real stack:

- a "simple" cross-site request (text/plain, a form's urlencoded or
  multipart body, no Content-Type): 415, whatever its Origin;
- a foreign `Origin` (or `null`), or `Sec-Fetch-Site: cross-site/same-site`: 403;
- a foreign `Host` (DNS rebinding): 403, reads included.

Each refused call is checked to have had no effect: no deployment, no task
command run, no target registered, weights and rules as they were, a paused
deployment still paused. The clients that should get through, the CLI's
(`shiftlab.client.Client`) and the controller's (`HttpRouter`), still do.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from shiftlab.client import Client
from shiftlab.controller import eventlog
from shiftlab.controller.router import HttpRouter
from shiftlab.stack import Stack
from tests.controller.support import config
from tests.helpers import eventually, logged

PAUSE_HOOK = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
JSON = "application/json"


def attacks(port: int) -> list[tuple[str, dict[str, str], int]]:
    """(what, headers, expected status) of each kind of request a page can make."""
    return [
        # A foreign Origin is refused first; without one (an old browser) the content type still is.
        ("text/plain, as fetch(no-cors) sends", {"Content-Type": "text/plain;charset=UTF-8",
                                                 "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, 403),
        ("a form's urlencoded body", {"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"}, 403),
        ("text/plain without Origin", {"Content-Type": "text/plain"}, 415),
        ("urlencoded without Origin", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("multipart without Origin", {"Content-Type": "multipart/form-data; boundary=x"}, 415),
        ("no Content-Type", {}, 415),
        ("JSON from another origin", {"Content-Type": JSON, "Origin": "http://127.0.0.1:1"}, 403),
        ("JSON from Origin null", {"Content-Type": JSON, "Origin": "null"}, 403),
        ("JSON from another site", {"Content-Type": JSON, "Sec-Fetch-Site": "cross-site"}, 403),
        ("JSON from a sibling site", {"Content-Type": JSON, "Sec-Fetch-Site": "same-site"}, 403),
        ("JSON to a rebound name", {"Content-Type": JSON, "Host": f"evil.example:{port}",
                                    "Origin": f"http://evil.example:{port}", "Sec-Fetch-Site": "same-origin"}, 403),
        ("JSON to a rebound name, no Origin", {"Content-Type": JSON, "Host": f"evil.example:{port}"}, 403),
    ]


async def refused(session: aiohttp.ClientSession, method: str, url: str, body: Any, port: int) -> list[str]:
    """Every attack on one call; returns what was not refused as expected."""
    wrong = []
    for what, headers, status in attacks(port):
        async with session.request(method, url, data=json.dumps(body).encode(), headers=headers) as resp:
            text = await resp.text()
            try:
                error = json.loads(text).get("error", "")
            except ValueError:
                error = ""
            if resp.status != status or not error:
                wrong.append(f"{method} {url} with {what}: {resp.status} {text[:200]}")
    return wrong


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def test_the_controller_api_refuses_what_a_page_can_send(stack_factory, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    stack: Stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    assert ctl is not None
    api, port = stack.api_url, port_of(stack.api_url)
    # What a page would run: a task command and a command hook, each leaving a file.
    evil = {"taskDefinition": {"command": ["sh", "-c", f"touch {marker}"]},
            "deploymentConfiguration": {"lifecycleHooks": [
                {"hookTargetArn": f"command:touch {marker}", "lifecycleStages": ["PRE_SCALE_UP"]}]}}
    async with aiohttp.ClientSession() as session:
        wrong = await refused(session, "POST", api + "/api/deployments", evil, port)
        for path in ("/api/deployments", "/api/service", "/"):  # a rebound page reads nothing either
            async with session.get(api + path, headers={"Host": f"evil.example:{port}"}) as resp:
                if resp.status != 403:
                    wrong.append(f"GET {path} with a rebound Host: {resp.status}")
        async with session.get(api + "/api/deployments") as resp:
            assert resp.status == 200
            assert (await resp.json())["serviceDeployments"] == [], "a refused call created a deployment"
        assert wrong == []

        # The CLI's client gets through, and a deployment waits at its PAUSE hook.
        cli = Client(api)
        started = await asyncio.to_thread(cli.post, "/api/deployments", {
            "taskDefinition": {"env": {"GREETING": "v2"}},
            "deploymentConfiguration": {"lifecycleHooks": [PAUSE_HOOK]}})
        deployment_id = started["shiftlab"]["id"]
        await eventually(lambda: ctl.current is not None and ctl.current.hook is not None
                         and ctl.current.hook.kind == "PAUSE", timeout=30, what="the PAUSE hook")
        for action, body in (("stop", {"rollback": True}), ("approve", {})):
            wrong += await refused(session, "POST", f"{api}/api/deployments/{deployment_id}/{action}", body, port)
        assert wrong == []
        # Still paused: neither approved nor stopped.
        assert ctl.current is not None and ctl.current.id == deployment_id and not ctl.current.final
        assert ctl.current.hook is not None and ctl.current.hook.kind == "PAUSE"
        events = ctl.records.events(deployment_id)
        assert logged(events, eventlog.HOOK_APPROVED) == []
        assert [e["data"]["status"] for e in events if e["kind"] == "status"] == ["PENDING", "IN_PROGRESS"]

        await asyncio.to_thread(cli.post, f"/api/deployments/{deployment_id}/approve")
        final = await ctl.wait_finished(deployment_id, timeout=60)
        assert final.status == "SUCCESSFUL"
    assert [d.id for d in ctl.records.recent("web")] == [deployment_id]
    assert not marker.exists(), "a refused call ran a command"


async def test_the_admin_api_refuses_what_a_page_can_send(stack_factory, tmp_path: Path) -> None:
    stack: Stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    assert stack.proxy is not None
    admin, port = stack.proxy.admin_url, port_of(stack.proxy.admin_url)
    router = HttpRouter(admin)
    try:
        before = await router.state()
        blue = sorted((await router.target_health("blue")).items())
        assert len(blue) == 2
        some_blue = blue[0][0].rsplit(":", 1)
        calls: list[tuple[str, str, Any]] = [
            ("PUT", "/admin/listeners/prod/rules/default/forward",
             {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 0}, {"TargetGroupArn": "green", "Weight": 1}]}),
            ("PUT", "/admin/listeners/prod/rules", []),
            ("POST", "/admin/target-groups/green/register", {"Targets": [{"Id": "127.0.0.1", "Port": 9}]}),
            ("POST", "/admin/target-groups/blue/deregister",
             {"Targets": [{"Id": some_blue[0], "Port": int(some_blue[1])}]}),
        ]
        wrong: list[str] = []
        async with aiohttp.ClientSession() as session:
            for method, path, body in calls:
                wrong += await refused(session, method, admin + path, body, port)
            for path in ("/admin/state", "/metrics", "/admin/healthz"):
                async with session.get(admin + path, headers={"Host": f"evil.example:{port}"}) as resp:
                    if resp.status != 403:
                        wrong.append(f"GET {path} with a rebound Host: {resp.status}")
        assert wrong == []
        after = await router.state()
        assert after["Listeners"] == before["Listeners"], "a refused call changed a rule or its weights"
        # (Health checks may have moved a target from initial to healthy meanwhile.)
        blue_after = await router.target_health("blue")
        assert sorted(blue_after) == [t for t, _ in blue] and "draining" not in blue_after.values(), \
            "a refused call deregistered blue"
        assert await router.target_health("green") == {}, "a refused call registered a target"

        # The controller's own client gets through: its JSON calls change what they should.
        await router.register("green", [("127.0.0.1", 9)])
        assert list(await router.target_health("green")) == ["127.0.0.1:9"]
        await router.deregister("green", [("127.0.0.1", 9)])
        assert await router.set_weights("prod/test", {"blue": 0, "green": 1}) == {"blue": 0, "green": 1}
    finally:
        await router.close()


async def test_loopback_names_and_the_apis_own_origin_are_accepted(stack_factory, tmp_path: Path) -> None:
    """What the guard must let through: every loopback spelling of the
    address, the page's own origin (the dashboard), and a body-less JSON call."""
    stack: Stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    port = port_of(stack.api_url)
    async with aiohttp.ClientSession() as session:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"127.0.0.2:{port}", f"[::1]:{port}", "localhost"):
            async with session.get(stack.api_url + "/api/service", headers={"Host": host}) as resp:
                assert resp.status == 200, host
        own = {"Content-Type": "application/json; charset=utf-8", "Origin": stack.api_url,
               "Sec-Fetch-Site": "same-origin"}
        async with session.post(stack.api_url + "/api/deployments", json={"taskDefinition": {"env": {"V": "2"}}},
                                headers=own) as resp:
            assert resp.status == 201, await resp.text()
            deployment_id = (await resp.json())["shiftlab"]["id"]
        # No body at all, but it says JSON: accepted (the stop is then the API's business).
        async with session.post(f"{stack.api_url}/api/deployments/{deployment_id}/stop",
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 202, await resp.text()
    assert stack.controller is not None
    final = await stack.controller.wait_finished(deployment_id, timeout=60)
    assert final.status == "STOPPED"
