"""The load balancer of `shiftlab up`, in a process of its own, so that a
controller that crashes or restarts never takes traffic down with it (on
AWS the ALB outlives any deployment controller).

`up` adopts a load balancer that already serves its file: one an earlier
`up` of the same state directory started (its pid and creation time are in
`proxy.json` there: a SIGKILLed `up` left it serving) or one the user started
with `shiftlab proxy`. Otherwise it starts `shiftlab proxy -c FILE` in a
session of its own (a terminal's Ctrl-C reaches `up` alone, which stops the
proxy last, after its tasks drained), writes `proxy.json`, and starts it
again if it dies. On exit it stops what it started or adopted from
`proxy.json`; a proxy the user started runs on.

A state directory is held by one `up` at a time (a lock file), and `up`
refuses to start beside a controller already answering at its API address.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shiftlab.common.configfile import ConfigError
from shiftlab.common.netsafety import check_bind, resolve_token
from shiftlab.common.ports import free_port
from shiftlab.controller.backends import procinfo
from shiftlab.controller.router import HttpRouter, RouterError
from shiftlab.settings import Settings
from shiftlab.stack import PROXY_WAIT_SECONDS, proxy_mismatches

log = logging.getLogger("shiftlab.controller")

PIDFILE = "proxy.json"
LOGFILE = "proxy.log"
LOCKFILE = "up.lock"
WATCH_SECONDS = 0.2  # how often `up` looks whether its load balancer still runs
STOP_SECONDS = 10.0  # SIGTERM to SIGKILL; the proxy closes its listeners within about a second
RESTART_BACKOFF_MAX = 30.0


class ProxyProcessError(Exception):
    """The load balancer process could not be started or found."""


class AlreadyRunning(Exception):
    """Another `shiftlab up` runs for this file or state directory."""


def connect_host(address: str) -> str:
    """Where to reach a server bound to `address` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)


def http_url(address: str, port: int) -> str:
    host = connect_host(address)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


# -- one `up` at a time ----------------------------------------------------------------


def controller_answering(settings: Settings) -> str | None:
    """The URL of a controller API already answering where this file puts
    ours (another `up` of the same file), else None."""
    runtime = settings.controller
    if runtime.port == 0:
        return None
    url = http_url(runtime.address, runtime.port)
    try:
        with urllib.request.urlopen(f"{url}/api/healthz", timeout=2) as resp:
            return url if json.load(resp).get("ok") is True else None
    except (OSError, ValueError, AttributeError):
        return None


class StateDirLock:
    """An exclusive lock on the state directory, held while `up` runs (the
    kernel releases it when the process dies, however it dies)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCKFILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise AlreadyRunning(f"another `shiftlab up` (pid {holder or 'unknown'}) is running with the state "
                                 f"directory {self.path.parent}; stop it first") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# -- the pid file ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A load balancer an `up` of this state directory started."""

    pid: int
    created: str | None  # procinfo.create_time: the same pid later is another process
    admin_url: str

    def alive(self) -> bool:
        return procinfo.is_alive(self.pid, self.created)


