"""A queue consumer, the sample task of a headless service: it takes
messages from shiftlab's work queue (shiftlab.workqueue) while its revision
is active, and stands by while it is not (controller/activation.py).

Environment:
  QUEUE_URL                the work queue's HTTP API (required)
  SHIFTLAB_ACTIVATION_URL  the controller's activation flags (given by the
                           controller; without it the consumer always works)
  SHIFTLAB_API_TOKEN       the controller API's token, if it has one
  SHIFTLAB_REVISION        this task's revision (given by the controller)
  FAILURE_RATE             0..1: the share of messages this revision fails
                           (by message id, so a message fails every time);
                           a failed message is released, not deleted: another
                           consumer (blue, after a rollback) gets it again
  WORK_MS                  milliseconds of work per message (default 20)
  VISIBILITY_TIMEOUT       seconds a received message stays hidden (default 10)
  EMF_INTERVAL_MS          how often to print the metrics line (default 1000)

Every EMF_INTERVAL_MS it prints, in CloudWatch's embedded metric format,
MessagesProcessed and MessagesFailed (namespace WorkQueue, no dimensions):
the controller reads them from the task's output as CloudWatch Logs would,
and an alarm on MessagesFailed rolls a bad revision back.

It listens on PORT with a JSON status (its counters): the process backend
counts a task started once it listens (see README, "Headless services").
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shiftlab.controller.activation import TOKEN_VAR, URL_VAR, ActivationError, is_active
from shiftlab.workqueue import QueueClient

NAMESPACE = "WorkQueue"
ACTIVATION_POLL = 0.2  # seconds between looks at the activation flag
IDLE_POLL = 0.05  # seconds between receives when the queue is empty


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processed = 0
        self.failed = 0
        self.active = False

    def view(self) -> dict[str, Any]:
        with self.lock:
            return {"processed": self.processed, "failed": self.failed, "active": self.active}


def fails(message_id: int, rate: float) -> bool:
    """Whether this revision fails message `message_id` (the same answer every time)."""
    return (message_id * 7919) % 1000 < rate * 1000


def emf_line(processed: int, failed: int, now: float | None = None) -> str:
    doc = {"_aws": {"Timestamp": int((time.time() if now is None else now) * 1000), "CloudWatchMetrics": [{
        "Namespace": NAMESPACE, "Dimensions": [[]],
        "Metrics": [{"Name": "MessagesProcessed", "Unit": "Count"}, {"Name": "MessagesFailed", "Unit": "Count"}]}]},
        "MessagesProcessed": processed, "MessagesFailed": failed}
    return json.dumps(doc)


def publish(counters: Counters, interval: float, stop: threading.Event) -> None:
    seen = counters.view()
    while not stop.wait(interval):
        now = counters.view()
        print(emf_line(now["processed"] - seen["processed"], now["failed"] - seen["failed"]), flush=True)
        seen = now


def serve_status(counters: Counters, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(counters.view()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    if not env.get("QUEUE_URL"):
        print("queue consumer: QUEUE_URL is not set", file=sys.stderr, flush=True)
        return 2
    queue = QueueClient(env["QUEUE_URL"])
    revision = env.get("SHIFTLAB_REVISION", "")
    consumer = f"revision {revision or '-'}"
    failure_rate = float(env.get("FAILURE_RATE", "0") or 0)
    work = float(env.get("WORK_MS", "20")) / 1000.0
    visibility = float(env.get("VISIBILITY_TIMEOUT", "10"))
    interval = float(env.get("EMF_INTERVAL_MS", "1000")) / 1000.0
    activation_url = env.get(URL_VAR)
    counters = Counters()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = serve_status(counters, env.get("HOST", "127.0.0.1"), int(env.get("PORT", "8080")))
    threading.Thread(target=publish, args=(counters, interval, stop), daemon=True).start()
    print(f"queue consumer {consumer}: {env['QUEUE_URL']}, failure rate {failure_rate:g}", flush=True)
    active, checked, unreadable = activation_url is None, 0.0, False
    try:
        while not stop.is_set():
            if activation_url is not None and time.monotonic() - checked >= ACTIVATION_POLL:
                checked = time.monotonic()
                try:
                    now_active = is_active(activation_url, revision, env.get(TOKEN_VAR))
                    unreadable = False
                except ActivationError as exc:
                    if not unreadable:  # once per outage, not every poll
                        print(f"activation flag unreadable, staying {'active' if active else 'standing by'}: "
                              f"{exc}", flush=True)
                    unreadable, now_active = True, active
                if now_active != active:
                    print(f"revision {revision}: {'activated' if now_active else 'deactivated'}", flush=True)
                active = now_active
                with counters.lock:
                    counters.active = active
            if not active:
                stop.wait(ACTIVATION_POLL)
                continue
            try:
                messages = queue.receive(1, visibility)
            except (OSError, urllib.error.URLError, ValueError):
                stop.wait(IDLE_POLL * 4)
                continue
            if not messages:
                stop.wait(IDLE_POLL)
                continue
            for m in messages:
                time.sleep(work)
                try:
                    if fails(m.id, failure_rate):
                        queue.release(m)
                        with counters.lock:
                            counters.failed += 1
                    else:
                        queue.delete(m, consumer)
                        with counters.lock:
                            counters.processed += 1
                except (OSError, urllib.error.URLError, ValueError):
                    pass  # the queue delivers it again after its visibility timeout
    finally:
        stop.set()
        server.shutdown()
        view = counters.view()
        print(f"queue consumer {consumer}: stopped; processed {view['processed']}, failed {view['failed']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
