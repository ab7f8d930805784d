"""`shiftlab simulate`: a config's rollout in virtual time (shiftlab.simulate),
several configs or a sweep side by side, many seeded runs, a chart."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import click

from shiftlab.cli.context import fail_config
from shiftlab.cli.options import json_option
from shiftlab.common.configfile import ConfigError, load_file

EXIT_UNMET = 1  # --expect or --max-blast-radius not met
MAX_VARIANTS = 50
MAX_TOTAL_RUNS = 100_000

# Sweeps: the flag, the deploymentConfiguration field it sets, the strategy it implies.
SWEEPS = {
    "canary_percent": ("canaryConfiguration", "canaryPercent", "CANARY"),
    "canary_bake": ("canaryConfiguration", "canaryBakeTimeInMinutes", "CANARY"),
    "step_percent": ("linearConfiguration", "stepPercent", "LINEAR"),
    "step_bake": ("linearConfiguration", "stepBakeTimeInMinutes", "LINEAR"),
}


def _numbers(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
    if not out:
        raise click.BadParameter("give at least one number")
    return out


def _range(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    a, sep, b = value.partition(":")
    try:
        return (float(a), float(b)) if sep else (float(a), float(a))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not LOW:HIGH") from None


@click.command()
@click.option("-c", "--config", "configs", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="shiftlab.yaml (repeat to compare configurations side by side).")
@click.option("--scenario", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The world: traffic, blue's baseline, green's fault, metrics, tasks, hooks (YAML or JSON).")
@click.option("--rps", type=float, default=None, help="Constant production traffic, requests per second.")
@click.option("--rps-from", "profile", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A recorded profile: `shiftlab load --json` output, or a CSV of per-minute request counts.")
@click.option("--daily", callback=_range, default=None, metavar="TROUGH:PEAK",
              help="A daily curve between these requests per second (peak at 14h, the rollout at 10h).")
@click.option("--error-rate", type=float, default=None, help="Green's fault: the share of its requests that fail.")
@click.option("--latency-ms", callback=_range, default=None, metavar="P50:P99",
              help="Green's fault: its response time (median and 99th percentile, ms).")
@click.option("--cpu-percent", type=float, default=None, help="Green's fault: its tasks' CPU, percent.")
@click.option("--fault-after", type=float, default=None, metavar="MINUTES",
              help="Green's fault starts this long after the deployment starts.")
@click.option("--crash-at", type=float, default=None, metavar="MINUTES", help="Every green task exits then.")
@click.option("--canary-percent", callback=_numbers, default=None, metavar="LIST",
              help="Sweep canaryPercent (e.g. 1,5,10): one row each.")
@click.option("--canary-bake", callback=_numbers, default=None, metavar="LIST", help="Sweep canaryBakeTimeInMinutes.")
@click.option("--step-percent", callback=_numbers, default=None, metavar="LIST", help="Sweep linear stepPercent.")
@click.option("--step-bake", callback=_numbers, default=None, metavar="LIST", help="Sweep stepBakeTimeInMinutes.")
@click.option("--runs", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Seeded runs per configuration: medians and p95s.")
@click.option("--seed", type=int, default=0, show_default=True, help="The first run's seed (then seed+1, ...).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Write a chart (weights, error rate, alarm states) of each configuration's first run here.")
@click.option("--timeline", is_flag=True, help="Print each configuration's first run step by step.")
@click.option("--expect", type=click.Choice(["success", "rollback"]), default=None,
              help="Exit 1 unless every run of every configuration ends so.")
@click.option("--max-blast-radius", type=float, default=None, metavar="N",
              help="Exit 1 when a configuration's p95 of requests green failed is above N.")
@json_option("Print the report as JSON.")
def simulate(configs: tuple[str, ...], scenario: str | None, rps: float | None, profile: str | None,
             daily: tuple[float, float] | None, error_rate: float | None, latency_ms: tuple[float, float] | None,
             cpu_percent: float | None, fault_after: float | None, crash_at: float | None,
             canary_percent: list[float] | None, canary_bake: list[float] | None, step_percent: list[float] | None,
             step_bake: list[float] | None, runs: int, seed: int, html_path: str | None, timeline: bool,
             expect: str | None, max_blast_radius: float | None, as_json: bool) -> None:
    """What a rollout would do, in virtual time: the controller's own state
    machine and alarm evaluator against modelled traffic and a modelled fault
    of green. Reports per configuration the outcome, rollout duration, time
    to detect and to roll back, requests green served and failed (the blast
    radius). Times are AWS minutes, whatever timeScale says. Exit 0; 1 when
    --expect or --max-blast-radius is not met; 2 for an invalid config or
    scenario."""
    import json

    from shiftlab.simulate import chart, report
    from shiftlab.simulate.engine import run
    from shiftlab.simulate.scenario import load_scenario

    traffic_flags = {k: v for k, v in (("rps", rps), ("profile", profile),
                                       ("daily", {"trough": daily[0], "peak": daily[1]} if daily else None))
                     if v is not None}
    if len(traffic_flags) > 1:
        raise click.BadParameter("give one of --rps, --rps-from and --daily", param_hint="--rps")
    green = {k: v for k, v in (("errorRate", error_rate), ("cpuPercent", cpu_percent),
                               ("startsAfterMinutes", fault_after), ("crashAtMinutes", crash_at),
                               ("latency", {"p50Ms": latency_ms[0], "p99Ms": latency_ms[1]} if latency_ms else None))
             if v is not None}
    try:
        world, traffic = load_scenario(scenario, {"traffic": traffic_flags, "green": green})
    except ConfigError as exc:
        fail_config(exc, scenario or "scenario flags")
    sweeps = {k: v for k, v in (("canary_percent", canary_percent), ("canary_bake", canary_bake),
                                ("step_percent", step_percent), ("step_bake", step_bake)) if v}
    if len({SWEEPS[n][2] for n in sweeps}) > 1:
        raise click.BadParameter("sweep one strategy's fields: canary (--canary-*) or linear (--step-*), not both",
                                 param_hint="--step-percent")
    variants = _variants(configs, sweeps)
    from shiftlab.simulate.scenario import problems_with

    for label, settings in variants:
        bad = problems_with(world, len(settings.deployment.lifecycleHooks))
        if bad:
            fail_config(ConfigError(bad), f"{scenario or 'scenario flags'} with {label}")
    if len(variants) > MAX_VARIANTS:
        raise click.BadParameter(f"{len(variants)} configurations; at most {MAX_VARIANTS}", param_hint="--config")
    if len(variants) * runs > MAX_TOTAL_RUNS:
        raise click.BadParameter(f"{len(variants)} configurations x {runs} runs; at most {MAX_TOTAL_RUNS} in all",
                                 param_hint="--runs")
    summaries, examples, all_runs = [], [], []
    for label, settings in variants:
        results = [run(settings, world, traffic, seed=seed + i, label=label, samples=i == 0 and bool(html_path))
                   for i in range(runs)]
        summaries.append(report.summarize(label, results))
        examples.append(results[0])
        all_runs.append(results)
    problems = report.unmet(summaries, expect, max_blast_radius)
    if html_path:
        Path(html_path).write_text(chart.html(summaries, examples), encoding="utf-8")
    if as_json:
        doc = {"traffic": traffic.describe(), "runs": runs, "seed": seed, "expect": expect,
               "unmet": problems,
               "configurations": [{**report.summary_json(s),
                                   "runs": [report.run_json(r, detail=runs == 1) for r in rs]}
                                  for s, rs in zip(summaries, all_runs, strict=True)]}
        click.echo(json.dumps(doc, indent=2))
    else:
        fault = _describe_fault(world)
        flow = f"traffic {traffic.describe()}"
        if all(s.headless for s in summaries):  # no requests: the rate is messages the working tasks take
            flow = f"messages {traffic.describe().replace('req/s', 'a second')} (headless: no request traffic)"
        click.echo(f"{flow}; green: {fault}; {runs} run(s) from seed {seed}; "
                   f"times in AWS minutes{'; median / p95' if runs > 1 else ''}")
        click.echo(report.table(summaries), nl=False)
        if timeline:
            for r in examples:
                click.echo(f"\n{r.label} (seed {r.seed}):")
                click.echo(report.timeline(r), nl=False)
        if html_path:
            click.echo(f"chart: {html_path}")
        for p in problems:
            click.echo(f"unmet: {p}", err=True)
    sys.exit(EXIT_UNMET if problems else 0)


def _describe_fault(world: Any) -> str:
    g = world.green
    parts = []
    if g.errorRate is not None:
        parts.append(f"{100 * g.errorRate:g}% errors")
    if g.latency is not None:
        parts.append(f"latency p50 {g.latency.p50Ms:g} ms p99 {g.latency.p99Ms:g} ms")
    if g.cpuPercent is not None:
        parts.append(f"CPU {g.cpuPercent:g}%")
    if g.crashAtMinutes is not None:
        parts.append(f"crash at {g.crashAtMinutes:g} min")
    if any(m.green is not None for m in world.metrics):
        parts.append("app metrics " + ", ".join(m.MetricName for m in world.metrics if m.green is not None))
    if not parts:
        return "no fault"
    when = []
    if g.startsAfterMinutes:
        when.append(f"from {g.startsAfterMinutes:g} min")
    if g.onlyAboveRps is not None:
        when.append(f"above {g.onlyAboveRps:g} req/s")
    return ", ".join(parts) + (f" ({', '.join(when)})" if when else "")


def _variants(configs: tuple[str, ...], sweeps: dict[str, list[float]]) -> list[tuple[str, Any]]:
    """Each config, with each combination of the swept values: (label, settings)."""
    from shiftlab.settings import load_settings

    out = []
    names = list(sweeps)
    for path in configs:
        try:
            base = load_file(path)
        except ConfigError as exc:
            fail_config(exc, path)
        for combo in itertools.product(*(sweeps[n] for n in names)) if names else [()]:
            data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
            dc = dict(data.get("deploymentConfiguration") or {})
            label = path
            for name, value in zip(names, combo, strict=True):
                section, field, strategy = SWEEPS[name]
                dc["strategy"] = strategy
                dc[section] = {**(dc.get(section) or {}), field: value}
                label += f" {field}={value:g}"
            if names:
                data["deploymentConfiguration"] = dc
            try:
                settings = load_settings(data)
            except ConfigError as exc:
                fail_config(exc, path)
            if settings.service is None:
                fail_config(ConfigError(["service: is required to simulate a deployment"]), path)
            out.append((label, settings))
    return out
