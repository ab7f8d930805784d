"""MetricStore: per-period datapoints from cumulative snapshots, as ALB
publishes them to CloudWatch. Snapshots are hand-made (small histogram
bounds so percentiles can be worked out by hand), plus one check against
the proxy's own Stats.snapshot so both sides agree on the format."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shiftlab.controller.metricstore import (
    COUNT_METRICS,
    METRICS,
    CustomMetrics,
    Entry,
    MetricStore,
    custom_stat,
    metric_key,
    period_starts,
    supports_statistic,
)
from shiftlab.proxy.stats import Stats

BOUNDS = [0.1, 0.2, 0.4, 0.8]  # plus an overflow bucket
T0 = 1_700_000_040.0  # a multiple of 60: periods of 60 s start here
N = None


class Cumulative:
    """Counters that only grow, rendered in the proxy's snapshot shape."""

    def __init__(self, groups: tuple[str, ...] = ("blue", "green")) -> None:
        self.groups: dict[str, dict[str, Any]] = {g: self._zero() for g in groups}
        self.active = 0
        self.new_connections = 0

    @staticmethod
    def _zero() -> dict[str, Any]:
        m: dict[str, Any] = {name: 0 for name in COUNT_METRICS if name != "NewConnectionCount"}
        m["TargetResponseTime"] = {"count": 0, "sum": 0.0, "min": None, "max": None, "buckets": [0] * 5}
        m["HealthyHostCount"] = 2
        m["UnHealthyHostCount"] = 0
        return m

    def count(self, group: str, name: str, n: int) -> Cumulative:
        self.groups[group][name] += n
        return self

    def respond(self, group: str, *seconds: float) -> Cumulative:
        rt = self.groups[group]["TargetResponseTime"]
        for s in seconds:
            rt["buckets"][sum(1 for b in BOUNDS if b < s)] += 1
            rt["count"] += 1
            rt["sum"] += s
        self.groups[group]["RequestCount"] += len(seconds)
        return self

    def hosts(self, group: str, healthy: int, unhealthy: int = 0) -> Cumulative:
        self.groups[group]["HealthyHostCount"] = healthy
        self.groups[group]["UnHealthyHostCount"] = unhealthy
        return self

    def snapshot(self) -> dict[str, Any]:
        total: dict[str, Any] = self._zero()
        del total["HealthyHostCount"], total["UnHealthyHostCount"]
        for m in self.groups.values():
            for name in total:
                if name == "TargetResponseTime":
                    t, g = total[name], m[name]
                    t["count"] += g["count"]
                    t["sum"] += g["sum"]
                    t["buckets"] = [a + b for a, b in zip(t["buckets"], g["buckets"], strict=True)]
                else:
                    total[name] += m[name]
        total["ActiveConnectionCount"] = self.active
        total["NewConnectionCount"] = self.new_connections
        return copy.deepcopy({
            "timestamp": 0.0,  # deliberately wrong: the store must use the scrape time it is given
            "loadBalancer": "lb",
            "responseTimeBuckets": BOUNDS,
            "targetGroups": self.groups,
            "total": total,
        })


def store_with(*scrapes: tuple[float, dict[str, Any]], retention: float = 3600) -> MetricStore:
    store = MetricStore(retention)
    for t, snap in scrapes:
        store.add(snap, T0 + t)
    return store


@pytest.mark.parametrize(
    ("period", "end", "count", "starts"),
    [
        (60, 120, 2, [0, 60]),
        (60, 179.9, 2, [0, 60]),
        (60, 180, 3, [0, 60, 120]),
        (10, 35, 1, [20]),
        (1, 3.0, 2, [1, 2]),
        (0.1, 0.3, 1, [0.2]),  # 0.3 / 0.1 is 2.999...96 in binary: the period ending at 0.3 still counts
    ],
)
def test_periods_are_aligned_to_epoch(period, end, count, starts):
    assert period_starts(period, end, count) == pytest.approx(starts)


