"""The dashboard in a real browser against a real stack: it loads cleanly,
follows a canary live (weights, chart, timeline), approves a PAUSE hook and
stops & rolls back a deployment through its buttons."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shiftlab.controller import eventlog
from shiftlab.controller.api import make_api_app
from shiftlab.controller.config import LifecycleHook
from tests.controller.support import config, green_alarm
from tests.helpers import eventually, free_port, logged

pytestmark = pytest.mark.browser

CANARY_50 = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 8},
             "bakeTimeInMinutes": 2}
PAUSE_HOOK = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}

# Pixels of one series colour on the chart (the group "green" is drawn in --green), read
# from a copy: reading the chart's own context back would make Chromium warn about it.
COUNT_COLOUR = """([r, g, b]) => {
    const chart = document.querySelector("#chart");
    const copy = document.createElement("canvas");
    copy.width = chart.width;
    copy.height = chart.height;
    const ctx = copy.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(chart, 0, 0);
    const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12) n += 1;
    }
    return n;
}"""
GREEN = (0x35, 0xC9, 0x8A)


async def test_the_page_loads_without_console_errors(stack_factory, dashboard, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    board = await dashboard(stack)
    page = board.page
    await page.wait_for_selector("#service-line b:text('web')")
    await board.wait_weights({"blue": 100, "green": 0})
    # Both blue tasks, with their target health read from the proxy.
    await page.wait_for_function(
        "document.querySelectorAll('.taskset[data-group=blue] .h[data-health=healthy]').length === 2",
        timeout=20_000)
    assert await page.locator(".taskset[data-group=green] .tasks li").count() == 0
    # Metrics frames arrive without any traffic, and the chart draws them.
    await page.wait_for_function("Number(document.querySelector('#chart').dataset.points) >= 3", timeout=20_000)
    assert await page.text_content("#history") == "none yet"
    # With no deployment yet, the log starts with the controller's own events.
    await page.wait_for_selector("#events li[data-kind=service] >> text=revision 1 running in blue")
    assert await page.is_disabled("#approve") and await page.is_disabled("#stop-rollback")
    assert board.problems == []


async def test_weights_and_chart_follow_a_canary(stack_factory, dashboard, load, tmp_path: Path) -> None:
    alarms = [green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 5)]
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, alarms=alarms)
    stack = await stack_factory(data)
    traffic = load(data, rps=30)
    board = await dashboard(stack)
    page = board.page
    await board.wait_weights({"blue": 100, "green": 0})
    # A few seconds of blue alone on the chart first.
    await page.wait_for_function("Number(document.querySelector('#chart').dataset.points) >= 20", timeout=20_000)
    green_before = await page.evaluate(COUNT_COLOUR, list(GREEN))

    await board.deploy("GREETING=v2", "CANARY", {
        "canaryConfiguration": CANARY_50["canaryConfiguration"], "bakeTimeInMinutes": CANARY_50["bakeTimeInMinutes"],
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}})
    await board.wait_weights({"blue": 50, "green": 50})
    alarm = page.locator("#alarms li[data-alarm=green-5xx]")
    assert "watched by the deployment" in (await alarm.text_content() or "")
    await page.wait_for_selector(".stage.current[data-stage=PRODUCTION_TRAFFIC_SHIFT]")
    # One revision was ACTIVE: ECS skips RECONCILE_SERVICE, and the board says so while the deployment runs.
    await page.wait_for_selector(".stage.skipped[data-stage=RECONCILE_SERVICE]")
    await board.wait_attr("#status", "data-status", "IN_PROGRESS")
    # The canary bake shows as a progress bar; the screenshot is taken well into it.
    await page.wait_for_function("parseFloat(document.querySelector('#bake-fill').style.width) > 45", timeout=20_000)
    await page.wait_for_function("document.querySelector('#legend').textContent.includes('green')")
    shot = await board.screenshot("dashboard.png")
    assert shot.stat().st_size > 20_000
    # Green now has traffic: its series is drawn (lines, and its band of the weight strip).
    green_during = await page.evaluate(COUNT_COLOUR, list(GREEN))
    assert green_during > green_before + 200, (green_before, green_during)
    assert await board.points() >= 20
    assert await alarm.get_attribute("data-state") == "OK"

    await board.wait_attr("#status", "data-status", "SUCCESSFUL", timeout=60)
    await board.wait_weights({"blue": 0, "green": 100})
    assert await page.locator(".stage.done").count() == 10  # the 11 of a blue/green but RECONCILE_SERVICE
    assert await page.locator(".stage.skipped").count() == 1
    assert traffic.failed == 0, traffic.summary()
    assert board.problems == []


async def test_approve_moves_a_pause_hook_on(stack_factory, dashboard, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    board = await dashboard(stack)
    page = board.page
    assert await page.is_disabled("#approve")
    await board.deploy("GREETING=v2", "BLUE_GREEN", {"lifecycleHooks": [PAUSE_HOOK]})
    await page.wait_for_selector("#approve:enabled", timeout=30_000)
    assert "POST_TEST_TRAFFIC_SHIFT" in (await page.text_content("#approval") or "")
    hook = page.locator(".stage[data-stage=POST_TEST_TRAFFIC_SHIFT] .hook[data-kind=PAUSE]")
    assert await hook.get_attribute("data-status") == "IN_PROGRESS"
    # Held: test traffic is on green, production still all on blue.
    assert ctl.current.stage == "POST_TEST_TRAFFIC_SHIFT" and ctl.current.production_percent == 0
    assert await board.weights() == {"blue": 100, "green": 0}

    # The answer to the click is the deployment as approval found it; it is held
    # here until the stream has carried the end, so the page gets that stale
    # snapshot last and must not go back to it.
    deployment_id = ctl.current.id

    async def answer_late(route: Any) -> None:
        response = await route.fetch()
        try:
            await ctl.wait_finished(deployment_id, timeout=30)
            await board.wait_attr("#status", "data-status", "SUCCESSFUL")
        finally:
            await route.fulfill(response=response)

    await page.route("**/approve", answer_late)
    await page.click("#approve")
    await page.wait_for_selector("#approve:not([aria-busy])", state="attached", timeout=30_000)
    assert await page.get_attribute("#status", "data-status") == "SUCCESSFUL"
    assert await hook.get_attribute("data-status") == "SUCCEEDED"
    assert await page.is_disabled("#approve")
    final = await ctl.wait_finished(ctl.records.recent("web", limit=1)[0].id, timeout=5)
    assert [(r.kind, r.status) for r in final.hook_runs] == [("PAUSE", "SUCCEEDED")]
    assert logged(ctl.records.events(final.id), eventlog.HOOK_APPROVED) == [
        {"stage": "POST_TEST_TRAFFIC_SHIFT", "hookIndex": 0, "executionId": final.hook_runs[0].execution_id}]
    assert board.problems == []


async def test_stop_and_roll_back(stack_factory, dashboard, load, tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 50,
                                                                           "canaryBakeTimeInMinutes": 60}})
    stack = await stack_factory(data)
    load(data, rps=20)
    board = await dashboard(stack)
    page = board.page
    await board.deploy("GREETING=v2")
    await board.wait_weights({"blue": 50, "green": 50})
    await page.click("#stop-rollback")
    await board.wait_attr("#status", "data-status", "ROLLBACK_SUCCESSFUL", timeout=30)
    await board.wait_weights({"blue": 100, "green": 0})
    # The rollback route shows on its own rail, and the buttons are off again.
    await page.wait_for_selector(".rollback-track .stage.done[data-stage=CLEAN_UP]")
    assert await page.is_disabled("#stop-rollback") and await page.is_disabled("#approve")
    final = stack.controller.records.recent("web", limit=1)[0]
    assert final.status == "ROLLBACK_SUCCESSFUL"
    assert await stack.router.weights("prod/default") == {"blue": 1, "green": 0}
    assert board.problems == []


async def in_force_on_test_rules(stack: Any) -> dict[str, dict[str, float]]:
    """What GET /api/traffic says the test rules have: percent by target group, by rule."""
    async with aiohttp.ClientSession() as s, s.get(stack.api_url + "/api/traffic") as resp:
        assert resp.status == 200
        data = await resp.json()
    return {r["rule"]: r["percent"] for r in data["rules"] if r["kind"] == "test"}


async def test_test_traffic_shown_is_the_load_balancers_through_a_rollback(stack_factory, dashboard,
                                                                          tmp_path: Path) -> None:
    # The page once showed test traffic "green 100%" after a rollback had put it back on blue.
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    board = await dashboard(stack)
    page = board.page
    rules = ["prod/test", "test/default"]  # the header rule and the test listener: both carry test traffic
    on_green = {"blue": 0.0, "green": 100.0}
    on_blue = {"blue": 100.0, "green": 0.0}
    await board.deploy("GREETING=v2", "BLUE_GREEN", {"lifecycleHooks": [PAUSE_HOOK]})
    await page.wait_for_selector("#approve:enabled", timeout=30_000)
    deployment_id = ctl.current.id
    # Held after the test shift: every test rule on green, on the load balancer and on the page.
    assert await in_force_on_test_rules(stack) == dict.fromkeys(rules, on_green)
    await eventually(lambda: shown_is(board, dict.fromkeys(rules, on_green)), timeout=20, what="test traffic on green")
    assert await board.weights() == on_blue
    # The description, opened now, stays open through the rollback.
    await page.click(f"#history tr[data-id='{deployment_id}']")
    facts = page.locator("#drawer .facts")
    await page.wait_for_function("document.querySelector('#drawer .facts')?.textContent.includes('test 100%')",
                                 timeout=10_000)

    # `shiftlab stop --rollback`: all traffic back to blue, then green stops.
    async with aiohttp.ClientSession() as s, s.post(f"{stack.api_url}/api/deployments/{deployment_id}/stop",
                                                    json={"rollback": True}) as resp:
        assert resp.status == 202
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def page_agrees_on_blue() -> bool:
        shown = await board.test_weights()  # the page first, then the load balancer
        in_force = await in_force_on_test_rules(stack)
        seen.append((shown, in_force))
        return (shown == in_force == dict.fromkeys(rules, on_blue)
                and "ROLLBACK_SUCCESSFUL" in (await facts.text_content() or ""))

    await eventually(page_agrees_on_blue, timeout=30, interval=0.05,
                     what="test traffic on blue on the load balancer, in the bars and the drawer (ROLLBACK_SUCCESSFUL)")
    # Never ahead of the load balancer: a rule shown on blue already was on blue when read just after.
    for shown, in_force in seen:
        assert all(in_force.get(rule) == on_blue for rule, pct in shown.items() if pct == on_blue), (shown, in_force)
    # The proxy itself (GET /admin/state) has what /api/traffic said.
    state = await stack.router.state()
    forward = {r["Id"]: {t["TargetGroupArn"]: t["Weight"] for t in r["Actions"][0]["ForwardConfig"]["TargetGroups"]}
               for ls in state["Listeners"] for r in ls["Rules"]}
    assert {rule: forward[rule] for rule in rules} == {rule: {"blue": 1, "green": 0} for rule in rules}
    # What a person reads: one test row, blue (revision 1) with all of it, nothing on green.
    rows = page.locator(".weight-row[data-kind=test]")
    assert await rows.count() == 1
    assert await rows.locator(".seg[data-group=blue]").text_content() == "blue \u00b7 rev 1 100%"
    assert await rows.locator(".seg[data-group=green]").text_content() == ""
    assert "green 100" not in (await page.text_content("#weights") or "")
    # The drawer's record agrees, labelled as the record (the bars are the load balancer's).
    text = await facts.text_content() or ""
    assert "requested weights" in text and "production 0%, test 0% to revision 2" in text, text
    assert "test 100%" not in text
    assert ctl.records.get(deployment_id).test_percent == 0
    assert board.problems == []


async def test_weights_name_the_revision_each_group_runs(stack_factory, dashboard, tmp_path: Path) -> None:
    # After one deployment revision 2 runs in the group called green; the next
    # one's rollback puts test traffic back there. "green 100%" alone read as
    # the new revision having it.
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    first = ctl.create_deployment({"env": {"GREETING": "v2"}})
    assert (await ctl.wait_finished(first.id, timeout=60)).status == "SUCCESSFUL"
    failing_hook = {"hookTargetArn": "command:false", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    second = ctl.create_deployment({"env": {"GREETING": "v3"}}, ctl.settings.deployment.model_copy(
        update={"lifecycleHooks": [LifecycleHook.model_validate(failing_hook)]}))
    assert (await ctl.wait_finished(second.id, timeout=60)).status == "ROLLBACK_SUCCESSFUL"
    board = await dashboard(stack)
    page = board.page
    on_green = {"blue": 0.0, "green": 100.0}
    in_force = await in_force_on_test_rules(stack)
    assert in_force == {"prod/test": on_green, "test/default": on_green}
    await eventually(lambda: shown_is(board, in_force), timeout=20, what="the test rules as the load balancer has them")
    seg = page.locator(".weight-row[data-kind=test] .seg[data-group=green]")
    assert await seg.text_content() == "green \u00b7 rev 2 100%"
    assert (await seg.get_attribute("title") or "").startswith("green (revision 2, primary): 100% of test traffic")
    assert await board.weights() == on_green
    assert board.problems == []


async def shown_is(board: Any, expected: dict[str, dict[str, float]]) -> bool:
    return await board.test_weights() == expected


async def test_log_lines_take_their_tone_from_the_event_type_not_its_words(stack_factory, dashboard,
                                                                          tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    # A line written before events had types or fields: shown as it is, without a tone.
    ctl.records.db.execute("INSERT INTO events (deployment_id, at, kind, message) VALUES (NULL, ?, 'alarm', ?)",
                           (time.time(), "old-5xx: ALARM"))
    [old] = ctl.records.events(newest=True, limit=1)
    assert old["type"] is None and old["data"] is None
    board = await dashboard(stack)
    page = board.page
    await page.wait_for_selector(f"#events li[data-seq='{old['seq']}'] >> text=old-5xx: ALARM")
    want = [
        (eventlog.alarm_state("green-5xx", "ALARM", "Threshold Crossed"), "bad"),
        (eventlog.alarm_state("hook-FAILED-count", "OK", None), ""),  # its words say FAILED; it is calm
        (eventlog.task_stopped("t-1", "blue", "blue", "1", 1, "EssentialContainerExited",
                               "Essential container in task exited"), "bad"),  # no word of trouble; it is one
        (eventlog.hook_finished("POST_SCALE_UP", 0, "d-POST_SCALE_UP-1-0", "FAILED", "exited with 3"), "bad"),
        (eventlog.hook_finished("POST_SCALE_UP", 0, "d-POST_SCALE_UP-1-0", "SUCCEEDED", None), ""),
        (eventlog.status_changed("ROLLBACK_REQUESTED", "stopped by the user"), "bad"),
        (eventlog.stage_entered("CLEAN_UP", "PRODUCTION_TRAFFIC_SHIFT", rollback=True), ""),
    ]
    for entry, _ in want:
        ctl.note(None, entry)
    seqs = [e["seq"] for e in ctl.records.events(newest=True, limit=len(want))]
    await page.wait_for_selector(f"#events li[data-seq='{seqs[-1]}']")
    shown = [await page.get_attribute(f"#events li[data-seq='{seq}']", "data-tone") for seq in [old["seq"], *seqs]]
    assert shown == ["", *(tone for _, tone in want)]
    assert await page.get_attribute(f"#events li[data-seq='{seqs[0]}']", "data-type") == "alarm.state"
    assert board.problems == []


async def test_history_row_opens_the_description(stack_factory, dashboard, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await ctl.wait_finished(d.id, timeout=60)
    board = await dashboard(stack)
    page = board.page
    await page.click(f"#history tr[data-id='{d.id}']")
    await page.wait_for_selector("#describe-json")
    shown: dict[str, Any] = json.loads(await page.text_content("#describe-json") or "{}")
    assert shown["status"] == "SUCCESSFUL"
    assert shown["serviceDeploymentArn"].endswith(d.id)
    assert shown["shiftlab"]["id"] == d.id
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#drawer")
    assert board.problems == []


async def test_a_token_is_asked_for_and_used(stack_factory, dashboard, tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    data["controller"]["token"] = "s3cret-token-for-tests"
    stack = await stack_factory(data)
    board = await dashboard(stack, open_it=False)
    page = board.page
    await page.goto(board.url)
    await page.wait_for_selector("#banner:not([hidden])")
    assert "token" in (await page.text_content("#banner") or "")
    assert not await page.is_hidden("#token-form")
    # Until then the browser reports the refused calls (401); nothing else.
    assert all("401" in p for p in board.problems), board.problems
    board.problems.clear()
    await page.fill("#token-input", "s3cret-token-for-tests")
    await page.click("#token-form button[type=submit]")
    await board.wait_attr("#conn", "data-state", "live")
    await board.wait_weights({"blue": 100, "green": 0})
    await page.wait_for_selector("#service-line b:text('web')")
    assert await page.evaluate("sessionStorage.getItem('shiftlab.token')") == "s3cret-token-for-tests"
    assert board.problems == []


async def test_reconnects_and_catches_up_after_the_api_was_away(stack_factory, dashboard, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    ctl = stack.controller
    # The page talks to an API of the test's own on the same controller, so the test can stop and restart it.
    port = free_port()

    async def serve() -> web.AppRunner:
        runner = web.AppRunner(make_api_app(ctl, None, "127.0.0.1"), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        return runner

    runner = await serve()
    board = await dashboard(stack, open_it=False)
    board.url = f"http://127.0.0.1:{port}/"
    page = board.page
    try:
        await board.open()
        await runner.cleanup()
        await board.wait_attr("#conn", "data-state", "reconnecting")
        # A whole deployment happens while the page cannot hear about it.
        d = ctl.create_deployment({"env": {"GREETING": "v2"}})
        await ctl.wait_finished(d.id, timeout=60)
        runner = await serve()
        await board.wait_attr("#conn", "data-state", "live", timeout=30)
        await board.wait_attr("#status", "data-status", "SUCCESSFUL")
        await board.wait_weights({"blue": 0, "green": 100})
        await page.wait_for_selector(f"#history tr[data-id='{d.id}']")
        await page.wait_for_selector("#events li[data-kind=status] >> text=SUCCESSFUL: deployment completed")
    finally:
        await runner.cleanup()
    # While the API was away, the browser reported the failed connections; nothing else. Refused,
    # mostly; a request caught by the API's going away is reset or never connected (seen in CI).
    away = ("ERR_CONNECTION_REFUSED", "ERR_SOCKET_NOT_CONNECTED", "ERR_CONNECTION_RESET", "ERR_CONNECTION_CLOSED",
            "ERR_EMPTY_RESPONSE")
    assert all(p.startswith("console.error: Failed to load resource: net::") and p.rsplit("::", 1)[1] in away
               for p in board.problems), board.problems


async def test_a_headless_service_shows_its_active_revision(stack_factory, dashboard, tmp_path: Path) -> None:
    """No load balancer: the service line says which revision is active, and
    follows the activation flags as they change (the stream's `activation`)."""
    from shiftlab.headless import headless_config

    data = headless_config("http://127.0.0.1:9/", str(tmp_path / "state"))
    stack = await stack_factory(data)
    board = await dashboard(stack)
    page = board.page
    await page.wait_for_selector("#service-line b:text('worker')")
    await page.wait_for_selector("#active-revisions:text('revision 1')")
    stack.controller.new_revision({"env": {"V": "2"}})
    stack.controller.set_active({"2": True, "1": False})
    await page.wait_for_selector("#active-revisions:text('revision 2')")
    assert board.problems == []
