"""Requests in aggregate: Poisson counts of requests and binomial splits
(between the groups, into errors), and a target group's cumulative
counters in the shape of the proxy's stats snapshot (proxy.stats), which
the controller's MetricStore reads. Latencies go into the proxy's own
histogram buckets in expectation, the remainders carried on."""

from __future__ import annotations

import math
import random
from typing import Any

from shiftlab.proxy.stats import BOUNDS
from shiftlab.simulate.faults import Behaviour, bucket_shares, mean_seconds

COUNTS = ("RequestCount", "HTTPCode_Target_2XX_Count", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count",
          "HTTPCode_ELB_502_Count")


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        # Knuth's: multiply uniforms until below e^-lam.
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    mean = n * p
    var = mean * (1 - p)
    if var > 25:
        return min(n, max(0, round(rng.gauss(mean, math.sqrt(var)))))
    if n <= 60:
        return sum(1 for _ in range(n) if rng.random() < p)
    if p <= 0.5:
        return min(n, poisson(rng, mean))
    return n - min(n, poisson(rng, n - mean))


class Group:
    """A target group's cumulative counters, as the proxy's stats keep them."""

    def __init__(self, latency: bool) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.buckets = [0] * (len(BOUNDS) + 1) if latency else None
        self.rt_count = 0
        self.rt_sum = 0.0
        self.carry = [0.0] * (len(BOUNDS) + 1) if latency else None

    def served(self, n: int, errors: int, behaviour: Behaviour) -> None:
        c = self.counts
        c["RequestCount"] += n
        c["HTTPCode_Target_5XX_Count"] += errors
        c["HTTPCode_Target_2XX_Count"] += n - errors
        if self.buckets is not None and n:
            # The bucket counts in expectation, the remainders carried on: the
            # histogram stays smooth without a draw per bucket.
            lat = behaviour.latency
            carry = self.carry
            assert carry is not None
            for i, share in enumerate(bucket_shares(lat.p50Ms, lat.p99Ms)):
                if share:
                    want = n * share + carry[i]
                    k = int(want)
                    carry[i] = want - k
                    self.buckets[i] += k
            self.rt_count += n
            self.rt_sum += n * mean_seconds(lat)

    def refused(self, n: int) -> None:
        """Requests the load balancer failed itself (502: the group's tasks are down)."""
        c = self.counts
        c["RequestCount"] += n
        c["HTTPCode_ELB_5XX_Count"] += n
        c["HTTPCode_ELB_502_Count"] += n

    def metrics(self, healthy: int) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        out["HealthyHostCount"] = healthy
        out["UnHealthyHostCount"] = 0
        if self.buckets is not None:
            out["TargetResponseTime"] = {"count": self.rt_count, "sum": self.rt_sum, "buckets": list(self.buckets)}
        return out
