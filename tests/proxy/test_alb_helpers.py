"""ALB's small formats, without sockets: the stickiness cookie, the trace id,
the error pages, health-check state transitions and the counters."""

from __future__ import annotations

import re

import pytest

from shiftlab.proxy.health import next_state
from shiftlab.proxy.server import error_page, read_sticky_cookie, sticky_cookie_value, trace_id
from shiftlab.proxy.state import HEALTHY, INITIAL, UNHEALTHY, Target
from shiftlab.proxy.stats import BOUNDS, Counters, Stats

ROOT = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
NOW = 1_700_000_000.0


# -- stickiness cookie ------------------------------------------------------


def test_cookie_round_trip_until_expiry() -> None:
    value = sticky_cookie_value("green", int(NOW) + 60)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", value), "cookie values must not need quoting"
    assert read_sticky_cookie(value, NOW) == "green"
    assert read_sticky_cookie(value, NOW + 59) == "green"
    assert read_sticky_cookie(value, NOW + 60) is None
    assert read_sticky_cookie(value, NOW + 3600) is None


@pytest.mark.parametrize("value", ["", "not base64!", "Z3JlZW4", "fHwxMjM", sticky_cookie_value("", 2_000_000_000),
                                   "AAAA", "//79"])
def test_malformed_cookies_are_ignored(value: str) -> None:
    assert read_sticky_cookie(value, NOW) is None


def test_cookie_names_a_hyphenated_group() -> None:
    assert read_sticky_cookie(sticky_cookie_value("my-green-tg", int(NOW) + 1), NOW) == "my-green-tg"


# -- X-Amzn-Trace-Id --------------------------------------------------------


def test_new_trace_id_format() -> None:
    value = trace_id(None, NOW)
    assert value.startswith("Root=")
    root = value.removeprefix("Root=")
    assert ROOT.match(root)
    assert root.split("-")[1] == f"{int(NOW):08x}"
    assert trace_id(None, NOW) != value, "the random part must differ between requests"


def test_client_root_is_kept_and_self_added() -> None:
    client = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    value = trace_id(client, NOW)
    fields = value.split(";")
    assert "Root=1-5759e988-bd862e3fe1be46a994272793" in fields
    assert "Sampled=1" in fields
    selfs = [f for f in fields if f.startswith("Self=")]
    assert len(selfs) == 1 and ROOT.match(selfs[0].removeprefix("Self="))


def test_a_previous_self_is_replaced() -> None:
    client = "Self=1-00000000-000000000000000000000000;Root=1-5759e988-bd862e3fe1be46a994272793"
    value = trace_id(client, NOW)
    assert value.count("Self=") == 1
    assert "Self=1-00000000-000000000000000000000000" not in value
    assert "Root=1-5759e988-bd862e3fe1be46a994272793" in value


def test_client_value_without_root_gets_a_new_root() -> None:
    value = trace_id("Sampled=1", NOW)
    assert ROOT.match(value.removeprefix("Root="))


# -- error pages -------------------------------------------------------------


@pytest.mark.parametrize(("status", "title"), [
    (400, "400 Bad Request"),
    (405, "405 Method Not Allowed"),
    (502, "502 Bad Gateway"),
    (503, "503 Service Temporarily Unavailable"),
    (504, "504 Gateway Time-out"),
    (463, "463"),
])
def test_error_page_is_albs_plain_html(status: int, title: str) -> None:
    page = error_page(status).decode()
    assert page == (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )


# -- health-check state machine -------------------------------------------


def run_checks(results: str, state: str = INITIAL, healthy_n: int = 3, unhealthy_n: int = 2) -> list[str]:
    """Apply checks ('+' pass, '-' fail) and return the state after each."""
    t = Target("127.0.0.1", 1, state, "Elb.RegistrationInProgress", 0.0)
    out = []
    for r in results:
        next_state(t, r == "+", "Target.ResponseCodeMismatch", healthy_n, unhealthy_n)
        out.append(t.state)
    return out


