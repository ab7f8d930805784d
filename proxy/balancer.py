"""Choosing where a request goes (pure; no sockets).

Weighted forwards use smooth weighted round robin (nginx's algorithm, as
Traefik does): deterministic, so 1,000 requests at 90/10 are exactly 900/100,
and interleaved rather than bursty. `weighted_random` target selection takes
an injected RNG so that tests can assert it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class SmoothWeighted(Generic[T]):
    __slots__ = ("_current", "_items", "_total", "_weights")

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        live = [(item, w) for item, w in items if w > 0]
        self._items = [item for item, _ in live]
        self._weights = [w for _, w in live]
        self._current = [0] * len(live)
        self._total = sum(self._weights)

    def __bool__(self) -> bool:
        return bool(self._items)

    def pick(self) -> T:
        items = self._items
        if len(items) == 1:
            return items[0]
        current = self._current
        weights = self._weights
        best = 0
        for i in range(len(items)):
            current[i] += weights[i]
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return items[best]


class RoundRobin(Generic[T]):
    __slots__ = ("_i",)

    def __init__(self) -> None:
        self._i = 0

    def pick(self, candidates: Sequence[T]) -> T:
        self._i += 1
        return candidates[self._i % len(candidates)]


class LeastOutstanding:
    """Fewest requests in flight; ties broken round-robin so idle targets share."""

    __slots__ = ("_i",)

    def __init__(self) -> None:
        self._i = 0

    def pick(self, candidates: Sequence[T]) -> T:
        self._i += 1
        n = len(candidates)
        best = candidates[self._i % n]
        best_load = best.outstanding  # type: ignore[attr-defined]
        for k in range(1, n):
            c = candidates[(self._i + k) % n]
            if c.outstanding < best_load:  # type: ignore[attr-defined]
                best, best_load = c, c.outstanding  # type: ignore[attr-defined]
        return best


class WeightedRandom:
    """ALB's weighted_random for targets; all targets weigh the same here."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[T]) -> T:
        return candidates[self._rng.randrange(len(candidates))]


Selector = RoundRobin[object] | LeastOutstanding | WeightedRandom


def make_selector(algorithm: str, rng: random.Random | None = None) -> Selector:
    if algorithm == "least_outstanding_requests":
        return LeastOutstanding()
    if algorithm == "weighted_random":
        return WeightedRandom(rng)
    return RoundRobin()
