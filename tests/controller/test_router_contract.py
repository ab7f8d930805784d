"""One contract for both Routers: the real one against a real proxy on
127.0.0.1, and the in-memory fake the driver's unit tests use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shiftlab.controller.router import FakeRouter, HttpRouter, Router, RouterError
from shiftlab.proxy.app import Proxy
from shiftlab.proxy.config import load_balancer_from_dict
from tests.helpers import free_port, lb_config


@pytest.fixture(params=["http", "fake"])
async def router(request: pytest.FixtureRequest) -> AsyncIterator[Router]:
    if request.param == "fake":
        yield FakeRouter({"prod/default": {"blue": 100, "green": 0}, "prod/test": {"blue": 100, "green": 0}},
                         ["blue", "green"], drain_seconds=5)
        return
    conf = lb_config(free_port(), health={"HealthCheckEnabled": False}, dereg_seconds=5)
    async with Proxy(load_balancer_from_dict(conf)) as px:
        r = HttpRouter(px.admin_url)
        try:
            yield r
        finally:
            await r.close()


async def test_reads_weights(router: Router) -> None:
    assert await router.weights("prod/default") == {"blue": 100, "green": 0}


async def test_set_weights_answers_the_read_back(router: Router) -> None:
    # The test rule has weights of its own once set (until then the proxy's
    # header rule follows its listener's default rule).
    assert await router.set_weights("prod/test", {"blue": 100, "green": 0}) == {"blue": 100, "green": 0}
    assert await router.set_weights("prod/default", {"blue": 90, "green": 10}) == {"blue": 90, "green": 10}
    assert await router.weights("prod/default") == {"blue": 90, "green": 10}
    assert await router.weights("prod/test") == {"blue": 100, "green": 0}  # rules are independent


async def test_target_group_arns_are_names(router: Router) -> None:
    got = await router.set_weights("prod/default", {"targetgroup/blue/1": 1, "green": 0})
    assert got == {"blue": 1, "green": 0}


@pytest.mark.parametrize(("rule", "weights"), [
    ("prod/default", {"blue": 1000, "green": 0}),
    ("prod/default", {"nosuch": 1}),
    ("nosuch/default", {"blue": 1}),
])
async def test_refusals_raise_router_error(router: Router, rule: str, weights: dict[str, int]) -> None:
    with pytest.raises(RouterError):
        await router.set_weights(rule, weights)
    if rule == "prod/default":
        assert await router.weights(rule) == {"blue": 100, "green": 0}  # nothing changed


async def test_register_and_deregister(router: Router) -> None:
    await router.register("green", [("127.0.0.1", 40001), ("127.0.0.1", 40002)])
    health = await router.target_health("green")
    assert health == {"127.0.0.1:40001": "healthy", "127.0.0.1:40002": "healthy"}
    await router.deregister("green", [("127.0.0.1", 40001)])
    # Nothing in flight: the deregistration is complete, and the target shows
    # draining until the deregistration delay (5 s) expires, as on ALB.
    assert await router.target_health("green") == {"127.0.0.1:40001": "draining", "127.0.0.1:40002": "healthy"}
    with pytest.raises(RouterError):
        await router.register("nosuch", [("127.0.0.1", 1)])


async def test_stats_carry_host_counts(router: Router) -> None:
    await router.register("blue", [("127.0.0.1", 40003)])
    stats = await router.stats()
    assert stats["targetGroups"]["blue"]["HealthyHostCount"] == 1
    assert stats["targetGroups"]["green"]["HealthyHostCount"] == 0
    assert isinstance(stats["timestamp"], float)


async def test_rules_lists_ids(router: Router) -> None:
    rules = await router.rules()
    assert {"prod/default", "prod/test"} <= set(rules)
