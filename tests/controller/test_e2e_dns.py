"""Weighted DNS across two load balancers (Route 53's reference architecture
for shifting between two services, each behind its own load balancer, by
stepping weighted records; the `route53` section), end to end: a real stack
with the process backend, blue's load balancer on 127.0.0.2 and green's on
127.0.0.3 (listeners of the shiftlab proxy), shiftlab's DNS server in front,
and `shiftlab load` resolving through it.

Route 53's weighted routing:
https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html
("You can gradually change the balance by changing the weights");
the TTL: https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resource-record-sets-values-weighted.html
("If you specify a longer value for TTL ... changes to the record ... take
longer to take effect, because recursive resolvers use the values in their
cache for longer periods").
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shiftlab.common.configfile import ConfigError
from shiftlab.controller import eventlog
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.proxy.dns import DnsServer, Route53Config, Zone
from shiftlab.settings import load_settings
from tests.controller.support import SAMPLE, green_alarm, weight_steps
from tests.helpers import eventually, free_port, logged

BLUE_LB, GREEN_LB = "127.0.0.2", "127.0.0.3"
NAME = "app.shiftlab.test"


def dns_config(tmp_path: Path, deployment: dict[str, Any], alarms: list[dict[str, Any]] | None = None,
               ttl: int = 60, shift: dict[str, Any] | None = None, time_scale: float = 60.0) -> dict[str, Any]:
    port = free_port()
    hc = {"HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 2,
          "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 2,
          "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}]}

    def listener(name: str, address: str, group: str) -> dict[str, Any]:
        return {"Name": name, "Address": address, "Port": port, "TestTrafficRule": {"Enabled": False},
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": group}]}

    def record(sid: str, address: str, weight: int) -> dict[str, Any]:
        return {"Name": NAME, "Type": "A", "TTL": ttl, "SetIdentifier": sid, "Weight": weight,
                "ResourceRecords": [{"Value": address}]}

    return {
        "timeScale": time_scale,
        "loadBalancer": {"Name": "two-lbs",
                         "Listeners": [listener("lb-blue", BLUE_LB, "blue"), listener("lb-green", GREEN_LB, "green")],
                         "TargetGroups": [{"Name": n, **hc} for n in ("blue", "green")], "Admin": {"Port": 0}},
        "route53": {"Port": 0, "HostedZone": {"Name": "shiftlab.test"},
                    "ResourceRecordSets": [record("service-a", BLUE_LB, 255), record("service-b", GREEN_LB, 0)],
                    **({"TrafficShift": shift} if shift is not None else {})},
        "service": {
            "serviceName": "web", "desiredCount": 2,
            "taskDefinition": {"command": SAMPLE, "stopTimeout": 5},
            "loadBalancers": [{"targetGroupArn": "blue", "advancedConfiguration": {
                "alternateTargetGroupArn": "green", "productionListenerRule": f"route53/{NAME}"}}],
        },
        "deploymentConfiguration": deployment,
        "alarms": alarms or [],
        "controller": {"port": 0, "stateDir": str(tmp_path / "state"), "taskStartTimeoutSeconds": 20},
    }


def url(data: dict[str, Any]) -> str:
    return f"http://{NAME}:{data['loadBalancer']['Listeners'][0]['Port']}/"


def dns_records(stack: Any, deployment_id: str) -> list[dict[str, Any]]:
    return logged(stack.records.events(deployment_id), eventlog.WEIGHTS_DNS_RECORDS)


async def test_linear_steps_the_records_slowly_then_faster_and_promotes(stack_factory, tmp_path) -> None:
    data = dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0})
    stack = await stack_factory(data)
    ctl = stack.controller
    assert stack.dns is not None
    served = Zone.weights(stack.dns.zone, NAME)
    assert served == {"service-a": 1, "service-b": 0}  # the controller's: all on blue's load balancer
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    seen: list[dict[str, Any]] = []

    async def poll_describe() -> None:
        while True:
            sl = ctl.describe(ctl.current)["shiftlab"]
            if "dnsRecords" in sl:
                seen.append(sl["dnsRecords"])
            await asyncio.sleep(0.1)

    poller = asyncio.create_task(poll_describe())
    try:
        final = await ctl.wait_finished(d.id, timeout=90)
    finally:
        poller.cancel()
    assert final.status == "SUCCESSFUL", final.status_reason
    # The default schedule, as the reference architecture's state machine steps it.
    assert weight_steps(stack, d.id) == [1, 2, 5, 10, 25, 50, 100]
    assert [s.percent for s in final.steps] == [1, 2, 5, 10, 25, 50, 100]
    records = dns_records(stack, d.id)
    assert [r["percent"] for r in records] == [1, 2, 5, 10, 25, 50, 100]
    assert records[0]["weights"] == {"service-a": 99, "service-b": 1} and records[0]["ttl"] == 1  # 60 s / 60
    assert records[-1]["weights"] == {"service-a": 0, "service-b": 1}
    # DescribeServiceDeployments shows the records as served.
    assert seen and seen[0]["name"] == NAME and seen[0]["setIdentifiers"] == {"blue": "service-a",
                                                                                      "green": "service-b"}
    # The API's traffic view (the dashboard's) shows the records as served.
    import aiohttp

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.token}"} if stack.token else {}) \
            as session, session.get(stack.api_url + "/api/traffic") as resp:
        traffic = await resp.json()
    prod = next(r for r in traffic["rules"] if r["kind"] == "production")
    assert prod["rule"] == f"route53/{NAME}" and prod["percent"] == {"blue": 0.0, "green": 100.0}
    assert prod["dnsRecords"]["weights"] == {"service-a": 0, "service-b": 1}
    # Green (now primary) answers every query.
    after = await run_load(url(data), 20, 1.0, dns=stack.dns.endpoint)
    assert after.failed == 0 and set(after.by_address) == {GREEN_LB} and set(after.by_group) == {"green"}


async def test_an_alarm_fails_back_all_weight_to_blue(stack_factory, tmp_path) -> None:
    data = dns_config(tmp_path, {
        "strategy": "LINEAR", "bakeTimeInMinutes": 10,
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)],
        shift={"Percentages": [50, 100], "IntervalSeconds": 120})
    stack = await stack_factory(data)
    ctl = stack.controller
    stop = asyncio.Event()
    load = LoadResult()
    task = asyncio.create_task(run_load(url(data), 30, 90, stop=stop, result=load, dns=stack.dns.endpoint))
    try:
        d = ctl.create_deployment({"env": {"ERROR_RATE": "1.0"}})
        final = await ctl.wait_finished(d.id, timeout=90)
    finally:
        stop.set()
        await task
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == ["green-5xx"]
    records = dns_records(stack, d.id)
    assert records[-1]["percent"] == 0 and records[-1]["weights"] == {"service-a": 1, "service-b": 0}
    assert stack.dns.zone.weights(NAME) == {"service-a": 1, "service-b": 0}
    assert load.errors_by_group.keys() == {"green"}, load.summary()  # the load balancers failed nothing
    assert set(load.by_address) <= {BLUE_LB, GREEN_LB} and load.by_address[GREEN_LB] > 0
    # Once a TTL has passed, every client is back on blue's load balancer.
    after = await run_load(url(data), 20, 1.0, dns=stack.dns.endpoint)
    assert after.failed == 0 and set(after.by_address) == {BLUE_LB}


@pytest.mark.parametrize(("change", "problem"), [
    ({"route53": {"TrafficShift": {"IntervalSeconds": 30}}},
     "route53.TrafficShift.IntervalSeconds: 30 is shorter than the records' TTL (60 s)"),
    ({"route53": {"TrafficShift": {"Percentages": [10, 5, 100]}}}, "route53.TrafficShift.Percentages"),
    ({"route53": {"TrafficShift": {"Percentages": [10, 50]}}}, "route53.TrafficShift.Percentages"),
    ({"service": {"productionListenerRule": "route53/other.shiftlab.test"}},
     "service.loadBalancers[0].advancedConfiguration.productionListenerRule: 'route53/other.shiftlab.test' "
     "is not a rule"),
    ({"record0": {"ResourceRecords": [{"Value": "127.0.0.9"}]}},
     "route53.ResourceRecordSets[0].ResourceRecords[0].Value: 127.0.0.9 must be the Address of loadBalancer "
     "listeners"),
    ({"deploymentConfiguration": {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.5}}},
     "deploymentConfiguration.canaryConfiguration.canaryPercent: 0.5 is finer than weighted DNS records"),
])
def test_validate_refuses_what_cannot_work_naming_the_field(tmp_path, change: dict[str, Any], problem: str) -> None:
    data = copy.deepcopy(dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}))
    if "route53" in change:
        data["route53"].update(change["route53"])
    if "service" in change:
        data["service"]["loadBalancers"][0]["advancedConfiguration"].update(change["service"])
    if "record0" in change:
        data["route53"]["ResourceRecordSets"][0].update(change["record0"])
    if "deploymentConfiguration" in change:
        data["deploymentConfiguration"] = change["deploymentConfiguration"]
    with pytest.raises(ConfigError) as err:
        load_settings(data)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


async def test_load_through_dns_keeps_the_old_answer_until_the_ttl_ends() -> None:
    """Weights moved all to green at once: requests go on reaching blue's
    load balancer until the client's cached answer expires (TTL 2 s), which
    an ALB weight change never shows (its next request follows it)."""
    async with two_lbs_and_dns(ttl=2) as (port, zone, server):
        result = LoadResult()
        load = asyncio.create_task(run_load(f"http://{NAME}:{port}/", 40, 4.5, concurrency=4, result=result,
                                            dns=server.endpoint))
        await eventually(lambda: result.by_address[BLUE_LB] > 0, what="a first answer from blue")
        zone.set_weights(NAME, {"a": 0, "b": 1})
        blue_at_flip = result.by_address[BLUE_LB]
        await load
        s = result.summary()
        assert result.failed == 0, s
        # The lag: blue went on answering after the records moved to green...
        assert result.by_address[BLUE_LB] > blue_at_flip, s
        # ...until the TTL ended; then green only.
        last = s["byAddressPerSecond"][max(s["byAddressPerSecond"], key=int)]
        assert set(last) == {GREEN_LB}, s
        assert result.by_group["green"] == result.by_address[GREEN_LB] > 0
        # The cache, not a lookup a request: a few answers for a few TTLs.
        assert 2 <= result.dns_queries <= 4 * 4, s


async def test_the_load_command_resolves_through_the_dns_server_and_counts_by_address() -> None:
    from tests.controller.support import cli

    async with two_lbs_and_dns(ttl=60) as (port, _zone, server):
        code, out, err = await cli("load", "--url", f"http://{NAME}:{port}/", "--dns", server.endpoint,
                                   "--rps", "20", "--duration", "1")
        assert code == 0, err
        assert "by load balancer address, per second (1 DNS answers fetched)" in out, out
        assert BLUE_LB in out and GREEN_LB not in out, out
        code, out, err = await cli("load", "--url", f"http://{NAME}:{port}/", "--dns", "127.0.0.1:x",
                                   "--duration", "1")
        assert code == 2 and "--dns" in err, err
        code, out, err = await cli("load", "--url", f"http://nope.shiftlab.test:{port}/", "--dns", server.endpoint,
                                   "--rps", "5", "--duration", "1", "--json")
        assert code == 0, err
        assert json.loads(out)["connectionErrors"] >= 5  # NXDOMAIN: no address, as getaddrinfo fails


@contextlib.asynccontextmanager
async def two_lbs_and_dns(ttl: int) -> AsyncIterator[tuple[int, Zone, DnsServer]]:
    """Two HTTP servers on one port, blue's on 127.0.0.2 and green's on
    127.0.0.3, and a DNS server whose records (TTL `ttl`) put all on blue."""
    port = free_port()
    runners = []
    for address, colour in ((BLUE_LB, "blue"), (GREEN_LB, "green")):
        app = web.Application()

        async def hello(request: web.Request, colour: str = colour) -> web.Response:
            return web.Response(text=colour, headers={"X-Shiftlab-Target-Group": colour})

        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, address, port).start()
        runners.append(runner)
    zone = Zone(Route53Config.model_validate({
        "HostedZone": {"Name": "shiftlab.test"}, "ResourceRecordSets": [
            {"Name": NAME, "TTL": ttl, "SetIdentifier": "a", "Weight": 1, "ResourceRecords": [{"Value": BLUE_LB}]},
            {"Name": NAME, "TTL": ttl, "SetIdentifier": "b", "Weight": 0, "ResourceRecords": [{"Value": GREEN_LB}]},
        ]}))
    server = DnsServer(zone, "127.0.0.1", 0)
    await server.start()
    try:
        yield port, zone, server
    finally:
        await server.stop()
        for r in runners:
            await r.cleanup()


def test_the_readmes_example_is_valid() -> None:
    import yaml

    from tests.helpers import REPO

    text = (REPO / "README.md").read_text()
    section = text[text.index("### `route53`"):]
    block = section[section.index("```yaml\n") + 8:]
    settings = load_settings(yaml.safe_load(block[:block.index("```")]))
    assert settings.dns_route() == ("app.shiftlab.test", {"blue": "service-a", "green": "service-b"})
    assert [s for s, _ in settings.controller_settings().dns_schedule or []] == [1, 2, 5, 10, 25, 50, 100]


async def test_rehearse_sends_its_load_through_the_dns_server(tmp_path) -> None:

    import yaml

    from tests.controller.support import cli

    data = dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0},
                      shift={"Percentages": [50, 100], "IntervalSeconds": 60})
    data["route53"]["Port"] = free_port()
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = await cli("rehearse", "-c", str(path), "--load-rps", "20", "--json", timeout=120)
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "SUCCESSFUL"
    assert set(report["load"]["byAddress"]) == {BLUE_LB, GREEN_LB}, report["load"]
    assert report["load"]["dnsQueries"] >= 2


def test_free_ports_keep_the_two_load_balancers_on_one_port(tmp_path) -> None:
    """A rehearsal's or the pytest plugin's free ports: blue's and green's
    load balancers must stay on one port, the only one a DNS name's clients know."""
    from shiftlab.settings import on_free_ports

    data = on_free_ports(dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}))
    ports = {ls["Port"] for ls in data["loadBalancer"]["Listeners"]}
    assert len(ports) == 1 and data["route53"]["Port"] == 0
    assert load_settings(data).dns_route() is not None


