"""`shiftlab demo`: a rehearsal with nothing to configure.

The embedded example config (shiftlab/examples/shiftlab.yaml) on free
ports, the sample service as blue, a bounded background load, and a green
revision chosen by the scenario. Each scenario says what should happen, as
expectations over the deployment's record, its events and what the load
saw (`Scenario.check`, pure functions); the demo's exit code says whether
they all held.

Changes to the example config, so that a scenario behaves alike at any
`--time-scale` (a faster clock means fewer requests per alarm period):
the 5xx alarm is a rate (5xx per request, over 1 % in a period) rather than
the example's count, and the blue-green hook holds test traffic on green
for about a second of wall-clock time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from shiftlab.common.ports import free_port
from shiftlab.controller import eventlog
from shiftlab.controller.config import HOOK_TIMEOUT_MINUTES
from shiftlab.headless import FAILURE_ALARM_NAME, Accounting, headless_config
from shiftlab.loadgen import LoadResult
from shiftlab.rehearse import rollback_at
from shiftlab.settings import Settings, load_settings, on_free_ports

SAMPLE_IMAGE = "shiftlab/sample:local"  # the docker backend's sample service (compose/build-images.sh)
FIVE_XX_ALARM_NAME = "service-5xx"
P99_ALARM_NAME = "service-p99-latency"
TEST_HEADER = "x-amzn-ecs-blue-green-test"


def _tg_metric(metric_id: str, name: str, group: str, stat: str) -> dict[str, Any]:
    return {"Id": metric_id, "ReturnData": False,
            "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name,
                                      "Dimensions": [{"Name": "TargetGroup", "Value": f"targetgroup/{group}/0123"},
                                                     {"Name": "LoadBalancer", "Value": "app/my-load-balancer/0123"}]},
                           "Period": 60, "Stat": stat}}


# The demo's 5xx alarm, in place of the example's: target 5xx as a percentage
# of requests over both groups (no requests: no datapoint, not breaching).
FIVE_XX_ALARM = {
    "AlarmName": FIVE_XX_ALARM_NAME,
    "Metrics": [_tg_metric(f"{c}5xx", "HTTPCode_Target_5XX_Count", c, "Sum") for c in ("blue", "green")]
    + [_tg_metric(f"{c}req", "RequestCount", c, "Sum") for c in ("blue", "green")]
    + [{"Id": "rate", "Expression": "100 * SUM([blue5xx, green5xx]) / SUM([bluereq, greenreq])",
        "ReturnData": True}],
    "EvaluationPeriods": 1, "Threshold": 1,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}

P99_THRESHOLD_SECONDS = 0.25
P99_ALARM = {
    "AlarmName": P99_ALARM_NAME,
    "Metrics": [_tg_metric(f"{c}p99", "TargetResponseTime", c, "p99") for c in ("blue", "green")]
    + [{"Id": "worst", "Expression": "MAX([bluep99, greenp99])", "ReturnData": True}],
    "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": P99_THRESHOLD_SECONDS,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}


# Task CPU as ECS publishes it (controller.usage): the busiest task over 80 % of its cpu.
CPU_ALARM_NAME = "service-cpu"
CPU_ALARM = {
    "AlarmName": CPU_ALARM_NAME, "Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
    "Dimensions": [{"Name": "ClusterName", "Value": "local"}, {"Name": "ServiceName", "Value": "web"}],
    "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 80,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "missing",
}


# The AWS walkthrough's business alarm, as it is there
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html):
# the sample service publishes the metric in the embedded metric format.
BUSINESS_ALARM_NAME = "payment-transaction-failure-rate"
BUSINESS_ALARM = {
    "AlarmName": BUSINESS_ALARM_NAME, "MetricName": "TransactionFailureRate", "Namespace": "CustomApp/Payments",
    "Statistic": "Average", "Period": 300, "EvaluationPeriods": 1, "Threshold": 0.5,
    "ComparisonOperator": "GreaterThanThreshold",
}


# Service Connect (scenario service-connect): a frontend client task calls the
# catalog by its alias; the alarm is the catalog's 5xx rate from Service
# Connect's own metrics (AWS/ECS), as ECS publishes them: the 5xx per
# TargetDiscoveryName, the requests per DiscoveryName
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html).
SC_ALARM_NAME = "catalog-5xx"
SC_GREEN = "sc-catalog-green"


def _sc_metric(metric_id: str, name: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
    return {"Id": metric_id, "ReturnData": False,
            "MetricStat": {"Metric": {"Namespace": "AWS/ECS", "MetricName": name, "Dimensions": dimensions},
                           "Period": 60, "Stat": "Sum"}}


SC_ALARM = {
    "AlarmName": SC_ALARM_NAME,
    "Metrics": [_sc_metric("errors", "HTTPCode_Target_5XX_Count",
                           [{"Name": "TargetDiscoveryName", "Value": "catalog"}]),
                _sc_metric("requests", "RequestCount", [{"Name": "ClusterName", "Value": "shop"},
                                                        {"Name": "ServiceName", "Value": "catalog"},
                                                        {"Name": "DiscoveryName", "Value": "catalog"}]),
                {"Id": "rate", "Expression": "100 * errors / requests", "ReturnData": True}],
    "EvaluationPeriods": 1, "Threshold": 1,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}


def service_connect_config(data: dict[str, Any]) -> dict[str, Any]:
    """The example config as two services in a namespace: the catalog (the
    sample service, deployed) offered as catalog:8080, and a frontend client
    task (the sample frontend) calling http://catalog:8080. No ALB."""
    service = data["service"]
    data.pop("loadBalancer", None)
    data["service"] = {
        "serviceName": "catalog", "clusterName": "shop", "desiredCount": service["desiredCount"],
        "taskDefinition": service["taskDefinition"],
        "serviceConnectConfiguration": {"enabled": True, "namespace": "shop", "services": [
            {"portName": "http", "discoveryName": "catalog",
             "clientAliases": [{"port": 8080, "dnsName": "catalog"}]}]},
        "serviceConnectClients": [{"name": "frontend", "taskDefinition": {
            "command": ["{python}", "-m", "shiftlab.sample_frontend"],
            "environment": {"CATALOG_URL": "http://catalog:8080"}}}],
    }
    data["alarms"] = []
    return data


