"""The whole shiftlab.yaml: each plane's section parsed by its own module,
then cross-checked, all problems reported together.

Sections: `loadBalancer` (proxy), `route53` (weighted DNS records in front of
the load balancer's listeners: proxy.dns, and their TrafficShift),
`service`, `deploymentConfiguration`, `alarms`, `lambdaFunctions`,
`controller` (controller) and `timeScale`. A file with only
`loadBalancer` is a valid proxy-only config; a headless service (neither
`service.loadBalancers` nor Service Connect) needs no `loadBalancer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shiftlab import serviceconnect
from shiftlab.common.configfile import ConfigError, parse, parse_checked
from shiftlab.common.naming import target_group_name
from shiftlab.common.netsafety import check_bind, check_peer, strong_token
from shiftlab.common.ports import free_port
from shiftlab.common.timescale import parse_time_scale
from shiftlab.controller import usage
from shiftlab.controller.alarms import MetricAlarm, MetricQuery, parse_alarms
from shiftlab.controller.awsshapes import service_problems
from shiftlab.controller.backends import docker_options
from shiftlab.controller.config import (
    ControllerRuntime,
    DeploymentConfiguration,
    DnsTrafficShift,
    LambdaFunctions,
    ServiceConfig,
    parse_lambda_functions,
)
from shiftlab.controller.promscrape import PrometheusConfig
from shiftlab.controller.router import DNS_RULE_PREFIX
from shiftlab.controller.service import ControllerSettings
from shiftlab.controller.serviceconnect import discovery_of
from shiftlab.controller.validation import check_deployment, network_problems
from shiftlab.proxy.config import LoadBalancer, load_balancer_from_dict
from shiftlab.proxy.dns import Route53Config, absolute

KNOWN_SECTIONS = ("loadBalancer", "service", "deploymentConfiguration", "alarms", "controller", "timeScale",
                  "lambdaFunctions", "prometheus", "route53")


@dataclass(frozen=True)
class Settings:
    # None: a headless service's file, which needs no load balancer (`load_balancer` then refuses).
    load_balancer_config: LoadBalancer | None
    time_scale: float
    service: ServiceConfig | None = None
    deployment: DeploymentConfiguration = field(default_factory=DeploymentConfiguration)
    alarms: tuple[MetricAlarm, ...] = ()
    controller: ControllerRuntime = field(default_factory=ControllerRuntime)
    lambda_functions: LambdaFunctions = field(default_factory=dict)
    prometheus: PrometheusConfig | None = None
    route53: Route53Config | None = None
    traffic_shift: DnsTrafficShift = field(default_factory=DnsTrafficShift)

    def dns_route(self) -> tuple[str, dict[str, str]] | None:
        """The weighted DNS name the service's production rule names
        (`route53/<name>`) and, by target group, the SetIdentifier of the
        record pointing at the listener that forwards to it; None: the
        production rule is a load balancer's."""
        if self.service is None or self.route53 is None or not self.service.loadBalancers \
                or self.service.lb.advancedConfiguration is None:
            return None
        ref = self.service.lb.advancedConfiguration.productionListenerRule
        if not ref.startswith(DNS_RULE_PREFIX):
            return None
        name = ref[len(DNS_RULE_PREFIX):]
        sets, _ = dns_sets(self.load_balancer, self.route53, name)
        return name, sets

    @property
    def load_balancer(self) -> LoadBalancer:
        """The loadBalancer section; a headless service's file may have none
        (nothing that runs for it reads this: see `load_balancer_config`)."""
        assert self.load_balancer_config is not None, "a headless service runs no load balancer"
        return self.load_balancer_config

    def warnings(self) -> list[str]:
        """What is accepted, as AWS accepts it, but would not work there."""
        out = [f"alarms[{i}] ({a.AlarmName}): this alarm would never fire on AWS: {reason}"
               for i, a, reason in self.never_published()]
        if self.service is not None and self.service.exposure == "headless" and self.load_balancer_config is not None:
            out.append("loadBalancer: not used: the service has no loadBalancers (headless), so no load "
                       "balancer runs")
        if (self.service is not None and self.service.exposure == "headless" and self.deployment.strategy != "ROLLING"
                and not any("PRODUCTION_TRAFFIC_SHIFT" in h.lifecycleStages for h in self.deployment.lifecycleHooks)):
            out.append("deploymentConfiguration.lifecycleHooks: no hook at PRODUCTION_TRAFFIC_SHIFT: nothing "
                       "activates the new revision of this headless service (its tasks stand by) and, once blue "
                       "stops, nothing works; add the activation hook (command:{python} -m shiftlab.activation_hook)")
        # Another namespace is fed by the tasks' CPU and memory (AWS/ECS,
        # ECS/ContainerInsights: controller.usage) or by a task publishing it with
        # PutMetricData (the controller's CloudWatch endpoint) or EMF, or by the
        # scrape config (prometheus).
        for i, a, q in self.unfed_metrics():
            head = (f"alarms[{i}] ({a.AlarmName}): nothing in this rehearsal feeds {q.describe()}: the alarm "
                    f"stays INSUFFICIENT_DATA (TreatMissingData {a.TreatMissingData})")
            out.append(head + (" (shiftlab computes AWS/ApplicationELB's metrics, and AWS/ECS CPUUtilization "
                               "and MemoryUtilization with the dimensions ClusterName and ServiceName of this "
                               "service; PutMetricData refuses AWS/ namespaces)"
                               if q.namespace.startswith("AWS/") else
                               " unless a task publishes it with PutMetricData to the controller's CloudWatch "
                               "endpoint (AWS_ENDPOINT_URL_CLOUDWATCH) or in embedded metric format on its "
                               "output; no prometheus.emf_processor.metric_declaration selects it"))
        return out

    def never_published(self) -> list[tuple[int, MetricAlarm, str]]:
        """Each alarm's reasons AWS never publishes its metric: a metric with
        dimensions its namespace never has, or the namespace of the other
        kind of load balancer (an ALB publishes no AWS/NetworkELB)."""
        out = [(i, a, reason) for i, a in enumerate(self.alarms) for reason in a.never_published()]
        if self.load_balancer_config is None:
            return out  # headless: no load balancer publishes either namespace
        own = "AWS/NetworkELB" if self.load_balancer.network else "AWS/ApplicationELB"
        other = "AWS/ApplicationELB" if self.load_balancer.network else "AWS/NetworkELB"
        for i, a in enumerate(self.alarms):
            if any(q.namespace == other for q in a.plan.metrics):
                out.append((i, a, f"loadBalancer.Type is {self.load_balancer.Type}: it publishes {own}, "
                                  f"not {other}"))
        return out

    def unfed_metrics(self) -> list[tuple[int, MetricAlarm, MetricQuery]]:
        """Each alarm's metric of another namespace that nothing in this
        rehearsal feeds (index, alarm, metric): neither the tasks' CPU and
        memory nor the scrape config; only a task's own PutMetricData or EMF
        lines could."""
        svc = self.service
        out = []
        endpoint = svc.service_connect.discovery if svc is not None and svc.service_connect is not None else None
        for i, a in enumerate(self.alarms):
            # Service Connect's metrics exist for the service's own endpoint only.
            out += [(i, a, q) for q in a.plan.metrics
                    if q.service_connect and not q.unpublished and discovery_of(q.dimensions) != endpoint]
            for q in a.custom_metrics():
                if svc is not None and usage.fed(q.namespace, q.metric_name, q.dimensions, svc.clusterName,
                                                 svc.serviceName, [svc.taskDefinition.family or svc.serviceName]):
                    continue
                if self.prometheus is not None and self.prometheus.feeds(q.namespace, q.metric_name):
                    continue
                out.append((i, a, q))
        return out

    def controller_settings(self) -> ControllerSettings:
        """What the controller needs of this file (it never sees the proxy's config)."""
        assert self.service is not None
        return ControllerSettings(
            self.service, self.deployment, list(self.alarms), self.controller,
            {tg.Name: tg.drain_seconds(self.time_scale) for tg in self.load_balancer.TargetGroups}
            if self.load_balancer_config is not None else {}, self.time_scale,
            dict(self.lambda_functions), self.prometheus,
            self.load_balancer.Type if self.load_balancer_config is not None else "application",
            dns_schedule=self.traffic_shift.schedule() if self.dns_route() is not None else None,
        )

    def summary(self) -> str:
        lb = self.load_balancer_config
        out = (f"{len(lb.Listeners)} listener(s), {len(lb.TargetGroups)} target group(s), "
               if lb is not None else "no load balancer (headless), ") + f"timeScale {self.time_scale:g}"
        if self.service is not None:
            out += (f"; service {self.service.serviceName} x{self.service.desiredCount}, "
                    f"{self.deployment.strategy}, {len(self.alarms)} alarm(s)")
        return out


