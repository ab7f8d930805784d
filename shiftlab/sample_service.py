"""The sample service: a tiny HTTP task that says which revision, colour and
target group answered, and misbehaves on request.

It is what the examples, the demo and the tests deploy. Standard library
only, because it is copied alone into a bare container image; run it as
`python -m shiftlab.sample_service` or `python sample_service.py`.

Environment:
  HOST (127.0.0.1), PORT (8080)
  SHIFTLAB_REVISION (or REVISION), SHIFTLAB_COLOUR, SHIFTLAB_TARGET_GROUP,
  SHIFTLAB_TASK_ID, GREETING (hello): echoed in every answer
  ERROR_RATE (0..1), LATENCY_MS, HEALTH_FAIL (1/true), EXIT_AFTER (requests):
  the initial faults, changeable at runtime with GET/PUT /_shiftlab/faults
  EXIT_AT_START (1/true): exit 1 at once, as a revision that cannot start
  CPU_BURN (vCPUs, e.g. 1 or 0.5): child processes that keep that much CPU
  busy (what an AWS/ECS CPUUtilization alarm catches)
  MEMORY_LEAK_MIB_PER_SECOND, MEMORY_LEAK_MAX_MIB (1024): memory taken and
  never given back, up to the cap (MemoryUtilization)
  TRANSACTION_FAILURE_RATE (0..1): the share of counted requests whose
  "payment" fails (the request still answers 200: only the business metric
  sees it); changeable as transactionFailureRate
  EMF_INTERVAL_MS: every that many ms, print the business metric as an
  embedded-metric-format line (CustomApp/Payments TransactionFailureRate,
  failed / all transactions since the last line; none without transactions)

GET /metrics answers its counters in the Prometheus text format
(sample_requests_total, payments_transactions_total,
payments_transactions_failed_total), with prometheus-client where it is
installed and a few lines of its own where it is not.

Errors are deterministic so that tests can count them: with error rate r,
the n-th counted request (health checks and /_shiftlab requests are not
counted) answers 500 iff floor(n*r) > floor((n-1)*r).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS_PATH = "/_shiftlab/faults"
METRICS_PATH = "/metrics"
BUSINESS_NAMESPACE = "CustomApp/Payments"
HEALTH_PATH = "/health"
# Longer than the load balancer's idle timeout (60 s by default), so the proxy,
# not the target, closes idle pooled connections: a target that closes first
# races the proxy's next request on that connection (AWS advises the same).
KEEPALIVE_TIMEOUT = 75.0
DRAIN_SECONDS = 5.0  # how long SIGTERM waits for requests in progress
READ_CHUNK = 64 * 1024
TRUE = ("1", "true", "yes", "on")


class FaultError(ValueError):
    pass


# A child that keeps `fraction` of one CPU busy: busy for fraction x 10 ms, asleep for the rest.
_BURN = ("import os, sys, time\n"
         "f, parent = float(sys.argv[1]), int(sys.argv[2])\n"
         "while os.getppid() == parent:\n"
         "    end = time.perf_counter() + 0.01 * f\n"
         "    while time.perf_counter() < end: pass\n"
         "    if f < 1: time.sleep(0.01 * (1 - f))\n")


def burn_cpu(vcpus: float) -> list[Any]:
    """CPU_BURN: one child per whole vCPU (and one for the rest), in the
    task's process tree; each ends when the service does (or is orphaned)."""
    import subprocess

    shares = [1.0] * int(vcpus) + ([vcpus - int(vcpus)] if vcpus - int(vcpus) > 1e-6 else [])
    return [subprocess.Popen([sys.executable, "-c", _BURN, str(f), str(os.getpid())], stdin=subprocess.DEVNULL)
            for f in shares]


def leak_memory(mib_per_second: float, max_mib: float) -> threading.Thread:
    """MEMORY_LEAK_MIB_PER_SECOND: take that much memory every second (written to, so it is resident), never
    given back, up to MEMORY_LEAK_MAX_MIB."""
    kept: list[bytes] = []

    def leak() -> None:
        taken = 0.0
        while taken < max_mib:
            step = min(mib_per_second / 10, max_mib - taken)
            kept.append(b"\x01" * int(step * 2**20))
            taken += step
            time.sleep(0.1)

    t = threading.Thread(target=leak, daemon=True, name="memory-leak")
    t.start()
    return t


