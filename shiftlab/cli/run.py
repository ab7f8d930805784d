"""Running the planes in the foreground: `proxy` (the load balancer alone)
and `up` (load balancer, controller and the running revision's tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import click

from shiftlab.cli.context import fail_config, load_settings_or_exit, setup_logging, time_scale_of
from shiftlab.cli.options import backend_option, config_option, time_scale_option, verbose_option
from shiftlab.common.configfile import ConfigError, load_file


@click.command()
@config_option(required=True, help="shiftlab.yaml (YAML or JSON); the loadBalancer section is used.")
@time_scale_option("Divide AWS durations (health-check intervals, deregistration delay) by this.")
@click.option("--admin-port", type=int, default=None, help="Override loadBalancer.Admin.Port.")
@verbose_option()
def proxy(config_path: str, time_scale: float | None, admin_port: int | None, verbose: bool) -> None:
    """Run the load balancer alone (the ALB emulator)."""
    from shiftlab.proxy.app import Proxy, install_uvloop, run_until_signalled
    from shiftlab.proxy.config import load_balancer_from_dict

    setup_logging(verbose)
    try:
        data = load_file(config_path)
        service = data.get("service")
        if isinstance(service, dict) and service.get("serviceConnectConfiguration"):
            # The namespace's proxy is this load balancer's too: the whole file says what it listens on.
            from shiftlab.settings import load_settings

            lb_conf = load_settings(data).load_balancer
        elif "loadBalancer" not in data:
            raise ConfigError(["loadBalancer: is required"])
        else:
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


@click.command()
@config_option()
@time_scale_option("Override timeScale (60: an ECS minute is a second).")
@backend_option("Override controller.backend.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="Override controller.stateDir.")
@click.option("--proxy-admin-url", default=None, metavar="URL",
              help="Override controller.proxyAdminUrl: run the controller only, against the load balancer "
                   "whose admin API is there (a `shiftlab proxy -c FILE` with the same file).")
@verbose_option()
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
                                     controller={"proxyAdminUrl": proxy_admin_url, "backend": backend})
    lb = None
    try:
        stack = Stack(settings, state_dir=state_dir, separate_proxy=True)
        if settings.controller.proxyAdminUrl is None and not stack.headless:  # headless: no load balancer at all
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


