"""The `loadBalancer` section: ELBv2 / CloudFormation property names, parsed
once into frozen models, cross-checked, and refused with field paths.

Durations here are AWS seconds; the runtime divides them by the time scale.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from shiftlab.common.configfile import ConfigError, Model, in_range, merge_problems, parse
from shiftlab.common.naming import target_group_name
from shiftlab.proxy.awsshapes import load_balancer_problems

DEFAULT_TEST_HEADERS = ("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test")

DRAIN_FLOOR_SECONDS = 1.0

def _any_address(address: str) -> bool:
    return address in ("0.0.0.0", "::", "")


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


ValueList = Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1, max_length=3)]


class ValuesSpec(Model):
    Values: ValueList


class HttpHeaderSpec(Model):
    HttpHeaderName: str
    Values: ValueList

    @field_validator("HttpHeaderName")
    @classmethod
    def _not_host(cls, v: str) -> str:
        if v.lower() == "host":
            raise ValueError("cannot match Host with http-header; use host-header")
        if not v or any(c in v for c in " :\t"):
            raise ValueError(f"{v!r} is not a header name")
        return v


class KeyValue(Model):
    Key: str | None = None
    Value: str


class QueryStringSpec(Model):
    Values: Annotated[list[KeyValue], Field(min_length=1, max_length=3)]


class SourceIpSpec(Model):
    Values: ValueList

    @field_validator("Values")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR block") from None
        return v


ConditionField = Literal[
    "host-header",
    "path-pattern",
    "http-header",
    "http-request-method",
    "query-string",
    "source-ip",
]

_CONDITION_CONFIG = {
    "host-header": "HostHeaderConfig",
    "path-pattern": "PathPatternConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}


class Condition(Model):
    Field: ConditionField
    # The legacy `Values` form is accepted for host-header and path-pattern, as ALB does.
    Values: ValueList | None = None
    HostHeaderConfig: ValuesSpec | None = None
    PathPatternConfig: ValuesSpec | None = None
    HttpHeaderConfig: HttpHeaderSpec | None = None
    HttpRequestMethodConfig: ValuesSpec | None = None
    QueryStringConfig: QueryStringSpec | None = None
    SourceIpConfig: SourceIpSpec | None = None

    def config(self) -> Any:
        name = _CONDITION_CONFIG[self.Field]
        cfg = getattr(self, name)
        if cfg is None and self.Values is not None and self.Field in ("host-header", "path-pattern"):
            cfg = ValuesSpec(Values=self.Values)
        return cfg


class TargetGroupTuple(Model):
    TargetGroupArn: str
    Weight: Annotated[int, in_range(0, 999)] = 1

    @property
    def name(self) -> str:
        return target_group_name(self.TargetGroupArn)


class StickinessSpec(Model):
    Enabled: bool = False
    DurationSeconds: Annotated[int, in_range(1, 604800)] = 3600


class ForwardSpec(Model):
    TargetGroups: Annotated[list[TargetGroupTuple], Field(min_length=1, max_length=5)]
    TargetGroupStickinessConfig: StickinessSpec = StickinessSpec()


class RedirectSpec(Model):
    Protocol: str = "#{protocol}"
    Host: str = "#{host}"
    Port: str = "#{port}"
    Path: str = "/#{path}"
    Query: str = "#{query}"
    StatusCode: Literal["HTTP_301", "HTTP_302"]


class FixedResponseSpec(Model):
    StatusCode: Annotated[str, Field(pattern=r"^[2-5]\d\d$")]
    ContentType: str = "text/plain"
    MessageBody: Annotated[str, Field(max_length=1024)] = ""


class Action(Model):
    Type: Literal["forward", "redirect", "fixed-response"]
    TargetGroupArn: str | None = None
    ForwardConfig: ForwardSpec | None = None
    RedirectConfig: RedirectSpec | None = None
    FixedResponseConfig: FixedResponseSpec | None = None
    Order: int | None = None

    def forward(self) -> ForwardSpec | None:
        """The forward config, with the single-`TargetGroupArn` shorthand expanded."""
        if self.Type != "forward":
            return None
        if self.ForwardConfig is not None:
            return self.ForwardConfig
        assert self.TargetGroupArn is not None
        return ForwardSpec(TargetGroups=[TargetGroupTuple(TargetGroupArn=self.TargetGroupArn)])


ActionList = Annotated[list[Action], Field(min_length=1, max_length=1)]


class Rule(Model):
    Priority: Annotated[int, in_range(1, 50000)]
    Conditions: Annotated[list[Condition], Field(min_length=1, max_length=10)]
    Actions: ActionList
    RuleArn: str | None = None


class HeaderValue(Model):
    exact: str


class TestHeader(Model):
    name: str | None = None
    value: HeaderValue | None = None


class TestTrafficRuleSpec(Model):
    """ECS's test-traffic rule (Service Connect's `testTrafficRules` shape):
    requests carrying the header go where this rule's weights say, before
    any other rule. Without a `header.name`, both spellings AWS uses match."""

    Enabled: bool = True
    header: TestHeader = TestHeader()
    ForwardConfig: ForwardSpec | None = None
    RuleArn: str | None = None

    def header_names(self) -> tuple[str, ...]:
        if self.header.name:
            return (self.header.name.lower(),)
        return DEFAULT_TEST_HEADERS


class Attribute(Model):
    Key: str
    Value: str


# ModifyListenerAttributes' "tcp.idle_timeout.seconds - The tcp idle timeout
# value, in seconds. The valid range is 60-6000 seconds. The default is 350
# seconds" (Network and Gateway Load Balancers; ELBv2 API reference).
NLB_LISTENER_ATTRIBUTES: dict[str, tuple[Any, ...]] = {"tcp.idle_timeout.seconds": (60, 6000)}


class Listener(Model):
    Name: str | None = None
    Port: Annotated[int, in_range(1, 65535)]
    # HTTP on an application load balancer, TCP on a network one (TLS
    # passthrough is TCP: the load balancer never sees inside the bytes).
    Protocol: Literal["HTTP", "TCP"] = "HTTP"
    Address: str = "127.0.0.1"
    DefaultActions: ActionList
    Rules: list[Rule] = []
    TestTrafficRule: TestTrafficRuleSpec = TestTrafficRuleSpec()
    ListenerArn: str | None = None
    # CloudFormation's ListenerAttributes (ModifyListenerAttributes'); see NLB_LISTENER_ATTRIBUTES.
    ListenerAttributes: list[Attribute] = []

    @property
    def name(self) -> str:
        return self.Name or str(self.Port)

    @property
    def tcp_idle_timeout(self) -> int:
        """A network load balancer's TCP idle timeout (`tcp.idle_timeout.seconds`, 350 by default)."""
        for a in self.ListenerAttributes:
            if a.Key == "tcp.idle_timeout.seconds":
                return int(a.Value)
        return NLB_IDLE_TIMEOUT


