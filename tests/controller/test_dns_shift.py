"""A LINEAR deployment across weighted DNS records (route53.TrafficShift), as
the pure machine plans it and as the driver carries it out on the in-memory
load balancer, the DNS zone and a fake clock: the steps "slowly at first,
then faster", each counted done once the records' TTL passed (the reference
architecture's ~60 s of DNS propagation between increments), then the
interval's bake; the DNS router's contract and Route 53's weight range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.fake import FakeBackend, FakeWorld
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.config import DnsTrafficShift
from shiftlab.controller.records import Records
from shiftlab.controller.router import DnsWeightedRouter, FakeRouter, RouterError
from shiftlab.controller.service import ServiceController
from shiftlab.proxy.dns import Zone
from shiftlab.settings import load_settings
from tests.controller.fakes import finished
from tests.controller.test_e2e_dns import NAME, dns_config
from tests.controller.test_machine import T0, Playbook, applied
from tests.helpers import logged


@pytest.mark.parametrize(("shift", "schedule"), [
    ({}, [(1, 1), (2, 1), (5, 1), (10, 1), (25, 1), (50, 1), (100, 0)]),
    ({"Percentages": [10, 100], "IntervalSeconds": 300}, [(10, 5), (100, 0)]),
    ({"Percentages": [100]}, [(100, 0)]),
    ({"Percentages": [1, 3, 9, 27, 81, 100], "IntervalSeconds": 90},
     [(1, 1.5), (3, 1.5), (9, 1.5), (27, 1.5), (81, 1.5), (100, 0)]),
])
def test_the_schedule_as_steps_and_bake_minutes(shift: dict[str, Any], schedule: list[tuple[float, float]]) -> None:
    assert DnsTrafficShift.model_validate(shift).schedule() == schedule


@pytest.mark.parametrize(("shift", "problem"), [
    ({"Percentages": []}, "route53.TrafficShift.Percentages: "),
    ({"Percentages": [0, 100]}, "route53.TrafficShift.Percentages[0]: 0 is out of range 1..100"),
    ({"Percentages": [50, 50, 100]}, "must rise step by step"),
    ({"Percentages": [1, 50]}, "must end at 100"),
    ({"IntervalSeconds": 0}, "route53.TrafficShift.IntervalSeconds: 0 is out of range"),
])
def test_a_bad_schedule_is_refused_naming_the_field(shift: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(DnsTrafficShift, shift, "route53.TrafficShift")
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_the_machine_steps_the_schedule_with_a_bake_after_each() -> None:
    p = Playbook({"strategy": "LINEAR"}, test_rules=False)
    p.d.schedule = [[1, 1], [5, 1], [25, 0.5], [100, 0]]
    assert p.start_to_traffic() == [m.SetWeights("production", 1.0)]
    assert p.send(applied("production", 1)) == [m.WakeAt(T0 + 1.0)]  # 1 minute at timeScale 60
    assert p.tick(1.0) == [m.SetWeights("production", 5.0)]
    assert p.send(applied("production", 5)) == [m.WakeAt(T0 + 2.0)]
    assert p.tick(1.0) == [m.SetWeights("production", 25.0)]
    assert p.send(applied("production", 25)) == [m.WakeAt(T0 + 2.5)]
    assert p.tick(0.5) == [m.SetWeights("production", 100.0)]
    assert p.send(applied("production", 100)) == [m.WakeAt(T0 + 2.5), m.StopTasks("blue")]
    # The record keeps the schedule: a restarted controller goes on with the same steps.
    again = m.Deployment.from_dict(p.d.to_dict())
    assert [s.percent for s in again.steps] == [1, 5, 25, 100]
    assert "schedule" not in Playbook({"strategy": "LINEAR"}).d.to_dict()  # older records read as before


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def dns_controller(tmp_path: Path, clock: FakeClock, deployment: dict[str, Any],
                         **more: Any) -> tuple[ServiceController, Zone, Records]:
    s = load_settings(dns_config(tmp_path, deployment, **more))
    assert s.route53 is not None
    zone = Zone(s.route53, s.time_scale)
    route = s.dns_route()
    assert route is not None
    router = DnsWeightedRouter(FakeRouter({}, ["blue", "green"], clock=clock.now), zone, *route)
    records = Records(tmp_path / "records.sqlite")
    ctl = ServiceController(s.controller_settings(), router, FakeBackend(FakeWorld(), clock=clock.now), records,
                            clock=clock)
    await ctl.start()
    return ctl, zone, records


async def test_each_step_waits_for_the_ttl_then_its_interval(tmp_path, clock) -> None:
    ctl, zone, records = await dns_controller(
        tmp_path, clock, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}, ttl=60,
        shift={"Percentages": [5, 50, 100], "IntervalSeconds": 240}, time_scale=30.0)
    try:
        assert zone.weights(NAME) == {"service-a": 1, "service-b": 0}
        d = ctl.create_deployment({"env": {"GREETING": "v2"}})
        final = await finished(ctl, clock, d.id, within=120)
        assert final.status == m.SUCCESSFUL, final.status_reason
        events = records.events(d.id, limit=10_000)
        at = {(e["type"], e["data"].get("percent")): e["at"] for e in events
              if e["type"] in (eventlog.WEIGHTS_DNS_RECORDS.name, eventlog.WEIGHTS_VERIFIED.name)}
        for pct in (5, 50, 100):
            # Verified (and the interval's bake started) a TTL (60 s / 30) after the records changed.
            assert at[("weights.verified", pct)] - at[("weights.dns_records", pct)] == pytest.approx(2)
        assert at[("weights.dns_records", 50)] - at[("weights.verified", 5)] == pytest.approx(8)  # 240 s / 30
        assert at[("weights.dns_records", 100)] - at[("weights.verified", 50)] == pytest.approx(8)
        dns = logged(events, eventlog.WEIGHTS_DNS_RECORDS)
        assert [(r["percent"], r["weights"], r["ttl"]) for r in dns] == [
            (5, {"service-a": 95, "service-b": 5}, 2), (50, {"service-a": 50, "service-b": 50}, 2),
            (100, {"service-a": 0, "service-b": 1}, 2)]
        assert zone.weights(NAME) == {"service-a": 0, "service-b": 1}
        # Green's record stays on it once promoted; the check every second leaves it so.
        await clock.advance(5)
        assert zone.weights(NAME) == {"service-a": 0, "service-b": 1}
    finally:
        await ctl.stop()
        records.close()


async def test_a_rollback_puts_all_weight_back_on_blue_and_waits_out_the_ttl(tmp_path, clock) -> None:
    ctl, zone, records = await dns_controller(
        tmp_path, clock, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}, ttl=60,
        shift={"Percentages": [10, 100], "IntervalSeconds": 600}, time_scale=20.0)
    try:
        d = ctl.create_deployment({"env": {"GREETING": "v2"}})
        while ctl.current is not None and ctl.current.production_percent != 10:
            assert await clock.advance_to_next_wake() is not None
        ctl.stop_deployment(d.id, rollback=True)
        final = await finished(ctl, clock, d.id, within=120)
        assert final.status == m.ROLLBACK_SUCCESSFUL
        assert zone.weights(NAME) == {"service-a": 1, "service-b": 0}
        events = records.events(d.id, limit=10_000)
        dns = logged(events, eventlog.WEIGHTS_DNS_RECORDS)
        assert [r["percent"] for r in dns] == [10, 0]
        back = next(e["at"] for e in events if e["type"] == eventlog.WEIGHTS_DNS_RECORDS.name
                    and e["data"]["percent"] == 0)
        # Green's tasks stop only once clients can have left them (a TTL, 60 s / 20, after the records moved back).
        stopped = [e["at"] for e in events if e["type"] == eventlog.STAGE_ENTERED.name
                   and e["data"]["stage"] == m.CLEAN_UP]
        assert stopped and stopped[-1] - back >= 3
    finally:
        await ctl.stop()
        records.close()


async def test_the_dns_router_keeps_the_router_contract_and_route53s_range(tmp_path) -> None:
    s = load_settings(dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}))
    assert s.route53 is not None
    route = s.dns_route()
    assert route == (NAME, {"blue": "service-a", "green": "service-b"})
    zone = Zone(s.route53)
    inner = FakeRouter({"lb-blue/default": {"blue": 1}}, ["blue", "green"])
    router = DnsWeightedRouter(inner, zone, *route)
    rule = f"route53/{NAME}"
    assert await router.rules() == {"lb-blue/default": None, rule: None}
    assert await router.weights(rule) == {"blue": 255, "green": 0}  # the records as configured
    assert await router.set_weights(rule, {"targetgroup/blue/1": 95, "green": 5}) == {"blue": 95, "green": 5}
    assert zone.weights(NAME) == {"service-a": 95, "service-b": 5}
    for bad in ({"blue": 999, "green": 1}, {"red": 1}):
        with pytest.raises(RouterError):
            await router.set_weights(rule, bad)
    assert zone.weights(NAME) == {"service-a": 95, "service-b": 5}  # nothing changed
    # Everything else is the load balancer's.
    assert await router.set_weights("lb-blue/default", {"blue": 2}) == {"blue": 2}
    await router.register("blue", [("127.0.0.1", 9)])
    assert await router.target_health("blue") == {"127.0.0.1:9": "healthy"}


def test_watch_shows_the_records_as_served() -> None:
    from shiftlab.view import WatchState
    from tests.controller.test_watch_view import deployment, text_of

    message = deployment([("blue", 2, 2), ("green", 2, 2)])
    message["deployment"]["shiftlab"]["dnsRecords"] = {
        "name": NAME, "rule": f"route53/{NAME}", "weights": {"service-a": 95, "service-b": 5},
        "ttl": {"service-a": 1, "service-b": 1}, "setIdentifiers": {"blue": "service-a", "green": "service-b"}}
    state = WatchState()
    state.update(message)
    assert f"DNS {NAME}  weights service-a 95, service-b 5  TTL 1 s" in text_of(state)


def test_simulate_steps_the_dns_schedule(tmp_path) -> None:
    """shiftlab simulate (virtual time) runs a LINEAR deployment across
    weighted DNS records through route53.TrafficShift's steps, as the service
    does (the TTL lag is not modelled there)."""
    from shiftlab.simulate.engine import run
    from shiftlab.simulate.scenario import load_scenario

    s = load_settings(dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0},
                                 shift={"Percentages": [5, 50, 100], "IntervalSeconds": 120}))
    scenario, traffic = load_scenario(None, {"traffic": {"rps": 20}})
    result = run(s, scenario, traffic, seed=1)
    assert [w["percent"] for w in result.weights if w["traffic"] == "production"] == [5, 50, 100]
