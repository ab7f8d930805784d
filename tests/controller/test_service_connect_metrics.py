"""Service Connect's CloudWatch metrics (namespace AWS/ECS), as ECS publishes
them. The table below is the "Service Connect" rows of
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html
(metric, valid dimensions, unit), as written in AWS's own source of that page,
https://github.com/awsdocs/amazon-ecs-developer-guide (doc_source/cloudwatch-metrics.md,
last content commit 49232cf): per DiscoveryName, "Valid dimensions:
DiscoveryName and DiscoveryName, ServiceName, ClusterName"; per
TargetDiscoveryName, "TargetDiscoveryName and TargetDiscoveryName,
ServiceName, ClusterName". The two TLS error counts were added to the page
later (not in that source): their family follows their names. Alarms on
them are fed from the namespace proxy's stats; alarms on combinations ECS
never publishes are flagged (lint SL001, validate's warning), as for ALB's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.controller import serviceconnect as sc
from shiftlab.controller.alarms import parse_alarms
from shiftlab.lint import lint
from shiftlab.settings import load_settings
from tests.controller.sc_support import BLUE, GREEN, call, frontend_url, sc_alarm, sc_config
from tests.helpers import eventually

IN = ("DiscoveryName",)
IN3 = ("DiscoveryName", "ServiceName", "ClusterName")
OUT = ("TargetDiscoveryName",)
OUT3 = ("TargetDiscoveryName", "ServiceName", "ClusterName")

# (metric, its two valid dimension sets, unit): the page's Service Connect rows, in its order.
PAGE = [
    ("ActiveConnectionCount", IN, IN3, "Count"),
    ("NewConnectionCount", IN, IN3, "Count"),
    ("ProcessedBytes", IN, IN3, "Bytes"),
    ("RequestCount", IN, IN3, "Count"),
    ("GrpcRequestCount", IN, IN3, "Count"),
    ("HTTPCode_Target_2XX_Count", OUT, OUT3, "Count"),
    ("HTTPCode_Target_3XX_Count", OUT, OUT3, "Count"),
    ("HTTPCode_Target_4XX_Count", OUT, OUT3, "Count"),
    ("HTTPCode_Target_5XX_Count", OUT, OUT3, "Count"),
    ("RequestCountPerTarget", OUT, OUT3, "Count"),
    ("TargetProcessedBytes", OUT, OUT3, "Bytes"),
    ("TargetResponseTime", OUT, OUT3, "Milliseconds"),
    # Added to the page after 49232cf (Service Connect TLS).
    ("ClientTLSNegotiationErrorCount", IN, IN3, "Count"),
    ("TargetTLSNegotiationErrorCount", OUT, OUT3, "Count"),
]
PUBLISHED = [(m, dims) for m, one, three, _ in PAGE for dims in (one, three)]
NEVER = [
    # Each family's metrics under the other family's dimension.
    *[(m, OUT3 if one == IN else IN3, "per DiscoveryName only" if one == IN else "per TargetDiscoveryName only")
      for m, one, _three, _ in PAGE],
    ("RequestCount", ("DiscoveryName", "ServiceName"), "alone or with exactly ServiceName and ClusterName"),
    ("RequestCount", ("DiscoveryName", "ClusterName"), "alone or with exactly ServiceName and ClusterName"),
    ("HTTPCode_Target_5XX_Count", ("TargetDiscoveryName", "ClusterName"), "alone or with exactly ServiceName"),
    ("RequestCount", ("DiscoveryName", "TargetDiscoveryName"), "never both"),
]


def test_the_metrics_are_the_pages() -> None:
    assert set(sc.METRICS) == {m for m, *_ in PAGE} and len(sc.METRICS) == len(PAGE)


@pytest.mark.parametrize(("metric", "unit"), [(m, u) for m, _one, _three, u in PAGE])
def test_units_are_the_pages(metric: str, unit: str) -> None:
    assert sc.UNITS[metric] == unit


@pytest.mark.parametrize(("metric", "wrong"), [("TargetResponseTime", "Seconds"), ("ProcessedBytes", "Count"),
                                               ("RequestCount", "Bytes")])
def test_an_alarm_with_another_unit_is_refused(metric: str, wrong: str) -> None:
    alarm = sc_alarm("a", metric, 1) | {"Unit": wrong}
    with pytest.raises(ConfigError, match=f"{wrong!r} is not the unit of {metric} \\({sc.UNITS[metric]}\\)"):
        parse_alarms([alarm], [])


@pytest.mark.parametrize(("metric", "dims"), PUBLISHED)
def test_published_combinations(metric: str, dims: tuple[str, ...]) -> None:
    assert sc.unpublished(metric, dims) is None


@pytest.mark.parametrize(("metric", "dims", "why"), NEVER)
def test_combinations_ecs_never_publishes(metric: str, dims: tuple[str, ...], why: str) -> None:
    reason = sc.unpublished(metric, dims)
    assert reason is not None and why in reason


def test_cpu_of_aws_ecs_is_not_service_connect() -> None:
    """AWS/ECS holds CPUUtilization too: without a (Target)DiscoveryName it stays the tasks' usage metric."""
    assert not sc.is_service_connect("AWS/ECS", "CPUUtilization", ("ClusterName", "ServiceName"))
    assert not sc.is_service_connect("AWS/ECS", "RequestCount", ("ClusterName", "ServiceName"))
    assert sc.is_service_connect("AWS/ECS", "RequestCount", IN)


