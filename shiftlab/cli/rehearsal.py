"""One deployment end to end, leaving nothing running: `rehearse` (a
project's own file, for CI) and `demo` (nothing to configure)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from shiftlab.cli.context import fail_config, load_settings_or_exit, setup_logging
from shiftlab.cli.options import (
    backend_option,
    config_option,
    json_option,
    load_rps_option,
    quiet_option,
    revision_options,
    revision_overrides,
    strategy_option,
    time_scale_option,
    verbose_option,
)
from shiftlab.common.configfile import ConfigError
from shiftlab.controller.vocabulary import Strategy


@click.command()
@config_option(required=True)
@revision_options(command_help="The new revision's command.")
@strategy_option()
@time_scale_option()
@backend_option()
@load_rps_option(20.0, "Background load on the production listener during the rehearsal (0: none).")
@click.option("--timeout", type=float, default=None,
              help="Give up (roll back, exit 4) after this many seconds (default: 3 x the strategy's time + 120 s, "
                   "at least 600 s).")
@click.option("--queue-rate", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
              help="A headless service's consumers: run shiftlab's work queue beside the rehearsal, N messages a "
                   "second, its URL in the tasks' QUEUE_URL; the outcome counts lost and twice-processed "
                   "messages (a lost one: exit 1).")
@json_option("Print the outcome as JSON.")
@quiet_option()
@verbose_option()
def rehearse(config_path: str, command: str | None, image: str | None, env: tuple[str, ...], cpu: str | None,
             memory: str | None, strategy: Strategy | None, time_scale: float | None, backend: str | None,
             load_rps: float, timeout: float | None, queue_rate: float | None, as_json: bool, quiet: bool,
             verbose: bool) -> None:
    """Run one deployment end to end (for CI): exit 0 on SUCCESSFUL, 1 on
    rollback or failure, 2 on a bad config, 3 when it could not start (a
    port in use, say), 4 when --timeout (or the default limit) ended it
    (rolled back then). Leaves nothing running."""
    import tempfile

    setup_logging(verbose)
    if not verbose:
        logging.getLogger("shiftlab").setLevel(logging.WARNING)
    # The strategy is checked with the rest of the file's deploymentConfiguration.
    settings = load_settings_or_exit(config_path, time_scale, controller={"backend": backend},
                                     deploymentConfiguration={"strategy": strategy})
    if settings.service is None:
        fail_config(ConfigError(["service: is required to rehearse a deployment"]), config_path)
    overrides = revision_overrides(command, image, env, cpu, memory)
    from shiftlab.rehearse import check_overrides

    try:
        check_overrides(settings, overrides)
    except ConfigError as exc:
        fail_config(exc, config_path)
    sys.exit(run_rehearsal(settings, overrides, load_rps, timeout, as_json, quiet,
                           Path(tempfile.mkdtemp(prefix="shiftlab-rehearse-")), queue_rate))


EXIT_CANNOT_START = 3
EXIT_TIMED_OUT = 4  # the rehearsal's own timeout ended a deployment still in progress


def run_rehearsal(settings: Any, overrides: dict[str, Any], load_rps: float, timeout: float | None,
                  as_json: bool, quiet: bool, state_dir: Path, queue_rate: float | None = None) -> int:
    import json
    import shutil

    from rich.console import Console
    from rich.live import Live

    from shiftlab.proxy.app import install_uvloop
    from shiftlab.rehearse import rehearse as run
    from shiftlab.view import WatchState, render

    console = Console(stderr=as_json)
    state = WatchState()
    install_uvloop()

    queue: Any = None  # with --queue-rate: shiftlab.headless.Accounting

    async def go() -> Any:
        nonlocal queue, settings
        if queue_rate is not None:
            from shiftlab.headless import with_queue, with_queue_url

            settings, url = with_queue_url(settings)
            outcome, queue, _ = await with_queue(url, state_dir, queue_rate, rehearsal)
            return outcome
        return await rehearsal(None)

    async def rehearsal(before_stop: Any) -> Any:
        if quiet or as_json or not console.is_terminal:
            return await run(settings, overrides, None, load_rps, state_dir, timeout, before_stop=before_stop)
        with Live(render(state), console=console, refresh_per_second=8) as live:
            def on_message(message: dict[str, Any]) -> None:
                state.update(message)
                live.update(render(state))

            return await run(settings, overrides, None, load_rps, state_dir, timeout, on_message,
                             before_stop=before_stop)

    try:
        outcome = asyncio.run(go())
    except ConfigError as exc:
        fail_config(exc)
    except OSError as exc:
        # Not 1: nothing was rehearsed, and CI must not take this for a rollback.
        click.echo(f"cannot start: {exc}", err=True)
        return EXIT_CANNOT_START
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    d = outcome.deployment
    summary = {
        "status": d["status"], "statusReason": d["statusReason"], "seconds": outcome.seconds,
        "strategy": d["shiftlab"]["strategy"], "rollback": d["rollback"],
        "triggeredAlarms": d["alarms"]["triggeredAlarmNames"],
        "circuitBreaker": d["deploymentCircuitBreaker"],
        "stages": [s["stage"] + (" (rollback)" if s.get("rollback") else "") for s in d["shiftlab"]["stages"]],
        "load": outcome.load.summary() if outcome.load else None,
        "secondsFromFirst5xxToRollback": outcome.rollback_seconds(),
        "timedOut": outcome.timed_out,
        **({"queue": {"sent": queue.sent, "processed": queue.processed, "lost": queue.lost,
                      "duplicates": queue.duplicates, "redelivered": queue.redelivered,
                      "byConsumer": queue.by_consumer}} if queue is not None else {}),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{d['status']}: {d['statusReason'] or ''}")
        click.echo(f"  {summary['strategy']} in {outcome.seconds:.1f} s; stages: {' > '.join(summary['stages'])}")
        if summary["triggeredAlarms"]:
            click.echo(f"  alarms: {', '.join(summary['triggeredAlarms'])}")
        if outcome.load:
            ld = summary["load"]
            click.echo(f"  load: {ld['requests']} requests, {outcome.load.failed} failed "
                       f"(by group: {ld['5xxByGroup'] or 'none'}), statuses {ld['statuses']}")
        if summary["secondsFromFirst5xxToRollback"] is not None:
            click.echo(f"  first 5xx -> production back on blue: {summary['secondsFromFirst5xxToRollback']} s")
        if queue is not None:
            click.echo(f"  {queue.line()}")
    if outcome.timed_out:
        return EXIT_TIMED_OUT
    return 0 if outcome.ok and (queue is None or queue.lost == 0) else 1


@click.command()
@click.option("--scenario", type=click.Choice(["good", "bad-canary", "slow", "cpu", "business-metric", "manual",
                                               "blue-green", "service-connect", "dns", "headless", "nlb"]),
              default="good", show_default=True)
@time_scale_option("Divide AWS durations by this (60: an ECS minute is a second).", default=60.0)
@backend_option("docker: blue and green run as containers of --image.", default="process")
@click.option("--image", default=None, metavar="IMAGE",
              help="With --backend docker: the image of blue and green (default $SHIFTLAB_DOCKER_IMAGE, else "
                   "shiftlab/sample:local, built by compose/build-images.sh); run with its own command, it must "
                   "serve like the sample service.")
@load_rps_option(40.0)
@click.option("--auto-approve", type=float, default=None, metavar="SECONDS",
              help="manual scenario: approve by itself after this long (default: 5 s when not a terminal, "
                   "less if the PAUSE would time out first).")
@click.option("--no-auto-approve", is_flag=True,
              help="manual scenario: never approve by itself; wait for `shiftlab approve` (or the dashboard).")
@quiet_option()
def demo(scenario: str, time_scale: float, backend: str, image: str | None, load_rps: float,
         auto_approve: float | None, no_auto_approve: bool, quiet: bool) -> None:
    """A rehearsal with nothing to configure: the sample service, a load, a
    deployment and what happens, live. Exit 0 when the scenario behaved as
    it should (each expectation is printed at the end; a rollback is the
    right outcome of bad-canary, slow and cpu), 1 otherwise."""
    import os
    import shutil
    import tempfile

    from shiftlab.common.timescale import parse_time_scale
    from shiftlab.demo import SAMPLE_IMAGE, SCENARIOS, demo_settings, docker_problem

    setup_logging(False)
    logging.getLogger("shiftlab").setLevel(logging.WARNING)
    if image is None and backend == "docker":
        image = os.environ.get("SHIFTLAB_DOCKER_IMAGE") or None
    if image is not None and backend != "docker":
        raise click.BadParameter("only with --backend docker (the process backend runs the sample service "
                                 "from this installation)", param_hint="--image")
    if auto_approve is not None and no_auto_approve:
        raise click.BadParameter("not with --no-auto-approve", param_hint="--auto-approve")
    if load_rps <= 0:
        raise click.BadParameter("must be positive: the scenarios' expectations are about what the load saw",
                                 param_hint="--load-rps")
    try:
        parse_time_scale(time_scale, "--time-scale")
    except ConfigError as exc:
        fail_config(exc)
    if scenario == "nlb":
        if backend != "process":
            raise click.BadParameter("the nlb scenario runs the line service as processes (--backend process)",
                                     param_hint="--backend")
        sys.exit(run_nlb_demo(time_scale, quiet))
    if backend == "docker":
        problem = docker_problem(image or SAMPLE_IMAGE)
        if problem:
            click.echo(f"cannot run the demo with the docker backend: {problem}", err=True)
            sys.exit(1)
    sc = SCENARIOS[scenario]
    state_dir = tempfile.mkdtemp(prefix="shiftlab-demo-")
    try:
        settings = demo_settings(sc, time_scale, backend, state_dir, image)
    except ConfigError as exc:
        shutil.rmtree(state_dir, ignore_errors=True)
        fail_config(exc)
    sys.exit(run_demo(sc, settings, load_rps, auto_approve, not no_auto_approve, quiet, Path(state_dir)))


def run_demo(sc: Any, settings: Any, load_rps: float, auto_approve: float | None, may_auto_approve: bool,
             quiet: bool, state_dir: Path) -> int:
    import shutil
    import time

    from rich.console import Console
    from rich.live import Live

    from shiftlab.demo import TEST_HEADER, Seen, approve_delay, summary_lines
    from shiftlab.headless import with_queue
    from shiftlab.proxy.app import install_uvloop
    from shiftlab.rehearse import LoadSpec, entry_url, production_url
    from shiftlab.rehearse import rehearse as run
    from shiftlab.view import WatchState, render

    console = Console(soft_wrap=True)  # long lines (URLs) stay whole in logs
    state = WatchState()
    live_view = not quiet and console.is_terminal
    if auto_approve is None and sc.pause and may_auto_approve and not console.is_terminal:
        auto_approve = approve_delay(sc, settings.time_scale)
    url = production_url(settings)
    # Empty URL: where the production load goes (the frontend, with Service Connect).
    extra = (LoadSpec("" if sc.service_connect else url or "", max(load_rps / 4, 5.0), {TEST_HEADER: "demo"}),) \
        if sc.test_header_load else ()
    console.print(f"[bold]shiftlab demo[/bold] · {sc.name}: {sc.summary}")
    queue: list[Any] = [None, None]  # a headless scenario's accounting and what was processed after the rollback

    def started(stack: Any) -> None:
        entry = entry_url(stack)
        console.print(f"dashboard and API: {stack.api_url}   "
                      + (f"frontend (in the namespace): {entry}   catalog alias: {url}" if entry else
                         f"production listener: {url}" if url else
                         f"work queue: {settings.service.taskDefinition.environment.get('QUEUE_URL')} "
                         f"({load_rps:g} messages/s)"), highlight=False)
        if sc.pause:
            console.print(f"approve with: shiftlab approve --url {stack.api_url}"
                          + (f"   (approving by itself in {auto_approve:g} s)" if auto_approve is not None else ""),
                          highlight=False)
            if auto_approve is not None:
                asyncio.get_running_loop().create_task(_approve_later(stack, auto_approve))

    async def go() -> Any:
        if sc.headless:
            queue_url = settings.service.taskDefinition.environment["QUEUE_URL"]
            outcome, queue[0], queue[1] = await with_queue(queue_url, state_dir, load_rps, rehearsal)
            return outcome
        return await rehearsal(None)

    async def rehearsal(before_stop: Any) -> Any:
        if not live_view:
            return await run(settings, {"env": sc.env}, None, load_rps, state_dir, None,
                             extra_loads=extra, on_started=started, slow_after=sc.slow_after,
                             before_stop=before_stop)
        with Live(render(state), console=console, refresh_per_second=8) as live:
            def on_message(message: dict[str, Any]) -> None:
                state.update(message)
                live.update(render(state))

            return await run(settings, {"env": sc.env}, None, load_rps, state_dir, None, on_message,
                             extra_loads=extra, on_started=started, slow_after=sc.slow_after,
                             before_stop=before_stop)

    install_uvloop()
    t0 = time.monotonic()
    try:
        outcome = asyncio.run(go())
    except OSError as exc:
        click.echo(f"cannot start: {exc}", err=True)
        return 1
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    seen = Seen(outcome.deployment, outcome.events, outcome.load,
                outcome.extra_loads[0] if outcome.extra_loads else None, queue[0], queue[1])
    checks = sc.check(seen)
    console.print()
    for line in summary_lines(seen, checks, sc.expect, time.monotonic() - t0):
        console.print(line, markup=False, highlight=False)
    return 0 if all(c.ok for c in checks) else 1


def run_nlb_demo(time_scale: float, quiet: bool) -> int:
    """The nlb scenario (shiftlab.demo_nlb): connections, not requests."""
    import shutil
    import tempfile

    from shiftlab.demo_nlb import checks, nlb_settings
    from shiftlab.demo_nlb import run as run_nlb
    from shiftlab.proxy.app import install_uvloop

    state_dir = tempfile.mkdtemp(prefix="shiftlab-demo-")
    try:
        settings = nlb_settings(time_scale, state_dir)
        click.echo("shiftlab demo · nlb: a canary behind a network load balancer; long-lived connections stay on "
                   "blue while new ones follow the weights")
        install_uvloop()
        seen = asyncio.run(run_nlb(settings, None if quiet else click.echo))
    except ConfigError as exc:
        fail_config(exc)
    except OSError as exc:
        click.echo(f"cannot start: {exc}", err=True)
        return 1
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    results = checks(seen)
    click.echo()
    for c in results:
        click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.what}: {c.seen}")
    return 0 if all(c.ok for c in results) else 1


async def _approve_later(stack: Any, seconds: float) -> None:
    ctl = stack.controller
    while ctl is not None:
        d = ctl.current
        if d is not None and d.hook is not None and d.hook.kind == "PAUSE":
            await asyncio.sleep(seconds)
            ctl.approve(d.id)
            return
        if d is not None and d.final:
            return
        await asyncio.sleep(0.1)