def test_count_is_the_increase_per_period_and_every_stat_gives_it():
    c = Cumulative()
    scrapes = [(0, c.snapshot())]
    scrapes.append((30, c.count("green", "RequestCount", 5).snapshot()))
    scrapes.append((60, c.count("green", "RequestCount", 7).snapshot()))
    scrapes.append((90, c.count("green", "RequestCount", 1).snapshot()))
    scrapes.append((120, c.count("green", "RequestCount", 7).snapshot()))
    store = store_with(*scrapes)
    end = T0 + 120
    for stat in ("Sum", "Average", "Minimum", "Maximum", "p50", "p99", "p99.9"):
        assert store.series("RequestCount", "green", stat, 60, end, 2) == [12.0, 8.0], stat
    assert store.series("RequestCount", "green", "SampleCount", 60, end, 2) == [1.0, 1.0]
    assert store.series("RequestCount", None, "Sum", 60, end, 2) == [12.0, 8.0]
    # blue had no requests at all: ALB publishes nothing, so the datapoints are missing
    assert store.series("RequestCount", "blue", "Sum", 60, end, 2) == [N, N]


@pytest.mark.parametrize("metric", ["HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_503_Count"])
def test_status_counts_are_samples_of_one(metric: str) -> None:
    # ALB's metrics page on the HTTPCode_* counts: "The most useful statistic
    # is Sum. Minimum, Maximum, and Average all return 1."
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
    c = Cumulative()
    store = store_with((0, c.snapshot()), (60, c.count("green", metric, 12).snapshot()))
    got = {stat: store.series(metric, "green", stat, 60, T0 + 60, 1)[0]
           for stat in ("Sum", "SampleCount", "Average", "Minimum", "Maximum")}
    assert got == {"Sum": 12.0, "SampleCount": 12.0, "Average": 1.0, "Minimum": 1.0, "Maximum": 1.0}


def test_zero_increase_is_a_missing_datapoint():
    c = Cumulative().count("green", "HTTPCode_Target_5XX_Count", 3)
    store = store_with(
        (0, c.snapshot()), (60, c.count("green", "HTTPCode_Target_5XX_Count", 4).snapshot()),
        (120, c.snapshot()), (180, c.snapshot()),
    )
    assert store.series("HTTPCode_Target_5XX_Count", "green", "Sum", 60, T0 + 180, 3) == [4.0, N, N]


def test_counter_reset_counts_the_new_value_as_the_increase():
    before = Cumulative().count("green", "RequestCount", 100)
    store = store_with(
        (0, before.snapshot()),
        (30, before.count("green", "RequestCount", 5).snapshot()),  # 105
        (45, Cumulative().count("green", "RequestCount", 3).snapshot()),  # proxy restarted: 3 since
        (60, Cumulative().count("green", "RequestCount", 4).snapshot()),
        (120, Cumulative().count("green", "RequestCount", 10).snapshot()),
    )
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 120, 2) == [5.0 + 3.0 + 1.0, 6.0]


def test_each_scrape_interval_belongs_to_the_period_holding_its_end():
    c = Cumulative()
    store = store_with(
        (0, c.snapshot()),
        (50, c.count("green", "RequestCount", 1).snapshot()),
        (70, c.count("green", "RequestCount", 10).snapshot()),  # interval 50..70 ends in the second period
        (120, c.count("green", "RequestCount", 100).snapshot()),  # a scrape exactly at the end counts in
        (121, c.count("green", "RequestCount", 1000).snapshot()),
    )
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 121, 2) == [1.0, 110.0]


@pytest.mark.parametrize(
    ("scrape_times", "expected"),
    [
        ([0, 30, 60, 90, 120], [2.0, 2.0]),
        ([10, 30, 60, 90, 120], [N, 2.0]),  # nothing at or before the first period's start
        ([0, 30, 60, 90, 119], [2.0, N]),  # nothing at or after the second period's end
        ([0, 30, 60, 90], [2.0, N]),
        ([], [N, N]),
    ],
)
def test_a_period_needs_a_scrape_at_or_before_its_start_and_one_at_or_after_its_end(scrape_times, expected):
    c = Cumulative()
    scrapes = [(t, c.count("green", "RequestCount", 1).snapshot()) for t in scrape_times]
    assert store_with(*scrapes).series("RequestCount", "green", "Sum", 60, T0 + 120, 2) == expected


def test_the_store_places_scrapes_by_the_time_it_is_given_not_the_snapshot_timestamp():
    c = Cumulative()
    first = c.snapshot()
    second = c.count("green", "RequestCount", 4).snapshot()
    second["timestamp"] = T0 + 9999
    store = store_with((0, first), (60, second))
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 60, 1) == [4.0]


def test_old_snapshots_are_dropped_after_the_retention():
    c = Cumulative()
    store = store_with(*[(t, c.count("green", "RequestCount", 1).snapshot()) for t in range(0, 301, 30)],
                       retention=120)
    assert len(store) == 5  # 180, 210, 240, 270, 300
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 300, 4) == [N, N, 2.0, 2.0]