def with_fields(data: dict[str, Any], section: str, fields: dict[str, Any]) -> dict[str, Any]:
    """`data` (a whole file's) with `fields` set in `section`: what an
    option or an argument changes, checked and named in errors by
    load_settings as if the file held it."""
    current = data.get(section)
    data[section] = {**(current if isinstance(current, dict) else {}), **fields}
    return data


def on_free_ports(data: dict[str, Any]) -> dict[str, Any]:
    """The same config with every listener, the admin API and the controller
    API on free ports, so that a rehearsal can run beside anything else."""
    lb = data.get("loadBalancer") or {}
    moved: dict[Any, int] = {}  # listeners on one port (an address each, route53) stay on one
    for listener in lb.get("Listeners") or []:
        old = listener.get("Port")
        listener["Port"] = moved[old] if old in moved else free_port()
        moved.setdefault(old, listener["Port"])
    lb.setdefault("Admin", {})["Port"] = 0
    # Service Connect's alias listens on its port too (shiftlab.serviceconnect).
    service = data.get("service")
    sc = service.get("serviceConnectConfiguration") if isinstance(service, dict) else None
    for svc in (sc.get("services") or []) if isinstance(sc, dict) else []:
        for alias in (svc.get("clientAliases") or []) if isinstance(svc, dict) else []:
            if isinstance(alias, dict):
                alias["port"] = free_port()
    if isinstance(data.get("route53"), dict):
        data["route53"]["Port"] = 0
    data["controller"] = {**(data.get("controller") or {}), "port": 0}
    # Beside anything else means with a load balancer of its own.
    data["controller"].pop("proxyAdminUrl", None)
    return data


