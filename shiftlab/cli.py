"""The `shiftlab` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from shiftlab.common.configfile import ConfigError, load_file

EXIT_CONFIG = 2


def fail_config(exc: ConfigError, source: str | None = None) -> NoReturn:
    head = f"{source}: invalid configuration" if source else "invalid configuration"
    click.echo(f"{head} ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}):", err=True)
    for p in exc.problems:
        click.echo(f"  {p}", err=True)
    sys.exit(EXIT_CONFIG)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )


def time_scale_of(data: dict[str, Any], override: float | None) -> float:
    from shiftlab.common.timescale import parse_time_scale

    return parse_time_scale(data.get("timeScale", 1) if override is None else override)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shiftlab")
def main() -> None:
    """Rehearse Amazon ECS deployments on one machine: an ALB-like proxy and an
    ECS-like deployment controller, with the AWS field names you already use."""


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="shiftlab.yaml (YAML or JSON); the loadBalancer section is used.")
@click.option("--time-scale", type=float, default=None,
              help="Divide AWS durations (health-check intervals, deregistration delay) by this.")
@click.option("--admin-port", type=int, default=None, help="Override loadBalancer.Admin.Port.")
@click.option("-v", "--verbose", is_flag=True)
def proxy(config_path: str, time_scale: float | None, admin_port: int | None, verbose: bool) -> None:
    """Run the load balancer alone (the ALB emulator)."""
    from shiftlab.proxy.app import Proxy, install_uvloop, run_until_signalled
    from shiftlab.proxy.config import load_balancer_from_dict

    setup_logging(verbose)
    try:
        data = load_file(config_path)
        if "loadBalancer" not in data:
            raise ConfigError(["loadBalancer: is required"])
        lb_conf = load_balancer_from_dict(data["loadBalancer"])
        scale = time_scale_of(data, time_scale)
        px = Proxy(lb_conf, time_scale=scale, admin_port=admin_port)
    except ConfigError as exc:
        fail_config(exc, config_path)
    install_uvloop()

    async def run() -> None:
        await run_until_signalled(px)

    try:
        asyncio.run(run())
    except OSError as exc:
        click.echo(f"cannot start the load balancer: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
def validate(config_path: str) -> None:
    """Check a config file; exit 0, or 2 with every problem and its field path."""
    from shiftlab.settings import load_settings

    try:
        settings = load_settings(load_file(config_path))
    except ConfigError as exc:
        fail_config(exc, config_path)
    click.echo(f"{config_path}: OK ({settings.summary()})")


# -- the controller ------------------------------------------------------------

DEFAULT_CONFIG = "shiftlab.yaml"


def load_settings_or_exit(config_path: str, time_scale: float | None = None,
                          controller: dict[str, Any] | None = None) -> Any:
    """`controller`: fields of the controller section set by options, checked
    (and named in errors) as if the file held them."""
    from shiftlab.settings import load_settings

    try:
        data = load_file(config_path)
        if time_scale is not None:
            data["timeScale"] = time_scale
        if controller:
            section = data.get("controller")
            data["controller"] = {**(section if isinstance(section, dict) else {}), **controller}
        return load_settings(data)
    except ConfigError as exc:
        fail_config(exc, config_path)


def config_option(required: bool = False) -> Any:
    return click.option("-c", "--config", "config_path", default=None if required else DEFAULT_CONFIG,
                        required=required, type=click.Path(dir_okay=False), show_default=not required,
                        help="shiftlab.yaml (YAML or JSON).")


def client_for(config_path: str | None, url: str | None) -> Any:
    """The controller API named by --url, else by the config file's controller section."""
    from shiftlab.client import Client
    from shiftlab.common.netsafety import resolve_token

    token = None
    if url is None:
        runtime: dict[str, Any] = {}
        if config_path and Path(config_path).exists():
            try:
                runtime = load_file(config_path).get("controller") or {}
            except ConfigError as exc:
                fail_config(exc, config_path)
        url = f"http://{runtime.get('address', '127.0.0.1')}:{runtime.get('port', 9091)}"
        token = runtime.get("token")
    return Client(url, resolve_token(token))


