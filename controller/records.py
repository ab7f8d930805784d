"""Deployment records in SQLite (WAL): the deployments, their event log, and
the service's own state (which revision runs, which group is primary).

An event is stored with its type and fields (controller.eventlog) next to
its message; events written before they had either read back with `type`
and `data` null.

Each write is one small local transaction (well under a millisecond with
WAL and synchronous=NORMAL), so the driver calls it inline, before it
carries out the actions of a transition: a controller killed at any point
finds on disk the last state whose actions may have started.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftlab.controller.eventlog import Entry, event_record
from shiftlab.controller.machine import FINAL, Deployment

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_service ON deployments (service, created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    type TEXT
);
CREATE INDEX IF NOT EXISTS events_deployment ON events (deployment_id, seq);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
"""


@dataclass
class ServiceState:
    name: str
    primary_group: str
    running_revision: str
    revisions: dict[str, dict[str, Any]]  # revision -> task definition (camelCase)
    next_revision: int
    # Revision -> whether its tasks work (controller.activation: a headless
    # service's flags). A record from before the flags: the running revision's on.
    active: dict[str, bool] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        doc = {"primaryGroup": self.primary_group, "runningRevision": self.running_revision,
               "revisions": self.revisions, "nextRevision": self.next_revision}
        if self.active:
            doc["active"] = dict(self.active)
        return doc

    @classmethod
    def from_doc(cls, name: str, doc: dict[str, Any]) -> ServiceState:
        return cls(name, doc["primaryGroup"], doc["runningRevision"], doc["revisions"], doc["nextRevision"],
                   dict(doc.get("active") or {doc["runningRevision"]: True}))


class Records:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if "type" not in {row[1] for row in self.db.execute("PRAGMA table_info(events)")}:
            self.db.execute("ALTER TABLE events ADD COLUMN type TEXT")  # records written before events had types

    def close(self) -> None:
        self.db.close()

    # deployments ---------------------------------------------------------

    def save(self, d: Deployment) -> None:
        self.db.execute(
            "INSERT INTO deployments (id, service, status, created_at, doc) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, doc = excluded.doc",
            (d.id, d.service, d.status, d.created_at, json.dumps(d.to_dict())),
        )

    def get(self, deployment_id: str) -> Deployment | None:
        row = self.db.execute("SELECT doc FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
        return Deployment.from_dict(json.loads(row[0])) if row else None

    def ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Deployment ids that start with `prefix` (what `watch` and `list` show is a prefix)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.execute("SELECT id FROM deployments WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
                               (pattern, limit))
        return [r[0] for r in rows]

    def recent(self, service: str | None = None, limit: int = 50) -> list[Deployment]:
        if service:
            rows = self.db.execute(
                "SELECT doc FROM deployments WHERE service = ? ORDER BY created_at DESC LIMIT ?", (service, limit))
        else:
            rows = self.db.execute("SELECT doc FROM deployments ORDER BY created_at DESC LIMIT ?", (limit,))
        return [Deployment.from_dict(json.loads(r[0])) for r in rows]

    def unfinished(self, service: str) -> list[Deployment]:
        placeholders = ",".join("?" * len(FINAL))
        rows = self.db.execute(
            f"SELECT doc FROM deployments WHERE service = ? AND status NOT IN ({placeholders}) ORDER BY created_at",
            (service, *FINAL),
        )
        return [Deployment.from_dict(json.loads(r[0])) for r in rows]

    # events ------------------------------------------------------------

    def event(self, deployment_id: str | None, entry: Entry, at: float | None = None) -> dict[str, Any]:
        """Write one line of the event log; returns it as the API shows it."""
        at = time.time() if at is None else at
        cur = self.db.execute(
            "INSERT INTO events (deployment_id, at, kind, type, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (deployment_id, at, entry.kind, entry.type, entry.message, json.dumps(entry.data)),
        )
        return event_record(entry, cur.lastrowid, deployment_id, at)

    def events(self, deployment_id: str | None = None, after: int = 0, limit: int = 1000,
               newest: bool = False) -> list[dict[str, Any]]:
        """Events after `after`, oldest first: the first `limit` of them, or with
        `newest` the last `limit`."""
        where, args = ("WHERE seq > ?", [after]) if not deployment_id else \
            ("WHERE deployment_id = ? AND seq > ?", [deployment_id, after])
        order = "DESC" if newest else "ASC"
        rows = list(self.db.execute(
            f"SELECT seq, deployment_id, at, kind, type, message, data FROM events {where} ORDER BY seq {order} "
            "LIMIT ?", (*args, limit)))
        if newest:
            rows.reverse()
        return [{"seq": s, "deploymentId": d, "at": at, "kind": k, "type": t, "message": m,
                 "data": json.loads(x) if x else None} for s, d, at, k, t, m, x in rows]

    # the service --------------------------------------------------------

    def service(self, name: str) -> ServiceState | None:
        row = self.db.execute("SELECT doc FROM services WHERE name = ?", (name,)).fetchone()
        return ServiceState.from_doc(name, json.loads(row[0])) if row else None

    def save_service(self, s: ServiceState) -> None:
        self.db.execute(
            "INSERT INTO services (name, doc) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
            (s.name, json.dumps(s.to_doc())),
        )
