"""shiftlab lint's rules (shiftlab.lint): each with a config that passes
and one that fails, on the annotated example (shiftlab init's) as the base,
and the detection-limit arithmetic against hand computation.

AWS pages behind the rules (each rule's helpUri):
- ALB publishes its metrics with LoadBalancer, or TargetGroup with LoadBalancer
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
- canary: "first route a small percentage of traffic to the new revision ... Canary bake time - The duration to
  monitor the canary version before proceeding"
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html
- linear: stepBakeTimeInMinutes "The amount of time in minutes to wait between each traffic shifting step"
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html
- alarms: DatapointsToAlarm (M) of EvaluationPeriods (N) periods must breach
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
- hooks wait 1,440 minutes unless timeoutConfiguration says otherwise
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html
- the circuit breaker's threshold (ThresholdConfiguration; 0.5 x desired, 3..200 by default)
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
- deployment alarms roll back only with enable and rollback
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
import yaml

from shiftlab.lint import RULES, Finding, lint, profile_rps, smallest_detectable_rate
from shiftlab.lintformat import field_line
from shiftlab.settings import load_settings
from tests.helpers import aws_walkthrough

EXAMPLES = aws_walkthrough()
BASE: dict[str, Any] = yaml.safe_load(
    resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8"))
LB = "app/my-load-balancer/0123456789abcdef"


def walkthrough(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def count_alarm(name: str = "service-5xx", threshold: float = 2, periods: int = 1, period: int = 60,
                dims: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A single-metric alarm on the load balancer's HTTPCode_Target_5XX_Count."""
    return {"AlarmName": name, "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
            "Dimensions": dims if dims is not None else [{"Name": "LoadBalancer", "Value": LB}],
            "Statistic": "Sum", "Period": period, "EvaluationPeriods": periods, "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold"}


def rate_alarm(threshold: float) -> dict[str, Any]:
    """5xx as a percentage of all requests over both target groups (the
    dilution the AWS walkthrough warns about)."""
    def stat(qid: str, metric: str, group: str) -> dict[str, Any]:
        return {"Id": qid, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": metric,
            "Dimensions": [{"Name": "TargetGroup", "Value": f"targetgroup/{group}/x"},
                           {"Name": "LoadBalancer", "Value": LB}]}, "Period": 60, "Stat": "Sum"}}
    return {"AlarmName": "service-5xx", "EvaluationPeriods": 1, "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "Metrics": [stat("b5", "HTTPCode_Target_5XX_Count", "blue"),
                        stat("g5", "HTTPCode_Target_5XX_Count", "green"),
                        stat("br", "RequestCount", "blue"), stat("gr", "RequestCount", "green"),
                        {"Id": "rate", "Expression": "100 * (b5 + g5) / (br + gr)", "ReturnData": True}]}


Edit = Callable[[dict[str, Any]], None]


def config(*edits: Edit) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for edit in edits:
        edit(data)
    return data


def dc(**fields: Any) -> Edit:
    return lambda d: d["deploymentConfiguration"].update(fields)


def service(**fields: Any) -> Edit:
    return lambda d: d["service"].update(fields)


def alarms(*items: dict[str, Any], watched: list[str] | None = None) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d["alarms"] = list(items)
        d["deploymentConfiguration"]["alarms"]["alarmNames"] = (
            [a["AlarmName"] for a in items] if watched is None else watched)
    return edit


def no_test_rules(d: dict[str, Any]) -> None:
    d["service"]["loadBalancers"][0]["advancedConfiguration"]["testListenerRule"] = []


def hook(stage: str, timeout: bool = True) -> Edit:
    h: dict[str, Any] = {"hookTargetArn": "command:true", "lifecycleStages": [stage]}
    if timeout:
        h["timeoutConfiguration"] = {"timeoutInMinutes": 5, "action": "ROLLBACK"}
    return dc(lifecycleHooks=[h])


def rolling(minimum: int, maximum: int) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d["service"]["loadBalancers"][0].pop("advancedConfiguration")
        d["deploymentConfiguration"] = {**d["deploymentConfiguration"], "strategy": "ROLLING",
                                        "minimumHealthyPercent": minimum, "maximumPercent": maximum}
    return edit


def found(data: dict[str, Any], rps: float = 10.0) -> list[Finding]:
    return lint(load_settings(data), rps)


