"""`shiftlab import terraform` and `shiftlab import codedeploy`: AWS's
descriptions of a service read into a shiftlab config (shiftlab.interop).
The Terraform export is `shiftlab.interop.terraform_export.files` (the
`terraform` format of `shiftlab export`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from shiftlab.cli.context import fail_config
from shiftlab.common.configfile import ConfigError


def _echo_report(report: Any, report_path: str | None, err: bool) -> None:
    from shiftlab.interop.report import write_atomically

    if report_path:
        write_atomically(report_path, report.to_json())
    click.echo(report.to_text(), nl=False, err=err)


def _finish(config: dict[str, Any], text: str, report: Any, output: str, force: bool, report_path: str | None,
            source: str) -> None:
    """Check the config as `shiftlab validate` would, then write it whole
    (or print it with -o -) and the report."""
    from shiftlab.interop.report import write_atomically
    from shiftlab.settings import load_settings

    try:
        load_settings(config)
    except ConfigError as exc:
        click.echo(f"{source}: the config made from it is refused (nothing written):", err=True)
        fail_config(exc)
    if output == "-":
        click.echo(text, nl=False)
        _echo_report(report, report_path, err=True)
        return
    if Path(output).exists() and not force:
        click.echo(f"{output} exists; use --force to overwrite it", err=True)
        sys.exit(1)
    write_atomically(output, text)
    _echo_report(report, report_path, err=False)
    click.echo(f"wrote {output}; next: shiftlab validate -c {output}")


REPORT_HELP = "Write the report (mapped, ignored, needs a local answer) as JSON here too."


@click.command("terraform")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-o", "--output", default="shiftlab.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="The config to write, whole or not at all (- for stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--var-file", "var_files", multiple=True, type=click.Path(dir_okay=False),
              help="A .tfvars (or .tfvars.json) file; terraform.tfvars and *.auto.tfvars are read first (repeat).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A variable's value (repeat).")
@click.option("--command", default=None, help="What runs the service here (a command line; {python} is "
                                              "shiftlab's Python, the port comes as $PORT) [default: the sample "
                                              "service].")
@click.option("--image", default=None, help="An image to run with the docker backend instead.")
@click.option("--region", default=None, help="The AWS region of ARNs the module builds [default: us-east-1, "
                                             "reported].")
@click.option("--account-id", default=None, help="The AWS account of ARNs the module builds [default: "
                                                 "000000000000, reported].")
@click.option("--time-scale", type=float, default=60.0, show_default=True, help="The config's timeScale.")
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False), help=REPORT_HELP)
def terraform(directory: str, output: str, force: bool, var_files: tuple[str, ...], variables: tuple[str, ...],
              command: str | None, image: str | None, region: str | None, account_id: str | None,
              time_scale: float, report_path: str | None) -> None:
    """A Terraform module's aws_ecs_service, the listeners, rules and target
    groups it shifts traffic through and the alarms it names, as a shiftlab
    config. Exit 2 naming the resource and argument it cannot read."""
    from shiftlab.interop.terraform import import_terraform

    try:
        imported = import_terraform(directory, list(var_files), list(variables), region, account_id,
                                    shlex.split(command) if command else None, image, time_scale)
    except ConfigError as exc:
        fail_config(exc, directory)
    _finish(imported.config, imported.text(), imported.report, output, force, report_path, directory)


@click.command("codedeploy")
@click.argument("appspec", type=click.Path(dir_okay=False))
@click.option("--deployment-config", default=None, metavar="NAME|FILE",
              help="A predefined CodeDeployDefault.ECS* name, or a file as `aws deploy create-deployment-config "
                   "--cli-input-json` takes it [default: the deployment group's, else "
                   "CodeDeployDefault.ECSAllAtOnce].")
@click.option("--deployment-group", default=None, type=click.Path(dir_okay=False),
              help="The deployment group as `aws deploy get-deployment-group` prints it (termination wait, "
                   "alarms, automatic rollback, target groups).")
@click.option("-c", "--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="A shiftlab config to merge the result into (written to -o, by default this file).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Where the merged config goes [default: --config's file; without --config the "
                   "deploymentConfiguration is printed, or written here].")
@click.option("--region", default=None, help="The region of hooks' function ARNs built from names.")
@click.option("--account-id", default=None, help="The account of hooks' function ARNs built from names.")
@click.option("--hook-role-arn", default=None, help="The IAM role ECS invokes the hooks' functions with.")
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False), help=REPORT_HELP)
def codedeploy(appspec: str, deployment_config: str | None, deployment_group: str | None, config_path: str | None,
               output: str | None, region: str | None, account_id: str | None, hook_role_arn: str | None,
               report_path: str | None) -> None:
    """Migrate a CodeDeploy blue/green deployment of an ECS service (its
    AppSpec, deployment configuration and group) to ECS's own deployments:
    the deploymentConfiguration (strategy, percentages, bakes, hooks at the
    matching lifecycle stages), merged into a config or printed, with a report
    of what has no equivalent. Exit 2 naming the field it cannot migrate."""
    import yaml

    from shiftlab.common.configfile import load_file
    from shiftlab.interop import notes
    from shiftlab.interop.codedeploy import merge, migrate, read_document
    from shiftlab.interop.report import write_atomically

    try:
        spec = read_document(appspec, "an AppSpec")
        group = read_document(deployment_group, "a deployment group") if deployment_group else None
        m = migrate(spec, deployment_config, group, region, account_id, hook_role_arn)
    except ConfigError as exc:
        fail_config(exc, appspec)
    if config_path is not None:
        try:
            merged = merge(load_file(config_path), m)
        except ConfigError as exc:
            fail_config(exc, config_path)
        _finish(merged, notes.marked(yaml.safe_dump(merged, sort_keys=False), m.report), m.report,
                output or config_path, True, report_path, config_path)
        return
    from shiftlab.controller.config import parse_lambda_functions
    from shiftlab.controller.validation import check_deployment

    try:
        check_deployment(m.deployment, None, None, parse_lambda_functions(m.lambda_functions), None)
    except ConfigError as exc:
        fail_config(exc, appspec)
    doc: dict[str, Any] = {"deploymentConfiguration": m.deployment}
    if m.lambda_functions:
        doc["lambdaFunctions"] = m.lambda_functions
    text = notes.header(m.report) + yaml.safe_dump(doc, sort_keys=False)
    if m.service:
        text += "# service fields (set in the config with --config):\n" + "".join(
            f"#   service.{k}: {v}\n" for k, v in m.service.items())
    if output is None:
        click.echo(text, nl=False)
        _echo_report(m.report, report_path, err=True)
        return
    write_atomically(output, text)
    _echo_report(m.report, report_path, err=False)
    click.echo(f"wrote {output}")


COMMANDS = (terraform, codedeploy)


@click.group("import")
def import_group() -> None:
    """Write a shiftlab config from an AWS description (a report says what
    was mapped, ignored, and what needs a local answer)."""


def register(main: click.Group) -> None:
    """Add the commands to `main`'s `import` group (cli/interop.py's), or to
    a group of their own when there is none."""
    group = main.commands.get("import")
    if not isinstance(group, click.Group):
        group = import_group
        main.add_command(group)
    for command in COMMANDS:
        group.add_command(command)