# "After your target is registered, it must pass one health check to be
# considered healthy"; "If the health checks exceed UnhealthyThresholdCount
# consecutive failures, the load balancer takes the target out of service.
# When the health checks exceed HealthyThresholdCount consecutive successes,
# the load balancer puts the target back in service."
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
@pytest.mark.parametrize(("start", "results", "states"), [
    (INITIAL, "+", [HEALTHY]),  # one pass puts a new target in service
    (INITIAL, "-+", [INITIAL, HEALTHY]),
    (INITIAL, "--", [INITIAL, UNHEALTHY]),
    (INITIAL, "--+++", [INITIAL, UNHEALTHY, UNHEALTHY, UNHEALTHY, HEALTHY]),  # out of service: the threshold
    (HEALTHY, "-+-+", [HEALTHY] * 4),  # one failure at a time is not enough
    (HEALTHY, "--", [HEALTHY, UNHEALTHY]),
    (UNHEALTHY, "++-+++", [UNHEALTHY] * 5 + [HEALTHY]),  # a failure resets the streak
])
def test_thresholds(start: str, results: str, states: list[str]) -> None:
    assert run_checks(results, start) == states


def test_reasons_follow_describe_target_health() -> None:
    t = Target("127.0.0.1", 1, INITIAL, "Elb.RegistrationInProgress", 0.0)
    next_state(t, False, "Target.Timeout", 2, 2)
    assert (t.state, t.reason) == (INITIAL, "Elb.InitialHealthChecking")
    next_state(t, True, "", 2, 2)
    assert (t.state, t.reason) == (HEALTHY, "")
    next_state(t, False, "Target.Timeout", 2, 2)
    next_state(t, False, "Target.Timeout", 2, 2)
    assert (t.state, t.reason) == (UNHEALTHY, "Target.Timeout")
    next_state(t, False, "Target.ResponseCodeMismatch", 2, 2)
    assert t.reason == "Target.ResponseCodeMismatch", "the reason tracks the latest failure"
    assert t.describe()["TargetHealth"] == {"State": UNHEALTHY, "Reason": "Target.ResponseCodeMismatch"}


# -- counters ------------------------------------------------------------------


def test_counters_as_cloudwatch_metrics() -> None:
    c = Counters()
    c.requests = 5
    c.target[2] += 3
    c.target[5] += 1
    for code in (502, 502, 503, 504, 400, 463):
        c.elb_error(code)
    for s in (0.001, 0.01, 0.1):
        c.response_time(s)
    m = c.as_metrics()
    assert m["RequestCount"] == 5
    assert (m["HTTPCode_Target_2XX_Count"], m["HTTPCode_Target_5XX_Count"]) == (3, 1)
    assert (m["HTTPCode_ELB_4XX_Count"], m["HTTPCode_ELB_5XX_Count"]) == (2, 4)
    assert (m["HTTPCode_ELB_502_Count"], m["HTTPCode_ELB_503_Count"], m["HTTPCode_ELB_504_Count"]) == (2, 1, 1)
    rt = m["TargetResponseTime"]
    assert rt["count"] == 3 and rt["min"] == 0.001 and rt["max"] == 0.1
    assert rt["sum"] == pytest.approx(0.111)
    assert sum(rt["buckets"]) == 3 and len(rt["buckets"]) == len(BOUNDS) + 1
    # Each sample lands in the first bucket whose upper bound holds it.
    for s in (0.001, 0.01, 0.1):
        i = next(i for i, b in enumerate(BOUNDS) if s <= b)
        assert rt["buckets"][i] >= 1


def test_stats_sum_listeners_per_target_group() -> None:
    stats = Stats("lb")
    stats.counters("80", "blue").requests = 3
    stats.counters("8080", "blue").requests = 4
    stats.counters("80", "green").requests = 1
    stats.counters("80").elb_error(400)  # before any group was chosen
    snap = stats.snapshot({"blue": (2, 0), "green": (0, 1), "idle": (1, 0)})
    groups = snap["targetGroups"]
    assert groups["blue"]["RequestCount"] == 7
    assert groups["green"]["RequestCount"] == 1
    assert groups["idle"]["RequestCount"] == 0
    assert (groups["green"]["HealthyHostCount"], groups["green"]["UnHealthyHostCount"]) == (0, 1)
    assert snap["total"]["RequestCount"] == 8
    assert snap["total"]["HTTPCode_ELB_4XX_Count"] == 1
    assert isinstance(snap["timestamp"], float) and snap["loadBalancer"] == "lb"