class TargetDescription(Model):
    Id: str
    Port: Annotated[int, in_range(1, 65535)] | None = None


def _target(v: Any) -> Any:
    return {"Id": v} if isinstance(v, str) else v


class MatcherSpec(Model):
    HttpCode: str = "200"

    @field_validator("HttpCode")
    @classmethod
    def _codes(cls, v: str) -> str:
        # The form only here: the range depends on the target group's protocol (cross_check).
        try:
            parse_matcher(v, lo=0, hi=10**6)
        except ValueError as exc:
            if "is not a list" in str(exc):
                raise
        return v


# CreateTargetGroup's Matcher: "For target groups with a protocol of TCP ...
# the range is 200-599. For target groups with a protocol of HTTP or HTTPS,
# the range is 200-499" (ELBv2 API reference).
MATCHER_MAX = {"HTTP": 499, "TCP": 599}


def parse_matcher(spec: str, lo: int = 200, hi: int = 499) -> frozenset[int]:
    """ALB's matcher: "200", "200,202", "200-299"; codes `lo`..`hi` (ALB
    200..499, NLB 200..599)."""
    codes: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        first_s, dash, last_s = part.partition("-")
        try:
            first, last = int(first_s), int(last_s if dash else first_s)
        except ValueError:
            raise ValueError(f"{spec!r} is not a list of codes or ranges such as 200,202 or 200-299") from None
        if not (lo <= first <= last <= hi):
            raise ValueError(f"{part!r} is out of range {lo}..{hi}")
        codes.update(range(first, last + 1))
    return frozenset(codes)


