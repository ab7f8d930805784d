"""`shiftlab import terraform` and `shiftlab import codedeploy`: AWS's
descriptions of a service read into a shiftlab config (shiftlab.interop).
The Terraform export is `shiftlab.interop.terraform_export.render`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from shiftlab.cli.context import fail_config
from shiftlab.common.configfile import ConfigError


def _finish(config: dict[str, Any], text: str, report: Any, output: str, force: bool, report_format: str,
            source: str) -> None:
    """Check the config as `shiftlab validate` would, then write it whole
    (or print it with -o -) and the report."""
    from shiftlab.interop.importreport import write_atomic
    from shiftlab.settings import load_settings

    try:
        load_settings(config)
    except ConfigError as exc:
        click.echo(f"{source}: the config made from it is refused (nothing written):", err=True)
        fail_config(exc)
    rendered = report.to_json() if report_format == "json" else report.render()
    if output == "-":
        click.echo(text, nl=False)
        click.echo(rendered, err=True, nl=False)
        return
    if Path(output).exists() and not force:
        click.echo(f"{output} exists; use --force to overwrite it", err=True)
        sys.exit(1)
    write_atomic(output, text)
    if report_format == "json":
        click.echo(rendered, nl=False)
    else:
        click.echo(rendered, err=True, nl=False)
        click.echo(f"wrote {output}; next: shiftlab validate -c {output}", err=True)


def _output_options(f: Any) -> Any:
    f = click.option("--report", "report_format", type=click.Choice(["text", "json"]), default="text",
                     show_default=True, help="The report of what was mapped, ignored and left for a local "
                                             "answer: text on stderr, or JSON on stdout.")(f)
    f = click.option("--force", is_flag=True, help="Overwrite an existing output file.")(f)
    f = click.option("-o", "--output", default="shiftlab.yaml", show_default=True, type=click.Path(dir_okay=False),
                     help="The config to write (- for stdout).")(f)
    return f


@click.command("terraform")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--var-file", "var_files", multiple=True, type=click.Path(dir_okay=False),
              help="A .tfvars (or .tfvars.json) file; terraform.tfvars and *.auto.tfvars are read first (repeat).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A variable's value (repeat).")
@click.option("--command", default=None, help="The command a task runs here, in place of the task definition's "
                                              "containers [default: the sample service].")
@click.option("--image", default=None, help="The image a task runs here (docker backend).")
@click.option("--region", default=None, help="The AWS region of ARNs the module builds [default: us-east-1, "
                                             "reported].")
@click.option("--account-id", default=None, help="The AWS account of ARNs the module builds [default: "
                                                 "000000000000, reported].")
@click.option("--time-scale", type=float, default=60.0, show_default=True)
@_output_options
def terraform(directory: str, var_files: tuple[str, ...], variables: tuple[str, ...], command: str | None,
              image: str | None, region: str | None, account_id: str | None, time_scale: float, output: str,
              force: bool, report_format: str) -> None:
    """A Terraform module's aws_ecs_service, the listeners, rules and target
    groups it shifts traffic through and the alarms it names, as a shiftlab
    config. Exit 0, or 2 naming the resource and argument that stops it."""
    from shiftlab.interop.terraform import import_terraform

    try:
        imported = import_terraform(directory, list(var_files), list(variables), region, account_id,
                                    shlex.split(command) if command else None, image, time_scale)
    except ConfigError as exc:
        fail_config(exc, directory)
    _finish(imported.config, imported.text(), imported.report, output, force, report_format, directory)


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
@click.option("--region", default=None, help="The region of hooks' function ARNs built from names.")
@click.option("--account-id", default=None, help="The account of hooks' function ARNs built from names.")
@click.option("--hook-role-arn", default=None, help="The IAM role ECS invokes the hooks' functions with.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Where the merged config goes [default: --config's file; without --config the "
                   "deploymentConfiguration is printed].")
@click.option("--report", "report_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="The report: text on stderr, or JSON on stdout.")
def codedeploy(appspec: str, deployment_config: str | None, deployment_group: str | None, config_path: str | None,
               region: str | None, account_id: str | None, hook_role_arn: str | None, output: str | None,
               report_format: str) -> None:
    """Migrate a CodeDeploy blue/green deployment of an ECS service (its
    AppSpec, deployment configuration and group) to ECS's own deployments:
    the deploymentConfiguration (strategy, percentages, bakes, hooks at the
    matching lifecycle stages), merged into a config or printed, with a report
    of what has no equivalent. Exit 0, or 2 naming the field."""
    import yaml

    from shiftlab.common.configfile import load_file
    from shiftlab.interop.codedeploy import merge, migrate, read_document

    try:
        spec = read_document(appspec, "an AppSpec")
        group = read_document(deployment_group, "a deployment group") if deployment_group else None
        m = migrate(spec, deployment_config, group, region, account_id, hook_role_arn)
    except ConfigError as exc:
        fail_config(exc, appspec)
    if config_path is None:
        from shiftlab.controller.config import parse_lambda_functions
        from shiftlab.controller.validation import check_deployment

        try:
            check_deployment(m.deployment, None, None, parse_lambda_functions(m.lambda_functions), None)
        except ConfigError as exc:
            fail_config(exc, appspec)
        doc: dict[str, Any] = {"deploymentConfiguration": m.deployment}
        if m.lambda_functions:
            doc["lambdaFunctions"] = m.lambda_functions
        text = yaml.safe_dump(doc, sort_keys=False)
        if m.service:
            text += "# service fields (set in the config with --config):\n" + "".join(
                f"#   service.{k}: {v}\n" for k, v in m.service.items())
        if output is None:
            click.echo(m.report.header() + text, nl=False)
            click.echo(m.report.to_json() if report_format == "json" else m.report.render(), err=True, nl=False)
            return
        _finish_section(output, m.report.header() + text, m.report, report_format)
        return
    try:
        merged = merge(load_file(config_path), m)
    except ConfigError as exc:
        fail_config(exc, config_path)
    _finish(merged, m.report.header() + yaml.safe_dump(merged, sort_keys=False), m.report, output or config_path,
            True, report_format, config_path)


def _finish_section(output: str, text: str, report: Any, report_format: str) -> None:
    from shiftlab.interop.importreport import write_atomic

    write_atomic(output, text)
    click.echo(report.to_json() if report_format == "json" else report.render(), nl=False,
               err=report_format != "json")


@click.group("import")
def import_group() -> None:
    """Read a service's configuration from AWS's formats into shiftlab.yaml."""


import_group.add_command(terraform)
import_group.add_command(codedeploy)
