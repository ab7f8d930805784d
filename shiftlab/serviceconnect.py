"""Service Connect: the namespace's proxy, built from the service's
serviceConnectConfiguration on shiftlab's own load balancer.

On ECS a sidecar proxy beside every task routes service-to-service calls:
`http://catalog:8080` from a client reaches the tasks of the service whose
client alias is catalog:8080, blue or green as the deployment's weights say,
and a request carrying the test header (`x-amzn-ecs-blue-green-test`, or the
alias's testTrafficRules) reaches green only. shiftlab plays all sidecars with
one proxy: each client alias becomes a listener of the load balancer (the
`loadBalancer` section's, or one of its own when the file has none) whose
default rule forwards to the alias's blue and green target groups and whose
test rule matches the test header. The service's `lb` (controller.config)
names that listener's rules, so the controller moves them as it moves an
ALB's. A production ALB's listeners in the same file keep their own rules:
Service Connect's test routing lives on the namespace's listeners only.

How a client finds the proxy (documented in the README):
- process backend: every alias listens on 127.0.0.1 at the alias's port;
  each task (the service's and the client tasks') gets `SHIFTLAB_SC_ENDPOINTS`
  (`dnsName:port=127.0.0.1:port`, comma-separated) and one
  `SHIFTLAB_SC_<NAME>` (`http://127.0.0.1:port`) per alias, NAME the alias's
  name in capitals with every other character than a letter or digit as `_`;
- docker backend (host networking): the alias's name is a host name of the
  container (`--add-host catalog:127.0.0.1`), so `http://catalog:8080`
  reaches the proxy exactly as on ECS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from shiftlab.controller.backends.base import RUNNING, Backend, Task, TaskDefinition
from shiftlab.controller.config import ControllerRuntime, ServiceConfig, ServiceConnectNames, service_connect_names
from shiftlab.proxy.config import (
    Action,
    Attribute,
    ForwardSpec,
    HeaderValue,
    Listener,
    LoadBalancer,
    MatcherSpec,
    TargetGroup,
    TargetGroupTuple,
    TestHeader,
    TestTrafficRuleSpec,
)

log = logging.getLogger("shiftlab.serviceconnect")

LOOPBACK = "127.0.0.1"
ENDPOINTS_ENV = "SHIFTLAB_SC_ENDPOINTS"
ENV_PREFIX = "SHIFTLAB_SC_"
LOAD_BALANCER_NAME = "service-connect"
# Service Connect has no load balancer health check (ECS uses the containers'
# own and Envoy's outlier detection): a task is healthy once it answers HTTP
# on /health with anything but a 5xx (an app without that path answers 404:
# healthy), so no path needs configuring and a task can still report itself
# unhealthy. Not /: a request there is the application's own traffic.
HEALTH_PATH = "/health"
HEALTH_MATCHER = "200-499"
DRAIN_SECONDS = "20"


def names(service: ServiceConfig) -> ServiceConnectNames | None:
    sc = service.service_connect
    return service_connect_names(sc, service.namespace) if sc is not None else None


def listener(service: ServiceConfig) -> Listener | None:
    """The namespace's listener for the service's client alias."""
    n = names(service)
    sc = service.service_connect
    if n is None or sc is None:
        return None
    rules = sc.clientAliases[0].testTrafficRules
    header = TestHeader()
    if rules is not None:
        value = rules.header.value
        header = TestHeader(name=rules.header.name, value=HeaderValue(exact=value.exact) if value else None)
    forward = ForwardSpec(TargetGroups=[TargetGroupTuple(TargetGroupArn=n.blue, Weight=100),
                                        TargetGroupTuple(TargetGroupArn=n.green, Weight=0)])
    return Listener(Name=n.listener, Port=n.port, Address=LOOPBACK,
                    DefaultActions=[Action(Type="forward", ForwardConfig=forward)],
                    TestTrafficRule=TestTrafficRuleSpec(Enabled=True, header=header))


def target_groups(service: ServiceConfig) -> list[TargetGroup]:
    n = names(service)
    if n is None:
        return []
    return [TargetGroup(Name=name, HealthCheckPath=HEALTH_PATH, HealthCheckIntervalSeconds=5,
                        HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
                        Matcher=MatcherSpec(HttpCode=HEALTH_MATCHER),
                        TargetGroupAttributes=[Attribute(Key="deregistration_delay.timeout_seconds",
                                                         Value=DRAIN_SECONDS)])
            for name in (n.blue, n.green)]


def namespace_section(raw: dict[str, Any], service: ServiceConfig) -> dict[str, Any]:
    """A `loadBalancer` section without listeners (its Name, Admin, attributes
    only) completed with the namespace's listener and target groups."""
    ls = listener(service)
    assert ls is not None
    return {"Name": LOAD_BALANCER_NAME, **raw, "Listeners": [ls.model_dump(exclude_none=True)],
            "TargetGroups": [*(raw.get("TargetGroups") or []),
                             *(tg.model_dump(exclude_none=True) for tg in target_groups(service))]}


def with_namespace(lb: LoadBalancer | None, service: ServiceConfig) -> LoadBalancer | None:
    """`lb` with the namespace's listener and target groups added (a load
    balancer of their own when the file has no loadBalancer section)."""
    ls = listener(service)
    if ls is None:
        return lb
    if lb is None:
        return LoadBalancer(Name=LOAD_BALANCER_NAME, Listeners=[ls], TargetGroups=target_groups(service))
    return lb.model_copy(update={"Listeners": [*lb.Listeners, ls],
                                 "TargetGroups": [*lb.TargetGroups, *target_groups(service)]})


