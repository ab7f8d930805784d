"""The `shiftlab` command."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any, NoReturn

import click

from shiftlab.configfile import ConfigError, load_file

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
    from shiftlab.timescale import parse_time_scale

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
    from proxy.app import Proxy, install_uvloop, run_until_signalled
    from proxy.config import load_balancer_from_dict

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

    gc.freeze()  # config and code objects live as long as the process
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


def proxy_main() -> None:
    """`python -m proxy` entry: the `proxy` subcommand on its own."""
    proxy(prog_name="python -m proxy")