def _resource_faults(env: dict[str, str]) -> tuple[float, float, float]:
    def amount(name: str, default: float, high: float) -> float:
        raw = env.get(name, "")
        try:
            x = float(raw) if raw else default
        except ValueError:
            raise FaultError(f"{name}={raw!r}: not a number") from None
        if not 0 <= x <= high:
            raise FaultError(f"{name}={raw!r}: out of range 0..{high:g}")
        return x
    return (amount("CPU_BURN", 0.0, 64.0), amount("MEMORY_LEAK_MIB_PER_SECOND", 0.0, 1024.0),
            amount("MEMORY_LEAK_MAX_MIB", 1024.0, 65536.0))


class Faults:
    """The current faults and the request counter they act on (shared by all threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error_rate = Fraction(0)
        self.latency_ms = 0.0
        self.health_fail = False
        self.exit_after: int | None = None
        self.transaction_failure_rate = Fraction(0)
        self.counted = 0  # requests counted for the error pattern
        self.failed_transactions = 0
        self._left: int | None = None  # requests still to answer before exiting

    def update(self, changes: dict[str, Any]) -> None:
        """Apply some of errorRate, latencyMs, healthFail, exitAfter; all or nothing.
        exitAfter = N: exit (code 1) after answering N more counted requests."""
        unknown = set(changes) - {"errorRate", "latencyMs", "healthFail", "exitAfter", "transactionFailureRate"}
        if unknown:
            raise FaultError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        rate, latency, tx_rate = self.error_rate, self.latency_ms, self.transaction_failure_rate
        if "transactionFailureRate" in changes:
            tx_rate = _rate(changes["transactionFailureRate"], "transactionFailureRate")
        health, exit_after = self.health_fail, self.exit_after
        if "errorRate" in changes:
            rate = _rate(changes["errorRate"])
        if "latencyMs" in changes:
            latency = _number(changes["latencyMs"], "latencyMs")
        if "healthFail" in changes:
            health = _flag(changes["healthFail"], "healthFail")
        if "exitAfter" in changes:
            exit_after = None if changes["exitAfter"] is None else _count(changes["exitAfter"], "exitAfter")
        with self._lock:
            self.error_rate, self.latency_ms, self.health_fail = rate, latency, health
            self.transaction_failure_rate = tx_rate
            if "exitAfter" in changes:
                self.exit_after = self._left = exit_after

    def view(self) -> dict[str, Any]:
        with self._lock:
            return {"errorRate": float(self.error_rate), "latencyMs": self.latency_ms,
                    "healthFail": self.health_fail, "exitAfter": self.exit_after, "requests": self.counted,
                    "transactionFailureRate": float(self.transaction_failure_rate),
                    "failedTransactions": self.failed_transactions}

    def next_request(self) -> tuple[int, bool, float, bool]:
        """Count one request: (its number, fail it?, latency in seconds, exit after answering?)."""
        with self._lock:
            self.counted += 1
            n, r = self.counted, self.error_rate
            # Exact fractions: with floats, 0.29 * 100 is 28.999..., and the pattern would slip.
            fail = math.floor(n * r) > math.floor((n - 1) * r)
            t = self.transaction_failure_rate
            if math.floor(n * t) > math.floor((n - 1) * t):
                self.failed_transactions += 1
            last = False
            if self._left is not None:
                self._left -= 1
                last = self._left <= 0
            return n, fail, self.latency_ms / 1000.0, last


def _rate(v: Any, name: str = "errorRate") -> Fraction:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise FaultError(f"{name}: {v!r} is not a number")
    try:
        rate = Fraction(str(v))
    except (ValueError, ZeroDivisionError):
        raise FaultError(f"{name}: {v!r} is not a number") from None
    if not 0 <= rate <= 1:
        raise FaultError(f"{name}: {v} is out of range 0..1")
    return rate


def _number(v: Any, name: str) -> float:
    try:
        if isinstance(v, bool):
            raise TypeError
        x = float(v)
    except (TypeError, ValueError):
        raise FaultError(f"{name}: {v!r} is not a number") from None
    if not 0 <= x <= 3_600_000:
        raise FaultError(f"{name}: {v} is out of range 0..3600000")
    return x


def _count(v: Any, name: str) -> int:
    if isinstance(v, bool):
        raise FaultError(f"{name}: {v!r} is not a whole number")
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise FaultError(f"{name}: {v!r} is not a whole number") from None
    if n != float(v) or n < 1:
        raise FaultError(f"{name}: {v} must be a whole number of requests >= 1 (or null)")
    return n


def _flag(v: Any, name: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in (*TRUE, "0", "false", "no", "off", ""):
        return v.lower() in TRUE
    raise FaultError(f"{name}: {v!r} is not true or false")


ENV_FAULTS = {"ERROR_RATE": "errorRate", "LATENCY_MS": "latencyMs", "HEALTH_FAIL": "healthFail",
              "EXIT_AFTER": "exitAfter", "TRANSACTION_FAILURE_RATE": "transactionFailureRate"}


def faults_from_env(env: dict[str, str]) -> Faults:
    faults = Faults()
    for name, key in ENV_FAULTS.items():
        if env.get(name):
            try:
                faults.update({key: env[name]})
            except FaultError as exc:
                raise FaultError(f"{name}={env[name]!r}: {exc}") from None
    return faults


class Identity:
    def __init__(self, env: dict[str, str]) -> None:
        self.revision = env.get("SHIFTLAB_REVISION") or env.get("REVISION") or ""
        self.colour = env.get("SHIFTLAB_COLOUR", "")
        self.target_group = env.get("SHIFTLAB_TARGET_GROUP", "")
        self.task = env.get("SHIFTLAB_TASK_ID", "")
        self.greeting = env.get("GREETING", "hello")  # what a revision changes to be told apart by eye


class Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold the exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], identity: Identity, faults: Faults) -> None:
        super().__init__(address, Handler)
        self.identity = identity
        self.faults = faults
        self.active = 0  # requests being answered (idle connections are not counted)
        self.idle = threading.Condition()

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.idle:
            while self.active and time.monotonic() < deadline:
                self.idle.wait(deadline - time.monotonic())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shiftlab-sample"
    timeout = KEEPALIVE_TIMEOUT
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus
    # delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would slow the benchmark down

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _serve(self) -> None:
        with self.server.idle:
            self.server.active += 1
        try:
            self._answer()
        finally:
            with self.server.idle:
                self.server.active -= 1
                self.server.idle.notify_all()

    def _answer(self) -> None:
        read = self._read_body()
        if read is None:
            return
        size, body = read
        path = self.path.split("?", 1)[0]
        faults = self.server.faults
        if path == FAULTS_PATH:
            self._faults(body)
            return
        if path == METRICS_PATH:
            self._metrics()
            return
        if path == HEALTH_PATH:
            failing = faults.view()["healthFail"]
            self._send(503 if failing else 200, {**self._who(path, size),
                                                 "status": "failing" if failing else "ok"})
            return
        n, fail, latency, last = faults.next_request()
        if latency > 0:
            time.sleep(latency)
        doc = {**self._who(path, size), "request": n}
        if fail:
            doc["error"] = "injected error (errorRate)"
        self._send(500 if fail else 200, doc, close=last)
        if last:
            print(f"sample service: exiting after {faults.exit_after} requests (exitAfter)", flush=True)
            os._exit(1)

    def _faults(self, body: bytes) -> None:
        faults = self.server.faults
        if self.command == "GET":
            self._send(200, faults.view())
            return
        if self.command != "PUT":
            self._send(405, {"error": f"{self.command} not allowed; use GET or PUT"}, extra={"Allow": "GET, PUT"})
            return
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise FaultError("the body must be a JSON object")
            faults.update(changes)
        except (ValueError, FaultError) as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(200, faults.view())

    def _metrics(self) -> None:
        text, content_type = prometheus_text(self.server.faults)
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _who(self, path: str, body_bytes: int) -> dict[str, Any]:
        me = self.server.identity
        return {"greeting": me.greeting, "revision": me.revision, "colour": me.colour,
                "targetGroup": me.target_group, "task": me.task, "path": path, "method": self.command,
                "bodyBytes": body_bytes}

    def _read_body(self) -> tuple[int, bytes] | None:
        """(body size, its first 64 KiB: enough for a faults document); None if unreadable."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        size, kept = 0, bytearray()
        try:
            if chunked:
                while True:
                    line = self.rfile.readline(READ_CHUNK)
                    length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if length == 0:
                        while self.rfile.readline(READ_CHUNK) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    size += self._discard(length, kept)
                    self.rfile.readline(READ_CHUNK)  # the CRLF after the chunk
            else:
                size = self._discard(int(self.headers.get("Content-Length") or 0), kept)
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, {"error": "malformed request body"}, close=True)
            return None
        return size, bytes(kept)

    def _discard(self, length: int, kept: bytearray) -> int:
        if length < 0:
            raise ValueError("negative length")
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, READ_CHUNK))
            if not chunk:
                raise ValueError("body ended early")
            if len(kept) < READ_CHUNK:
                kept += chunk
            left -= len(chunk)
        return length

    def _send(self, status: int, doc: dict[str, Any], close: bool = False, extra: dict[str, str] | None = None) -> None:
        data = (json.dumps(doc) + "\n").encode()
        me = self.server.identity
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Shiftlab-Revision", me.revision)
        self.send_header("X-Shiftlab-Colour", me.colour)
        self.send_header("X-Shiftlab-Target-Group", me.target_group)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def prometheus_text(faults: Faults) -> tuple[str, str]:
    """The service's counters in the Prometheus text format, and its content type."""
    view = faults.view()
    counters = (("sample_requests", "Requests counted for the fault patterns.", view["requests"]),
                ("payments_transactions", "Payment transactions attempted.", view["requests"]),
                ("payments_transactions_failed", "Payment transactions that failed.", view["failedTransactions"]))
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily
    except ImportError:  # the bare container image: the same exposition, written out
        lines = []
        for name, doc, value in counters:
            lines += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter", f"{name}_total {value}"]
        return "\n".join(lines) + "\n", "text/plain; version=0.0.4; charset=utf-8"

    class Collector:
        def collect(self) -> Any:
            for name, doc, value in counters:
                yield CounterMetricFamily(name, doc, value=value)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry).decode(), "text/plain; version=0.0.4; charset=utf-8"


