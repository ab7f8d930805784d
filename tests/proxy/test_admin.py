"""The admin API (the controller's contract) and /metrics."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shiftlab.common.configfile import ConfigError
from shiftlab.proxy.app import Proxy
from shiftlab.proxy.config import load_balancer_from_dict
from tests.proxy.conftest import Backend, StartProxy, forward, get_text, group_conf, lb_conf, listener_conf

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/73e2d6bc24d8a067"


@pytest.fixture
async def pair(backends: Any) -> tuple[Backend, Backend]:
    return await backends("blue-1"), await backends("green-1")


def blue_green(pair: tuple[Backend, Backend], **lb_extra: Any) -> dict[str, Any]:
    blue, green = pair
    rules = [{"Priority": 10, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
              "Actions": [forward({"blue": 1, "green": 0}, sticky=600)], "RuleArn": "arn:rule/api"}]
    return lb_conf([listener_conf({"blue": 100, "green": 0}, Name="prod", rules=rules)],
                   [group_conf("blue", [blue]), group_conf("green", [green], TargetGroupArn=ARN)], **lb_extra)


async def call(client: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with client.request(method, url, **kw) as resp:
        return resp.status, await resp.json()


async def test_state(start_proxy: StartProxy, pair: tuple[Backend, Backend], client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    status, state = await call(client, "GET", f"{px.admin_url}/admin/state")
    assert status == 200
    (listener,) = state["Listeners"]
    assert listener["Name"] == "prod" and listener["Port"] == px.conf.Listeners[0].Port
    rules = {r["Id"]: r for r in listener["Rules"]}
    assert list(rules) == ["prod/test", "prod/10", "prod/default"]
    assert rules["prod/10"]["Priority"] == 10 and rules["prod/10"]["RuleArn"] == "arn:rule/api"
    assert rules["prod/10"]["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}]
    assert rules["prod/default"]["Actions"] == [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 100}, {"TargetGroupArn": "green", "Weight": 0}],
        "TargetGroupStickinessConfig": {"Enabled": False}}}]
    assert rules["prod/test"]["TestTrafficHeader"] == ["x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test"]
    groups = {g["TargetGroupName"]: g for g in state["TargetGroups"]}
    assert groups["green"]["TargetGroupArn"] == ARN
    assert groups["blue"]["TargetHealthDescriptions"][0]["Target"] == {"Id": "127.0.0.1", "Port": pair[0].port}
    assert groups["blue"]["TargetHealthDescriptions"][0]["TargetHealth"] == {
        "State": "healthy", "Reason": "Target.HealthCheckDisabled"}


async def test_set_weights_and_read_back(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                         client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    url = f"{px.admin_url}/admin/listeners/prod/rules/10"
    body = {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 90}, {"TargetGroupArn": ARN, "Weight": 10}]}
    status, back = await call(client, "PUT", url + "/forward", json=body)
    assert status == 200
    assert back["Rule"] == "prod/10"
    assert back["ForwardConfig"] == {
        "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 90}, {"TargetGroupArn": "green", "Weight": 10}],
        "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 600},  # kept when not given
    }
    status, rule = await call(client, "GET", url)
    assert status == 200 and rule["Actions"][0]["ForwardConfig"] == back["ForwardConfig"]
    status, back = await call(client, "PUT", url + "/forward", json={
        **body, "TargetGroupStickinessConfig": {"Enabled": False}})
    assert back["ForwardConfig"]["TargetGroupStickinessConfig"] == {"Enabled": False}


@pytest.mark.parametrize(("path", "body", "status", "error"), [
    ("prod/rules/10/forward", {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 1200}]}, 400,
     "ForwardConfig.TargetGroups[0].Weight: 1200 is out of range 0..999"),
    ("prod/rules/10/forward", {"TargetGroups": [{"TargetGroupArn": "red", "Weight": 1}]}, 400,
     "ForwardConfig.TargetGroups[0].TargetGroupArn: 'red' names no target group (known: blue, green)"),
    ("prod/rules/10/forward", {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 0}, {"TargetGroupArn": "green",
                                                                                   "Weight": 0}]}, 400,
     "ForwardConfig.TargetGroups: at least one weight must be above 0"),
    ("prod/rules/10/forward", {"TargetGroups": []}, 400,
     "ForwardConfig.TargetGroups: [] - List should have at least 1 item"),
    ("prod/rules/10/forward", [1, 2], 400, "ForwardConfig"),
    ("prod/rules/99/forward", {"TargetGroups": [{"TargetGroupArn": "blue"}]}, 404, "no rule 'prod/99'"),
    ("nope/rules/default/forward", {"TargetGroups": [{"TargetGroupArn": "blue"}]}, 404, "no rule 'nope/default'"),
])
async def test_refused_weight_changes_leave_weights_alone(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                                          client: aiohttp.ClientSession, path: str, body: Any,
                                                          status: int, error: str) -> None:
    px = await start_proxy(blue_green(pair))
    got_status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/{path}", json=body)
    assert got_status == status
    assert error in got["error"], got
    _, rule = await call(client, "GET", f"{px.admin_url}/admin/listeners/prod/rules/10")
    assert rule["Actions"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": "blue", "Weight": 1}, {"TargetGroupArn": "green", "Weight": 0}]


async def test_not_json_and_non_forward_rules(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                              client: aiohttp.ClientSession) -> None:
    conf = blue_green(pair)
    conf["Listeners"][0]["Rules"].append({
        "Priority": 20, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/x"]}}],
        "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}]})
    px = await start_proxy(conf)
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules/10/forward", data=b"{nope",
                             headers={"Content-Type": "application/json"})
    assert (status, got["error"]) == (400, "the body is not JSON")
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules/20/forward",
                             json={"TargetGroups": [{"TargetGroupArn": "blue"}]})
    assert status == 409 and "fixed-response" in got["error"]


async def test_replace_rules(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                             client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    url = px.listener_url()
    new_rules = [{"Priority": 5, "Conditions": [{"Field": "http-header", "HttpHeaderConfig": {
        "HttpHeaderName": "X-Env", "Values": ["canary"]}}], "Actions": [{"Type": "forward", "TargetGroupArn": ARN}]}]
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules", json=new_rules)
    assert status == 200
    assert [r["Id"] for r in got["Rules"]] == ["prod/test", "prod/5", "prod/default"]
    assert (await get_text(client, url, headers={"X-Env": "canary"}))[1] == "green-1"
    assert (await get_text(client, url + "/api/x"))[1] == "blue-1", "the old rule is gone"


@pytest.mark.parametrize(("rules", "error"), [
    ([{"Priority": 0, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/"]}}],
       "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}],
     "Listeners[prod].Rules[0].Priority: 0 is out of range 1..50000"),
    ([{"Priority": 1, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/"]}}],
       "Actions": [{"Type": "forward", "TargetGroupArn": "red"}]}],
     "Listeners[prod].Rules[0].Actions[0].TargetGroupArn: 'red' names no target group (known: blue, green)"),
    ([{"Priority": 1, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a"]}}],
       "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]},
      {"Priority": 1, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/b"]}}],
       "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}],
     "Listeners[prod].Rules[1].Priority: 1 is used by Rules[0]"),
])
async def test_refused_rules_name_their_field(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                              client: aiohttp.ClientSession, rules: Any, error: str) -> None:
    px = await start_proxy(blue_green(pair))
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules", json=rules)
    assert status == 400
    assert error in got["error"], got
    _, state = await call(client, "GET", f"{px.admin_url}/admin/state")
    assert [r["Id"] for r in state["Listeners"][0]["Rules"]] == ["prod/test", "prod/10", "prod/default"]


async def test_rule_arns_stay_unique_across_listeners(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                                     client: aiohttp.ClientSession) -> None:
    conf = blue_green(pair)
    conf["Listeners"].append(listener_conf({"blue": 1}, Name="test"))
    px = await start_proxy(conf)
    rules = [{"Priority": 1, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/"]}}],
              "Actions": [{"Type": "forward", "TargetGroupArn": "green"}], "RuleArn": "arn:rule/api"}]
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/test/rules", json=rules)
    assert status == 400
    assert got["error"] == "Listeners[test].Rules[0].RuleArn: 'arn:rule/api' is used by another rule"
    # The listener that owns the ARN may replace its own rule.
    status, got = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules", json=rules)
    assert status == 200, got


async def test_register_and_deregister_errors(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                              client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    base = f"{px.admin_url}/admin/target-groups"
    status, got = await call(client, "POST", f"{base}/red/register", json={"Targets": [{"Id": "127.0.0.1:1"}]})
    assert status == 404 and "no target group 'red'" in got["error"]
    status, got = await call(client, "POST", f"{base}/blue/register", json={"Targets": []})
    assert status == 400
    status, got = await call(client, "POST", f"{base}/blue/register", json={"Targets": [{"Id": "127.0.0.1"}]})
    assert status == 400 and got["error"].startswith("Targets[0]: '127.0.0.1' needs a port")
    status, got = await call(client, "POST", f"{base}/blue/deregister", json={"Targets": [{"Id": "127.0.0.1:1"}]})
    assert status == 404 and "127.0.0.1:1 is not registered in blue" in got["error"]
    # By ARN, and with Id + Port as ELBv2 spells it.
    status, got = await call(client, "POST", f"{base}/{ARN.replace('/', '%2F')}/register",
                             json={"Targets": [{"Id": "127.0.0.1", "Port": pair[0].port}]})
    assert status == 200, got
    assert {d["Id"] for d in got["TargetHealthDescriptions"]} == {pair[1].addr, pair[0].addr}


async def test_stats(start_proxy: StartProxy, pair: tuple[Backend, Backend], client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    url = px.listener_url()
    for _ in range(3):
        await get_text(client, url)
    await get_text(client, url + "/status/500")
    await get_text(client, url + "/status/404")
    await get_text(client, url, headers={"x-amzn-ecs-blue-green-test": "1"})
    async with client.request("TRACE", url) as resp:
        assert resp.status == 405
    status, snap = await call(client, "GET", f"{px.admin_url}/admin/stats")
    assert status == 200
    assert isinstance(snap["timestamp"], float) and snap["loadBalancer"] == "shiftlab"
    blue = snap["targetGroups"]["blue"]
    assert blue["RequestCount"] == 6
    assert (blue["HTTPCode_Target_2XX_Count"], blue["HTTPCode_Target_4XX_Count"],
            blue["HTTPCode_Target_5XX_Count"]) == (4, 1, 1)
    assert blue["HTTPCode_ELB_5XX_Count"] == 0 and blue["HTTPCode_ELB_4XX_Count"] == 0
    assert (blue["HealthyHostCount"], blue["UnHealthyHostCount"]) == (1, 0)
    assert blue["ProcessedBytes"] > 0
    rt = blue["TargetResponseTime"]
    assert rt["count"] == 6 and 0 < rt["min"] <= rt["max"] and rt["sum"] >= rt["max"]
    assert len(rt["buckets"]) == len(snap["responseTimeBuckets"]) + 1 and sum(rt["buckets"]) == 6
    assert snap["targetGroups"]["green"]["RequestCount"] == 0
    total = snap["total"]
    assert total["RequestCount"] == 6 and total["HTTPCode_ELB_4XX_Count"] == 1
    assert total["NewConnectionCount"] >= 7 and total["ActiveConnectionCount"] >= 0


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"load_balancer": "shiftlab", "listener": "prod", **kw}.items()))


async def test_metrics_in_prometheus_format(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                            client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))
    url = px.listener_url()
    for _ in range(4):
        await get_text(client, url)
    await get_text(client, url + "/status/503")
    async with client.get(f"{px.admin_url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    m = metric_samples(text)
    blue = labels(target_group="blue")
    assert m[("shiftlab_request_count_total", blue)] == 5
    assert m[("shiftlab_httpcode_target_count_total", labels(target_group="blue", code_class="2XX"))] == 4
    assert m[("shiftlab_httpcode_target_count_total", labels(target_group="blue", code_class="5XX"))] == 1
    assert m[("shiftlab_target_response_time_seconds_count", blue)] == 5
    assert m[("shiftlab_target_response_time_seconds_bucket", labels(target_group="blue", le="+Inf"))] == 5
    assert m[("shiftlab_processed_bytes_total", blue)] > 0
    tg = (("load_balancer", "shiftlab"), ("target_group", "blue"))
    assert m[("shiftlab_healthy_host_count", tg)] == 1
    assert m[("shiftlab_unhealthy_host_count", tg)] == 0
    async with client.request("TRACE", url) as resp:
        assert resp.status == 405
    m = metric_samples(await (await client.get(f"{px.admin_url}/metrics")).text())
    assert m[("shiftlab_httpcode_elb_count_total", labels(target_group="", code="405"))] == 1


async def test_metrics_export_the_weights_in_force(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                                   client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair))

    async def weights() -> dict[tuple[str, str], float]:
        m = metric_samples(await (await client.get(f"{px.admin_url}/metrics")).text())
        out = {}
        for (name, lv), value in m.items():
            if name == "shiftlab_target_group_weight":
                d = dict(lv)
                assert d["load_balancer"] == "shiftlab" and d["listener"] == "prod"
                out[(d["rule"], d["target_group"])] = value
        return out

    assert await weights() == {
        ("test", "blue"): 100, ("test", "green"): 0,  # the test rule forwards like the default until moved
        ("10", "blue"): 1, ("10", "green"): 0,
        ("default", "blue"): 100, ("default", "green"): 0,
    }
    status, _ = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules/default/forward",
                           json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 80},
                                                  {"TargetGroupArn": "green", "Weight": 20}]})
    assert status == 200
    after = await weights()
    assert (after[("default", "blue")], after[("default", "green")]) == (80, 20)
    assert (after[("10", "blue")], after[("10", "green")]) == (1, 0), "other rules keep theirs"
    status, _ = await call(client, "PUT", f"{px.admin_url}/admin/listeners/prod/rules/default/forward",
                           json={"TargetGroups": [{"TargetGroupArn": "green", "Weight": 1}]})
    assert status == 200
    after = await weights()
    assert after[("default", "green")] == 1 and ("default", "blue") not in after, "a group left out is gone"


async def test_each_proxy_has_its_own_registry(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                               client: aiohttp.ClientSession) -> None:
    one = await start_proxy(blue_green(pair))
    two = await start_proxy(blue_green(pair))
    await get_text(client, one.listener_url())
    m1 = metric_samples(await (await client.get(f"{one.admin_url}/metrics")).text())
    m2 = metric_samples(await (await client.get(f"{two.admin_url}/metrics")).text())
    assert m1[("shiftlab_request_count_total", labels(target_group="blue"))] == 1
    assert m2.get(("shiftlab_request_count_total", labels(target_group="blue")), 0) == 0


async def test_token_required_when_set(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                       client: aiohttp.ClientSession) -> None:
    px = await start_proxy(blue_green(pair, Admin={"Port": 0, "Token": "s3cret-token-for-tests"}))
    state = f"{px.admin_url}/admin/state"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-for-tests"}):
        async with client.get(state, headers=headers) as resp:
            assert resp.status == 401
    for path in ("/admin/stats", "/metrics"):
        async with client.get(px.admin_url + path) as resp:
            assert resp.status == 401
    async with client.put(f"{px.admin_url}/admin/listeners/prod/rules/default/forward",
                          json={"TargetGroups": [{"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 401
    assert (await get_text(client, px.listener_url()))[1] == "blue-1", "a refused change changes nothing"
    async with client.get(state, headers={"Authorization": "Bearer s3cret-token-for-tests"}) as resp:
        assert resp.status == 200
    async with client.get(f"{px.admin_url}/admin/healthz") as resp:
        assert resp.status == 200


async def test_token_from_the_environment(start_proxy: StartProxy, pair: tuple[Backend, Backend],
                                          client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTLAB_TOKEN", "token-from-environment")
    px = await start_proxy(blue_green(pair))
    async with client.get(f"{px.admin_url}/admin/state") as resp:
        assert resp.status == 401
    headers = {"Authorization": "Bearer token-from-environment"}
    async with client.get(f"{px.admin_url}/admin/state", headers=headers) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_admin_needs_a_token(pair_free: None, address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    conf = load_balancer_from_dict(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", ["127.0.0.1:1"])],
                                           Admin={"Address": address, "Port": 0}))
    with pytest.raises(ConfigError) as info:
        Proxy(conf)
    assert info.value.problems[0].startswith(f"loadBalancer.Admin.Address: {address} is not a loopback address")
    assert "(set loadBalancer.Admin.Token or the SHIFTLAB_TOKEN environment variable)" in info.value.problems[0]
    # With a token the same address is accepted (not started: no traffic off loopback).
    Proxy(load_balancer_from_dict(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", ["127.0.0.1:1"])],
                                          Admin={"Address": address, "Port": 0, "Token": "a-strong-token-for-tests"})))


@pytest.fixture
def pair_free() -> None:
    """No sockets needed for the bind refusal."""
