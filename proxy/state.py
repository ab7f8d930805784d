"""The load balancer's live state: listeners, rules, target groups, targets.

Built from the frozen config, then changed by the admin API (the ELBv2 API's
role). Every change swaps whole objects (a rule's picker, a listener's rule
tuple, a group's candidate list), so a request in flight keeps the object it
started with and never sees a half-made change.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from shiftlab.common.configfile import parse_checked
from shiftlab.proxy import config as cfg
from shiftlab.proxy.awsshapes import forward_problems, rules_problems
from shiftlab.proxy.balancer import SmoothWeighted, make_selector
from shiftlab.proxy.matching import (
    Hint,
    Predicate,
    build_prefilter,
    compile_conditions,
    condition_hint,
    header_predicate,
)
from shiftlab.proxy.stats import Counters, Stats
from shiftlab.proxy.upstream import Pool

# Target states and reasons, as DescribeTargetHealth names them.
INITIAL, HEALTHY, UNHEALTHY, DRAINING, UNUSED = "initial", "healthy", "unhealthy", "draining", "unused"


class StateError(Exception):
    """A refused admin change; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Target:
    __slots__ = (
        "fail_streak", "flows", "host", "id", "ok_streak", "outstanding", "pool",
        "port", "reason", "registered_at", "state",
    )

    def __init__(self, host: str, port: int, state: str, reason: str, now: float) -> None:
        self.host = host
        self.port = port
        self.id = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.state = state
        self.reason = reason
        self.ok_streak = 0
        self.fail_streak = 0
        self.outstanding = 0
        self.registered_at = now
        self.pool = Pool(host, port)
        # A network load balancer's open connections to this target (proxy.tcp.Flow).
        self.flows: set[Any] = set()

    def describe(self) -> dict[str, Any]:
        return {
            "Target": {"Id": self.host, "Port": self.port},
            "TargetHealth": {"State": self.state, "Reason": self.reason or None},
            "Id": self.id,
            "OutstandingRequests": self.outstanding,
        }


class TargetGroupState:
    def __init__(self, conf: cfg.TargetGroup, time_scale: float, rng: random.Random | None) -> None:
        self.conf = conf
        self.name = conf.Name
        self.time_scale = time_scale
        self.targets: dict[str, Target] = {}
        self.selector = make_selector(conf.algorithm, rng)
        self.candidates: list[Target] = []
        self.on_change: Callable[[TargetGroupState], None] | None = None

    def refresh(self) -> None:
        """Recompute who may get new requests: healthy targets; if none, fail
        open to every non-draining target (unhealthy or still initial)."""
        live = [t for t in self.targets.values() if t.state != DRAINING]
        healthy = [t for t in live if t.state == HEALTHY]
        self.candidates = healthy or live
        if self.on_change is not None:
            self.on_change(self)

    def choose(self) -> Target | None:
        c = self.candidates
        if not c:
            return None
        if len(c) == 1:
            return c[0]
        return self.selector.pick(c)  # type: ignore[return-value]

    def counts(self) -> tuple[int, int]:
        healthy = sum(1 for t in self.targets.values() if t.state == HEALTHY)
        unhealthy = sum(1 for t in self.targets.values() if t.state == UNHEALTHY)
        return healthy, unhealthy

    # -- registration -----------------------------------------------------

    def register(self, host: str, port: int, now: float) -> Target:
        probe = Target(host, port, INITIAL, "Elb.RegistrationInProgress", now)
        existing = self.targets.get(probe.id)
        if existing is not None and existing.state != DRAINING:
            return existing
        if existing is not None:
            # Re-registered while draining: requests still in flight keep
            # their connections, which then serve the new registration.
            probe.pool = existing.pool
            probe.flows = existing.flows
        if not self.conf.HealthCheckEnabled:
            probe.state, probe.reason = HEALTHY, "Target.HealthCheckDisabled"
        self.targets[probe.id] = probe
        self.refresh()
        return probe

    def deregister(self, target_id: str) -> Target:
        """ALB's deregistration: the target gets no new requests at once; its
        in-flight ones may finish within the deregistration delay. With none
        left (and so no connection in use) the deregistration is complete,
        "however ... the status of the target is displayed as draining until
        the deregistration delay timeout expires", then it is unused (gone)."""
        t = self.targets.get(target_id)
        if t is None:
            raise StateError(f"target {target_id} is not registered in {self.name}", 404)
        if t.state != DRAINING:
            t.state, t.reason = DRAINING, "Target.DeregistrationInProgress"
            self.refresh()
            delay = self.conf.drain_seconds(self.time_scale)
            if delay <= 0:
                self._drain_expired(t)
                return t
            asyncio.get_running_loop().call_later(delay, self._drain_expired, t)
            if t.outstanding == 0:
                t.pool.close()
        return t

    def request_done(self, t: Target) -> None:
        """Called when a request to `t` ends: the last one of a draining
        target completes its deregistration (no connection to it is kept)."""
        if t.state == DRAINING and t.outstanding == 0:
            t.pool.close()

    def _drain_expired(self, t: Target) -> None:
        if self.targets.get(t.id) is t:
            t.pool.abort_in_use()  # ALB: still open after the delay -> 502
            if self.conf.connection_termination:
                # NLB with deregistration_delay.connection_termination.enabled:
                # connections still open when the delay ends are closed (reset).
                for flow in list(t.flows):
                    flow.terminate()
            # Without it, NLB leaves them open: they end when either side
            # closes them or they stay idle for the idle timeout.
            self.remove(t)

    def remove(self, t: Target) -> None:
        if self.targets.get(t.id) is t:
            del self.targets[t.id]
            t.pool.close()
            t.state = UNUSED
            self.refresh()

    def describe(self) -> dict[str, Any]:
        c = self.conf
        return {
            "TargetGroupName": self.name,
            "TargetGroupArn": c.TargetGroupArn,
            "LoadBalancingAlgorithmType": c.algorithm,
            "Protocol": c.Protocol,
            "DeregistrationDelaySeconds": c.deregistration_delay,
            "ConnectionTermination": c.connection_termination,
            "HealthCheck": {
                "Enabled": c.HealthCheckEnabled,
                "Protocol": c.HealthCheckProtocol,
                "Path": c.HealthCheckPath,
                "IntervalSeconds": c.HealthCheckIntervalSeconds,
                "TimeoutSeconds": c.HealthCheckTimeoutSeconds,
                "HealthyThresholdCount": c.HealthyThresholdCount,
                "UnhealthyThresholdCount": c.UnhealthyThresholdCount,
                "Matcher": c.Matcher.HttpCode,
            },
            "TargetHealthDescriptions": [t.describe() for t in self.targets.values()],
        }


