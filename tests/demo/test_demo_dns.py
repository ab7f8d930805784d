"""The demo's `dns` scenario (pure parts): the example config turned into
Route 53's reference architecture, and its expectations."""

from __future__ import annotations

from collections import Counter

from shiftlab.demo import DNS_LOAD_BALANCERS, SCENARIOS, Check, Seen, demo_settings
from shiftlab.loadgen import LoadResult
from shiftlab.rehearse import production_url


def test_the_scenario_runs_two_load_balancers_on_one_port_behind_the_records(tmp_path) -> None:
    s = demo_settings(SCENARIOS["dns"], 60.0, "process", str(tmp_path))
    assert s.dns_route() == ("app.shiftlab.test", {"blue": "service-blue", "green": "service-green"})
    assert {ls.Address for ls in s.load_balancer.Listeners} == set(DNS_LOAD_BALANCERS.values())
    assert len({ls.Port for ls in s.load_balancer.Listeners}) == 1
    assert production_url(s) == f"http://app.shiftlab.test:{s.load_balancer.Listeners[0].Port}/"
    assert s.route53 is not None and s.route53.Port == 0  # a free port, as every demo port


def test_its_expectations_need_both_load_balancers_reached() -> None:
    record = {"status": "ROLLBACK_SUCCESSFUL", "statusReason": None,
              "alarms": {"triggeredAlarmNames": ["service-5xx"]}, "shiftlab": {}}
    back = {"type": "weights.verified", "data": {"traffic": "all", "percent": 0}, "at": 1.0}
    load = LoadResult(errors_by_group=Counter({"green": 3}), by_group=Counter({"blue": 90, "green": 10}),
                      by_address=Counter({"127.0.0.2": 90, "127.0.0.3": 10}))
    checks: list[Check] = SCENARIOS["dns"].check(Seen(record, [back], load))
    assert [c.what for c in checks if not c.ok] == []
    load.by_address = Counter({"127.0.0.2": 100})
    assert [c.what for c in SCENARIOS["dns"].check(Seen(record, [back], load)) if not c.ok] == [
        "the load reaches both load balancers through DNS"]
