"""The `shiftlab` command: a module per group of commands (run: the planes
in the foreground; rehearsal: one deployment end to end; deploy and
inspect: the controller API; tools: no stack needed), with the options
they share declared once in `options`."""

from __future__ import annotations

import click

from shiftlab.cli import deploy, inspect, interop, queue, rehearsal, run, simulate, tools


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shiftlab")
def main() -> None:
    """Rehearse Amazon ECS deployments on one machine: an ALB-like proxy and an
    ECS-like deployment controller, with the AWS field names you already use."""


for command in (run.proxy, run.up, rehearsal.rehearse, rehearsal.demo, deploy.deploy, deploy.watch, deploy.stop,
                deploy.approve, inspect.status, inspect.list_, inspect.describe, inspect.logs, tools.init,
                tools.validate, tools.lint, simulate.simulate, tools.load, interop.import_, interop.export,
                queue.queue):
    main.add_command(command)

# `import terraform` and `import codedeploy` join the `import` group (cli/interop.py's, once it is here).
from shiftlab.cli import interop_more  # noqa: E402

interop_more.register(main)