def api_call(fn: Any) -> Any:
    from shiftlab.client import ApiError

    try:
        return fn()
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        for p in exc.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_CONFIG if exc.status == 400 else 1)


def url_option() -> Any:
    return click.option("--url", default=None, help="Controller API URL (default: from the config file, "
                                                    "else http://127.0.0.1:9091).")


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


def revision_overrides(command: str | None, image: str | None, env: tuple[str, ...], cpu: str | None = None,
                       memory: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if command:
        out["command"] = command
    if image:
        out["image"] = image
    if cpu:
        out["cpu"] = cpu
    if memory:
        out["memory"] = memory
    if env:
        out["env"] = parse_env(env)
    return out


@main.command()
@config_option()
@click.option("--time-scale", type=float, default=None, help="Override timeScale (60: an ECS minute is a second).")
@click.option("--backend", type=click.Choice(["process", "docker"]), default=None, help="Override controller.backend.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="Override controller.stateDir.")
@click.option("--proxy-admin-url", default=None, metavar="URL",
              help="Override controller.proxyAdminUrl: run the controller only, against the load balancer "
                   "whose admin API is there (a `shiftlab proxy -c FILE` with the same file).")
@click.option("-v", "--verbose", is_flag=True)
def up(config_path: str, time_scale: float | None, backend: str | None, state_dir: str | None,
       proxy_admin_url: str | None, verbose: bool) -> None:
    """Run the proxy, the controller and the running revision's tasks in the
    foreground; Ctrl-C stops everything it started. The proxy runs in a
    process of its own, which serves on if the controller dies; `up` run
    again adopts it. With a proxy admin URL, the proxy is yours to run."""
    from shiftlab.controller.router import RouterError
    from shiftlab.proxy.app import install_uvloop
    from shiftlab.proxyprocess import (
        AlreadyRunning,
        ProxyProcess,
        ProxyProcessError,
        StateDirLock,
        controller_answering,
    )
    from shiftlab.stack import Stack

    setup_logging(verbose)
    settings = load_settings_or_exit(config_path, time_scale,
                                     {"proxyAdminUrl": proxy_admin_url} if proxy_admin_url else None)
    if backend:
        settings = _with_runtime(settings, backend=backend)
    lb = None
    try:
        stack = Stack(settings, state_dir=state_dir, separate_proxy=True)
        if settings.controller.proxyAdminUrl is None:
            lb = ProxyProcess(settings, config_path, stack.state_dir, time_scale, verbose)
    except ConfigError as exc:
        fail_config(exc, config_path)
    install_uvloop()
    lock = StateDirLock(stack.state_dir)
    try:
        # Two controllers on one load balancer and one state directory would
        # fight over its weights and tasks.
        url = controller_answering(settings)
        if url is not None:
            raise AlreadyRunning(f"another `shiftlab up` is running for this file at {url}")
        lock.acquire()
        asyncio.run(_run_up(stack, lb))
    except AlreadyRunning as exc:
        click.echo(f"cannot start: {exc}", err=True)
        sys.exit(1)
    except ConfigError as exc:
        fail_config(exc, config_path)
    except (OSError, RouterError, ProxyProcessError) as exc:
        click.echo(f"cannot start: {exc}", err=True)
        sys.exit(1)
    finally:
        lock.release()


async def _run_up(stack: Any, lb: Any) -> None:
    """Until SIGINT or SIGTERM: the load balancer process (when `up` runs
    one), then the controller; stopped in the reverse order."""
    import gc
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if lb is not None:
            await lb.start()
            stack.proxy_admin_url = lb.admin_url
        await stack.start()
    except BaseException:
        if lb is not None:
            await lb.stop(only_started_here=True)
        raise
    watcher = asyncio.create_task(lb.watch()) if lb is not None else None
    gc.freeze()  # as run_until_signalled does: what exists now lives as long as the process
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        try:
            await stack.stop()
        finally:
            if lb is not None:
                await lb.stop()


def _with_runtime(settings: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(settings, controller=settings.controller.model_copy(update=changes))


@main.command()
@config_option()
@url_option()
@click.option("--command", "command", default=None, help="The new revision's command (process backend).")
@click.option("--image", default=None, help="The new revision's image (docker backend).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment of the new revision (repeat).")
@click.option("--cpu", default=None, metavar="UNITS",
              help="The new revision's CPU limit, as ECS takes it: units (1024 = one vCPU) or '0.5 vCPU' "
                   "(docker backend).")
@click.option("--memory", default=None, metavar="MIB",
              help="The new revision's memory limit, as ECS takes it: MiB or '1 GB' (docker backend).")
@click.option("--strategy", type=click.Choice(["ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"]), default=None)
@click.option("--deployment-configuration", "dc_json", default=None, metavar="JSON|@FILE",
              help="deploymentConfiguration fields to override, as update-service takes them.")
@click.option("--watch", is_flag=True, help="Follow the deployment live until it ends.")
def deploy(config_path: str, url: str | None, command: str | None, image: str | None, env: tuple[str, ...],
           cpu: str | None, memory: str | None, strategy: str | None, dc_json: str | None, watch: bool) -> None:
    """Start a deployment of a new revision (update-service --force-new-deployment)."""
    client = client_for(config_path, url)
    body: dict[str, Any] = {"taskDefinition": revision_overrides(command, image, env, cpu, memory)}
    if strategy:
        body["strategy"] = strategy
    if dc_json:
        body["deploymentConfiguration"] = _json_arg(dc_json, "--deployment-configuration")
    d = api_call(lambda: client.post("/api/deployments", body))
    sl = d["shiftlab"]
    click.echo(f"deployment {sl['id']}: revision {sl['sourceRevision']} -> {sl['targetRevision']} "
               f"({sl['strategy']})")
    if watch:
        sys.exit(_watch(client, sl["id"]))


def _json_arg(value: str, name: str) -> Any:
    import json

    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _watch(client: Any, deployment_id: str | None) -> int:
    """Live view until the deployment (by default the current one, else the
    latest) ends; exit code 0 when SUCCESSFUL. One that has already ended is
    shown once; with no deployment at all there is nothing to wait for. Not
    on a terminal (a CI log), a line per event as it comes, then the outcome."""
    import time

    from rich.console import Console
    from rich.live import Live

    from shiftlab.client import ApiError
    from shiftlab.view import WatchState, render

    state = WatchState()
    final = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
    console = Console()

    def follow(wanted: str, shown: Any) -> bool:
        """Until `wanted` ends (True), or the stream does (False)."""
        for message in client.stream():
            if message.get("type") == "deployment" and message["deployment"]["shiftlab"]["id"] != wanted:
                continue
            state.update(message)
            shown(message)
            d = state.deployment
            if d is not None and d["shiftlab"]["id"] == wanted and d["status"] in final:
                return True
        return False

    def log_line(wanted: str, message: dict[str, Any]) -> None:
        ev = message.get("event") if message.get("type") == "event" else None
        if ev is not None and ev.get("deploymentId") == wanted:
            clock = time.strftime("%H:%M:%S", time.localtime(ev["at"]))
            click.echo(f"{clock} {ev['kind']:<8} {ev['message']}")

    try:
        # Which deployment, asked before the stream: the stream only carries
        # the controller's current one, and nothing at all when there is none
        # (the API also turns the short id the views show into the full one).
        first = client.get(f"/api/deployments/{deployment_id or 'current'}")
        wanted = first["shiftlab"]["id"]
        state.update({"type": "deployment", "deployment": first})
        if first["status"] in final:
            ended = True
            if console.is_terminal:
                console.print(render(state))
        elif console.is_terminal:
            with Live(render(state), console=console, refresh_per_second=8, transient=False) as live:
                ended = follow(wanted, lambda _: live.update(render(state)))
        else:
            ended = follow(wanted, lambda message: log_line(wanted, message))
        if not ended:
            click.echo(f"error: the controller closed the stream before deployment {wanted} ended", err=True)
            return 1
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    d = state.deployment
    if d is not None and not console.is_terminal:
        console.print(render(state))  # the view as it ended, then the outcome
        click.echo(f"deployment {d['shiftlab']['id']}: {d['status']}"
                   + (f" ({d['statusReason']})" if d.get("statusReason") else ""))
    return 0 if d is not None and d["status"] == "SUCCESSFUL" else 1


@main.command()
@config_option()
@url_option()
@click.argument("deployment_id", required=False)
def watch(config_path: str, url: str | None, deployment_id: str | None) -> None:
    """Follow the current (or given) deployment live: stage, weights, alarms, bakes."""
    sys.exit(_watch(client_for(config_path, url), deployment_id))


@main.command()
@config_option()
@url_option()
@click.option("--json", "as_json", is_flag=True)
def status(config_path: str, url: str | None, as_json: bool) -> None:
    """The service: running revision, task sets, alarms, current deployment."""
    import json

    client = client_for(config_path, url)
    svc = api_call(lambda: client.get("/api/service"))
    if as_json:
        click.echo(json.dumps(svc, indent=2))
        return
    click.echo(f"service {svc['serviceName']}: revision {svc['runningRevision']} in {svc['primaryTargetGroup']}"
               f" (timeScale {svc['timeScale']:g})")
    for ts in svc["taskSets"]:
        running = sum(1 for t in ts["tasks"] if t["lastStatus"] == "RUNNING")
        click.echo(f"  {ts['targetGroup']:<12} {ts['role']:<9} revision {ts['revision']:<4} "
                   f"{running}/{ts['desiredCount']} running")
    for a in svc["alarms"]:
        click.echo(f"  alarm {a['AlarmName']}: {a['StateValue']}")
    click.echo(f"  deployment in progress: {svc['currentDeployment'] or 'none'}")


@main.command()
@config_option()
@url_option()
@click.argument("deployment_id", default="latest")
@click.option("--json", "as_json", is_flag=True, help="The whole record (DescribeServiceDeployments shape).")
def describe(config_path: str, url: str | None, deployment_id: str, as_json: bool) -> None:
    """One deployment: status, stages, weights, hooks, alarms, rollback, events."""
    import json

    client = client_for(config_path, url)
    d = api_call(lambda: client.get(f"/api/deployments/{deployment_id}"))
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    sl = d["shiftlab"]
    click.echo(f"{d['serviceDeploymentArn']}\n  status {d['status']}"
               + (f" ({d['statusReason']})" if d["statusReason"] else ""))
    click.echo(f"  {sl['strategy']}: revision {sl['sourceRevision']} -> {sl['targetRevision']}, "
               f"stage {d['lifecycleStage']}, production {sl['productionTrafficWeight']:g}% green")
    click.echo(f"  alarms {d['alarms']['status']} {d['alarms']['triggeredAlarmNames'] or ''}; circuit breaker "
               f"{d['deploymentCircuitBreaker']['status']} {d['deploymentCircuitBreaker']['failureCount']}/"
               f"{d['deploymentCircuitBreaker']['threshold']}")
    if d["rollback"]:
        click.echo(f"  rollback: {d['rollback']['reason']}")
    for h in sl["hookRuns"]:
        click.echo(f"  hook {h['lifecycleStage']}: {h['status']} after {h['attempts']} call(s)"
                   + (f" - {h['error']}" if h["error"] else ""))
    for ev in d.get("events", []):
        click.echo(f"  {_clock(ev['at'])} {ev['message']}")


def _clock(t: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


@main.command(name="list")
@config_option()
@url_option()
def list_(config_path: str, url: str | None) -> None:
    """Deployments of the service, newest first."""
    client = client_for(config_path, url)
    data = api_call(lambda: client.get("/api/deployments"))
    if not data["serviceDeployments"]:
        click.echo("no deployments yet (shiftlab deploy starts one)")
    for d in data["serviceDeployments"]:
        sl = d["shiftlab"]
        click.echo(f"{sl['id']}  {d['createdAt']}  {sl['strategy']:<10} {sl['sourceRevision']}->"
                   f"{sl['targetRevision']:<4} {d['status']}")


@main.command()
@config_option()
@url_option()
@click.argument("deployment_id", default="current")
@click.option("--rollback", is_flag=True, help="Move traffic back to blue and stop green.")
def stop(config_path: str, url: str | None, deployment_id: str, rollback: bool) -> None:
    """Stop a deployment. Without --rollback traffic stays where it is (and the
    output says where)."""
    client = client_for(config_path, url)
    d = api_call(lambda: client.post(f"/api/deployments/{deployment_id}/stop", {"rollback": rollback}))
    if rollback:
        click.echo(f"deployment {d['shiftlab']['id']}: rolling back to revision {d['shiftlab']['sourceRevision']}")
    else:
        click.echo(f"deployment {d['shiftlab']['id']}: stopping; traffic stays at "
                   f"{d['shiftlab']['productionTrafficWeight']:g}% green and both task sets keep running "
                   f"(use --rollback to go back to blue)")


@main.command()
@config_option()
@url_option()
@click.argument("deployment_id", default="current")
def approve(config_path: str, url: str | None, deployment_id: str) -> None:
    """Continue a deployment waiting at a PAUSE lifecycle hook."""
    client = client_for(config_path, url)
    d = api_call(lambda: client.post(f"/api/deployments/{deployment_id}/approve"))
    click.echo(f"deployment {d['shiftlab']['id']}: approved at {d['lifecycleStage']}")


@main.command()
@config_option()
@url_option()
@click.argument("task_id", required=False)
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
def logs(config_path: str, url: str | None, task_id: str | None, tail: int | None) -> None:
    """A task's stdout and stderr (without TASK_ID: list the tasks)."""
    client = client_for(config_path, url)
    if task_id is None:
        data = api_call(lambda: client.get("/api/tasks"))
        for t in data["tasks"]:
            click.echo(f"{t['taskId']}  revision {t['revision']:<4} {t['lastStatus']:<8} {t['address']}"
                       + (f"  ({t['stoppedReason']})" if t["stoppedReason"] else ""))
        return
    q = f"?tail={tail}" if tail else ""
    click.echo(api_call(lambda: client.get(f"/api/tasks/{task_id}/logs{q}")), nl=False)


@main.command()
@config_option(required=True)
@click.option("--command", "command", default=None, help="The new revision's command.")
@click.option("--image", default=None, help="The new revision's image (docker backend).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment of the new revision (repeat).")
@click.option("--cpu", default=None, metavar="UNITS",
              help="The new revision's CPU limit, as ECS takes it: units (1024 = one vCPU) or '0.5 vCPU' "
                   "(docker backend).")
@click.option("--memory", default=None, metavar="MIB",
              help="The new revision's memory limit, as ECS takes it: MiB or '1 GB' (docker backend).")
@click.option("--strategy", type=click.Choice(["ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"]), default=None)
@click.option("--time-scale", type=float, default=None)
@click.option("--backend", type=click.Choice(["process", "docker"]), default=None)
@click.option("--load-rps", type=float, default=20.0, show_default=True,
              help="Background load on the production listener during the rehearsal (0: none).")
@click.option("--timeout", type=float, default=None, help="Give up (and roll back) after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No live view.")
@click.option("-v", "--verbose", is_flag=True)
def rehearse(config_path: str, command: str | None, image: str | None, env: tuple[str, ...], cpu: str | None,
             memory: str | None, strategy: str | None, time_scale: float | None, backend: str | None,
             load_rps: float, timeout: float | None, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Run one deployment end to end (for CI): exit 0 on SUCCESSFUL, 1 on
    rollback or failure, 2 on a bad config, 3 when it could not start (a
    port in use, say). Leaves nothing running."""
    import tempfile

    setup_logging(verbose)
    if not verbose:
        logging.getLogger("shiftlab").setLevel(logging.WARNING)
    settings = load_settings_or_exit(config_path, time_scale)
    if settings.service is None:
        fail_config(ConfigError(["service: is required to rehearse a deployment"]), config_path)
    if backend:
        settings = _with_runtime(settings, backend=backend)
    dc = settings.deployment
    if strategy:
        dc = dc.model_copy(update={"strategy": strategy})
    overrides = revision_overrides(command, image, env, cpu, memory)
    from shiftlab.rehearse import check_overrides

    try:
        check_overrides(settings, overrides)
    except ConfigError as exc:
        fail_config(exc, config_path)
    sys.exit(run_rehearsal(settings, overrides, dc, load_rps, timeout, as_json, quiet,
                           Path(tempfile.mkdtemp(prefix="shiftlab-rehearse-"))))


EXIT_CANNOT_START = 3


def run_rehearsal(settings: Any, overrides: dict[str, Any], dc: Any, load_rps: float, timeout: float | None,
                  as_json: bool, quiet: bool, state_dir: Path) -> int:
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

    async def go() -> Any:
        if quiet or as_json or not console.is_terminal:
            return await run(settings, overrides, dc, load_rps, state_dir, timeout)
        with Live(render(state), console=console, refresh_per_second=8) as live:
            def on_message(message: dict[str, Any]) -> None:
                state.update(message)
                live.update(render(state))

            return await run(settings, overrides, dc, load_rps, state_dir, timeout, on_message)

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
    return 0 if outcome.ok else 1


@main.command()
@click.argument("path", default=DEFAULT_CONFIG, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write an annotated shiftlab.yaml to start from."""
    from importlib import resources

    target = Path(path)
    if target.exists() and not force:
        click.echo(f"{path} exists; use --force to overwrite it", err=True)
        sys.exit(1)
    text = resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8")
    if target.suffix.lower() == ".json":  # the same settings; JSON has no room for the comments
        import json

        import yaml

        text = json.dumps(yaml.safe_load(text), indent=2) + "\n"
    target.write_text(text)
    click.echo(f"wrote {path}; next: shiftlab up -c {path}")


@main.command()
@click.option("--url", required=True, help="Where to send requests (e.g. http://127.0.0.1:8080/).")
@click.option("--rps", type=float, default=50.0, show_default=True)
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds.")
@click.option("--concurrency", type=int, default=8, show_default=True)
@click.option("--max-requests", type=int, default=None, help="Stop after this many (default rps x duration).")
@click.option("--header", "headers", multiple=True, metavar="K:V", help="A request header (repeat).")
@click.option("--json", "as_json", is_flag=True)
def load(url: str, rps: float, duration: float, concurrency: int, max_requests: int | None,
         headers: tuple[str, ...], as_json: bool) -> None:
    """A bounded load: the split by target group, status counts, latency percentiles."""
    import json

    from shiftlab.loadgen import run_load

    hdrs = {}
    for h in headers:
        k, sep, v = h.partition(":")
        if not sep:
            raise click.BadParameter(f"{h!r} is not K:V", param_hint="--header")
        hdrs[k.strip()] = v.strip()
    if rps <= 0 or duration <= 0:
        raise click.BadParameter("--rps and --duration must be positive")
    from yarl import URL

    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/)", param_hint="--url")
    res = asyncio.run(run_load(url, rps, duration, concurrency=concurrency, headers=hdrs or None,
                               max_requests=max_requests))
    s = res.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"{s['requests']} requests in {s['seconds']} s ({s['rps']}/s); statuses {s['statuses']}; "
               f"connection errors {s['connectionErrors']}")
    for group, n in sorted(s["byGroup"].items()):
        click.echo(f"  {group:<12} {n:>7}  ({100 * n / max(s['requests'], 1):.1f} %)  "
                   f"5xx {s['5xxByGroup'].get(group, 0)}")
    fmt = lambda v: f"{v * 1000:.1f} ms" if v is not None else "-"  # noqa: E731
    click.echo(f"  latency p50 {fmt(s['p50'])}  p90 {fmt(s['p90'])}  p99 {fmt(s['p99'])}")


@main.command()
@click.option("--scenario", type=click.Choice(["good", "bad-canary", "slow", "manual", "blue-green"]),
              default="good", show_default=True)
@click.option("--time-scale", type=float, default=60.0, show_default=True,
              help="Divide AWS durations by this (60: an ECS minute is a second).")
@click.option("--backend", type=click.Choice(["process", "docker"]), default="process", show_default=True,
              help="docker: blue and green run as containers of --image.")
@click.option("--image", default=None, metavar="IMAGE",
              help="With --backend docker: the image of blue and green (default $SHIFTLAB_DOCKER_IMAGE, else "
                   "shiftlab/sample:local, built by compose/build-images.sh); run with its own command, it must "
                   "serve like the sample service.")
@click.option("--load-rps", type=float, default=40.0, show_default=True)
@click.option("--auto-approve", type=float, default=None, metavar="SECONDS",
              help="manual scenario: approve by itself after this long (default: 5 s when not a terminal, "
                   "less if the PAUSE would time out first).")
@click.option("--no-auto-approve", is_flag=True,
              help="manual scenario: never approve by itself; wait for `shiftlab approve` (or the dashboard).")
@click.option("-q", "--quiet", is_flag=True, help="No live view.")
def demo(scenario: str, time_scale: float, backend: str, image: str | None, load_rps: float,
         auto_approve: float | None, no_auto_approve: bool, quiet: bool) -> None:
    """A rehearsal with nothing to configure: the sample service, a load, a
    deployment and what happens, live. Exit 0 when the scenario behaved as
    it should (each expectation is printed at the end; a rollback is the
    right outcome of bad-canary and slow), 1 otherwise."""
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
    from shiftlab.proxy.app import install_uvloop
    from shiftlab.rehearse import LoadSpec, production_url
    from shiftlab.rehearse import rehearse as run
    from shiftlab.view import WatchState, render

    console = Console(soft_wrap=True)  # long lines (URLs) stay whole in logs
    state = WatchState()
    live_view = not quiet and console.is_terminal
    if auto_approve is None and sc.pause and may_auto_approve and not console.is_terminal:
        auto_approve = approve_delay(sc, settings.time_scale)
    url = production_url(settings)
    extra = (LoadSpec(url, max(load_rps / 4, 5.0), {TEST_HEADER: "demo"}),) if sc.test_header_load else ()
    console.print(f"[bold]shiftlab demo[/bold] · {sc.name}: {sc.summary}")

    def started(stack: Any) -> None:
        console.print(f"dashboard and API: {stack.api_url}   production listener: {url}", highlight=False)
        if sc.pause:
            console.print(f"approve with: shiftlab approve --url {stack.api_url}"
                          + (f"   (approving by itself in {auto_approve:g} s)" if auto_approve is not None else ""),
                          highlight=False)
            if auto_approve is not None:
                asyncio.get_running_loop().create_task(_approve_later(stack, auto_approve))

    async def go() -> Any:
        if not live_view:
            return await run(settings, {"env": sc.env}, None, load_rps, state_dir, None,
                             extra_loads=extra, on_started=started, slow_after=sc.slow_after)
        with Live(render(state), console=console, refresh_per_second=8) as live:
            def on_message(message: dict[str, Any]) -> None:
                state.update(message)
                live.update(render(state))

            return await run(settings, {"env": sc.env}, None, load_rps, state_dir, None, on_message,
                             extra_loads=extra, on_started=started, slow_after=sc.slow_after)

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
                outcome.extra_loads[0] if outcome.extra_loads else None)
    checks = sc.check(seen)
    console.print()
    for line in summary_lines(seen, checks, sc.expect, time.monotonic() - t0):
        console.print(line, markup=False, highlight=False)
    return 0 if all(c.ok for c in checks) else 1


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
