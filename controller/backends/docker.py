"""DockerBackend: task sets as local Docker containers, one container a
task: the SDK calls, the engine's event stream, adoption after a crash.
What a container is made of (image, command, environment, ports, labels,
limits) is docker_spec.py; the options are docker_options.py.

A task counts as RUNNING once its container runs, its port accepts a
connection that the other side keeps open (the engine's userland proxy
accepts on a published port even when nothing listens behind it, and hangs
up at once), and, for an image with a HEALTHCHECK, Docker says it is
healthy. An exit (OOM kills included) is heard through the engine's event
stream; a container that turns unhealthy is stopped, as ECS does. A stopped
task's logs are kept under `state_dir/logs` and its container is removed.
While a task runs, its output is followed into that same file (as `docker
logs --follow`, on a thread of its own that ends when the container stops),
so that what reads the file as it grows (the embedded metric format,
controller.emf) sees it live, as with the process backend.

The docker SDK blocks: every call runs on a small thread pool of this
backend's own, and the event stream on a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from shiftlab.common.netsafety import is_loopback
from shiftlab.common.ports import free_port
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
from shiftlab.controller.backends.docker_options import DockerRuntime, resolve
from shiftlab.controller.backends.docker_spec import (
    HOST_NETWORK,
    L_OWNER,
    L_SERVICE,
    L_TASK,
    container_spec,
    found_task,
    has_healthcheck,
    owner_of,
    published_port,
    task_address,
)
from shiftlab.controller.backends.lifecycle import Lifecycle
from shiftlab.controller.backends.tasklogs import is_task_id, log_path, read_tail

log = logging.getLogger("shiftlab.controller")

T = TypeVar("T")

READY_POLL_SECONDS = 0.05
# How long a probe connection must stay open to count: the userland proxy
# hangs up within a millisecond when nothing listens behind it.
PROBE_SETTLE_SECONDS = 0.05
KILL_WAIT_SECONDS = 10.0
API_TIMEOUT_SECONDS = 60.0  # one engine call (a pull has its own stall timeout)
PING_TIMEOUT_SECONDS = 5.0
REASON_UNHEALTHY = "Task failed container health checks"
SCHEDULER_INITIATED = "ServiceSchedulerInitiated"  # ECS's stopCode when it replaces an unhealthy task


class DockerUnavailable(OSError):
    """The Docker engine does not answer (the message says what to do)."""


def unavailable_message(detail: str) -> str:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return (f"the docker backend cannot reach the Docker engine at {host}: {detail}. "
            "Start it (Linux: `sudo systemctl start docker`, or `sudo dockerd &`; macOS/Windows: start Docker "
            "Desktop), or point DOCKER_HOST at a running one; or use the process backend, which needs no "
            "Docker (controller.backend: process, the default, or --backend process).")


# -- the backend ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    task: Task
    container_port: int
    stop_timeout: float
    log_path: Path
    container_id: str | None = None
    healthcheck: bool = False
    health: str | None = None  # Docker's health status, for images with a HEALTHCHECK
    oom: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    health_changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopper: asyncio.Task[None] | None = None
    finisher: asyncio.Task[None] | None = None
    output: _OutputFollower | None = None
    life: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.life = Lifecycle(self.task)


class _OutputFollower:
    """Thread: a running container's output (stdout and stderr, as the engine
    keeps it) appended to its task's log file as it comes, until the engine
    ends the stream (the container stopped) or `close`. Never on the loop;
    memory bounded by the engine's frames (the file grows as a process task's
    output file does; its readers cap their lines)."""

    def __init__(self, client: Callable[[], Any], container_id: str, path: Path) -> None:
        self._client, self.container_id, self.path = client, container_id, path
        self._stream: Any = None
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"shiftlab-docker-output-{path.stem[:8]}")
        self.thread.start()

    def _run(self) -> None:
        try:
            stream = self._client().logs(self.container_id, stdout=True, stderr=True, stream=True, follow=True)
            self._stream = stream
            if self._closed.is_set():
                return
            with open(self.path, "wb") as f:  # the whole output: the stream starts from the container's start
                for chunk in stream:
                    f.write(chunk)
                    f.flush()
        except Exception as exc:
            if not self._closed.is_set():
                log.info("following the output of container %s: %s (its logs are saved when it stops)",
                         self.container_id[:12], _engine_error(exc))
        finally:
            with contextlib.suppress(Exception):
                if self._stream is not None:
                    self._stream.close()

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()


class DockerBackend:
    # A running task's output reaches its log file as it is written (controller.appmetrics reads EMF from it).
    live_output = True

    def __init__(self, state_dir: Path, start_timeout: float = 60.0, options: DockerRuntime | None = None) -> None:
        """`options` as they are; None: the defaults with the SHIFTLAB_DOCKER_* variables over them."""
        self.state_dir = Path(state_dir)
        self.logs_dir = self.state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.options = options if options is not None else resolve()
        self.owner = self.options.owner or owner_of(self.state_dir)
        if self.options.network in (None, HOST_NETWORK) and not is_loopback(self.options.publishAddress):
            log.warning("docker backend: task ports are published on %s, beyond loopback: anyone who can reach "
                        "this machine can reach the tasks", self.options.publishAddress)
        self._pool: ThreadPoolExecutor | None = None
        self._stats_pool: ThreadPoolExecutor | None = None  # the usage sampler's (controller.usage)
        self._client: Any = None
        self._stream_client: Any = None  # without a read timeout: followed output can be quiet for long
        self._stream_client_lock = threading.Lock()
        self._connecting: asyncio.Future[None] | None = None
        self._events_thread: threading.Thread | None = None
        self._events_stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entries: dict[str, _Entry] = {}
        self._subscribers: list[Callable[[Task], None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = threading.Event()
        self._closed = False

    # -- the protocol ------------------------------------------------------------------------------

    async def start_task(self, service: str, definition: TaskDefinition, colour: str, deployment_id: str | None,
                         env: Mapping[str, str]) -> Task:
        opts = self.options
        task_id = uuid.uuid4().hex
        host_port = free_port() if opts.network == HOST_NETWORK else None
        host, port = task_address(opts, service, colour, task_id, definition.container_port, host_port)
        task = Task(task_id, definition.revision, colour, service, deployment_id, host, port, PROVISIONING)
        entry = _Entry(task, definition.container_port, definition.stop_timeout, self._log_path(task_id))
        self._entries[task_id] = entry
        try:
            await self.connect()
        except DockerUnavailable as exc:
            return self._failed_to_start(entry, f"CannotStartContainerError: {exc}")
        image = definition.image or opts.image
        if not image:
            return self._failed_to_start(entry, "CannotStartContainerError: the task definition has no image "
                                                "(the docker backend runs images: set taskDefinition.image, "
                                                "or deploy --image)")
        problem = await self._ensure_image(image)
        if problem:
            return self._failed_to_start(entry, problem)
        spec = container_spec(opts, self.owner, task, definition, env, image, host_port)
        create = asyncio.ensure_future(self._call(partial(self._client.containers.create, **spec)))
        try:
            container = await asyncio.shield(create)
        except asyncio.CancelledError:
            # The engine may still create it: it must not outlive the call that nobody waits for.
            self._spawn(self._remove_once_created(entry, create))
            raise
        except Exception as exc:
            return self._failed_to_start(entry, f"CannotCreateContainerError: {_engine_error(exc)}")
        entry.container_id = container.id
        try:
            await self._call(container.start)
            task.started_at = time.time()
            self._follow_output(entry)
            self._move(entry, PENDING)
            attrs = await self._inspect(entry)
            if attrs is not None:
                self._learn(entry, attrs)
            ready = await self._wait_ready(entry, self.start_timeout)
        except asyncio.CancelledError:
            # Nobody will ever learn this task's id: its container must not outlive the call.
            self._spawn(self._remove(entry))
            raise
        except Exception as exc:
            await self._remove(entry)
            return self._failed_to_start(entry, f"CannotStartContainerError: {_engine_error(exc)}")
        if ready:
            self._move(entry, RUNNING)  # refused if it exited, or a stop was asked for, meanwhile
        elif not entry.exited.is_set():
            what = ("its HEALTHCHECK says unhealthy" if entry.health == "unhealthy" else
                    f"nothing listening on {task.host}:{task.port} after {self.start_timeout:g} s")
            await self._stop(entry, definition.stop_timeout, TASK_FAILED_TO_START, f"Task failed to start: {what}")
        if entry.stopper is not None:
            await asyncio.shield(entry.stopper)  # stopped while it started: return it STOPPED, as promised
        return task.snapshot()

    async def stop_task(self, task_id: str, timeout: float) -> Task:
        entry = self._entry(task_id)
        if entry.task.state != STOPPED:
            if entry.stopper is None:
                entry.stopper = asyncio.create_task(self._stop(entry, timeout, USER_INITIATED, REASON_USER))
            await asyncio.shield(entry.stopper)
        if entry.finisher is not None:
            await asyncio.shield(entry.finisher)  # stopped means removed too
        return entry.task.snapshot()

    async def tasks(self, service: str | None = None) -> list[Task]:
        return [e.task.snapshot() for e in self._entries.values() if service is None or e.task.service == service]

    def subscribe(self, callback: Callable[[Task], None]) -> None:
        self._subscribers.append(callback)

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        # The id may come from an API caller: it names a file, so it must look like one of ours.
        entry = self._entries.get(task_id)
        if entry is None and not is_task_id(task_id):
            raise UnknownTask(task_id)
        if entry is not None and entry.finisher is not None:
            await asyncio.shield(entry.finisher)  # the logs are being saved
        path = self._log_path(task_id)
        if path.exists():
            return await asyncio.to_thread(read_tail, path, tail)
        if entry is None:
            raise UnknownTask(task_id)
        if entry.container_id is None:
            return ""
        try:
            return await self._container_logs(entry.container_id, tail)
        except Exception:
            if path.exists():  # stopped and removed meanwhile, its logs saved by then
                return await asyncio.to_thread(read_tail, path, tail)
            return ""

    async def adopt(self, service: str) -> list[Task]:
        await self.connect()
        found = await self._call(partial(self._client.api.containers, all=True, filters={
            "label": [f"{L_OWNER}={self.owner}", f"{L_SERVICE}={service}"]}))
        for row in found:
            labels = row.get("Labels") or {}
            task_id = labels.get(L_TASK, "")
            if task_id in self._entries or not is_task_id(task_id):
                continue
            attrs = await self._inspect_id(row["Id"])
            if attrs is None:
                continue  # removed meanwhile: nothing to adopt
            entry = self._entry_from(labels, attrs)
            self._entries[task_id] = entry
            status = (attrs.get("State") or {}).get("Status")
            if status in ("running", "restarting", "paused"):
                self._follow_output(entry)
                if not await self._wait_ready(entry, self.start_timeout):
                    if not entry.exited.is_set():
                        await self._stop(entry, entry.stop_timeout, TASK_FAILED_TO_START,
                                         f"Task failed to start: nothing listening on "
                                         f"{entry.task.host}:{entry.task.port}")
                    continue
                self._move(entry, RUNNING)
            elif status == "created":
                # Its controller died between create and start: it never ran.
                entry.life.ask_stop(TASK_FAILED_TO_START, "Task failed to start: its controller stopped first")
                await self._remove(entry)
                self._exited(entry, None)
            else:
                state = attrs.get("State") or {}
                entry.oom = bool(state.get("OOMKilled"))
                self._exited(entry, state.get("ExitCode"), detail=" (while no controller watched it)")
        return await self.tasks(service)

    def usage_sampler(self) -> Any:
        """Task CPU and memory from the engine's stats (controller.usage)."""
        from shiftlab.controller.usage import DockerUsageSampler

        return DockerUsageSampler(self.container_stats)

    async def container_stats(self, task_id: str) -> dict[str, Any] | None:
        """The engine's stats of a task's container, one look (no stream, no
        second sample by the engine), or None when it has no container."""
        entry = self._entries.get(task_id)
        if entry is None or entry.container_id is None or self._client is None:
            return None
        if self._stats_pool is None:
            # Threads of their own, so that 50 tasks' stats never queue ahead of starts and stops.
            self._stats_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shiftlab-docker-stats")
        stats: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            self._stats_pool, partial(self._client.api.stats, entry.container_id, decode=False, stream=False,
                                      one_shot=True))
        return stats

    async def close(self, stop_tasks: bool) -> None:
        """Stop watching (with `stop_tasks`, stop and remove every task first).
        A closed backend can still be closed again with `stop_tasks`."""
        if stop_tasks:
            live = [e for e in self._entries.values() if e.task.state != STOPPED]
            await asyncio.gather(*[self.stop_task(e.task.task_id, e.stop_timeout) for e in live])
        finishers = [e.finisher for e in self._entries.values() if e.finisher is not None]
        if finishers:
            await asyncio.gather(*finishers, return_exceptions=True)
        followers = [e.output for e in self._entries.values() if e.output is not None]
        for follower in followers:
            await asyncio.to_thread(follower.close)
        for follower in followers:
            await asyncio.to_thread(follower.thread.join, 5.0)
        if self._stream_client is not None:
            with contextlib.suppress(Exception):
                self._stream_client.close()
            self._stream_client = None
        self._closed = True
        self._closing.set()
        for t in list(self._background):
            t.cancel()
        for t in list(self._background):
            with contextlib.suppress(BaseException):
                await t
        stream, thread = self._events_stream, self._events_thread
        self._events_stream = self._events_thread = None
        if stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.close)
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()  # its connections; the client itself still works if asked again
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._stats_pool is not None:
            self._stats_pool.shutdown(wait=False, cancel_futures=True)
            self._stats_pool = None

    # -- the engine ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach the engine and start listening to its events (once); DockerUnavailable if it does not answer."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        await asyncio.shield(self._connecting)

    async def _connect(self) -> None:
        import docker

        self._loop = asyncio.get_running_loop()
        try:
            client = await self._call(partial(docker.from_env, timeout=PING_TIMEOUT_SECONDS))
            await self._call(client.ping)
        except Exception as exc:
            self._connecting = None  # the next call tries again
            raise DockerUnavailable(unavailable_message(_engine_error(exc))) from None
        client.api.timeout = API_TIMEOUT_SECONDS
        self._client = client
        connected = threading.Event()
        self._events_thread = threading.Thread(target=self._events_loop, args=(connected,), daemon=True,
                                               name="shiftlab-docker-events")
        self._events_thread.start()
        await asyncio.to_thread(connected.wait, PING_TIMEOUT_SECONDS)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shiftlab-docker")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    def _events_loop(self, connected: threading.Event) -> None:
        """Thread: follow the engine's container events for our labels; reconnect if the stream breaks."""
        import docker

        assert self._loop is not None
        failing = False
        while not self._closing.is_set():
            try:
                client = docker.from_env(timeout=None)  # the stream idles as long as nothing happens
                stream = client.api.events(decode=True, filters={"type": "container",
                                                                 "label": [f"{L_OWNER}={self.owner}"]})
                self._events_stream = stream
                if self._closing.is_set():  # close() may have looked before the line above
                    stream.close()
                    break
                connected.set()
                failing = False
                # Whatever happened while nobody listened is found by looking.
                self._loop.call_soon_threadsafe(self._spawn_resync)
                for event in stream:
                    if self._closing.is_set():
                        break
                    self._loop.call_soon_threadsafe(self._on_event, event)
                client.close()
            except Exception as exc:
                if self._closing.is_set():
                    break
                if not failing:  # once per outage, not once a second
                    log.warning("docker event stream: %s; reconnecting", _engine_error(exc))
                failing = True
            if self._closing.wait(1.0):
                break

    def _spawn_resync(self) -> None:
        if not self._closed:
            self._spawn(self._resync())

    async def _resync(self) -> None:
        for entry in list(self._entries.values()):
            if entry.task.state in (STOPPED, PROVISIONING) or entry.container_id is None:
                continue
            attrs = await self._inspect(entry)
            if attrs is None:
                self._exited(entry, None, detail=" (its container was removed)")
            elif not (attrs.get("State") or {}).get("Running"):
                state = attrs.get("State") or {}
                entry.oom = entry.oom or bool(state.get("OOMKilled"))
                self._exited(entry, state.get("ExitCode"))

    def _on_event(self, event: Mapping[str, Any]) -> None:
        """In the loop: one container event of ours."""
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        entry = self._entries.get(attrs.get(L_TASK, ""))
        if entry is None:
            return
        action = str(event.get("Action") or event.get("status") or "")
        if action == "oom":
            entry.oom = True
        elif action == "die":
            code = attrs.get("exitCode")
            self._spawn(self._died(entry, int(code) if code is not None and code.lstrip("-").isdigit() else None))
        elif action.startswith("health_status:"):
            entry.health = action.partition(":")[2].strip()
            entry.health_changed.set()
            if entry.health == "unhealthy" and entry.task.state == RUNNING and entry.stopper is None:
                entry.stopper = asyncio.create_task(
                    self._stop(entry, entry.stop_timeout, SCHEDULER_INITIATED, REASON_UNHEALTHY))
        elif action == "destroy" and entry.task.state != STOPPED:
            self._exited(entry, None, detail=" (its container was removed)")

    async def _died(self, entry: _Entry, exit_code: int | None) -> None:
        if entry.life.stopped:
            return
        if not entry.oom:
            # The oom event may come after die, or not at all (cgroup v2): the state says for sure.
            attrs = await self._inspect(entry)
            entry.oom = bool(((attrs or {}).get("State") or {}).get("OOMKilled"))
        self._exited(entry, exit_code)

    async def _ensure_image(self, image: str) -> str | None:
        """None when the image is there (pulled if the policy says so); else why the task cannot start."""
        import docker

        policy = self.options.pull
        if policy != "always":
            try:
                await self._call(partial(self._client.images.get, image))
                return None
            except docker.errors.ImageNotFound:
                if policy == "never":
                    return (f"CannotPullContainerError: image {image} is not on this machine and the pull policy "
                            f"is never: build it (docker build -t {image} ...) or load it (docker load)")
            except Exception as exc:
                return f"CannotPullContainerError: {image}: {_engine_error(exc)}"
        started = time.monotonic()
        try:
            await self._call(partial(_pull, image, self.options.pullStallTimeoutSeconds))
        except Exception as exc:
            return (f"CannotPullContainerError: pull of {image} failed after {time.monotonic() - started:.1f} s: "
                    f"{_engine_error(exc)} (no registry reachable? build or load the image on this machine, "
                    f"and keep the pull policy at missing or never)")
        return None

    async def _inspect(self, entry: _Entry) -> dict[str, Any] | None:
        if entry.container_id is None:
            return None
        return await self._inspect_id(entry.container_id)

    async def _inspect_id(self, container_id: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = await self._call(partial(self._client.api.inspect_container, container_id))
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        return attrs

    async def _container_logs(self, container_id: str, tail: int | None) -> str:
        data: bytes = await self._call(partial(self._client.api.logs, container_id, stdout=True, stderr=True,
                                               tail="all" if tail is None else max(tail, 0)))
        text = data.decode(errors="replace")
        return "" if tail is not None and tail <= 0 else text

    async def _kill(self, entry: _Entry, sig: str) -> None:
        try:
            await self._call(partial(self._client.api.kill, entry.container_id, signal=sig))
        except Exception as exc:
            if _not_found(exc):
                self._exited(entry, None, detail=" (its container was removed)")
            elif "is not running" not in str(exc):
                log.warning("docker kill -s %s %s: %s", sig, entry.task.task_id, _engine_error(exc))

    async def _remove(self, entry: _Entry) -> None:
        if entry.container_id is None:
            return
        try:
            await self._call(partial(self._client.api.remove_container, entry.container_id, force=True))
        except Exception as exc:
            if not _not_found(exc) and "already in progress" not in str(exc):
                log.warning("cannot remove container of task %s: %s", entry.task.task_id, _engine_error(exc))

    async def _remove_once_created(self, entry: _Entry, create: asyncio.Future[Any]) -> None:
        with contextlib.suppress(Exception):
            entry.container_id = (await create).id
            await self._remove(entry)

    # -- starting and stopping ----------------------------------------------------------------------

    def _learn(self, entry: _Entry, attrs: Mapping[str, Any]) -> None:
        """What only the engine knows once the container runs: its published port, its health check."""
        if self.options.network is None:
            port = published_port(attrs, entry.container_port)
            if port is not None:
                entry.task.port = port
        entry.healthcheck = has_healthcheck(attrs)
        health = ((attrs.get("State") or {}).get("Health") or {}).get("Status")
        if health:
            entry.health = health

    async def _wait_ready(self, entry: _Entry, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not entry.exited.is_set():
            if entry.task.port == 0:
                attrs = await self._inspect(entry)
                if attrs is not None:
                    self._learn(entry, attrs)
            if entry.healthcheck and entry.health == "unhealthy":
                return False
            healthy = not entry.healthcheck or entry.health == "healthy"
            if healthy and entry.task.port and await _accepts(entry.task.host, entry.task.port):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(entry.exited, entry.health_changed), min(READY_POLL_SECONDS, remaining))
            entry.health_changed.clear()
        return False

    async def _stop(self, entry: _Entry, timeout: float, stop_code: str, reason: str) -> None:
        entry.life.ask_stop(stop_code, reason)
        if entry.life.stopped or entry.container_id is None:
            return
        self._move(entry, STOPPING)
        await self._kill(entry, "SIGTERM")
        if await self._wait_exited(entry, timeout):
            return
        await self._kill(entry, "SIGKILL")
        if not await self._wait_exited(entry, KILL_WAIT_SECONDS):
            log.warning("task %s (container %s) still runs %g s after SIGKILL", entry.task.task_id,
                        (entry.container_id or "")[:12], KILL_WAIT_SECONDS)

    async def _wait_exited(self, entry: _Entry, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        # With the event stream, the exit is heard; without it (a closed
        # backend asked to stop its tasks after all), look every so often.
        poll = READY_POLL_SECONDS * 2 if self._events_thread is None else None
        while True:
            remaining = deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.exited.wait(), max(0.0, min(remaining, poll or remaining)))
                return True
            # The event may be late or lost (a reconnecting stream): look.
            attrs = await self._inspect(entry)
            state = (attrs or {}).get("State") or {}
            if attrs is None or not state.get("Running"):
                entry.oom = entry.oom or bool(state.get("OOMKilled"))
                self._exited(entry, state.get("ExitCode") if attrs else None)
                return True
            if loop.time() >= deadline:
                return False

    # -- state changes --------------------------------------------------------------------------------

    def _exited(self, entry: _Entry, exit_code: int | None, detail: str = "") -> None:
        if entry.life.exited(exit_code, time.time(), oom=entry.oom, detail=detail):
            self._changed(entry)
            if entry.container_id is not None and entry.finisher is None:
                entry.finisher = asyncio.ensure_future(self._finish(entry))

    async def _finish(self, entry: _Entry) -> None:
        """Keep a stopped task's logs, then remove its container."""
        assert entry.container_id is not None
        if entry.output is not None:  # the engine ends the stream once the container has stopped
            await asyncio.to_thread(entry.output.thread.join, 5.0)
            entry.output.close()
        try:
            text = await self._container_logs(entry.container_id, None)
        except Exception:
            text = None  # removed by someone else: its logs went with it
        if text is not None:
            await asyncio.to_thread(_keep_logs, entry.log_path, text)
        await self._remove(entry)

    def _follow_output(self, entry: _Entry) -> None:
        if entry.container_id is not None and entry.output is None and not self._closed:
            entry.output = _OutputFollower(self._streaming_client, entry.container_id, entry.log_path)

    def _streaming_client(self) -> Any:
        """Thread: the docker client for followed output, made once (no read timeout)."""
        import docker

        with self._stream_client_lock:
            if self._stream_client is None:
                self._stream_client = docker.from_env(timeout=None).api
            return self._stream_client

    def _failed_to_start(self, entry: _Entry, reason: str) -> Task:
        if entry.life.failed_to_start(reason, time.time()):
            log.warning("task %s of %s: %s", entry.task.task_id, entry.task.service, reason)
            with contextlib.suppress(OSError):
                entry.log_path.write_text(reason + "\n", encoding="utf-8")
            self._changed(entry)
        return entry.task.snapshot()

    def _move(self, entry: _Entry, state: str) -> None:
        if entry.life.move(state):
            self._changed(entry)

    def _changed(self, entry: _Entry) -> None:
        """The lifecycle moved the task: wake who waits for its exit, tell the subscribers."""
        if entry.life.stopped:
            entry.exited.set()
        if not self._closed:
            notify(self._subscribers, entry.task)

    # -- helpers ------------------------------------------------------------------------------------------

    def _entry(self, task_id: str) -> _Entry:
        try:
            return self._entries[task_id]
        except KeyError:
            raise UnknownTask(task_id) from None

    def _entry_from(self, labels: Mapping[str, str], attrs: Mapping[str, Any]) -> _Entry:
        found = found_task(self.options, labels, attrs)
        entry = _Entry(found.task, found.container_port, found.stop_timeout, self._log_path(found.task.task_id),
                       container_id=found.container_id)
        self._learn(entry, attrs)
        return entry

    def _log_path(self, task_id: str) -> Path:
        return log_path(self.logs_dir, task_id)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)


