"""ProcessBackend: task sets as local processes, the embedded default that
needs nothing but Python.

Each task is a subprocess in a session (and process group) of its own, so
that stopping it reaches everything it started, as stopping a container
does. It gets a free loopback port in env PORT and counts as RUNNING once
that port accepts a TCP connection. A watcher per task notices an exit at
once (the child's wait(); for a process adopted from a crashed controller,
which is not our child, a short poll of its pid and creation time) and
tells the subscribers, in ECS's words.

Tasks that have not stopped are kept in a registry under `state_dir`, so a
restarted controller adopts what it left instead of starting it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftlab.common.ports import free_port
from shiftlab.controller.backends import procinfo
from shiftlab.controller.backends.base import (
    PENDING,
    PROVISIONING,
    REASON_USER,
    RUNNING,
    STOPPED,
    STOPPING,
    TASK_FAILED_TO_START,
    USER_INITIATED,
    Task,
    TaskDefinition,
    UnknownTask,
    notify,
)
from shiftlab.controller.backends.lifecycle import Lifecycle, exit_code_of
from shiftlab.controller.backends.registry import Registry, Row
from shiftlab.controller.backends.tasklogs import is_task_id, log_path, read_tail

log = logging.getLogger("shiftlab.controller")

LOOPBACK = "127.0.0.1"
ADOPTED_POLL_SECONDS = 0.2
READY_POLL_SECONDS = 0.05
KILL_WAIT_SECONDS = 10.0  # after SIGKILL; only a process stuck in the kernel takes longer


@dataclass
class _Entry:
    task: Task
    log_path: Path
    stop_timeout: float
    created: str | None = None
    proc: asyncio.subprocess.Process | None = None  # None for adopted tasks (not our children)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None
    stopper: asyncio.Task[None] | None = None
    life: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.life = Lifecycle(self.task)


class ProcessBackend:
    # A task's output is a file that grows while it runs (controller.appmetrics reads EMF from it).
    live_output = True

    def __init__(self, state_dir: Path, start_timeout: float = 30.0,
                 adopted_poll: float = ADOPTED_POLL_SECONDS) -> None:
        self.state_dir = Path(state_dir)
        self.logs_dir = self.state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.adopted_poll = adopted_poll
        self._registry = Registry(self.state_dir / "process-tasks.sqlite")
        self._entries: dict[str, _Entry] = {}
        self._subscribers: list[Callable[[Task], None]] = []
        self._closed = False

    # -- the protocol ------------------------------------------------------------

    async def start_task(self, service: str, definition: TaskDefinition, colour: str, deployment_id: str | None,
                         env: Mapping[str, str]) -> Task:
        task_id = uuid.uuid4().hex
        task = Task(task_id, definition.revision, colour, service, deployment_id, LOOPBACK, self._free_port(),
                    PROVISIONING)
        entry = _Entry(task, self._log_path(task_id), definition.stop_timeout)
        self._entries[task_id] = entry
        argv = definition.argv()
        if not argv:
            return self._failed_to_start(entry, "CannotStartContainerError: the task definition has no command")
        child_env = {
            **os.environ,
            "HOST": LOOPBACK,
            "PYTHONUNBUFFERED": "1",  # so that `logs` shows what a Python task printed
            **definition.env,
            **env,
            # Last, so that nothing can make the task listen where the target group does not look.
            "PORT": str(task.port),
            "SHIFTLAB_TASK_ID": task_id,
            "SHIFTLAB_REVISION": definition.revision,
            "SHIFTLAB_COLOUR": colour,
            "SHIFTLAB_SERVICE": service,
        }
        out = os.open(entry.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env=child_env, start_new_session=True,
            )
        except OSError as exc:
            reason = f"CannotStartContainerError: {argv[0]}: {exc.strerror or exc}"
            os.write(out, (reason + "\n").encode())
            return self._failed_to_start(entry, reason)
        finally:
            os.close(out)
        entry.proc = proc
        entry.created = procinfo.create_time(proc.pid)
        task.pid = proc.pid
        task.started_at = time.time()
        self._registry.put(self._row(entry, procinfo.cmdline(proc.pid) or argv))
        self._move(entry, PENDING)
        entry.watcher = asyncio.create_task(self._watch_child(entry, proc))
        try:
            ready = await self._wait_listening(entry, self.start_timeout)
        except asyncio.CancelledError:
            # Nobody will ever learn this task's id: it must not outlive the call.
            procinfo.signal_group(proc.pid, signal.SIGKILL)
            raise
        if ready:
            self._move(entry, RUNNING)  # refused if it exited, or a stop was asked for, meanwhile
        elif not entry.exited.is_set():
            await self._stop(entry, definition.stop_timeout, TASK_FAILED_TO_START,
                             f"Task failed to start: nothing listening on {task.host}:{task.port} "
                             f"after {self.start_timeout:g} s")
        if entry.stopper is not None:
            await asyncio.shield(entry.stopper)  # stopped while it started: return it STOPPED, as promised
        return task.snapshot()

    async def stop_task(self, task_id: str, timeout: float) -> Task:
        entry = self._entry(task_id)
        if entry.task.state != STOPPED:
            if entry.stopper is None:
                entry.stopper = asyncio.create_task(self._stop(entry, timeout, USER_INITIATED, REASON_USER))
            await asyncio.shield(entry.stopper)
        return entry.task.snapshot()

    async def tasks(self, service: str | None = None) -> list[Task]:
        return [e.task.snapshot() for e in self._entries.values() if service is None or e.task.service == service]

    def subscribe(self, callback: Callable[[Task], None]) -> None:
        self._subscribers.append(callback)

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        # The id may come from an API caller: it names a file, so it must look like one of ours.
        if task_id not in self._entries and not is_task_id(task_id):
            raise UnknownTask(task_id)
        path = self._log_path(task_id)
        if not path.exists():
            if task_id in self._entries:
                return ""
            raise UnknownTask(task_id)
        return await asyncio.to_thread(read_tail, path, tail)

    async def adopt(self, service: str) -> list[Task]:
        for row in self._registry.rows(service):
            if row.task_id in self._entries:
                continue
            # Whatever a task that was not RUNNING was doing when its controller died, it is checked
            # again as a start is (as the docker backend does every adopted task).
            state = RUNNING if row.state == RUNNING else PENDING
            task = Task(row.task_id, row.revision, row.colour, row.service, row.deployment_id, row.host, row.port,
                        state, started_at=row.started_at, pid=row.pid)
            entry = _Entry(task, self._log_path(row.task_id), row.stop_timeout, created=row.created)
            self._entries[row.task_id] = entry
            if not self._same_process(row):
                if not procinfo.is_alive(row.pid, None) and procinfo.group_members(row.pid):
                    # The task's main process died unwatched, but what it started still runs in its
                    # group (a pid in use as a group id is never handed out again, so it is ours).
                    procinfo.signal_group(row.pid, signal.SIGKILL)
                self._exited(entry, None, detail=" (while no controller watched it)", kill_group=False)
            else:
                entry.watcher = asyncio.create_task(self._watch_adopted(entry))
                if row.state != RUNNING:
                    # Its controller died while it was starting: finish the check it never finished.
                    if await self._wait_listening(entry, self.start_timeout):
                        self._move(entry, RUNNING)
                    elif not entry.exited.is_set():
                        await self._stop(entry, row.stop_timeout, TASK_FAILED_TO_START,
                                         f"Task failed to start: nothing listening on {row.host}:{row.port}")
        return await self.tasks(service)

    def usage_sampler(self) -> Any:
        """Task CPU and memory from each task's process tree (controller.usage)."""
        from shiftlab.controller.usage import ProcessUsageSampler

        return ProcessUsageSampler()

    async def close(self, stop_tasks: bool) -> None:
        if stop_tasks:
            live = [e for e in self._entries.values() if e.task.state != STOPPED]
            await asyncio.gather(*[self.stop_task(e.task.task_id, e.stop_timeout) for e in live])
        self._closed = True
        watchers = [e.watcher for e in self._entries.values() if e.watcher is not None and not e.watcher.done()]
        for w in watchers:
            w.cancel()
        for w in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        self._registry.close()

    # -- watching ------------------------------------------------------------------

    async def _watch_child(self, entry: _Entry, proc: asyncio.subprocess.Process) -> None:
        self._exited(entry, exit_code_of(await proc.wait()))

    async def _watch_adopted(self, entry: _Entry) -> None:
        pid = entry.task.pid
        assert pid is not None
        while True:
            await asyncio.sleep(self.adopted_poll)
            if not procinfo.is_alive(pid, entry.created):
                break
        self._exited(entry, None)  # not our child: its exit status went to whoever reaped it

    async def _wait_listening(self, entry: _Entry, timeout: float) -> bool:
        """Poll the port until it accepts a connection; give up at once if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not entry.exited.is_set():
            if await _accepts(entry.task.host, entry.task.port):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.exited.wait(), min(READY_POLL_SECONDS, remaining))
        return False

    async def _stop(self, entry: _Entry, timeout: float, stop_code: str, reason: str) -> None:
        pid = entry.task.pid
        entry.life.ask_stop(stop_code, reason)
        if entry.life.stopped or pid is None:
            return
        self._move(entry, STOPPING)
        procinfo.signal_group(pid, signal.SIGTERM)
        if await self._wait_exited(entry, timeout):
            return
        procinfo.signal_group(pid, signal.SIGKILL)
        if not await self._wait_exited(entry, KILL_WAIT_SECONDS):
            log.warning("task %s (pid %s) still runs %g s after SIGKILL", entry.task.task_id, pid, KILL_WAIT_SECONDS)

    async def _wait_exited(self, entry: _Entry, timeout: float) -> bool:
        if entry.watcher is None or entry.watcher.done():
            # Nobody watches (the backend was closed without stopping): ask the OS directly.
            pid = entry.task.pid
            assert pid is not None
            deadline = time.monotonic() + timeout
            while procinfo.is_alive(pid, entry.created):
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(READY_POLL_SECONDS)
            self._exited(entry, None)
            return True
        try:
            await asyncio.wait_for(entry.exited.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    # -- state changes -----------------------------------------------------------------

    def _exited(self, entry: _Entry, exit_code: int | None, detail: str = "", kill_group: bool = True) -> None:
        task = entry.task
        if entry.life.stopped:
            return
        if kill_group and task.pid is not None:
            # What the task started dies with it, as in a container whose main process ended.
            procinfo.signal_group(task.pid, signal.SIGKILL)
        entry.life.exited(exit_code, time.time(), detail=detail)
        self._changed(entry)

    def _failed_to_start(self, entry: _Entry, reason: str) -> Task:
        if entry.life.failed_to_start(reason, time.time()):
            self._changed(entry)
        return entry.task.snapshot()

    def _move(self, entry: _Entry, state: str) -> None:
        if entry.life.move(state):
            self._changed(entry)

    def _changed(self, entry: _Entry) -> None:
        """The lifecycle moved the task: wake who waits for its exit, keep the registry, tell the subscribers."""
        task = entry.task
        if task.state == STOPPED:
            entry.exited.set()
        if self._closed:
            return
        if task.state == STOPPED:
            self._registry.remove(task.task_id)
        elif task.pid is not None:
            self._registry.set_state(task.task_id, task.state)
        notify(self._subscribers, task)

    # -- helpers -----------------------------------------------------------------------

    def _entry(self, task_id: str) -> _Entry:
        try:
            return self._entries[task_id]
        except KeyError:
            raise UnknownTask(task_id) from None

    def _log_path(self, task_id: str) -> Path:
        return log_path(self.logs_dir, task_id)

    def _row(self, entry: _Entry, cmdline: list[str]) -> Row:
        t = entry.task
        assert t.pid is not None
        return Row(t.task_id, t.service, t.revision, t.colour, t.deployment_id, t.host, t.port, t.pid,
                   entry.created, cmdline, t.state, t.started_at, entry.stop_timeout)

    def _same_process(self, row: Row) -> bool:
        """Is the registered task still running as the same process (not a reused pid)?"""
        if row.created is not None:
            # The creation time is enough, and stays true for programs that rewrite their argv.
            return procinfo.is_alive(row.pid, row.created)
        return procinfo.is_alive(row.pid, None) and procinfo.cmdline(row.pid) == row.cmdline

    def _free_port(self) -> int:
        taken = {e.task.port for e in self._entries.values() if e.task.state != STOPPED}
        while True:
            port = free_port()
            if port not in taken:
                return port


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