@dataclass(frozen=True)
class Check:
    """One expectation of a scenario: what should hold, whether it did, what was seen."""

    what: str
    ok: bool
    seen: str


@dataclass(frozen=True)
class Seen:
    """What a demo run produced: the deployment's record (DescribeServiceDeployments'
    shape), its events, the production load and the test-header load (if any)."""

    deployment: dict[str, Any]
    events: list[dict[str, Any]]
    load: LoadResult | None
    test_load: LoadResult | None = None
    # A headless scenario's work queue: its accounting, and the messages each
    # consumer processed after the rollback put blue back (None: no rollback).
    queue: Accounting | None = None
    after_rollback: dict[str, int] | None = None

    @property
    def triggered(self) -> list[str]:
        return list(self.deployment["alarms"]["triggeredAlarmNames"] or [])


def _status(seen: Seen, expected: str) -> Check:
    d = seen.deployment
    return Check(f"ends {expected}", d["status"] == expected,
                 d["status"] + (f" ({d['statusReason']})" if d["statusReason"] else ""))


def _alarm(seen: Seen, name: str, tripped: bool) -> Check:
    return Check(f"alarm {name} {'trips' if tripped else 'does not trip'}", (name in seen.triggered) == tripped,
                 f"triggered: {', '.join(seen.triggered) or 'none'}")


def _no_alarm(seen: Seen) -> Check:
    return Check("no alarm trips", not seen.triggered, f"triggered: {', '.join(seen.triggered) or 'none'}")


def _no_failure(seen: Seen) -> Check:
    if seen.load is None:
        return Check("no request fails", True, "no load")
    return Check("no request fails", seen.load.failed == 0,
                 f"{seen.load.failed} failed of {seen.load.sent}"
                 + (f", 5xx by group {dict(seen.load.errors_by_group)}" if seen.load.errors_by_group else ""))