CASES: list[tuple[str, str, list[Edit], list[Edit], float]] = [
    # (rule, severity of the failing case, passing edits, failing edits, rps)
    ("SL001", "error", [], [alarms(count_alarm(dims=[{"Name": "TargetGroup", "Value": "targetgroup/green/x"}]))],
     10),
    ("SL002", "warning", [], [alarms(walkthrough("canary-business-alarm"))], 10),
    ("SL003", "warning", [alarms(count_alarm(threshold=2))], [alarms(count_alarm(threshold=100))], 10),
    ("SL003", "error", [alarms(count_alarm(threshold=2))], [alarms(count_alarm(threshold=1000))], 10),
    ("SL003", "error", [alarms(rate_alarm(1))], [alarms(rate_alarm(25))], 10),  # diluted: needs 125 % of green
    ("SL004", "note", [], [alarms(walkthrough("linear-latency-alarm"))], 10),
    ("SL005", "warning", [dc(canaryConfiguration={"canaryPercent": 20, "canaryBakeTimeInMinutes": 3})],
     [alarms(count_alarm(periods=3)), dc(canaryConfiguration={"canaryPercent": 20, "canaryBakeTimeInMinutes": 2})],
     10),
    ("SL005", "warning", [dc(strategy="LINEAR", linearConfiguration={"stepPercent": 25, "stepBakeTimeInMinutes": 5})],
     [dc(strategy="LINEAR", linearConfiguration={"stepPercent": 25, "stepBakeTimeInMinutes": 5}),
      alarms(count_alarm(periods=2, period=300))], 10),
    ("SL006", "warning", [dc(bakeTimeInMinutes=1)], [dc(bakeTimeInMinutes=0)], 10),
    ("SL007", "warning", [dc(canaryConfiguration={"canaryPercent": 0.2, "canaryBakeTimeInMinutes": 5})],
     [dc(canaryConfiguration={"canaryPercent": 0.1, "canaryBakeTimeInMinutes": 5})], 10),
    ("SL007", "warning", [], [], 0.05),  # 20 % of 0.05 req/s: 0.6 requests a minute
    ("SL008", "warning", [hook("POST_TEST_TRAFFIC_SHIFT")], [hook("POST_TEST_TRAFFIC_SHIFT"), no_test_rules], 10),
    ("SL009", "note", [hook("PRE_SCALE_UP")], [hook("PRE_SCALE_UP", timeout=False)], 10),
    ("SL010", "warning", [], [service(desiredCount=1)], 10),  # threshold 3 (the minimum) >= 2 x 1
    ("SL010", "warning", [],
     [dc(deploymentCircuitBreaker={"enable": True, "rollback": True,
                                   "thresholdConfiguration": {"type": "COUNT", "value": 4}})], 10),
    ("SL010", "warning", [], [dc(deploymentCircuitBreaker={"enable": False, "rollback": True})], 10),
    ("SL011", "warning", [rolling(50, 200)], [rolling(0, 100)], 10),
    ("SL012", "warning", [], [dc(alarms={"alarmNames": ["service-5xx"], "enable": True, "rollback": False})], 10),
    ("SL012", "warning", [], [dc(alarms={"alarmNames": ["service-5xx"], "enable": False, "rollback": True})], 10),
    ("SL013", "error", [dc(deploymentCircuitBreaker={"enable": False, "rollback": False})],
     [dc(deploymentCircuitBreaker={"enable": False, "rollback": False}),
      dc(alarms={"alarmNames": ["service-5xx"], "enable": True, "rollback": False})], 10),
    ("SL013", "error", [dc(alarms={"alarmNames": [], "enable": True, "rollback": True})],
     [dc(alarms={"alarmNames": [], "enable": True, "rollback": True},
         deploymentCircuitBreaker={"enable": True, "rollback": False})], 10),
    ("SL014", "note", [], [alarms(count_alarm(), count_alarm("other"), watched=["service-5xx"])], 10),
]


