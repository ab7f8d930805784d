"""What the operating system says about a process we may no longer be the
parent of: is it alive, when was it created, what is its command line.

A restarted controller must recognise the tasks its predecessor started
without being fooled by PID reuse, so a process is identified by its pid
plus its creation time. Linux answers from /proc; elsewhere (macOS) `ps`
does. A zombie counts as dead: it runs nothing, and if the machine's PID 1
does not reap orphans it would otherwise look alive for ever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

_PROC = Path("/proc")


def _linux_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the command name may hold spaces."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def create_time(pid: int) -> str | None:
    """An opaque token that differs between two processes that had the same pid."""
    if _PROC.is_dir():
        fields = _linux_stat(pid)
        # Field 22 (starttime, clock ticks since boot) is index 19 once state is index 0.
        return f"linux:{fields[19]}" if fields and len(fields) > 19 else None
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"ps:{out}" if out else None


def cmdline(pid: int) -> list[str] | None:
    if _PROC.is_dir():
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]
    try:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split() if out else None


def is_zombie(pid: int) -> bool:
    if _PROC.is_dir():
        fields = _linux_stat(pid)
        return bool(fields) and fields[0] in ("Z", "X")  # type: ignore[index]
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return out.startswith("Z")


def is_alive(pid: int, created: str | None) -> bool:
    """True if `pid` still runs and is the process created at `created` (when known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else: the identity check decides
    if is_zombie(pid):
        return False
    return created is None or create_time(pid) == created


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group; empty when unknown off Linux and none answer."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _linux_stat(int(entry.name))
        # index 2 is field 5, pgrp
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