def test_scrapes_added_out_of_order_are_kept_in_time_order():
    c = Cumulative()
    early, late = c.snapshot(), c.count("green", "RequestCount", 6).snapshot()
    store = MetricStore(3600)
    store.add(late, T0 + 60)
    store.add(early, T0)
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 60, 1) == [6.0]


# TargetResponseTime: buckets (0, .1], (.1, .2], (.2, .4], (.4, .8], (.8, inf)


def response_store(*seconds: float) -> MetricStore:
    c = Cumulative().respond("green", 0.05, 0.05)  # before the period: not counted
    return store_with(
        (0, c.snapshot()),
        (30, c.respond("green", *seconds[:1]).snapshot()),
        (60, c.respond("green", *seconds[1:]).snapshot()),
    )


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("SampleCount", 4),
        ("Sum", 1.0),
        ("Average", 0.25),
        # approximations from the bucket edges
        ("Minimum", 0.1),  # lower edge of the lowest non-empty bucket
        ("Maximum", 0.4),  # upper edge of the highest one
        ("p50", 0.2),  # rank 2 of 4: the top of (.1, .2]
        ("p99", 0.2 + 0.2 * 1.96 / 2),  # rank 3.96: 98 % into (.2, .4]
        ("p99.9", 0.2 + 0.2 * 1.996 / 2),
        ("p25", 0.15),  # rank 1: halfway into (.1, .2]
        ("p100", 0.4),
    ],
)
def test_response_time_statistics_from_the_histogram_increase(stat, expected):
    store = response_store(0.15, 0.15, 0.3, 0.4)
    assert store.series("TargetResponseTime", "green", stat, 60, T0 + 60, 1) == [pytest.approx(expected)]


def test_response_time_above_the_highest_bound_is_reported_as_that_bound():
    store = response_store(5.0, 7.0)
    assert store.series("TargetResponseTime", "green", "Maximum", 60, T0 + 60, 1) == [0.8]
    assert store.series("TargetResponseTime", "green", "Average", 60, T0 + 60, 1) == [6.0]


def test_response_time_is_missing_without_responses_and_survives_a_reset():
    busy = Cumulative().respond("green", 0.3, 0.3, 0.3)
    store = store_with(
        (0, busy.snapshot()), (60, busy.snapshot()),  # no responses in the first period
        (90, Cumulative().respond("green", 0.15).snapshot()),  # restarted
        (120, Cumulative().respond("green", 0.15, 0.3).snapshot()),
    )
    assert store.series("TargetResponseTime", "green", "SampleCount", 60, T0 + 120, 2) == [N, 2.0]
    assert store.series("TargetResponseTime", "green", "Average", 60, T0 + 120, 2) == [N, pytest.approx(0.225)]


def test_gauges_summarise_the_samples_taken_in_the_period():
    c = Cumulative()
    store = store_with(
        *[(t, c.hosts("green", n).snapshot()) for t, n in [(0, 9), (60, 2), (75, 3), (90, 4), (105, 3)]],
        (120, c.hosts("green", 9).snapshot()),  # the next period's
    )
    for stat, expected in [("Average", 3.0), ("Minimum", 2.0), ("Maximum", 4.0), ("Sum", 12.0),
                           ("SampleCount", 4.0), ("p50", 3.0), ("p100", 4.0)]:
        assert store.series("HealthyHostCount", "green", stat, 60, T0 + 120, 1) == [expected], stat
    assert store.series("UnHealthyHostCount", "green", "Maximum", 60, T0 + 120, 1) == [0.0]


def test_active_connections_are_a_load_balancer_gauge():
    c = Cumulative()
    scrapes = []
    for t, active in [(0, 1), (30, 5), (60, 7), (90, 0), (120, 0)]:
        c.active = active
        scrapes.append((t, c.snapshot()))
    store = store_with(*scrapes)
    assert store.series("ActiveConnectionCount", None, "Maximum", 60, T0 + 120, 2) == [5.0, 7.0]
    assert store.series("ActiveConnectionCount", None, "Average", 60, T0 + 120, 2) == [3.0, 3.5]


