"""Counters named like ALB's CloudWatch metrics.

The request path only bumps plain integers (prometheus_client's inc/observe
cost 7-14 % of throughput in the benchmark); /metrics and the stats endpoint
render them when asked. Counters are kept per (listener, target group) and
summed per target group for the stats endpoint, as CloudWatch's TargetGroup
dimension sums over listeners.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


def _bounds() -> tuple[float, ...]:
    # Upper bounds 0.5 ms .. ~100 s, 10 % apart: percentiles from these are
    # within 5 % of the truth, good enough for alarm thresholds.
    out, b = [], 0.0005
    while b < 100:
        out.append(round(b, 6))
        b *= 1.1
    return tuple(out)


BOUNDS = _bounds()
ELB_CODES = (400, 405, 408, 460, 463, 501, 502, 503, 504)


class Counters:
    __slots__ = (
        "bytes", "conn_errors", "elb", "flows_active", "flows_new", "requests", "resets_client", "resets_elb",
        "resets_target", "rt_buckets", "rt_count", "rt_max", "rt_min", "rt_sum", "target",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.target = [0] * 6  # by status // 100
        self.elb: dict[int, int] = {}
        self.conn_errors = 0
        self.bytes = 0
        self.rt_buckets = [0] * (len(BOUNDS) + 1)
        self.rt_sum = 0.0
        self.rt_count = 0
        self.rt_min = float("inf")
        self.rt_max = 0.0
        # A network load balancer's flows (TCP connections) and the resets
        # (RST) it forwarded from each side or made itself.
        self.flows_new = 0
        self.flows_active = 0
        self.resets_client = 0
        self.resets_target = 0
        self.resets_elb = 0

    def response_time(self, seconds: float) -> None:
        self.rt_buckets[bisect_left(BOUNDS, seconds)] += 1
        self.rt_sum += seconds
        self.rt_count += 1
        if seconds < self.rt_min:
            self.rt_min = seconds
        if seconds > self.rt_max:
            self.rt_max = seconds

    def elb_error(self, status: int) -> None:
        self.elb[status] = self.elb.get(status, 0) + 1

    def add(self, other: Counters) -> None:
        self.requests += other.requests
        for i in range(6):
            self.target[i] += other.target[i]
        for code, n in other.elb.items():
            self.elb[code] = self.elb.get(code, 0) + n
        self.conn_errors += other.conn_errors
        self.bytes += other.bytes
        for i, n in enumerate(other.rt_buckets):
            self.rt_buckets[i] += n
        self.rt_sum += other.rt_sum
        self.rt_count += other.rt_count
        self.rt_min = min(self.rt_min, other.rt_min)
        self.rt_max = max(self.rt_max, other.rt_max)
        self.flows_new += other.flows_new
        self.flows_active += other.flows_active
        self.resets_client += other.resets_client
        self.resets_target += other.resets_target
        self.resets_elb += other.resets_elb

    def as_flow_metrics(self) -> dict[str, Any]:
        """AWS/NetworkELB's names (NLB's CloudWatch metrics page). Every flow
        here is TCP, so the _TCP variants are the same counts. ProcessedBytes
        counts the payload (AWS adds the TCP/IP headers)."""
        return {
            "ActiveFlowCount": self.flows_active,
            "ActiveFlowCount_TCP": self.flows_active,
            "NewFlowCount": self.flows_new,
            "NewFlowCount_TCP": self.flows_new,
            "ProcessedBytes": self.bytes,
            "ProcessedBytes_TCP": self.bytes,
            "TCP_Client_Reset_Count": self.resets_client,
            "TCP_Target_Reset_Count": self.resets_target,
            "TCP_ELB_Reset_Count": self.resets_elb,
        }

    def as_metrics(self) -> dict[str, Any]:
        elb4 = sum(n for c, n in self.elb.items() if c < 500)
        elb5 = sum(n for c, n in self.elb.items() if c >= 500)
        return {
            "RequestCount": self.requests,
            "HTTPCode_Target_2XX_Count": self.target[2],
            "HTTPCode_Target_3XX_Count": self.target[3],
            "HTTPCode_Target_4XX_Count": self.target[4],
            "HTTPCode_Target_5XX_Count": self.target[5],
            "HTTPCode_ELB_4XX_Count": elb4,
            "HTTPCode_ELB_5XX_Count": elb5,
            "HTTPCode_ELB_502_Count": self.elb.get(502, 0),
            "HTTPCode_ELB_503_Count": self.elb.get(503, 0),
            "HTTPCode_ELB_504_Count": self.elb.get(504, 0),
            "TargetConnectionErrorCount": self.conn_errors,
            "ProcessedBytes": self.bytes,
            "TargetResponseTime": {
                "count": self.rt_count,
                "sum": self.rt_sum,
                "min": self.rt_min if self.rt_count else None,
                "max": self.rt_max if self.rt_count else None,
                "buckets": list(self.rt_buckets),
            },
        }


class Stats:
    """Every counter of one load balancer."""

    def __init__(self, load_balancer: str, network: bool = False) -> None:
        self.load_balancer = load_balancer
        self.network = network  # a network load balancer: AWS/NetworkELB's metrics
        # (listener, target group or "" for errors before a group was chosen)
        self.pairs: dict[tuple[str, str], Counters] = {}
        self.active_connections = 0
        self.new_connections = 0
        self.desync_non_compliant = 0  # DesyncMitigationMode_NonCompliant_Request_Count
        self.started = time.time()
        self.health: dict[str, tuple[int, int]] = {}  # filled by the caller at snapshot time
        # Per listener [new, active] connections: a Service Connect endpoint's
        # NewConnectionCount and ActiveConnectionCount are its listener's.
        self.listener_connections: dict[str, list[int]] = {}

    def connections(self, listener: str) -> list[int]:
        return self.listener_connections.setdefault(listener, [0, 0])

    def counters(self, listener: str, target_group: str = "") -> Counters:
        key = (listener, target_group)
        c = self.pairs.get(key)
        if c is None:
            c = self.pairs[key] = Counters()
        return c

    def by_group(self) -> dict[str, Counters]:
        out: dict[str, Counters] = {}
        for (_, tg), c in self.pairs.items():
            if tg:
                out.setdefault(tg, Counters()).add(c)
        return out

    def total(self) -> Counters:
        out = Counters()
        for c in self.pairs.values():
            out.add(c)
        return out

    def snapshot(self, health: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """What a CloudWatch-like scraper needs: cumulative counters and a
        timestamp; per-period values are differences of two snapshots."""
        groups = {}
        by_group = self.by_group()
        for name, (healthy, unhealthy) in health.items():
            c = by_group.get(name) or Counters()
            m = c.as_flow_metrics() if self.network else c.as_metrics()
            m["HealthyHostCount"] = healthy
            m["UnHealthyHostCount"] = unhealthy
            groups[name] = m
        if self.network:
            return {
                "timestamp": time.time(),
                "loadBalancer": self.load_balancer,
                "namespace": "AWS/NetworkELB",
                "targetGroups": groups,
                "total": self.total().as_flow_metrics(),
            }
        lb = self.total().as_metrics()
        lb["ActiveConnectionCount"] = self.active_connections
        lb["NewConnectionCount"] = self.new_connections
        lb["DesyncMitigationMode_NonCompliant_Request_Count"] = self.desync_non_compliant
        return {
            "timestamp": time.time(),
            "loadBalancer": self.load_balancer,
            "responseTimeBuckets": list(BOUNDS),
            "targetGroups": groups,
            "total": lb,
            "listeners": {name: {"NewConnectionCount": n, "ActiveConnectionCount": a}
                          for name, (n, a) in self.listener_connections.items()},
        }


_PROM_COUNTERS = (
    ("request_count", "RequestCount", "Requests routed (CloudWatch RequestCount)"),
    ("target_connection_error_count", "TargetConnectionErrorCount", "Failed connections to targets"),
    ("processed_bytes", "ProcessedBytes", "Bytes processed, both directions"),
)


_PROM_FLOWS = (
    ("active_flow_count", "ActiveFlowCount", "gauge", "Open TCP flows, client to target (ActiveFlowCount)"),
    ("new_flow_count", "NewFlowCount", "counter", "TCP flows opened (NewFlowCount)"),
    ("processed_bytes", "ProcessedBytes", "counter", "Bytes processed, both directions"),
    ("tcp_client_reset_count", "TCP_Client_Reset_Count", "counter", "Resets (RST) from clients"),
    ("tcp_target_reset_count", "TCP_Target_Reset_Count", "counter", "Resets (RST) from targets"),
    ("tcp_elb_reset_count", "TCP_ELB_Reset_Count", "counter", "Resets (RST) the load balancer made"),
)


class PromCollector(Collector):
    """Renders Stats at scrape time into the proxy's own CollectorRegistry."""

    def __init__(self, stats: Stats, health: Any, weights: Any = None) -> None:
        self.stats = stats
        self.health = health  # () -> {tg: (healthy, unhealthy)}
        self.weights = weights  # () -> [(listener, rule, tg, weight)], or None

    def collect(self) -> Iterator[Any]:
        if self.stats.network:
            yield from self.collect_flows()
            return
        yield from self.collect_requests()

    def collect_flows(self) -> Iterator[Any]:
        """A network load balancer's: AWS/NetworkELB's counts per listener and target group."""
        s = self.stats
        labels = ["load_balancer", "listener", "target_group"]
        fams = {key: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                    f"shiftlab_{name}", doc, labels=labels)
                for name, key, kind, doc in _PROM_FLOWS}
        for (listener, tg), c in sorted(s.pairs.items()):
            m = c.as_flow_metrics()
            for _, key, _, _ in _PROM_FLOWS:
                fams[key].add_metric([s.load_balancer, listener, tg], m[key])
        yield from fams.values()
        yield from self.collect_groups()

    def collect_requests(self) -> Iterator[Any]:
        s = self.stats
        labels = ["load_balancer", "listener", "target_group"]
        fams = {
            key: CounterMetricFamily(f"shiftlab_{name}", doc, labels=labels)
            for name, key, doc in _PROM_COUNTERS
        }
        target_codes = CounterMetricFamily(
            "shiftlab_httpcode_target_count", "Responses from targets by class (HTTPCode_Target_nXX_Count)",
            labels=[*labels, "code_class"],
        )
        elb_codes = CounterMetricFamily(
            "shiftlab_httpcode_elb_count", "Responses made by the load balancer (HTTPCode_ELB_*)",
            labels=[*labels, "code"],
        )
        rt = HistogramMetricFamily(
            "shiftlab_target_response_time_seconds", "TargetResponseTime", labels=labels
        )
        for (listener, tg), c in sorted(s.pairs.items()):
            lv = [s.load_balancer, listener, tg]
            m = c.as_metrics()
            for _, key, _ in _PROM_COUNTERS:
                fams[key].add_metric(lv, m[key])
            for cls in (2, 3, 4, 5):
                target_codes.add_metric([*lv, f"{cls}XX"], c.target[cls])
            for code, n in sorted(c.elb.items()):
                elb_codes.add_metric([*lv, str(code)], n)
            if tg:
                cum, buckets = 0, []
                # Coarser buckets for Prometheus (every 4th bound, ~46 % apart).
                for i, bound in enumerate(BOUNDS):
                    cum += c.rt_buckets[i]
                    if i % 4 == 0:
                        buckets.append((repr(bound), cum))
                buckets.append(("+Inf", c.rt_count))
                rt.add_metric(lv, buckets, c.rt_sum)
        yield from fams.values()
        yield target_codes
        yield elb_codes
        yield rt
        yield from self.collect_groups()
        yield GaugeMetricFamily("shiftlab_active_connection_count", "ActiveConnectionCount", value=s.active_connections)
        yield CounterMetricFamily("shiftlab_new_connection_count", "NewConnectionCount", value=s.new_connections)
        yield CounterMetricFamily("shiftlab_desync_mitigation_mode_non_compliant_request_count",
                                  "DesyncMitigationMode_NonCompliant_Request_Count", value=s.desync_non_compliant)

    def collect_groups(self) -> Iterator[Any]:
        s = self.stats
        tg_labels = ["load_balancer", "target_group"]
        healthy = GaugeMetricFamily("shiftlab_healthy_host_count", "HealthyHostCount", labels=tg_labels)
        unhealthy = GaugeMetricFamily("shiftlab_unhealthy_host_count", "UnHealthyHostCount", labels=tg_labels)
        for tg, (h, u) in sorted(self.health().items()):
            healthy.add_metric([s.load_balancer, tg], h)
            unhealthy.add_metric([s.load_balancer, tg], u)
        yield healthy
        yield unhealthy
        if self.weights is not None:
            weight = GaugeMetricFamily(
                "shiftlab_target_group_weight", "Weight of a target group in a rule's forward action (ModifyRule)",
                labels=["load_balancer", "listener", "rule", "target_group"],
            )
            for listener, rule, tg, w in self.weights():
                weight.add_metric([s.load_balancer, listener, rule, tg], w)
            yield weight


def make_registry(stats: Stats, health: Any, weights: Any = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PromCollector(stats, health, weights))
    return registry
