"""What the controller says about itself: DescribeServiceDeployments' shape
for a deployment (plus a `shiftlab` section with the stage timeline, hook
runs and weights), the service view, and the ARNs shiftlab makes up
(region `local`, account 000000000000)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from shiftlab.controller import machine as m
from shiftlab.controller.config import service_connect_names
from shiftlab.controller.machine import Deployment
from shiftlab.controller.router import DnsWeightedRouter, target_id

if TYPE_CHECKING:
    from shiftlab.controller.scheduler import TaskSet
    from shiftlab.controller.service import ServiceController

ACCOUNT = "arn:aws:ecs:local:000000000000"


def cluster_arn(ctl: ServiceController) -> str:
    return f"{ACCOUNT}:cluster/{ctl.service.clusterName}"


def service_arn(ctl: ServiceController) -> str:
    return f"{ACCOUNT}:service/{ctl.service.clusterName}/{ctl.name}"


def revision_arn(ctl: ServiceController, revision: str) -> str:
    return f"{ACCOUNT}:service-revision/{ctl.service.clusterName}/{ctl.name}/{revision}"


def deployment_arn(ctl: ServiceController, deployment_id: str) -> str:
    """The service deployment's ARN: a hook payload's resourceArn."""
    return f"{ACCOUNT}:service-deployment/{ctl.service.clusterName}/{ctl.name}/{deployment_id}"


def describe(ctl: ServiceController, d: Deployment) -> dict[str, Any]:
    """DescribeServiceDeployments' shape for one deployment, plus shiftlab's detail."""
    is_current = ctl.current is not None and ctl.current.id == d.id and not d.final
    green = ctl.sets.get(ctl.alternate) if is_current else None
    blue = ctl.sets.get(ctl.primary) if is_current else None

    def counts(sets: list[TaskSet], requested: int) -> dict[str, int]:
        running = sum(len(ts.running()) for ts in sets)
        return {"requestedTaskCount": requested, "runningTaskCount": running,
                "pendingTaskCount": max(0, requested - running)}

    def counts_now(revision: str) -> dict[str, int]:
        # A finished deployment: what its revision has now (CLEAN_UP scaled the
        # source in, or a rollback the target), as ECS reports a SUCCESSFUL
        # deployment's target with all its tasks running.
        sets = [ts for ts in ctl.sets.values() if ts.revision == revision]
        return counts(sets, sum(ts.desired for ts in sets))

    source_counts = counts([blue], d.desired_count) if blue else counts_now(d.source_revision)
    target_counts = counts([green], d.desired_count) if green else counts_now(d.target_revision)
    dc = d.dc
    return {
        "serviceDeploymentArn": deployment_arn(ctl, d.id),
        "serviceArn": service_arn(ctl),
        "clusterArn": cluster_arn(ctl),
        "createdAt": _iso(d.created_at), "startedAt": _iso(d.started_at), "finishedAt": _iso(d.finished_at),
        "stoppedAt": _iso(d.stopped_at), "updatedAt": _iso(d.updated_at),
        "sourceServiceRevisions": [{"arn": revision_arn(ctl, d.source_revision), **source_counts}],
        "targetServiceRevision": {
            "arn": revision_arn(ctl, d.target_revision), **target_counts,
            "requestedTestTrafficWeight": d.requested_test_percent,
            "requestedProductionTrafficWeight": d.requested_production_percent,
        },
        "status": d.status, "statusReason": d.status_reason, "lifecycleStage": d.stage,
        "lifecycleHookDetails": lifecycle_hook_details(d),
        "deploymentConfiguration": d.config,
        "rollback": ({"reason": d.rollback["reason"], "startedAt": _iso(d.rollback["startedAt"]),
                      "serviceRevisionArn": revision_arn(ctl, d.rollback["serviceRevisionArn"])}
                     if d.rollback else None),
        "deploymentCircuitBreaker": {"status": d.circuit_breaker_status, "failureCount": d.failure_count,
                                     "threshold": d.threshold},
        # DISABLED: "Amazon ECS is not using alarms for service deployment
        # failures" (ServiceDeploymentAlarms), as when one was already in ALARM.
        "alarms": {"status": ("TRIGGERED" if d.triggered_alarms else
                              "MONITORING" if dc.alarms.enable and not d.ignored_alarms else "DISABLED"),
                   "alarmNames": dc.alarms.alarmNames, "triggeredAlarmNames": d.triggered_alarms},
        "shiftlab": {
            "id": d.id, "version": d.version, "sourceRevision": d.source_revision, "targetRevision": d.target_revision,
            "strategy": dc.strategy, "timeScale": d.time_scale,
            # How the service is exposed, and its traffic state: a headless
            # service has no weights in force; its revisions' activation flags say who works.
            "exposure": ctl.service.exposure,
            "activeRevisions": active_revisions(ctl) if ctl.service.exposure == "headless" else None,
            "productionTrafficWeight": d.production_percent, "testTrafficWeight": d.test_percent,
            "stepIndex": d.step_index, "steps": [s.percent for s in d.steps], "waiting": d.waiting,
            "bakeUntil": _iso(d.wake_at) if d.waiting == m.W_BAKE else None,
            # Behind a network load balancer: the delay ECS adds to each traffic shift, and its end.
            "shiftDelayMinutes": d.shift_delay_minutes,
            "delayUntil": _iso(d.wake_at) if d.waiting == m.W_DELAY else None,
            "stageStartedAt": _iso(d.stage_started_at),
            "stages": [{**s, "startedAt": _iso(s["startedAt"]), "endedAt": _iso(s["endedAt"])}
                       for s in d.stages],
            "hookRuns": [_hook_view(r) for r in [*d.hook_runs, *([d.hook] if d.hook else [])]],
            "awaitingApproval": bool(d.hook and d.hook.kind == "PAUSE"),
            "alarmStates": d.alarm_states, "ignoredAlarms": d.ignored_alarms,
            # The task sets as they are now, for the live views: only of the
            # controller's own (current or last) deployment.
            "taskSets": task_set_counts(ctl) if ctl.current is not None and ctl.current.id == d.id else [],
            # Weighted DNS records (route53) the production shift moves: as served now.
            **({"dnsRecords": ctl.router.view()} if isinstance(ctl.router, DnsWeightedRouter)
               and ctl.current is not None and ctl.current.id == d.id else {}),
        },
    }


def lifecycle_hook_details(d: Deployment) -> list[dict[str, Any]]:
    """ServiceDeployment.lifecycleHookDetails: the hooks of the stage the
    deployment is in, each a DeploymentLifecycleHookDetail (hookId,
    targetType, targetArn for a Lambda hook only, status AWAITING_ACTION |
    IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT, expiresAt, timeoutAction),
    as the ECS API reference and the pause hooks page show it."""
    if d.stage_started_at is None:
        return []
    out = []
    for r in [*d.hook_runs, *([d.hook] if d.hook else [])]:
        if r.stage != d.stage or r.started_at < d.stage_started_at:
            continue
        hook = d.dc.lifecycleHooks[r.hook_index]
        pause = r.kind == "PAUSE"
        status = ("TIMED_OUT" if r.timed_out else
                  "AWAITING_ACTION" if pause and r.status == "IN_PROGRESS" else r.status)
        item: dict[str, Any] = {"hookId": r.execution_id, "targetType": "PAUSE" if pause else "AWS_LAMBDA"}
        if not pause:
            item["targetArn"] = hook.hookTargetArn
        item |= {"status": status, "expiresAt": _iso(r.timeout_at), "timeoutAction": hook.timeout_action}
        out.append(item)
    return out


def active_revisions(ctl: ServiceController) -> list[str]:
    """The revisions whose activation flag is on (controller.activation)."""
    return [rev for rev, on in ctl.activation().items() if on]


def task_set_counts(ctl: ServiceController) -> list[dict[str, Any]]:
    """Each target group's task set: its revision, desired and running tasks."""
    return [{"targetGroup": group, "role": "primary" if group == ctl.primary else "alternate",
             "revision": ts.revision, "desiredCount": ts.desired, "runningCount": len(ts.running())}
            for group, ts in ctl.sets.items()]


