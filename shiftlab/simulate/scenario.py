"""A simulation's world, as a file (`--scenario`, YAML or JSON) or flags:
the traffic, blue's baseline, green's fault, the tasks' metrics, how long
tasks take to start and stop, and how hooks and approvals answer.

    traffic: {rps: 50}                       # or daily: {trough, peak, peakHour, startHour}, or profile: file
    blue: {errorRate: 0.001, latency: {p50Ms: 20, p99Ms: 80}, cpuPercent: 30}
    green: {errorRate: 0.2, startsAfterMinutes: 12, onlyAboveRps: 100, crashAtMinutes: 5}
    metrics: [{Namespace: CustomApp/Payments, MetricName: TransactionFailureRate, blue: 0.1, green: 2}]
    tasks: {startSeconds: 60}
    hooks: [{hook: 0, seconds: 120, answer: SUCCEEDED}]

Every duration is in AWS time (minutes or seconds as named), whatever the
config's timeScale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from shiftlab.common.configfile import ConfigError, Model, load_file, parse
from shiftlab.simulate.faults import AppMetric, Behaviour, GreenFault, HookModel
from shiftlab.simulate.traffic import Constant, Daily, Traffic, recorded


class DailySpec(Model):
    trough: Annotated[float, Field(ge=0)]
    peak: Annotated[float, Field(gt=0)]
    peakHour: Annotated[float, Field(ge=0, lt=24)] = 14.0
    startHour: Annotated[float, Field(ge=0, lt=24)] = 10.0

    @model_validator(mode="after")
    def _ordered(self) -> DailySpec:
        if self.trough > self.peak:
            raise ValueError(f"trough ({self.trough:g}) is above peak ({self.peak:g})")
        return self


class TrafficSpec(Model):
    """One of: `rps` (constant), `daily`, `profile` (a file: `shiftlab load
    --json` output or a CSV of per-minute counts, relative to the scenario)."""

    rps: Annotated[float | None, Field(gt=0)] = None
    daily: DailySpec | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TrafficSpec:
        given = [n for n in ("rps", "daily", "profile") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of rps, daily and profile, not {' and '.join(given)}")
        return self


class Tasks(Model):
    """`startSeconds`: a new task starting and passing its health checks;
    `stopSeconds`: stopping a task set (default: its target group's
    deregistration delay)."""

    startSeconds: Annotated[float, Field(ge=0)] = 60.0
    stopSeconds: Annotated[float | None, Field(ge=0)] = None


class Scenario(Model):
    traffic: TrafficSpec = TrafficSpec(rps=10.0)
    blue: Behaviour = Behaviour()
    green: GreenFault = GreenFault()
    metrics: list[AppMetric] = []
    tasks: Tasks = Tasks()
    hooks: list[HookModel] = []
    # The longest a run lasts (AWS minutes); None: 3 x the strategy's time + 60.
    maxMinutes: Annotated[float | None, Field(gt=0)] = None


def load_scenario(path: str | None, overrides: dict[str, Any] | None = None) -> tuple[Scenario, Traffic]:
    """The scenario file (or an empty one) with `overrides` (section -> fields,
    as flags give them) merged in, and its traffic model. Raises ConfigError
    naming each bad field (`scenario.green.errorRate: ...`)."""
    data: dict[str, Any] = load_file(path) if path else {}
    if not isinstance(data, dict):
        raise ConfigError(["scenario: expected a mapping of sections"])
    for section, fields in (overrides or {}).items():
        if not isinstance(fields, dict) or (section == "traffic" and fields):
            data[section] = fields  # a list, or the one traffic model: a flag's replaces the file's
            continue
        current = data.get(section)
        data[section] = {**(current if isinstance(current, dict) else {}), **fields}
    scenario: Scenario = parse(Scenario, data, "scenario")
    # A profile named in the file is found beside it; one from a flag, where the command runs.
    from_flag = isinstance((overrides or {}).get("traffic"), dict) and "profile" in (overrides or {})["traffic"]
    base = Path(path).parent if path and not from_flag else Path.cwd()
    return scenario, traffic_of(scenario.traffic, base)


def traffic_of(spec: TrafficSpec, base: Path) -> Traffic:
    if spec.daily is not None:
        d = spec.daily
        return Daily(d.trough, d.peak, d.peakHour, d.startHour)
    if spec.profile is not None:
        p = Path(spec.profile)
        p = p if p.is_absolute() else base / p
        try:
            return recorded(p.read_text(encoding="utf-8"), spec.profile)
        except OSError as exc:
            raise ConfigError([f"scenario.traffic.profile: cannot read {spec.profile!r}: {exc.strerror}"]) from None
        except ValueError as exc:
            raise ConfigError([f"scenario.traffic.profile: {exc}"]) from None
    return Constant(spec.rps if spec.rps is not None else 10.0)




def problems_with(scenario: Scenario, hooks: int) -> list[str]:
    """What the scenario says that this configuration cannot use: a hook
    model for a hook it does not have (`hooks`: how many lifecycleHooks)."""
    out = []
    for i, h in enumerate(scenario.hooks):
        if h.hook >= hooks:
            out.append(f"scenario.hooks[{i}].hook: {h.hook} names no hook of deploymentConfiguration.lifecycleHooks "
                       f"({hooks} hook{'s' if hooks != 1 else ''})")
    return out
