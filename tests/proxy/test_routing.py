"""Routing through real sockets: rules by priority, every condition type,
weighted split accuracy, stickiness, test-traffic routing, and the
redirect and fixed-response actions."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest

from shiftlab.proxy.server import read_sticky_cookie, sticky_cookie_value
from tests.helpers import eventually
from tests.proxy.conftest import Backend, StartProxy, forward, get_text, group_conf, lb_conf, listener_conf


@pytest.fixture
async def trio(backends: Any) -> dict[str, Backend]:
    return {name: await backends(f"{name}-1") for name in ("blue", "green", "red")}


def groups_of(trio: dict[str, Backend]) -> list[dict[str, Any]]:
    return [group_conf(name, [b]) for name, b in trio.items()]


def rule(priority: int, conditions: list[dict[str, Any]], group: str) -> dict[str, Any]:
    return {"Priority": priority, "Conditions": conditions, "Actions": [{"Type": "forward", "TargetGroupArn": group}]}


async def who(session: aiohttp.ClientSession, url: str, **kw: Any) -> str:
    status, body, headers = await get_text(session, url, **kw)
    assert status == 200, (status, body)
    assert headers["X-Backend"] == body
    return body


async def test_rules_by_priority_then_default(start_proxy: StartProxy, trio: dict[str, Backend],
                                              client: aiohttp.ClientSession) -> None:
    def path(*values: str) -> dict[str, Any]:
        return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}

    # Listed out of order on purpose: evaluation is by priority, not position.
    rules = [rule(20, [path("/api/*")], "green"), rule(10, [path("/api/special")], "red")]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, rules=rules)], groups_of(trio)))
    url = px.listener_url()
    assert await who(client, url + "/api/special") == "red-1"
    assert await who(client, url + "/api/other") == "green-1"
    assert await who(client, url + "/API/other") == "blue-1"
    assert await who(client, url + "/") == "blue-1"
    assert await who(client, url + "/api/special?x=1") == "red-1", "the query is not part of the path"


CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = [
    ("host-header",
     {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}},
     {"headers": {"Host": "API.Example.com"}}, {"headers": {"Host": "example.org"}}),
    ("path-pattern",
     {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/v?/*"]}},
     {"path": "/v1/users"}, {"path": "/V1/users"}),
    ("http-header",
     {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["can*"]}},
     {"headers": {"x-env": "CANARY"}}, {"headers": {"X-Env": "prod"}}),
    ("http-request-method",
     {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST", "PUT"]}},
     {"method": "PUT"}, {"method": "GET"}),
    ("query-string",
     {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "version", "Value": "v2*"}]}},
     {"path": "/?VERSION=V2beta"}, {"path": "/?version=v1"}),
    ("query-string any key",
     {"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "green"}]}},
     {"path": "/?color=GREEN"}, {"path": "/?green=1"}),
    ("source-ip",
     {"Field": "source-ip", "SourceIpConfig": {"Values": ["127.0.0.0/8", "2001:db8::/32"]}},
     {}, None),
    ("source-ip elsewhere",
     {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}},
     None, {"headers": {"X-Forwarded-For": "10.1.1.1"}}),  # never the X-Forwarded-For
]


@pytest.mark.parametrize(("condition", "hit", "miss"), [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS])
async def test_condition_types_through_the_listener(start_proxy: StartProxy, trio: dict[str, Backend],
                                                    client: aiohttp.ClientSession, condition: dict[str, Any],
                                                    hit: dict[str, Any] | None, miss: dict[str, Any] | None) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, rules=[rule(1, [condition], "green")])],
                                   groups_of(trio)))
    url = px.listener_url()

    async def send(spec: dict[str, Any]) -> str:
        async with client.request(spec.get("method", "GET"), url + spec.get("path", "/"),
                                  headers=spec.get("headers")) as resp:
            assert resp.status == 200
            return await resp.text()

    if hit is not None:
        assert await send(hit) == "green-1"
    if miss is not None:
        assert await send(miss) == "blue-1"


async def test_all_conditions_of_a_rule_must_match(start_proxy: StartProxy, trio: dict[str, Backend],
                                                   client: aiohttp.ClientSession) -> None:
    conds = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
             {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["canary"]}}]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, rules=[rule(5, conds, "green")])], groups_of(trio)))
    url = px.listener_url()
    assert await who(client, url + "/api/x", headers={"X-Env": "canary"}) == "green-1"
    assert await who(client, url + "/api/x") == "blue-1"
    assert await who(client, url + "/web", headers={"X-Env": "canary"}) == "blue-1"


async def run_requests(url: str, n: int, workers: int = 8, **kw: Any) -> Counter[str]:
    """n GETs over keep-alive connections; every one must succeed."""
    counts: Counter[str] = Counter()
    todo = iter(range(n))
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            for _ in todo:
                async with session.get(url, **kw) as resp:
                    assert resp.status == 200
                    counts[await resp.text()] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return counts


async def test_split_ninety_ten_is_exact(start_proxy: StartProxy, trio: dict[str, Backend]) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 90, "green": 10})], groups_of(trio)))
    assert await run_requests(px.listener_url(), 1000) == {"blue-1": 900, "green-1": 100}


async def test_split_across_five_groups(start_proxy: StartProxy, backends: Any) -> None:
    names = ["a", "b", "c", "d", "e"]
    bs = [await backends(f"{n}-1") for n in names]
    weights = dict(zip(names, [5, 10, 20, 25, 40], strict=True))
    px = await start_proxy(lb_conf([listener_conf(weights)], [group_conf(n, [b]) for n, b in zip(names, bs,
                                                                                              strict=True)]))
    got = await run_requests(px.listener_url(), 500)
    assert got == {f"{n}-1": w * 5 for n, w in weights.items()}


async def test_round_robin_within_a_group(start_proxy: StartProxy, backends: Any) -> None:
    bs = [await backends(f"blue-{i}") for i in range(1, 4)]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", bs)]))
    assert await run_requests(px.listener_url(), 300) == {"blue-1": 100, "blue-2": 100, "blue-3": 100}


async def test_least_outstanding_requests_avoids_a_busy_target(start_proxy: StartProxy, backends: Any,
                                                                client: aiohttp.ClientSession) -> None:
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    attrs = [{"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"}]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [b1, b2], TargetGroupAttributes=attrs)]))
    url = px.listener_url()
    # Park two requests; LOR spreads them one per target.
    held = [asyncio.ensure_future(get_text(client, url + "/hold/h")) for _ in range(2)]
    await eventually(lambda: b1.held.get("h") == 1 and b2.held.get("h") == 1, what="one held request each")
    # Park a third on blue-1 by finishing blue-2's: blue-2 is then the idle one.
    b2.hold("h").set()
    await eventually(lambda: sum(1 for h in held if h.done()) == 1, what="blue-2's request to finish")
    got = Counter([await who(client, url) for _ in range(10)])
    assert got == {"blue-2": 10}, "every new request goes to the target with fewer in flight"
    b1.hold("h").set()
    await asyncio.gather(*held)


async def test_ipv6_listener_targets_and_source_ip(start_proxy: StartProxy, backends: Any,
                                                   client: aiohttp.ClientSession) -> None:
    blue, green = await backends("blue-1", host="::1"), await backends("green-1", host="::1")
    source = {"Field": "source-ip", "SourceIpConfig": {"Values": ["::1/128"]}}
    header = {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Pick", "Values": ["green"]}}
    listener = listener_conf({"blue": 1}, Address="::1", rules=[rule(1, [source, header], "green")])
    px = await start_proxy(lb_conf([listener], [group_conf("blue", [blue]), group_conf("green", [green])],
                                   Admin={"Address": "::1", "Port": 0}))
    url = px.listener_url()
    assert url == f"http://[::1]:{px.conf.Listeners[0].Port}"
    assert await who(client, url) == "blue-1"
    assert await who(client, url, headers={"X-Pick": "green"}) == "green-1"
    async with client.get(f"{px.admin_url}/admin/target-groups/blue") as resp:
        (desc,) = (await resp.json())["TargetHealthDescriptions"]
    assert desc["Target"] == {"Id": "::1", "Port": blue.port} and desc["Id"] == blue.addr


async def test_weighted_random_targets_follow_the_injected_rng(start_proxy: StartProxy, backends: Any) -> None:
    bs = [await backends(f"blue-{i}") for i in range(1, 4)]
    attrs = [{"Key": "load_balancing.algorithm.type", "Value": "weighted_random"}]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", bs, TargetGroupAttributes=attrs)]),
                           rng=random.Random(11))
    expected_rng = random.Random(11)
    expected = [f"blue-{expected_rng.randrange(3) + 1}" for _ in range(30)]
    async with aiohttp.ClientSession() as session:
        got = [await who(session, px.listener_url()) for _ in range(30)]
    assert got == expected


# -- stickiness --------------------------------------------------------------


def cookies_of(resp_headers: Any) -> dict[str, str]:
    """Set-Cookie headers by cookie name, as raw header values."""
    return {h.split("=", 1)[0]: h for h in resp_headers.getall("Set-Cookie", [])}


async def test_stickiness_cookie_pins_the_group(start_proxy: StartProxy, trio: dict[str, Backend],
                                                client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50}, sticky=7200)], groups_of(trio)))
    url = px.listener_url()
    status, first, headers = await get_text(client, url)
    assert status == 200
    set_cookies = cookies_of(headers)
    assert set(set_cookies) == {"AWSALBTG", "AWSALBTGCORS"}
    tg, cors = SimpleCookie(set_cookies["AWSALBTG"])["AWSALBTG"], SimpleCookie(
        set_cookies["AWSALBTGCORS"])["AWSALBTGCORS"]
    assert tg.value == cors.value
    assert "samesite=none" in set_cookies["AWSALBTGCORS"].lower()
    assert "secure" in set_cookies["AWSALBTGCORS"].lower()
    assert tg["path"] == "/"
    # Duration honoured: the cookie and the value inside it expire after DurationSeconds.
    expires = parsedate_to_datetime(tg["expires"]).timestamp()
    assert abs(expires - (time.time() + 7200)) < 5
    assert read_sticky_cookie(tg.value, time.time() + 7100) == first.split("-")[0]
    assert read_sticky_cookie(tg.value, time.time() + 7300) is None
    # Without the cookie the split alternates; with it every request stays put.
    got = Counter([await who(client, url, headers={"Cookie": f"AWSALBTG={tg.value}"}) for _ in range(20)])
    assert got == {first: 20}


async def test_stickiness_cookie_is_found_among_other_cookies(start_proxy: StartProxy, trio: dict[str, Backend],
                                                              client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50}, sticky=60)], groups_of(trio)))
    green = sticky_cookie_value("green", int(time.time()) + 60)
    got = Counter([await who(client, px.listener_url(), headers={"Cookie": f"other=1; AWSALBTG={green}; x=2"})
                   for _ in range(6)])
    assert got == {"green-1": 6}


async def test_cors_cookie_alone_is_sticky(start_proxy: StartProxy, trio: dict[str, Backend],
                                           client: aiohttp.ClientSession) -> None:
    """A cross-site request carries only the SameSite=None cookie; ALB honours it."""
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50}, sticky=60)], groups_of(trio)))
    url = px.listener_url()
    for group in ("green", "blue"):
        value = sticky_cookie_value(group, int(time.time()) + 60)
        got = Counter([await who(client, url, headers={"Cookie": f"other=1; AWSALBTGCORS={value}"})
                       for _ in range(6)])
        assert got == {f"{group}-1": 6}, f"AWSALBTGCORS naming {group}"


async def test_tg_cookie_wins_over_the_cors_cookie(start_proxy: StartProxy, trio: dict[str, Backend],
                                                   client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50}, sticky=60)], groups_of(trio)))
    exp = int(time.time()) + 60
    blue, green = sticky_cookie_value("blue", exp), sticky_cookie_value("green", exp)
    for cookie in (f"AWSALBTGCORS={green}; AWSALBTG={blue}", f"AWSALBTG={blue}; AWSALBTGCORS={green}"):
        got = Counter([await who(client, px.listener_url(), headers={"Cookie": cookie}) for _ in range(6)])
        assert got == {"blue-1": 6}, cookie


@pytest.mark.parametrize("case", ["expired", "unknown group", "weight now 0", "garbage"])
async def test_stale_cookie_is_ignored_and_rewritten(start_proxy: StartProxy, trio: dict[str, Backend],
                                                     client: aiohttp.ClientSession, case: str) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50}, sticky=60)], groups_of(trio)))
    now = int(time.time())
    if case == "weight now 0":
        async with client.put(f"{px.admin_url}/admin/listeners/{px.conf.Listeners[0].name}/rules/default/forward",
                              json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 1},
                                                     {"TargetGroupArn": "green", "Weight": 0}]}) as resp:
            assert resp.status == 200
    value = {
        "expired": sticky_cookie_value("green", now - 1),
        "unknown group": sticky_cookie_value("red", now + 60),
        "weight now 0": sticky_cookie_value("green", now + 60),
        "garbage": "!!notacookie",
    }[case]
    bodies = []
    for _ in range(4):
        status, body, headers = await get_text(client, px.listener_url(), headers={"Cookie": f"AWSALBTG={value}"})
        assert status == 200
        bodies.append(body)
        new = SimpleCookie(cookies_of(headers)["AWSALBTG"])["AWSALBTG"].value
        assert new != value
        assert read_sticky_cookie(new, now) == body.split("-")[0], "the new cookie names the group that served"
    if case == "weight now 0":
        assert bodies == ["blue-1"] * 4
    else:
        assert Counter(bodies) == {"blue-1": 2, "green-1": 2}, "routed by weight, not by the cookie"


async def test_no_cookie_without_stickiness(start_proxy: StartProxy, trio: dict[str, Backend],
                                            client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 50, "green": 50})], groups_of(trio)))
    _, _, headers = await get_text(client, px.listener_url())
    assert "Set-Cookie" not in headers


# -- test traffic ------------------------------------------------------------


async def test_test_header_routes_to_green_in_both_spellings(start_proxy: StartProxy, trio: dict[str, Backend],
                                                             client: aiohttp.ClientSession) -> None:
    test_rule = {"ForwardConfig": forward({"green": 1})["ForwardConfig"]}
    px = await start_proxy(lb_conf([listener_conf({"blue": 100, "green": 0}, TestTrafficRule=test_rule)],
                                   groups_of(trio)))
    url = px.listener_url()
    assert await who(client, url) == "blue-1"
    assert await who(client, url, headers={"x-amzn-ecs-blue-green-test": "1"}) == "green-1"
    assert await who(client, url, headers={"X-Amazon-ECS-blue-green-test": "anything"}) == "green-1"
    assert await who(client, url, headers={"X-AMZN-ECS-BLUE-GREEN-TEST": ""}) == "green-1"
    assert await who(client, url, headers={"x-amzn-ecs-blue-green": "1"}) == "blue-1"


async def test_test_header_exact_value(start_proxy: StartProxy, trio: dict[str, Backend],
                                       client: aiohttp.ClientSession) -> None:
    test_rule = {"header": {"name": "X-Canary", "value": {"exact": "yes"}},
                 "ForwardConfig": forward({"green": 1})["ForwardConfig"]}
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, TestTrafficRule=test_rule)], groups_of(trio)))
    url = px.listener_url()
    assert await who(client, url, headers={"x-canary": "yes"}) == "green-1"
    assert await who(client, url, headers={"x-canary": "no"}) == "blue-1"
    assert await who(client, url, headers={"x-amzn-ecs-blue-green-test": "yes"}) == "blue-1", \
        "a named header replaces the default ones"


async def test_test_rule_defaults_to_production_weights_and_is_settable(
        start_proxy: StartProxy, trio: dict[str, Backend], client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 1, "green": 0}, Name="prod")], groups_of(trio)))
    url = px.listener_url()
    hdr = {"x-amzn-ecs-blue-green-test": "1"}
    assert await who(client, url, headers=hdr) == "blue-1"
    async with client.put(f"{px.admin_url}/admin/listeners/prod/rules/test/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 0},
                                                 {"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["ForwardConfig"]["TargetGroups"] == [{"TargetGroupArn": "blue", "Weight": 0},
                                                     {"TargetGroupArn": "green", "Weight": 1}]
    assert await who(client, url, headers=hdr) == "green-1"
    assert await who(client, url) == "blue-1", "production weights are untouched"


async def test_test_rule_can_be_disabled(start_proxy: StartProxy, trio: dict[str, Backend],
                                         client: aiohttp.ClientSession) -> None:
    test_rule = {"Enabled": False, "ForwardConfig": forward({"green": 1})["ForwardConfig"]}
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, TestTrafficRule=test_rule)], groups_of(trio)))
    assert await who(client, px.listener_url(), headers={"x-amzn-ecs-blue-green-test": "1"}) == "blue-1"


async def test_separate_test_listener_has_its_own_weights(start_proxy: StartProxy, trio: dict[str, Backend],
                                                          client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([
        listener_conf({"blue": 100, "green": 0}, Name="prod"),
        listener_conf({"blue": 100, "green": 0}, Name="test"),
    ], groups_of(trio)))
    prod, test = px.listener_url("prod"), px.listener_url("test")
    assert await who(client, prod) == "blue-1"
    assert await who(client, test) == "blue-1"
    async with client.put(f"{px.admin_url}/admin/listeners/test/rules/default/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 0},
                                                 {"TargetGroupArn": "green", "Weight": 100}]}) as resp:
        assert resp.status == 200
    assert Counter([await who(client, test) for _ in range(5)]) == {"green-1": 5}
    assert Counter([await who(client, prod) for _ in range(5)]) == {"blue-1": 5}


# -- redirect and fixed-response ------------------------------------------


async def test_fixed_response_and_redirect(start_proxy: StartProxy, trio: dict[str, Backend],
                                           client: aiohttp.ClientSession) -> None:
    def at(path: str) -> list[dict[str, Any]]:
        return [{"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}}]

    rules = [
        {"Priority": 1, "Conditions": at("/maintenance"), "Actions": [{"Type": "fixed-response",
         "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain", "MessageBody": "back soon"}}]},
        {"Priority": 2, "Conditions": at("/old/*"), "Actions": [{"Type": "redirect", "RedirectConfig": {
            "StatusCode": "HTTP_301", "Host": "example.org", "Path": "/new/#{path}"}}]},
        {"Priority": 3, "Conditions": at("/tmp"), "Actions": [{"Type": "redirect", "RedirectConfig": {
            "StatusCode": "HTTP_302", "Protocol": "https", "Port": "443"}}]},
    ]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, rules=rules)], groups_of(trio)))
    url = px.listener_url()
    port = px.conf.Listeners[0].Port
    status, body, headers = await get_text(client, url + "/maintenance")
    assert (status, body, headers["Content-Type"].split(";")[0]) == (503, "back soon", "text/plain")
    async with client.get(url + "/old/page?a=1", allow_redirects=False, headers={"Host": "shop.local"}) as resp:
        assert resp.status == 301
        assert resp.headers["Location"] == f"http://example.org:{port}/new/old/page?a=1"
    async with client.get(url + "/tmp", allow_redirects=False, headers={"Host": "shop.local"}) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "https://shop.local/tmp"
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert stats["total"]["RequestCount"] == 0, "no target was chosen for any of them"
    assert trio["blue"].requests == 0


async def test_an_unmanaged_test_rule_never_serves_stale_weights(
        start_proxy: StartProxy, trio: dict[str, Backend], client: aiohttp.ClientSession) -> None:
    # On an ALB the test-traffic header rule is an ordinary rule: one that no
    # deployment moves (not in testListenerRule) must not keep forwarding to
    # the group a promotion emptied (it answered 503 after the first one).
    px = await start_proxy(lb_conf([listener_conf({"blue": 1, "green": 0}, Name="prod")], groups_of(trio)))
    url, hdr = px.listener_url(), {"x-amzn-ecs-blue-green-test": "1"}
    assert await who(client, url, headers=hdr) == "blue-1"
    async with client.put(f"{px.admin_url}/admin/listeners/prod/rules/default/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 0},
                                                 {"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 200
    async with client.post(f"{px.admin_url}/admin/target-groups/blue/deregister",
                           json={"Targets": [{"Id": trio["blue"].addr}]}) as resp:
        assert resp.status == 200
    assert await who(client, url, headers=hdr) == "green-1", "it follows the default rule"
    async with client.get(f"{px.admin_url}/admin/listeners/prod/rules/test") as resp:
        assert (await resp.json())["Follows"] == "prod/default"
    # Set on its own (a deployment manages it), it keeps its own weights.
    async with client.put(f"{px.admin_url}/admin/listeners/prod/rules/test/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 200
    async with client.get(f"{px.admin_url}/admin/listeners/prod/rules/test") as resp:
        assert "Follows" not in await resp.json()
    async with client.put(f"{px.admin_url}/admin/listeners/prod/rules/default/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 1},
                                                 {"TargetGroupArn": "green", "Weight": 0}]}) as resp:
        assert resp.status == 200
    assert await who(client, url, headers=hdr) == "green-1"
