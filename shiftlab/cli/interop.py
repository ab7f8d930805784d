"""From AWS and back: `shiftlab import <format> ...` writes a shiftlab config
from what AWS already describes; `shiftlab export` writes a config back out
as AWS takes it. The work is in shiftlab.interop; here only the options."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from shiftlab.cli.context import EXIT_CONFIG, fail_config
from shiftlab.cli.options import config_option
from shiftlab.interop.exporter import FORMATS


@click.group("import")
def import_() -> None:
    """Write a shiftlab config from an AWS description (a report says what
    was mapped, ignored, and what needs a local answer)."""


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r} is not KEY=VALUE", param_hint=flag)
        out[key] = value
    return out


@import_.command("cloudformation", short_help="A config from a CloudFormation or CDK template's ECS service.")
@click.argument("template", type=click.Path(exists=True))
@click.option("-o", "--output", default="shiftlab.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="The config to write (whole, or not at all).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE",
              help="A template parameter's value (repeat); AWS::Region and AWS::AccountId too.")
@click.option("--import-value", "import_values", multiple=True, metavar="NAME=VALUE",
              help="The value of another stack's export that Fn::ImportValue reads (repeat).")
@click.option("--service", default=None, metavar="LOGICAL_ID", help="The AWS::ECS::Service, when there are several.")
@click.option("--command", default=None, help="What runs the service here (a command line; {python} is "
                                               "shiftlab's Python, the port comes as $PORT).")
@click.option("--image", default=None, help="An image to run with the docker backend instead.")
@click.option("--listener-port", "listener_ports", multiple=True, metavar="AWS=LOCAL",
              help="The local port of the listener on an AWS port (default: the same, or 8000+port below 1024).")
@click.option("--time-scale", type=float, default=60.0, show_default=True, help="The config's timeScale.")
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False),
              help="Write the report as JSON here too.")
def cloudformation(template: str, output: str, force: bool, parameters: tuple[str, ...],
                   import_values: tuple[str, ...], service: str | None, command: str | None, image: str | None,
                   listener_ports: tuple[str, ...], time_scale: float, report_path: str | None) -> None:
    """A CloudFormation template's (or a CDK cdk.out/*.template.json's; or
    the cdk.out directory, whose one stack with a service is read) ECS
    service, its listeners, rules, target groups, alarms and hooks, as a
    shiftlab config. Exit 2 naming the resource and property it cannot read."""
    from shiftlab.interop.cloudformation import Options, import_template, render
    from shiftlab.interop.report import ImportProblem, write_atomically
    from shiftlab.interop.template import find_template, load_template

    if Path(output).exists() and not force:
        click.echo(f"{output} exists; use --force to overwrite it", err=True)
        sys.exit(1)
    ports = {}
    for k, v in _pairs(listener_ports, "--listener-port").items():
        if not (k.isdigit() and v.isdigit()):
            raise click.BadParameter(f"{k}={v} is not AWS_PORT=LOCAL_PORT", param_hint="--listener-port")
        ports[int(k)] = int(v)
    opts = Options(service=service, parameters=_pairs(parameters, "--parameter"),
                   import_values=_pairs(import_values, "--import-value"),
                   command=shlex.split(command) if command else None, image=image, listener_ports=ports,
                   time_scale=time_scale)
    try:
        path = find_template(template)
        config, report = import_template(load_template(path), opts, str(path))
    except ImportProblem as exc:
        click.echo(f"{template}: cannot import: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    write_atomically(output, render(config, report))
    if report_path:
        write_atomically(report_path, report.to_json())
    click.echo(report.to_text(), nl=False)
    click.echo(f"wrote {output}; next: shiftlab validate -c {output}")


@click.command("export")
@config_option(required=True, help=None)
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="cli-json",
              show_default=True, help="cli-json: --cli-input-json files for aws ecs update-service, elbv2 "
                                      "modify-listener/modify-rule/modify-target-group(-attributes), cloudwatch "
                                      "put-metric-alarm; cloudformation: a template snippet.")
@click.option("-o", "--output", "out_dir", default="shiftlab-export", show_default=True,
              type=click.Path(file_okay=False), help="The directory to write the files in.")
def export(config_path: str, fmt: str, out_dir: str) -> None:
    """Write a rehearsed config as AWS takes it."""
    from shiftlab.common.configfile import ConfigError, load_file
    from shiftlab.interop.report import write_atomically

    try:
        files = FORMATS[fmt](load_file(config_path))
    except ConfigError as exc:
        fail_config(exc, config_path)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_atomically(target / name, text)
        click.echo(f"wrote {target / name}")
