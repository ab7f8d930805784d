"""How the controller moves traffic and reads metrics: the `Router` protocol.

The real implementation talks to the proxy's admin API (the ELBv2 and
CloudWatch APIs' roles); `FakeRouter` keeps the same state in memory for
unit tests of the driver. tests/controller/test_router_contract.py runs one
suite against both, so the fake cannot drift from the real thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from shiftlab.common.naming import target_group_name


class RouterError(Exception):
    """The load balancer refused or could not be reached."""


class Router(Protocol):
    async def weights(self, rule: str) -> dict[str, int]:
        """The weights in force on a rule's forward action, by target group."""
        ...

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        """Set a rule's weights atomically; returns the read-back."""
        ...

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None: ...

    async def deregister(self, group: str, targets: list[tuple[str, int]]) -> None: ...

    async def target_health(self, group: str) -> dict[str, str]:
        """State (initial, healthy, unhealthy, draining) by target id `host:port`."""
        ...

    async def stats(self) -> dict[str, Any]:
        """The proxy's stats snapshot (see proxy.stats.Stats.snapshot)."""
        ...

    async def rules(self) -> dict[str, str | None]:
        """Every rule id (`listener/priority|default|test`) with its RuleArn."""
        ...

    async def close(self) -> None: ...


def target_id(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HttpRouter:
    def __init__(self, admin_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base = admin_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self._session.request(method, self.base + path, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise RouterError(f"{method} {path}: {resp.status} {data.get('error', data)}")
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RouterError(f"load balancer admin API at {self.base}: {exc or type(exc).__name__}") from None

    @staticmethod
    def _rule_path(rule: str) -> str:
        listener, _, which = rule.rpartition("/")
        if not listener:
            raise RouterError(f"rule {rule!r} is not <listener>/<priority|default|test>")
        return f"/admin/listeners/{listener}/rules/{which}"

    @staticmethod
    def _weights(forward: dict[str, Any]) -> dict[str, int]:
        return {target_group_name(t["TargetGroupArn"]): t["Weight"] for t in forward["TargetGroups"]}

    async def weights(self, rule: str) -> dict[str, int]:
        data = await self._call("GET", self._rule_path(rule))
        for action in data.get("Actions", []):
            if action.get("Type") == "forward":
                return self._weights(action["ForwardConfig"])
        raise RouterError(f"rule {rule} has no forward action")

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        body = {"TargetGroups": [{"TargetGroupArn": g, "Weight": w} for g, w in weights.items()]}
        data = await self._call("PUT", self._rule_path(rule) + "/forward", body)
        return self._weights(data["ForwardConfig"])

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None:
        await self._call("POST", f"/admin/target-groups/{group}/register",
                         {"Targets": [{"Id": h, "Port": p} for h, p in targets]})

    async def deregister(self, group: str, targets: list[tuple[str, int]]) -> None:
        await self._call("POST", f"/admin/target-groups/{group}/deregister",
                         {"Targets": [{"Id": h, "Port": p} for h, p in targets]})

    async def target_health(self, group: str) -> dict[str, str]:
        data = await self._call("GET", f"/admin/target-groups/{group}")
        return {t["Id"]: t["TargetHealth"]["State"] for t in data["TargetHealthDescriptions"]}

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/admin/stats")
        return data

    async def rules(self) -> dict[str, str | None]:
        data = await self.state()
        return {r["Id"]: r.get("RuleArn") for ls in data["Listeners"] for r in ls["Rules"]}

    async def state(self) -> dict[str, Any]:
        """The whole load balancer as its admin API describes it (GET /admin/state)."""
        data: dict[str, Any] = await self._call("GET", "/admin/state")
        return data

    async def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._call("GET", "/admin/healthz")
                return
            except RouterError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self._session.close()


class FakeRouter:
    """In-memory load balancer state with the Router contract.

    Targets become healthy on registration unless listed in `unhealthy`;
    `fail_next` makes the next calls raise, to rehearse an unreachable proxy.
    `clock` stamps the stats snapshots (a test's fake clock). A deregistered
    target shows `draining` for `drain_seconds` on that clock, as the proxy
    shows it for the deregistration delay (0: it goes at once)."""

    def __init__(self, rules: dict[str, dict[str, int]], groups: list[str],
                 clock: Callable[[], float] = time.time, drain_seconds: float = 0.0) -> None:
        self._clock = clock
        self.drain_seconds = drain_seconds
        self._drained_at: dict[tuple[str, str], float] = {}
        self._rules = {r: dict(w) for r, w in rules.items()}
        self._groups: dict[str, dict[str, str]] = {g: {} for g in groups}
        self.unhealthy: set[str] = set()
        self.fail_next = 0
        self.history: list[tuple[str, dict[str, int]]] = []
        self.counters: dict[str, dict[str, int]] = {g: {} for g in groups}

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RouterError("fake load balancer: unreachable")

    def _group(self, group: str) -> dict[str, str]:
        name = target_group_name(group)
        if name not in self._groups:
            raise RouterError(f"no target group {group!r}")
        return self._groups[name]

    async def weights(self, rule: str) -> dict[str, int]:
        self._maybe_fail()
        if rule not in self._rules:
            raise RouterError(f"no rule {rule!r}")
        return dict(self._rules[rule])

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        self._maybe_fail()
        if rule not in self._rules:
            raise RouterError(f"no rule {rule!r}")
        for g, w in weights.items():
            self._group(g)
            if not 0 <= w <= 999:
                raise RouterError(f"weight {w} is out of range 0..999")
        self._rules[rule] = {target_group_name(g): w for g, w in weights.items()}
        self.history.append((rule, dict(self._rules[rule])))
        return dict(self._rules[rule])

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None:
        self._maybe_fail()
        g = self._group(group)
        for h, p in targets:
            tid = target_id(h, p)
            if g.get(tid) in (None, "draining"):
                g[tid] = "unhealthy" if tid in self.unhealthy else "healthy"

    async def deregister(self, group: str, targets: list[tuple[str, int]]) -> None:
        self._maybe_fail()
        g = self._group(group)
        for h, p in targets:
            tid = target_id(h, p)
            if self.drain_seconds > 0 and tid in g:
                g[tid] = "draining"
                self._drained_at[(target_group_name(group), tid)] = self._clock() + self.drain_seconds
            else:
                g.pop(tid, None)

    async def target_health(self, group: str) -> dict[str, str]:
        self._maybe_fail()
        g = self._group(group)
        name = target_group_name(group)
        for (gname, tid), until in list(self._drained_at.items()):
            if gname == name and until <= self._clock():
                del self._drained_at[(gname, tid)]
                if g.get(tid) == "draining":
                    del g[tid]
        return dict(g)

    async def stats(self) -> dict[str, Any]:
        self._maybe_fail()
        groups = {}
        for name, targets in self._groups.items():
            c = dict(self.counters[name])
            c["HealthyHostCount"] = sum(1 for s in targets.values() if s == "healthy")
            c["UnHealthyHostCount"] = sum(1 for s in targets.values() if s == "unhealthy")
            groups[name] = c
        return {"timestamp": self._clock(), "loadBalancer": "fake", "responseTimeBuckets": [],
                "targetGroups": groups, "total": {}}

    async def rules(self) -> dict[str, str | None]:
        self._maybe_fail()
        return dict.fromkeys(self._rules)

    async def close(self) -> None:
        return None


class NoLoadBalancer:
    """The Router of a headless service (neither loadBalancers nor Service
    Connect): there is no load balancer, so nothing is called and no proxy
    runs. A task counts as healthy while it runs, as ECS counts a task of a
    service without load balancer health checks (and without a container
    healthCheck, which shiftlab's task definitions do not have): the
    scheduler registers a task once it runs and deregisters it when it
    stops or exits. No rules, no weights, no draining, no metrics."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._groups: dict[str, set[str]] = {}

    async def weights(self, rule: str) -> dict[str, int]:
        raise RouterError(f"no rule {rule!r}: the service has no load balancer")

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        raise RouterError(f"no rule {rule!r}: the service has no load balancer")

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None:
        self._groups.setdefault(group, set()).update(target_id(h, p) for h, p in targets)

    async def deregister(self, group: str, targets: list[tuple[str, int]]) -> None:
        self._groups.setdefault(group, set()).difference_update(target_id(h, p) for h, p in targets)

    async def target_health(self, group: str) -> dict[str, str]:
        return dict.fromkeys(sorted(self._groups.get(group, ())), "healthy")

    async def stats(self) -> dict[str, Any]:
        return {"timestamp": self._clock(), "loadBalancer": None, "responseTimeBuckets": [],
                "targetGroups": {}, "total": {}}

    async def rules(self) -> dict[str, str | None]:
        return {}

    async def close(self) -> None:
        return None


DNS_RULE_PREFIX = "route53/"


class RecordWeights(Protocol):
    """A hosted zone's weighted records (Route 53's ChangeResourceRecordSets'
    role; proxy.dns.Zone), by record name and SetIdentifier."""

    def weights(self, name: str, rtype: str = "A") -> dict[str, int]: ...

    def set_weights(self, name: str, weights: dict[str, int], rtype: str = "A") -> dict[str, int]: ...

    def ttl(self, name: str, rtype: str = "A") -> dict[str, int]: ...


ROUTE53_MAX_WEIGHT = 255


class DnsWeightedRouter:
    """The Router of a service behind two load balancers and one weighted DNS
    name (Route 53's reference architecture): the rule `route53/<name>` is the
    name's weighted records, one a target group (`set_of_group`: target group
    -> SetIdentifier of the record pointing at the load balancer that
    forwards to it); everything else (targets, health, metrics, the load
    balancers' own rules) is `inner`'s. The weights the controller writes
    stand as Route 53 weights (0..255); a split finer than that refuses."""

    def __init__(self, inner: Router, records: RecordWeights, name: str, set_of_group: dict[str, str]) -> None:
        self.inner = inner
        self.records = records
        self.name = name
        self.rule = DNS_RULE_PREFIX + name
        self.set_of_group = dict(set_of_group)

    def owns(self, rule: str) -> bool:
        return rule == self.rule

    def view(self) -> dict[str, Any]:
        """The records as served now: weight and TTL by SetIdentifier, and by target group."""
        weights, ttl = self.records.weights(self.name), self.records.ttl(self.name)
        return {"name": self.name, "rule": self.rule, "weights": weights, "ttl": ttl,
                "setIdentifiers": dict(self.set_of_group)}

    async def weights(self, rule: str) -> dict[str, int]:
        if not self.owns(rule):
            return await self.inner.weights(rule)
        by_set = self.records.weights(self.name)
        return {group: by_set[sid] for group, sid in self.set_of_group.items()}

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        if not self.owns(rule):
            return await self.inner.set_weights(rule, weights)
        by_set = {}
        for group, w in weights.items():
            name = target_group_name(group)
            if name not in self.set_of_group:
                raise RouterError(f"{self.rule}: no record points at the load balancer of target group {group!r}")
            if not 0 <= w <= ROUTE53_MAX_WEIGHT:
                raise RouterError(f"{self.rule}: weight {w} for {name} is out of Route 53's range "
                                  f"0..{ROUTE53_MAX_WEIGHT} (a share finer than whole percents)")
            by_set[self.set_of_group[name]] = w
        try:
            self.records.set_weights(self.name, by_set)
        except (KeyError, ValueError) as exc:
            raise RouterError(f"{self.rule}: {exc}") from None
        return await self.weights(rule)

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None:
        await self.inner.register(group, targets)

    async def deregister(self, group: str, targets: list[tuple[str, int]]) -> None:
        await self.inner.deregister(group, targets)

    async def target_health(self, group: str) -> dict[str, str]:
        return await self.inner.target_health(group)

    async def stats(self) -> dict[str, Any]:
        return await self.inner.stats()

    async def rules(self) -> dict[str, str | None]:
        return {**await self.inner.rules(), self.rule: None}

    async def close(self) -> None:
        await self.inner.close()
