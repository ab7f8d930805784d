"""A local work queue for rehearsing headless services (queue consumers).

SQLite-backed (WAL; a message survives a restart of the queue), with SQS's
delivery rules in small: a received message is invisible to other
consumers for its visibility timeout, and is delivered again once that
ends unless the consumer deleted it (at-least-once). Every delivery and
every delete is counted per message, so a run can prove that no message
was lost (every one deleted) and count the ones processed more than once.

Served over HTTP on loopback (`QueueServer`), JSON in and out:

    POST /send     {"bodies": ["...", ...]}                    -> {"ids": [1, 2]}
    POST /receive  {"max": 10, "visibilityTimeout": 5, "consumer": "c"}
                   -> {"messages": [{"id", "receipt", "body", "receiveCount"}]}
    POST /delete   {"id": 1, "receipt": "...", "consumer": "c"} -> {"deleted": true}
    POST /release  {"id": 1, "receipt": "..."}  (visible again at once: a failed message)
    GET  /stats    -> counts (see WorkQueue.stats)

`QueueClient` is the standard-library client a task uses.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receipt TEXT,
    receives INTEGER NOT NULL DEFAULT 0,
    deletes INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    deleted_by TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (deleted_at, visible_at, id);
"""

MAX_RECEIVE = 10  # SQS's ReceiveMessage MaxNumberOfMessages: 1..10
MAX_VISIBILITY = 43200  # SQS's visibility timeout: 0..43,200 s (12 hours)


@dataclass(frozen=True)
class Message:
    id: int
    receipt: str
    body: str
    receive_count: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "receipt": self.receipt, "body": self.body, "receiveCount": self.receive_count}


