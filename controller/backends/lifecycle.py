"""A task's lifecycle, one for every backend: which lastStatus may follow
which, and what a stopped task says about why (exit code, stopCode,
stoppedReason), in ECS's words.

lastStatus only moves forward: PROVISIONING, PENDING, RUNNING, STOPPING,
STOPPED (skipping is fine: a command that cannot start goes straight from
PROVISIONING to STOPPED). A move back is always a late answer, never news:
a port check that connected just before the task exited, a RUNNING after a
stop was asked for, a PENDING after the die event. It is refused, so
STOPPED is final and a stopped task never comes back.

Pure: the backends do the I/O (signals, the engine, the registry, telling
subscribers) when a call here says the task changed.
"""

from __future__ import annotations

from shiftlab.controller.backends.base import (
    ESSENTIAL_CONTAINER_EXITED,
    REASON_EXITED,
    STATES,
    STOPPED,
    TASK_FAILED_TO_START,
    Task,
)

ORDER = {state: i for i, state in enumerate(STATES)}  # STATES lists them in the order a task passes them

REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"


def can_move(old: str, new: str) -> bool:
    return ORDER[new] > ORDER[old]


def exit_code_of(returncode: int) -> int:
    """A process's return code as a container reports it: killed by signal N, 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def exit_reason(oom: bool = False, detail: str = "") -> str:
    """ECS's stoppedReason for a task whose essential container exited on its own."""
    return REASON_EXITED + (f" ({REASON_OOM})" if oom else "") + detail


class Lifecycle:
    """One task's lastStatus and how it ended. Every change goes through
    here; each method says whether the task changed (the caller then tells
    whoever listens)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.stop_request: tuple[str, str] | None = None  # (stopCode, stoppedReason) of the first stop asked for

    @property
    def stopped(self) -> bool:
        return self.task.state == STOPPED

    def move(self, state: str) -> bool:
        """To PENDING, RUNNING or STOPPING; refused (False) unless it is forward."""
        if state == STOPPED:
            raise ValueError("a task stops through exited() or failed_to_start(), which say why")
        if not can_move(self.task.state, state):
            return False
        self.task.state = state
        return True

    def ask_stop(self, stop_code: str, reason: str) -> None:
        """A stop was asked for: the exit that follows is reported as this stop, not as a crash.
        The first request wins (a user's stop stays a user's stop when a timeout adds its own)."""
        if self.stop_request is None:
            self.stop_request = (stop_code, reason)

    def exited(self, exit_code: int | None, now: float, oom: bool = False, detail: str = "") -> bool:
        """The task's process or container ended (`exit_code` None when
        nobody could know it): STOPPED, as the stop asked for if there was one,
        else as an essential container that exited (`detail` says more)."""
        if self.stopped:
            return False
        stop_code, reason = self.stop_request or (ESSENTIAL_CONTAINER_EXITED, exit_reason(oom, detail))
        self._stop(now, stop_code, reason, exit_code)
        return True

    def failed_to_start(self, reason: str, now: float) -> bool:
        """It never ran (no command, no image, the engine refused): STOPPED with TaskFailedToStart."""
        if self.stopped:
            return False
        self.stop_request = (TASK_FAILED_TO_START, reason)
        self._stop(now, TASK_FAILED_TO_START, reason, None)
        return True

    def _stop(self, now: float, stop_code: str, reason: str, exit_code: int | None) -> None:
        task = self.task
        task.exit_code = exit_code
        task.stopped_at = now
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.state = STOPPED

