"""What a simulation reports: per configuration, over its seeded runs, the
outcomes, the rollout's duration, time to detect and to roll back, the
requests green served and those it failed (the blast radius), with the
median and 95th percentile where there are several runs; as a table (one
row per configuration, side by side), as JSON, and the expectation check
a CI job exits on.

Times are AWS minutes from the deployment's start. Time to detect: from
green first failing users (or crashing, or its CPU or metric going bad) to
the rollback's start; time to roll back: to production traffic back on blue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shiftlab.simulate.engine import RunResult


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between order statistics; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    label: str
    strategy: str
    runs: int
    outcomes: dict[str, int]  # status -> runs
    rolled_back: int
    duration: dict[str, float | None]  # median, p95 (minutes)
    time_to_detect: dict[str, float | None]
    time_to_rollback: dict[str, float | None]
    green_requests: dict[str, float | None]
    blast_radius: dict[str, float | None]  # requests green failed
    requests: dict[str, float | None]
    detected_by: dict[str, int]
    alarms_off: int  # runs that started with a watched alarm in ALARM: ECS watched none
    headless: bool = False  # no request traffic: the request columns do not apply (n/a)

    @property
    def outcome(self) -> str:
        """The most common outcome, with its share when the runs disagree."""
        status, n = max(self.outcomes.items(), key=lambda kv: (kv[1], kv[0]))
        # Rounded down: 199 of 200 is 99 %, never a 100 % that is not all of them.
        return status if n == self.runs else f"{status} {math.floor(1000 * n / self.runs) / 10:g}%"


def _dist(values: Sequence[float | None]) -> dict[str, float | None]:
    xs = [v for v in values if v is not None]
    med, p95 = quantile(xs, 0.5), quantile(xs, 0.95)
    return {"median": None if med is None else round(med, 3), "p95": None if p95 is None else round(p95, 3),
            "runs": len(xs)}


def summarize(label: str, runs: Sequence[RunResult]) -> Summary:
    assert runs, "a summary needs at least one run"
    return Summary(
        label=label, strategy=runs[0].strategy, runs=len(runs),
        outcomes=dict(Counter(r.status for r in runs)), rolled_back=sum(r.rolled_back for r in runs),
        duration=_dist([r.duration for r in runs]), time_to_detect=_dist([r.time_to_detect for r in runs]),
        time_to_rollback=_dist([r.time_to_rollback for r in runs]),
        green_requests=_dist([r.green_requests for r in runs]), blast_radius=_dist([r.green_failed for r in runs]),
        requests=_dist([r.requests for r in runs]),
        detected_by=dict(Counter(r.detected_by for r in runs if r.detected_by)),
        alarms_off=sum(1 for r in runs if r.alarms_off), headless=runs[0].headless)


# -- text ------------------------------------------------------------------------

COLUMNS = ("configuration", "strategy", "outcome", "duration", "detect", "rollback", "green req", "failed (blast)",
           "caught by")


def _fmt(v: float | None, unit: str = "", whole: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}{unit}" if whole else f"{v:.1f}{unit}"


def _pair(d: dict[str, float | None], unit: str = "", whole: bool = False) -> str:
    """The median alone for one run; median / p95 for several."""
    if d["runs"] == 0:
        return "-"
    med = _fmt(d["median"], unit, whole)
    return med if d["runs"] == 1 or d["median"] == d["p95"] else f"{med} / {_fmt(d['p95'], unit, whole)}"


def table(summaries: Sequence[Summary]) -> str:
    """One row per configuration; with several runs each cell is median / p95."""
    rows = [COLUMNS]
    for s in summaries:
        by = "-"
        if s.detected_by:
            name, n = max(s.detected_by.items(), key=lambda kv: kv[1])
            by = name if n == s.runs else f"{name} ({n} of {s.runs})"
        requests = ("n/a", "n/a") if s.headless else (_pair(s.green_requests, whole=True),
                                                      _pair(s.blast_radius, whole=True))
        rows.append((s.label, s.strategy, s.outcome, _pair(s.duration, " min"), _pair(s.time_to_detect, " min"),
                     _pair(s.time_to_rollback, " min"), *requests, by))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [""]
    for s in summaries:
        if s.alarms_off:
            notes.append(f"{s.label}: in {s.alarms_off} of {s.runs} run(s) a watched alarm was already in ALARM as "
                         f"the deployment started (blue's own errors): as ECS, that deployment watched no alarm")
    return "\n".join(lines + (notes if len(notes) > 1 else [])) + "\n"


def timeline(run: RunResult) -> str:
    """One run, step by step: stages, weights, alarm changes, the end."""
    events: list[tuple[float, int, str]] = []
    for st in run.stages:
        events.append((st["start"], 1, f"{st['stage']}{' (rollback)' if st['rollback'] else ''}"))
    for w in run.weights:
        events.append((w["t"], 2, f"  {w['traffic']} traffic {w['percent']:g}% green"))
    for a in run.activations:  # headless: which revision works, in place of weights
        names = " and ".join(f"{'blue' if r == '1' else 'green'} (revision {r})" for r in a["active"])
        events.append((a["t"], 0, f"  active: {names}, by {a['by']}"))
    for a in run.alarm_timeline:
        if a["t"] >= 0:
            events.append((a["t"], 0, f"  alarm {a['alarm']}: {a['state']}"))
    if run.fault_at is not None:
        events.append((run.fault_at, 3, "  green's fault shows (green working)" if run.headless
                       else "  green's fault reaches users"))
    if run.alarms_off:
        events.append((0.0, 0, f"  {', '.join(run.alarms_off)} in ALARM as the deployment starts: alarms not watched"))
    events.sort(key=lambda e: (e[0], e[1]))
    out = [f"{t:7.2f} min  {text}" for t, _, text in events]
    end = f"{run.duration:7.2f} min  " if run.duration is not None else " " * 13
    out.append(f"{end}{run.status}: {run.reason}")
    return "\n".join(out) + "\n"


# -- JSON ------------------------------------------------------------------------

def run_json(run: RunResult, detail: bool) -> dict[str, Any]:
    doc = {k: v for k, v in asdict(run).items() if k != "samples"}
    doc["timeToDetect"] = run.time_to_detect
    doc["timeToRollback"] = run.time_to_rollback
    if run.headless:  # no request traffic: no request counts (null, not 0), no weights
        for k in ("requests", "green_requests", "green_failed", "failed"):
            doc[k] = None
        doc.pop("weights")
    else:
        doc.pop("activations")
    if not detail:
        for k in ("stages", "weights", "alarm_timeline", "activations"):
            doc.pop(k, None)
    return _camel(doc)


def _camel(doc: dict[str, Any]) -> dict[str, Any]:
    def camel(k: str) -> str:
        head, *rest = k.split("_")
        return head + "".join(p.title() for p in rest)
    return {camel(k): v for k, v in doc.items()}


def summary_json(s: Summary) -> dict[str, Any]:
    doc = _camel(asdict(s))
    doc["outcome"] = s.outcome
    if s.headless:  # no request traffic: the request distributions do not apply
        for k in ("greenRequests", "blastRadius", "requests"):
            doc[k] = None
    return doc


# -- expectations -------------------------------------------------------------------

EXPECTATIONS = ("success", "rollback")


def unmet(summaries: Sequence[Summary], expect: str | None, max_blast_radius: float | None) -> list[str]:
    """Why the simulation fails a CI job: configurations whose runs did not all
    end as `expect` says, or whose p95 blast radius is above the limit."""
    out = []
    for s in summaries:
        if expect == "success":
            good = s.outcomes.get("SUCCESSFUL", 0)
            if good != s.runs:
                out.append(f"{s.label}: {s.runs - good} of {s.runs} run(s) did not succeed "
                           f"({', '.join(f'{k} {v}' for k, v in sorted(s.outcomes.items()))})")
        elif expect == "rollback" and s.rolled_back != s.runs:
            out.append(f"{s.label}: {s.runs - s.rolled_back} of {s.runs} run(s) did not roll back "
                       f"({', '.join(f'{k} {v}' for k, v in sorted(s.outcomes.items()))})")
        p95 = s.blast_radius["p95"]
        if max_blast_radius is not None and p95 is not None and p95 > max_blast_radius:
            out.append(f"{s.label}: p95 blast radius {p95:,.0f} failed requests is above --max-blast-radius "
                       f"{max_blast_radius:,.0f}")
    return out
