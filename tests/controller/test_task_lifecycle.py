"""A task's lifecycle, the same for every backend: lastStatus only moves
forward, nothing brings a STOPPED task back, and a stop says why in ECS's
words. The race a real backend had (a task that exited while its port check
was finishing came back RUNNING) is reproduced on a real process (and on
a container in tests/docker/test_docker_backend.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.backends import process
from shiftlab.controller.backends.base import (
    ESSENTIAL_CONTAINER_EXITED,
    PENDING,
    PROVISIONING,
    REASON_EXITED,
    REASON_USER,
    RUNNING,
    STATES,
    STOPPED,
    STOPPING,
    TASK_FAILED_TO_START,
    USER_INITIATED,
    Backend,
    Task,
    TaskDefinition,
)
from shiftlab.controller.backends.lifecycle import Lifecycle, can_move, exit_code_of, exit_reason
from shiftlab.controller.backends.process import ProcessBackend
from tests.controller.test_backend_contract import SAMPLE, SERVICE, Recorder
from tests.helpers import eventually

# Listens, and exits soon after the first connection (held open a moment,
# so that the docker backend's probe counts it): the port check that
# connects is the last thing it sees.
EXIT_AFTER_ONE_CONNECTION = (
    "{python}", "-c",
    "import os, socket, time\n"
    "s = socket.socket(); s.bind((os.environ['HOST'], int(os.environ['PORT']))); s.listen()\n"
    "c, _ = s.accept(); time.sleep(0.2)\n",
)


def hold_the_check(monkeypatch: pytest.MonkeyPatch, module: Any, until: Callable[[], bool]) -> asyncio.Event:
    """Make the port check of the backend `module` hold back its "it listens"
    until `until()` holds: the real check, answering late, in the order in
    which the race happens by chance. The event is set once it connected."""
    real_check = module._accepts
    connected = asyncio.Event()

    async def late_check(host: str, port: int) -> bool:
        listening: bool = await real_check(host, port)
        if listening:
            connected.set()
            await eventually(until, what="the task to change while its check is out")
        return listening

    monkeypatch.setattr(module, "_accepts", late_check)
    return connected


async def a_task_that_exits_during_its_check_stays_stopped(backend: Backend, module: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Recorder()
    backend.subscribe(seen)
    hold_the_check(monkeypatch, module, lambda: any(t.state == STOPPED for t in seen.seen))
    task = await backend.start_task(SERVICE, TaskDefinition("1", EXIT_AFTER_ONE_CONNECTION), "green", "d-1", {})
    assert task.state == STOPPED
    assert (task.exit_code, task.stop_code, task.stopped_reason) == (0, ESSENTIAL_CONTAINER_EXITED, REASON_EXITED)
    assert seen.states(task.task_id) == [PENDING, STOPPED]  # nothing after STOPPED
    assert [t.state for t in await backend.tasks()] == [STOPPED]


async def a_stop_during_the_start_wins(backend: Backend, module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Recorder()
    backend.subscribe(seen)
    connected = hold_the_check(monkeypatch, module, lambda: STOPPING in [t.state for t in seen.seen])
    starting = asyncio.create_task(backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "green", "d-1", {}))
    await asyncio.wait_for(connected.wait(), 30)
    [pending] = [t for t in seen.seen if t.state == PENDING]
    stopped = await backend.stop_task(pending.task_id, 5)
    task = await starting
    assert (task.state, task.stop_code, task.stopped_reason) == (STOPPED, USER_INITIATED, REASON_USER)
    assert stopped.state == STOPPED
    assert seen.states(task.task_id) == [PENDING, STOPPING, STOPPED]


async def test_a_task_that_exits_while_its_port_check_returns_stays_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The port check connects, the task exits and its watcher reports
    STOPPED, and only then does the check say "it listens": the late answer
    must not mark the dead task RUNNING (it did, process.py set RUNNING
    over STOPPED)."""
    backend = ProcessBackend(tmp_path, start_timeout=10)
    try:
        await a_task_that_exits_during_its_check_stays_stopped(backend, process, monkeypatch)
    finally:
        await backend.close(stop_tasks=True)