TG_ATTRIBUTES = {
    "deregistration_delay.timeout_seconds": (0, 3600),
    "load_balancing.algorithm.type": ("round_robin", "least_outstanding_requests", "weighted_random"),
    "slow_start.duration_seconds": (0, 900),
}
# A network load balancer's target group attributes shiftlab emulates (NLB's
# "Edit target group attributes" page): the delay, and whether connections
# still open when it ends are closed.
NLB_TG_ATTRIBUTES: dict[str, tuple[Any, ...]] = {
    "deregistration_delay.timeout_seconds": (0, 3600),
    "deregistration_delay.connection_termination.enabled": ("true", "false"),
}


class TargetGroup(Model):
    Name: str
    Port: Annotated[int, in_range(1, 65535)] | None = None
    Protocol: Literal["HTTP", "TCP"] = "HTTP"
    # ELBv2: HTTP by default on an application load balancer, TCP on a
    # network one (LoadBalancer fills the network defaults in).
    HealthCheckProtocol: Literal["HTTP", "TCP"] = "HTTP"
    TargetType: Literal["ip", "instance"] = "ip"
    Targets: list[Annotated[TargetDescription, BeforeValidator(_target)]] = []
    HealthCheckEnabled: bool = True
    HealthCheckPath: str = "/"
    HealthCheckPort: str = "traffic-port"
    HealthCheckIntervalSeconds: Annotated[int, in_range(5, 300)] = 30
    HealthCheckTimeoutSeconds: Annotated[int, in_range(2, 120)] = 5
    HealthyThresholdCount: Annotated[int, in_range(2, 10)] = 5
    UnhealthyThresholdCount: Annotated[int, in_range(2, 10)] = 2
    Matcher: MatcherSpec = MatcherSpec()
    TargetGroupAttributes: list[Attribute] = []
    TargetGroupArn: str | None = None

    @field_validator("Name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,32}", v):
            raise ValueError(f"{v!r} must be 1..32 letters, digits or hyphens, as ELBv2 names are")
        return v

    def attribute(self, key: str, default: str) -> str:
        for a in self.TargetGroupAttributes:
            if a.Key == key:
                return a.Value
        return default

    @property
    def deregistration_delay(self) -> int:
        return int(self.attribute("deregistration_delay.timeout_seconds", "300"))

    def drain_seconds(self, time_scale: float) -> float:
        """The deregistration delay on a rehearsal's clock: scaled like every
        AWS duration, but not below 1 s (or the configured delay, if shorter).
        Request durations are not scaled, so a drain shorter than a slow
        request would cut it where AWS would let it finish."""
        delay = self.deregistration_delay
        return max(delay / time_scale, min(delay, DRAIN_FLOOR_SECONDS))

    @property
    def algorithm(self) -> str:
        return self.attribute("load_balancing.algorithm.type", "round_robin")

    @property
    def connection_termination(self) -> bool:
        """NLB: close the connections still open when the deregistration delay ends."""
        return self.attribute("deregistration_delay.connection_termination.enabled", "false") == "true"

    @property
    def matcher_codes(self) -> frozenset[int]:
        return parse_matcher(self.Matcher.HttpCode, 200, MATCHER_MAX[self.Protocol])


class AdminConfig(Model):
    Address: str = "127.0.0.1"
    Port: Annotated[int, in_range(0, 65535)] = 9090
    Token: str | None = None


LB_ATTRIBUTES: dict[str, tuple[Any, ...]] = {
    "idle_timeout.timeout_seconds": (1, 4000),
    # ALB's desync mitigation (proxy/desync.py); defensive unless set.
    "routing.http.desync_mitigation_mode": ("monitor", "defensive", "strictest"),
}


