"""Reading the service and its deployments from the controller API:
`status`, `list`, `describe`, `logs`."""

from __future__ import annotations

import click

from shiftlab.cli.context import api_call, client_for
from shiftlab.cli.options import controller_options, deployment_id_argument, json_option


@click.command()
@controller_options()
@json_option()
def status(config_path: str, url: str | None, as_json: bool) -> None:
    """The service: running revision, task sets, alarms, current deployment."""
    import json

    client = client_for(config_path, url)
    svc = api_call(lambda: client.get("/api/service"))
    if as_json:
        click.echo(json.dumps(svc, indent=2))
        return
    click.echo(f"service {svc['serviceName']}: revision {svc['runningRevision']} in {svc['primaryTargetGroup']}"
               f" (timeScale {svc['timeScale']:g})")
    for ts in svc["taskSets"]:
        running = sum(1 for t in ts["tasks"] if t["lastStatus"] == "RUNNING")
        click.echo(f"  {ts['targetGroup']:<12} {ts['role']:<9} revision {ts['revision']:<4} "
                   f"{running}/{ts['desiredCount']} running")
    if svc.get("activation") is not None:  # a headless service: who works (controller/activation.py)
        active = [rev for rev, on in svc["activation"].items() if on]
        click.echo(f"  headless: active {', '.join(f'revision {r}' for r in active) or 'none'}")
    for a in svc["alarms"]:
        click.echo(f"  alarm {a['AlarmName']}: {a['StateValue']}")
    click.echo(f"  deployment in progress: {svc['currentDeployment'] or 'none'}")


@click.command()
@controller_options()
@deployment_id_argument("latest")
@json_option("The whole record (DescribeServiceDeployments shape).")
def describe(config_path: str, url: str | None, deployment_id: str, as_json: bool) -> None:
    """One deployment: status, stages, weights, hooks, alarms, rollback, events."""
    import json

    client = client_for(config_path, url)
    d = api_call(lambda: client.get(f"/api/deployments/{deployment_id}"))
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    sl = d["shiftlab"]
    click.echo(f"{d['serviceDeploymentArn']}\n  status {d['status']}"
               + (f" ({d['statusReason']})" if d["statusReason"] else ""))
    click.echo(f"  {sl['strategy']}: revision {sl['sourceRevision']} -> {sl['targetRevision']}, "
               f"stage {d['lifecycleStage']}, production {sl['productionTrafficWeight']:g}% green")
    click.echo(f"  alarms {d['alarms']['status']} {d['alarms']['triggeredAlarmNames'] or ''}; circuit breaker "
               f"{d['deploymentCircuitBreaker']['status']} {d['deploymentCircuitBreaker']['failureCount']}/"
               f"{d['deploymentCircuitBreaker']['threshold']}")
    if d["rollback"]:
        click.echo(f"  rollback: {d['rollback']['reason']}")
    for h in sl["hookRuns"]:
        click.echo(f"  hook {h['lifecycleStage']}: {h['status']} after {h['attempts']} call(s)"
                   + (f" - {h['error']}" if h["error"] else ""))
    for ev in d.get("events", []):
        click.echo(f"  {_clock(ev['at'])} {ev['message']}")


def _clock(t: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


@click.command(name="list")
@controller_options()
def list_(config_path: str, url: str | None) -> None:
    """Deployments of the service, newest first."""
    client = client_for(config_path, url)
    data = api_call(lambda: client.get("/api/deployments"))
    if not data["serviceDeployments"]:
        click.echo("no deployments yet (shiftlab deploy starts one)")
    for d in data["serviceDeployments"]:
        sl = d["shiftlab"]
        click.echo(f"{sl['id']}  {d['createdAt']}  {sl['strategy']:<10} {sl['sourceRevision']}->"
                   f"{sl['targetRevision']:<4} {d['status']}")


@click.command()
@controller_options()
@click.argument("task_id", required=False)
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
def logs(config_path: str, url: str | None, task_id: str | None, tail: int | None) -> None:
    """A task's stdout and stderr (without TASK_ID: list the tasks)."""
    client = client_for(config_path, url)
    if task_id is None:
        data = api_call(lambda: client.get("/api/tasks"))
        for t in data["tasks"]:
            click.echo(f"{t['taskId']}  revision {t['revision']:<4} {t['lastStatus']:<8} {t['address']}"
                       + (f"  ({t['stoppedReason']})" if t["stoppedReason"] else ""))
        return
    q = f"?tail={tail}" if tail else ""
    click.echo(api_call(lambda: client.get(f"/api/tasks/{task_id}/logs{q}")), nl=False)