def service_view(ctl: ServiceController) -> dict[str, Any]:
    sets = []
    for group, ts in ctl.sets.items():
        sets.append({
            "targetGroup": group, "role": "primary" if group == ctl.primary else "alternate",
            "revision": ts.revision, "desiredCount": ts.desired,
            "tasks": [{"taskId": t.task_id, "lastStatus": t.state, "address": target_id(t.host, t.port),
                       "revision": t.revision, "startedAt": _iso(t.started_at),
                       "stoppedReason": t.stopped_reason} for t in ts.tasks.values()],
        })
    return {
        "serviceName": ctl.name, "serviceArn": service_arn(ctl), "runningRevision": ctl.state.running_revision,
        "primaryTargetGroup": ctl.primary, "alternateTargetGroup": ctl.alternate,
        "productionListenerRule": ctl.production_rule, "testListenerRules": ctl.test_rules,
        "exposure": ctl.service.exposure,
        **({"activation": ctl.activation()} if ctl.service.exposure == "headless" else {}),
        "taskSets": sets, "alarms": ctl.alarms_view(),
        "currentDeployment": ctl.current.id if ctl.current and not ctl.current.final else None,
        "metrics": ctl.last_metrics,
        "timeScale": ctl.time_scale,
        # loadBalancer.Type: "network" routes connections and adds ECS's delay to traffic shifts.
        "loadBalancerType": ctl.settings.load_balancer_type,
        "serviceConnect": service_connect_view(ctl),
    }


def service_connect_view(ctl: ServiceController) -> dict[str, Any] | None:
    """The service's Service Connect endpoint (None without one): where
    clients call it, and the namespace listener's rules the controller moves."""
    sc = ctl.service.service_connect
    if sc is None:
        return None
    names = service_connect_names(sc, ctl.service.namespace)
    rules = sc.clientAliases[0].testTrafficRules
    return {"namespace": ctl.service.namespace, "discoveryName": names.discovery,
            "endpoint": f"{names.dns_name}:{names.port}",
            "testTrafficRules": rules.model_dump(exclude_none=True) if rules is not None else None,
            "productionListenerRule": ctl.production_rule, "testListenerRules": ctl.test_rules}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hook_view(r: m.HookRun) -> dict[str, Any]:
    return {"executionId": r.execution_id, "lifecycleStage": r.stage, "hookIndex": r.hook_index, "kind": r.kind,
            "status": r.status, "attempts": r.attempts, "startedAt": _iso(r.started_at),
            "finishedAt": _iso(r.finished_at), "error": r.error, "answers": r.answers,
            "durationSeconds": (round(r.finished_at - r.started_at, 3) if r.finished_at else None)}
