"""One contract for every Backend: what the controller may rely on, run
against each implementation. A harness per backend says how to make its
tasks misbehave (a command that exits, one that never listens, one that
ignores SIGTERM) and how to look at them from outside.

Adding a backend = writing its harness and one line in HARNESSES. Tests
that need tasks a test can reach over HTTP or see in the process table run
over the harnesses with `real = True`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from shiftlab.controller.backends import procinfo
from shiftlab.controller.backends.base import (
    ESSENTIAL_CONTAINER_EXITED,
    REASON_EXITED,
    RUNNING,
    STOPPED,
    TASK_FAILED_TO_START,
    USER_INITIATED,
    Backend,
    Task,
    TaskDefinition,
    UnknownTask,
)
from shiftlab.controller.backends.fake import FakeBackend, FakeWorld
from shiftlab.controller.backends.lifecycle import ORDER
from shiftlab.controller.backends.process import ProcessBackend
from tests.helpers import eventually

SERVICE = "web"
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 1.5  # short: the "never listens" case waits this long
SAMPLE = ("{python}", "-m", "shiftlab.sample_service")

# Prints the environment it was given (one JSON line, for the env test), then
# becomes the sample service.
ENV_THEN_SERVE = (
    "{python}", "-c",
    "import json, os, runpy; print('ENV ' + json.dumps(dict(os.environ)), flush=True); "
    "runpy.run_module('shiftlab.sample_service', run_name='__main__')",
)
# Listens, ignores SIGTERM, and starts a child (same process group) that
# ignores it too: only SIGKILL of the whole group ends both.
STUBBORN = (
    "{python}", "-c",
    "import os, signal, socket, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
    "print('CHILD', child.pid, flush=True)\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen()\n"
    "time.sleep(600)\n",
)


class Harness:
    name: ClassVar[str]
    real: ClassVar[bool]  # tasks answer HTTP on host:port and live in the process table

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "state"

    def backend(self) -> Backend:
        raise NotImplementedError

    async def crash(self, backend: Backend) -> None:
        """The controller holding `backend` is gone; its tasks run on, nobody watches them."""

    async def start_exiting(self, backend: Backend, exit_code: int) -> Task:
        raise NotImplementedError

    async def start_never_listening(self, backend: Backend) -> Task:
        raise NotImplementedError

    async def start_stubborn(self, backend: Backend) -> Task:
        raise NotImplementedError

    async def env_seen(self, backend: Backend, task: Task) -> dict[str, str]:
        raise NotImplementedError

    def port_inside(self, task: Task, definition: TaskDefinition) -> int:
        """The port the task itself listens on (its PORT): the target's port,
        unless the backend maps one to the other (a container's published port)."""
        return task.port

    def kill_from_outside(self, backend: Backend, task: Task) -> None:
        raise NotImplementedError

    def die_unwatched(self, task: Task) -> None:
        """The task dies while no controller watches it (between crash and adopt)."""
        self.kill_from_outside(None, task)  # type: ignore[arg-type]

    async def gone(self, backend: Backend, task: Task) -> bool:
        """Nothing of the task runs any more (its children included)."""
        raise NotImplementedError


class ProcessHarness(Harness):
    name = "process"
    real = True

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.children: dict[str, int] = {}  # task id -> pid of the child a stubborn task started

    def backend(self) -> Backend:
        return ProcessBackend(self.state_dir, start_timeout=START_TIMEOUT, adopted_poll=0.05)

    async def crash(self, backend: Backend) -> None:
        # In this process the dropped backend's watchers would go on reaping
        # its children; a dead controller's would not. Silence them the way
        # a dead process does, leaving tasks and registry as they are.
        # test_adopt_after_a_real_controller_crash SIGKILLs a real one.
        await backend.close(stop_tasks=False)

    async def start_exiting(self, backend: Backend, exit_code: int) -> Task:
        cmd = ("{python}", "-c", f"import sys; print('bye'); sys.exit({exit_code})")
        return await backend.start_task(SERVICE, TaskDefinition("1", cmd), "green", "d-1", {})

    async def start_never_listening(self, backend: Backend) -> Task:
        cmd = ("{python}", "-c", "import time; time.sleep(600)")
        return await backend.start_task(SERVICE, TaskDefinition("1", cmd, stop_timeout=2.0), "green", "d-1", {})

    async def start_stubborn(self, backend: Backend) -> Task:
        task = await backend.start_task(SERVICE, TaskDefinition("1", STUBBORN, stop_timeout=0.5), "blue", None, {})
        line = await eventually(lambda: _line_starting(backend, task, "CHILD "), what="the stubborn child's pid")
        self.children[task.task_id] = int(line.split()[1])
        return task

    async def env_seen(self, backend: Backend, task: Task) -> dict[str, str]:
        line = await eventually(lambda: _line_starting(backend, task, "ENV "), what="the task's ENV line")
        env: dict[str, str] = json.loads(line[4:])
        return env

    def kill_from_outside(self, backend: Backend, task: Task) -> None:
        assert task.pid is not None
        os.kill(task.pid, signal.SIGKILL)

    async def gone(self, backend: Backend, task: Task) -> bool:
        assert task.pid is not None
        pids = [task.pid, *([self.children[task.task_id]] if task.task_id in self.children else [])]
        return not any(procinfo.is_alive(p, None) for p in pids) and not procinfo.group_members(task.pid)


class FakeHarness(Harness):
    name = "fake"
    real = False

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.world = FakeWorld()

    def backend(self) -> Backend:
        return FakeBackend(self.world)

    async def start_exiting(self, backend: Backend, exit_code: int) -> Task:
        assert isinstance(backend, FakeBackend)
        backend.fail_next_starts(exit_code=exit_code)
        return await backend.start_task(SERVICE, TaskDefinition("1", ("exit",)), "green", "d-1", {})

    async def start_never_listening(self, backend: Backend) -> Task:
        assert isinstance(backend, FakeBackend)
        backend.fail_next_starts(reason="Task failed to start: nothing listening", exit_code=None,
                                 stop_code=TASK_FAILED_TO_START)
        return await backend.start_task(SERVICE, TaskDefinition("1", ("sleep",)), "green", "d-1", {})

    async def start_stubborn(self, backend: Backend) -> Task:
        assert isinstance(backend, FakeBackend)
        task = await backend.start_task(SERVICE, TaskDefinition("1", ("stubborn",)), "blue", None, {})
        backend.ignore_sigterm(task.task_id)
        return task

    async def env_seen(self, backend: Backend, task: Task) -> dict[str, str]:
        assert isinstance(backend, FakeBackend)
        return backend.env_of(task.task_id)

    def kill_from_outside(self, backend: Backend, task: Task) -> None:
        assert isinstance(backend, FakeBackend)
        backend.exit_task(task.task_id, exit_code=137)

    def die_unwatched(self, task: Task) -> None:
        self.world.kill(task.task_id, exit_code=137)

    async def gone(self, backend: Backend, task: Task) -> bool:
        return self.world.tasks[task.task_id].state == STOPPED


HARNESSES: dict[str, type[Harness]] = {
    "process": ProcessHarness,
    "fake": FakeHarness,
}
REAL = [name for name, h in HARNESSES.items() if h.real]


async def _line_starting(backend: Backend, task: Task, prefix: str) -> str | None:
    for line in (await backend.logs(task.task_id)).splitlines():
        if line.startswith(prefix):
            return line
    return None


class Recorder:
    """A subscriber that keeps every snapshot it is given."""

    def __init__(self) -> None:
        self.seen: list[Task] = []

    def __call__(self, task: Task) -> None:
        self.seen.append(task)

    def states(self, task_id: str) -> list[str]:
        return [t.state for t in self.seen if t.task_id == task_id]

    def stopped(self, task_id: str) -> Task | None:
        return next((t for t in self.seen if t.task_id == task_id and t.state == STOPPED), None)


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    h = HARNESSES[request.param](tmp_path)
    yield h


@pytest.fixture
async def backends(harness: Harness) -> AsyncIterator[Callable[[], Backend]]:
    """Makes backends; every one is closed with its tasks stopped at the end, crashed ones too."""
    made: list[Backend] = []

    def make() -> Backend:
        b = harness.backend()
        made.append(b)
        return b

    yield make
    for b in reversed(made):
        await b.close(stop_tasks=True)


def all_backends(f: Callable[..., Any]) -> Any:
    return pytest.mark.parametrize("harness", list(HARNESSES), indirect=True)(f)


def real_backends(f: Callable[..., Any]) -> Any:
    return pytest.mark.parametrize("harness", REAL, indirect=True)(f)


async def _get(task: Task, path: str = "/") -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"http://{task.host}:{task.port}{path}") as r:
        return r.status, dict(r.headers), await r.json()


