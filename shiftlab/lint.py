"""`shiftlab lint`: static checks of a valid config, what it would do on
AWS before anyone runs it (pure: settings and a traffic level in, findings
out; the formats are shiftlab.lintformat's).

Each rule has an id (SL001...), a severity (error, warning, note), a title
and the AWS page that explains it (`RULES`). A finding names the field path
its message is about, as `validate`'s problems do.

Traffic: `traffic_rps` requests per second reach the production listener;
the first deployment's roles are assumed (the service's targetGroupArn is
blue and serves production, alternateTargetGroupArn is green).
"""

from __future__ import annotations

from dataclasses import dataclass

from shiftlab.common.naming import target_group_name
from shiftlab.controller.alarms import NAMESPACE, THRESHOLD_OPERATORS, MetricAlarm
from shiftlab.controller.machine import failure_threshold
from shiftlab.controller.rolling import RollingStuck, bounds, rolling_plan
from shiftlab.controller.strategies import Step, plan
from shiftlab.controller.vocabulary import Stage, Strategy
from shiftlab.settings import Settings

ERROR, WARNING, NOTE = "error", "warning", "note"
SEVERITIES = (ERROR, WARNING, NOTE)
DC = "deploymentConfiguration"

_ALB_METRICS = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html"
_ALARM_EVALUATION = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html"
_DEPLOYMENT_ALARMS = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html"
_CANARY = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html"
_LINEAR = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html"
_DEPLOYMENT_CONFIGURATION = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html"
_HOOKS = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html"
_CIRCUIT_BREAKER = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html"
_ROLLING = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html"
_PUT_METRIC_DATA = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html"

# The smallest green error rate an alarm must catch at the first step before
# SL003 warns: above it, a green failing one request in ten goes unseen.
DETECTION_WARN_RATE = 0.10


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # the default; SL003 says error or note where that fits better
    title: str
    help_uri: str


_NLB_METRICS = "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html"

RULES = {r.id: r for r in (
    Rule("SL001", ERROR, "Alarm on a metric AWS never publishes with these dimensions: it never fires on AWS",
         _ALB_METRICS),
    Rule("SL002", WARNING, "Alarm on a metric nothing in the rehearsal feeds: it stays INSUFFICIENT_DATA",
         _PUT_METRIC_DATA),
    Rule("SL003", WARNING, "The smallest green error rate an alarm detects at the first traffic step",
         _CANARY),
    Rule("SL004", NOTE, "Detection limit not computed for this alarm (metric, statistic or operator not modelled)",
         _ALB_METRICS),
    Rule("SL005", WARNING, "Alarm slower than a step's bake: the next shift comes before it can fire",
         _ALARM_EVALUATION),
    Rule("SL006", WARNING, "Deployment bake shorter than the time an alarm needs to fire",
         _DEPLOYMENT_CONFIGURATION),
    Rule("SL007", WARNING, "Canary or first linear step gets less than one request per alarm period",
         _CANARY),
    Rule("SL008", WARNING, "Lifecycle hook at a test-traffic stage with no test listener rule", _HOOKS),
    Rule("SL009", NOTE, "Lifecycle hook without timeoutConfiguration: ECS waits 1,440 minutes, then rolls back",
         _HOOKS),
    Rule("SL010", WARNING, "Circuit breaker threshold at least twice desiredCount, or rollback without enable",
         _CIRCUIT_BREAKER),
    Rule("SL011", WARNING, "ROLLING bounds that stop every task at once, or cannot make progress", _ROLLING),
    Rule("SL012", WARNING, "Deployment alarms not enabled for rollback", _DEPLOYMENT_ALARMS),
    Rule("SL013", ERROR, "No rollback signal: neither alarms nor the circuit breaker can roll back",
         _DEPLOYMENT_ALARMS),
    Rule("SL014", NOTE, "Alarm defined but not watched by the deployment (not in alarms.alarmNames)",
         _DEPLOYMENT_ALARMS),
)}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    path: str  # the field the message is about, as validate names fields
    message: str
    uri: str | None = None  # a page closer to this finding than its rule's

    @property
    def help_uri(self) -> str:
        return self.uri or RULES[self.rule].help_uri