@pytest.mark.parametrize(("rule", "severity", "passing", "failing", "rps"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_passes_and_fails(rule: str, severity: str, passing: list[Edit], failing: list[Edit],
                                    rps: float) -> None:
    assert rule in RULES
    ok = [f for f in found(config(*passing), 10.0) if f.rule == rule]
    # The passing example may earn a note of the same rule (SL003 always says its limit), never worse.
    assert all(f.severity == "note" for f in ok) if rule == "SL003" else ok == [], ok
    bad = [f for f in found(config(*failing), rps) if f.rule == rule and f.severity == severity]
    assert bad, found(config(*failing), rps)
    assert all(f.path and f.message for f in bad)


def test_the_annotated_example_is_clean() -> None:
    """shiftlab init's file: nothing worse than the note of its alarm's detection limit."""
    findings = found(config())
    assert [(f.rule, f.severity) for f in findings] == [("SL003", "note")]
    assert "more than 1.7 % of green's requests" in findings[0].message  # 2 / (10 x 60 x 20 %)


@pytest.mark.parametrize(
    ("alarm", "percent", "rps", "expected"),
    [
        # a count alarm: Threshold / (rps x Period x green share)
        (count_alarm(threshold=5), 5, 10, 5 / (10 * 60 * 0.05)),
        (count_alarm(threshold=10), 10, 10, 10 / (10 * 60 * 0.10)),
        (count_alarm(threshold=10, period=300), 10, 10, 10 / (10 * 300 * 0.10)),
        (count_alarm(threshold=2), 20, 100, 2 / (100 * 60 * 0.2)),
        # a rate over both groups: green's rate x its share must exceed Threshold %
        (rate_alarm(1), 5, 10, 0.01 / 0.05),
        (rate_alarm(1), 20, 1000, 0.01 / 0.2),
        (rate_alarm(10), 5, 10, None),  # 5 % of traffic can add at most 5 points
        (count_alarm(threshold=5), 5, 1, None),  # 3 green requests a minute: never more than 5 errors
        ({**count_alarm(threshold=0), "ComparisonOperator": "GreaterThanOrEqualToThreshold"}, 5, 10, 0.0),
    ],
)
def test_smallest_detectable_rate(alarm: dict[str, Any], percent: float, rps: float,
                                  expected: float | None) -> None:
    settings = load_settings(config(alarms(alarm)))
    got = smallest_detectable_rate(settings.alarms[0], rps, percent / 100, "blue", "green")
    if expected is None or expected == 0.0:
        assert got == expected
    else:
        assert got == pytest.approx(expected, rel=1e-6)


def test_the_aws_walkthrough_linear_alarm_is_diluted() -> None:
    """AWS's linear walkthrough (10 % steps, the 5xx alarm over both groups,
    Threshold 10 per minute) at 10 req/s: green gets 60 requests a minute,
    so more than 10 of them (16.7 %) must fail before the alarm trips."""
    data = config(alarms(walkthrough("linear-5xx-alarm"), walkthrough("linear-latency-alarm")))
    data["deploymentConfiguration"] = walkthrough("linear-deployment-configuration")  # no bakeTimeInMinutes: 0
    by_rule = {(f.rule, f.path): f for f in found(data)}
    sl003 = by_rule["SL003", "alarms[0].Threshold"]
    assert sl003.severity == "warning"
    assert "more than 16.7 %" in sl003.message and "green serves 60 requests per 60 s" in sl003.message
    assert sl003.help_uri == "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html"
    assert by_rule["SL004", "alarms[1]"].severity == "note"  # TargetResponseTime: not modelled, and said so
    assert ("SL006", "deploymentConfiguration.bakeTimeInMinutes") in by_rule


def test_a_proxy_only_config_has_only_alarm_rules() -> None:
    data = {"loadBalancer": BASE["loadBalancer"]}
    assert found(data) == []


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("a: 1\nb:\n  c: 2\n  d: [x, y]\n", "b.c", 3),
        ("a: 1\nb:\n  c: 2\n  d: [x, y]\n", "b.missing", 2),  # the deepest part found
        ("a: 1\nb:\n  - x: 1\n  - y: 2\n", "b[1].y", 4),
        ("a: 1\nb:\n  - x: 1\n  - y: 2\n", "b[1]", 4),
        ('{\n  "a": {\n    "b": 1\n  }\n}\n', "a.b", 3),  # JSON is YAML
        ("a: [\n", "a", None),  # does not compose
        ("", "a", None),
    ],
)
def test_field_line(text: str, path: str, line: int | None) -> None:
    assert field_line(text, path) == line


@pytest.mark.parametrize(
    ("text", "rps"),
    [
        ('{"requests": 600, "seconds": 60.0, "rps": 10.0, "statuses": {"200": 600}}', 10.0),  # shiftlab load --json
        ('{"requests": 50, "seconds": 10.0}', 5.0),
        ("minute,requests\n2026-12-01T10:00,1200\n2026-12-01T10:01,300\n2026-12-01T10:02,900\n", 5.0),
        ("600\n120\n", 2.0),  # the quietest minute: 120 requests
    ],
)
def test_profile_rps(text: str, rps: float) -> None:
    assert profile_rps(text, "p") == pytest.approx(rps)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"rps": 10}', "p: not a `shiftlab load --json` summary"),
        ('{"requests": 10, "seconds": 0}', "p: not a `shiftlab load --json` summary"),
        ("minute,requests\n10:00,12\n10:01,lots\n", "p:3: 'lots' is not a request count"),
        ("minute,requests\n", "p: no per-minute request counts"),
        ("10\n0\n", "p: the profile has no traffic"),
    ],
)
def test_profile_rps_refuses(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace("*", r"\*")):
        profile_rps(text, "p")


def test_the_summary_says_nothing_of_req_s_for_a_headless_service(tmp_path: Any) -> None:
    """A headless service has no request traffic: `lint`'s summary line
    names no rate (and the JSON's trafficRps is null); a load-balanced one's
    still does."""
    import subprocess
    import sys

    def run(name: str, *fmt: str) -> str:
        path = resources.files("shiftlab").joinpath(f"examples/{name}.yaml")
        out = subprocess.run([sys.executable, "-m", "shiftlab", "lint", "-c", str(path), *fmt],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode in (0, 1), out.stderr
        return out.stdout

    headless = run("headless").strip().splitlines()[-1]
    assert headless.endswith("note(s)") and "req/s" not in headless
    assert json.loads(run("headless", "--format", "json"))["trafficRps"] is None
    assert run("shiftlab").strip().splitlines()[-1].endswith("at 10 req/s")
