"""A bounded load generator: a fixed request rate for a fixed time (or until
told to stop), never more than `max_requests`. It counts statuses and
latencies per target group, read from the response's
`X-Shiftlab-Target-Group` header (the sample service sets it; other services
show as "-"). Used by `shiftlab load`, `rehearse`, the demo and the tests.

With `dns` (a DNS server's HOST:PORT, shiftlab.dnsresolver) the URL's host
is resolved there and each answer kept for its TTL, as a client's resolver
does; every request opens a connection of its own, so that the answer in
the cache, not a pooled connection, decides which load balancer it reaches.
The counts by load balancer address, per second, then show how long
clients keep an old answer after the records' weights moved."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shiftlab.dnsresolver import RESOLVED, TtlResolver, parse_server

GROUP_HEADER = "X-Shiftlab-Target-Group"


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)
    errors_by_group: Counter[str] = field(default_factory=Counter)  # 5xx by group ("-" when no group)
    connection_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_5xx_at: float | None = None  # wall clock
    first_connection_error_at: float | None = None  # wall clock
    # Responses slower than `slow_after` seconds (when set) count as slow: by
    # group, and the wall clock of the first one.
    slow_after: float | None = None
    slow_by_group: Counter[str] = field(default_factory=Counter)
    first_slow_at: float | None = None
    first_at_by_group: dict[str, float] = field(default_factory=dict)  # wall clock of each group's first answer
    started_at: float = 0.0
    ended_at: float = 0.0
    # The address each answer came from (the load balancer's, with `dns`), in
    # total and per second since the start.
    by_address: Counter[str] = field(default_factory=Counter)
    timeline: dict[int, Counter[str]] = field(default_factory=dict)
    dns_queries: int = 0  # answers the resolver fetched (not from its cache)

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500) + self.connection_errors

    @property
    def elb_errors(self) -> int:
        """5xx made by the load balancer itself (no target group header on them)."""
        return self.errors_by_group.get("-", 0)

    @property
    def slow(self) -> int:
        return sum(self.slow_by_group.values())

    @property
    def first_bad_at(self) -> float | None:
        """Wall clock of the first bad response: a 5xx, a connection error, or
        (with `slow_after`) a response slower than that."""
        times = [t for t in (self.first_5xx_at, self.first_connection_error_at, self.first_slow_at) if t is not None]
        return min(times, default=None)

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]

    def summary(self) -> dict[str, Any]:
        dur = max(self.ended_at - self.started_at, 1e-9)
        return {
            "requests": self.sent, "seconds": round(dur, 3), "rps": round(self.sent / dur, 1),
            "statuses": dict(sorted(self.statuses.items())), "byGroup": dict(self.by_group),
            "5xxByGroup": dict(self.errors_by_group), "connectionErrors": self.connection_errors,
            "p50": self.percentile(50), "p90": self.percentile(90), "p99": self.percentile(99),
            "byAddress": dict(self.by_address),
            "byAddressPerSecond": {str(s): dict(c) for s, c in sorted(self.timeline.items())},
            "dnsQueries": self.dns_queries,
        }


async def run_load(url: str, rps: float, duration: float, *, concurrency: int = 8,
                   headers: dict[str, str] | None = None, max_requests: int | None = None,
                   stop: asyncio.Event | None = None, timeout: float = 10.0,
                   result: LoadResult | None = None, dns: str | None = None) -> LoadResult:
    """Send about `rps` requests a second for `duration` seconds (or until
    `stop` is set), at most `max_requests` (default rps x duration).
    `dns`: HOST:PORT of the DNS server that resolves the URL's host."""
    if rps <= 0 or duration <= 0:
        raise ValueError("rps and duration must be positive")
    limit = max_requests if max_requests is not None else int(rps * duration) + 1
    res = result or LoadResult()
    res.started_at = time.monotonic()
    deadline = res.started_at + duration
    counter = iter(range(limit))
    stop = stop or asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            at = res.started_at + i / rps
            now = time.monotonic()
            if at > deadline or stop.is_set():
                return
            if at > now:
                try:
                    await asyncio.wait_for(stop.wait(), at - now)
                    return
                except TimeoutError:
                    pass
            t0 = time.monotonic()
            res.sent += 1
            group: str | None = None
            try:
                if dns is not None:
                    RESOLVED.set(None)
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    address = RESOLVED.get() if dns is not None else None
                    if address is not None:
                        res.by_address[address] += 1
                        second = int(time.monotonic() - res.started_at)
                        res.timeline.setdefault(second, Counter())[address] += 1
                    group = resp.headers.get(GROUP_HEADER, "-")
                    res.statuses[resp.status] += 1
                    res.by_group[group] += 1
                    res.first_at_by_group.setdefault(group, time.time())
                    if resp.status >= 500:
                        res.errors_by_group[group] += 1
                        if res.first_5xx_at is None:
                            res.first_5xx_at = time.time()
            except (aiohttp.ClientError, TimeoutError):
                res.connection_errors += 1
                group = None
                if res.first_connection_error_at is None:
                    res.first_connection_error_at = time.time()
            latency = time.monotonic() - t0
            res.latencies.append(latency)
            if group is not None and res.slow_after is not None and latency > res.slow_after:
                res.slow_by_group[group] += 1
                if res.first_slow_at is None:
                    res.first_slow_at = time.time()

    resolver = None
    if dns is not None:
        resolver = TtlResolver(parse_server(dns))
        # The resolver is the cache (aiohttp's own would keep answers 10 s,
        # whatever their TTL), and a connection per request.
        conn = aiohttp.TCPConnector(limit=concurrency, resolver=resolver, use_dns_cache=False, force_close=True)
    else:
        conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        await asyncio.gather(*[worker(session) for _ in range(concurrency)])
    res.ended_at = time.monotonic()
    if resolver is not None:
        res.dns_queries = resolver.queries
    return res