@pytest.mark.parametrize(
    ("healthy", "requests", "expected"),
    [
        ((2, 4), 12, 4.0),  # 12 requests over an average of 3 healthy hosts
        ((0, 0), 12, N),  # no healthy host
        ((2, 4), 0, N),  # no request
    ],
)
def test_request_count_per_target(healthy, requests, expected):
    c = Cumulative()
    store = store_with(
        (0, c.hosts("green", healthy[0]).snapshot()),
        (30, c.hosts("green", healthy[1]).count("green", "RequestCount", requests).snapshot()),
        (60, c.snapshot()),
    )
    assert store.series("RequestCountPerTarget", "green", "Sum", 60, T0 + 60, 1) == [expected]


def test_a_target_group_absent_from_a_snapshot_gives_missing_or_starts_from_zero():
    c = Cumulative(groups=("blue",))
    first = c.snapshot()
    c.groups["green"] = Cumulative._zero()
    c.count("green", "RequestCount", 3)
    store = store_with((0, first), (60, c.snapshot()), (120, c.count("green", "RequestCount", 2).snapshot()))
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 120, 2) == [3.0, 2.0]
    assert store.series("RequestCount", "red", "Sum", 60, T0 + 120, 2) == [N, N]


def test_unknown_metric_or_statistic_is_refused():
    store = MetricStore(60)
    with pytest.raises(ValueError, match="not a metric"):
        store.series("CPUUtilization", None, "Sum", 60, T0, 1)
    with pytest.raises(ValueError, match="not a statistic"):
        store.series("RequestCount", None, "tm99", 60, T0, 1)


@pytest.mark.parametrize(
    ("stat", "ok"),
    [("Sum", True), ("SampleCount", True), ("p0", True), ("p50", True), ("p99.9", True), ("p100", True),
     ("p100.0", True), ("p101", False), ("p", False), ("P99", False), ("tm99", False), ("IQM", False),
     ("sum", False), ("p99.", False)],
)
def test_supported_statistics(stat, ok):
    assert supports_statistic(stat) is ok


def test_reads_the_proxy_stats_snapshot_format():
    stats = Stats("lb")
    health = {"blue": (2, 0), "green": (3, 1)}
    store = MetricStore(3600)
    store.add(stats.snapshot(health), T0)
    green = stats.counters("prod", "green")
    for seconds in (0.010, 0.012, 0.200, 0.210):
        green.requests += 1
        green.target[2] += 1
        green.response_time(seconds)
    green.target[5] += 2
    green.requests += 2
    stats.counters("prod", "").elb_error(503)  # before a group was chosen: load balancer total only
    stats.new_connections += 3
    stats.desync_non_compliant += 2
    store.add(stats.snapshot(health), T0 + 60)

    def one(metric: str, group: str | None, stat: str) -> float | None:
        return store.series(metric, group, stat, 60, T0 + 60, 1)[0]

    assert one("RequestCount", "green", "Sum") == 6.0
    assert one("HTTPCode_Target_5XX_Count", "green", "Sum") == 2.0
    assert one("HTTPCode_Target_2XX_Count", None, "Sum") == 4.0
    assert one("HTTPCode_ELB_503_Count", None, "Sum") == 1.0
    assert one("HTTPCode_ELB_5XX_Count", "green", "Sum") is None
    assert one("NewConnectionCount", None, "Sum") == 3.0
    assert one("DesyncMitigationMode_NonCompliant_Request_Count", None, "Sum") == 2.0
    assert one("DesyncMitigationMode_NonCompliant_Request_Count", "green", "Sum") is None
    assert one("TargetResponseTime", "green", "Average") == pytest.approx(0.108)
    assert one("TargetResponseTime", "green", "SampleCount") == 4.0
    # the proxy's buckets are ~10 % wide: percentiles land within one bucket of the truth
    assert 0.011 <= one("TargetResponseTime", "green", "p50") <= 0.0135  # type: ignore[operator]
    assert 0.200 <= one("TargetResponseTime", "green", "Maximum") <= 0.231  # type: ignore[operator]
    assert one("HealthyHostCount", "green", "Average") == 3.0
    assert one("UnHealthyHostCount", "green", "Average") == 1.0
    assert one("RequestCount", "blue", "Sum") is None
    for metric in METRICS:  # every metric the store offers is readable from a real snapshot
        store.series(metric, "green", "Average", 60, T0 + 60, 1)