# A network load balancer's defaults where they differ from ALB's, from the
# ELBv2 API reference's CreateTargetGroup and NLB's "Health checks for
# Network Load Balancer target groups" page: TCP listeners and target groups,
# TCP health checks, a timeout of 10 s (6 s for an HTTP check), matcher
# 200-399 for an HTTP check.
NLB_HEALTH_TIMEOUT = {"TCP": 10, "HTTP": 6}
NLB_MATCHER = "200-399"
# NLB's TCP idle timeout: 350 seconds ("Connection idle timeout", NLB's
# listeners page), not scaled, as ALB's idle timeout is not.
NLB_IDLE_TIMEOUT = 350


def _network_defaults(data: Any) -> Any:
    """A network load balancer's section with NLB's defaults filled in where
    the file says nothing (a copy; fields it gives are kept, and refused by
    cross_check if NLB has no such thing)."""
    if not isinstance(data, dict) or data.get("Type") != "network":
        return data
    data = dict(data)
    if isinstance(data.get("Listeners"), list):
        data["Listeners"] = [
            {"Protocol": "TCP", "TestTrafficRule": {"Enabled": False}, **ls} if isinstance(ls, dict) else ls
            for ls in data["Listeners"]]
    if isinstance(data.get("TargetGroups"), list):
        groups = []
        for tg in data["TargetGroups"]:
            if isinstance(tg, dict):
                tg = {"Protocol": "TCP", "HealthCheckProtocol": "TCP", **tg}
                hc = tg["HealthCheckProtocol"]
                tg.setdefault("HealthCheckTimeoutSeconds", NLB_HEALTH_TIMEOUT.get(hc, 10) if isinstance(hc, str)
                              else 10)
                if hc == "HTTP":
                    tg.setdefault("Matcher", {"HttpCode": NLB_MATCHER})
            groups.append(tg)
        data["TargetGroups"] = groups
    return data


class LoadBalancer(Model):
    Name: str = "shiftlab"
    # CreateLoadBalancer's Type: "The default is application."
    Type: Literal["application", "network"] = "application"
    Listeners: Annotated[list[Listener], Field(min_length=1)]
    TargetGroups: Annotated[list[TargetGroup], Field(min_length=1)]
    LoadBalancerAttributes: list[Attribute] = []
    Admin: AdminConfig = AdminConfig()

    _defaults = model_validator(mode="before")(staticmethod(_network_defaults))

    @property
    def network(self) -> bool:
        return self.Type == "network"

    @property
    def idle_timeout(self) -> int:
        if self.network:
            return NLB_IDLE_TIMEOUT
        for a in self.LoadBalancerAttributes:
            if a.Key == "idle_timeout.timeout_seconds":
                return int(a.Value)
        return 60

    @property
    def desync_mitigation_mode(self) -> str:
        for a in self.LoadBalancerAttributes:
            if a.Key == "routing.http.desync_mitigation_mode":
                return a.Value
        return "defensive"


def load_balancer_from_dict(data: Any, prefix: str = "loadBalancer") -> LoadBalancer:
    # What ELBv2's API refuses (its model), where shiftlab's checks say nothing more precise.
    aws = load_balancer_problems(data, prefix)
    try:
        lb: LoadBalancer = parse(LoadBalancer, data, prefix)
    except ConfigError as exc:
        raise ConfigError(merge_problems(exc.problems, aws)) from None
    problems = merge_problems(cross_check(lb, prefix), aws)
    if problems:
        raise ConfigError(problems)
    return lb


