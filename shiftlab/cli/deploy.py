"""Driving deployments through the controller API: `deploy`, `watch`,
`stop`, `approve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from shiftlab.cli.context import api_call, client_for
from shiftlab.cli.options import (
    controller_options,
    deployment_id_argument,
    revision_options,
    revision_overrides,
    strategy_option,
)
from shiftlab.controller.vocabulary import Strategy


@click.command()
@controller_options()
@revision_options(command_help="The new revision's command (process backend).")
@strategy_option()
@click.option("--deployment-configuration", "dc_json", default=None, metavar="JSON|@FILE",
              help="deploymentConfiguration fields to override, as update-service takes them.")
@click.option("--watch", is_flag=True, help="Follow the deployment live until it ends.")
def deploy(config_path: str, url: str | None, command: str | None, image: str | None, env: tuple[str, ...],
           cpu: str | None, memory: str | None, strategy: Strategy | None, dc_json: str | None,
           watch: bool) -> None:
    """Start a deployment of a new revision (update-service --force-new-deployment)."""
    client = client_for(config_path, url)
    body: dict[str, Any] = {"taskDefinition": revision_overrides(command, image, env, cpu, memory)}
    if strategy:
        body["strategy"] = strategy
    if dc_json:
        body["deploymentConfiguration"] = _json_arg(dc_json, "--deployment-configuration")
    d = api_call(lambda: client.post("/api/deployments", body))
    sl = d["shiftlab"]
    click.echo(f"deployment {sl['id']}: revision {sl['sourceRevision']} -> {sl['targetRevision']} "
               f"({sl['strategy']})")
    if watch:
        sys.exit(_watch(client, sl["id"]))


def _json_arg(value: str, name: str) -> Any:
    import json

    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _watch(client: Any, deployment_id: str | None) -> int:
    """Live view until the deployment (by default the current one, else the
    latest) ends; exit code 0 when SUCCESSFUL. One that has already ended is
    shown once; with no deployment at all there is nothing to wait for. Not
    on a terminal (a CI log), a line per event as it comes, then the outcome."""
    import time

    from rich.console import Console
    from rich.live import Live

    from shiftlab.client import ApiError
    from shiftlab.controller.vocabulary import FINAL_STATUSES, Status
    from shiftlab.view import WatchState, render

    state = WatchState()
    console = Console()

    def follow(wanted: str, shown: Any) -> bool:
        """Until `wanted` ends (True), or the stream does (False)."""
        for message in client.stream():
            if message.get("type") == "deployment" and message["deployment"]["shiftlab"]["id"] != wanted:
                continue
            state.update(message)
            shown(message)
            d = state.deployment
            if d is not None and d["shiftlab"]["id"] == wanted and d["status"] in FINAL_STATUSES:
                return True
        return False

    def log_line(wanted: str, message: dict[str, Any]) -> None:
        ev = message.get("event") if message.get("type") == "event" else None
        if ev is not None and ev.get("deploymentId") == wanted:
            clock = time.strftime("%H:%M:%S", time.localtime(ev["at"]))
            click.echo(f"{clock} {ev['kind']:<8} {ev['message']}")

    try:
        # Which deployment, asked before the stream: the stream only carries
        # the controller's current one, and nothing at all when there is none
        # (the API also turns the short id the views show into the full one).
        first = client.get(f"/api/deployments/{deployment_id or 'current'}")
        wanted = first["shiftlab"]["id"]
        state.update({"type": "deployment", "deployment": first})
        if first["status"] in FINAL_STATUSES:
            ended = True
            if console.is_terminal:
                console.print(render(state))
        elif console.is_terminal:
            with Live(render(state), console=console, refresh_per_second=8, transient=False) as live:
                ended = follow(wanted, lambda _: live.update(render(state)))
        else:
            ended = follow(wanted, lambda message: log_line(wanted, message))
        if not ended:
            click.echo(f"error: the controller closed the stream before deployment {wanted} ended", err=True)
            return 1
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    d = state.deployment
    if d is not None and not console.is_terminal:
        console.print(render(state))  # the view as it ended, then the outcome
        click.echo(f"deployment {d['shiftlab']['id']}: {d['status']}"
                   + (f" ({d['statusReason']})" if d.get("statusReason") else ""))
    return 0 if d is not None and d["status"] == Status.SUCCESSFUL else 1


@click.command()
@controller_options()
@deployment_id_argument(None)
def watch(config_path: str, url: str | None, deployment_id: str | None) -> None:
    """Follow the current (or given) deployment live: stage, weights, alarms, bakes."""
    sys.exit(_watch(client_for(config_path, url), deployment_id))


@click.command()
@controller_options()
@deployment_id_argument("current")
@click.option("--rollback", is_flag=True, help="Move traffic back to blue and stop green.")
def stop(config_path: str, url: str | None, deployment_id: str, rollback: bool) -> None:
    """Stop a deployment. Without --rollback traffic stays where it is (and the
    output says where)."""
    client = client_for(config_path, url)
    d = api_call(lambda: client.post(f"/api/deployments/{deployment_id}/stop", {"rollback": rollback}))
    if rollback:
        click.echo(f"deployment {d['shiftlab']['id']}: rolling back to revision {d['shiftlab']['sourceRevision']}")
    else:
        click.echo(f"deployment {d['shiftlab']['id']}: stopping; traffic stays at "
                   f"{d['shiftlab']['productionTrafficWeight']:g}% green and both task sets keep running "
                   f"(use --rollback to go back to blue)")


@click.command()
@controller_options()
@deployment_id_argument("current")
def approve(config_path: str, url: str | None, deployment_id: str) -> None:
    """Continue a deployment waiting at a PAUSE lifecycle hook."""
    client = client_for(config_path, url)
    d = api_call(lambda: client.post(f"/api/deployments/{deployment_id}/approve"))
    click.echo(f"deployment {d['shiftlab']['id']}: approved at {d['lifecycleStage']}")