def _green_served(seen: Seen) -> Check:
    n = seen.load.by_group.get("green", 0) if seen.load else 0
    return Check("production traffic reaches green", n > 0, f"{n} answers from green")


def _back_on_blue(seen: Seen) -> Check:
    back = rollback_at(seen.events)
    return Check("production traffic goes back to blue", back is not None,
                 "all traffic on blue" if back is not None else "no event of all traffic back on blue")


def _hook_runs(seen: Seen, kind: str) -> list[dict[str, Any]]:
    return [h for h in seen.deployment["shiftlab"]["hookRuns"] if h["kind"] == kind]


def check_good(seen: Seen) -> list[Check]:
    return [_status(seen, "SUCCESSFUL"), _no_alarm(seen), _green_served(seen), _no_failure(seen)]


def check_bad_canary(seen: Seen) -> list[Check]:
    errors = dict(seen.load.errors_by_group) if seen.load else {}
    return [
        _status(seen, "ROLLBACK_SUCCESSFUL"),
        _alarm(seen, FIVE_XX_ALARM_NAME, tripped=True),
        Check("the 5xx come from green only", errors.get("green", 0) > 0 and set(errors) == {"green"},
              f"5xx by group: {errors or 'none'}"),
        _back_on_blue(seen),
    ]


def check_slow(seen: Seen) -> list[Check]:
    slow = dict(seen.load.slow_by_group) if seen.load else {}
    limit = seen.load.slow_after if seen.load else None
    return [
        _status(seen, "ROLLBACK_SUCCESSFUL"),
        _alarm(seen, P99_ALARM_NAME, tripped=True),
        _alarm(seen, FIVE_XX_ALARM_NAME, tripped=False),
        Check("green answers slowly" + (f" (over {limit * 1000:g} ms)" if limit else ""), slow.get("green", 0) > 0,
              f"slow answers by group: {slow or 'none'}"),
        _no_failure(seen),
        _back_on_blue(seen),
    ]


def rolled_back_quietly_by(alarm_name: str) -> Callable[[Seen], list[Check]]:
    """The checks of a fault only `alarm_name` sees (CPU, a business metric):
    every request answers, the 5xx alarm stays quiet, the alarm rolls back."""
    def check(seen: Seen) -> list[Check]:
        return [
            _status(seen, "ROLLBACK_SUCCESSFUL"),
            _alarm(seen, alarm_name, tripped=True),
            _alarm(seen, FIVE_XX_ALARM_NAME, tripped=False),
            _no_failure(seen),
            _back_on_blue(seen),
        ]
    return check


DNS_NAME = "app.shiftlab.test"
DNS_LOAD_BALANCERS = {"blue": "127.0.0.2", "green": "127.0.0.3"}


def check_dns(seen: Seen) -> list[Check]:
    """Weighted DNS: the bad canary's checks, and the load (resolving the
    name, keeping answers a TTL) reaching both load balancers by address."""
    addresses = dict(seen.load.by_address) if seen.load else {}
    return [*check_bad_canary(seen)[:3],
            Check("the load reaches both load balancers through DNS",
                  set(addresses) == set(DNS_LOAD_BALANCERS.values()), f"answers by address: {addresses or 'none'}"),
            _back_on_blue(seen)]


def dns_topology(data: dict[str, Any], ttl: int = 60) -> dict[str, Any]:
    """The example config as Route 53's reference architecture has it: blue's
    and green's load balancers (a listener each, one port, an address each)
    behind the weighted records of one name, which the deployment steps."""
    lb = data["loadBalancer"]
    port = lb["Listeners"][0]["Port"]
    lb["Listeners"] = [{"Name": f"lb-{g}", "Address": address, "Port": port, "TestTrafficRule": {"Enabled": False},
                        "DefaultActions": [{"Type": "forward", "TargetGroupArn": g}]}
                       for g, address in DNS_LOAD_BALANCERS.items()]
    data["route53"] = {"Port": 0, "HostedZone": {"Name": "shiftlab.test"}, "ResourceRecordSets": [
        {"Name": DNS_NAME, "Type": "A", "TTL": ttl, "SetIdentifier": f"service-{g}",
         "Weight": 255 if g == "blue" else 0, "ResourceRecords": [{"Value": address}]}
        for g, address in DNS_LOAD_BALANCERS.items()]}
    ac = data["service"]["loadBalancers"][0]["advancedConfiguration"]
    ac["productionListenerRule"] = f"route53/{DNS_NAME}"
    ac["testListenerRule"] = []
    return data