def read_pidfile(state_dir: Path) -> Recorded | None:
    try:
        data = json.loads((state_dir / PIDFILE).read_text())
        return Recorded(int(data["pid"]), data.get("created"), str(data["adminUrl"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_pidfile(state_dir: Path, rec: Recorded) -> None:
    path = state_dir / PIDFILE
    tmp = path.with_suffix(".tmp")
    # Owner-only: `up` signals the pid it finds here.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": rec.pid, "created": rec.created, "adminUrl": rec.admin_url}, f)
    os.replace(tmp, path)


def remove_pidfile(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / PIDFILE).unlink()


# -- the load balancer process ------------------------------------------------------------


class ProxyProcess:
    """The load balancer a plain `shiftlab up` runs against."""

    def __init__(self, settings: Settings, config_path: str, state_dir: Path, time_scale: float | None = None,
                 verbose: bool = False) -> None:
        lb = self.lb = settings.load_balancer
        self.token = resolve_token(lb.Admin.Token)
        # Refused here, not by the child: nothing starts with a bad file.
        check_bind(lb.Admin.Address, self.token, "loadBalancer.Admin.Address", "loadBalancer.Admin.Token")
        self.settings = settings
        self.config_path = os.path.abspath(config_path)
        self.state_dir = state_dir
        self.log_path = state_dir / LOGFILE
        self.time_scale = time_scale
        self.verbose = verbose
        self.admin_url = http_url(lb.Admin.Address, lb.Admin.Port) if lb.Admin.Port else ""
        self.owned = False  # stopped when `up` stops: started by an `up` of this state directory
        self.started_here = False  # by this `up`, in this run
        self.pid: int | None = None
        self._created: str | None = None
        self._child: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Adopt the load balancer that serves this file, or start one."""
        rec = read_pidfile(self.state_dir)
        if rec is not None and rec.alive():
            self.owned, self.pid, self._created, self.admin_url = True, rec.pid, rec.created, rec.admin_url
            port = self.lb.Admin.Port
            moved = [f"loadBalancer.Admin.Port: {port}, but the load balancer answers at {rec.admin_url}"] \
                if port and not rec.admin_url.endswith(f":{port}") else []
            state = await self._check(f"(it was started by an earlier `shiftlab up` of {self.state_dir}: stop it "
                                      f"with `kill {rec.pid}`, and `up` starts one with this file)", moved)
            how = f"adopted from an earlier `shiftlab up`: pid {rec.pid}, log {self.log_path}"
        else:
            if rec is not None:
                remove_pidfile(self.state_dir)  # its process is gone
            if self.admin_url and await self._answers():
                state = await self._check("")
                how = "adopted: not started by `shiftlab up`, it runs on when `up` stops"
            else:
                await self._spawn()
                self.started_here = True
                state = await self._check("")
                how = f"started by this `up`: pid {self.pid}, log {self.log_path}"
        log.info("load balancer %s: %s; admin API %s (%s)", self.lb.Name, listening(state),
                 self.admin_url, how)

    async def watch(self) -> None:
        """Start the load balancer again whenever it dies (until cancelled):
        the controller puts its weights and targets back on the new one."""
        if not self.owned:
            return  # the user runs it
        backoff = 1.0
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self._alive():
                continue
            code = self._child.returncode if self._child is not None else None
            log.warning("the load balancer (pid %s) exited%s; starting it again (log: %s)", self.pid,
                        f" with {code}" if code is not None else "", self.log_path)
            try:
                await self._spawn()
                backoff = 1.0
            except (ProxyProcessError, OSError) as exc:
                log.error("cannot start the load balancer again: %s; next try in %g s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    async def stop(self, only_started_here: bool = False) -> None:
        """Stop the load balancer if `up` owns it (SIGTERM, then SIGKILL after
        STOP_SECONDS). `only_started_here`: after a failed start, a load
        balancer that served before this `up` serves on."""
        if not self.owned or self.pid is None or (only_started_here and not self.started_here):
            return
        for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
            if not self._alive():  # checked first: its pid may be another process's by now
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)
            if await self._wait_gone(wait):
                break
        else:
            log.warning("the load balancer (pid %s) still runs after SIGKILL", self.pid)
        remove_pidfile(self.state_dir)

    # -- helpers -----------------------------------------------------------------------

    def _alive(self) -> bool:
        if self._child is not None and self._child.pid == self.pid:
            return self._child.returncode is None  # our child: the loop reaps it
        return self.pid is not None and procinfo.is_alive(self.pid, self._created)

    async def _wait_gone(self, timeout: float) -> bool:
        if self._child is not None and self._child.pid == self.pid:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._child.wait(), timeout)
            return self._child.returncode is not None
        deadline = time.monotonic() + timeout
        while self._alive():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _answers(self) -> bool:
        router = HttpRouter(self.admin_url, self.token, timeout=2.0)
        try:
            await router.wait_ready(0)
            return True
        except RouterError:
            return False
        finally:
            await router.close()

    async def _check(self, hint: str, problems: list[str] | None = None) -> dict[str, Any]:
        """Wait for its admin API, then refuse a load balancer that runs
        another configuration; returns its state."""
        router = HttpRouter(self.admin_url, self.token)
        try:
            try:
                await router.wait_ready(PROXY_WAIT_SECONDS)
            except RouterError as exc:
                raise ProxyProcessError(f"the load balancer (pid {self.pid}) does not answer at {self.admin_url} "
                                        f"after {PROXY_WAIT_SECONDS:g} s: {exc}") from None
            state = await router.state()
        finally:
            await router.close()
        s = self.settings
        problems = [*(problems or []), *proxy_mismatches(self.lb, s.time_scale, state, self.admin_url)]
        if problems:
            raise ConfigError([*problems, hint] if hint else problems)
        return state

    def _argv(self, admin_port: int) -> list[str]:
        argv = [sys.executable, "-m", "shiftlab", "proxy", "-c", self.config_path, "--admin-port", str(admin_port)]
        if self.time_scale is not None:
            argv += ["--time-scale", repr(self.time_scale)]
        return argv + (["-v"] if self.verbose else [])

    async def _spawn(self) -> None:
        port = int(self.admin_url.rsplit(":", 1)[1]) if self.admin_url else free_port()
        self.admin_url = http_url(self.lb.Admin.Address, port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(out, f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} shiftlab up starts the load balancer\n".encode())
            child = await asyncio.create_subprocess_exec(
                *self._argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        finally:
            os.close(out)
        self._child, self.pid, self._created = child, child.pid, procinfo.create_time(child.pid)
        self.owned = True
        # Written at once: an `up` killed from now on leaves a load balancer the next one adopts.
        write_pidfile(self.state_dir, Recorded(child.pid, self._created, self.admin_url))
        router = HttpRouter(self.admin_url, self.token, timeout=2.0)
        try:
            deadline = time.monotonic() + PROXY_WAIT_SECONDS
            while child.returncode is None:
                with contextlib.suppress(RouterError):
                    await router.wait_ready(0)
                    return
                if time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), 0.05)
        finally:
            await router.close()
        if child.returncode is None:
            child.kill()
            await child.wait()
            what = f"did not answer at {self.admin_url} within {PROXY_WAIT_SECONDS:g} s"
        else:
            what = f"exited with {child.returncode}"
        remove_pidfile(self.state_dir)
        tail = _tail(self.log_path)
        raise ProxyProcessError(f"the load balancer {what}{': ' + tail if tail else ''} (log: {self.log_path})")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line for line in text[-lines:] if not line.startswith("--- "))


def listening(state: dict[str, Any]) -> str:
    """Where the load balancer described by GET /admin/state listens."""
    return ", ".join(f"{ls['Name']} on {ls.get('Address', '?')}:{ls['Port']}" for ls in state.get("Listeners", []))
