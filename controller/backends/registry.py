"""The ProcessBackend's memory across controller restarts: one SQLite row per
task that has not stopped yet (pid, process group, creation time, command
line, port), so that a controller that crashed and came back can find the
tasks it left running, adopt them, and never start a second copy.

Rows go away when a task stops; what is left after a crash is exactly the
set of tasks that may still run.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    revision TEXT NOT NULL,
    colour TEXT NOT NULL,
    deployment_id TEXT,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    created TEXT,
    cmdline TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL,
    stop_timeout REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Row:
    task_id: str
    service: str
    revision: str
    colour: str
    deployment_id: str | None
    host: str
    port: int
    pid: int  # also the process group id: tasks start in a session of their own
    created: str | None  # procinfo.create_time() token, against PID reuse
    cmdline: list[str]
    state: str
    started_at: float | None
    stop_timeout: float


class Registry:
    def __init__(self, path: Path) -> None:
        # A few short writes per task life: done inline, autocommit, WAL so a
        # second reader (a restarted controller) never waits on a writer.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def put(self, row: Row) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.task_id, row.service, row.revision, row.colour, row.deployment_id, row.host, row.port, row.pid,
             row.created, json.dumps(row.cmdline), row.state, row.started_at, row.stop_timeout),
        )

    def set_state(self, task_id: str, state: str) -> None:
        self._db.execute("UPDATE tasks SET state = ? WHERE task_id = ?", (state, task_id))

    def remove(self, task_id: str) -> None:
        self._db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))

    def rows(self, service: str) -> list[Row]:
        cur = self._db.execute(
            "SELECT task_id, service, revision, colour, deployment_id, host, port, pid, created, cmdline, state, "
            "started_at, stop_timeout FROM tasks WHERE service = ? ORDER BY started_at", (service,))
        return [Row(task_id=r[0], service=r[1], revision=r[2], colour=r[3], deployment_id=r[4], host=r[5], port=r[6],
                    pid=r[7], created=r[8], cmdline=json.loads(r[9]), state=r[10], started_at=r[11],
                    stop_timeout=r[12]) for r in cur.fetchall()]

    def close(self) -> None:
        self._db.close()