def self_contained(settings: Settings) -> Settings:
    """The settings of a stack that runs its own proxy (a rehearsal), even
    when the file points `up` at one running in another process."""
    if settings.controller.proxyAdminUrl is None:
        return settings
    return replace(settings, controller=settings.controller.model_copy(update={"proxyAdminUrl": None}))


def rule_ids(lb: LoadBalancer) -> dict[str, str | None]:
    """Every rule id the proxy will have (`<listener>/<priority|default|test>`) with its RuleArn."""
    out: dict[str, str | None] = {}
    for ls in lb.Listeners:
        if ls.TestTrafficRule.Enabled:
            out[f"{ls.name}/test"] = ls.TestTrafficRule.RuleArn
        for r in ls.Rules:
            out[f"{ls.name}/{r.Priority}"] = r.RuleArn
        out[f"{ls.name}/default"] = ls.ListenerArn
    return out


def load_settings(data: dict[str, Any]) -> Settings:
    problems: list[str] = []

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None

    for key in data:
        if key not in KNOWN_SECTIONS:
            problems.append(f"{key}: unknown section (known: {', '.join(KNOWN_SECTIONS)})")
    scale = attempt(lambda: parse_time_scale(data.get("timeScale", 1)))
    service = attempt(lambda: parse_checked(ServiceConfig, data["service"], "service",
                                            service_problems(data["service"]))) if "service" in data else None
    raw_lb = data.get("loadBalancer")
    if service is not None and isinstance(raw_lb, dict) and "Listeners" not in raw_lb \
            and service.service_connect is not None:
        # Only the namespace's proxy, with the file's Name, Admin and attributes.
        raw_lb = serviceconnect.namespace_section(raw_lb, service)
    lb = attempt(lambda: load_balancer_from_dict(raw_lb)) if "loadBalancer" in data else None
    if service is not None and service.service_connect is not None and (lb is not None or "loadBalancer" not in data) \
            and raw_lb is data.get("loadBalancer"):
        # The namespace's proxy: listeners of this load balancer (or of one of its own).
        lb = serviceconnect.with_namespace(lb, service)
    elif "loadBalancer" not in data and not (service is None and _raw_service_connect(data)) \
            and not _headless(data):
        problems.append("loadBalancer: is required (unless service.serviceConnectConfiguration offers a service "
                        "in a namespace, or the service is headless: neither loadBalancers nor "
                        "serviceConnectConfiguration)")
    runtime = attempt(lambda: parse(ControllerRuntime, data.get("controller") or {}, "controller"))
    groups = [tg.Name for tg in lb.TargetGroups] if lb is not None else _raw_group_names(data)
    raw_alarms = data.get("alarms") or []
    if not isinstance(raw_alarms, list):
        problems.append("alarms: must be a list of put-metric-alarm inputs")
        raw_alarms = []
    alarms = attempt(lambda: parse_alarms(raw_alarms, groups, "alarms"))
    functions = attempt(lambda: parse_lambda_functions(data.get("lambdaFunctions")))
    prometheus = attempt(lambda: parse(PrometheusConfig, data["prometheus"] or {}, "prometheus")) \
        if "prometheus" in data else None
    # Checked as POST /api/deployments checks a deployment's (controller.validation).
    deployment = attempt(lambda: check_deployment(
        data.get("deploymentConfiguration") or {}, service.desiredCount if service is not None else None,
        {a.AlarmName for a in alarms} if alarms is not None else None, functions,
        advanced=_advanced(service), exposure=service.exposure if service is not None else None))

    # The proxy and the controller refuse these too, but only once they start.
    admin_token = attempt(lambda: strong_token(lb.Admin.Token, "loadBalancer.Admin.Token")) if lb is not None else None
    api_token = attempt(lambda: strong_token(runtime.token, "controller.token")) if runtime is not None else None
    if lb is not None:
        attempt(lambda: check_bind(lb.Admin.Address, admin_token, "loadBalancer.Admin.Address",
                                   "loadBalancer.Admin.Token"))
    if runtime is not None:
        attempt(lambda: check_bind(runtime.address, api_token, "controller.address", "controller.token"))
    if runtime is not None and runtime.proxyAdminUrl is not None and lb is not None:
        # The token the proxy reading this file resolves is the one to send it.
        url = runtime.proxyAdminUrl
        attempt(lambda: check_peer(url, admin_token, "controller.proxyAdminUrl"))
    if lb is not None:
        problems += port_collisions(lb, runtime)
        if service is not None:
            problems += serviceconnect.port_problems(lb, service)
    if runtime is not None and runtime.backend == "docker":
        # The SHIFTLAB_DOCKER_* variables override controller.docker: what `up` would refuse, refuse here.
        attempt(lambda: docker_options.resolve(runtime.docker))
    if service is not None:
        problems += serviceconnect.problems(service, runtime)
    route53, shift = None, DnsTrafficShift()
    if "route53" in data:
        raw = dict(data["route53"]) if isinstance(data["route53"], dict) else data["route53"]
        raw_shift = raw.pop("TrafficShift", None) if isinstance(raw, dict) else None
        route53 = attempt(lambda: parse(Route53Config, raw, "route53"))
        shift = attempt(lambda: parse(DnsTrafficShift, raw_shift or {}, "route53.TrafficShift")) or shift
    if service is not None and lb is not None and (service.loadBalancers or service.service_connect is not None):
        problems += _service_problems(service, lb, route53)
    if service is not None and lb is not None and route53 is not None and service.loadBalancers:
        problems += _dns_problems(service, lb, route53, shift, deployment)
    if problems:
        # A weak SHIFTLAB_TOKEN is one problem, though both sections use it.
        raise ConfigError(list(dict.fromkeys(problems)))
    assert (lb is not None or service is not None) and scale is not None and deployment is not None
    assert runtime is not None
    return Settings(lb, scale, service, deployment, tuple(alarms or ()), runtime, functions or {}, prometheus,
                    route53, shift)


