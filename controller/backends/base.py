"""The Backend protocol: where task sets run.

ECS starts the tasks of a revision (a task set) and tells the deployment
controller when one stops. A Backend does the same on this machine, as
local processes (ProcessBackend), Docker containers (DockerBackend) or, for
unit tests of the controller, in memory (FakeBackend). One contract test
(tests/controller/test_backend_contract.py) runs against all of them.

Tasks handed out (by `start_task`, `stop_task`, `tasks`, `adopt` and to
subscribers) are snapshots: a backend never gives away the object it
mutates, so a caller can compare an old snapshot with a new one to see what
changed (the driver does: RUNNING before, STOPPED now = an exit).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# ECS lastStatus values a task passes through here (ECS has a few more
# intermediate ones, ACTIVATING and DEPROVISIONING, that mean nothing locally).
PROVISIONING = "PROVISIONING"
PENDING = "PENDING"
RUNNING = "RUNNING"
STOPPING = "STOPPING"
STOPPED = "STOPPED"
STATES = (PROVISIONING, PENDING, RUNNING, STOPPING, STOPPED)

BLUE = "blue"
GREEN = "green"

# ECS stopCode values, so a caller can tell an exit from a stop it asked for.
TASK_FAILED_TO_START = "TaskFailedToStart"
ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"
USER_INITIATED = "UserInitiated"

# ECS's stoppedReason wording where ECS has one.
REASON_EXITED = "Essential container in task exited"
REASON_USER = "Task stopped by user"

PYTHON_PLACEHOLDER = "{python}"


@dataclass(frozen=True)
class TaskDefinition:
    """One revision of what a task runs."""

    revision: str
    command: tuple[str, ...] = ()  # process backend: argv; "{python}" as argv[0] means this interpreter
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None  # docker backend
    container_port: int = 8080  # docker backend
    stop_timeout: float = 10.0  # seconds between SIGTERM and SIGKILL (already scaled by the caller)
    cpu: int | None = None  # ECS CPU units (1024 = one vCPU); applied by the docker backend only
    memory: int | None = None  # MiB; applied by the docker backend only
    # Host names the task resolves to an address (docker backend: --add-host): Service Connect's aliases.
    hosts: Mapping[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        argv = list(self.command)
        if argv and argv[0] == PYTHON_PLACEHOLDER:
            argv[0] = sys.executable
        return argv


@dataclass
class Task:
    task_id: str
    revision: str
    colour: str  # "blue" | "green"
    service: str
    deployment_id: str | None
    host: str  # where the target group reaches the task
    port: int
    state: str  # ECS lastStatus
    started_at: float | None = None  # wall-clock epoch seconds
    stopped_at: float | None = None
    exit_code: int | None = None  # a process killed by signal N reports 128 + N, as a container does
    stopped_reason: str | None = None
    pid: int | None = None  # process backend
    stop_code: str | None = None  # TaskFailedToStart | EssentialContainerExited | UserInitiated

    def snapshot(self) -> Task:
        return dataclasses.replace(self)


class Backend(Protocol):
    async def start_task(self, service: str, definition: TaskDefinition, colour: str, deployment_id: str | None,
                         env: Mapping[str, str]) -> Task:
        """Start one task; return once it is RUNNING (its port accepts TCP) or
        STOPPED (it could not start, exited before listening, or did not
        listen within the start timeout). A bad command is reported as a
        STOPPED task with a reason, never raised."""
        ...

    async def stop_task(self, task_id: str, timeout: float) -> Task:
        """SIGTERM (the whole process group), up to `timeout` seconds, then
        SIGKILL. Idempotent: stopping a stopped task returns it as it is."""
        ...

    async def tasks(self, service: str | None = None) -> list[Task]:
        """The current view, tasks that exited on their own included."""
        ...

    def subscribe(self, callback: Callable[[Task], None]) -> None:
        """`callback` is called (in the event loop) with a snapshot on every state change."""
        ...

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        """The task's stdout and stderr, the last `tail` lines if given."""
        ...

    async def adopt(self, service: str) -> list[Task]:
        """After a controller crash: take over the tasks of `service` that a
        previous backend over the same state left (live ones are watched
        again, ones that died meanwhile are reported STOPPED), and return
        every task of `service` this backend now holds, as `tasks` does.
        Calling it again adopts nothing twice."""
        ...

    async def close(self, stop_tasks: bool) -> None:
        """Stop watching; with `stop_tasks`, stop every task first."""
        ...


class UnknownTask(KeyError):
    """A task id this backend has never seen."""

    def __str__(self) -> str:
        return f"no task {self.args[0]!r}"


def notify(subscribers: list[Callable[[Task], None]], task: Task) -> None:
    """Tell every subscriber of a state change, with a snapshot (so none sees
    later changes). A subscriber that raises is logged; the others still hear."""
    snapshot = task.snapshot()
    for cb in list(subscribers):
        try:
            cb(snapshot)
        except Exception:
            logging.getLogger("shiftlab.controller").exception("task subscriber failed")
