"""The demo's expectations (pure functions over a deployment record, its
events and what the loads saw), its summary, and its settings."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller.eventlog import Entry, event_record
from shiftlab.demo import (
    BUSINESS_ALARM_NAME,
    CPU_ALARM_NAME,
    FIVE_XX_ALARM_NAME,
    P99_ALARM_NAME,
    P99_THRESHOLD_SECONDS,
    SAMPLE_IMAGE,
    SCENARIOS,
    Check,
    Seen,
    approve_delay,
    demo_settings,
    summary_lines,
)
from shiftlab.loadgen import LoadResult

T0 = 1_700_000_000.0


def as_recorded(entry: Entry, at: float) -> dict[str, Any]:
    """An event as the controller's records give it back."""
    return event_record(entry, None, "d1", at)


BACK_ON_BLUE = as_recorded(eventlog.weights_verified("all", 0.0), T0 + 5)
APPROVED = as_recorded(eventlog.hook_approved("POST_TEST_TRAFFIC_SHIFT", 0, "d1-POST_TEST_TRAFFIC_SHIFT-1-0"), T0 + 3)


def record(status: str, triggered: list[str] | None = None, hooks: list[dict[str, Any]] | None = None,
           reason: str | None = None) -> dict[str, Any]:
    return {"status": status, "statusReason": reason, "alarms": {"triggeredAlarmNames": triggered or []},
            "shiftlab": {"hookRuns": hooks or []}}


def load(by_group: dict[str, int], errors: dict[str, int] | None = None, slow: dict[str, int] | None = None,
         first: dict[str, float] | None = None, first_5xx: float | None = None, first_slow: float | None = None,
         slow_after: float | None = None) -> LoadResult:
    res = LoadResult(slow_after=slow_after)
    res.sent = sum(by_group.values())
    res.by_group = Counter(by_group)
    res.errors_by_group = Counter(errors or {})
    res.statuses = Counter({200: res.sent - sum(res.errors_by_group.values()), 500: sum(res.errors_by_group.values())})
    res.slow_by_group = Counter(slow or {})
    res.first_at_by_group = dict(first or {})
    res.first_5xx_at, res.first_slow_at = first_5xx, first_slow
    return res


def failed(checks: list[Check]) -> list[str]:
    return [c.what for c in checks if not c.ok]


def test_good_holds_for_a_clean_promotion_and_not_with_failures() -> None:
    check = SCENARIOS["good"].check
    assert failed(check(Seen(record("SUCCESSFUL"), [], load({"blue": 50, "green": 50})))) == []
    bad = check(Seen(record("SUCCESSFUL"), [], load({"blue": 50, "green": 50}, errors={"blue": 1})))
    assert failed(bad) == ["no request fails"]


def test_bad_canary_needs_the_5xx_alarm_and_errors_on_green_only() -> None:
    check = SCENARIOS["bad-canary"].check
    ok = Seen(record("ROLLBACK_SUCCESSFUL", [FIVE_XX_ALARM_NAME]), [BACK_ON_BLUE],
              load({"blue": 90, "green": 10}, errors={"green": 3}, first_5xx=T0 + 4))
    assert failed(check(ok)) == []
    # Rolled back, but by another alarm and with blue failing too: not what the scenario shows.
    wrong = Seen(record("ROLLBACK_SUCCESSFUL", [P99_ALARM_NAME]), [BACK_ON_BLUE],
                 load({"blue": 90, "green": 10}, errors={"green": 3, "blue": 1}))
    assert failed(check(wrong)) == [f"alarm {FIVE_XX_ALARM_NAME} trips", "the 5xx come from green only"]
    promoted = Seen(record("SUCCESSFUL"), [], load({"blue": 90, "green": 10}, errors={"green": 3}))
    assert failed(check(promoted)) == ["ends ROLLBACK_SUCCESSFUL", f"alarm {FIVE_XX_ALARM_NAME} trips",
                                       "production traffic goes back to blue"]


def test_cpu_needs_the_cpu_alarm_not_the_5xx_one() -> None:
    check = SCENARIOS["cpu"].check
    ok = Seen(record("ROLLBACK_SUCCESSFUL", [CPU_ALARM_NAME]), [BACK_ON_BLUE], load({"blue": 90, "green": 10}))
    assert failed(check(ok)) == []
    wrong = Seen(record("ROLLBACK_SUCCESSFUL", [FIVE_XX_ALARM_NAME]), [BACK_ON_BLUE],
                 load({"blue": 90, "green": 10}, errors={"green": 3}))
    assert failed(check(wrong)) == [f"alarm {CPU_ALARM_NAME} trips", f"alarm {FIVE_XX_ALARM_NAME} does not trip",
                                    "no request fails"]