class Choice:
    """One target group of a forward action, with its counters for this listener."""

    __slots__ = ("counters", "group", "weight")

    def __init__(self, group: TargetGroupState, weight: int, counters: Counters) -> None:
        self.group = group
        self.weight = weight
        self.counters = counters


class Forward:
    """A weighted forward action. `set` swaps the picker in one assignment."""

    __slots__ = ("by_name", "choices", "picker", "sticky_seconds")

    def __init__(self, choices: list[Choice], sticky_seconds: int | None) -> None:
        self.choices = choices
        self.by_name = {c.group.name: c for c in choices}
        self.picker: SmoothWeighted[Choice] = SmoothWeighted([(c, c.weight) for c in choices])
        self.sticky_seconds = sticky_seconds

    def describe(self) -> dict[str, Any]:
        return {
            "TargetGroups": [{"TargetGroupArn": c.group.name, "Weight": c.weight} for c in self.choices],
            "TargetGroupStickinessConfig": {
                "Enabled": self.sticky_seconds is not None,
                **({"DurationSeconds": self.sticky_seconds} if self.sticky_seconds else {}),
            },
        }

    def weights(self) -> dict[str, int]:
        return {c.group.name: c.weight for c in self.choices}


class Rule:
    __slots__ = ("action", "arn", "conf", "fixed", "follows", "forward", "id", "kind", "match", "priority",
                 "redirect")

    def __init__(
        self, rule_id: str, priority: int | str, match: Predicate | None, action: cfg.Action | None,
        forward: Forward | None, arn: str | None, conf: Any,
    ) -> None:
        self.id = rule_id
        self.priority = priority
        self.match = match
        self.arn = arn
        self.conf = conf
        self.forward = forward
        # A rule whose forward action is another rule's until set on its own
        # (the test-traffic header rule follows its listener's default).
        self.follows: Rule | None = None
        self.kind = action.Type if action is not None else "forward"
        self.redirect = action.RedirectConfig if action is not None else None
        self.fixed = action.FixedResponseConfig if action is not None else None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Id": self.id, "Priority": self.priority, "RuleArn": self.arn}
        if isinstance(self.conf, cfg.Rule):
            out["Conditions"] = [c.model_dump(exclude_none=True) for c in self.conf.Conditions]
        elif isinstance(self.conf, cfg.TestTrafficRuleSpec):
            out["TestTrafficHeader"] = self.conf.header_names()
        if self.follows is not None:
            out["Follows"] = self.follows.id
        if self.kind == "forward" and self.forward is not None:
            out["Actions"] = [{"Type": "forward", "ForwardConfig": self.forward.describe()}]
        elif self.redirect is not None:
            out["Actions"] = [{"Type": "redirect", "RedirectConfig": self.redirect.model_dump()}]
        elif self.fixed is not None:
            out["Actions"] = [{"Type": "fixed-response", "FixedResponseConfig": self.fixed.model_dump()}]
        return out


