"""What a restarted controller does with what it finds (machine.restart_plan):
which adopted task goes to which set, which is stopped, how many blue tasks
it wants, which deployment it goes on with, and the promotion a controller
killed after recording SUCCESSFUL did not write."""

from __future__ import annotations

import pytest

from shiftlab.controller import machine as m
from tests.controller.test_machine import RECOVERY, ROLLING_RECOVERY, Playbook, run_until


def task(task_id: str, revision: str) -> m.Adopted:
    return m.Adopted(task_id, revision)


def deployment(status: str, target: str = "2", strategy: str = "CANARY", created_at: float = 1.0) -> m.Deployment:
    d = (run_until(m.BAKE_TIME, ROLLING_RECOVERY) if strategy == "ROLLING" else run_until(m.BAKE_TIME, RECOVERY)).d
    if status == m.PENDING:
        d = Playbook({"strategy": strategy}).d
    d.status, d.target_revision, d.created_at = status, target, created_at
    return d


def test_no_deployment_keeps_the_running_revision_s_tasks_and_stops_the_rest() -> None:
    plan = m.restart_plan("1", 2, None, [], [task("a", "1"), task("b", "1"), task("c", "2"), task("d", "1")])
    assert (plan.blue, plan.green, plan.stop) == (["a", "b", "d"], [], ["c"])
    assert plan.blue_desired == 2 and plan.resume is None and plan.promote is None and plan.supersede == []
    assert plan.running_revision == "1"


def test_an_unfinished_deployment_keeps_its_target_s_tasks_in_the_alternate_set() -> None:
    d = deployment(m.IN_PROGRESS, target="3")
    plan = m.restart_plan("1", 2, d, [d], [task("a", "1"), task("g", "3"), task("x", "2")])
    assert (plan.blue, plan.green, plan.stop) == (["a"], ["g"], ["x"])
    assert plan.resume is d and plan.blue_desired == 2


@pytest.mark.parametrize(("status", "blue_desired"), [
    (m.IN_PROGRESS, 1),  # blue has the tasks the replacement left it: not grown back beside green's
    (m.ROLLBACK_IN_PROGRESS, 1),  # the rollback restores blue's count itself
    (m.PENDING, 4),  # nothing replaced yet
])
def test_mid_rolling_blue_keeps_what_the_replacement_left_it(status: str, blue_desired: int) -> None:
    d = deployment(status, strategy="ROLLING")
    plan = m.restart_plan("1", 4, d, [d], [task("a", "1"), task("g1", "2"), task("g2", "2")])
    assert plan.blue_desired == blue_desired and plan.green == ["g1", "g2"]


def test_a_successful_deployment_not_promoted_is_promoted_and_its_tasks_are_blue() -> None:
    d = deployment(m.SUCCESSFUL, target="2")
    plan = m.restart_plan("1", 2, d, [], [task("g1", "2"), task("g2", "2"), task("old", "1")])
    assert plan.promote is d and plan.running_revision == "2"
    assert (plan.blue, plan.green, plan.stop) == (["g1", "g2"], [], ["old"])


@pytest.mark.parametrize("status", [m.SUCCESSFUL, m.ROLLBACK_SUCCESSFUL, m.STOPPED])
def test_a_finished_deployment_already_in_the_records_is_not_promoted_again(status: str) -> None:
    d = deployment(status, target="2")
    running = "2" if status == m.SUCCESSFUL else "1"
    plan = m.restart_plan(running, 2, d, [], [task("a", running)])
    assert plan.promote is None and plan.running_revision == running and plan.blue == ["a"]


def test_only_the_last_unfinished_deployment_goes_on_the_others_are_superseded() -> None:
    older, newer = deployment(m.IN_PROGRESS, "2", created_at=1.0), deployment(m.IN_PROGRESS, "3", created_at=2.0)
    plan = m.restart_plan("1", 2, newer, [older, newer], [task("g2", "2"), task("g3", "3")])
    assert plan.resume is newer and plan.supersede == [older]
    assert plan.green == ["g3"] and plan.stop == ["g2"]
