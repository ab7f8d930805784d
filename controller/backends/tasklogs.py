"""A task's log file under `state_dir/logs`, shared by the backends that
keep one (every process task's output; a stopped container's, saved before
its container is removed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

LOG_TAIL_MAX_BYTES = 4 * 1024 * 1024
_TASK_ID = re.compile(r"^[0-9a-f]{32}$")


def is_task_id(text: str) -> bool:
    """Task ids are 32 hex digits. An id from an API caller names a file: one
    that does not look like ours must never become a path."""
    return bool(_TASK_ID.match(text))


def log_path(logs_dir: Path, task_id: str) -> Path:
    return logs_dir / f"{task_id}.log"


def read_tail(path: Path, tail: int | None) -> str:
    """The last `tail` lines (all if None) of the file's last LOG_TAIL_MAX_BYTES."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - LOG_TAIL_MAX_BYTES))
        data = f.read()
    text = data.decode(errors="replace")
    if tail is None:
        return text
    if tail <= 0:
        return ""
    return "".join(text.splitlines(keepends=True)[-tail:])