class ListenerState:
    def __init__(self, conf: cfg.Listener) -> None:
        self.conf = conf
        self.name = conf.name
        self.port = conf.Port
        self.rules: tuple[Rule, ...] = ()  # the test rule (if any) first, then by priority
        # False when no rule can match (proxy.matching.build_prefilter); None: always try them.
        self.prefilter: Predicate | None = None
        self.default: Rule
        self.counters: Counters  # errors before any group was chosen

    def match(self, request: Any) -> Rule:
        rules = self.rules
        if rules and (self.prefilter is None or self.prefilter(request)):
            for rule in rules:
                if rule.match(request):  # type: ignore[misc]
                    return rule
        return self.default

    def all_rules(self) -> list[Rule]:
        return [*self.rules, self.default]


class LoadBalancerState:
    def __init__(self, conf: cfg.LoadBalancer, time_scale: float = 1.0, rng: random.Random | None = None) -> None:
        self.conf = conf
        self.time_scale = time_scale
        self.stats = Stats(conf.Name, conf.network)
        self.groups = {tg.Name: TargetGroupState(tg, time_scale, rng) for tg in conf.TargetGroups}
        self.listeners: dict[str, ListenerState] = {}
        loop_time = 0.0
        for tg_conf in conf.TargetGroups:
            group = self.groups[tg_conf.Name]
            for t in tg_conf.Targets:
                host, port = cfg.parse_target(t.Id, t.Port or tg_conf.Port)
                group.register(host, port, loop_time)
        for lconf in conf.Listeners:
            ls = ListenerState(lconf)
            ls.counters = self.stats.counters(ls.name)
            self.listeners[ls.name] = ls
            self._build_rules(ls, lconf.Rules, lconf.TestTrafficRule)

    # -- building ---------------------------------------------------------

    def _forward(self, listener: str, fwd: cfg.ForwardSpec) -> Forward:
        choices = [
            Choice(self.groups[t.name], t.Weight, self.stats.counters(listener, t.name))
            for t in fwd.TargetGroups
        ]
        st = fwd.TargetGroupStickinessConfig
        return Forward(choices, st.DurationSeconds if st.Enabled else None)

    def _rule(self, ls: ListenerState, rule_id: str, priority: int | str, match: Predicate | None,
              action: cfg.Action, arn: str | None, conf: Any) -> Rule:
        fwd = action.forward()
        return Rule(f"{ls.name}/{rule_id}", priority, match, action,
                    self._forward(ls.name, fwd) if fwd else None, arn, conf)

    def _build_rules(self, ls: ListenerState, rules: list[cfg.Rule], test: cfg.TestTrafficRuleSpec) -> None:
        default_action = ls.conf.DefaultActions[0]
        ls.default = self._rule(ls, "default", "default", None, default_action, ls.conf.ListenerArn, None)
        built: list[Rule] = []
        hints: list[Hint] = []
        if test.Enabled and (test.ForwardConfig or ls.default.forward) is not None:
            exact = test.header.value.exact if test.header.value else None
            own = self._forward(ls.name, test.ForwardConfig) if test.ForwardConfig else None
            test_rule = Rule(f"{ls.name}/test", "test", header_predicate(test.header_names(), exact),
                             None, own or ls.default.forward, test.RuleArn, test)
            if own is None:
                # Without weights of its own (in the file or set through the
                # admin API) it forwards as the default rule does, whatever that
                # becomes: a rule nobody moves must not keep stale weights.
                test_rule.follows = ls.default
            built.append(test_rule)
            hints.append(("headers", test.header_names()))
        for r in sorted(rules, key=lambda r: r.Priority):
            built.append(self._rule(ls, str(r.Priority), r.Priority, compile_conditions(r.Conditions),
                                    r.Actions[0], r.RuleArn, r))
            hints.append(condition_hint(r.Conditions[0]))
        ls.rules = tuple(built)
        ls.prefilter = build_prefilter(hints)

    # -- lookups ----------------------------------------------------------

    def rule(self, ref: str) -> Rule:
        """A rule by id (`<listener>/<priority|default|test>`) or by its RuleArn."""
        for ls in self.listeners.values():
            for r in ls.all_rules():
                if r.id == ref or (r.arn and r.arn == ref):
                    return r
        known = [r.id for ls in self.listeners.values() for r in ls.all_rules()]
        raise StateError(f"no rule {ref!r} (rules: {', '.join(known)})", 404)

    def group(self, ref: str) -> TargetGroupState:
        name = cfg.target_group_name(ref)
        g = self.groups.get(name)
        if g is None:
            raise StateError(f"no target group {ref!r} (groups: {', '.join(self.groups)})", 404)
        return g

    # -- changes (the admin API calls these) ------------------------------

    def set_forward(self, ref: str, body: Any) -> Rule:
        """ModifyRule for a forward action: new groups and weights, atomically."""
        rule = self.rule(ref)
        if rule.forward is None:
            raise StateError(f"rule {rule.id} is a {rule.kind} action, not forward", 409)
        if isinstance(body, dict) and "TargetGroupStickinessConfig" not in body:
            secs = rule.forward.sticky_seconds
            sticky = {"Enabled": True, "DurationSeconds": secs} if secs else {"Enabled": False}
            body = {**body, "TargetGroupStickinessConfig": sticky}
        fwd_conf = parse_checked(cfg.ForwardSpec, body, "ForwardConfig", forward_problems(body, "ForwardConfig"))
        problems = cfg._check_forward(fwd_conf, list(self.groups), "ForwardConfig")
        if problems:
            raise StateError("; ".join(problems))
        listener = rule.id.split("/", 1)[0]
        rule.forward = self._forward(listener, fwd_conf)
        rule.follows = None
        for other in self.listeners[listener].rules:
            if other.follows is rule:
                other.forward = rule.forward
        return rule

    def set_rules(self, listener: str, body: Any) -> ListenerState:
        ls = self.listeners.get(listener)
        if ls is None:
            raise StateError(f"no listener {listener!r} (listeners: {', '.join(self.listeners)})", 404)
        if self.conf.network:
            raise StateError(f"listener {listener!r} is a network load balancer's: it has no rules (it cannot read "
                             "requests), only its default action", 400)
        data = {**ls.conf.model_dump(exclude_none=True, exclude={"Rules"}), "Rules": body}
        new_conf = parse_checked(cfg.Listener, data, f"Listeners[{listener}]",
                                 rules_problems(body, f"Listeners[{listener}].Rules"))
        others = {r.arn for other in self.listeners.values() if other is not ls for r in other.all_rules() if r.arn}
        problems = cfg.check_rules(new_conf.Rules, list(self.groups), f"Listeners[{listener}]", others)
        if problems:
            raise StateError("; ".join(problems))
        ls.conf = new_conf
        self._build_rules(ls, new_conf.Rules, new_conf.TestTrafficRule)
        return ls

    def health_counts(self) -> dict[str, tuple[int, int]]:
        return {name: g.counts() for name, g in self.groups.items()}

    def forward_weights(self) -> list[tuple[str, str, str, int]]:
        """(listener, rule, target group, weight) of every forward action in
        force; the rule as its id within the listener (`default`, `test`, `10`)."""
        return [(ls.name, r.id.split("/", 1)[1], c.group.name, c.weight)
                for ls in self.listeners.values() for r in ls.all_rules() if r.forward is not None
                for c in r.forward.choices]

    def describe(self) -> dict[str, Any]:
        return {
            "LoadBalancerName": self.conf.Name,
            "Type": self.conf.Type,
            "TimeScale": self.time_scale,
            "Listeners": [
                {"Name": ls.name, "Port": ls.port, "Address": ls.conf.Address, "Protocol": ls.conf.Protocol,
                 "Rules": [r.describe() for r in ls.all_rules()]}
                for ls in self.listeners.values()
            ],
            "TargetGroups": [g.describe() for g in self.groups.values()],
        }
