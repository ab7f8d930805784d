"""Options that several commands share, each declared once."""

from __future__ import annotations

from typing import Any

import click

from shiftlab.cli.context import DEFAULT_CONFIG


def config_option(required: bool = False) -> Any:
    return click.option("-c", "--config", "config_path", default=None if required else DEFAULT_CONFIG,
                        required=required, type=click.Path(dir_okay=False), show_default=not required,
                        help="shiftlab.yaml (YAML or JSON).")


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