def test_lint_judges_the_dns_schedule_not_linear_configuration(tmp_path) -> None:
    """shiftlab lint's step rules (SL005, SL007) read route53.TrafficShift for
    a LINEAR deployment across weighted DNS records, and name its fields."""
    from shiftlab.lint import lint

    data = dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 10,
                                 "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
                      alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2, EvaluationPeriods=3)])
    findings = {(f.rule, f.path): f.message for f in lint(load_settings(data), traffic_rps=1.0)}
    assert ("SL005", "route53.TrafficShift.IntervalSeconds") in findings, findings
    assert "the 1 min bake after step 1 (1 %)" in findings[("SL005", "route53.TrafficShift.IntervalSeconds")]
    assert ("SL007", "route53.TrafficShift.Percentages") in findings, findings


async def test_up_runs_the_dns_server_beside_a_load_balancer_process(tmp_path, processes) -> None:
    """`shiftlab up` (the load balancer a process of its own): the DNS server
    answers in the controller's process, `dig` sees blue's then green's load
    balancer, and a deployment through the API moves the records."""
    import shutil

    import aiohttp
    import yaml

    from tests.controller.subprocesses import FINAL, MARK, Api

    if shutil.which("dig") is None:
        pytest.skip("dig not installed (apt-get install dnsutils)")
    data = dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0},
                      shift={"Percentages": [50, 100], "IntervalSeconds": 60})
    data["loadBalancer"]["Admin"]["Port"] = free_port()
    data["controller"]["port"] = free_port()
    data["route53"]["Port"] = dns_port = free_port()
    data["service"]["taskDefinition"]["environment"] = {MARK: processes.marker}
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))

    async def dig_short() -> str:
        proc = await asyncio.create_subprocess_exec(
            "dig", "@127.0.0.1", "-p", str(dns_port), "+short", "+tries=1", "+time=2", NAME,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return out.decode().strip()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        api = Api(session, data)
        up = processes.start("up", "up", "-c", str(path))
        await eventually(lambda: api.serving(f"{api.controller}/api/healthz", up), timeout=30, what="the controller")
        assert await dig_short() == BLUE_LB
        async with session.post(f"{api.controller}/api/deployments",
                                json={"taskDefinition": {"env": {"GREETING": "v2"}}}) as resp:
            assert resp.status < 300, await resp.text()
            dep_id = (await resp.json())["shiftlab"]["id"]

        async def final() -> Any:
            d = await api.deployment(dep_id)
            return d if d["status"] in FINAL else None
        d = await eventually(final, timeout=60, what="the deployment's end")
        assert d["status"] == "SUCCESSFUL", d["statusReason"]
        assert await dig_short() == GREEN_LB
        after = await run_load(url(data), 10, 1.0, dns=f"127.0.0.1:{dns_port}")
        assert after.failed == 0 and set(after.by_group) == {"green"}