def test_periods_shorter_than_a_minute_see_one_datapoint_a_minute() -> None:
    # "Elastic Load Balancing measures and sends its metrics in 60-second
    # intervals": a 10-second period over an ALB metric gets the whole
    # minute's datapoint in the period holding the minute's start, and
    # nothing in the other five.
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
    c = Cumulative()
    scrapes = [(0, c.snapshot())]
    for t in range(10, 121, 10):
        scrapes.append((t, c.count("green", "RequestCount", 2).snapshot()))
    store = MetricStore(3600, publish_seconds=60)
    for t, snap in scrapes:
        store.add(snap, T0 + t)
    assert store.series("RequestCount", "green", "Sum", 10, T0 + 120, 12) == [12.0] + [N] * 5 + [12.0] + [N] * 5
    assert store.series("RequestCount", "green", "Sum", 60, T0 + 120, 2) == [12.0, 12.0]
    # A minute not yet over is not published yet.
    partial = MetricStore(3600, publish_seconds=60)
    for t, snap in scrapes[:8]:  # up to T0 + 70
        partial.add(snap, T0 + t)
    assert partial.series("RequestCount", "green", "Sum", 10, T0 + 70, 1) == [N]
    assert partial.series("RequestCount", "green", "Sum", 10, T0 + 60, 6) == [12.0] + [N] * 5
    # Without a publication interval (the default), every period is computed.
    assert store_with(*scrapes).series("RequestCount", "green", "Sum", 10, T0 + 120, 2) == [2.0, 2.0]


# --- custom metrics (PutMetricData) -------------------------------------------


def _put(store: CustomMetrics, key: Any, at: float, value: float, resolution: int = 60) -> bool:
    return store.add(key, Entry(store.place(at, resolution), "None", 1, value, value, value, ((value, 1),)), at)


def test_custom_series_are_capped_and_a_new_metric_beyond_the_cap_is_refused_and_counted():
    store = CustomMetrics(retention_seconds=100, max_series=2)
    a, b, c = (metric_key("App", name, ()) for name in "abc")
    assert _put(store, a, T0, 1) and _put(store, b, T0, 1)
    assert not _put(store, c, T0, 1)
    assert (len(store), store.refused) == (2, 1)
    assert _put(store, a, T0 + 1, 2)  # metrics it holds go on taking datapoints
    # Once a metric's datapoints are all past the retention it frees its place.
    assert _put(store, a, T0 + 200, 3) and _put(store, c, T0 + 200, 1)
    assert sorted(k[1] for k in store.metrics()) == ["a", "c"]


def test_custom_datapoints_past_the_retention_are_dropped():
    store = CustomMetrics(retention_seconds=120)
    key = metric_key("App", "m", ())
    _put(store, key, T0, 5)
    _put(store, key, T0 + 300, 7)
    assert store.series(key, "Sum", None, 60, T0 + 360, 6) == [N, N, N, N, N, 7]


def test_one_metric_keeps_at_most_max_entries_the_oldest_dropped_first():
    store = CustomMetrics(retention_seconds=10_000, max_entries=3)
    key = metric_key("App", "m", ())
    for i in range(5):
        _put(store, key, T0 + i, float(i))
    assert store.dropped == 2
    assert store.series(key, "SampleCount", None, 60, T0 + 60, 1) == [3]
    assert store.series(key, "Minimum", None, 60, T0 + 60, 1) == [2]


@pytest.mark.parametrize(
    ("resolution", "at", "placed"),
    [
        # "Setting this to 60 specifies this metric as a regular-resolution metric, which CloudWatch stores
        # at 1-minute resolution"; 1: "with sub-minute resolution down to one second" (MetricDatum).
        (60, T0 + 59.5, T0),
        (1, T0 + 59.5, T0 + 59),
        (1, T0 + 0.2, T0),
    ],
)
def test_storage_resolution_files_a_datapoint_at_its_minute_or_second(resolution, at, placed):
    assert CustomMetrics(3600).place(at, resolution) == placed


@pytest.mark.parametrize(
    ("raw", "stat", "value"),
    [
        (((1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)), "p50", 2.0),
        (((1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)), "p75", 3.0),
        (((1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)), "p100", 4.0),
        (((1.0, 99), (100.0, 1)), "p99", 1.0),
        (((1.0, 99), (100.0, 1)), "p99.5", 100.0),
    ],
)
def test_custom_percentiles_are_nearest_ranks_over_the_weighted_values(raw, stat, value):
    count = sum(c for _, c in raw)
    total = sum(v * c for v, c in raw)
    entry = Entry(T0, "None", count, total, min(v for v, _ in raw), max(v for v, _ in raw), raw)
    assert custom_stat([entry], stat) == value