def publish_business_metric(faults: Faults, interval: float, stop: threading.Event) -> None:
    """Every `interval` seconds, TransactionFailureRate as an embedded-metric-format
    line on stdout, as a payments service logs it to CloudWatch Logs
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)."""
    seen = faults.view()
    while not stop.wait(interval):
        now = faults.view()
        attempted = now["requests"] - seen["requests"]
        failed = now["failedTransactions"] - seen["failedTransactions"]
        seen = now
        if attempted <= 0:
            continue
        doc = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": BUSINESS_NAMESPACE, "Dimensions": [[]],
            "Metrics": [{"Name": "TransactionFailureRate", "Unit": "None"}]}]},
            "TransactionFailureRate": failed / attempted, "transactions": attempted}
        print(json.dumps(doc), flush=True)


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    identity = Identity(env)
    if env.get("EXIT_AT_START", "").lower() in TRUE:
        print(f"sample service revision {identity.revision or '-'}: exiting at start (EXIT_AT_START)", flush=True)
        return 1
    try:
        faults = faults_from_env(env)
        burn, leak_rate, leak_max = _resource_faults(env)
        host, port = env.get("HOST", "127.0.0.1"), int(env.get("PORT", "8080"))
        emf_interval = _number(env["EMF_INTERVAL_MS"], "EMF_INTERVAL_MS") / 1000.0 if env.get("EMF_INTERVAL_MS") \
            else None
    except (FaultError, ValueError) as exc:
        print(f"sample service: bad environment: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server = Server((host, port), identity, faults)
    except OSError as exc:
        print(f"sample service: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1

    def on_sigterm(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this
        # (the main) thread: ask from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    burners = burn_cpu(burn) if burn else []
    if leak_rate:
        leak_memory(leak_rate, leak_max)
    stop_publishing = threading.Event()
    if emf_interval:
        threading.Thread(target=publish_business_metric, daemon=True,
                         args=(faults, emf_interval, stop_publishing)).start()
    print(f"sample service revision {identity.revision or '-'} ({identity.colour or '-'}, "
          f"{identity.target_group or '-'}) listening on {host}:{port}; faults {json.dumps(faults.view())}",
          flush=True)
    server.serve_forever(poll_interval=0.1)
    for b in burners:
        b.kill()
    stop_publishing.set()
    server.drain(DRAIN_SECONDS)
    server.server_close()
    print("sample service: stopped (SIGTERM)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