def cross_check(lb: LoadBalancer, prefix: str = "loadBalancer") -> list[str]:
    """What a single field cannot know: references, duplicates, attributes."""
    problems: list[str] = []
    names = [tg.Name for tg in lb.TargetGroups]
    seen: set[str] = set()
    for i, tg in enumerate(lb.TargetGroups):
        p = f"{prefix}.TargetGroups[{i}]"
        if tg.Name in seen:
            problems.append(f"{p}.Name: {tg.Name!r} is used by another target group")
        seen.add(tg.Name)
        for j, t in enumerate(tg.Targets):
            try:
                parse_target(t.Id, t.Port or tg.Port)
            except ValueError as exc:
                problems.append(f"{p}.Targets[{j}]: {exc}")
        problems += _check_attributes(tg.TargetGroupAttributes, NLB_TG_ATTRIBUTES if lb.network else TG_ATTRIBUTES,
                                      f"{p}.TargetGroupAttributes")
        try:
            tg.matcher_codes  # noqa: B018 - the range by protocol
        except ValueError as exc:
            problems.append(f"{p}.Matcher.HttpCode: {exc}")
        # ALB: the timeout must be less than the interval; NLB: not greater
        # (an NLB's TCP default is a 10 s timeout, and 10 s is a valid interval).
        if (tg.HealthCheckTimeoutSeconds > tg.HealthCheckIntervalSeconds if lb.network
                else tg.HealthCheckTimeoutSeconds >= tg.HealthCheckIntervalSeconds):
            problems.append(
                f"{p}.HealthCheckTimeoutSeconds: {tg.HealthCheckTimeoutSeconds} must be "
                f"{'at most' if lb.network else 'less than'} HealthCheckIntervalSeconds "
                f"({tg.HealthCheckIntervalSeconds})"
            )
        if tg.HealthCheckPort != "traffic-port" and not tg.HealthCheckPort.isdigit():
            problems.append(f"{p}.HealthCheckPort: {tg.HealthCheckPort!r} must be traffic-port or a port number")
    problems += _check_attributes(lb.LoadBalancerAttributes, {} if lb.network else LB_ATTRIBUTES,
                                  f"{prefix}.LoadBalancerAttributes")
    problems += type_problems(lb, prefix)

    bound: list[tuple[str, int]] = []
    listener_names: set[str] = set()
    arns: set[str] = set()
    for i, listener in enumerate(lb.Listeners):
        p = f"{prefix}.Listeners[{i}]"
        # One port, several addresses: the load balancers of weighted DNS
        # records (route53), a listener each on its own loopback address.
        clash = next((j for j, (addr, port) in enumerate(bound) if port == listener.Port
                      and (addr == listener.Address or _any_address(addr) or _any_address(listener.Address))), None)
        if clash is not None:
            problems.append(f"{p}.Port: {listener.Port} is used by Listeners[{clash}]")
        bound.append((listener.Address, listener.Port))
        if listener.name in listener_names:
            problems.append(f"{p}.Name: {listener.name!r} is used by another listener")
        listener_names.add(listener.name)
        problems += _check_attributes(listener.ListenerAttributes, NLB_LISTENER_ATTRIBUTES if lb.network else {},
                                      f"{p}.ListenerAttributes")
        problems += _check_actions(listener.DefaultActions, names, f"{p}.DefaultActions")
        if listener.TestTrafficRule.ForwardConfig is not None:
            problems += _check_forward(
                listener.TestTrafficRule.ForwardConfig, names, f"{p}.TestTrafficRule.ForwardConfig"
            )
        problems += check_rules(listener.Rules, names, p, arns)
    return problems