def lint(settings: Settings, traffic_rps: float = 10.0) -> list[Finding]:
    """Every finding for `settings` at `traffic_rps` production requests per second."""
    out = _alarm_sources(settings)
    if settings.service is None:
        return out  # a proxy-only config: no deployment to check
    if settings.service.exposure != "headless":  # a headless service takes no requests to model
        out += _detection(settings, traffic_rps)
    out += _timing(settings)
    if settings.service.exposure != "headless":
        out += _starved(settings, traffic_rps)
    out += _hooks(settings)
    out += _circuit_breaker(settings)
    out += _rolling(settings)
    out += _rollback_signals(settings)
    return out


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


# -- alarms' sources -----------------------------------------------------------

def _alarm_sources(s: Settings) -> list[Finding]:
    out = [Finding("SL001", ERROR, f"alarms[{i}]", f"alarm {a.AlarmName!r} would never fire on AWS: {reason}",
                   _NLB_METRICS if any(q.namespace == "AWS/NetworkELB" for q in a.plan.metrics) else None)
           for i, a, reason in s.never_published()]
    out += [Finding("SL002", WARNING, f"alarms[{i}]",
                    f"alarm {a.AlarmName!r}: nothing in this rehearsal feeds {q.describe()} (no task metric, no "
                    f"prometheus scrape); it stays INSUFFICIENT_DATA unless a task publishes it with PutMetricData "
                    f"or EMF")
            for i, a, q in s.unfed_metrics()]
    return out


def _watched(s: Settings) -> list[tuple[int, MetricAlarm]]:
    """The alarms the deployment watches (alarms.alarmNames), with their index in alarms[]."""
    names = set(s.deployment.alarms.alarmNames)
    return [(i, a) for i, a in enumerate(s.alarms) if a.AlarmName in names]


def _dns_linear(s: Settings) -> bool:
    """A LINEAR deployment across weighted DNS records: route53.TrafficShift's steps."""
    return s.deployment.strategy == Strategy.LINEAR and s.dns_route() is not None


def _steps(s: Settings) -> list[Step]:
    if _dns_linear(s):
        return [Step(p, m) for p, m in s.traffic_shift.schedule()]
    return plan(s.deployment)


def _first_step(s: Settings) -> tuple[Step, str] | None:
    """The first production step and the field that sets it (None for ROLLING)."""
    steps = _steps(s)
    if not steps:
        return None
    if _dns_linear(s):
        return steps[0], "route53.TrafficShift.Percentages"
    field = {Strategy.CANARY: "canaryConfiguration.canaryPercent",
             Strategy.LINEAR: "linearConfiguration.stepPercent"}.get(s.deployment.strategy, "strategy")
    return steps[0], f"{DC}.{field}"


def _groups(s: Settings) -> tuple[str, str | None]:
    assert s.service is not None
    sl = s.service.lb
    alternate = sl.advancedConfiguration.alternateTargetGroupArn if sl.advancedConfiguration else None
    return target_group_name(sl.targetGroupArn), target_group_name(alternate) if alternate else None


# -- what an alarm can see at the first step -----------------------------------

def _why_not_modelled(alarm: MetricAlarm) -> str | None:
    if alarm.ComparisonOperator not in ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold"):
        return f"ComparisonOperator {alarm.ComparisonOperator} (only greater-than alarms on errors are modelled)"
    if alarm.Threshold is None:
        return "no static Threshold"
    for q in alarm.plan.metrics:
        if q.namespace == "AWS/NetworkELB":
            return f"{q.describe()} counts connections, not requests (no traffic model for it)"
        if q.namespace != NAMESPACE and not q.service_connect:
            return f"{q.describe()} is the application's own metric (no traffic model for it)"
        if q.metric_name not in ("HTTPCode_Target_5XX_Count", "RequestCount"):
            return f"{q.metric_name} (only HTTPCode_Target_5XX_Count and RequestCount are modelled)"
        if q.stat != "Sum":
            return f"{q.metric_name} with statistic {q.stat} (only Sum is modelled)"
    return None