# -- starting -----------------------------------------------------------------------


@all_backends
async def test_start_runs_the_task_with_its_environment(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    definition = TaskDefinition("2", ENV_THEN_SERVE, env={"GREETING": "hello", "PORT": "1"})
    task = await backend.start_task(SERVICE, definition, "green", "d-1", {"SHIFTLAB_TARGET_GROUP": "green"})

    assert task.state == RUNNING
    assert (task.revision, task.colour, task.service, task.deployment_id) == ("2", "green", SERVICE, "d-1")
    assert task.started_at is not None and task.stopped_at is None
    assert seen.states(task.task_id)[-1] == RUNNING
    env = await harness.env_seen(backend, task)
    assert env["GREETING"] == "hello"
    assert env["SHIFTLAB_TARGET_GROUP"] == "green"
    assert (env["SHIFTLAB_TASK_ID"], env["SHIFTLAB_REVISION"], env["SHIFTLAB_COLOUR"], env["SHIFTLAB_SERVICE"]) == (
        task.task_id, "2", "green", SERVICE)
    # The backend's port wins over the definition's: the target group looks there.
    assert env["PORT"] == str(harness.port_inside(task, definition))
    assert [t.task_id for t in await backend.tasks(SERVICE)] == [task.task_id]
    assert await backend.tasks("other") == []


@real_backends
async def test_a_started_task_answers_http_on_its_port(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    task = await backend.start_task(SERVICE, TaskDefinition("3", SAMPLE), "blue", None,
                                    {"SHIFTLAB_TARGET_GROUP": "blue"})
    status, headers, doc = await _get(task, "/hello")
    assert status == 200
    assert doc["revision"] == "3" and doc["colour"] == "blue" and doc["targetGroup"] == "blue"
    assert doc["task"] == task.task_id and doc["path"] == "/hello"
    assert headers["X-Shiftlab-Revision"] == "3"
    assert "listening on" in await backend.logs(task.task_id)


@all_backends
async def test_logs_are_captured_and_tailed(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    task = await harness.start_exiting(backend, 0)
    if harness.real:
        await eventually(lambda: _line_starting(backend, task, "bye"), what="the task's output")
    else:
        assert isinstance(backend, FakeBackend)
        backend.log(task.task_id, "bye")
    everything = await backend.logs(task.task_id)
    assert everything.endswith("bye\n")
    assert await backend.logs(task.task_id, tail=1) == "bye\n"
    with pytest.raises(UnknownTask):
        await backend.logs("f" * 32)


@all_backends
async def test_a_command_that_exits_at_once_is_stopped_with_its_exit_code(
        harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    task = await harness.start_exiting(backend, 3)
    assert task.state == STOPPED
    assert task.exit_code == 3
    assert task.stopped_reason == REASON_EXITED
    assert task.stop_code == ESSENTIAL_CONTAINER_EXITED
    assert task.stopped_at is not None
    told = seen.stopped(task.task_id)
    assert told is not None and told.exit_code == 3
    assert RUNNING not in seen.states(task.task_id)
    assert [t.state for t in await backend.tasks()] == [STOPPED]


@all_backends
async def test_a_command_that_never_listens_fails_after_the_start_timeout(
        harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    task = await harness.start_never_listening(backend)
    assert task.state == STOPPED
    assert task.stop_code == TASK_FAILED_TO_START
    assert task.stopped_reason is not None and "nothing listening" in task.stopped_reason
    assert seen.stopped(task.task_id) is not None
    if harness.real:
        assert await harness.gone(backend, task)


# -- stopping -------------------------------------------------------------------------


@all_backends
async def test_stop_kills_what_ignores_sigterm_and_its_children(
        harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    task = await harness.start_stubborn(backend)
    assert task.state == RUNNING
    stopped = await backend.stop_task(task.task_id, 0.3)
    assert stopped.state == STOPPED
    assert stopped.exit_code == 128 + signal.SIGKILL
    assert stopped.stop_code == USER_INITIATED
    assert await eventually(lambda: harness.gone(backend, task), timeout=5, what="the task and its child to be gone")
    assert seen.states(task.task_id)[-1] == STOPPED
    # Idempotent: a second stop changes nothing and tells nobody.
    told = len(seen.seen)
    again = await backend.stop_task(task.task_id, 0.3)
    assert (again.state, again.exit_code, again.stopped_at) == (STOPPED, stopped.exit_code, stopped.stopped_at)
    assert len(seen.seen) == told


@real_backends
async def test_stop_lets_a_well_behaved_task_exit_cleanly(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    task = await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    a, b = await asyncio.gather(backend.stop_task(task.task_id, 5), backend.stop_task(task.task_id, 5))
    assert a.exit_code == b.exit_code == 0  # the sample service handles SIGTERM
    assert await harness.gone(backend, task)


@all_backends
async def test_a_task_killed_from_outside_is_noticed(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    task = await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "green", "d-1", {})
    assert task.state == RUNNING
    harness.kill_from_outside(backend, task)
    told = await eventually(lambda: seen.stopped(task.task_id), timeout=3, what="the subscriber to hear of the exit")
    assert told.exit_code == 128 + signal.SIGKILL
    assert told.stopped_reason == REASON_EXITED and told.stop_code == ESSENTIAL_CONTAINER_EXITED
    [listed] = await backend.tasks(SERVICE)
    assert listed.state == STOPPED and listed.exit_code == told.exit_code


@all_backends
async def test_unknown_tasks_are_refused(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    with pytest.raises(UnknownTask):
        await backend.stop_task("0" * 32, 1.0)


@all_backends
async def test_snapshots_do_not_change_under_the_caller(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    task = await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    await backend.stop_task(task.task_id, 5)
    assert task.state == RUNNING  # the driver compares its old view with the new one


@all_backends
async def test_close_with_stop_tasks_leaves_nothing_running(harness: Harness, backends: Callable[[], Backend]) -> None:
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    tasks = [await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {}) for _ in range(2)]
    tasks.append(await harness.start_stubborn(backend))
    assert [t.state for t in tasks] == [RUNNING] * 3
    await backend.close(stop_tasks=True)

    async def all_gone() -> bool:
        return all([await harness.gone(backend, t) for t in tasks])

    assert await eventually(all_gone, timeout=15, what="every task to be gone")
    assert all(seen.stopped(t.task_id) is not None for t in tasks)


# -- the lifecycle -----------------------------------------------------------------------


@all_backends
async def test_a_task_only_moves_forward_and_a_stopped_one_never_comes_back(
        harness: Harness, backends: Callable[[], Backend]) -> None:
    """What subscribers hear of each task only moves forward (PROVISIONING,
    PENDING, RUNNING, STOPPING, STOPPED) and ends at STOPPED, whichever way
    it stopped: an exit at once, a start that never listens, a stop, a kill
    from outside. Stopped, it stays so: in the backend's view, and for a
    new backend adopting after a crash."""
    backend = backends()
    seen = Recorder()
    backend.subscribe(seen)
    exited = await harness.start_exiting(backend, 1)
    never = await harness.start_never_listening(backend)
    stopped = await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    await backend.stop_task(stopped.task_id, 5)
    killed = await backend.start_task(SERVICE, TaskDefinition("1", SAMPLE), "green", "d-1", {})
    harness.kill_from_outside(backend, killed)
    await eventually(lambda: seen.stopped(killed.task_id), timeout=5, what="the kill to be heard")

    for task in (exited, never, stopped, killed):
        states = seen.states(task.task_id)
        assert states[-1] == STOPPED, states
        assert [ORDER[s] for s in states] == sorted({ORDER[s] for s in states}), states
    assert [t.state for t in await backend.tasks(SERVICE)] == [STOPPED] * 4
    told = len(seen.seen)
    assert (await backend.stop_task(killed.task_id, 1)).state == STOPPED
    assert len(seen.seen) == told
    await harness.crash(backend)
    assert await backends().adopt(SERVICE) == []


# -- adoption after a controller crash ----------------------------------------------------


@all_backends
async def test_a_new_backend_adopts_running_tasks_and_reports_dead_ones(
        harness: Harness, backends: Callable[[], Backend]) -> None:
    first = backends()
    survivor = await first.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    victim = await first.start_task(SERVICE, TaskDefinition("2", SAMPLE), "green", "d-1", {})
    other = await first.start_task("other", TaskDefinition("1", SAMPLE), "blue", None, {})
    stopped_before = await first.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    await first.stop_task(stopped_before.task_id, 5)
    await harness.crash(first)
    harness.die_unwatched(victim)
    if harness.real:
        await eventually(lambda: harness.gone(first, victim), what="the victim to die")

    second = backends()
    seen = Recorder()
    second.subscribe(seen)
    adopted = {t.task_id: t for t in await second.adopt(SERVICE)}
    assert set(adopted) == {survivor.task_id, victim.task_id}  # not the other service's, not the stopped one
    alive = adopted[survivor.task_id]
    assert (alive.state, alive.port, alive.revision, alive.colour) == (RUNNING, survivor.port, "1", "blue")
    dead = adopted[victim.task_id]
    assert dead.state == STOPPED and dead.stopped_reason is not None
    assert dead.stopped_reason.startswith(REASON_EXITED)
    assert (dead.revision, dead.deployment_id) == ("2", "d-1")
    # Never duplicated: adopting again gives the same tasks, and tasks() lists each once.
    assert {t.task_id for t in await second.adopt(SERVICE)} == set(adopted)
    assert sorted(t.task_id for t in await second.tasks(SERVICE)) == sorted(adopted)
    if harness.real:
        status, _, doc = await _get(alive)
        assert status == 200 and doc["task"] == survivor.task_id

    # Adopted tasks are watched again, and can be stopped by the new backend.
    harness.kill_from_outside(second, alive)
    told = await eventually(lambda: seen.stopped(survivor.task_id), timeout=3, what="the adopted task's exit")
    assert told.stopped_reason == REASON_EXITED
    assert (await second.stop_task(survivor.task_id, 1)).state == STOPPED
    assert await harness.gone(second, other) is False  # the other service was not touched


@all_backends
async def test_close_without_stopping_leaves_tasks_to_adopt(harness: Harness, backends: Callable[[], Backend]) -> None:
    first = backends()
    task = await first.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    await first.close(stop_tasks=False)
    assert not await harness.gone(first, task)
    second = backends()
    [adopted] = await second.adopt(SERVICE)
    assert (adopted.task_id, adopted.state) == (task.task_id, RUNNING)
    stopped = await second.stop_task(task.task_id, 5)
    assert stopped.state == STOPPED and stopped.stop_code == USER_INITIATED
    assert await eventually(lambda: harness.gone(second, task), what="the adopted task to be gone")


# -- process backend only: a real crash, PID reuse, bad commands ---------------------------------


CRASHING_CONTROLLER = """
import asyncio, json, sys
from pathlib import Path
from shiftlab.controller.backends.base import TaskDefinition
from shiftlab.controller.backends.process import ProcessBackend

async def main():
    backend = ProcessBackend(Path(sys.argv[1]), start_timeout=20)
    sample = ("{python}", "-m", "shiftlab.sample_service")
    tasks = [await backend.start_task("web", TaskDefinition("1", sample), "blue", None, {}) for _ in range(2)]
    print(json.dumps([[t.task_id, t.pid, t.port] for t in tasks]), flush=True)
    await asyncio.sleep(600)  # until killed

asyncio.run(main())
"""


async def test_adopt_after_a_real_controller_crash(tmp_path: Path) -> None:
    """The controller process is SIGKILLed: its tasks, no longer anybody's
    children here, are adopted, watched by polling, and stopped."""
    state = tmp_path / "state"
    controller = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_CONTROLLER, str(state),
                                                      stdout=asyncio.subprocess.PIPE, cwd=REPO)
    pids: list[int] = []
    backend = ProcessBackend(state, start_timeout=5, adopted_poll=0.05)
    try:
        assert controller.stdout is not None
        started = json.loads(await asyncio.wait_for(controller.stdout.readline(), 30))
        pids = [pid for _, pid, _ in started]
        controller.kill()
        await controller.wait()

        seen = Recorder()
        backend.subscribe(seen)
        adopted = {t.task_id: t for t in await backend.adopt(SERVICE)}
        assert {i: (t.state, t.pid, t.port) for i, t in adopted.items()} == {
            i: (RUNNING, pid, port) for i, pid, port in started}
        first, second = started
        os.kill(first[1], signal.SIGKILL)  # noticed by polling: it is not our child
        told = await eventually(lambda: seen.stopped(first[0]), timeout=3, what="the adopted task's exit")
        assert told.exit_code is None  # whoever reaped it got the status, not us
        stopped = await backend.stop_task(second[0], 5)
        assert stopped.state == STOPPED and stopped.stop_code == USER_INITIATED
        assert not procinfo.is_alive(second[1], None)
    finally:
        if controller.returncode is None:
            controller.kill()
            await controller.wait()
        await backend.close(stop_tasks=True)
        for pid in pids:
            procinfo.signal_group(pid, signal.SIGKILL)


async def test_a_reused_pid_is_not_adopted_nor_signalled(tmp_path: Path) -> None:
    """A registry row whose pid now belongs to another process (here: this
    test's own process, created at another time) is reported STOPPED, and
    that process is left alone."""
    state = tmp_path / "state"
    first = ProcessBackend(state, start_timeout=5)
    task = await first.start_task(SERVICE, TaskDefinition("1", SAMPLE), "blue", None, {})
    await first.close(stop_tasks=False)
    real_pid = task.pid
    assert real_pid is not None
    try:
        import sqlite3

        with sqlite3.connect(state / "process-tasks.sqlite") as db:
            db.execute("UPDATE tasks SET pid = ? WHERE task_id = ?", (os.getpid(), task.task_id))
        second = ProcessBackend(state, start_timeout=5)
        [seen] = await second.adopt(SERVICE)
        assert seen.state == STOPPED
        await second.close(stop_tasks=True)
    finally:
        procinfo.signal_group(real_pid, signal.SIGKILL)
    assert procinfo.is_alive(os.getpid(), None)


@pytest.mark.parametrize("command", [(), ("/nonexistent/shiftlab-task",)])
async def test_a_bad_command_is_reported_not_raised(tmp_path: Path, command: tuple[str, ...]) -> None:
    backend = ProcessBackend(tmp_path, start_timeout=5)
    seen = Recorder()
    backend.subscribe(seen)
    try:
        task = await backend.start_task(SERVICE, TaskDefinition("1", command), "green", "d-1", {})
        assert task.state == STOPPED and task.stop_code == TASK_FAILED_TO_START
        assert task.stopped_reason is not None and task.stopped_reason.startswith("CannotStartContainerError")
        assert seen.stopped(task.task_id) is not None
        assert (await backend.stop_task(task.task_id, 1)).state == STOPPED
    finally:
        await backend.close(stop_tasks=True)


async def test_logs_refuse_ids_that_are_not_task_ids(tmp_path: Path) -> None:
    backend = ProcessBackend(tmp_path)
    (tmp_path / "secret.log").write_text("no")
    try:
        for bad in ("../secret", "../../etc/passwd", ""):
            with pytest.raises(UnknownTask):
                await backend.logs(bad)
    finally:
        await backend.close(stop_tasks=True)


async def test_a_cancelled_start_leaves_no_process(tmp_path: Path) -> None:
    backend = ProcessBackend(tmp_path, start_timeout=30)
    cmd = ("{python}", "-c", "import time; time.sleep(600)")
    try:
        starting = asyncio.create_task(backend.start_task(SERVICE, TaskDefinition("1", cmd), "green", None, {}))
        await eventually(lambda: _spawned(backend), what="the task to be spawned")
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        [task] = await eventually(lambda: _stopped_tasks(backend), timeout=5, what="the cancelled task to stop")
        assert task.pid is not None and not procinfo.is_alive(task.pid, None)
    finally:
        await backend.close(stop_tasks=True)


async def _spawned(backend: Backend) -> bool:
    return any(t.pid is not None for t in await backend.tasks())


async def _stopped_tasks(backend: Backend) -> list[Task]:
    tasks = await backend.tasks()
    return tasks if tasks and all(t.state == STOPPED for t in tasks) else []


def test_create_time_tells_processes_apart() -> None:
    me = procinfo.create_time(os.getpid())
    assert me is not None and me == procinfo.create_time(os.getpid())
    assert procinfo.is_alive(os.getpid(), me)
    assert not procinfo.is_alive(os.getpid(), me + "0")
    cmd = procinfo.cmdline(os.getpid())
    assert cmd and "python" in os.path.basename(cmd[0])
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(done.stdout)
    assert not procinfo.is_alive(gone, None) and procinfo.cmdline(gone) is None
