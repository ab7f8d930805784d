"""What a task's container is made of, and how it is read back: pure, no
engine. A revision is an image (plus command, environment, container port,
stop timeout and optional cpu/memory limits); a task is one container.

Every container carries labels: its task id, service, revision, colour and
deployment, and the backend's owner (by default its state directory), so
that a restarted controller finds and adopts exactly the containers its
predecessor left, and two controllers on one engine never touch each
other's.

Where a task is reached (the target the proxy forwards to), by the
options' `network`:
  None (default)  the container port is published on 127.0.0.1 (or
                  publishAddress) at a port the engine picks; the target is
                  127.0.0.1:<that port>
  "host"          host networking: the task gets a free port in $PORT and
                  must listen on it (the sample service does), on $HOST,
                  the publish address
  any other name  the container joins that Docker network and is reached by
                  its name at the container port: for a controller that runs
                  in a container on the same network (compose/)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftlab.controller.backends.base import PENDING, PYTHON_PLACEHOLDER, Task, TaskDefinition
from shiftlab.controller.backends.docker_options import DockerRuntime

HOST_NETWORK = "host"
LABEL = "io.shiftlab"
L_TASK, L_SERVICE, L_REVISION, L_COLOUR = f"{LABEL}.task", f"{LABEL}.service", f"{LABEL}.revision", f"{LABEL}.colour"
L_DEPLOYMENT, L_OWNER, L_PORT = f"{LABEL}.deployment", f"{LABEL}.owner", f"{LABEL}.container-port"
L_STOP_TIMEOUT, L_HOST_PORT = f"{LABEL}.stop-timeout", f"{LABEL}.host-port"


def task_address(opts: DockerRuntime, service: str, colour: str, task_id: str, container_port: int,
                 host_port: int | None) -> tuple[str, int]:
    """Where the target group reaches a new task; port 0 while the engine has
    not yet picked the published port (it is known once the container runs)."""
    if opts.network in (None, HOST_NETWORK):
        return opts.publishAddress, host_port or 0
    return container_name(service, colour, task_id), container_port


def container_spec(opts: DockerRuntime, owner: str, task: Task, definition: TaskDefinition, env: Mapping[str, str],
                   image: str, host_port: int | None) -> dict[str, Any]:
    """The keyword arguments of containers.create() for a task: `host_port`
    is its port with host networking (None otherwise)."""
    labels = task_labels(owner, task, definition)
    if host_port:
        labels[L_HOST_PORT] = str(host_port)
    return {
        "image": image,
        "command": container_command(definition, opts.python),
        "name": container_name(task.service, task.colour, task.task_id),
        "environment": container_env(task, definition, env, host_port or definition.container_port,
                                     opts.publishAddress if opts.network == HOST_NETWORK else "0.0.0.0"),
        "labels": labels,
        "detach": True,
        **run_options(opts, definition, host_port),
    }


def owner_of(state_dir: Path) -> str:
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]


def container_name(service: str, colour: str, task_id: str) -> str:
    return f"shiftlab-{service[:40]}-{colour}-{task_id[:12]}"


def task_labels(owner: str, task: Task, definition: TaskDefinition) -> dict[str, str]:
    return {
        L_OWNER: owner, L_TASK: task.task_id, L_SERVICE: task.service, L_REVISION: task.revision,
        L_COLOUR: task.colour, L_DEPLOYMENT: task.deployment_id or "", L_PORT: str(definition.container_port),
        L_STOP_TIMEOUT: f"{definition.stop_timeout:g}",
    }


def container_command(definition: TaskDefinition, python: str) -> list[str] | None:
    """The definition's command, "{python}" meaning the image's Python; None keeps the image's CMD."""
    argv = list(definition.command)
    if not argv:
        return None
    if argv[0] == PYTHON_PLACEHOLDER:
        argv[0] = python
    return argv


def container_env(task: Task, definition: TaskDefinition, env: Mapping[str, str], listen_port: int,
                  listen_host: str = "0.0.0.0") -> dict[str, str]:
    """`listen_host`: every interface of the container, except with host
    networking, where the container's interfaces are the host's: there the
    publish address (127.0.0.1 unless configured otherwise)."""
    return {
        "HOST": listen_host,
        "PYTHONUNBUFFERED": "1",
        **definition.env,
        **env,
        # Last: the task must listen where the target group looks.
        "PORT": str(listen_port),
        "SHIFTLAB_TASK_ID": task.task_id,
        "SHIFTLAB_REVISION": task.revision,
        "SHIFTLAB_COLOUR": task.colour,
        "SHIFTLAB_SERVICE": task.service,
    }


def run_options(opts: DockerRuntime, definition: TaskDefinition, host_port: int | None) -> dict[str, Any]:
    """Keyword arguments of containers.create() for networking and limits: the
    revision's cpu (ECS CPU units, 1024 to a CPU) and memory (MiB) when it has
    them, else the backend's service-wide cpus and memory."""
    kw: dict[str, Any] = {"stop_signal": "SIGTERM"}
    if opts.network == HOST_NETWORK:
        kw["network_mode"] = "host"
    elif opts.network:
        kw["network"] = opts.network
    else:
        kw["ports"] = {f"{definition.container_port}/tcp": (opts.publishAddress, None)}
    if definition.hosts:
        # Service Connect's aliases: the container calls http://catalog:8080 as on ECS.
        kw["extra_hosts"] = dict(definition.hosts)
    cpus = definition.cpu / 1024 if definition.cpu is not None else opts.cpus
    if cpus is not None:
        kw["nano_cpus"] = int(cpus * 1e9)
    memory = f"{definition.memory}m" if definition.memory is not None else opts.memory
    if memory is not None:
        kw["mem_limit"] = memory
        kw["memswap_limit"] = memory  # no swap: over the limit means OOM-killed, as on ECS
    return kw


def published_port(attrs: Mapping[str, Any], container_port: int) -> int | None:
    ports = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{container_port}/tcp") or []
    for binding in ports:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def has_healthcheck(attrs: Mapping[str, Any]) -> bool:
    test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def parse_docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 times (nanoseconds, Z) as epoch seconds; None for its zero time."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(m.group(1) + frac + zone).timestamp()


@dataclass(frozen=True)
class Found:
    """A container of ours, read back from its labels and the engine's
    inspect answer (adoption after a crash)."""

    task: Task  # PENDING: whether it still serves is for the backend to find out
    container_id: str
    container_port: int
    stop_timeout: float


def found_task(opts: DockerRuntime, labels: Mapping[str, str], attrs: Mapping[str, Any]) -> Found:
    container_port = int(labels.get(L_PORT) or 8080)
    host_port = int(labels[L_HOST_PORT]) if labels.get(L_HOST_PORT) else None
    name = str(attrs.get("Name") or "").lstrip("/")
    if opts.network in (None, HOST_NETWORK):
        host = opts.publishAddress
        port = host_port or published_port(attrs, container_port) or 0
    else:
        host, port = name, container_port
    state = attrs.get("State") or {}
    task = Task(labels[L_TASK], labels.get(L_REVISION, ""), labels.get(L_COLOUR, ""), labels.get(L_SERVICE, ""),
                labels.get(L_DEPLOYMENT) or None, host, port, PENDING,
                started_at=parse_docker_time(state.get("StartedAt")))
    return Found(task, str(attrs.get("Id")), container_port, float(labels.get(L_STOP_TIMEOUT) or 10))