def test_the_cpu_scenario_sets_a_low_task_cpu_and_its_aws_ecs_alarm(tmp_path) -> None:
    s = demo_settings(SCENARIOS["cpu"], 60.0, "process", str(tmp_path))
    assert s.service is not None and s.service.taskDefinition.cpu == 256
    assert CPU_ALARM_NAME in s.deployment.alarms.alarmNames
    # Fed by the tasks' CPU: validate does not warn about it.
    assert not [w for w in s.warnings() if CPU_ALARM_NAME in w]


def test_slow_fails_when_the_5xx_alarm_trips_instead_of_the_p99_one() -> None:
    check = SCENARIOS["slow"].check
    slow_load = load({"blue": 90, "green": 10}, slow={"green": 4}, first_slow=T0 + 4,
                     slow_after=P99_THRESHOLD_SECONDS)
    assert failed(check(Seen(record("ROLLBACK_SUCCESSFUL", [P99_ALARM_NAME]), [BACK_ON_BLUE], slow_load))) == []
    wrong = check(Seen(record("ROLLBACK_SUCCESSFUL", [FIVE_XX_ALARM_NAME]), [BACK_ON_BLUE], slow_load))
    assert failed(wrong) == [f"alarm {P99_ALARM_NAME} trips", f"alarm {FIVE_XX_ALARM_NAME} does not trip"]
    not_slow = check(Seen(record("ROLLBACK_SUCCESSFUL", [P99_ALARM_NAME]), [BACK_ON_BLUE],
                          load({"blue": 100}, slow_after=P99_THRESHOLD_SECONDS)))
    assert failed(not_slow) == ["green answers slowly (over 250 ms)"]


def test_business_metric_needs_the_business_alarm_and_no_failed_request() -> None:
    check = SCENARIOS["business-metric"].check
    quiet = load({"blue": 90, "green": 10})
    assert failed(check(Seen(record("ROLLBACK_SUCCESSFUL", [BUSINESS_ALARM_NAME]), [BACK_ON_BLUE], quiet))) == []
    by_5xx = check(Seen(record("ROLLBACK_SUCCESSFUL", [FIVE_XX_ALARM_NAME]), [BACK_ON_BLUE],
                        load({"blue": 90, "green": 10}, errors={"green": 2})))
    assert failed(by_5xx) == [f"alarm {BUSINESS_ALARM_NAME} trips", f"alarm {FIVE_XX_ALARM_NAME} does not trip",
                              "no request fails"]