def check_manual(seen: Seen) -> list[Check]:
    approved = [e for e in seen.events if e["type"] == eventlog.HOOK_APPROVED.name]
    paused = [h for h in _hook_runs(seen, "PAUSE") if h["status"] == "SUCCEEDED"]
    first_green = seen.load.first_at_by_group.get("green") if seen.load else None
    before = approved[0]["at"] if approved else None
    return [
        _status(seen, "SUCCESSFUL"),
        Check("a PAUSE hook is approved", bool(approved and paused),
              f"{approved[0]['message']}" if approved else "no approval in the events"),
        Check("production traffic reaches green only after the approval",
              before is not None and first_green is not None and first_green > before,
              "production never reached green" if first_green is None else
              "no approval" if before is None else f"first green answer {first_green - before:+.2f} s from it"),
        _no_failure(seen),
    ]


def _first_on_green(seen: Seen, green: str) -> tuple[float | None, float | None, str]:
    """When test and production load first reached the green group, and which came first, in words."""
    test_green = seen.test_load.first_at_by_group.get(green) if seen.test_load else None
    prod_green = seen.load.first_at_by_group.get(green) if seen.load else None
    if test_green is None:
        order = "test traffic never reached green"
    elif prod_green is None:
        order = "production traffic never reached green"
    else:
        order = f"test traffic on green {prod_green - test_green:.2f} s before production"
    return test_green, prod_green, order