def alarm_value(alarm: MetricAlarm, rps: float, green_share: float, error_rate: float,
                blue: str, green: str | None) -> float | None:
    """The alarm's value for one period when `rps` requests per second
    reach production, green serves `green_share` (0..1) of them and fails
    `error_rate` (0..1) of its requests, blue none of its own."""
    p = alarm.plan
    requests = rps * p.period
    env: dict[str, list[float | None]] = {}
    for q in p.metrics:
        # A Service Connect endpoint's metrics (per (Target)DiscoveryName) cover blue and green, as the LB's totals.
        tg = None if q.service_connect else q.target_group
        share = 1.0 if tg is None else green_share if tg == green else 1.0 - green_share if tg == blue else 0.0
        green_part = green_share if tg is None or tg == green else 0.0
        if q.metric_name == "RequestCount":
            env[q.id] = [requests * share]
        else:  # HTTPCode_Target_5XX_Count: only green's errors
            env[q.id] = [requests * green_part * error_rate]
    for eid, expr in p.expressions:
        env[eid] = expr.evaluate(env, 1)
    return env[p.returned][0]


def smallest_detectable_rate(alarm: MetricAlarm, rps: float, green_share: float, blue: str,
                             green: str | None) -> float | None:
    """The smallest green error rate (0..1) whose datapoints breach the
    alarm's threshold, 0.0 when a healthy green already breaches it, None
    when even a green failing every request does not."""
    compare, _ = THRESHOLD_OPERATORS[alarm.ComparisonOperator]
    threshold = alarm.Threshold
    assert threshold is not None

    def breaches(rate: float) -> bool:
        value = alarm_value(alarm, rps, green_share, rate, blue, green)
        return value is not None and compare(value, threshold)

    if breaches(0.0):
        return 0.0
    if not breaches(1.0):
        return None
    low, high = 0.0, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (low, mid) if breaches(mid) else (mid, high)
    return high


def _detection(s: Settings, rps: float) -> list[Finding]:
    first = _first_step(s)
    if first is None:
        return []  # ROLLING: traffic follows the tasks, no step to model
    step, _ = first
    blue, green = _groups(s)
    share = step.percent / 100
    page = _LINEAR if s.deployment.strategy == Strategy.LINEAR else None
    out = []
    for i, a in _watched(s):
        why = _why_not_modelled(a)
        if why is not None:
            out.append(Finding("SL004", NOTE, f"alarms[{i}]",
                               f"alarm {a.AlarmName!r}: detection limit not computed: {why}",
                               _NLB_METRICS if any(q.namespace == "AWS/NetworkELB" for q in a.plan.metrics)
                               else None))
            continue
        period = a.plan.period
        green_requests = rps * period * share
        where = (f"at the first step ({step.percent:g} % of {rps:g} req/s: green serves {green_requests:g} "
                 f"requests per {period} s period)")
        rate = smallest_detectable_rate(a, rps, share, blue, green)
        if rate is None:
            out.append(Finding("SL003", ERROR, f"alarms[{i}].Threshold",
                               f"alarm {a.AlarmName!r} cannot trip {where}, even if every green request fails "
                               f"(Threshold {a.Threshold:g})", page))
        elif rate == 0.0:
            out.append(Finding("SL003", ERROR, f"alarms[{i}].Threshold",
                               f"alarm {a.AlarmName!r} trips {where} with no green errors at all "
                               f"(Threshold {a.Threshold:g}): every deployment would roll back", page))
        else:
            severity = WARNING if rate > DETECTION_WARN_RATE else NOTE
            out.append(Finding("SL003", severity, f"alarms[{i}].Threshold",
                               f"alarm {a.AlarmName!r} trips {where} only when more than {100 * rate:.1f} % of "
                               f"green's requests fail (Threshold {a.Threshold:g})", page))
    return out