# -- I/O helpers ----------------------------------------------------------------------------------------


def _keep_logs(path: Path, text: str) -> None:
    """A stopped task's whole output, unless following it already wrote exactly that
    (rewriting it would make a reader that is part-way through read it twice)."""
    data = text.encode("utf-8")
    with contextlib.suppress(OSError):
        if path.stat().st_size == len(data):
            return
    path.write_bytes(data)


def _pull(image: str, stall_timeout: float) -> None:
    """Thread: pull `image`; fail when the engine says nothing for `stall_timeout` seconds."""
    import docker
    from docker.utils import parse_repository_tag

    client = docker.from_env(timeout=stall_timeout)
    # The SDK pulls without any timeout, so a registry that never answers
    # would hang the pull for good; on this private client every socket
    # read gets the stall timeout instead.
    api, request = client.api, client.api.request
    api.request = lambda method, url, **kw: request(method, url, **{**kw, "timeout": stall_timeout})
    try:
        repo, tag = parse_repository_tag(image)
        stream: Iterator[dict[str, Any]] = client.api.pull(repo, tag=tag or "latest", stream=True, decode=True)
        for message in stream:
            if message.get("error"):
                raise RuntimeError(message["error"])
    except Exception as exc:
        if "timed out" in str(exc).lower():
            raise TimeoutError(f"not a word from the engine or the registry for {stall_timeout:g} s") from None
        raise
    finally:
        client.close()


def _engine_error(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"no answer in time: {text}"
    if "timed out" in text.lower():
        return f"no answer in time ({text})"
    return text


def _not_found(exc: BaseException) -> bool:
    import docker

    return isinstance(exc, docker.errors.NotFound)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _accepts(host: str, port: int) -> bool:
    """Does something listen there? A connection the other side closes at once does not count."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        data = await asyncio.wait_for(reader.read(1), PROBE_SETTLE_SECONDS)
        return bool(data)
    except TimeoutError:
        return True  # still open, silent: a server waiting for a request
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