def type_problems(lb: LoadBalancer, prefix: str = "loadBalancer") -> list[str]:
    """What the load balancer's Type refuses. A network load balancer works
    at layer 4: TCP listeners whose one rule is the default forward action
    (no conditions to match, no header to test with, no redirect nor fixed
    response, no group stickiness), TCP target groups; an application one
    has HTTP listeners and target groups, which ELBv2 cannot check by TCP."""
    problems: list[str] = []
    kind = "a network" if lb.network else "an application"
    want = "TCP" if lb.network else "HTTP"
    for i, ls in enumerate(lb.Listeners):
        p = f"{prefix}.Listeners[{i}]"
        if ls.Protocol != want:
            problems.append(f"{p}.Protocol: {ls.Protocol} is not a protocol of {kind} load balancer's listeners "
                            f"({want}" + (": TLS passes through as TCP)" if lb.network else ")"))
        if not lb.network:
            continue
        if ls.Rules:
            problems.append(f"{p}.Rules: a network load balancer's listener has no rules (it cannot read "
                            "requests): only DefaultActions, as on ELBv2")
        if ls.TestTrafficRule.Enabled:
            problems.append(f"{p}.TestTrafficRule: a network load balancer cannot match a test header; test "
                            "traffic needs a listener of its own (service.loadBalancers[0].advancedConfiguration."
                            "testListenerRule)")
        for j, action in enumerate(ls.DefaultActions):
            if action.Type != "forward":
                problems.append(f"{p}.DefaultActions[{j}].Type: {action.Type} is an application load balancer's "
                                "action; a network load balancer only forwards")
            elif action.ForwardConfig is not None and action.ForwardConfig.TargetGroupStickinessConfig.Enabled:
                problems.append(f"{p}.DefaultActions[{j}].ForwardConfig.TargetGroupStickinessConfig: target group "
                                "stickiness is an application load balancer's (it rides on a cookie)")
    for i, tg in enumerate(lb.TargetGroups):
        p = f"{prefix}.TargetGroups[{i}]"
        if tg.Protocol != want:
            problems.append(f"{p}.Protocol: {tg.Protocol} target groups cannot serve {kind} load balancer "
                            f"(loadBalancer.Type {lb.Type}: {want})")
        elif tg.Protocol == "HTTP" and tg.HealthCheckProtocol == "TCP":
            problems.append(f"{p}.HealthCheckProtocol: TCP health checks are not supported for HTTP target groups, "
                            "as ELBv2 says")
        if tg.HealthCheckProtocol == "TCP" and "Matcher" in tg.model_fields_set:
            problems.append(f"{p}.Matcher: a TCP health check passes when the connection opens: it has no "
                            "matcher (HealthCheckProtocol TCP), as ELBv2 refuses one")
    return problems


def check_rules(rules: list[Rule], names: list[str], path: str, arns: set[str]) -> list[str]:
    """One listener's rules: priorities, references, condition configs.
    `arns` holds RuleArns already in use and collects these rules' ones."""
    problems: list[str] = []
    priorities: dict[int, int] = {}
    for j, rule in enumerate(rules):
        rp = f"{path}.Rules[{j}]"
        if rule.Priority in priorities:
            problems.append(f"{rp}.Priority: {rule.Priority} is used by Rules[{priorities[rule.Priority]}]")
        priorities[rule.Priority] = j
        problems += _check_actions(rule.Actions, names, f"{rp}.Actions")
        for k, cond in enumerate(rule.Conditions):
            if cond.config() is None:
                problems.append(f"{rp}.Conditions[{k}]: Field {cond.Field} needs {_CONDITION_CONFIG[cond.Field]}")
        problems += rule_limits(rule, rp)
        if rule.RuleArn:
            if rule.RuleArn in arns:
                problems.append(f"{rp}.RuleArn: {rule.RuleArn!r} is used by another rule")
            arns.add(rule.RuleArn)
    return problems


# ALB's "Condition basics" (rule-condition-types.html) and its quotas
# (load-balancer-limits.html, "Rules": condition values, condition
# wildcards and match evaluations per rule, 5 each, not adjustable).
ONE_PER_RULE = ("host-header", "http-request-method", "path-pattern", "source-ip")
WILDCARD_FIELDS = ("host-header", "path-pattern", "http-header", "query-string")
MAX_MATCH_EVALUATIONS = 5
MAX_WILDCARDS = 5


def rule_limits(rule: Rule, path: str) -> list[str]:
    """What ALB refuses in a rule's conditions as a whole: a second
    condition of a field it takes once, more than 5 match evaluations
    (values; a query string's key/value pairs) or 5 wildcards (`*`, `?`)."""
    problems = []
    first: dict[str, int] = {}
    evaluations = wildcards = 0
    for k, cond in enumerate(rule.Conditions):
        if cond.Field in ONE_PER_RULE:
            if cond.Field in first:
                problems.append(f"{path}.Conditions[{k}].Field: a rule takes one {cond.Field} condition at most, "
                                f"as ALB does (another is Conditions[{first[cond.Field]}])")
            first.setdefault(cond.Field, k)
        cfg = cond.config()
        if cfg is None:
            continue
        if isinstance(cfg, QueryStringSpec):
            texts = [t for kv in cfg.Values for t in (kv.Key or "", kv.Value)]
            evaluations += len(cfg.Values)
        else:
            texts = list(cfg.Values)
            evaluations += len(texts)
        if cond.Field in WILDCARD_FIELDS:
            wildcards += sum(t.count("*") + t.count("?") for t in texts)
    if evaluations > MAX_MATCH_EVALUATIONS:
        problems.append(f"{path}.Conditions: {evaluations} match evaluations (condition values), ALB takes at most "
                        f"{MAX_MATCH_EVALUATIONS} per rule")
    if wildcards > MAX_WILDCARDS:
        problems.append(f"{path}.Conditions: {wildcards} wildcards (* and ?), ALB takes at most {MAX_WILDCARDS} "
                        "per rule")
    return problems


