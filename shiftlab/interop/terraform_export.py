"""A rehearsed config as Terraform: the AWS provider's resources for what
shiftlab.yaml describes (`aws_lb`, `aws_lb_target_group`, `aws_lb_listener`,
`aws_lb_listener_rule`, `aws_cloudwatch_metric_alarm`, `aws_ecs_service`),
with references between them where Terraform knows the values only after
apply (ARNs, ARN suffixes), and variables for what the config does not say
(subnets, the VPC, the task definition, roles it leaves out).

`files(data)` is what `shiftlab export --format terraform` writes (main.tf). What is
shiftlab's own (the time scale, lambdaFunctions' stand-ins, local ports'
meaning, the header test route, hooks that run a local command) has no
Terraform equivalent and is left out, each with a comment. Reading the
snippet back with `shiftlab import terraform` gives the same AWS fields
(tests/interop/test_terraform_export.py)."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from shiftlab.common.naming import target_group_name

INDENT = "  "


class Expr(str):
    """An HCL expression written as is (a reference, a function call)."""


@dataclass
class HBlock:
    kind: str
    labels: tuple[str, ...] = ()
    items: list[tuple[str, Any]] = field(default_factory=list)  # (name, value | HBlock)
    comments: list[str] = field(default_factory=list)

    def set(self, name: str, value: Any) -> None:
        if value is not None:
            self.items.append((name, value))

    def block(self, kind: str) -> HBlock:
        b = HBlock(kind)
        self.items.append((kind, b))
        return b

    def render(self, depth: int = 0) -> str:
        pad = INDENT * depth
        head = " ".join([self.kind, *(json.dumps(label) for label in self.labels)])
        lines = [f"{pad}# {c}" for c in self.comments]
        lines.append(f"{pad}{head} {{")
        width = max((len(n) for n, v in self.items if not isinstance(v, HBlock)), default=0)
        for name, value in self.items:
            if isinstance(value, HBlock):
                lines.append(value.render(depth + 1))
            else:
                lines.append(f"{pad}{INDENT}{name.ljust(width)} = {hcl(value, depth + 1)}")
        lines.append(f"{pad}}}")
        return "\n".join(lines)


def hcl(value: Any, depth: int = 0) -> str:
    if isinstance(value, Expr):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        # A JSON string is an HCL string, once template sequences are escaped.
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl(v, depth) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = INDENT * (depth + 1)
        inner = "\n".join(f"{pad}{_key(k)} = {hcl(v, depth + 1)}" for k, v in value.items())
        return "{\n" + inner + "\n" + INDENT * depth + "}"
    raise TypeError(f"cannot write {value!r} as HCL")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z_][\w-]*", k) else json.dumps(k)


def label(name: str) -> str:
    """A Terraform resource name for a config name."""
    out = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return out if re.match(r"[A-Za-z_]", out) else f"_{out}"


HEALTH = (("HealthCheckEnabled", "enabled"), ("HealthCheckPath", "path"), ("HealthCheckPort", "port"),
          ("HealthCheckIntervalSeconds", "interval"), ("HealthCheckTimeoutSeconds", "timeout"),
          ("HealthyThresholdCount", "healthy_threshold"), ("UnhealthyThresholdCount", "unhealthy_threshold"))
TG_ATTRIBUTES = {"deregistration_delay.timeout_seconds": "deregistration_delay",
                 "slow_start.duration_seconds": "slow_start",
                 "load_balancing.algorithm.type": "load_balancing_algorithm_type"}
ALARM_FIELDS = (("AlarmDescription", "alarm_description"), ("ActionsEnabled", "actions_enabled"),
                ("AlarmActions", "alarm_actions"), ("OKActions", "ok_actions"),
                ("InsufficientDataActions", "insufficient_data_actions"), ("Namespace", "namespace"),
                ("MetricName", "metric_name"), ("Statistic", "statistic"), ("ExtendedStatistic", "extended_statistic"),
                ("Period", "period"), ("Unit", "unit"), ("EvaluationPeriods", "evaluation_periods"),
                ("DatapointsToAlarm", "datapoints_to_alarm"), ("Threshold", "threshold"),
                ("ThresholdMetricId", "threshold_metric_id"), ("ComparisonOperator", "comparison_operator"),
                ("TreatMissingData", "treat_missing_data"),
                ("EvaluateLowSampleCountPercentile", "evaluate_low_sample_count_percentiles"))


class _Exporter:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.lb = data.get("loadBalancer") or {}
        self.blocks: list[HBlock] = []
        self.variables: dict[str, tuple[str, Any]] = {}  # name -> (description, default or ...)
        self.tg_labels = {tg["Name"]: label(tg["Name"]) for tg in self.lb.get("TargetGroups", [])}
        self.rule_labels: dict[str, str] = {}  # <listener>/<priority> -> resource label
        self.listener_labels: dict[str, str] = {}  # <listener>/default or its ARN -> resource label
        self.lb_label = "main"
        self.notes: list[str] = []

    def var(self, name: str, description: str, default: Any = ...) -> Expr:
        self.variables.setdefault(name, (description, default))
        return Expr(f"var.{name}")

    def tg_ref(self, ref: str, attr: str = "arn") -> Any:
        name = target_group_name(ref)
        if name in self.tg_labels:
            return Expr(f"aws_lb_target_group.{self.tg_labels[name]}.{attr}")
        return ref

    def run(self) -> str:
        self._load_balancer()
        self._alarms()
        self._service()
        out = ["# Terraform for the AWS provider, written by shiftlab from a rehearsed config.",
               "# Not exported (shiftlab's own): timeScale, lambdaFunctions (what ran in place of each Lambda",
               "# function), controller, prometheus, the local listener ports' meaning on this machine."]
        out += [f"# {n}" for n in self.notes]
        out.append("")
        for name, (description, default) in self.variables.items():
            v = HBlock("variable", (name,))
            v.set("description", description)
            if default is not ...:
                v.items.append(("default", default))
            out.append(v.render())
            out.append("")
        for b in self.blocks:
            out.append(b.render())
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    # -- load balancer ------------------------------------------------------------

    def _load_balancer(self) -> None:
        if not self.lb.get("Listeners"):
            return  # a Service Connect service without a load balancer: the namespace's proxy is ECS's
        from shiftlab.proxy.config import LoadBalancer

        # NLB's defaults (TCP, TCP health checks) filled in as the rehearsal had them.
        models = {tg.Name: tg for tg in LoadBalancer.model_validate(copy.deepcopy(self.lb)).TargetGroups}
        lb = HBlock("resource", ("aws_lb", self.lb_label))
        lb.set("name", self.lb.get("Name", "shiftlab"))
        lb.set("load_balancer_type", self.lb.get("Type", "application"))
        lb.set("subnets", self.var("subnet_ids", "The load balancer's subnets (not in shiftlab's config)"))
        for a in self.lb.get("LoadBalancerAttributes", []):
            if a["Key"] == "idle_timeout.timeout_seconds":
                lb.set("idle_timeout", int(a["Value"]))
            elif a["Key"] == "routing.http.desync_mitigation_mode":
                lb.set("desync_mitigation_mode", a["Value"])
        self.blocks.append(lb)
        for tg in self.lb.get("TargetGroups", []):
            model = models[tg["Name"]]
            b = HBlock("resource", ("aws_lb_target_group", self.tg_labels[tg["Name"]]))
            b.set("name", tg["Name"])
            if "Port" in tg:
                b.set("port", tg["Port"])
            else:
                b.comments.append("port: AWS requires one for ip and instance targets; the config gives none")
            b.set("protocol", model.Protocol)
            b.set("target_type", model.TargetType)
            b.set("vpc_id", self.var("vpc_id", "The target groups' VPC (not in shiftlab's config)"))
            for a in tg.get("TargetGroupAttributes", []):
                if a["Key"] in TG_ATTRIBUTES:
                    value = a["Value"]
                    b.set(TG_ATTRIBUTES[a["Key"]], int(value) if value.isdigit() else value)
                elif a["Key"] == "deregistration_delay.connection_termination.enabled":
                    # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_target_group#connection_termination
                    b.set("connection_termination", a["Value"] == "true")
            hc = b.block("health_check")
            # Every value written: the provider's defaults (3 and 3 thresholds, HTTP)
            # are not ELBv2's (5 and 2; TCP for an NLB's TCP group), which the rehearsal used.
            tcp_check = model.HealthCheckProtocol == "TCP"
            for key, arg in HEALTH:
                if not (tcp_check and key == "HealthCheckPath"):  # a TCP check has no path and no matcher
                    hc.set(arg, getattr(model, key))
            if self.lb.get("Type") == "network":
                hc.set("protocol", model.HealthCheckProtocol)
            if not tcp_check:
                hc.set("matcher", model.Matcher.HttpCode)
            self.blocks.append(b)
        for listener in self.lb.get("Listeners", []):
            self._listener(listener)

    def _listener(self, listener: dict[str, Any]) -> None:
        name = listener.get("Name") or str(listener["Port"])
        lab = label(name)
        b = HBlock("resource", ("aws_lb_listener", lab))
        b.set("load_balancer_arn", Expr(f"aws_lb.{self.lb_label}.arn"))
        b.set("port", listener["Port"])
        network = self.lb.get("Type") == "network"
        b.set("protocol", "TCP" if network else "HTTP")
        self.listener_labels[f"{name}/default"] = lab
        if listener.get("ListenerArn"):
            self.listener_labels[listener["ListenerArn"]] = lab
        for a in listener.get("ListenerAttributes") or []:
            if a["Key"] == "tcp.idle_timeout.seconds":
                # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_listener#tcp_idle_timeout_seconds
                b.set("tcp_idle_timeout_seconds", int(a["Value"]))
        self._action(b, "default_action", listener["DefaultActions"][0])
        test = listener.get("TestTrafficRule") or {}
        if test.get("Enabled", not network):
            self.notes.append(f"listener {name}: its header test route (TestTrafficRule) is shiftlab's own; on AWS "
                              "make it a listener rule with an http-header condition")
        self.blocks.append(b)
        for rule in listener.get("Rules", []):
            rid = f"{name}/{rule['Priority']}"
            rlab = label(f"{name}_{rule['Priority']}")
            self.rule_labels[rid] = rlab
            if rule.get("RuleArn"):
                self.rule_labels[rule["RuleArn"]] = rlab
            r = HBlock("resource", ("aws_lb_listener_rule", rlab))
            r.set("listener_arn", Expr(f"aws_lb_listener.{lab}.arn"))
            r.set("priority", rule["Priority"])
            self._action(r, "action", rule["Actions"][0])
            for cond in rule["Conditions"]:
                self._condition(r.block("condition"), cond)
            self.blocks.append(r)

    def _action(self, parent: HBlock, kind: str, action: dict[str, Any]) -> None:
        a = parent.block(kind)
        a.set("type", action["Type"])
        if action["Type"] == "forward":
            if action.get("ForwardConfig") is None:
                a.set("target_group_arn", self.tg_ref(action["TargetGroupArn"]))
                return
            fwd = a.block("forward")
            for t in action["ForwardConfig"]["TargetGroups"]:
                g = fwd.block("target_group")
                g.set("arn", self.tg_ref(t["TargetGroupArn"]))
                g.set("weight", t.get("Weight", 1))
            sticky = action["ForwardConfig"].get("TargetGroupStickinessConfig")
            if sticky is not None:
                s = fwd.block("stickiness")
                s.set("enabled", sticky.get("Enabled", False))
                s.set("duration", sticky.get("DurationSeconds", 3600))
        elif action["Type"] == "fixed-response":
            fr = a.block("fixed_response")
            spec = action["FixedResponseConfig"]
            for key, arg in (("ContentType", "content_type"), ("MessageBody", "message_body"),
                             ("StatusCode", "status_code")):
                fr.set(arg, spec.get(key))
        else:
            rd = a.block("redirect")
            spec = action["RedirectConfig"]
            for key, arg in (("Protocol", "protocol"), ("Host", "host"), ("Port", "port"), ("Path", "path"),
                             ("Query", "query"), ("StatusCode", "status_code")):
                rd.set(arg, spec.get(key))

    def _condition(self, c: HBlock, cond: dict[str, Any]) -> None:
        fname = cond["Field"]
        kind = fname.replace("-", "_")
        config = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig",
                  "http-header": "HttpHeaderConfig", "http-request-method": "HttpRequestMethodConfig",
                  "query-string": "QueryStringConfig", "source-ip": "SourceIpConfig"}[fname]
        spec = cond.get(config) or {"Values": cond.get("Values")}
        if fname == "query-string":
            q = c.block(kind)
            for pair in spec["Values"]:
                v = q.block("values")
                v.set("key", pair.get("Key"))
                v.set("value", pair["Value"])
            return
        b = c.block(kind)
        if fname == "http-header":
            b.set("http_header_name", spec["HttpHeaderName"])
        values = spec["Values"]
        b.set("values", [values] if isinstance(values, str) else values)

    # -- alarms -----------------------------------------------------------------------

    def _dimensions(self, dims: list[dict[str, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in dims:
            if d["Name"] == "TargetGroup" and target_group_name(d["Value"]) in self.tg_labels:
                out[d["Name"]] = self.tg_ref(d["Value"], "arn_suffix")
            elif d["Name"] == "LoadBalancer":
                out[d["Name"]] = Expr(f"aws_lb.{self.lb_label}.arn_suffix")
            else:
                out[d["Name"]] = d["Value"]
        return out

    def _alarms(self) -> None:
        self.alarm_labels: dict[str, str] = {}
        for alarm in self.data.get("alarms") or []:
            lab = label(alarm["AlarmName"])
            self.alarm_labels[alarm["AlarmName"]] = lab
            b = HBlock("resource", ("aws_cloudwatch_metric_alarm", lab))
            b.set("alarm_name", alarm["AlarmName"])
            for key, arg in ALARM_FIELDS:
                b.set(arg, alarm.get(key))
            if alarm.get("Dimensions"):
                b.set("dimensions", self._dimensions(alarm["Dimensions"]))
            for q in alarm.get("Metrics") or []:
                mq = b.block("metric_query")
                mq.set("id", q["Id"])
                for key, arg in (("Expression", "expression"), ("Label", "label"), ("ReturnData", "return_data"),
                                 ("Period", "period"), ("AccountId", "account_id")):
                    mq.set(arg, q.get(key))
                stat = q.get("MetricStat")
                if stat is not None:
                    m = mq.block("metric")
                    m.set("namespace", stat["Metric"]["Namespace"])
                    m.set("metric_name", stat["Metric"]["MetricName"])
                    if stat["Metric"].get("Dimensions"):
                        m.set("dimensions", self._dimensions(stat["Metric"]["Dimensions"]))
                    m.set("period", stat.get("Period"))
                    m.set("stat", stat.get("Stat"))
                    m.set("unit", stat.get("Unit"))
            if alarm.get("Tags"):
                b.set("tags", {t["Key"]: t["Value"] for t in alarm["Tags"]})
            self.blocks.append(b)

    # -- service -----------------------------------------------------------------------

    def _rule_ref(self, ref: str, what: str) -> Any:
        if ref in self.rule_labels:
            return Expr(f"aws_lb_listener_rule.{self.rule_labels[ref]}.arn")
        if self.lb.get("Type") == "network" and ref in self.listener_labels:
            return Expr(f"aws_lb_listener.{self.listener_labels[ref]}.arn")  # ECS takes an NLB's listener
        if ref.endswith("/default"):
            listener = ref.rsplit("/", 1)[0]
            return self.var(f"{label(listener)}_default_rule_arn",
                            f"The ARN of listener {listener}'s default rule ({what}; Terraform manages no default "
                            "rule: aws elbv2 describe-rules --listener-arn ...); the default is shiftlab's name "
                            "for it", ref)
        return ref

    def _service(self) -> None:
        svc = self.data.get("service")
        if not svc:
            return
        dc = self.data.get("deploymentConfiguration") or {}
        b = HBlock("resource", ("aws_ecs_service", label(svc.get("serviceName", "shiftlab-service"))))
        b.set("name", svc.get("serviceName", "shiftlab-service"))
        b.set("cluster", svc.get("clusterName", "local"))
        task = svc.get("taskDefinition") or {}
        if any(k in task for k in ("family", "cpu", "memory")):
            td = HBlock("resource", ("aws_ecs_task_definition", label(task.get("family") or "app")))
            td.set("family", task.get("family") or svc.get("serviceName", "shiftlab-service"))
            td.set("cpu", str(task["cpu"]) if "cpu" in task else None)
            td.set("memory", str(task["memory"]) if "memory" in task else None)
            td.set("container_definitions", self.var("container_definitions", "The task's containers (shiftlab ran "
                                                                              "a local command or image)"))
            self.blocks.append(td)
            b.set("task_definition", Expr(f"aws_ecs_task_definition.{td.labels[1]}.arn"))
        else:
            b.set("task_definition", self.var("task_definition_arn", "The task definition revision the service "
                                                                     "runs (shiftlab ran a local command or image)"))
        b.set("desired_count", svc.get("desiredCount", 2))
        b.set("health_check_grace_period_seconds", svc.get("healthCheckGracePeriodSeconds"))
        b.set("deployment_maximum_percent", dc.get("maximumPercent"))
        b.set("deployment_minimum_healthy_percent", dc.get("minimumHealthyPercent"))
        conf = b.block("deployment_configuration")
        conf.set("strategy", dc.get("strategy", "ROLLING"))
        conf.set("bake_time_in_minutes", dc.get("bakeTimeInMinutes"))
        for key, block_name, fields in (("canaryConfiguration", "canary_configuration",
                                         (("canaryPercent", "canary_percent"),
                                          ("canaryBakeTimeInMinutes", "canary_bake_time_in_minutes"))),
                                        ("linearConfiguration", "linear_configuration",
                                         (("stepPercent", "step_percent"),
                                          ("stepBakeTimeInMinutes", "step_bake_time_in_minutes")))):
            if key in dc:
                sub = conf.block(block_name)
                for k, arg in fields:
                    sub.set(arg, dc[key].get(k))
        for i, hook in enumerate(dc.get("lifecycleHooks") or []):
            arn = hook.get("hookTargetArn") or ""
            if hook.get("targetType") == "PAUSE" or not arn.startswith("arn:"):
                self.notes.append(f"deploymentConfiguration.lifecycleHooks[{i}]: "
                                  + ("a PAUSE hook" if hook.get("targetType") == "PAUSE" else f"{arn!r}")
                                  + " has no lifecycle_hook in the provider's schema (it takes a Lambda ARN)")
                continue
            h = conf.block("lifecycle_hook")
            h.set("hook_target_arn", arn)
            h.set("role_arn", hook.get("roleArn") or self.var("hook_role_arn", "The role ECS invokes lifecycle "
                                                                             "hooks with (the config gives none)",
                                                            None))
            h.set("lifecycle_stages", hook["lifecycleStages"])
            if hook.get("hookDetails") is not None:
                h.set("hook_details", Expr(f"jsonencode({hcl(hook['hookDetails'], 3)})"))
            if hook.get("timeoutConfiguration"):
                self.notes.append(f"deploymentConfiguration.lifecycleHooks[{i}].timeoutConfiguration: not in the "
                                  "provider's lifecycle_hook schema")
        cb = dc.get("deploymentCircuitBreaker")
        if cb is not None:
            c = b.block("deployment_circuit_breaker")
            c.set("enable", cb.get("enable", False))
            c.set("rollback", cb.get("rollback", False))
        al = dc.get("alarms")
        if al is not None:
            a = b.block("alarms")
            a.set("alarm_names", [Expr(f"aws_cloudwatch_metric_alarm.{self.alarm_labels[n]}.alarm_name")
                                  if n in self.alarm_labels else n for n in al.get("alarmNames", [])])
            a.set("enable", al.get("enable", False))
            a.set("rollback", al.get("rollback", False))
        for entry in svc.get("loadBalancers") or []:
            lb = b.block("load_balancer")
            lb.set("target_group_arn", self.tg_ref(entry["targetGroupArn"]))
            lb.set("container_name", entry.get("containerName") or self.var(
                "container_name", "The container the load balancer sends traffic to (the config gives none)", None))
            lb.set("container_port", entry.get("containerPort") or self.var(
                "container_port", "Its port (the config gives none)", None))
            adv = entry.get("advancedConfiguration")
            if adv is not None:
                a2 = lb.block("advanced_configuration")
                a2.set("alternate_target_group_arn", self.tg_ref(adv["alternateTargetGroupArn"]))
                a2.set("production_listener_rule", self._rule_ref(adv["productionListenerRule"], "production"))
                tests = adv.get("testListenerRule") or []
                tests = [tests] if isinstance(tests, str) else tests
                aws_tests = [t for t in tests if not t.endswith("/test")]
                if aws_tests:
                    a2.set("test_listener_rule", self._rule_ref(aws_tests[0], "test"))
                for t in tests:
                    if t.endswith("/test"):
                        self.notes.append(f"testListenerRule {t}: shiftlab's header test route, not an AWS rule")
                for t in aws_tests[1:]:
                    self.notes.append(f"testListenerRule {t}: ECS takes one test listener rule")
                a2.set("role_arn", adv.get("roleArn") or self.var(
                    "ecs_infrastructure_role_arn", "The role ECS moves the listener rules' weights with (the "
                                                   "config gives none)", None))
        sc = svc.get("serviceConnectConfiguration")
        if sc is not None:
            self._service_connect(b.block("service_connect_configuration"), sc)
        if not svc.get("loadBalancers") and sc is None:
            self.notes.append("service: headless (no load_balancer, no service_connect_configuration): ECS shifts "
                              "no traffic; a Lambda lifecycle_hook at PRODUCTION_TRAFFIC_SHIFT decides which revision "
                              "works (shiftlab's activation hook did in the rehearsal)")
        net = b.block("network_configuration")
        net.set("subnets", self.var("subnet_ids", "The service's subnets (not in shiftlab's config)"))
        self.blocks.append(b)


    def _service_connect(self, b: HBlock, sc: dict[str, Any]) -> None:
        """ECS's ServiceConnectConfiguration as the provider's block
        (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ecs_service#service_connect_configuration)."""
        b.set("enabled", sc["enabled"])
        b.set("namespace", sc.get("namespace"))
        for item in sc.get("services") or []:
            s = b.block("service")
            s.set("port_name", item["portName"])
            s.set("discovery_name", item.get("discoveryName"))
            s.set("ingress_port_override", item.get("ingressPortOverride"))
            for alias in item.get("clientAliases") or []:
                a = s.block("client_alias")
                a.set("port", alias["port"])
                a.set("dns_name", alias.get("dnsName"))
                header = (alias.get("testTrafficRules") or {}).get("header")
                if header is not None:
                    h = a.block("test_traffic_rules").block("header")
                    h.set("name", header["name"])
                    if header.get("value") is not None:
                        h.block("value").set("exact", header["value"]["exact"])
                    else:  # ECS matches the header with any value; the provider's schema requires one
                        self.notes.append(f"client alias {alias['port']}: test_traffic_rules.header has no value "
                                          "(any value matches, as ECS takes it); the provider requires value.exact")
            timeout = item.get("timeout")
            if timeout:
                t = s.block("timeout")
                t.set("idle_timeout_seconds", timeout.get("idleTimeoutSeconds"))
                t.set("per_request_timeout_seconds", timeout.get("perRequestTimeoutSeconds"))
            tls = item.get("tls")
            if tls:
                t2 = s.block("tls")
                ca = tls.get("issuerCertificateAuthority")
                if ca:
                    t2.block("issuer_cert_authority").set("aws_pca_authority_arn", ca.get("awsPcaAuthorityArn"))
                t2.set("kms_key", tls.get("kmsKey"))
                t2.set("role_arn", tls.get("roleArn"))
        access = sc.get("accessLogConfiguration")
        if access:
            al = b.block("access_log_configuration")
            al.set("format", access.get("format"))
            al.set("include_query_parameters", access.get("includeQueryParameters"))
        log = sc.get("logConfiguration")
        if log:
            lc = b.block("log_configuration")
            lc.set("log_driver", log.get("logDriver"))
            lc.set("options", log.get("options"))
            for secret in log.get("secretOptions") or []:
                so = lc.block("secret_option")
                so.set("name", secret.get("name"))
                so.set("value_from", secret.get("valueFrom"))


def render(data: dict[str, Any]) -> str:
    """The Terraform snippet of a config (its dict as read from the file;
    check it with shiftlab.settings.load_settings first)."""
    return _Exporter(data).run()


def files(data: dict[str, Any]) -> dict[str, str]:
    """`shiftlab export --format terraform`: the config checked as validate
    checks it (ConfigError otherwise), then its snippet as main.tf."""
    from shiftlab.settings import load_settings

    load_settings(copy.deepcopy(data))
    return {"main.tf": render(data)}
