#!/usr/bin/env python3
"""How fast `shiftlab simulate` is (shiftlab.simulate.engine). Run on
demand; nothing is asserted. The goals (issue 15): a 45-minute linear
rollout over a million simulated requests in under a second, and 1,000
seeded runs in under 30 s, on this machine (2 cores).

    .venv/bin/python tests/perf/bench_simulate.py
    .venv/bin/python tests/perf/bench_simulate.py --runs 1000 --repeat 3

Cases, on the annotated example's load balancer and service with AWS's
walkthrough alarm over both groups (metric math SUM of the 5xx counts):
- one LINEAR rollout, 10 % steps, 5 minutes between (45 minutes of shifts), at
  370.4 req/s (a million requests in 45 minutes), green healthy: it runs
  to the end, every alarm evaluated all the way;
- the same with a latency alarm too (TargetResponseTime p99 on green: the
  histogram's buckets every look);
- `--runs` seeded runs of a canary whose green fails 5 % of its requests
  (each run to its rollback), as `--runs N` does.
Each figure is the best of `--repeat`, with its ratio to the goal.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shiftlab.settings import load_settings
from shiftlab.simulate.engine import run
from shiftlab.simulate.scenario import load_scenario

LATENCY_ALARM = {
    "AlarmName": "green-p99", "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
    "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/green/0123456789abcdef"},
                   {"Name": "LoadBalancer", "Value": "app/my-load-balancer/0123456789abcdef"}],
    "ExtendedStatistic": "p99", "Period": 60, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 0.5,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}


def settings(deployment: dict[str, Any], latency: bool = False) -> Any:
    data = yaml.safe_load(resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8"))
    data["deploymentConfiguration"] = {**data["deploymentConfiguration"], **deployment}
    if latency:
        data["alarms"].append(LATENCY_ALARM)
        data["deploymentConfiguration"]["alarms"]["alarmNames"].append("green-p99")
    return load_settings(data)


def best(repeat: int, fn: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - began)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    linear = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 5},
              "bakeTimeInMinutes": 0}
    rps = 1_000_000 / (45 * 60)
    world, traffic = load_scenario(None, {"traffic": {"rps": rps}, "green": {}})
    print(f"{'case':<52} {'seconds':>9} {'goal':>6} {'ratio':>6}  detail")
    for name, s in (("45-min linear, 1M requests, 5xx alarm", settings(linear)),
                    ("45-min linear, 1M requests, 5xx + p99 alarms", settings(linear, latency=True))):
        secs, r = best(args.repeat, lambda s=s: run(s, world, traffic, seed=1, samples=False))
        print(f"{name:<52} {secs:>9.3f} {1.0:>6.1f} {secs / 1.0:>6.2f}  {r.status}, {r.requests:,} requests, "
              f"{r.duration:g} min")
    canary = settings({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5,
                                                                     "canaryBakeTimeInMinutes": 20}})
    bad, bad_traffic = load_scenario(None, {"traffic": {"rps": 50}, "green": {"errorRate": 0.05}})

    def many() -> list[Any]:
        return [run(canary, bad, bad_traffic, seed=i, samples=False) for i in range(args.runs)]

    secs, results = best(max(1, args.repeat // 3), many)
    rolled = sum(r.rolled_back for r in results)
    goal = 30.0 * args.runs / 1000
    print(f"{f'{args.runs} seeded canary runs, green 5% errors':<52} {secs:>9.3f} {goal:>6.1f} {secs / goal:>6.2f}  "
          f"{rolled} rolled back, {1000 * secs / args.runs:.2f} ms a run")
    good, good_traffic = load_scenario(None, {"traffic": {"rps": rps}, "green": {}})

    linear_settings = settings(linear)

    def many_linear() -> list[Any]:
        return [run(linear_settings, good, good_traffic, seed=i, samples=False) for i in range(100)]

    secs, _ = best(1, many_linear)
    print(f"{'100 seeded 45-min linear runs (no fault, to the end)':<52} {secs:>9.3f} {3.0:>6.1f} "
          f"{secs / 3.0:>6.2f}  {1000 * secs / 100:.2f} ms a run")


if __name__ == "__main__":
    main()
