"""The controller's sections checked against ECS's and CloudWatch's own API
models (shiftlab.common.awsmodel), where they copy them:

- `deploymentConfiguration`: ECS's DeploymentConfiguration as is, except a
  lifecycle hook's `targetType`, which shiftlab spells its own way (URL and
  COMMAND hooks, which its model checks);
- `service`: the create-service fields it shares with ECS (`serviceName`,
  `desiredCount`, `healthCheckGracePeriodSeconds`, `loadBalancers`, whose
  `testListenerRule` may be a list here); `clusterName` (ECS: `cluster`) is
  a string; `taskDefinition` is shiftlab's own (what to run, not an ARN),
  so is `serviceConnectClients` (client tasks in the Service Connect
  namespace); `serviceConnectConfiguration` is ECS's as is;
- `alarms[]`: CloudWatch's PutMetricAlarm input as is.

Each function returns the problems with their field paths; the sections'
models (controller.config, controller.alarms) report everything else.
"""

from __future__ import annotations

import functools
from typing import Any

from shiftlab.common.awsmodel import LOCAL, ONE_OR_MORE, Shapes, derive, overlay, problems, service_shapes


@functools.cache
def _ecs() -> Shapes:
    aws = service_shapes("ecs")
    return overlay(aws, {
        "shiftlab:DeploymentConfiguration": derive(aws, "DeploymentConfiguration",
                                                   members={"lifecycleHooks": "shiftlab:LifecycleHooks"}),
        "shiftlab:LifecycleHooks": {"type": "list", "member": {"shape": "shiftlab:LifecycleHook"}},
        "shiftlab:LifecycleHook": derive(aws, "DeploymentLifecycleHook", members={"targetType": LOCAL}),
        "shiftlab:Service": derive(aws, "CreateServiceRequest", required=(), members={
            "clusterName": "String", "taskDefinition": LOCAL, "loadBalancers": "shiftlab:LoadBalancers",
            "serviceConnectClients": LOCAL,
        }, drop=("cluster",)),
        "shiftlab:LoadBalancers": {"type": "list", "member": {"shape": "shiftlab:LoadBalancer"}},
        "shiftlab:LoadBalancer": derive(aws, "LoadBalancer", members={"advancedConfiguration": "shiftlab:Advanced"}),
        "shiftlab:Advanced": derive(aws, "AdvancedConfiguration", members={"testListenerRule": "shiftlab:Rules"}),
        "shiftlab:Rules": {"type": "list", "member": {"shape": "String"}, ONE_OR_MORE: True},
    })


def deployment_configuration_problems(data: Any, path: str = "deploymentConfiguration") -> list[str]:
    return problems(_ecs(), "shiftlab:DeploymentConfiguration", data, path)


def service_problems(data: Any, path: str = "service") -> list[str]:
    return problems(_ecs(), "shiftlab:Service", data, path)


def put_metric_alarm_problems(data: Any, path: str) -> list[str]:
    """One `aws cloudwatch put-metric-alarm` input."""
    return problems(service_shapes("cloudwatch"), "PutMetricAlarmInput", data, path)