def test_an_endpoint_sums_its_blue_and_green_groups_and_counts_its_listeners_connections() -> None:
    rt = {"count": 2, "sum": 0.3, "min": 0.1, "max": 0.2, "buckets": [1, 1, 0]}
    snap: dict[str, Any] = {
        "targetGroups": {BLUE: {"RequestCount": 10, "HTTPCode_Target_5XX_Count": 1, "HealthyHostCount": 2,
                                "ProcessedBytes": 100, "TargetResponseTime": rt},
                         GREEN: {"RequestCount": 5, "HTTPCode_Target_5XX_Count": 4, "HealthyHostCount": 1,
                                 "ProcessedBytes": 50, "TargetResponseTime": {**rt, "max": 0.5}},
                         "other": {"RequestCount": 1000}},
        "listeners": {"sc-catalog": {"NewConnectionCount": 7, "ActiveConnectionCount": 3},
                      "prod": {"NewConnectionCount": 99, "ActiveConnectionCount": 9}},
    }
    sc.add_to_snapshot(snap, {"catalog": ("sc-catalog", BLUE, GREEN)})
    got = snap["serviceConnect"]["catalog"]
    assert got["RequestCount"] == 15 and got["HTTPCode_Target_5XX_Count"] == 5 and got["HealthyHostCount"] == 3
    assert got["ProcessedBytes"] == got["TargetProcessedBytes"] == 150
    assert (got["NewConnectionCount"], got["ActiveConnectionCount"]) == (7, 3)
    assert got["TargetResponseTime"]["count"] == 4 and got["TargetResponseTime"]["buckets"] == [2, 2, 0]
    assert got["TargetResponseTime"]["max"] == 0.5


def test_an_alarm_on_a_service_connect_metric_is_computed_not_left_to_put_metric_data(tmp_path: Path) -> None:
    (alarm,) = parse_alarms([sc_alarm("catalog-5xx", "HTTPCode_Target_5XX_Count", 2)], [])
    (q,) = alarm.plan.metrics
    assert q.service_connect and not q.custom and q.target_group == "servicediscovery:catalog"
    s = load_settings(sc_config(tmp_path, {"strategy": "CANARY"}, alarms=[sc_alarm("a", "RequestCount", 1)]))
    assert s.warnings() == [] and s.unfed_metrics() == []


def test_alarms_ecs_never_publishes_or_nothing_feeds_are_flagged(tmp_path: Path) -> None:
    never = sc_alarm("never", "RequestCountPerTarget", 1)
    never["Dimensions"] = [{"Name": "DiscoveryName", "Value": "catalog"}]  # per TargetDiscoveryName only
    other = sc_alarm("other", "RequestCount", 1)
    other["Dimensions"][2]["Value"] = "payments"  # not this service's endpoint
    s = load_settings(sc_config(tmp_path, {"strategy": "CANARY"}, alarms=[never, other]))
    warnings = s.warnings()
    assert any("alarms[0] (never): this alarm would never fire on AWS" in w and "per TargetDiscoveryName only" in w
               for w in warnings), warnings
    assert any("alarms[1] (other): nothing in this rehearsal feeds AWS/ECS RequestCount" in w
               for w in warnings), warnings
    findings = {(f.rule, f.path) for f in lint(s, 10.0)}
    assert ("SL001", "alarms[0]") in findings and ("SL002", "alarms[1]") in findings