SC = "service.serviceConnectConfiguration"


def problems(service: ServiceConfig, runtime: ControllerRuntime | None) -> list[str]:
    """Combinations of a service's traffic paths that ECS (or shiftlab, said
    so) refuses, each naming its field."""
    out = []
    sc = service.serviceConnectConfiguration
    offers = service.service_connect is not None
    if sc is not None and not sc.enabled and sc.services:
        # ServiceConnectConfiguration.enabled: "Specifies whether to use Service Connect with this service."
        out.append(f"{SC}.services: given while enabled is false; set enabled: true to offer them in the namespace")
    if offers and service.loadBalancers:
        # shiftlab moves one pair of target groups per deployment: ECS's
        # blue/green shifts traffic with Elastic Load Balancing or with Service
        # Connect (blue-green-deployment-implementation.html), and here a
        # service says which.
        out.append(f"{SC}.services: a service moves its traffic through loadBalancers or through Service "
                   "Connect, not both, in shiftlab (leave out service.loadBalancers, or the services of "
                   "serviceConnectConfiguration to join the namespace as a client only)")
    # Neither loadBalancers nor a service offered in a namespace: a headless
    # service (config.ServiceConfig.exposure), which ECS deploys too.
    if service.serviceConnectClients and not offers:
        out.append("service.serviceConnectClients: client tasks need a namespace to call into: "
                   f"{SC} with enabled: true and services")
    seen: set[str] = set()
    for i, client in enumerate(service.serviceConnectClients):
        if client.name in seen or client.name == service.serviceName:
            out.append(f"service.serviceConnectClients[{i}].name: {client.name!r} is the name of another task or "
                       "of the service")
        seen.add(client.name)
    if offers and runtime is not None and runtime.backend == "docker" and runtime.docker.network != "host":
        out.append("controller.docker.network: Service Connect with the docker backend needs host networking "
                   "(network: host): the namespace's proxy listens on the host's loopback, where a container "
                   "reaches it by its alias name")
    return out


def port_problems(lb: LoadBalancer, service: ServiceConfig) -> list[str]:
    """The alias's listener needs its port on 127.0.0.1 to itself."""
    n = names(service)
    if n is None:
        return []
    taken = [i for i, ls in enumerate(lb.Listeners) if ls.Port == n.port and ls.name != n.listener]
    if not taken:
        return []
    return [f"{SC}.services[0].clientAliases[0].port: {n.port} is also loadBalancer.Listeners[{taken[0]}].Port; "
            "shiftlab's Service Connect proxy listens on the alias's port, so each needs a port of its own"]


def env_name(dns_name: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", dns_name.upper())


def client_env(service: ServiceConfig) -> dict[str, str]:
    """What a task in the namespace is told of its endpoints (process backend)."""
    n = names(service)
    if n is None:
        return {}
    return {ENDPOINTS_ENV: f"{n.dns_name}:{n.port}={LOOPBACK}:{n.port}",
            env_name(n.dns_name): f"http://{LOOPBACK}:{n.port}"}


def client_hosts(service: ServiceConfig) -> dict[str, str]:
    """Host names a container in the namespace resolves (docker backend, host networking)."""
    n = names(service)
    return {} if n is None else {n.dns_name: LOOPBACK}


class Clients:
    """The client tasks (service.serviceConnectClients): started once the
    controller runs, with the namespace's endpoints in their environment, and
    stopped with the stack. Never deployed, never replaced."""

    def __init__(self, service: ServiceConfig, backend: Backend, env: Mapping[str, str]) -> None:
        self.service = service
        self.backend = backend
        self.env = dict(env)
        self.tasks: dict[str, Task] = {}

    async def start(self) -> None:
        hosts = client_hosts(self.service)
        for client in self.service.serviceConnectClients:
            # A previous controller's client (it was killed, or stopped leaving its tasks): kept, as its
            # service's tasks are; what no longer runs is replaced.
            running = [t for t in await self.backend.adopt(client.name) if t.state == RUNNING]
            if running:
                self.tasks[client.name] = running[0]
                for extra in running[1:]:
                    await self.backend.stop_task(extra.task_id, 1.0)
                log.info("Service Connect client %s: task %s adopted", client.name, running[0].task_id)
                continue
            spec = client.taskDefinition
            definition = TaskDefinition(revision=f"{client.name}:1", command=tuple(spec.command),
                                        env=dict(spec.environment), image=spec.image,
                                        container_port=spec.containerPort, stop_timeout=1.0,
                                        cpu=spec.cpu, memory=spec.memory, hosts=hosts)
            given = {k: v for k, v in self.env.items() if k not in definition.env}
            task = await self.backend.start_task(client.name, definition, "blue", None, given)
            self.tasks[client.name] = task
            log.info("Service Connect client %s: task %s (%s) on %s:%s", client.name, task.task_id, task.state,
                     task.host, task.port)

    async def stop(self, stop_tasks: bool = True) -> None:
        """`stop_tasks` False: leave them running for the next controller to adopt."""
        if not stop_tasks:
            return
        for task in self.tasks.values():
            try:
                await self.backend.stop_task(task.task_id, 1.0)
            except Exception:  # the backend may already be closed; its close stops every task
                log.debug("stopping client task %s", task.task_id, exc_info=True)

    def describe(self) -> dict[str, Any]:
        return {name: {"taskId": t.task_id, "host": t.host, "port": t.port, "state": t.state}
                for name, t in self.tasks.items()}
