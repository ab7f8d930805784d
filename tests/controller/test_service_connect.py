"""Service Connect on the process backend, with real tasks and sockets: a
frontend client task calls the catalog by its alias through shiftlab's
namespace proxy, production requests follow the deployment's weights, and
test requests (ECS's default header, or the alias's testTrafficRules) reach
green only.

AWS pages:
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-connect-blue-green.html
  ("By default, Service Connect recognizes the x-amzn-ecs-blue-green-test
  header for HTTP-based protocols when no custom rules are specified";
  "only requests matching test rules are sent to the green deployment")
- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceConnectTestTrafficHeaderRules.html
  and API_ServiceConnectTestTrafficHeaderMatchRules.html (header name; value.exact)
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from pathlib import Path
from typing import Any

from shiftlab.controller import eventlog
from shiftlab.controller.describe import service_view
from shiftlab.serviceconnect import ENDPOINTS_ENV, env_name
from shiftlab.settings import load_settings
from shiftlab.stack import Stack
from tests.controller.sc_support import BLUE, GREEN, TEST_HEADER, call, frontend_url, sc_config, served_by
from tests.helpers import eventually, logged

# A canary that holds green at 20 % for ten AWS minutes (ten seconds at timeScale 60).
CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
          "bakeTimeInMinutes": 0}


async def calls(url: str, n: int, headers: dict[str, str] | None = None) -> list[tuple[int, dict[str, Any]]]:
    return [await asyncio.to_thread(call, url, headers) for _ in range(n)]


async def at_canary_step(stack: Stack, deployment_id: str) -> None:
    """Until the canary's production weights (20 % green) are verified."""
    assert stack.records is not None
    records = stack.records

    def verified() -> bool:
        return any(f["traffic"] == "production" and float(f["percent"]) == 20.0
                   for f in logged(records.events(deployment_id), eventlog.WEIGHTS_VERIFIED))

    await eventually(verified, timeout=60, what="the canary's 20 % verified")


async def test_the_alias_resolves_to_the_namespace_proxy(stack_factory: Any, tmp_path: Path) -> None:
    """A client task gets the namespace's endpoints in its environment and
    reaches the catalog's tasks through the proxy's listener for the alias."""
    data = sc_config(tmp_path, CANARY)
    port = data["service"]["serviceConnectConfiguration"]["services"][0]["clientAliases"][0]["port"]
    stack = await stack_factory(data)
    assert stack.controller is not None
    env = stack.controller.task_env
    assert env[ENDPOINTS_ENV] == f"catalog:{port}=127.0.0.1:{port}"
    assert env[env_name("catalog")] == env["SHIFTLAB_SC_CATALOG"] == f"http://127.0.0.1:{port}"
    view = service_view(stack.controller)["serviceConnect"]
    assert view == {"namespace": "shop", "discoveryName": "catalog", "endpoint": f"catalog:{port}",
                    "testTrafficRules": None, "productionListenerRule": "sc-catalog/default",
                    "testListenerRules": ["sc-catalog/test"]}
    status, doc = await asyncio.to_thread(call, frontend_url(stack))
    assert status == 200, doc
    assert doc["catalogStatus"] == 200 and served_by(doc) == BLUE
    assert doc["frontend"]["service"] == "frontend"
    # The catalog's own tasks are in the namespace too (on ECS every task of a
    # Service Connect service is a client), and the alias answers on loopback.
    status, direct = await asyncio.to_thread(call, f"http://127.0.0.1:{port}/")
    assert status == 200 and direct["targetGroup"] == BLUE


async def test_production_follows_the_weights_and_the_test_header_goes_to_green_only(
        stack_factory: Any, tmp_path: Path) -> None:
    data = sc_config(tmp_path, CANARY)
    stack = await stack_factory(data)
    ctl = stack.controller
    assert ctl is not None
    url = frontend_url(stack)
    d = ctl.create_deployment({"env": {"GREETING": "green"}})
    await at_canary_step(stack, d.id)
    # Smooth weighted round robin: 20 of every 100 production requests, exactly.
    production = Counter(served_by(doc) for _, doc in await calls(url, 100))
    assert production == {BLUE: 80, GREEN: 20}
    # The header, with any value, sends a request to green only.
    for value in ("1", "true", "anything"):
        tested = Counter(served_by(doc) for _, doc in await calls(url, 10, {TEST_HEADER: value}))
        assert tested == {GREEN: 10}
    ctl.stop_deployment(d.id, rollback=True)
    await ctl.wait_finished(d.id, timeout=60)


async def test_test_traffic_rules_match_their_header_and_exact_value_only(
        stack_factory: Any, tmp_path: Path) -> None:
    rules = {"header": {"name": "x-canary", "value": {"exact": "yes"}}}
    data = sc_config(tmp_path, CANARY, test_rules=rules, propagate="x-canary,x-amzn-ecs-blue-green-test")
    stack = await stack_factory(data)
    ctl = stack.controller
    assert ctl is not None
    url = frontend_url(stack)
    d = ctl.create_deployment({"env": {"GREETING": "green"}})
    await at_canary_step(stack, d.id)
    assert Counter(served_by(doc) for _, doc in await calls(url, 10, {"x-canary": "yes"})) == {GREEN: 10}
    # Another value, or the default header once custom rules are given, is production traffic.
    other = Counter(served_by(doc) for _, doc in await calls(url, 50, {"x-canary": "no"}))
    default = Counter(served_by(doc) for _, doc in await calls(url, 50, {TEST_HEADER: "1"}))
    assert other + default == {BLUE: 80, GREEN: 20}
    ctl.stop_deployment(d.id, rollback=True)
    await ctl.wait_finished(d.id, timeout=60)


async def test_a_new_controller_adopts_the_client_tasks_its_predecessor_left(tmp_path: Path) -> None:
    """As it adopts the service's tasks: the frontend keeps running across a
    controller restart, and is not started twice."""
    data = sc_config(tmp_path, CANARY)
    first = Stack(load_settings(copy.deepcopy(data)))
    await first.start()
    try:
        assert first.clients is not None
        task = first.clients.tasks["frontend"]
    finally:
        await first.stop(stop_tasks=False)
    second = Stack(load_settings(copy.deepcopy(data)))
    await second.start()
    try:
        assert second.clients is not None
        assert second.clients.tasks["frontend"].task_id == task.task_id
        status, doc = await asyncio.to_thread(call, frontend_url(second))
        assert status == 200 and served_by(doc) == BLUE, doc
    finally:
        await second.stop()