def check_blue_green(seen: Seen) -> list[Check]:
    test_green, prod_green, order = _first_on_green(seen, "green")
    hooks = [h for h in seen.deployment["shiftlab"]["hookRuns"] if h["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"]
    return [
        _status(seen, "SUCCESSFUL"),
        Check("the POST_TEST_TRAFFIC_SHIFT hook succeeds", any(h["status"] == "SUCCEEDED" for h in hooks),
              ", ".join(f"{h['status']} after {h['attempts']} call(s)" for h in hooks) or "no hook run"),
        Check(f"test traffic ({TEST_HEADER} header) reaches green before production does",
              test_green is not None and prod_green is not None and test_green < prod_green, order),
        _no_failure(seen),
    ]


def check_headless(seen: Seen) -> list[Check]:
    q = seen.queue
    flips = [(e["data"]["revision"], e["data"]["active"]) for e in seen.events
             if e["type"] == eventlog.SERVICE_ACTIVATION.name]
    target = seen.deployment["shiftlab"]["targetRevision"]
    source = seen.deployment["shiftlab"]["sourceRevision"]
    after = seen.after_rollback or {}
    return [
        _status(seen, "ROLLBACK_SUCCESSFUL"),
        _alarm(seen, FAILURE_ALARM_NAME, tripped=True),
        Check("green is activated, then blue again", flips == [(target, True), (source, False), (source, True),
                                                               (target, False)],
              ", ".join(f"{rev} {'on' if on else 'off'}" for rev, on in flips) or "no activation"),
        # Only green fails messages here, so its alarm tripping means it took some too: in a short
        # run it may fail every message it took before it processes one.
        Check("green took messages (processed some, or failed what its alarm counted)",
              q is not None and (q.by_consumer.get(f"revision {target}", 0) > 0
                                 or FAILURE_ALARM_NAME in seen.triggered),
              q.line() if q else "no queue"),
        Check("blue takes over again after the rollback", after.get(f"revision {source}", 0) > 0,
              f"after the rollback: {after or 'nothing processed'}"),
        Check("no message lost, none processed twice", q is not None and q.sent > 0 and q.lost == 0
              and q.duplicates == 0, q.line() if q else "no queue"),
    ]


def check_service_connect(seen: Seen) -> list[Check]:
    test_green, prod_green, order = _first_on_green(seen, SC_GREEN)
    # Service Connect's metrics count test requests too: they may trip the alarm first.
    errors: dict[str, int] = {}
    for load in (seen.load, seen.test_load):
        for group, n in (load.errors_by_group if load else {}).items():
            errors[group] = errors.get(group, 0) + n
    return [
        _status(seen, "ROLLBACK_SUCCESSFUL"),
        _alarm(seen, SC_ALARM_NAME, tripped=True),
        Check(f"test requests ({TEST_HEADER}, passed on by the frontend) reach the green catalog before any "
              "production request does",
              test_green is not None and (prod_green is None or test_green < prod_green), order),
        Check("the 5xx (production and test requests) come from the green catalog only",
              errors.get(SC_GREEN, 0) > 0 and set(errors) == {SC_GREEN}, f"5xx by group: {errors or 'none'}"),
        _back_on_blue(seen),
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expect: str  # the deployment status this scenario should end in
    env: dict[str, str]
    deployment: dict[str, Any]
    check: Callable[[Seen], list[Check]]  # the scenario's expectations
    extra_alarms: list[dict[str, Any]] = field(default_factory=list)
    test_header_load: bool = False
    pause: bool = False
    slow_after: float | None = None  # seconds: a slower answer counts as a bad response
    task_cpu: int | None = None  # taskDefinition.cpu (CPU units) of the service, when the scenario needs one
    headless: bool = False  # a queue consumer service with no load balancer (shiftlab.headless)
    service_connect: bool = False  # two services in a Service Connect namespace instead of one behind the ALB
    dns: bool = False  # two load balancers behind weighted DNS records (dns_topology)


SCENARIOS = {
    s.name: s for s in [
        Scenario("good", "a linear rollout of a healthy revision, promoted", "SUCCESSFUL",
                 {"GREETING": "hello from green"},
                 {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 3},
                  "bakeTimeInMinutes": 2},
                 check_good),
        Scenario("bad-canary", "a canary whose green answers 5xx; the 5xx alarm trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"ERROR_RATE": "0.3"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
                  "bakeTimeInMinutes": 2},
                 check_bad_canary),
        Scenario("slow", "a canary whose green is slow; the p99 latency alarm trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"LATENCY_MS": "400"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 10},
                  "alarms": {"alarmNames": [FIVE_XX_ALARM_NAME, P99_ALARM_NAME], "enable": True,
                             "rollback": True}},
                 check_slow, extra_alarms=[P99_ALARM], slow_after=P99_THRESHOLD_SECONDS),
        Scenario("cpu", "a canary whose green burns CPU; the AWS/ECS CPUUtilization alarm trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"CPU_BURN": "1"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
                  "bakeTimeInMinutes": 2,
                  "alarms": {"alarmNames": [FIVE_XX_ALARM_NAME, CPU_ALARM_NAME], "enable": True,
                             "rollback": True}},
                 rolled_back_quietly_by(CPU_ALARM_NAME), extra_alarms=[CPU_ALARM], task_cpu=256),
        Scenario("business-metric", "a canary whose green fails payment transactions (its requests answer 200); "
                                    "the walkthrough's CustomApp/Payments alarm, fed by EMF, trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"TRANSACTION_FAILURE_RATE": "0.9", "EMF_INTERVAL_MS": "250"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 20},
                  "alarms": {"alarmNames": [FIVE_XX_ALARM_NAME, BUSINESS_ALARM_NAME], "enable": True,
                             "rollback": True}},
                 rolled_back_quietly_by(BUSINESS_ALARM_NAME),
                 extra_alarms=[BUSINESS_ALARM]),
        Scenario("manual", "blue/green waiting at a PAUSE hook for `shiftlab approve`", "SUCCESSFUL",
                 {"GREETING": "approved"},
                 {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2,
                  "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                      "timeoutConfiguration": {"action": "ROLLBACK", "timeoutInMinutes": 30}}]},
                 check_manual, pause=True),
        Scenario("blue-green", "blue/green: test traffic (the x-amzn-ecs-blue-green-test header) reaches green "
                               "before production does", "SUCCESSFUL", {"GREETING": "green"},
                 {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 3,
                  "lifecycleHooks": [{"hookTargetArn": "command:{python} -m shiftlab.demo_hook",
                                      "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                      "hookDetails": {"waitSeconds": 3}}]},
                 check_blue_green, test_header_load=True),
        Scenario("service-connect", "Service Connect: a frontend calls the catalog by its alias; test requests "
                                    "reach the green catalog first; green answers 5xx; the catalog's Service "
                                    "Connect 5xx alarm trips; rollback", "ROLLBACK_SUCCESSFUL", {"ERROR_RATE": "0.3"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
                  "bakeTimeInMinutes": 2,
                  "alarms": {"alarmNames": [SC_ALARM_NAME], "enable": True, "rollback": True},
                  "lifecycleHooks": [{"hookTargetArn": "command:{python} -m shiftlab.demo_hook",
                                      "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                      "hookDetails": {"waitSeconds": 3}}]},
                 check_service_connect, extra_alarms=[SC_ALARM], test_header_load=True, service_connect=True),
        Scenario("dns", "two load balancers behind weighted DNS records (Route 53's reference architecture), "
                        "stepped 1, 2, 5, 10, 25, 50, 100 %; green answers 5xx, the 5xx alarm trips, all weight "
                        "back on blue", "ROLLBACK_SUCCESSFUL", {"ERROR_RATE": "0.3"},
                 {"strategy": "LINEAR", "bakeTimeInMinutes": 2},
                 check_dns, dns=True),
        Scenario("headless", "blue/green of a queue consumer with no load balancer: green is activated by a hook, "
                             "fails messages, its MessagesFailed alarm trips; blue takes over; nothing lost",
                 "ROLLBACK_SUCCESSFUL", {"FAILURE_RATE": "0.5"},
                 {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10}, check_headless, headless=True),
    ]
}


def example_config() -> dict[str, Any]:
    text = resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


HOOK_HOLD_SECONDS = 1.0  # wall clock: how long the blue-green hook keeps test traffic alone on green (at least)


def demo_settings(scenario: Scenario, time_scale: float, backend: str, state_dir: str,
                  image: str | None = None) -> Settings:
    """The example config with the scenario's deployment and alarms. With the
    docker backend the tasks run `image` (default the sample image) with its
    own command: the example's `{python} -m shiftlab.sample_service` is for
    processes on this machine."""
    if scenario.headless:
        if backend == "docker":
            from shiftlab.common.configfile import ConfigError

            raise ConfigError(["--backend: the headless scenario runs its consumers as processes (they reach the "
                               "demo's work queue on loopback); use --backend process"])
        data = headless_config(f"http://127.0.0.1:{free_port()}", state_dir, time_scale)
        data["deploymentConfiguration"].update(copy.deepcopy(scenario.deployment))
        return load_settings(data)
    data = copy.deepcopy(example_config())
    if scenario.service_connect:
        data = service_connect_config(data)
    if scenario.dns:
        data = dns_topology(data)
    data = on_free_ports(data)
    data["timeScale"] = time_scale
    dc = {**data["deploymentConfiguration"], **copy.deepcopy(scenario.deployment)}
    for hook in dc.get("lifecycleHooks", []):
        details = hook.get("hookDetails")
        if isinstance(details, dict) and "waitSeconds" in details:
            # AWS seconds: at least HOOK_HOLD_SECONDS of wall clock whatever the time scale.
            details["waitSeconds"] = max(details["waitSeconds"], round(HOOK_HOLD_SECONDS * time_scale, 3))
    data["deploymentConfiguration"] = dc
    data["alarms"] = [FIVE_XX_ALARM if a["AlarmName"] == FIVE_XX_ALARM_NAME else a for a in data["alarms"]] \
        + scenario.extra_alarms
    if scenario.service_connect and backend == "docker":
        # The namespace's proxy is on the host's loopback: containers reach it on the host network.
        data["controller"]["docker"] = {**data["controller"].get("docker", {}), "network": "host"}
    data["controller"] = {**data["controller"], "backend": backend, "stateDir": state_dir}
    if scenario.task_cpu is not None:
        data["service"]["taskDefinition"]["cpu"] = scenario.task_cpu
    if backend == "docker":
        td = {k: v for k, v in data["service"]["taskDefinition"].items() if k != "command"}
        data["service"]["taskDefinition"] = {**td, "image": image or SAMPLE_IMAGE, "stopTimeout": 5}
    return load_settings(data)


def approve_delay(scenario: Scenario, time_scale: float, wanted: float = 5.0) -> float:
    """Wall-clock seconds before the demo approves a PAUSE by itself: `wanted`,
    or less when the hook's timeout (in AWS minutes) would come first."""
    timeouts = [h.get("timeoutConfiguration", {}).get("timeoutInMinutes", HOOK_TIMEOUT_MINUTES)
                for h in scenario.deployment.get("lifecycleHooks", []) if h.get("targetType") == "PAUSE"]
    if not timeouts:
        return wanted
    return min(wanted, min(timeouts) * 60 / time_scale / 4)


def first_bad_kind(load: LoadResult) -> str | None:
    """What the load's first bad response was: "5xx", "connection error" or "slower than N ms"."""
    first = load.first_bad_at
    if first is None:
        return None
    if first == load.first_5xx_at:
        return "5xx"
    if first == load.first_connection_error_at:
        return "connection error"
    return f"slower than {(load.slow_after or 0) * 1000:g} ms"


def summary_lines(seen: Seen, checks: list[Check], expect: str, total_seconds: float) -> list[str]:
    """The demo's closing summary: outcome, each expectation, what the load
    saw, time from the first bad response to production back on blue, total."""
    d = seen.deployment
    ok = all(c.ok for c in checks)
    lines = [f"{'as expected' if ok else 'NOT as expected'}: {d['status']} (this scenario should end {expect})"
             + (f" - {d['statusReason']}" if d["statusReason"] else "")]
    lines += [f"  {'ok' if c.ok else 'FAILED':<6} {c.what}: {c.seen}" for c in checks]
    load = seen.load
    if load is not None:
        text = f"requests: {load.sent} sent, {load.failed} failed"
        if load.errors_by_group:
            text += f" (5xx by group: {dict(load.errors_by_group)})"
        if load.connection_errors:
            text += f" ({load.connection_errors} connection errors)"
        if load.slow_after is not None:
            text += f", {load.slow} slower than {load.slow_after * 1000:g} ms" \
                    + (f" (by group: {dict(load.slow_by_group)})" if load.slow else "")
        lines.append(text + f"; split {dict(load.by_group)}")
        kind = first_bad_kind(load)
        back = rollback_at(seen.events)
        if kind is not None and back is not None and load.first_bad_at is not None:
            lines.append(f"first bad response ({kind}) -> production back on blue: {back - load.first_bad_at:.2f} s")
        elif kind is not None:
            lines.append(f"first bad response ({kind}): no rollback followed")
    if seen.test_load is not None:
        lines.append(f"test-header requests: {seen.test_load.sent}, by group {dict(seen.test_load.by_group)}")
    if seen.queue is not None:
        lines.append(seen.queue.line())
        if seen.after_rollback is not None:
            lines.append(f"after the rollback: {seen.after_rollback or 'nothing processed'}")
    lines.append(f"total: {total_seconds:.1f} s")
    return lines


def docker_problem(image: str) -> str | None:
    """Why the docker demo cannot run here (no engine, or no `image`), or None."""
    from shiftlab.controller.backends.docker import unavailable_message

    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:
        return unavailable_message(str(exc))
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        hint = ("build it from a shiftlab checkout: compose/build-images.sh (with no registry: "
                "compose/build-base-image.sh, then BASE_IMAGE=shiftlab/python-base:local compose/build-images.sh)"
                if image == SAMPLE_IMAGE else f"build or load it (docker build -t {image} ...)")
        return f"the docker demo runs the image {image}, which is not on this machine: {hint}"
    except Exception as exc:
        return f"cannot look up the image {image}: {exc}"
    finally:
        client.close()
    return None

