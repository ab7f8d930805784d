"""Weighted choice and target selection, without sockets."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from shiftlab.proxy.balancer import LeastOutstanding, RoundRobin, SmoothWeighted, WeightedRandom, make_selector


def picks(sw: SmoothWeighted[str], n: int) -> Counter[str]:
    return Counter(sw.pick() for _ in range(n))


def test_ninety_ten_is_exact() -> None:
    assert picks(SmoothWeighted([("blue", 90), ("green", 10)]), 1000) == {"blue": 900, "green": 100}


@pytest.mark.parametrize("weights", [
    {"a": 1, "b": 1},
    {"a": 999, "b": 1},
    {"a": 3, "b": 7},
    {"a": 5, "b": 10, "c": 20, "d": 25, "e": 40},
    {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
    {"a": 999, "b": 998, "c": 997, "d": 996, "e": 995},
])
def test_every_full_cycle_is_exact(weights: dict[str, int]) -> None:
    total = sum(weights.values())
    sw = SmoothWeighted(list(weights.items()))
    for _ in range(3):
        assert picks(sw, total) == weights


def test_zero_weights_never_chosen() -> None:
    sw = SmoothWeighted([("blue", 0), ("green", 100), ("red", 0)])
    assert picks(sw, 500) == {"green": 500}


def test_all_zero_is_empty() -> None:
    sw: SmoothWeighted[str] = SmoothWeighted([("blue", 0), ("green", 0)])
    assert not sw
    assert SmoothWeighted([("blue", 0), ("green", 1)])


def test_split_is_interleaved_not_bursty() -> None:
    # 50/50 must alternate; 90/10 never sends two green in a row.
    sw = SmoothWeighted([("blue", 50), ("green", 50)])
    seq = [sw.pick() for _ in range(10)]
    assert all(a != b for a, b in itertools.pairwise(seq))
    sw = SmoothWeighted([("blue", 90), ("green", 10)])
    seq = [sw.pick() for _ in range(1000)]
    assert not any(a == b == "green" for a, b in itertools.pairwise(seq))


def test_every_prefix_stays_within_one_request_of_proportional() -> None:
    sw = SmoothWeighted([("blue", 70), ("green", 30)])
    counts: Counter[str] = Counter()
    for i in range(1, 1001):
        counts[sw.pick()] += 1
        assert abs(counts["green"] - i * 0.3) <= 1


def test_round_robin_cycles_evenly() -> None:
    rr: RoundRobin[str] = RoundRobin()
    got = Counter(rr.pick(["a", "b", "c"]) for _ in range(300))
    assert got == {"a": 100, "b": 100, "c": 100}


@dataclass
class FakeTarget:
    name: str
    outstanding: int = 0


def test_least_outstanding_prefers_idle_targets() -> None:
    targets = [FakeTarget("a", 5), FakeTarget("b", 0), FakeTarget("c", 2)]
    lor = LeastOutstanding()
    assert {lor.pick(targets).name for _ in range(10)} == {"b"}


def test_least_outstanding_spreads_ties() -> None:
    targets = [FakeTarget("a"), FakeTarget("b"), FakeTarget("c")]
    lor = LeastOutstanding()
    assert Counter(lor.pick(targets).name for _ in range(300)) == {"a": 100, "b": 100, "c": 100}


def test_least_outstanding_under_load_balances_in_flight() -> None:
    targets = [FakeTarget("a"), FakeTarget("b"), FakeTarget("c")]
    lor = LeastOutstanding()
    for _ in range(30):
        lor.pick(targets).outstanding += 1
    assert [t.outstanding for t in targets] == [10, 10, 10]


def test_weighted_random_uses_the_injected_rng() -> None:
    first, second = WeightedRandom(random.Random(7)), WeightedRandom(random.Random(7))
    items = list(range(10))
    seq = [first.pick(items) for _ in range(50)]
    assert seq == [second.pick(items) for _ in range(50)]
    assert len(set(seq)) > 1
    wr = WeightedRandom(random.Random(1))
    got = Counter(wr.pick(["a", "b"]) for _ in range(2000))
    assert abs(got["a"] - 1000) < 100


def test_make_selector_by_algorithm() -> None:
    assert isinstance(make_selector("round_robin"), RoundRobin)
    assert isinstance(make_selector("least_outstanding_requests"), LeastOutstanding)
    assert isinstance(make_selector("weighted_random", random.Random(1)), WeightedRandom)
