"""`shiftlab simulate`'s models and engine (shiftlab.simulate), as tables:
traffic models and profiles, faults, the aggregate draws, and whole runs of
the controller's own state machine and alarm evaluators in virtual time,
each with the decision it must reach; then the report and the chart.

AWS behaviour the runs rely on, each from the controller's own code that
the simulation drives (and tests elsewhere): an alarm already in ALARM when
a deployment starts turns its alarms off
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html);
AWS/ECS CPUUtilization is the service's average over its tasks
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html),
so green's CPU is diluted by blue's unless the alarm names green's revision;
the circuit breaker's threshold is at least 3
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html);
a PAUSE hook's timeout rolls back by default
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-lifecycle-hooks.html).
"""

from __future__ import annotations

import copy
import random
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.settings import load_settings
from shiftlab.simulate import chart, report
from shiftlab.simulate.counts import binomial, poisson
from shiftlab.simulate.engine import RunResult, run
from shiftlab.simulate.faults import Behaviour, GreenFault, bucket_shares
from shiftlab.simulate.scenario import load_scenario
from shiftlab.simulate.traffic import Constant, Daily, recorded

BASE: dict[str, Any] = yaml.safe_load(
    resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8"))


def settings(deployment: dict[str, Any] | None = None, alarms: list[dict[str, Any]] | None = None,
             alarm_names: list[str] | None = None) -> Any:
    """The annotated example (CANARY 20 % for 5 minutes, a 2-minute bake, the
    5xx alarm over both groups), with `deployment` fields replaced."""
    data = copy.deepcopy(BASE)
    data["deploymentConfiguration"].update(deployment or {})
    if alarms is not None:
        data["alarms"] += alarms
    if alarm_names is not None:
        data["deploymentConfiguration"]["alarms"]["alarmNames"] = alarm_names
    return load_settings(data)


def simulate(s: Any = None, seed: int = 1, **world: Any) -> RunResult:
    world.setdefault("traffic", {"rps": 20})
    scenario, traffic = load_scenario(None, world)
    return run(s or settings(), scenario, traffic, seed=seed)


def median(d: dict[str, float | None]) -> float:
    value = d["median"]
    assert value is not None
    return value


def production_steps(r: RunResult) -> list[float]:
    return [w["percent"] for w in r.weights if w["traffic"] == "production"]


# -- traffic -----------------------------------------------------------------------

@pytest.mark.parametrize(("model", "t", "rps"), [
    (Constant(50), 0, 50),
    (Constant(50), 3600, 50),
    (Daily(10, 110, peak_hour=14, start_hour=14), 0, 110),  # at the peak
    (Daily(10, 110, peak_hour=14, start_hour=2), 0, 10),  # 12 hours away: the trough
    (Daily(10, 110, peak_hour=14, start_hour=8), 0, 60),  # 6 hours away: half-way
    (Daily(10, 110, peak_hour=14, start_hour=8), 6 * 3600, 110),
])
def test_traffic_models(model: Any, t: float, rps: float) -> None:
    assert model.rps(t) == pytest.approx(rps)


@pytest.mark.parametrize(("text", "per_minute"), [
    ('{"requests": 1200, "seconds": 60, "statuses": {"200": 1200}}', (20.0,)),  # shiftlab load --json
    ("minute,requests\n0,600\n1,1200\n", (10.0, 20.0)),  # a header, then counts
    ("600\n0\n1200", (10.0, 0.0, 20.0)),  # a quiet minute is allowed
    ("2026-01-01T10:00,60\n2026-01-01T10:01,120", (1.0, 2.0)),  # the last column counts
])
def test_recorded_profiles(text: str, per_minute: tuple[float, ...]) -> None:
    profile = recorded(text, "p.csv")
    assert profile.per_minute == per_minute
    assert profile.rps(0) == per_minute[0]
    assert profile.rps(60 * len(per_minute) + 1) == per_minute[0]  # replayed from its start


@pytest.mark.parametrize(("text", "error"), [
    ('{"requests": 10}', "p.csv: not a `shiftlab load --json` summary"),
    ("minute,requests\n0,abc", "p.csv:2: 'abc' is not a request count"),
    ("0\n0", "p.csv: the profile has no traffic"),
    ("minute,requests", "p.csv: no per-minute request counts"),
    ("5\n-3", "p.csv:2: '-3' is not a request count"),
])
def test_bad_profiles_name_the_file_and_line(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace("[", r"\[")):
        recorded(text, "p.csv")


# -- faults and scenarios ----------------------------------------------------------

@pytest.mark.parametrize(("fault", "t", "green_rps", "active"), [
    (GreenFault(errorRate=0.1), 0, 1, True),
    (GreenFault(errorRate=0.1, startsAfterMinutes=10), 599, 1, False),
    (GreenFault(errorRate=0.1, startsAfterMinutes=10), 600, 1, True),
    (GreenFault(errorRate=0.1, onlyAboveRps=50), 0, 49.9, False),
    (GreenFault(errorRate=0.1, onlyAboveRps=50), 0, 50, True),
    (GreenFault(errorRate=0.1, startsAfterMinutes=5, onlyAboveRps=50), 200, 80, False),
])
def test_when_a_fault_shows(fault: GreenFault, t: float, green_rps: float, active: bool) -> None:
    assert fault.active(t, green_rps) is active


def test_green_is_blue_but_for_its_fault() -> None:
    blue = Behaviour(errorRate=0.001, cpuPercent=30)
    green = GreenFault(errorRate=0.2).applied(blue)
    assert (green.errorRate, green.cpuPercent, green.latency) == (0.2, 30, blue.latency)


@pytest.mark.parametrize(("p50", "p99"), [(20, 80), (200, 2000), (5, 5)])
def test_latency_buckets_hold_the_distribution(p50: float, p99: float) -> None:
    from shiftlab.proxy.stats import BOUNDS

    shares = bucket_shares(p50, p99)
    assert sum(shares) == pytest.approx(1.0)
    # Half the responses at or below the bucket holding p50, 99 % below p99's.
    def below(ms: float) -> float:
        return sum(shares[: next(i for i, b in enumerate(BOUNDS) if b >= ms / 1000) + 1])
    assert below(p50) >= 0.5 - 1e-9 and below(p50 * 0.85) <= 0.5
    assert below(p99) >= 0.99 - 1e-9


@pytest.mark.parametrize(("world", "problem"), [
    ({"green": {"errorRate": 2}}, "scenario.green.errorRate: 2 is out of range 0..1"),
    ({"traffic": {"rps": 5, "daily": {"trough": 1, "peak": 2}}}, "scenario.traffic: "),
    ({"traffic": {"daily": {"trough": 9, "peak": 2}}}, "scenario.traffic.daily: "),
    ({"green": {"latency": {"p50Ms": 90, "p99Ms": 10}}}, "scenario.green.latency: "),
    ({"hooks": [{"hook": 0, "answer": "MAYBE"}]}, "scenario.hooks[0].answer: "),
    ({"blue": {"colour": "blue"}}, "scenario.blue.colour: "),
])
def test_a_bad_scenario_names_the_field(world: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_scenario(None, world)
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


# -- the aggregate draws -----------------------------------------------------------

@pytest.mark.parametrize("lam", [0.3, 5, 29, 31, 400, 20_000])
def test_poisson_counts_have_the_mean_and_variance(lam: float) -> None:
    rng = random.Random(3)
    xs = [poisson(rng, lam) for _ in range(4000)]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    assert mean == pytest.approx(lam, rel=0.05, abs=0.05)
    assert var == pytest.approx(lam, rel=0.15, abs=0.1)


@pytest.mark.parametrize(("n", "p"), [(10, 0.3), (50, 0.02), (1000, 0.001), (1000, 0.999), (10_000, 0.2), (5, 0),
                                      (5, 1)])
def test_binomial_counts_have_the_mean_and_stay_in_range(n: int, p: float) -> None:
    rng = random.Random(5)
    xs = [binomial(rng, n, p) for _ in range(3000)]
    assert all(0 <= x <= n for x in xs)
    assert sum(xs) / len(xs) == pytest.approx(n * p, rel=0.05, abs=0.05)


# -- whole runs: the decisions -----------------------------------------------------

def test_a_healthy_canary_succeeds_on_the_plans_schedule() -> None:
    r = simulate()
    assert r.status == "SUCCESSFUL"
    assert production_steps(r) == [20, 100]
    # Green up after 60 s, the 5-minute canary bake, the 2-minute bake, the 30 s deregistration delay.
    assert r.duration == pytest.approx(1 + 5 + 2 + 0.5)
    assert [s["stage"] for s in r.stages][-3:] == ["POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"]
    assert r.green_failed == r.failed == 0 and r.fault_at is None and r.time_to_detect is None
    assert 0.2 * 20 * 60 * 5 < r.green_requests < r.requests


def test_behind_an_nlb_each_traffic_shift_waits_ecss_ten_minutes() -> None:
    """ECS adds 10 minutes to TEST_TRAFFIC_SHIFT and to each PRODUCTION_TRAFFIC_SHIFT behind a Network Load
    Balancer (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html):
    simulate plans the deployment as the controller does (ControllerSettings.plan_fields)."""
    data = yaml.safe_load(resources.files("shiftlab").joinpath("examples/nlb.yaml").read_text(encoding="utf-8"))
    r = simulate(load_settings(data))
    assert r.status == "SUCCESSFUL"
    # Green up at 1, test shift + 10, canary shift + 10 then its 2-minute bake, full shift + 10.
    assert [(w["traffic"], w["percent"], w["t"]) for w in r.weights] == [
        ("test", 100.0, 1.0), ("production", 20.0, 11.0), ("production", 100.0, 23.0)]


@pytest.mark.parametrize(("world", "steps", "fault_from"), [
    # Bad from the start: caught at the canary.
    ({"green": {"errorRate": 0.5}}, [20], 1.0),
    # Bad only after the canary bake (1 + 5 minutes): the canary passes, the full shift is caught.
    ({"green": {"errorRate": 0.5, "startsAfterMinutes": 7}}, [20, 100], 7.0),
    # Bad only under load: 4 req/s at the canary pass, 20 req/s at 100 % do not.
    ({"green": {"errorRate": 0.5, "onlyAboveRps": 10}}, [20, 100], 6.0),
])
def test_a_bad_green_is_rolled_back_by_the_alarm(world: dict[str, Any], steps: list[float], fault_from: float) -> None:
    r = simulate(**world)
    assert r.status == "ROLLBACK_SUCCESSFUL"
    assert r.triggered_alarms == ["service-5xx"] and r.detected_by == "alarm service-5xx"
    assert production_steps(r) == steps
    assert r.fault_at is not None and fault_from <= r.fault_at < fault_from + 0.2
    assert r.time_to_detect is not None and 0 < r.time_to_detect <= 2.5  # a 60 s period and the next look
    assert r.time_to_rollback == r.time_to_detect  # weights move at once
    assert r.green_failed > 0 and r.failed == r.green_failed  # blue fails nothing
    assert [a["state"] for a in r.alarm_timeline if a["t"] >= 0][-1] == "ALARM"


def test_a_smaller_canary_has_a_smaller_blast_radius_but_a_slower_detection() -> None:
    small = [simulate(settings({"canaryConfiguration": {"canaryPercent": 5, "canaryBakeTimeInMinutes": 5}}),
                      seed=i, green={"errorRate": 0.2}) for i in range(30)]
    big = [simulate(settings({"canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 5}}),
                    seed=i, green={"errorRate": 0.2}) for i in range(30)]
    s, b = report.summarize("5%", small), report.summarize("50%", big)
    assert s.rolled_back == b.rolled_back == 30
    assert median(s.blast_radius) < median(b.blast_radius)
    assert median(s.time_to_detect) > median(b.time_to_detect)


def test_an_alarm_already_in_alarm_at_the_start_turns_the_alarms_off() -> None:
    # Blue's own 5xx (25 % of 20 req/s) keep service-5xx in ALARM: ECS watches no alarm of this deployment.
    r = simulate(blue={"errorRate": 0.25}, green={"errorRate": 0.5})
    assert r.status == "SUCCESSFUL" and r.triggered_alarms == []
    assert r.green_failed > 0


def test_a_crash_below_the_circuit_breakers_threshold_goes_unnoticed() -> None:
    # Two tasks exit once (the threshold is at least 3): replaced, while green's share fails with 502s.
    r = simulate(green={"crashAtMinutes": 3})
    assert r.status == "SUCCESSFUL"
    assert r.fault_at == pytest.approx(3.0, abs=0.01)
    assert r.green_failed > 0


def test_a_crash_loop_trips_the_circuit_breaker() -> None:
    r = simulate(green={"crashAtMinutes": 3, "crashLoopSeconds": 20})
    assert r.status == "ROLLBACK_SUCCESSFUL" and r.detected_by == "circuit breaker"
    assert "circuit breaker" in (r.reason or "")


CPU = {"AlarmName": "cpu", "Namespace": "AWS/ECS", "MetricName": "CPUUtilization", "Statistic": "Average",
       "Period": 60, "EvaluationPeriods": 2, "Threshold": 70, "ComparisonOperator": "GreaterThanThreshold"}
SERVICE = [{"Name": "ClusterName", "Value": "local"}, {"Name": "ServiceName", "Value": "web"}]


@pytest.mark.parametrize(("dimensions", "outcome"), [
    # The service's average: 2 blue tasks at 20 %, 2 green at 95 %: 57.5 %, under 70 %.
    (SERVICE, "SUCCESSFUL"),
    # Green's revision alone (shiftlab's TaskDefinitionRevision dimension): 95 %.
    ([*SERVICE, {"Name": "TaskDefinitionRevision", "Value": "2"}], "ROLLBACK_SUCCESSFUL"),
])
def test_a_cpu_alarm_through_the_usage_book(dimensions: list[dict[str, str]], outcome: str) -> None:
    s = settings(alarms=[{**CPU, "Dimensions": dimensions}], alarm_names=["cpu"])
    r = simulate(s, green={"cpuPercent": 95})
    assert r.status == outcome, r.reason
    assert r.green_failed == 0


def test_the_walkthroughs_business_metric_alarm_sees_green_publish() -> None:
    import json

    from tests.helpers import aws_walkthrough
    alarm = json.loads((aws_walkthrough() / "canary-business-alarm.json").read_text())
    s = settings(alarms=[alarm], alarm_names=[alarm["AlarmName"]])
    metric = {"Namespace": "CustomApp/Payments", "MetricName": "TransactionFailureRate", "blue": 0.1, "green": 2.0}
    bad = simulate(s, metrics=[metric])
    assert bad.status == "ROLLBACK_SUCCESSFUL" and bad.triggered_alarms == [alarm["AlarmName"]]
    good = simulate(s, metrics=[{**metric, "green": 0.1}])
    assert good.status == "SUCCESSFUL"


HOOK = {"hookTargetArn": "http://127.0.0.1:9/hook", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
PAUSE = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
         "timeoutConfiguration": {"timeoutInMinutes": 10, "action": "ROLLBACK"}}


@pytest.mark.parametrize(("hook", "model", "status", "duration"), [
    (HOOK, {"hook": 0, "seconds": 120}, "SUCCESSFUL", 8.5 + 2),
    (HOOK, {"hook": 0, "seconds": 30, "inProgressCalls": 2, "callBackDelaySeconds": 60}, "SUCCESSFUL",
     8.5 + 3 * 0.5 + 2 * 1),
    (HOOK, {"hook": 0, "seconds": 30, "answer": "FAILED"}, "ROLLBACK_SUCCESSFUL", 1 + 0.5 + 0.5),
    (PAUSE, {"hook": 0, "approveAfterMinutes": 3}, "SUCCESSFUL", 8.5 + 3),
    (PAUSE, {"hook": 0, "approveAfterMinutes": None}, "ROLLBACK_SUCCESSFUL", 1 + 10 + 0.5),
])
def test_hooks_and_approvals_as_durations_and_answers(hook: dict[str, Any], model: dict[str, Any], status: str,
                                                      duration: float) -> None:
    r = simulate(settings({"lifecycleHooks": [hook]}), hooks=[model])
    assert r.status == status, r.reason
    assert r.duration == pytest.approx(duration, abs=0.01)
    if status != "SUCCESSFUL":
        assert r.detected_by == "lifecycle hook"


def test_a_rolling_deployment_replaces_the_tasks() -> None:
    data = copy.deepcopy(BASE)
    data["deploymentConfiguration"] = {"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 100}
    r = simulate(load_settings(data))
    assert r.status == "SUCCESSFUL", r.reason
    assert r.green_requests > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_seed_gives_the_same_run(seed: int) -> None:
    a, b = simulate(seed=seed, green={"errorRate": 0.05}), simulate(seed=seed, green={"errorRate": 0.05})
    assert (a.requests, a.green_failed, a.detected_at, a.stages) == (b.requests, b.green_failed, b.detected_at,
                                                                      b.stages)


def test_time_scale_does_not_change_the_simulation() -> None:
    data = copy.deepcopy(BASE)
    r60 = simulate(load_settings(data), green={"errorRate": 0.3})
    data["timeScale"] = 1
    r1 = simulate(load_settings(data), green={"errorRate": 0.3})
    assert (r60.status, r60.duration, r60.green_failed) == (r1.status, r1.duration, r1.green_failed)


# -- the report and the chart ------------------------------------------------------

@pytest.mark.parametrize(("values", "q", "want"), [
    ([], 0.5, None), ([3.0], 0.95, 3.0), ([1.0, 2.0, 3.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
    (list(map(float, range(101))), 0.95, 95.0),
])
def test_quantiles(values: list[float], q: float, want: float | None) -> None:
    assert report.quantile(values, q) == want


@pytest.mark.parametrize(("world", "expect", "limit", "unmet"), [
    ({}, "success", None, []),
    ({}, "rollback", None, ["4 of 4 run(s) did not roll back"]),
    ({"green": {"errorRate": 0.5}}, "rollback", None, []),
    ({"green": {"errorRate": 0.5}}, "success", None, ["4 of 4 run(s) did not succeed"]),
    ({"green": {"errorRate": 0.5}}, None, 1, ["p95 blast radius"]),
    ({"green": {"errorRate": 0.5}}, None, 100_000, []),
])
def test_expectations(world: dict[str, Any], expect: str | None, limit: float | None, unmet: list[str]) -> None:
    s = report.summarize("c", [simulate(seed=i, **world) for i in range(4)])
    got = report.unmet([s], expect, limit)
    assert len(got) == len(unmet) and all(u in g for u, g in zip(unmet, got, strict=True)), got


def test_the_table_has_a_row_per_configuration_with_median_and_p95() -> None:
    runs = {label: [simulate(settings({"canaryConfiguration": {"canaryPercent": pct, "canaryBakeTimeInMinutes": 5}}),
                             seed=i, green={"errorRate": 0.3}) for i in range(10)] for label, pct in
            (("five", 5), ("twenty", 20))}
    text = report.table([report.summarize(k, v) for k, v in runs.items()])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["configuration", "strategy", "outcome"]
    assert [line.split()[0] for line in lines[2:]] == ["five", "twenty"]
    assert " / " in lines[2]  # several runs: median / p95


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_chart_is_self_contained_and_shows_weights_errors_and_alarm_states() -> None:
    r = simulate(green={"errorRate": 0.5, "startsAfterMinutes": 7})
    page = chart.html([report.summarize("canary", [r])], [r])
    parser = _Page()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert not any(k in ("src", "href") for _, attrs in parser.tags for k in attrs)
    # The SVG is well-formed XML with the three panels' marks.
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])
    ns = "{http://www.w3.org/2000/svg}"
    lines = {p.get("class"): p.get("points") for p in svg.iter(f"{ns}polyline")}
    assert set(lines) == {"weights", "green-errors", "all-errors"}
    heights = sorted({float(pt.split(",")[1]) for pt in (lines["weights"] or "").split()})
    assert len(heights) == 3  # 0 %, 20 %, 100 % green
    spans = [(rect.get("data-state"), float(rect.get("data-from") or 0)) for rect in svg.iter(f"{ns}rect")]
    assert spans[-1][0] == "ALARM" and spans[-1][1] == pytest.approx(r.detected_at or 0, abs=0.01)
    marks = {line.get("data-mark") for line in svg.iter(f"{ns}line") if line.get("data-mark")}
    assert marks == {"fault", "rollback", "on blue"}


def test_a_rolling_deployment_with_alarms_bakes_as_ecs_derives_it() -> None:
    # ECS adds a bake computed from the alarms to a rolling deployment (controller.rolling.alarm_bake_minutes).
    from shiftlab.controller.rolling import alarm_bake_minutes

    data = copy.deepcopy(BASE)
    data["deploymentConfiguration"] = {"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 100,
                                       "alarms": {"alarmNames": ["service-5xx"], "enable": True, "rollback": True}}
    r = simulate(load_settings(data))
    bake = next(s for s in r.stages if s["stage"] == "BAKE_TIME")
    assert bake["end"] - bake["start"] == pytest.approx(alarm_bake_minutes([(60, 1)]), abs=1e-3)
    assert r.status == "SUCCESSFUL"


def test_a_crash_before_green_is_up_waits_for_it() -> None:
    # Green comes up at 1 minute; a crash "at 0.5" hits its tasks as they start.
    r = simulate(green={"crashAtMinutes": 0.5, "crashLoopSeconds": 20})
    assert r.status == "ROLLBACK_SUCCESSFUL" and r.detected_by == "circuit breaker"
    assert r.fault_at == pytest.approx(1.0, abs=0.01)


def test_an_alarm_without_rollback_stops_the_deployment_where_it_is() -> None:
    s = settings({"alarms": {"alarmNames": ["service-5xx"], "enable": True, "rollback": False}})
    r = simulate(s, green={"errorRate": 0.5})
    assert r.status == "STOPPED" and r.triggered_alarms == ["service-5xx"]
    assert r.detected_at is not None and r.time_to_detect is not None
    assert r.back_on_blue_at is None and r.time_to_rollback is None  # traffic left at 20 % green
    assert "traffic left at 20% green" in (r.reason or "")


def test_a_deployment_that_never_ends_is_cut_at_max_minutes() -> None:
    # A PAUSE hook nobody approves, with ECS's default timeout (1,440 minutes): cut at maxMinutes.
    pause = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    r = simulate(settings({"lifecycleHooks": [pause]}), hooks=[{"hook": 0, "approveAfterMinutes": None}],
                 maxMinutes=30)
    assert r.timed_out and r.status == "IN_PROGRESS (timed out)" and r.duration is None
