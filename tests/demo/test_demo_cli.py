"""`shiftlab demo` as a user runs it: a real subprocess per scenario with the
process backend at a high time scale, exit code 0 and the summary's lines.
The manual scenario waits for approval and the test gives it through
`shiftlab approve --url` (the command the demo prints)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from shiftlab.client import Client
from shiftlab.common.netsafety import resolve_token
from tests.demo.support import interrupt
from tests.helpers import REPO

SCALE = "200"  # an ECS minute is 0.3 s: the longest scenario (good) bakes 14 AWS minutes
DEADLINE = 60.0


def demo_argv(scenario: str, *extra: str, scale: str = SCALE) -> list[str]:
    return [sys.executable, "-m", "shiftlab", "demo", "--scenario", scenario, "--time-scale", scale, "-q", *extra]


def run_demo(scenario: str) -> str:
    started = time.monotonic()
    proc = subprocess.Popen(demo_argv(scenario), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        interrupt(proc)
        out, err = proc.communicate()
        raise AssertionError(f"the demo did not end within {DEADLINE} s\n{out}\n{err}") from None
    finally:
        interrupt(proc)
    assert proc.returncode == 0, f"exit {proc.returncode} after {time.monotonic() - started:.1f} s\n{out}\n{err}"
    assert "as expected: " in out and "NOT as expected" not in out, out
    assert "FAILED" not in out, out
    assert re.search(r"^total: \d+\.\d s$", out, re.M), out
    return out


@pytest.mark.parametrize("scenario, lines", [
    ("good", ["as expected: SUCCESSFUL", "ok     no alarm trips", "ok     no request fails: 0 failed"]),
    ("bad-canary", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm service-5xx trips",
                    "ok     the 5xx come from green only", "first bad response (5xx) -> production back on blue: "]),
    ("slow", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm service-p99-latency trips",
              "ok     alarm service-5xx does not trip", "slower than 250 ms (by group: {'green': ",
              "first bad response (slower than 250 ms) -> production back on blue: "]),
    ("cpu", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm service-cpu trips",
             "ok     alarm service-5xx does not trip", "ok     no request fails: 0 failed"]),
    ("business-metric", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm payment-transaction-failure-rate trips",
                         "ok     alarm service-5xx does not trip", "ok     no request fails: 0 failed"]),
    ("headless", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm queue-consumer-failures trips",
                  "ok     green is activated, then blue again: 2 on, 1 off, 1 on, 2 off",
                  "ok     blue takes over again after the rollback: after the rollback: {'revision 1': ",
                  "ok     no message lost, none processed twice: ", " 0 lost, 0 processed twice"]),
    ("blue-green", ["as expected: SUCCESSFUL", "ok     the POST_TEST_TRAFFIC_SHIFT hook succeeds",
                    "ok     test traffic (x-amzn-ecs-blue-green-test header) reaches green before production does",
                    "test-header requests: "]),
    ("service-connect", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm catalog-5xx trips",
                         "reach the green catalog before any production request does",
                         "ok     the 5xx (production and test requests) come from the green catalog only",
                         "frontend (in the namespace): http://127.0.0.1:"]),
    ("dns", ["as expected: ROLLBACK_SUCCESSFUL", "ok     alarm service-5xx trips",
             "ok     the load reaches both load balancers through DNS: answers by address: {"]),
])
def test_demo_scenario_behaves_as_it_expects(scenario: str, lines: list[str]) -> None:
    out = run_demo(scenario)
    for line in lines:
        assert line in out, f"{line!r} not in:\n{out}"
    if scenario in ("bad-canary", "slow"):
        seconds = float(re.search(r"-> production back on blue: (-?\d+\.\d+) s", out).group(1))  # type: ignore[union-attr]
        assert 0 < seconds < 30, out


def _lines(proc: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.put(line)


def test_demo_manual_waits_for_shiftlab_approve() -> None:
    # Twice the other scenarios' time: the PAUSE times out after 30 AWS minutes (15 s here).
    proc = subprocess.Popen(demo_argv("manual", "--no-auto-approve", scale="120"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc, lines), daemon=True)
    reader.start()
    out: list[str] = []
    try:
        deadline = time.monotonic() + DEADLINE
        url = None
        while url is None:
            out.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            m = re.search(r"approve with: shiftlab approve --url (\S+)$", out[-1])
            url = m.group(1) if m else None
        assert "approving by itself" not in out[-1]
        client = Client(url, resolve_token(None))
        while not (client.get("/api/deployments/current")["shiftlab"]["awaitingApproval"]):
            assert time.monotonic() < deadline, "the deployment never waited at its PAUSE hook:\n" + "".join(out)
            time.sleep(0.05)
        approved = subprocess.run([sys.executable, "-m", "shiftlab", "approve", "--url", url], capture_output=True,
                                  text=True, timeout=30, cwd=REPO)
        assert approved.returncode == 0, approved.stderr
        assert "approved at POST_TEST_TRAFFIC_SHIFT" in approved.stdout
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        interrupt(proc)
    reader.join(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    while not lines.empty():
        out.append(lines.get_nowait())
    text = "".join(out)
    assert code == 0, text
    assert "as expected: SUCCESSFUL" in text
    assert "ok     a PAUSE hook is approved: POST_TEST_TRAFFIC_SHIFT: approved" in text
    assert "ok     production traffic reaches green only after the approval" in text
