"""What the commands work with: logging, their settings (read from the
config file; a refused file exits 2 naming every problem) and the
controller API (found by --url or by the file)."""

from __future__ import annotations

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


# -- the config file -----------------------------------------------------------

DEFAULT_CONFIG = "shiftlab.yaml"


def load_settings_or_exit(config_path: str, time_scale: float | None = None,
                          **sections: dict[str, Any]) -> Any:
    """`sections`: each section's fields as options set them (those that are
    None were not given), checked (and named in errors) as if the file held
    them."""
    from shiftlab.settings import load_settings, with_fields

    try:
        data = load_file(config_path)
        if time_scale is not None:
            data["timeScale"] = time_scale
        for section, fields in sections.items():
            given = {k: v for k, v in fields.items() if v is not None}
            if given:
                with_fields(data, section, given)
        return load_settings(data)
    except ConfigError as exc:
        fail_config(exc, config_path)


# -- the controller API --------------------------------------------------------

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