def test_manual_needs_an_approved_pause_before_green_takes_production() -> None:
    check = SCENARIOS["manual"].check
    pause = [{"kind": "PAUSE", "status": "SUCCEEDED", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"}]
    after = load({"blue": 60, "green": 40}, first={"blue": T0, "green": T0 + 3.5})
    assert failed(check(Seen(record("SUCCESSFUL", hooks=pause), [APPROVED], after))) == []
    # A PAUSE that timed out with CONTINUE also ends SUCCESSFUL, but nobody approved it.
    timed_out = as_recorded(eventlog.hook_timed_out("POST_TEST_TRAFFIC_SHIFT", 0, "d1-POST_TEST_TRAFFIC_SHIFT-1-0",
                                               "CONTINUE"), T0 + 3)
    assert failed(check(Seen(record("SUCCESSFUL", hooks=pause), [timed_out], after))) == [
        "a PAUSE hook is approved", "production traffic reaches green only after the approval"]
    early = load({"blue": 60, "green": 40}, first={"blue": T0, "green": T0 + 1})
    assert failed(check(Seen(record("SUCCESSFUL", hooks=pause), [APPROVED], early))) == [
        "production traffic reaches green only after the approval"]


def test_blue_green_needs_test_traffic_on_green_before_production() -> None:
    check = SCENARIOS["blue-green"].check
    hook = [{"kind": "COMMAND", "status": "SUCCEEDED", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT", "attempts": 2}]
    prod = load({"blue": 60, "green": 40}, first={"blue": T0, "green": T0 + 3})
    before = load({"blue": 5, "green": 20}, first={"blue": T0, "green": T0 + 1})
    order = "test traffic (x-amzn-ecs-blue-green-test header) reaches green before production does"
    assert failed(check(Seen(record("SUCCESSFUL", hooks=hook), [], prod, before))) == []
    after = load({"blue": 5, "green": 20}, first={"blue": T0, "green": T0 + 4})
    assert failed(check(Seen(record("SUCCESSFUL", hooks=hook), [], prod, after))) == [order]
    assert failed(check(Seen(record("SUCCESSFUL", hooks=hook), [], prod, None))) == [order]


def test_summary_of_slow_gives_the_time_from_the_first_slow_answer_and_the_failed_expectations() -> None:
    sc = SCENARIOS["slow"]
    seen = Seen(record("ROLLBACK_SUCCESSFUL", [FIVE_XX_ALARM_NAME], reason="alarm service-5xx in ALARM"),
                [BACK_ON_BLUE], load({"blue": 90, "green": 10}, slow={"green": 4}, first_slow=T0 + 4.25,
                                     slow_after=P99_THRESHOLD_SECONDS))
    lines = summary_lines(seen, sc.check(seen), sc.expect, 12.34)
    assert lines[0].startswith("NOT as expected: ROLLBACK_SUCCESSFUL")
    assert f"  FAILED {'alarm ' + P99_ALARM_NAME + ' trips'}: triggered: {FIVE_XX_ALARM_NAME}" in lines
    assert "requests: 100 sent, 0 failed, 4 slower than 250 ms (by group: {'green': 4}); " \
           "split {'blue': 90, 'green': 10}" in lines
    assert "first bad response (slower than 250 ms) -> production back on blue: 0.75 s" in lines
    assert lines[-1] == "total: 12.3 s"


def test_first_bad_response_is_the_earliest_of_5xx_connection_error_and_slow() -> None:
    res = LoadResult(slow_after=0.25)
    assert res.first_bad_at is None
    res.first_slow_at, res.first_5xx_at, res.first_connection_error_at = T0 + 2, T0 + 3, T0 + 1
    assert res.first_bad_at == T0 + 1


@pytest.mark.parametrize("scale", [60.0, 600.0])
def test_auto_approval_comes_before_the_pause_times_out(scale: float) -> None:
    timeout_wall = 30 * 60 / scale  # the manual scenario's PAUSE times out after 30 AWS minutes
    assert 0 < approve_delay(SCENARIOS["manual"], scale) < timeout_wall
    assert approve_delay(SCENARIOS["manual"], 60.0) == 5.0


def test_docker_settings_run_the_sample_image_with_its_own_command(tmp_path) -> None:
    s = demo_settings(SCENARIOS["bad-canary"], 120.0, "docker", str(tmp_path))
    assert s.controller.backend == "docker"
    assert s.service is not None
    td = s.service.taskDefinition
    assert td.image == SAMPLE_IMAGE and td.command == []
    other = demo_settings(SCENARIOS["good"], 120.0, "docker", str(tmp_path), image="mine:1")
    assert other.service is not None and other.service.taskDefinition.image == "mine:1"
    process = demo_settings(SCENARIOS["good"], 120.0, "process", str(tmp_path))
    assert process.service is not None
    assert process.service.taskDefinition.image is None and process.service.taskDefinition.command


def test_the_blue_green_hook_holds_a_wall_clock_second_at_any_scale(tmp_path) -> None:
    for scale in (1.0, 60.0, 600.0):
        s = demo_settings(SCENARIOS["blue-green"], scale, "process", str(tmp_path))
        wait = s.deployment.lifecycleHooks[0].hookDetails["waitSeconds"]
        assert wait / scale >= 1.0


def test_a_missing_sample_image_names_the_build_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import docker

    from shiftlab.demo import docker_problem

    class Images:
        def get(self, name: str) -> None:
            raise docker.errors.ImageNotFound(f"no such image: {name}")

    class FakeClient:
        images = Images()

        def ping(self) -> bool:
            return True

        def close(self) -> None:
            pass

    monkeypatch.setattr(docker, "from_env", lambda **kw: FakeClient())
    problem = docker_problem(SAMPLE_IMAGE)
    assert problem is not None and f"{SAMPLE_IMAGE}, which is not on this machine" in problem
    assert "compose/build-images.sh" in problem


def test_the_demo_command_offers_every_scenario_by_its_name() -> None:
    # Written out in the CLI, which does not import the demo (and the whole stack) to start.
    import click

    from shiftlab.cli.rehearsal import demo

    [option] = [p for p in demo.params if p.name == "scenario"]
    assert isinstance(option.type, click.Choice)
    # nlb is shiftlab.demo_nlb's (connections, not requests: a runner of its own).
    assert list(option.type.choices) == [*SCENARIOS, "nlb"]


def _headless_seen(flips: list[tuple[str, bool]], sent: int, processed: int, duplicates: int,
                   after: dict[str, int] | None) -> Seen:
    from shiftlab.headless import FAILURE_ALARM_NAME, Accounting

    d = record("ROLLBACK_SUCCESSFUL", [FAILURE_ALARM_NAME])
    d["shiftlab"].update(sourceRevision="1", targetRevision="2")
    events = [as_recorded(eventlog.service_activation(rev, on), T0 + i) for i, (rev, on) in enumerate(flips)]
    q = Accounting(sent, processed, duplicates, 3, {"revision 1": processed - 5, "revision 2": 5})
    return Seen(d, events, None, None, q, after)


def test_headless_needs_green_activated_then_blue_back_and_nothing_lost_or_twice() -> None:
    check = SCENARIOS["headless"].check
    flips = [("2", True), ("1", False), ("1", True), ("2", False)]
    assert all(c.ok for c in check(_headless_seen(flips, 100, 100, 0, {"revision 1": 40})))
    lost = {c.what for c in check(_headless_seen(flips, 100, 97, 0, {"revision 1": 40})) if not c.ok}
    assert lost == {"no message lost, none processed twice"}
    twice = {c.what for c in check(_headless_seen(flips, 100, 100, 2, {"revision 1": 40})) if not c.ok}
    assert twice == {"no message lost, none processed twice"}
    stuck = {c.what for c in check(_headless_seen(flips[:2], 100, 100, 0, {})) if not c.ok}
    assert stuck == {"green is activated, then blue again", "blue takes over again after the rollback"}


def test_the_headless_scenario_has_no_load_balancer_and_refuses_docker(tmp_path) -> None:
    from shiftlab.common.configfile import ConfigError

    s = demo_settings(SCENARIOS["headless"], 60.0, "process", str(tmp_path))
    assert s.load_balancer_config is None and s.service is not None and s.service.exposure == "headless"
    assert s.service.taskDefinition.environment["QUEUE_URL"].startswith("http://127.0.0.1:")
    with pytest.raises(ConfigError, match=r"^--backend: the headless scenario"):
        demo_settings(SCENARIOS["headless"], 60.0, "docker", str(tmp_path))


def test_service_connect_needs_its_alarm_test_requests_first_and_errors_on_the_green_catalog() -> None:
    check = SCENARIOS["service-connect"].check
    green, blue = "sc-catalog-green", "sc-catalog-blue"
    prod = load({blue: 95, green: 5}, errors={green: 1}, first={blue: T0, green: T0 + 3})
    test = load({blue: 5, green: 10}, errors={green: 3}, first={blue: T0, green: T0 + 1})
    rolled = record("ROLLBACK_SUCCESSFUL", ["catalog-5xx"])
    assert failed(check(Seen(rolled, [BACK_ON_BLUE], prod, test))) == []
    # The alarm may trip on test requests alone, before production reaches green.
    early = load({blue: 100}, first={blue: T0})
    assert failed(check(Seen(rolled, [BACK_ON_BLUE], early, test))) == []
    late = load({blue: 5, green: 10}, errors={green: 3}, first={blue: T0, green: T0 + 4})
    order = ("test requests (x-amzn-ecs-blue-green-test, passed on by the frontend) reach the green catalog "
             "before any production request does")
    assert failed(check(Seen(rolled, [BACK_ON_BLUE], prod, late))) == [order]
    blue_errors = load({blue: 95, green: 5}, errors={blue: 2, green: 1}, first={blue: T0, green: T0 + 3})
    assert failed(check(Seen(rolled, [BACK_ON_BLUE], blue_errors, test))) == [
        "the 5xx (production and test requests) come from the green catalog only"]


def test_the_service_connect_scenario_runs_two_services_in_a_namespace_without_an_alb(tmp_path) -> None:
    s = demo_settings(SCENARIOS["service-connect"], 60.0, "process", str(tmp_path))
    assert s.service is not None and s.service.service_connect is not None
    assert [ls.name for ls in s.load_balancer.Listeners] == ["sc-catalog"]
    assert [c.name for c in s.service.serviceConnectClients] == ["frontend"]
    assert s.deployment.alarms.alarmNames == ["catalog-5xx"]
    assert s.warnings() == []
    docker = demo_settings(SCENARIOS["service-connect"], 60.0, "docker", str(tmp_path))
    assert docker.controller.docker.network == "host"
