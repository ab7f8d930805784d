"""Rollout timing (run on demand, not in CI): how fast a bad canary is rolled
back, and how close a scaled linear rollout comes to its ideal duration.

    .venv/bin/python tests/perf/bench_rollout.py [--runs 3] [--backend process]

Prints, for the bad canary at timeScale 60 (green answers 5xx on every
request, an alarm on green's HTTPCode_Target_5XX_Count, Period 60 = 1 s):
seconds from the first 5xx the load saw to production traffic back on blue
100 %, and how many requests failed; and for a 10-step LINEAR rollout with
stepBakeTimeInMinutes 1: wall time from the deployment's start to
SUCCESSFUL, against the ideal 9 bakes x 1 s plus the time to scale green up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shiftlab.rehearse import rehearse
from shiftlab.settings import load_settings
from tests.controller.support import config, green_alarm


def _iso(s: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


async def bad_canary(tmp: Path, backend: str, rps: float) -> dict[str, Any]:
    data = config(tmp, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 0)])
    data["controller"]["backend"] = backend
    settings = load_settings(data)
    out = await rehearse(settings, {"env": {"ERROR_RATE": "1"}}, load_rps=rps, state_dir=tmp / "s")
    assert out.deployment["status"] == "ROLLBACK_SUCCESSFUL", out.deployment["statusReason"]
    assert out.load is not None
    return {"seconds": out.rollback_seconds(), "failed": out.load.failed, "sent": out.load.sent,
            "proxy_errors": out.load.elb_errors + out.load.connection_errors}


async def linear(tmp: Path, backend: str) -> dict[str, Any]:
    data = config(tmp, {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 1}})
    data["controller"]["backend"] = backend
    settings = load_settings(data)
    t0 = time.monotonic()
    out = await rehearse(settings, {"env": {"GREETING": "v2"}}, load_rps=20, state_dir=tmp / "s")
    total = time.monotonic() - t0
    d = out.deployment
    assert d["status"] == "SUCCESSFUL", d["statusReason"]
    stages = d["shiftlab"]["stages"]
    started = _iso(d["startedAt"])
    scaled = next(_iso(s["endedAt"]) for s in stages if s["stage"] == "SCALE_UP")
    finished = _iso(d["finishedAt"])
    return {"deployment": finished - started, "scale_up": scaled - started, "shifting": finished - scaled,
            "wall_with_startup": total}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backend", default="process")
    ap.add_argument("--rps", type=float, default=50.0)
    args = ap.parse_args()
    bad, lin = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            bad.append(await bad_canary(Path(tmp), args.backend, args.rps))
        with tempfile.TemporaryDirectory() as tmp:
            lin.append(await linear(Path(tmp), args.backend))
    print(f"bad canary, timeScale 60, {args.rps:g} req/s, green answering 5xx, alarm Period 60 s (1 s scaled):")
    for b in bad:
        print(f"  first 5xx -> production on blue 100 %: {b['seconds']:.2f} s; "
              f"failed {b['failed']} of {b['sent']} requests; made by the proxy: {b['proxy_errors']}")
    print(f"  median {statistics.median(b['seconds'] for b in bad):.2f} s")
    print("linear, 10 steps of 10 %, stepBakeTimeInMinutes 1 at timeScale 60 (ideal shifting: 9 bakes = 9.0 s):")
    for r in lin:
        print(f"  deployment {r['deployment']:.2f} s = scale-up {r['scale_up']:.2f} s + shifting {r['shifting']:.2f} s "
              f"({100 * (r['shifting'] - 9) / 9:+.1f} % vs 9 s); with stack start-up {r['wall_with_startup']:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