def _check_actions(actions: list[Action], names: list[str], path: str) -> list[str]:
    problems = []
    for i, action in enumerate(actions):
        p = f"{path}[{i}]"
        need = {
            "forward": action.ForwardConfig or action.TargetGroupArn,
            "redirect": action.RedirectConfig,
            "fixed-response": action.FixedResponseConfig,
        }[action.Type]
        if not need:
            cfg = {"forward": "ForwardConfig or TargetGroupArn", "redirect": "RedirectConfig",
                   "fixed-response": "FixedResponseConfig"}[action.Type]
            problems.append(f"{p}: Type {action.Type} needs {cfg}")
            continue
        if action.ForwardConfig is not None:
            problems += _check_forward(action.ForwardConfig, names, f"{p}.ForwardConfig")
        elif action.Type == "forward" and action.TargetGroupArn is not None:
            problems += _check_group_ref(action.TargetGroupArn, names, f"{p}.TargetGroupArn")
    return problems


def _check_group_ref(ref: str, names: list[str], path: str) -> list[str]:
    if target_group_name(ref) in names:
        return []
    return [f"{path}: {ref!r} names no target group (known: {', '.join(dict.fromkeys(names))})"]


def _check_forward(fwd: ForwardSpec, names: list[str], path: str) -> list[str]:
    problems = []
    seen: set[str] = set()
    for i, t in enumerate(fwd.TargetGroups):
        problems += _check_group_ref(t.TargetGroupArn, names, f"{path}.TargetGroups[{i}].TargetGroupArn")
        if t.name in seen:
            problems.append(f"{path}.TargetGroups[{i}].TargetGroupArn: {t.name!r} is listed twice")
        seen.add(t.name)
    if len(fwd.TargetGroups) > 1 and sum(t.Weight for t in fwd.TargetGroups) == 0:
        problems.append(f"{path}.TargetGroups: at least one weight must be above 0")
    return problems


def _check_attributes(attrs: list[Attribute], known: dict[str, tuple[Any, ...]], path: str) -> list[str]:
    problems = []
    for i, a in enumerate(attrs):
        p = f"{path}[{i}]"
        if a.Key not in known:
            problems.append(f"{p}.Key: {a.Key!r} is not supported (supported: {', '.join(known) or 'none'})")
            continue
        allowed = known[a.Key]
        if isinstance(allowed[0], int):
            lo, hi = allowed
            if not a.Value.isdigit() or not lo <= int(a.Value) <= hi:
                problems.append(f"{p}.Value: {a.Value} is out of range {lo}..{hi} for {a.Key}")
        elif a.Value not in allowed:
            problems.append(f"{p}.Value: {a.Value!r} is not one of {', '.join(allowed)}")
    return problems


def parse_target(ident: str, default_port: int | None) -> tuple[str, int]:
    """`127.0.0.1:8001`, `[::1]:8001`, or a host with the group's Port."""
    host, port = ident, default_port
    if ident.startswith("["):
        host, _, rest = ident[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], ident)
    elif ident.count(":") == 1:
        host, _, port_s = ident.partition(":")
        port = _port(port_s, ident)
    if not host:
        raise ValueError(f"{ident!r} has no host")
    if port is None:
        raise ValueError(f"{ident!r} needs a port (host:port, or Port on the target or group)")
    return host, port


def _port(text: str, ident: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{ident!r} has no valid port")
    return int(text)