def _headless(data: dict[str, Any]) -> bool:
    """A file whose service has neither loadBalancers nor serviceConnectConfiguration (a headless service)."""
    service = data.get("service")
    return isinstance(service, dict) and not service.get("loadBalancers") \
        and not service.get("serviceConnectConfiguration")


def port_collisions(lb: LoadBalancer, runtime: ControllerRuntime | None) -> list[str]:
    """The admin API and the controller API each need a port of their own:
    the second to bind one a listener has fails only once things start, half
    of them running. Port 0 (any free port) never collides."""
    taken = {ls.Port: f"loadBalancer.Listeners[{i}].Port" for i, ls in enumerate(lb.Listeners)}
    problems = []
    admin = lb.Admin.Port
    if admin and admin in taken:
        problems.append(f"loadBalancer.Admin.Port: {admin} is also {taken[admin]}; each needs a port of its own")
    elif admin:
        taken[admin] = "loadBalancer.Admin.Port"
    if runtime is not None and runtime.port and runtime.port in taken:
        problems.append(f"controller.port: {runtime.port} is also {taken[runtime.port]}; each needs a port of its own")
    return problems


def _raw_service_connect(data: dict[str, Any]) -> bool:
    """Whether a service section that did not parse has a serviceConnectConfiguration
    (its own problems say what is wrong; a missing loadBalancer is not one of them)."""
    service = data.get("service")
    return isinstance(service, dict) and bool(service.get("serviceConnectConfiguration"))