# -- timing ----------------------------------------------------------------------

def _time_to_fire(a: MetricAlarm) -> int:
    """Seconds of breaching data the alarm needs at least: DatapointsToAlarm periods."""
    return a.datapoints_to_alarm * a.plan.period


def _window(a: MetricAlarm) -> str:
    return (f"DatapointsToAlarm {a.datapoints_to_alarm} of EvaluationPeriods {a.EvaluationPeriods} x Period "
            f"{a.plan.period} s = {_time_to_fire(a) / 60:g} min")


def _timing(s: Settings) -> list[Finding]:
    dc = s.deployment
    out = []
    steps = _steps(s)
    bake_field = {Strategy.CANARY: "canaryConfiguration.canaryBakeTimeInMinutes",
                  Strategy.LINEAR: "linearConfiguration.stepBakeTimeInMinutes"}.get(dc.strategy)
    bake_path = "route53.TrafficShift.IntervalSeconds" if _dns_linear(s) else f"{DC}.{bake_field}"
    for _, a in _watched(s):
        needed = _time_to_fire(a)
        for n, step in enumerate(steps[:-1]):
            if step.bake_minutes * 60 < needed:
                out.append(Finding("SL005", WARNING, bake_path,
                                   f"alarm {a.AlarmName!r} needs {_window(a)} of breaching data, longer than the "
                                   f"{step.bake_minutes:g} min bake after step {n + 1} ({step.percent:g} %): the "
                                   f"shift to {steps[n + 1].percent:g} % happens before it can fire"))
                break
        if steps and dc.bakeTimeInMinutes * 60 < needed:
            out.append(Finding("SL006", WARNING, f"{DC}.bakeTimeInMinutes",
                               f"bakeTimeInMinutes {dc.bakeTimeInMinutes} is shorter than alarm "
                               f"{a.AlarmName!r} needs to fire at 100 % ({_window(a)}): the deployment can finish, "
                               f"and blue stop, before a fault seen only at full traffic rolls it back"))
    return out


def _starved(s: Settings, rps: float) -> list[Finding]:
    first = _first_step(s)
    if first is None or first[0].percent >= 100:
        return []
    step, field = first
    watched = _watched(s)
    period = min((a.plan.period for _, a in watched), default=60)
    requests = rps * period * step.percent / 100
    if requests >= 1:
        return []
    return [Finding("SL007", WARNING, field,
                    f"{step.percent:g} % of {rps:g} req/s is {requests:.2g} requests per {period} s period: most "
                    f"periods green serves no request, so no alarm can judge it",
                    _LINEAR if s.deployment.strategy == Strategy.LINEAR else None)]


# -- hooks -------------------------------------------------------------------------

_TEST_STAGES = (Stage.TEST_TRAFFIC_SHIFT, Stage.POST_TEST_TRAFFIC_SHIFT)


def _hooks(s: Settings) -> list[Finding]:
    assert s.service is not None
    ac = s.service.lb.advancedConfiguration if s.service.exposure != "headless" else None
    has_test_rules = bool(ac and ac.testListenerRule)
    out = []
    for i, hook in enumerate(s.deployment.lifecycleHooks):
        path = f"{DC}.lifecycleHooks[{i}]"
        test_stages = [st for st in hook.lifecycleStages if st in _TEST_STAGES]
        if test_stages and not has_test_rules:
            out.append(Finding("SL008", WARNING, f"{path}.lifecycleStages",
                               f"hook at {', '.join(test_stages)} but service.loadBalancers[0].advancedConfiguration "
                               "has no testListenerRule: no test traffic reaches green, the hook has nothing to test"))
        if hook.timeoutConfiguration is None:
            out.append(Finding("SL009", NOTE, path,
                               f"hook ({hook.kind}) has no timeoutConfiguration: ECS waits 1440 minutes (24 hours) "
                               "for it, then rolls back"))
    return out


# -- circuit breaker, ROLLING ---------------------------------------------------------