async def test_a_stop_asked_for_while_the_task_starts_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop (stop_task on the id subscribers heard with PENDING) while the
    port check is out: the check then says "it listens", but a STOPPING task
    never turns RUNNING, and the start returns it STOPPED."""
    backend = ProcessBackend(tmp_path, start_timeout=10)
    try:
        await a_stop_during_the_start_wins(backend, process, monkeypatch)
    finally:
        await backend.close(stop_tasks=True)


# -- the lifecycle itself (pure) --------------------------------------------------------------


def _task(state: str = PROVISIONING) -> Task:
    return Task("a" * 32, "1", "green", SERVICE, "d-1", "127.0.0.1", 8080, state)


FORWARD = [(PROVISIONING, PENDING), (PROVISIONING, RUNNING), (PROVISIONING, STOPPING), (PROVISIONING, STOPPED),
           (PENDING, RUNNING), (PENDING, STOPPING), (PENDING, STOPPED), (RUNNING, STOPPING), (RUNNING, STOPPED),
           (STOPPING, STOPPED)]


@pytest.mark.parametrize("old", STATES)
@pytest.mark.parametrize("new", STATES)
def test_last_status_only_moves_forward(old: str, new: str) -> None:
    assert can_move(old, new) == ((old, new) in FORWARD)


@pytest.mark.parametrize("old", STATES)
@pytest.mark.parametrize("new", [PENDING, RUNNING, STOPPING])
def test_move_changes_the_task_only_forward(old: str, new: str) -> None:
    life = Lifecycle(_task(old))
    assert life.move(new) == ((old, new) in FORWARD)
    assert life.task.state == (new if (old, new) in FORWARD else old)


def test_stopped_is_reached_only_with_a_reason() -> None:
    with pytest.raises(ValueError, match="exited"):
        Lifecycle(_task(RUNNING)).move(STOPPED)


@pytest.mark.parametrize(("asked", "exit_code", "oom", "detail", "told"), [
    (None, 3, False, "", (3, ESSENTIAL_CONTAINER_EXITED, REASON_EXITED)),
    (None, 137, True, "", (137, ESSENTIAL_CONTAINER_EXITED,
                           "Essential container in task exited (OutOfMemoryError: Container killed due to memory "
                           "usage)")),
    (None, None, False, " (while no controller watched it)",
     (None, ESSENTIAL_CONTAINER_EXITED, "Essential container in task exited (while no controller watched it)")),
    ((USER_INITIATED, REASON_USER), 143, False, "", (143, USER_INITIATED, REASON_USER)),
    ((TASK_FAILED_TO_START, "Task failed to start: nothing listening"), 137, True, "",
     (137, TASK_FAILED_TO_START, "Task failed to start: nothing listening")),
])
def test_an_exit_says_why_the_task_stopped(asked: tuple[str, str] | None, exit_code: int | None, oom: bool,
                                           detail: str, told: tuple[int | None, str, str]) -> None:
    life = Lifecycle(_task(RUNNING))
    if asked:
        life.ask_stop(*asked)
        life.move(STOPPING)
    assert life.exited(exit_code, 1000.0, oom=oom, detail=detail)
    t = life.task
    assert (t.exit_code, t.stop_code, t.stopped_reason) == told
    assert (t.state, t.stopped_at, life.stopped) == (STOPPED, 1000.0, True)


def test_the_first_stop_asked_for_is_the_one_reported() -> None:
    life = Lifecycle(_task(RUNNING))
    life.ask_stop(USER_INITIATED, REASON_USER)
    life.ask_stop(TASK_FAILED_TO_START, "a timeout's own reason")
    life.exited(0, 1.0)
    assert (life.task.stop_code, life.task.stopped_reason) == (USER_INITIATED, REASON_USER)


def test_a_start_failure_is_a_stop_without_an_exit_code() -> None:
    life = Lifecycle(_task(PROVISIONING))
    life.ask_stop(USER_INITIATED, REASON_USER)  # the failure says more than a stop asked for meanwhile
    assert life.failed_to_start("CannotPullContainerError: no such image", 5.0)
    t = life.task
    assert (t.state, t.exit_code, t.stop_code, t.stopped_reason, t.stopped_at) == (
        STOPPED, None, TASK_FAILED_TO_START, "CannotPullContainerError: no such image", 5.0)


def test_stopped_is_final() -> None:
    life = Lifecycle(_task(RUNNING))
    life.exited(1, 10.0)
    before = life.task.snapshot()
    assert not life.move(RUNNING) and not life.move(PENDING) and not life.move(STOPPING)
    assert not life.exited(0, 20.0, oom=True)  # a second report of the same exit (an event and a look)
    assert not life.failed_to_start("late", 30.0)
    assert life.task == before


@pytest.mark.parametrize(("returncode", "reported"), [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_a_process_killed_by_a_signal_reports_as_a_container_does(returncode: int, reported: int) -> None:
    assert exit_code_of(returncode) == reported


def test_exit_reasons_say_oom() -> None:
    assert exit_reason() == REASON_EXITED
    assert exit_reason(oom=True, detail=" (x)") == (
        "Essential container in task exited (OutOfMemoryError: Container killed due to memory usage) (x)")