def _raw_group_names(data: dict[str, Any]) -> list[str]:
    """Target group names from a loadBalancer section that did not parse, so
    that the alarms can still be checked (and their problems reported)."""
    lb = data.get("loadBalancer")
    tgs = lb.get("TargetGroups") if isinstance(lb, dict) else None
    return [tg["Name"] for tg in tgs or [] if isinstance(tg, dict) and isinstance(tg.get("Name"), str)]


def dns_sets(lb: LoadBalancer, route53: Route53Config, name: str) -> tuple[dict[str, str], list[str]]:
    """By target group, the SetIdentifier of the `name` A record whose value
    is the address of a listener forwarding to that group alone (the record
    "points at" that load balancer); and the problems found on the way."""
    try:
        group = route53.groups().get((absolute(name).lower(), "A"))
    except ValueError:
        group = None
    if group is None:
        return {}, [f"no A records named {name!r} in route53.ResourceRecordSets"]
    sets: dict[str, str] = {}
    problems = []
    for rs in group:
        listeners = [ls for ls in lb.Listeners if ls.Address == rs.value]
        forwards = {tg.name for ls in listeners for a in ls.DefaultActions if (f := a.forward()) is not None
                    for tg in f.TargetGroups}
        i = route53.ResourceRecordSets.index(rs)
        if len(forwards) != 1:
            problems.append(f"route53.ResourceRecordSets[{i}].ResourceRecords[0].Value: {rs.value} must be the "
                            f"Address of loadBalancer listeners whose default action forwards to one target group "
                            f"(the load balancer of blue or of green); "
                            + (f"they forward to {', '.join(sorted(forwards))}" if forwards
                               else "no listener has that Address"))
            continue
        sets[forwards.pop()] = rs.SetIdentifier
    return sets, problems