def _circuit_breaker(s: Settings) -> list[Finding]:
    assert s.service is not None
    cb = s.deployment.deploymentCircuitBreaker
    desired = s.service.desiredCount
    path = f"{DC}.deploymentCircuitBreaker"
    if not cb.enable:
        if cb.rollback:
            return [Finding("SL010", WARNING, f"{path}.enable",
                            "rollback is true but enable is false: the circuit breaker is off and never rolls back")]
        return []
    threshold = failure_threshold(desired, cb.thresholdConfiguration)
    if desired > 0 and threshold >= 2 * desired:
        return [Finding("SL010", WARNING, f"{path}.thresholdConfiguration",
                        f"the circuit breaker trips after {threshold} failed tasks, {threshold / desired:g} times "
                        f"desiredCount {desired}: every new task must fail at least {-(-threshold // desired)} "
                        "times before it stops the deployment")]
    return []


def _rolling(s: Settings) -> list[Finding]:
    assert s.service is not None
    dc = s.deployment
    if dc.strategy != Strategy.ROLLING or s.service.desiredCount == 0:
        return []
    desired = s.service.desiredCount
    try:
        batches = rolling_plan(desired, dc.minimumHealthyPercent, dc.maximumPercent)
    except RollingStuck as exc:
        return [Finding("SL011", ERROR, f"{DC}.maximumPercent", str(exc))]
    low, _ = bounds(desired, dc.minimumHealthyPercent, dc.maximumPercent)
    if low == 0 and batches and batches[0].stop_blue == desired:
        return [Finding("SL011", WARNING, f"{DC}.minimumHealthyPercent",
                        f"minimumHealthyPercent {dc.minimumHealthyPercent} of desiredCount {desired} keeps no task "
                        f"healthy: ECS may stop all {desired} running tasks before a new one passes its health "
                        "checks (an outage at every deployment)")]
    return []


# -- rollback signals ------------------------------------------------------------------

def _rollback_signals(s: Settings) -> list[Finding]:
    dc = s.deployment
    al = dc.alarms
    out = []
    path = f"{DC}.alarms"
    if al.alarmNames and not al.enable:
        out.append(Finding("SL012", WARNING, f"{path}.enable",
                           f"alarms.enable is false: ECS does not watch {', '.join(al.alarmNames)} during the "
                           "deployment"))
    elif al.alarmNames and not al.rollback:
        out.append(Finding("SL012", WARNING, f"{path}.rollback",
                           f"alarms.rollback is false: {', '.join(al.alarmNames)} going into ALARM marks the "
                           "deployment failed but does not roll it back"))
    names = set(al.alarmNames)
    out += [Finding("SL014", NOTE, f"alarms[{i}]",
                    f"alarm {a.AlarmName!r} is not in {path}.alarmNames: the deployment does not watch it")
            for i, a in enumerate(s.alarms) if a.AlarmName not in names]
    alarms_roll_back = bool(al.alarmNames) and al.enable and al.rollback
    breaker_rolls_back = dc.deploymentCircuitBreaker.enable and dc.deploymentCircuitBreaker.rollback
    if not alarms_roll_back and not breaker_rolls_back:
        out.append(Finding("SL013", ERROR, DC,
                           "no rollback signal: no alarms with enable and rollback, and no circuit breaker with "
                           "enable and rollback; a bad revision stays deployed"))
    return out


def counts(findings: list[Finding]) -> dict[str, int]:
    return {sev: sum(f.severity == sev for f in findings) for sev in SEVERITIES}


def profile_rps(text: str, source: str) -> float:
    """The traffic level a recorded profile gives lint (shiftlab.simulate.traffic
    reads it: `shiftlab load --json`'s summary, or a CSV of per-minute request
    counts): its quietest minute, the hardest for an alarm. Raises ValueError
    naming the file and what is wrong."""
    from shiftlab.simulate.traffic import recorded

    rps = min(recorded(text, source).per_minute)
    if not rps > 0:
        raise ValueError(f"{source}: the profile has no traffic (a minute with 0 requests, or none at all)")
    return rps
