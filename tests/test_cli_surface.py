"""The `shiftlab` command's surface: every command with its help, and every
argument and option with its flags, type, choices, default and what --help
shows of it, as tests/cli_surface.json records them. Refactoring the CLI
must leave this unchanged; a deliberate change of a command or an option
rewrites the file (`python -m tests.test_cli_surface > tests/cli_surface.json`)
and shows in the diff what a user sees differently."""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

import click

from tests.helpers import REPO

RECORDED = REPO / "tests" / "cli_surface.json"


def _value(v: Any) -> Any:
    if v is getattr(click.core, "UNSET", None):  # click's "no default given" (8.2 on)
        return None
    if isinstance(v, enum.Enum):
        return v.name
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    return repr(v)


def _type(t: click.ParamType) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name}
    if isinstance(t, click.Choice):
        # click shows an enum choice by its member's name.
        out["choices"] = [_value(c) for c in t.choices]
        out["case_sensitive"] = t.case_sensitive
    if isinstance(t, click.Path):
        out.update(exists=t.exists, file_okay=t.file_okay, dir_okay=t.dir_okay)
    return out


def _param(p: click.Parameter, ctx: click.Context) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": p.param_type_name, "name": p.name, "opts": p.opts, "secondary_opts": p.secondary_opts,
        "type": _type(p.type), "required": p.required, "default": _value(p.default), "multiple": p.multiple,
        "nargs": p.nargs, "metavar": p.metavar, "envvar": p.envvar,
    }
    if isinstance(p, click.Option):
        # What --help shows of it: flags, metavar, help, [default: ...], [required].
        out.update(help_record=_value(p.get_help_record(ctx)), is_flag=p.is_flag, hidden=p.hidden)
    return out


def surface() -> dict[str, Any]:
    from shiftlab.cli import main

    ctx = click.Context(main, info_name="shiftlab", **main.context_settings)
    out: dict[str, Any] = {"": {"help": main.help, "params": [_param(p, ctx) for p in main.get_params(ctx)]}}
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        sub = click.Context(cmd, info_name=name, parent=ctx)
        out[name] = {"help": cmd.help, "short_help": cmd.get_short_help_str(), "epilog": cmd.epilog,
                     "params": [_param(p, sub) for p in cmd.get_params(sub)]}
    return out


def test_the_commands_and_their_options_are_as_recorded() -> None:
    recorded = json.loads(RECORDED.read_text())
    now = surface()
    assert sorted(now) == sorted(recorded), "commands added or removed"
    for name in recorded:
        assert now[name]["help"] == recorded[name]["help"], name
        assert [p["name"] for p in now[name]["params"]] == [p["name"] for p in recorded[name]["params"]], name
        for param, was in zip(now[name]["params"], recorded[name]["params"], strict=True):
            assert param == was, (name, param["name"])
        assert now[name] == recorded[name], name


if __name__ == "__main__":
    json.dump(surface(), sys.stdout, indent=1)
    sys.stdout.write("\n")