def _dns_problems(service: ServiceConfig, lb: LoadBalancer, route53: Route53Config, shift: DnsTrafficShift,
                  dc: DeploymentConfiguration | None) -> list[str]:
    """A production rule `route53/<name>`: two records, each pointing at the
    load balancer of one of the service's target groups; steps no shorter
    than the TTL; weights Route 53 can hold (whole percents)."""
    ac = service.lb.advancedConfiguration
    if ac is None or not ac.productionListenerRule.startswith(DNS_RULE_PREFIX):
        return []
    p = "service.loadBalancers[0].advancedConfiguration.productionListenerRule"
    name = ac.productionListenerRule[len(DNS_RULE_PREFIX):]
    sets, problems = dns_sets(lb, route53, name)
    if problems and not sets and "no A records" in problems[0]:
        return [f"{p}: {problems[0]}"]
    for g in (target_group_name(service.lb.targetGroupArn), target_group_name(ac.alternateTargetGroupArn)):
        if g not in sets and not problems:
            problems.append(f"{p}: no record of {name} points at a listener forwarding to target group {g!r}")
    group = route53.groups()[(absolute(name).lower(), "A")]
    ttl = max(rs.TTL for rs in group)
    if shift.IntervalSeconds < ttl:
        problems.append(f"route53.TrafficShift.IntervalSeconds: {shift.IntervalSeconds} is shorter than the "
                        f"records' TTL ({ttl} s): clients would not have the answer before the next step")
    if dc is not None and dc.strategy == "CANARY" and not float(dc.canaryConfiguration.canaryPercent).is_integer():
        problems.append(f"deploymentConfiguration.canaryConfiguration.canaryPercent: "
                        f"{dc.canaryConfiguration.canaryPercent:g} is finer than weighted DNS records can split "
                        "(Route 53 weights are 0..255): use a whole percent")
    return problems


def _advanced(service: ServiceConfig | None) -> bool | None:
    """Whether the service's traffic can move between two target groups
    (None: the service section was refused)."""
    if service is None or service.exposure == "headless":
        return None  # headless: no target groups (the strategies it may use: controller.validation)
    return service.lb.advancedConfiguration is not None


def _service_problems(service: ServiceConfig, lb: LoadBalancer, route53: Route53Config | None = None) -> list[str]:
    problems: list[str] = []
    groups = [tg.Name for tg in lb.TargetGroups]
    sl = service.lb
    primary = target_group_name(sl.targetGroupArn)
    p = "service.loadBalancers[0]"
    if primary not in groups:
        problems.append(f"{p}.targetGroupArn: {sl.targetGroupArn!r} names no target group in loadBalancer "
                        f"(known: {', '.join(groups)})")
    if sl.advancedConfiguration is None:
        return problems  # ROLLING in the one target group (the strategy is checked with deploymentConfiguration)
    alternate = target_group_name(sl.advancedConfiguration.alternateTargetGroupArn)
    if alternate not in groups:
        problems.append(f"{p}.advancedConfiguration.alternateTargetGroupArn: "
                        f"{sl.advancedConfiguration.alternateTargetGroupArn!r} names no target group in "
                        f"loadBalancer (known: {', '.join(groups)})")
    if primary == alternate:
        problems.append(f"{p}.advancedConfiguration.alternateTargetGroupArn: must differ from targetGroupArn")
    rules = rule_ids(lb)
    if route53 is not None:
        # route53/<name>: the name's weighted records, with or without the final dot.
        for name, rtype in route53.groups():
            if rtype == "A":
                rules.update({DNS_RULE_PREFIX + name: None, DNS_RULE_PREFIX + name.rstrip("."): None})
    arns = {arn for arn in rules.values() if arn}
    refs = [("productionListenerRule", sl.advancedConfiguration.productionListenerRule)]
    refs += [(f"testListenerRule[{i}]", r) for i, r in enumerate(sl.advancedConfiguration.testListenerRule)]
    for name, ref in refs:
        if ref not in rules and ref not in arns:
            problems.append(f"{p}.advancedConfiguration.{name}: {ref!r} is not a rule of the load balancer "
                            f"(rules: {', '.join(rules)}; or a RuleArn/ListenerArn given in loadBalancer)")
    if lb.network:
        listener_of = {rule: rule.rpartition("/")[0] for rule in rules}
        listener_of |= {arn: rule.rpartition("/")[0] for rule, arn in rules.items() if arn}
        problems += network_problems(sl.advancedConfiguration, listener_of, f"{p}.advancedConfiguration")
    return problems
