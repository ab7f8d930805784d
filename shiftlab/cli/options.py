"""Options that several commands share, each declared once: its flags,
type and default here; a command whose help says more of it (what
--time-scale overrides, say) passes its own help text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import click

from shiftlab.cli.context import DEFAULT_CONFIG
from shiftlab.controller.vocabulary import Backend, Strategy

Decorator = Callable[[Any], Any]
CONFIG_HELP = "shiftlab.yaml (YAML or JSON)."


def _all(*decorators: Decorator) -> Decorator:
    """Several options as one decorator, shown in --help in the order given."""
    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def config_option(required: bool = False, help: str | None = CONFIG_HELP) -> Decorator:
    """-c/--config: the file, shiftlab.yaml in the working directory unless required."""
    return click.option("-c", "--config", "config_path", default=None if required else DEFAULT_CONFIG,
                        required=required, type=click.Path(dir_okay=False), show_default=not required, help=help)


def url_option() -> Decorator:
    return click.option("--url", default=None, help="Controller API URL (default: from the config file, "
                                                    "else http://127.0.0.1:9091).")


def controller_options() -> Decorator:
    """How a command finds the controller API: --url, else the file's controller section."""
    return _all(config_option(), url_option())


def _default(default: Any) -> dict[str, Any]:
    """An option's default, shown in --help when there is one."""
    return {"default": None} if default is None else {"default": default, "show_default": True}


def time_scale_option(help: str | None = None, default: float | None = None) -> Decorator:
    return click.option("--time-scale", type=float, help=help, **_default(default))


def backend_option(help: str | None = None, default: str | None = None) -> Decorator:
    return click.option("--backend", type=click.Choice(get_args(Backend)), help=help, **_default(default))


def verbose_option() -> Decorator:
    return click.option("-v", "--verbose", is_flag=True)


def quiet_option() -> Decorator:
    return click.option("-q", "--quiet", is_flag=True, help="No live view.")


def json_option(help: str | None = None) -> Decorator:
    return click.option("--json", "as_json", is_flag=True, help=help)


def load_rps_option(default: float, help: str | None = None) -> Decorator:
    return click.option("--load-rps", type=float, default=default, show_default=True, help=help)


def strategy_option() -> Decorator:
    return click.option("--strategy", type=click.Choice(Strategy), default=None)


def revision_options(command_help: str) -> Decorator:
    """The new revision: the running one with these changes (see revision_overrides)."""
    return _all(
        click.option("--command", "command", default=None, help=command_help),
        click.option("--image", default=None, help="The new revision's image (docker backend)."),
        click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
                     help="Environment of the new revision (repeat)."),
        click.option("--cpu", default=None, metavar="UNITS",
                     help="The new revision's CPU limit, as ECS takes it: units (1024 = one vCPU) or '0.5 vCPU' "
                          "(docker backend)."),
        click.option("--memory", default=None, metavar="MIB",
                     help="The new revision's memory limit, as ECS takes it: MiB or '1 GB' (docker backend)."),
    )


def deployment_id_argument(default: str | None) -> Decorator:
    """DEPLOYMENT_ID: a full id, the short one the views show, `current` or `latest`."""
    if default is None:
        return click.argument("deployment_id", required=False)
    return click.argument("deployment_id", default=default)


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