class WorkQueue:
    """The queue itself; thread-safe (one lock around each transaction).
    `clock`: seconds, injected so that tests step visibility timeouts."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL: a committed send or delete survives the process's
        # crash or a restart (not a power cut: FULL would, at an fsync each).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def send(self, bodies: list[str]) -> list[int]:
        now = self.clock()
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            ids = [int(self.db.execute("INSERT INTO messages (body, sent_at, visible_at) VALUES (?, ?, ?)",
                                       (str(b), now, now)).lastrowid or 0) for b in bodies]
            self.db.execute("COMMIT")
        return ids

    def receive(self, max_messages: int = 1, visibility_timeout: float = 30.0) -> list[Message]:
        """Up to `max_messages` visible messages, oldest first, each hidden
        for `visibility_timeout` seconds with a new receipt."""
        if not 1 <= max_messages <= MAX_RECEIVE:
            raise ValueError(f"max: {max_messages} is out of range 1..{MAX_RECEIVE}")
        if not 0 <= visibility_timeout <= MAX_VISIBILITY:
            raise ValueError(f"visibilityTimeout: {visibility_timeout} is out of range 0..{MAX_VISIBILITY}")
        now = self.clock()
        out = []
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute("SELECT id, body, receives FROM messages WHERE deleted_at IS NULL AND "
                                   "visible_at <= ? ORDER BY id LIMIT ?", (now, max_messages)).fetchall()
            for mid, body, receives in rows:
                receipt = secrets.token_hex(8)
                self.db.execute("UPDATE messages SET visible_at = ?, receipt = ?, receives = receives + 1 "
                                "WHERE id = ?", (now + visibility_timeout, receipt, mid))
                out.append(Message(mid, receipt, body, receives + 1))
            self.db.execute("COMMIT")
        return out

    def delete(self, message_id: int, receipt: str, consumer: str = "") -> bool:
        """Done with a message. As SQS, a delete with an older receipt of the
        message still deletes it (a consumer whose visibility timeout ran out
        finished after all); every delete is counted, so a message processed
        twice shows. False for an unknown id or receipt never given."""
        now = self.clock()
        with self._lock:
            row = self.db.execute("SELECT receives FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None or row[0] == 0 or not receipt:
                return False
            self.db.execute("UPDATE messages SET deletes = deletes + 1, deleted_at = COALESCE(deleted_at, ?), "
                            "deleted_by = COALESCE(deleted_by, ?) WHERE id = ?", (now, consumer, message_id))
        return True

    def release(self, message_id: int, receipt: str) -> bool:
        """Visible again at once (SQS's ChangeMessageVisibility to 0), if
        `receipt` is the latest one and the message is not deleted."""
        with self._lock:
            cur = self.db.execute("UPDATE messages SET visible_at = ? WHERE id = ? AND receipt = ? AND "
                                  "deleted_at IS NULL", (self.clock(), message_id, receipt))
            return cur.rowcount == 1

    def deleted_since(self, since: float) -> dict[str, int]:
        """Consumer -> messages it processed (first deleted) at or after `since`."""
        with self._lock:
            return dict(self.db.execute("SELECT deleted_by, COUNT(*) FROM messages WHERE deleted_at >= ? "
                                        "GROUP BY deleted_by", (since,)).fetchall())

    def stats(self) -> dict[str, Any]:
        """sent, deleted (done), waiting (visible, not deleted), inFlight
        (received, invisible, not deleted), receives, deletes, redelivered
        (messages received more than once), duplicates (messages deleted more
        than once: processed twice), deletedBy (consumer -> messages)."""
        now = self.clock()
        with self._lock:
            sent, deleted, receives, deletes, redelivered, dupes = self.db.execute(
                "SELECT COUNT(*), COUNT(deleted_at), COALESCE(SUM(receives), 0), COALESCE(SUM(deletes), 0), "
                "COALESCE(SUM(receives > 1), 0), COALESCE(SUM(deletes > 1), 0) FROM messages").fetchone()
            in_flight = self.db.execute("SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL AND visible_at > ?",
                                        (now,)).fetchone()[0]
            by = dict(self.db.execute("SELECT deleted_by, COUNT(*) FROM messages WHERE deleted_at IS NOT NULL "
                                      "GROUP BY deleted_by").fetchall())
        return {"sent": sent, "deleted": deleted, "waiting": sent - deleted - in_flight, "inFlight": in_flight,
                "receives": receives, "deletes": deletes, "redelivered": redelivered, "duplicates": dupes,
                "deletedBy": by}


# -- over HTTP -------------------------------------------------------------------------------

class QueueServer:
    """The queue's HTTP API on loopback (aiohttp), for tasks and the demo."""

    def __init__(self, queue: WorkQueue, host: str = "127.0.0.1", port: int = 0) -> None:
        self.queue = queue
        self.host = host
        self.port = port
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        from aiohttp import web

        from shiftlab.common.netsafety import browser_guard, serve_app

        # No web page may send it anything: a loopback Host, no other Origin, JSON only (see browser_guard).
        app = web.Application(middlewares=[browser_guard(self.host)])
        app.router.add_post("/send", self._send)
        app.router.add_post("/receive", self._receive)
        app.router.add_post("/delete", self._delete)
        app.router.add_post("/release", self._release)
        app.router.add_get("/stats", self._stats)
        self._runner, self.port = await serve_app(app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    async def _json(request: Any) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ValueError("body: must be a JSON object")
        return data

    async def _call(self, request: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
        from aiohttp import web

        try:
            body = await self._json(request)
            # In a thread: the queue may share its event loop with the controller (the demo, rehearsals).
            return web.json_response(await asyncio.to_thread(fn, body))
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _send(self, request: Any) -> Any:
        return await self._call(request, lambda b: {"ids": self.queue.send([str(x) for x in b["bodies"]])})

    async def _receive(self, request: Any) -> Any:
        return await self._call(request, lambda b: {"messages": [m.as_json() for m in self.queue.receive(
            int(b.get("max", 1)), float(b.get("visibilityTimeout", 30.0)))]})

    async def _delete(self, request: Any) -> Any:
        return await self._call(request, lambda b: {"deleted": self.queue.delete(
            int(b["id"]), str(b["receipt"]), str(b.get("consumer", "")))})

    async def _release(self, request: Any) -> Any:
        return await self._call(request, lambda b: {"released": self.queue.release(int(b["id"]), str(b["receipt"]))})

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(await asyncio.to_thread(self.queue.stats))


class QueueClient:
    """The standard-library client a task (shiftlab.queue_consumer) uses."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def send(self, bodies: list[str]) -> list[int]:
        return [int(i) for i in self._call("/send", {"bodies": bodies})["ids"]]

    def receive(self, max_messages: int = 1, visibility_timeout: float = 30.0) -> list[Message]:
        got = self._call("/receive", {"max": max_messages, "visibilityTimeout": visibility_timeout})
        return [Message(m["id"], m["receipt"], m["body"], m["receiveCount"]) for m in got["messages"]]

    def delete(self, message: Message, consumer: str = "") -> bool:
        return bool(self._call("/delete", {"id": message.id, "receipt": message.receipt,
                                           "consumer": consumer})["deleted"])

    def release(self, message: Message) -> bool:
        return bool(self._call("/release", {"id": message.id, "receipt": message.receipt})["released"])

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/stats")
        return result

