"""FakeBackend: the Backend contract in memory, for unit tests of the
controller's driver. Tasks "run" the moment they start, at made-up
addresses (nothing listens there); a test decides which starts fail
(`fail_next_starts`) and when a running task exits (`exit_task`).

`adopt` models a controller restart the same way ProcessBackend does: a
new FakeBackend built over the same `FakeWorld` sees the tasks the old one
left, and the ones the test marked dead in between come back STOPPED.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shiftlab.controller.backends.base import (
    ESSENTIAL_CONTAINER_EXITED,
    REASON_EXITED,
    REASON_USER,
    RUNNING,
    STOPPED,
    TASK_FAILED_TO_START,
    USER_INITIATED,
    Task,
    TaskDefinition,
    UnknownTask,
)

FAKE_HOST = "192.0.2.1"  # TEST-NET-1: an address nothing answers on


@dataclass
class FakeWorld:
    """What outlives one backend object: the "machine" its tasks run on."""

    tasks: dict[str, Task] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    ignores_sigterm: set[str] = field(default_factory=set)
    unnoticed: set[str] = field(default_factory=set)  # died while no backend watched
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ports: itertools.count[int] = field(default_factory=lambda: itertools.count(20000))

    def kill(self, task_id: str, exit_code: int | None = 137) -> None:
        """The task dies while no controller watches (between a crash and `adopt`)."""
        task = self.tasks[task_id]
        if task.state != STOPPED:
            task.state = STOPPED
            task.exit_code = exit_code
            task.stop_code = ESSENTIAL_CONTAINER_EXITED
            task.stopped_reason = REASON_EXITED + " (while no controller watched it)"
            self.unnoticed.add(task_id)


@dataclass
class _Failure:
    reason: str
    exit_code: int | None
    stop_code: str


class FakeBackend:
    def __init__(self, world: FakeWorld | None = None, clock: Callable[[], float] = time.time) -> None:
        self.world = world or FakeWorld()
        self._clock = clock
        self._mine: set[str] = set()
        self._subscribers: list[Callable[[Task], None]] = []
        self._failures: list[_Failure] = []
        self.stop_calls: list[tuple[str, float]] = []
        self.closed = False
        self._gate: asyncio.Event | None = None
        self.starts_waiting = 0

    # -- test controls -------------------------------------------------------------

    def fail_next_starts(self, count: int = 1, reason: str = REASON_EXITED, exit_code: int | None = 1,
                         stop_code: str = ESSENTIAL_CONTAINER_EXITED) -> None:
        """The next `count` starts report STOPPED: by default as a command that exits at once;
        stop_code=TaskFailedToStart (and its reason) for one that never listens."""
        self._failures.extend(_Failure(reason, exit_code, stop_code) for _ in range(count))

    def hold_starts(self) -> asyncio.Event:
        """Starts wait until the returned event is set: a slow start (a
        container takes a second), for races with whatever happens meanwhile."""
        self._gate = asyncio.Event()
        return self._gate

    def exit_task(self, task_id: str, exit_code: int = 1, reason: str = REASON_EXITED) -> Task:
        """A running task exits on its own; subscribers hear of it."""
        task = self._task(task_id)
        if task.state != STOPPED:
            self._stopped(task, exit_code, ESSENTIAL_CONTAINER_EXITED, reason)
        return task.snapshot()

    def ignore_sigterm(self, task_id: str) -> None:
        """Make `stop_task` end this task by SIGKILL (exit code 137)."""
        self.world.ignores_sigterm.add(task_id)

    def log(self, task_id: str, line: str) -> None:
        self.world.logs.setdefault(task_id, []).append(line)

    def env_of(self, task_id: str) -> dict[str, str]:
        return dict(self.world.env[task_id])

    # -- the protocol ----------------------------------------------------------------

    async def start_task(self, service: str, definition: TaskDefinition, colour: str, deployment_id: str | None,
                         env: Mapping[str, str]) -> Task:
        if self._gate is not None:
            self.starts_waiting += 1
            try:
                await self._gate.wait()
            finally:
                self.starts_waiting -= 1
        task_id = f"{next(self.world.ids):032x}"
        task = Task(task_id, definition.revision, colour, service, deployment_id, FAKE_HOST, next(self.world.ports),
                    RUNNING, started_at=self._clock())
        self.world.tasks[task_id] = task
        self._mine.add(task_id)
        self.world.env[task_id] = {**definition.env, **env, "SHIFTLAB_TASK_ID": task_id,
                                   "SHIFTLAB_REVISION": definition.revision, "SHIFTLAB_COLOUR": colour,
                                   "SHIFTLAB_SERVICE": service, "PORT": str(task.port)}
        self.world.logs.setdefault(task_id, []).append(f"started {' '.join(definition.command)}")
        if not definition.command and not definition.image:
            self._stopped(task, None, TASK_FAILED_TO_START,
                          "CannotStartContainerError: the task definition has no command")
        elif self._failures:
            failure = self._failures.pop(0)
            self._stopped(task, failure.exit_code, failure.stop_code, failure.reason)
        else:
            self._notify(task)
        return task.snapshot()

    async def stop_task(self, task_id: str, timeout: float) -> Task:
        task = self._task(task_id)
        self.stop_calls.append((task_id, timeout))
        if task.state != STOPPED:
            code = 137 if task_id in self.world.ignores_sigterm else 143
            self._stopped(task, code, USER_INITIATED, REASON_USER)
        return task.snapshot()

    async def tasks(self, service: str | None = None) -> list[Task]:
        return [self.world.tasks[i].snapshot() for i in sorted(self._mine)
                if service is None or self.world.tasks[i].service == service]

    def subscribe(self, callback: Callable[[Task], None]) -> None:
        self._subscribers.append(callback)

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        self._task(task_id)
        lines = self.world.logs.get(task_id, [])
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return "".join(line + "\n" for line in lines)

    async def adopt(self, service: str) -> list[Task]:
        for task in self.world.tasks.values():
            if task.service == service and task.task_id not in self._mine and (
                    task.state != STOPPED or task.task_id in self.world.unnoticed):
                # Left running by a previous backend, or died while nobody watched: ours now.
                self.world.unnoticed.discard(task.task_id)
                self._mine.add(task.task_id)
        return await self.tasks(service)

    async def close(self, stop_tasks: bool) -> None:
        if stop_tasks:
            for task_id in sorted(self._mine):
                await self.stop_task(task_id, 0.0)
        self.closed = True
        self._subscribers.clear()

    # -- helpers ------------------------------------------------------------------------

    def _task(self, task_id: str) -> Task:
        if task_id not in self._mine:
            raise UnknownTask(task_id)
        return self.world.tasks[task_id]

    def _stopped(self, task: Task, exit_code: int | None, stop_code: str, reason: str) -> None:
        task.state = STOPPED
        task.stopped_at = self._clock()
        task.exit_code = exit_code
        task.stop_code = stop_code
        task.stopped_reason = reason
        self._notify(task)

    def _notify(self, task: Task) -> None:
        if self.closed:
            return
        snapshot = task.snapshot()
        for cb in list(self._subscribers):
            cb(snapshot)