async def test_metrics_from_real_requests_through_the_namespace(stack_factory: Any, tmp_path: Path) -> None:
    """Requests of a client through the alias show in RequestCount and
    NewConnectionCount of the catalog's DiscoveryName, and in
    HTTPCode_Target_2XX_Count and TargetResponseTime (milliseconds for
    Service Connect) of its TargetDiscoveryName."""
    data = sc_config(tmp_path, {"strategy": "CANARY"})
    stack = await stack_factory(data)
    ctl = stack.controller
    assert ctl is not None
    url = frontend_url(stack)
    for _ in range(12):
        status, _doc = await asyncio.to_thread(call, url)
        assert status == 200
    store = ctl.monitor.store
    key = sc.query_key([("DiscoveryName", "catalog")])

    def counted() -> bool:
        snaps = store._snaps
        return bool(snaps) and snaps[-1].get("serviceConnect", {}).get("catalog", {}).get("RequestCount", 0) >= 12

    await eventually(counted, timeout=10, what="the endpoint's requests in a scrape")
    last = store._snaps[-1]["serviceConnect"]["catalog"]
    assert last["HTTPCode_Target_2XX_Count"] >= 12 and last["NewConnectionCount"] >= 1
    # A datapoint over the whole run, as an alarm's period sees it.
    start, end = store._times[0], store._times[-1]
    before = store._snaps[0].get("serviceConnect", {}).get("catalog", {}).get("RequestCount", 0)
    assert store.datapoint("RequestCount", key, "Sum", start, end) == last["RequestCount"] - before
    ms = store.datapoint("TargetResponseTime", key, "Average", start, end)
    seconds = store.datapoint("TargetResponseTime", BLUE, "Average", start, end)
    assert ms is not None and seconds is not None and ms == pytest.approx(seconds * 1000)


def test_lint_models_a_service_connect_alarm_as_covering_blue_and_green(tmp_path: Path) -> None:
    """SL003's detection limit for the catalog's 5xx count per TargetDiscoveryName:
    at the canary's 20 % of 10 req/s, a Threshold of 2 over a 60 s period
    needs green to fail more than 2 / (10 x 60 x 0.2) = 1/60 of its requests
    (blue's requests count in the endpoint's metric too, but only green fails)."""
    from shiftlab.lint import smallest_detectable_rate

    (alarm,) = parse_alarms([sc_alarm("catalog-5xx", "HTTPCode_Target_5XX_Count", 2)], [])
    rate = smallest_detectable_rate(alarm, 10.0, 0.2, BLUE, GREEN)
    assert rate == pytest.approx(2 / 120, rel=1e-6)
    data = sc_config(tmp_path, {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20},
                                "alarms": {"alarmNames": ["catalog-5xx"], "enable": True, "rollback": True}},
                     alarms=[sc_alarm("catalog-5xx", "HTTPCode_Target_5XX_Count", 2)])
    notes = [f for f in lint(load_settings(data), 10.0) if f.rule == "SL004"]
    assert notes == []  # modelled, not "the application's own metric"


def test_simulate_rolls_back_a_faulty_green_by_its_service_connect_alarm(tmp_path: Path) -> None:
    """`shiftlab simulate` feeds Service Connect's metrics as the monitor does
    (an endpoint's blue and green groups summed): the catalog's 5xx alarm
    catches a green failing 20 % of its requests; a healthy green is promoted."""
    from shiftlab.simulate.engine import run
    from shiftlab.simulate.scenario import load_scenario

    dc = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 5},
          "alarms": {"alarmNames": ["catalog-5xx"], "enable": True, "rollback": True}}
    s = load_settings(sc_config(tmp_path, dc, alarms=[sc_alarm("catalog-5xx", "HTTPCode_Target_5XX_Count", 2)]))
    scenario, traffic = load_scenario(None, {"traffic": {"rps": 10}, "green": {"errorRate": 0.2}})
    bad = run(s, scenario, traffic, seed=1)
    assert (bad.status, bad.detected_by) == ("ROLLBACK_SUCCESSFUL", "alarm catalog-5xx")
    scenario, traffic = load_scenario(None, {"traffic": {"rps": 10}})
    assert run(s, scenario, traffic, seed=1).status == "SUCCESSFUL"
