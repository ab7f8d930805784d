"""`shiftlab import terraform DIR`: a Terraform module's ECS service, the
listeners, rules and target groups it shifts traffic through and the alarms
it names, as a shiftlab config.

Read from the AWS provider's resources (arguments as its documentation
names them: https://registry.terraform.io/providers/hashicorp/aws/latest/docs):
`aws_ecs_service` (deployment_configuration { strategy, bake_time_in_minutes,
canary_configuration, linear_configuration, lifecycle_hook },
deployment_circuit_breaker, alarms, load_balancer { advanced_configuration },
deployment_maximum_percent, deployment_minimum_healthy_percent),
`aws_lb` / `aws_alb`, `aws_lb_listener`, `aws_lb_listener_rule`,
`aws_lb_target_group`, `aws_cloudwatch_metric_alarm`. The AWS parts keep
their values; what only a local rehearsal needs (the command or image a
task runs, listener ports below 1024, the time scale) gets a placeholder the
report names. Everything else is reported as ignored, with the reason.

The names the config uses for what AWS knows by ARN follow shiftlab's
conventions: a target group by its name, a listener rule by
`<listener>/<priority>` (the listener named after its Terraform resource),
an alarm dimension's target group by `targetgroup/<name>/<id>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.interop import notes
from shiftlab.interop.hcl import _NO_DEFAULT, Block, Evaluator, HclError, Module, Ref, read_tfvars, var_flag
from shiftlab.interop.report import Report

PLACEHOLDER_COMMAND = ["{python}", "-m", "shiftlab.sample_service"]
PLACEHOLDER_HOOK = "command:{python} -m shiftlab.demo_hook"
# A headless service's stand-ins (the sample queue consumer, the shipped activation hook).
HEADLESS_PLACEHOLDER_COMMAND = ["{python}", "-m", "shiftlab.queue_consumer"]
LOCAL_QUEUE_URL = "http://127.0.0.1:9300"
ACTIVATION_HOOK = "command:{python} -m shiftlab.activation_hook"
PLACEHOLDER_REGION = "us-east-1"
PLACEHOLDER_ACCOUNT = "000000000000"
SUFFIX_ID = "0123456789abcdef"  # the id part of an ARN Terraform only knows after apply

LB_TYPES = ("aws_lb", "aws_alb")
LISTENER_TYPES = ("aws_lb_listener", "aws_alb_listener")
RULE_TYPES = ("aws_lb_listener_rule", "aws_alb_listener_rule")
TG_TYPES = ("aws_lb_target_group", "aws_alb_target_group")
ALARM_TYPE = "aws_cloudwatch_metric_alarm"

# Why an argument (or a whole resource) has no place in a rehearsal.
REASONS = {
    "network_configuration": "networking (subnets, security groups): tasks run on this machine",
    "iam_role": "IAM: a rehearsal calls nothing on AWS",
    "launch_type": "where tasks run on AWS (Fargate, EC2): here they run as local processes or containers",
    "capacity_provider_strategy": "where tasks run on AWS: here they run as local processes or containers",
    "platform_version": "Fargate's platform version: not rehearsed",
    "task_definition": "the task definition's containers: the local command or image stands in (taskDefinition)",
    "tags": "tags: not rehearsed",
    "tags_all": "tags: not rehearsed",
    "vpc_id": "networking: not rehearsed",
    "subnets": "networking: not rehearsed",
    "subnet_mapping": "networking: not rehearsed",
    "security_groups": "networking: not rehearsed",
    "internal": "networking: the local load balancer listens on 127.0.0.1",
    "certificate_arn": "TLS: local listeners speak HTTP",
    "ssl_policy": "TLS: local listeners speak HTTP",
    "enable_execute_command": "ECS Exec: not rehearsed",
    "enable_ecs_managed_tags": "tags: not rehearsed",
    "propagate_tags": "tags: not rehearsed",
    "wait_for_steady_state": "a Terraform apply option",
    "force_new_deployment": "a Terraform apply option",
    "triggers": "a Terraform apply option",
    "depends_on": "Terraform ordering",
    "lifecycle": "Terraform's lifecycle meta-argument",
    "provider": "Terraform's provider meta-argument",
    "ordered_placement_strategy": "task placement on EC2 instances: not rehearsed",
    "placement_constraints": "task placement on EC2 instances: not rehearsed",
    "service_registries": "Cloud Map service discovery: not rehearsed",
    "scheduling_strategy": "REPLICA is what shiftlab runs",
    "access_logs": "access logs: not rehearsed",
    "stickiness": "target group (lb_cookie) stickiness: shiftlab has target-group stickiness in forward actions only",
    "region": "the AWS region: not rehearsed",
    "availability_zone_rebalancing": "Availability Zones: not rehearsed",
    "sigint_rollback": "a Terraform apply option",
    "alarm_rule": "composite alarms: not rehearsed",
}


@dataclass
class Context:
    module: Module
    values: dict[str, Any]  # var name -> raw value, from tfvars and flags
    region: str | None
    account: str | None
    report: Report = field(default_factory=Report)
    _locals: dict[str, Any] = field(default_factory=dict)
    _resolving: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self._resolve)

    # -- references ---------------------------------------------------------

    def _resolve(self, steps: list[str | int]) -> Any:
        head = steps[0]
        if head == "var":
            name = _step(steps, 1)
            value = self._var(name)
            return _traverse(value, steps[2:], f"var.{name}")
        if head == "local":
            name = _step(steps, 1)
            if name not in self.module.locals:
                raise HclError(f"local.{name} is not defined in the module")
            if name not in self._locals:
                if name in self._resolving:
                    raise HclError(f"local.{name} refers to itself")
                self._resolving.add(name)
                try:
                    self._locals[name] = self.evaluator.value(self.module.locals[name])
                finally:
                    self._resolving.discard(name)
            return _traverse(self._locals[name], steps[2:], f"local.{name}")
        if head == "data":
            return self._data(steps)
        if head in ("path", "terraform", "count", "each", "self", "module"):
            raise HclError(f"{'.'.join(map(str, steps))}: {head}.* references are not supported")
        rtype, rname = str(head), _step(steps, 1)
        block = self.module.resources.get((rtype, rname))
        if block is None:
            raise HclError(f"{rtype}.{rname} is not a resource of this module")
        rest = steps[2:]
        if rest and isinstance(rest[0], int):
            count = block.body.get("count")
            if self.evaluator.value(count) != 1 or rest[0] != 0:
                raise HclError(f"{rtype}.{rname}[{rest[0]}]: only count = 1 resources are read")
            rest = rest[1:]
        if not rest:
            raise HclError(f"{rtype}.{rname}: a reference to a whole resource is not supported")
        return _traverse(self._attribute(block, str(rest[0])), rest[1:], f"{rtype}.{rname}.{rest[0]}")

    def _var(self, name: str) -> Any:
        if name in self.values:
            return self.evaluator.value(self.values[name])
        if name not in self.module.variables:
            raise HclError(f"var.{name} is not declared in the module")
        default = self.module.variables[name]
        if default is _NO_DEFAULT:
            raise HclError(f"var.{name} has no value (give --var {name}=... or a --var-file)")
        return self.evaluator.value(default)

    def _data(self, steps: list[str | int]) -> Any:
        dtype, dname, attr = _step(steps, 1), _step(steps, 2), _step(steps, 3)
        if (dtype, dname) not in self.module.data:
            raise HclError(f"data.{dtype}.{dname} is not a data source of this module")
        if dtype == "aws_region" and attr in ("name", "region", "id"):
            return self.region_name()
        if dtype == "aws_caller_identity" and attr in ("account_id", "id"):
            return self.account_id()
        if dtype == "aws_partition" and attr == "partition":
            return "aws"
        raise HclError(f"data.{dtype}.{dname}.{attr}: a data source's value is known only to Terraform "
                       "(give the value through a variable)")

    def region_name(self) -> str:
        if self.region is None:
            notes.local(self.report, "(ARNs)", f"the AWS region is taken as {PLACEHOLDER_REGION} (give --region)")
        return self.region or PLACEHOLDER_REGION

    def account_id(self) -> str:
        if self.account is None:
            notes.local(self.report, "(ARNs)", f"the AWS account is taken as {PLACEHOLDER_ACCOUNT} (give --account-id)")
        return self.account or PLACEHOLDER_ACCOUNT

    def _attribute(self, block: Block, attr: str) -> Any:
        t = block.type
        if attr in ("arn", "id"):
            if t == "aws_ecs_cluster":
                return self.name_of(block, "name")
            if t == ALARM_TYPE and attr == "id":
                return self.name_of(block, "alarm_name")
            return Ref(t, block.name)
        if attr == "arn_suffix":
            if t in TG_TYPES:
                return f"targetgroup/{self.name_of(block, 'name')}/{SUFFIX_ID}"
            if t in LB_TYPES:
                return f"app/{self.name_of(block, 'name')}/{SUFFIX_ID}"
        if attr == "name" and t in TG_TYPES + LB_TYPES:
            return self.name_of(block, "name")
        if attr in block.body:
            return self.evaluator.value(block.body[attr])
        raise HclError(f"{block.address}.{attr}: known only once Terraform applies the module")

    def name_of(self, block: Block, arg: str) -> str:
        """A resource's name argument, or its Terraform name when the module
        leaves the name to Terraform (reported)."""
        if arg in block.body:
            value = self.evaluator.value(block.body[arg])
            if isinstance(value, str) and value:
                return value
        if "name_prefix" in block.body:
            notes.local(self.report, block.address, "named after its Terraform resource (the module gives only "
                        "name_prefix)")
        name = re.sub(r"[^A-Za-z0-9-]", "-", block.name)[:32]
        notes.local(self.report, block.address, f"no {arg}: named {name!r} after its Terraform resource")
        return name

    def arn(self, value: Any, what: str) -> str:
        """An ARN an AWS field keeps: a string, or one built from a module resource's name."""
        if isinstance(value, str):
            return value
        if isinstance(value, Ref):
            block = self.module.resources[(value.type, value.name)]
            region, account = self.region_name, self.account_id
            if value.type == "aws_lambda_function":
                return f"arn:aws:lambda:{region()}:{account()}:function:{self.name_of(block, 'function_name')}"
            if value.type == "aws_iam_role":
                return f"arn:aws:iam::{account()}:role/{self.name_of(block, 'name')}"
            if value.type == "aws_sns_topic":
                return f"arn:aws:sns:{region()}:{account()}:{self.name_of(block, 'name')}"
            if value.type == ALARM_TYPE:
                return f"arn:aws:cloudwatch:{region()}:{account()}:alarm:{self.name_of(block, 'alarm_name')}"
            raise HclError(f"{value}.arn: the ARN of a {value.type} is known only once Terraform applies it")
        raise HclError(f"{what}: expected an ARN, got {value!r}")

    # -- arguments ----------------------------------------------------------

    def get(self, block: Block, body: dict[str, Any], path: str, target: str | None = None,
            convert: Callable[[Any], Any] | None = None, at: str = "") -> Any:
        """The argument `path` (dot-separated within `body`, which is `at`
        within `block`) of `block`, evaluated; None when absent. Recorded as
        mapped to `target`."""
        full = f"{at}.{path}" if at else path
        raw: Any = body
        for part in path.split("."):
            if not isinstance(raw, dict) or part not in raw:
                return None
            raw = raw[part]
        try:
            value = self.evaluator.value(raw)
            if convert is not None:
                value = convert(value)
        except HclError as exc:
            raise ConfigError([f"{block.file}: {block.address}: {full}: {exc}"]) from None
        if target is not None:
            notes.mapped(self.report, f"{block.address}.{full}", target)
        return value

    def fail(self, block: Block, path: str, message: str) -> ConfigError:
        return ConfigError([f"{block.file}: {block.address}: {path}: {message}"])


def _step(steps: list[str | int], i: int) -> str:
    if len(steps) <= i or not isinstance(steps[i], str):
        raise HclError(f"{'.'.join(map(str, steps))}: incomplete reference")
    return str(steps[i])


def _traverse(value: Any, steps: list[str | int], where: str) -> Any:
    for s in steps:
        ok = (isinstance(s, int) and isinstance(value, list) and s < len(value)) or \
            (isinstance(s, str) and isinstance(value, dict) and s in value)
        if ok:
            value = value[s]
        else:
            raise HclError(f"{where}: has no {s!r}")
        where = f"{where}.{s}"
    return value


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [b for b in value if isinstance(b, dict)]


def one_block(ctx: Context, block: Block, body: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = blocks(body, name)
    if len(found) > 1:
        raise ctx.fail(block, name, f"{len(found)} blocks; the provider takes one")
    return found[0] if found else None


def _int(v: Any) -> Any:
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _number(v: Any) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() else f
    return v


def _bool(v: Any) -> Any:
    if v in ("true", "false"):
        return v == "true"
    return v


def _strings(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


# -- the import ---------------------------------------------------------------


@dataclass
class Imported:
    config: dict[str, Any]
    report: Report

    def text(self) -> str:
        return notes.marked(yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True), self.report)


def import_terraform(directory: str | Path, var_files: list[str] | None = None, var_flags: list[str] | None = None,
                     region: str | None = None, account: str | None = None, command: list[str] | None = None,
                     image: str | None = None, time_scale: float = 60.0) -> Imported:
    """The config and its report; ConfigError naming the resource and the
    argument for anything that keeps the module from being rehearsed."""
    module = Module.read(directory)
    values: dict[str, Any] = {}
    d = Path(directory)
    auto = [d / "terraform.tfvars", d / "terraform.tfvars.json", *sorted(d.glob("*.auto.tfvars")),
            *sorted(d.glob("*.auto.tfvars.json"))]
    for f in [p for p in auto if p.is_file()] + [Path(f) for f in var_files or []]:
        values.update(read_tfvars(f))
    for flag in var_flags or []:
        name, value = var_flag(flag)
        values[name] = value
    ctx = Context(module, values, region, account)
    return Imported(_Importer(ctx, command, image, time_scale).run(), ctx.report)


class _Importer:
    def __init__(self, ctx: Context, command: list[str] | None, image: str | None, time_scale: float) -> None:
        self.ctx = ctx
        self.command = command
        self.image = image
        self.time_scale = time_scale
        self.tg_names: dict[str, str] = {}  # Terraform name -> target group name
        self.listener_of: dict[str, str] = {}  # listener Terraform name -> shiftlab listener name
        self.rule_ids: dict[str, str] = {}  # rule Terraform name -> <listener>/<priority>
        self.used: set[str] = set()  # addresses mapped
        self.network = False  # the listeners' load balancer is a network one (load_balancer_type "network")
        self.headless = False  # neither a load_balancer block nor a Service Connect service

    def run(self) -> dict[str, Any]:
        ctx = self.ctx
        services = ctx.module.of_type("aws_ecs_service")
        if not services:
            raise ConfigError(["aws_ecs_service: the module declares none (shiftlab rehearses one ECS service)"])
        if len(services) > 1:
            raise ConfigError([f"aws_ecs_service: the module declares {len(services)} "
                               f"({', '.join(s.address for s in services)}); shiftlab rehearses one: "
                               "import from a directory holding one"])
        svc = services[0]
        self.used.add(svc.address)
        connect = self._service_connect(svc)
        load_balancer = None
        # Neither a load_balancer block nor a Service Connect service offered: a headless service
        # (README: Headless services): no loadBalancer section; hooks decide which revision works.
        # (A client-only service_connect_configuration without load_balancer is still refused, as before.)
        self.headless = not blocks(svc.body, "load_balancer") and connect is None
        if self.headless:
            notes.mapped(ctx.report, f"{svc.address} (no load_balancer, no service_connect_configuration)",
                         "service (headless: no loadBalancer section)")
        elif blocks(svc.body, "load_balancer") or not (connect and connect.get("enabled") and connect.get("services")):
            lb_block = self._service_lb(svc)
            listeners = self._listeners(svc, lb_block)
            load_balancer = self._load_balancer(lb_block, listeners)
        service, deployment, alarm_names = self._service(svc, load_balancer is not None)
        if connect is not None:
            service["serviceConnectConfiguration"] = connect
        alarms = self._alarms(svc, alarm_names)
        scale = int(self.time_scale) if float(self.time_scale).is_integer() else self.time_scale
        config: dict[str, Any] = {"timeScale": scale, **({"loadBalancer": load_balancer} if load_balancer else {}),
                                  "service": service, "deploymentConfiguration": deployment, "alarms": alarms}
        functions = self._lambda_functions(deployment)
        if functions:
            config["lambdaFunctions"] = functions
        config["controller"] = {"backend": "docker" if self.image else "process"}
        notes.local(ctx.report,
                    "timeScale", f"{self.time_scale:g}: an AWS minute lasts {60 / self.time_scale:g} s here "
                    "(a local choice)")
        for (_, _), block in sorted(ctx.module.resources.items()):
            if block.address not in self.used:
                notes.ignored(ctx.report, block.address, "not part of the service's rollout" if block.type in
                              (*LB_TYPES, *LISTENER_TYPES, *RULE_TYPES, *TG_TYPES, ALARM_TYPE)
                              else "not rehearsed")
        return config

    # -- load balancer --------------------------------------------------------

    def _service_lb(self, svc: Block) -> dict[str, Any]:
        lbs = blocks(svc.body, "load_balancer")
        if not lbs:
            raise self.ctx.fail(svc, "load_balancer", "is required: shiftlab rehearses a service behind a load "
                                                      "balancer's target group, or one offered in a Service Connect "
                                                      "namespace (service_connect_configuration with a service)")
        if len(lbs) > 1:
            raise self.ctx.fail(svc, "load_balancer", f"{len(lbs)} blocks; shiftlab rehearses a service with one")
        return lbs[0]

    def _listeners(self, svc: Block, lb: dict[str, Any]) -> list[Block]:
        """The listeners the rollout goes through: those of the production
        and test rules (or forwarding to the service's target group), and
        every other listener of the same load balancer."""
        ctx = self.ctx
        chosen: list[Block] = []
        adv = one_block(ctx, svc, lb, "advanced_configuration")
        rules = {b.name: b for t in RULE_TYPES for b in ctx.module.of_type(t)}
        all_listeners = {b.name: b for t in LISTENER_TYPES for b in ctx.module.of_type(t)}
        if adv is not None:
            for arg in ("production_listener_rule", "test_listener_rule"):
                ref = ctx.get(svc, adv, arg)
                if isinstance(ref, Ref) and ref.type in RULE_TYPES:
                    listener = self._rule_listener(rules[ref.name])
                    if listener not in chosen:
                        chosen.append(listener)
                elif isinstance(ref, Ref) and ref.type in LISTENER_TYPES and self._is_network(
                        ctx.module.resources[(ref.type, ref.name)]):
                    listener = ctx.module.resources[(ref.type, ref.name)]  # an NLB's: ECS takes the listener
                    if listener not in chosen:
                        chosen.append(listener)
                elif isinstance(ref, Ref) and ref.type in LISTENER_TYPES:
                    raise ctx.fail(svc, f"load_balancer.advanced_configuration.{arg}",
                                   f"{ref} is a listener: with an Application Load Balancer ECS shifts a listener "
                                   "rule's weights (an aws_lb_listener_rule)")
        if not chosen:
            tg = ctx.get(svc, lb, "target_group_arn")
            for listener in all_listeners.values():
                if self._forwards_to(listener, tg):
                    chosen.append(listener)
        if not chosen:
            raise ctx.fail(svc, "load_balancer", "no aws_lb_listener of the module forwards to its target group, "
                                                 "and no advanced_configuration names a listener rule")
        lb_ref = ctx.get(chosen[0], chosen[0].body, "load_balancer_arn")
        for listener in all_listeners.values():
            if listener not in chosen and ctx.get(listener, listener.body, "load_balancer_arn") == lb_ref:
                chosen.append(listener)
        return chosen

    def _is_network(self, listener: Block) -> bool:
        ref = self.ctx.get(listener, listener.body, "load_balancer_arn")
        lb = self.ctx.module.resources.get((ref.type, ref.name)) if isinstance(ref, Ref) else None
        # Not an ALB: a network one (another type is refused, naming it, with the load balancer).
        return lb is not None and self.ctx.get(lb, lb.body, "load_balancer_type") not in (None, "application")

    def _rule_listener(self, rule: Block) -> Block:
        ref = self.ctx.get(rule, rule.body, "listener_arn")
        if not isinstance(ref, Ref) or ref.type not in LISTENER_TYPES:
            raise self.ctx.fail(rule, "listener_arn", f"{ref!r} is not an aws_lb_listener of this module")
        return self.ctx.module.resources[(ref.type, ref.name)]

    def _forwards_to(self, listener: Block, tg: Any) -> bool:
        for action in blocks(listener.body, "default_action"):
            if self.ctx.get(listener, action, "target_group_arn") == tg:
                return True
            for fwd in blocks(action, "forward"):
                for t in blocks(fwd, "target_group"):
                    if self.ctx.get(listener, t, "arn") == tg:
                        return True
        return False

    def _load_balancer(self, lb_ref_block: dict[str, Any], listeners: list[Block]) -> dict[str, Any]:
        ctx = self.ctx
        out: dict[str, Any] = {}
        lb_ref = ctx.get(listeners[0], listeners[0].body, "load_balancer_arn")
        lb_block = ctx.module.resources.get((lb_ref.type, lb_ref.name)) if isinstance(lb_ref, Ref) else None
        if lb_block is not None:
            self.used.add(lb_block.address)
            kind = ctx.get(lb_block, lb_block.body, "load_balancer_type") or "application"
            if kind not in ("application", "network"):
                raise ctx.fail(lb_block, "load_balancer_type", f"{kind!r}: shiftlab emulates an Application or a "
                                                              "Network Load Balancer")
            self.network = kind == "network"
            if self.network:
                out["Type"] = "network"
                notes.mapped(ctx.report, f"{lb_block.address}.load_balancer_type", "loadBalancer.Type")
            out["Name"] = ctx.name_of(lb_block, "name")
            notes.mapped(ctx.report, f"{lb_block.address}.name", "loadBalancer.Name")
            attrs = []
            idle = None if self.network else ctx.get(lb_block, lb_block.body, "idle_timeout",
                                                     "loadBalancer.LoadBalancerAttributes", _int)
            if idle is not None:
                attrs.append({"Key": "idle_timeout.timeout_seconds", "Value": str(idle)})
            desync = None if self.network else ctx.get(lb_block, lb_block.body, "desync_mitigation_mode",
                                                       "loadBalancer.LoadBalancerAttributes")
            if desync is not None:
                attrs.append({"Key": "routing.http.desync_mitigation_mode", "Value": str(desync)})
            if attrs:
                out["LoadBalancerAttributes"] = attrs
            self._ignore_rest(lb_block, {"name", "load_balancer_type"} | (
                set() if self.network else {"idle_timeout", "desync_mitigation_mode"}))
        else:
            notes.local(ctx.report,
                        "loadBalancer.Name", "the listeners' load balancer is not a resource of this module")
        tg_blocks: dict[str, Block] = {}
        out["Listeners"] = []
        used_ports: set[int] = set()
        for listener in listeners:
            port = ctx.get(listener, listener.body, "port", None, _int)
            if isinstance(port, int) and port >= 1024:
                used_ports.add(port)
        for listener in listeners:
            self.listener_of[listener.name] = listener.name
        rules_of: dict[str, list[Block]] = {}
        for t in RULE_TYPES:
            for rule in self.ctx.module.of_type(t):
                owner = self._rule_listener(rule)
                if owner.name in self.listener_of:
                    rules_of.setdefault(owner.name, []).append(rule)
        for i, listener in enumerate(listeners):
            out["Listeners"].append(self._listener(listener, i, rules_of.get(listener.name, []), tg_blocks,
                                                   used_ports))
        out["TargetGroups"] = [self._target_group(b, i) for i, b in enumerate(tg_blocks.values())]
        return out

    def _listener(self, listener: Block, index: int, rules: list[Block], tgs: dict[str, Block],
                  used_ports: set[int]) -> dict[str, Any]:
        ctx = self.ctx
        self.used.add(listener.address)
        path = f"loadBalancer.Listeners[{index}]"
        out: dict[str, Any] = {"Name": listener.name}
        notes.mapped(ctx.report, listener.address, f"{path}.Name")
        port = ctx.get(listener, listener.body, "port", f"{path}.Port", _int)
        if port is None:
            port = 80
        if not isinstance(port, int):
            raise ctx.fail(listener, "port", f"{port!r} is not a port")
        local = port
        if port < 1024:
            local = 8000 + port
            while local in used_ports:
                local += 1
            notes.local(ctx.report, f"{path}.Port", f"{local}: AWS's port {port} needs root on this machine (a local "
                        "choice; the rule ids stay the same)")
        used_ports.add(local)
        out["Port"] = local
        protocol = ctx.get(listener, listener.body, "protocol") or ("TCP" if self.network else "HTTP")
        mapped = {"port", "protocol", "default_action", "load_balancer_arn"}
        if self.network:
            # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_listener
            if protocol != "TCP":
                raise ctx.fail(listener, "protocol", f"{protocol!r}: shiftlab's network listeners are TCP (TLS "
                                                     "passes through a TCP listener; TLS termination, UDP and "
                                                     "TCP_UDP are not rehearsed)")
            out["Protocol"] = "TCP"
            idle = ctx.get(listener, listener.body, "tcp_idle_timeout_seconds", f"{path}.ListenerAttributes", _int)
            if idle is not None:
                out["ListenerAttributes"] = [{"Key": "tcp.idle_timeout.seconds", "Value": str(idle)}]
            mapped.add("tcp_idle_timeout_seconds")
        elif protocol == "HTTPS":
            notes.ignored(ctx.report, f"{listener.address}.protocol", "HTTPS: local listeners speak HTTP")
        elif protocol != "HTTP":
            raise ctx.fail(listener, "protocol", f"{protocol!r}: shiftlab emulates an Application Load Balancer's "
                                                 "HTTP listeners")
        out["DefaultActions"] = self._actions(listener, "default_action", f"{path}.DefaultActions", tgs)
        # An imported listener has only AWS's rules: no header test route of shiftlab's own.
        out["TestTrafficRule"] = {"Enabled": False}
        out_rules: list[dict[str, Any]] = []
        taken = {ctx.get(r, r.body, "priority", None, _int) for r in rules} - {None}
        next_free = 1
        for rule in sorted(rules, key=lambda r: (ctx.get(r, r.body, "priority", None, _int) or 50001, r.name)):
            j = len(out_rules)
            rpath = f"{path}.Rules[{j}]"
            self.used.add(rule.address)
            priority = ctx.get(rule, rule.body, "priority", f"{rpath}.Priority", _int)
            if priority is None:
                while next_free in taken:
                    next_free += 1
                priority = next_free
                taken.add(priority)
                notes.local(ctx.report, f"{rpath}.Priority", f"{priority}: {rule.address} has none (AWS gives it the "
                            "next free one when it is created)")
            self.rule_ids[rule.name] = f"{listener.name}/{priority}"
            out_rules.append({"Priority": priority,
                              "Conditions": self._conditions(rule, f"{rpath}.Conditions"),
                              "Actions": self._actions(rule, "action", f"{rpath}.Actions", tgs)})
            self._ignore_rest(rule, {"listener_arn", "priority", "action", "condition"})
        if out_rules:
            out["Rules"] = out_rules
        self._ignore_rest(listener, mapped)
        return out

    def _actions(self, block: Block, name: str, path: str, tgs: dict[str, Block]) -> list[dict[str, Any]]:
        ctx = self.ctx
        actions = blocks(block.body, name)
        kept = []
        for k, action in enumerate(actions):
            atype = ctx.get(block, action, "type")
            if atype in ("forward", "redirect", "fixed-response"):
                kept.append((k, action, atype))
            else:
                notes.ignored(ctx.report, f"{block.address}.{name}[{k}]", f"action type {atype!r}: not rehearsed")
        if len(kept) != 1:
            raise ctx.fail(block, name, f"{len(kept)} forward, redirect or fixed-response actions; shiftlab takes "
                                        "one")
        k, action, atype = kept[0]
        out: dict[str, Any] = {"Type": atype}
        where = f"{name}[{k}]" if len(actions) > 1 else name
        if atype == "forward":
            fwd = one_block(ctx, block, action, "forward")
            if fwd is None:
                out["TargetGroupArn"] = self._tg(block, action, "target_group_arn", f"{path}[0].TargetGroupArn", tgs,
                                                 where)
            else:
                groups = []
                for m, t in enumerate(blocks(fwd, "target_group")):
                    g: dict[str, Any] = {"TargetGroupArn": self._tg(
                        block, t, "arn", f"{path}[0].ForwardConfig.TargetGroups[{m}].TargetGroupArn", tgs,
                        f"{where}.forward.target_group[{m}]")}
                    weight = ctx.get(block, t, "weight", f"{path}[0].ForwardConfig.TargetGroups[{m}].Weight", _int,
                                     at=f"{where}.forward.target_group[{m}]")
                    g["Weight"] = 1 if weight is None else weight  # the provider's default
                    groups.append(g)
                spec: dict[str, Any] = {"TargetGroups": groups}
                st = one_block(ctx, block, fwd, "stickiness")
                if st is not None:
                    sticky: dict[str, Any] = {}
                    enabled = ctx.get(block, st, "enabled", f"{path}[0].ForwardConfig.TargetGroupStickinessConfig",
                                      _bool, at=f"{where}.forward.stickiness")
                    if enabled is not None:
                        sticky["Enabled"] = enabled
                    duration = ctx.get(block, st, "duration", f"{path}[0].ForwardConfig.TargetGroupStickinessConfig",
                                       _int, at=f"{where}.forward.stickiness")
                    if duration is not None:
                        sticky["DurationSeconds"] = duration
                    spec["TargetGroupStickinessConfig"] = sticky
                out["ForwardConfig"] = spec
        elif atype == "fixed-response":
            fr = one_block(ctx, block, action, "fixed_response") or {}
            spec = {}
            for arg, key in (("status_code", "StatusCode"), ("content_type", "ContentType"),
                             ("message_body", "MessageBody")):
                v = ctx.get(block, fr, arg, f"{path}[0].FixedResponseConfig.{key}", at=f"{where}.fixed_response")
                if v is not None:
                    spec[key] = str(v)
            out["FixedResponseConfig"] = spec
        else:
            rd = one_block(ctx, block, action, "redirect") or {}
            spec = {}
            for arg, key in (("protocol", "Protocol"), ("host", "Host"), ("port", "Port"), ("path", "Path"),
                             ("query", "Query"), ("status_code", "StatusCode")):
                v = ctx.get(block, rd, arg, f"{path}[0].RedirectConfig.{key}", at=f"{where}.redirect")
                if v is not None:
                    spec[key] = str(v)
            out["RedirectConfig"] = spec
        return [out]

    def _tg(self, block: Block, body: dict[str, Any], arg: str, target: str, tgs: dict[str, Block],
            where: str) -> str:
        ctx = self.ctx
        ref = ctx.get(block, body, arg, target, at=where)
        if isinstance(ref, Ref) and ref.type in TG_TYPES:
            tg = ctx.module.resources[(ref.type, ref.name)]
            tgs.setdefault(tg.name, tg)
            return self._tg_name(tg)
        raise ctx.fail(block, f"{where}.{arg}", f"{ref!r} is not an aws_lb_target_group of this module")

    def _tg_name(self, tg: Block) -> str:
        if tg.name not in self.tg_names:
            self.tg_names[tg.name] = self.ctx.name_of(tg, "name")
        return self.tg_names[tg.name]

    def _conditions(self, rule: Block, path: str) -> list[dict[str, Any]]:
        ctx = self.ctx
        out = []
        for k, cond in enumerate(blocks(rule.body, "condition")):
            p = f"{path}[{k}]"
            kinds = [n for n in ("host_header", "path_pattern", "http_header", "http_request_method",
                                 "query_string", "source_ip") if n in cond]
            if len(kinds) != 1:
                raise ctx.fail(rule, f"condition[{k}]", "needs exactly one of host_header, path_pattern, "
                                                        "http_header, http_request_method, query_string, source_ip")
            kind = kinds[0]
            field_name = kind.replace("_", "-")
            config_name = {"host_header": "HostHeaderConfig", "path_pattern": "PathPatternConfig",
                           "http_header": "HttpHeaderConfig", "http_request_method": "HttpRequestMethodConfig",
                           "query_string": "QueryStringConfig", "source_ip": "SourceIpConfig"}[kind]
            c: dict[str, Any] = {"Field": field_name}
            if kind == "query_string":
                pairs = []
                for q in blocks(cond, kind):
                    for v in blocks(q, "values") or [q]:
                        pair: dict[str, Any] = {}
                        key = ctx.get(rule, v, "key", f"{p}.QueryStringConfig.Values", at=f"condition[{k}].{kind}")
                        if key is not None:
                            pair["Key"] = key
                        pair["Value"] = ctx.get(rule, v, "value", f"{p}.QueryStringConfig.Values",
                                                at=f"condition[{k}].{kind}")
                        pairs.append(pair)
                c[config_name] = {"Values": pairs}
            else:
                spec = one_block(ctx, rule, cond, kind) or {}
                inner: dict[str, Any] = {}
                if kind == "http_header":
                    inner["HttpHeaderName"] = ctx.get(rule, spec, "http_header_name",
                                                      f"{p}.HttpHeaderConfig.HttpHeaderName",
                                                      at=f"condition[{k}].{kind}")
                inner["Values"] = ctx.get(rule, spec, "values", f"{p}.{config_name}.Values", _strings,
                                          at=f"condition[{k}].{kind}")
                c[config_name] = inner
            out.append(c)
        return out

    def _target_group(self, tg: Block, index: int) -> dict[str, Any]:
        ctx = self.ctx
        self.used.add(tg.address)
        path = f"loadBalancer.TargetGroups[{index}]"
        out: dict[str, Any] = {"Name": self._tg_name(tg)}
        notes.mapped(ctx.report, f"{tg.address}.name", f"{path}.Name")
        port = ctx.get(tg, tg.body, "port", f"{path}.Port", _int)
        if port is not None:
            out["Port"] = port
        protocol = ctx.get(tg, tg.body, "protocol") or "HTTP"
        if self.network:
            # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_target_group
            if protocol != "TCP":
                raise ctx.fail(tg, "protocol", f"{protocol!r}: a network load balancer's target groups are TCP "
                                               "here (TLS, UDP and TCP_UDP are not rehearsed)")
            out["Protocol"] = "TCP"
        elif protocol == "HTTPS":
            notes.ignored(ctx.report, f"{tg.address}.protocol", "HTTPS to targets: local targets are reached over HTTP")
        elif protocol != "HTTP":
            raise ctx.fail(tg, "protocol", f"{protocol!r}: shiftlab emulates an Application Load Balancer's HTTP "
                                           "target groups")
        ttype = ctx.get(tg, tg.body, "target_type", f"{path}.TargetType")
        if ttype is not None:
            if ttype not in ("ip", "instance"):
                raise ctx.fail(tg, "target_type", f"{ttype!r}: shiftlab registers tasks as ip or instance targets")
            out["TargetType"] = ttype
        hc = one_block(ctx, tg, tg.body, "health_check")
        if hc is not None:
            for arg, key, conv in (("enabled", "HealthCheckEnabled", _bool), ("path", "HealthCheckPath", None),
                                   ("port", "HealthCheckPort", lambda v: str(v)),
                                   ("interval", "HealthCheckIntervalSeconds", _int),
                                   ("timeout", "HealthCheckTimeoutSeconds", _int),
                                   ("healthy_threshold", "HealthyThresholdCount", _int),
                                   ("unhealthy_threshold", "UnhealthyThresholdCount", _int)):
                v = ctx.get(tg, hc, arg, f"{path}.{key}", conv, at="health_check")
                if v is None and arg in ("healthy_threshold", "unhealthy_threshold"):
                    v = 3  # the provider's default for both (ELBv2's own would be 5 and 2)
                if v is not None:
                    out[key] = v
            matcher = ctx.get(tg, hc, "matcher", f"{path}.Matcher.HttpCode", at="health_check")
            if matcher is not None:
                out["Matcher"] = {"HttpCode": str(matcher)}
            proto = ctx.get(tg, hc, "protocol", at="health_check")
            if self.network:
                if proto not in (None, "TCP", "HTTP"):
                    raise ctx.fail(tg, "health_check.protocol", f"{proto!r}: shiftlab's health checks are TCP or HTTP "
                                                                "(HTTPS is not rehearsed)")
                # A health_check block without protocol: the provider's default, HTTP
                # (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_target_group#protocol-1);
                # no block: ELBv2's own for a TCP group, TCP (below).
                out["HealthCheckProtocol"] = proto or "HTTP"
                notes.mapped(ctx.report, f"{tg.address}.health_check.protocol", f"{path}.HealthCheckProtocol")
            elif proto not in (None, "HTTP"):
                notes.ignored(ctx.report,
                              f"{tg.address}.health_check.protocol", f"{proto}: local health checks use HTTP")
        elif self.network:
            out["HealthCheckProtocol"] = "TCP"
        attrs = []
        for arg, key in (("deregistration_delay", "deregistration_delay.timeout_seconds"),
                         ("slow_start", "slow_start.duration_seconds"),
                         ("load_balancing_algorithm_type", "load_balancing.algorithm.type")):
            v = ctx.get(tg, tg.body, arg, f"{path}.TargetGroupAttributes", _int)
            if v is not None:
                attrs.append({"Key": key, "Value": str(v)})
        term = ctx.get(tg, tg.body, "connection_termination", f"{path}.TargetGroupAttributes", _bool)
        if term is not None:
            attrs.append({"Key": "deregistration_delay.connection_termination.enabled", "Value": str(term).lower()})
        if attrs:
            out["TargetGroupAttributes"] = attrs
        self._ignore_rest(tg, {"name", "port", "protocol", "target_type", "health_check", "deregistration_delay",
                               "slow_start", "load_balancing_algorithm_type", "connection_termination"})
        return out

    # -- service ----------------------------------------------------------------

    def _service_connect(self, svc: Block) -> dict[str, Any] | None:
        """service_connect_configuration as ECS's API spells it
        (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ecs_service#service_connect_configuration):
        enabled, namespace, service[].port_name/discovery_name/ingress_port_override/client_alias[].port/
        dns_name/test_traffic_rules.header.name/value.exact, timeout; log_configuration and tls kept as ECS
        takes them (not rehearsed)."""
        ctx = self.ctx
        conf = one_block(ctx, svc, svc.body, "service_connect_configuration")
        if conf is None:
            return None
        at = "service_connect_configuration"
        p = "service.serviceConnectConfiguration"
        out: dict[str, Any] = {"enabled": ctx.get(svc, conf, "enabled", f"{p}.enabled", _bool, at=at)}
        if out["enabled"] is None:
            raise ctx.fail(svc, f"{at}.enabled", "is required")
        namespace = ctx.get(svc, conf, "namespace", f"{p}.namespace", at=at)
        if isinstance(namespace, Ref):
            # The ARN (or id) of a namespace the module declares: named by its name.
            block = ctx.module.resources.get((namespace.type, namespace.name))
            if block is None or namespace.type not in ("aws_service_discovery_http_namespace",
                                                       "aws_service_discovery_private_dns_namespace",
                                                       "aws_service_discovery_public_dns_namespace"):
                raise ctx.fail(svc, f"{at}.namespace", f"{namespace} is not a Cloud Map namespace of this module")
            namespace = ctx.name_of(block, "name")
            self.used.add(block.address)
        if namespace is not None:
            # A namespace's name or ARN, as ECS takes either.
            out["namespace"] = str(namespace)
        services = []
        for i, sb in enumerate(blocks(conf, "service")):
            sat, sp = f"{at}.service[{i}]", f"{p}.services[{i}]"
            item: dict[str, Any] = {}
            for arg, key, conv in (("port_name", "portName", None), ("discovery_name", "discoveryName", None),
                                   ("ingress_port_override", "ingressPortOverride", _int)):
                v = ctx.get(svc, sb, arg, f"{sp}.{key}", conv, at=sat)
                if v is not None:
                    item[key] = v
            aliases = []
            for j, ab in enumerate(blocks(sb, "client_alias")):
                aat, ap = f"{sat}.client_alias[{j}]", f"{sp}.clientAliases[{j}]"
                alias: dict[str, Any] = {"port": ctx.get(svc, ab, "port", f"{ap}.port", _int, at=aat)}
                dns = ctx.get(svc, ab, "dns_name", f"{ap}.dnsName", at=aat)
                if dns is not None:
                    alias["dnsName"] = dns
                rules = one_block(ctx, svc, ab, "test_traffic_rules")
                header = one_block(ctx, svc, rules, "header") if rules is not None else None
                if header is not None:
                    hat = f"{aat}.test_traffic_rules.header"
                    h: dict[str, Any] = {"name": ctx.get(svc, header, "name", f"{ap}.testTrafficRules.header.name",
                                                         at=hat)}
                    value = one_block(ctx, svc, header, "value")
                    if value is not None:
                        h["value"] = {"exact": ctx.get(svc, value, "exact",
                                                       f"{ap}.testTrafficRules.header.value.exact", at=f"{hat}.value")}
                    alias["testTrafficRules"] = {"header": h}
                aliases.append(alias)
            if aliases:
                item["clientAliases"] = aliases
            timeout = one_block(ctx, svc, sb, "timeout")
            if timeout is not None:
                t = {key: ctx.get(svc, timeout, arg, f"{sp}.timeout.{key}", _int, at=f"{sat}.timeout")
                     for arg, key in (("idle_timeout_seconds", "idleTimeoutSeconds"),
                                      ("per_request_timeout_seconds", "perRequestTimeoutSeconds")) if arg in timeout}
                item["timeout"] = t
            tls = one_block(ctx, svc, sb, "tls")
            if tls is not None:
                # Kept as ECS takes it; not rehearsed (the proxy speaks plain HTTP here).
                tat = f"{sat}.tls"
                t2: dict[str, Any] = {}
                ca = one_block(ctx, svc, tls, "issuer_cert_authority")
                if ca is not None:
                    t2["issuerCertificateAuthority"] = {"awsPcaAuthorityArn": ctx.get(
                        svc, ca, "aws_pca_authority_arn", f"{sp}.tls.issuerCertificateAuthority.awsPcaAuthorityArn",
                        at=f"{tat}.issuer_cert_authority")}
                for arg, key in (("kms_key", "kmsKey"), ("role_arn", "roleArn")):
                    v = ctx.get(svc, tls, arg, f"{sp}.tls.{key}", at=tat)
                    if v is not None:
                        t2[key] = v
                item["tls"] = t2
            services.append(item)
        if services:
            out["services"] = services
        access = one_block(ctx, svc, conf, "access_log_configuration")
        if access is not None:
            aat = f"{at}.access_log_configuration"
            out["accessLogConfiguration"] = {
                key: ctx.get(svc, access, arg, f"{p}.accessLogConfiguration.{key}", at=aat)
                for arg, key in (("format", "format"), ("include_query_parameters", "includeQueryParameters"))
                if arg in access}
        log = one_block(ctx, svc, conf, "log_configuration")
        if log is not None:
            # Kept as ECS takes it (the proxy's logs are not rehearsed).
            lat, lp = f"{at}.log_configuration", f"{p}.logConfiguration"
            lc: dict[str, Any] = {"logDriver": ctx.get(svc, log, "log_driver", f"{lp}.logDriver", at=lat)}
            options = ctx.get(svc, log, "options", f"{lp}.options", at=lat)
            if options is not None:
                lc["options"] = {str(k): str(v) for k, v in dict(options).items()}
            secrets = [{"name": ctx.get(svc, so, "name", at=f"{lat}.secret_option"),
                        "valueFrom": ctx.get(svc, so, "value_from", at=f"{lat}.secret_option")}
                       for so in blocks(log, "secret_option")]
            if secrets:
                lc["secretOptions"] = secrets
            out["logConfiguration"] = lc
        return out

    def _service(self, svc: Block, with_lb: bool = True) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        ctx = self.ctx
        service: dict[str, Any] = {}
        name = ctx.get(svc, svc.body, "name", "service.serviceName")
        if name is None:
            raise ctx.fail(svc, "name", "is required")
        service["serviceName"] = name
        cluster = ctx.get(svc, svc.body, "cluster", "service.clusterName")
        if isinstance(cluster, str) and cluster:
            service["clusterName"] = cluster.rsplit("/", 1)[-1]
        desired = ctx.get(svc, svc.body, "desired_count", "service.desiredCount", _int)
        if not isinstance(desired, int) or not 1 <= desired <= 50:
            notes.local(ctx.report,
                        "service.desiredCount", f"2: the module's desired_count is {desired!r} (a rehearsal "
                        "runs 1 to 50 tasks)")
            desired = 2
        service["desiredCount"] = desired
        task: dict[str, Any] = {}
        if self.image:
            task["image"] = self.image
        elif self.headless and not self.command:
            task["command"] = HEADLESS_PLACEHOLDER_COMMAND
            task["environment"] = {"QUEUE_URL": LOCAL_QUEUE_URL}
            notes.local(ctx.report, "service.taskDefinition.command", "shiftlab's sample queue consumer stands in for "
                        "the task definition's containers (give --command or --image)")
            notes.local(ctx.report, "service.taskDefinition.environment.QUEUE_URL", "the sample consumer's queue, "
                        "shiftlab's work queue: shiftlab queue serve --port 9300 (or shiftlab rehearse --queue-rate "
                        "N, which serves one)")
        else:
            task["command"] = self.command or PLACEHOLDER_COMMAND
            if not self.command:
                notes.local(ctx.report, "service.taskDefinition.command", "the sample service stands in for the task "
                            "definition's containers (give --command or "
                            "--image)")
        self._task_definition(svc, task)
        service["taskDefinition"] = task
        if with_lb:
            self._service_load_balancer(svc, service)
        self._service_rest(svc, service)
        return self._deployment(svc, service)

    def _service_load_balancer(self, svc: Block, service: dict[str, Any]) -> None:
        ctx = self.ctx
        lb = self._service_lb(svc)
        entry: dict[str, Any] = {"targetGroupArn": self._service_tg(svc, lb, "target_group_arn",
                                                                    "service.loadBalancers[0].targetGroupArn",
                                                                    "load_balancer")}
        for arg, key in (("container_name", "containerName"), ("container_port", "containerPort")):
            v = ctx.get(svc, lb, arg, f"service.loadBalancers[0].{key}", _int if arg == "container_port" else None,
                        at="load_balancer")
            if v is not None:
                entry[key] = v
        adv = one_block(ctx, svc, lb, "advanced_configuration")
        if adv is not None:
            a: dict[str, Any] = {"alternateTargetGroupArn": self._service_tg(
                svc, adv, "alternate_target_group_arn",
                "service.loadBalancers[0].advancedConfiguration.alternateTargetGroupArn",
                "load_balancer.advanced_configuration")}
            a["productionListenerRule"] = self._rule(svc, adv, "production_listener_rule")
            test = self._rule(svc, adv, "test_listener_rule")
            if test is not None:
                a["testListenerRule"] = [test]
            role = ctx.get(svc, adv, "role_arn", "service.loadBalancers[0].advancedConfiguration.roleArn",
                           at="load_balancer.advanced_configuration")
            if role is not None:
                a["roleArn"] = self._arn(svc, "load_balancer.advanced_configuration.role_arn", role)
            entry["advancedConfiguration"] = a
        service["loadBalancers"] = [entry]

    def _service_rest(self, svc: Block, service: dict[str, Any]) -> None:
        ctx = self.ctx
        grace = ctx.get(svc, svc.body, "health_check_grace_period_seconds", "service.healthCheckGracePeriodSeconds",
                        _int)
        if grace is not None:
            service["healthCheckGracePeriodSeconds"] = grace

    def _deployment(self, svc: Block, service: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        ctx = self.ctx
        dc: dict[str, Any] = {}
        controller = one_block(ctx, svc, svc.body, "deployment_controller")
        ctype: Any = ctx.get(svc, controller, "type") if controller is not None else None
        if ctype not in (None, "ECS"):
            raise ctx.fail(svc, "deployment_controller.type", f"{ctype!r}: shiftlab rehearses ECS's own deployments "
                                                              "(with CODE_DEPLOY, see `shiftlab import codedeploy`)")
        conf = one_block(ctx, svc, svc.body, "deployment_configuration") or {}
        p = "deploymentConfiguration"
        strategy = ctx.get(svc, conf, "strategy", f"{p}.strategy", at="deployment_configuration")
        if strategy is not None:
            dc["strategy"] = strategy
        bake = ctx.get(svc, conf, "bake_time_in_minutes", f"{p}.bakeTimeInMinutes", _int,
                       at="deployment_configuration")
        if bake is not None:
            dc["bakeTimeInMinutes"] = bake
        elif strategy == "BLUE_GREEN":
            dc["bakeTimeInMinutes"] = 0
            notes.local(ctx.report, f"{p}.bakeTimeInMinutes", "0: the module leaves it to ECS's default")
        for name, key, fields in (("canary_configuration", "canaryConfiguration",
                                   (("canary_percent", "canaryPercent", _number),
                                    ("canary_bake_time_in_minutes", "canaryBakeTimeInMinutes", _int))),
                                  ("linear_configuration", "linearConfiguration",
                                   (("step_percent", "stepPercent", _number),
                                    ("step_bake_time_in_minutes", "stepBakeTimeInMinutes", _int)))):
            b = one_block(ctx, svc, conf, name)
            if b is not None:
                sub = {}
                for arg, field_key, conv in fields:
                    v = ctx.get(svc, {name: b}, f"{name}.{arg}", f"{p}.{key}.{field_key}", conv,
                                at="deployment_configuration")
                    if v is not None:
                        sub[field_key] = v
                dc[key] = sub
        hooks = []
        hook_blocks = blocks(conf, "lifecycle_hook")
        for k, hook in enumerate(hook_blocks):
            hp = f"{p}.lifecycleHooks[{k}]"
            dcp = "deployment_configuration"  # lifecycle_hook is a set: its blocks have no index
            wrap = {"lifecycle_hook": hook}
            h: dict[str, Any] = {}
            target = ctx.get(svc, wrap, "lifecycle_hook.hook_target_arn", f"{hp}.hookTargetArn", at=dcp)
            h["hookTargetArn"] = self._arn(svc, "deployment_configuration.lifecycle_hook.hook_target_arn", target)
            h["lifecycleStages"] = ctx.get(svc, wrap, "lifecycle_hook.lifecycle_stages", f"{hp}.lifecycleStages",
                                           _strings, at=dcp)
            role = ctx.get(svc, wrap, "lifecycle_hook.role_arn", f"{hp}.roleArn", at=dcp)
            if role is not None:
                h["roleArn"] = self._arn(svc, "deployment_configuration.lifecycle_hook.role_arn", role)
            details = ctx.get(svc, wrap, "lifecycle_hook.hook_details", f"{hp}.hookDetails", at=dcp)
            if details is not None:
                h["hookDetails"] = self._details(svc, details)
            hooks.append(h)
        if hooks:
            dc["lifecycleHooks"] = hooks
        for arg, key in (("deployment_maximum_percent", "maximumPercent"),
                         ("deployment_minimum_healthy_percent", "minimumHealthyPercent")):
            v = ctx.get(svc, svc.body, arg, f"{p}.{key}", _int)
            if v is not None:
                dc[key] = v
        cb = one_block(ctx, svc, svc.body, "deployment_circuit_breaker")
        if cb is not None:
            dc["deploymentCircuitBreaker"] = {
                k: ctx.get(svc, {"deployment_circuit_breaker": cb}, f"deployment_circuit_breaker.{k}",
                           f"{p}.deploymentCircuitBreaker.{k}", _bool)
                for k in ("enable", "rollback") if k in cb}
        alarm_names: list[str] = []
        al = one_block(ctx, svc, svc.body, "alarms")
        if al is not None:
            names = ctx.get(svc, {"alarms": al}, "alarms.alarm_names", f"{p}.alarms.alarmNames", _strings) or []
            alarm_names = [self._alarm_name(svc, n) for n in names]
            a2: dict[str, Any] = {"alarmNames": alarm_names}
            for flag in ("enable", "rollback"):
                v = ctx.get(svc, {"alarms": al}, f"alarms.{flag}", f"{p}.alarms.{flag}", _bool)
                if v is not None:
                    a2[flag] = v
            dc["alarms"] = a2
        self._ignore_rest(svc, {"name", "cluster", "desired_count", "load_balancer",
                                "health_check_grace_period_seconds", "deployment_controller",
                                "deployment_configuration", "deployment_maximum_percent",
                                "deployment_minimum_healthy_percent", "deployment_circuit_breaker", "alarms",
                                "service_connect_configuration"})
        return service, dc, alarm_names

    def _task_definition(self, svc: Block, task: dict[str, Any]) -> None:
        ctx = self.ctx
        raw = svc.body.get("task_definition")
        if raw is None:
            return
        try:
            ref = ctx.evaluator.value(raw)
        except HclError:
            notes.ignored(ctx.report, f"{svc.address}.task_definition", REASONS["task_definition"])
            return
        if not (isinstance(ref, Ref) and ref.type == "aws_ecs_task_definition"):
            notes.ignored(ctx.report, f"{svc.address}.task_definition", REASONS["task_definition"])
            return
        td = ctx.module.resources[(ref.type, ref.name)]
        self.used.add(td.address)
        for arg, key in (("family", "family"), ("cpu", "cpu"), ("memory", "memory")):
            v = ctx.get(td, td.body, arg, f"service.taskDefinition.{key}", _int if arg != "family" else None)
            if v is not None:
                task[key] = v
        notes.ignored(ctx.report, f"{td.address}.container_definitions", "the containers: the local command or image "
                      "stands in (service.taskDefinition)")
        self._ignore_rest(td, {"family", "cpu", "memory", "container_definitions"})

    def _service_tg(self, svc: Block, body: dict[str, Any], arg: str, target: str, at: str) -> str:
        ctx = self.ctx
        ref = ctx.get(svc, body, arg, target, at=at)
        if isinstance(ref, Ref) and ref.type in TG_TYPES:
            return self._tg_name(ctx.module.resources[(ref.type, ref.name)])
        raise ctx.fail(svc, f"load_balancer.{arg}", f"{ref!r} is not an aws_lb_target_group of this module")

    def _rule(self, svc: Block, adv: dict[str, Any], arg: str) -> str | None:
        ctx = self.ctx
        target = "service.loadBalancers[0].advancedConfiguration." + (
            "productionListenerRule" if arg.startswith("production") else "testListenerRule")
        ref = ctx.get(svc, adv, arg, target, at="load_balancer.advanced_configuration")
        if ref is None:
            return None
        if isinstance(ref, Ref) and ref.type in RULE_TYPES:
            return self.rule_ids[ref.name]
        if isinstance(ref, Ref) and ref.type in LISTENER_TYPES and ref.name in self.listener_of and self.network:
            return f"{self.listener_of[ref.name]}/default"  # an NLB's listener: ECS takes the listener's ARN
        if isinstance(ref, str) and re.fullmatch(r"[^/\s]+/(default|test|\d+)", ref):
            return ref  # a shiftlab rule id, as `shiftlab export` writes a default rule's
        raise ctx.fail(svc, f"load_balancer.advanced_configuration.{arg}",
                       f"{ref!r}: name an aws_lb_listener_rule of this module (a listener's default rule has no "
                       "resource: give its shiftlab id <listener>/default through a variable)")

    def _alarm_name(self, svc: Block, value: Any) -> str:
        if isinstance(value, Ref) and value.type == ALARM_TYPE:
            return self.ctx.name_of(self.ctx.module.resources[(value.type, value.name)], "alarm_name")
        if isinstance(value, str):
            return value
        raise self.ctx.fail(svc, "alarms.alarm_names", f"{value!r} is not an alarm name")

    def _arn(self, block: Block, path: str, value: Any) -> str:
        try:
            return self.ctx.arn(value, path)
        except HclError as exc:
            raise self.ctx.fail(block, path, str(exc)) from None

    def _details(self, svc: Block, details: Any) -> Any:
        if isinstance(details, str):
            try:
                return json.loads(details)
            except json.JSONDecodeError:
                try:
                    return yaml.safe_load(details)
                except yaml.YAMLError:
                    raise self.ctx.fail(svc, "deployment_configuration.lifecycle_hook.hook_details",
                                        "is neither JSON nor YAML") from None
        return details

    # -- alarms -----------------------------------------------------------------

    def _alarms(self, svc: Block, names: list[str]) -> list[dict[str, Any]]:
        ctx = self.ctx
        by_name: dict[str, Block] = {}
        for block in ctx.module.of_type(ALARM_TYPE):
            by_name[ctx.name_of(block, "alarm_name")] = block
        out = []
        for i, name in enumerate(names):
            found = by_name.get(name)
            if found is None:
                raise ctx.fail(svc, "alarms.alarm_names", f"{name!r} names no aws_cloudwatch_metric_alarm of this "
                                                          f"module (alarms: {', '.join(by_name) or 'none'})")
            out.append(self._alarm(found, f"alarms[{i}]"))
        return out

    def _alarm(self, block: Block, path: str) -> dict[str, Any]:
        ctx = self.ctx
        self.used.add(block.address)
        out: dict[str, Any] = {"AlarmName": ctx.name_of(block, "alarm_name")}
        notes.mapped(ctx.report, f"{block.address}.alarm_name", f"{path}.AlarmName")
        body = block.body
        for arg, key, conv in (("alarm_description", "AlarmDescription", None),
                               ("actions_enabled", "ActionsEnabled", _bool),
                               ("metric_name", "MetricName", None), ("namespace", "Namespace", None),
                               ("statistic", "Statistic", None), ("extended_statistic", "ExtendedStatistic", None),
                               ("period", "Period", _int), ("unit", "Unit", None),
                               ("evaluation_periods", "EvaluationPeriods", _int),
                               ("datapoints_to_alarm", "DatapointsToAlarm", _int),
                               ("threshold", "Threshold", _number),
                               ("threshold_metric_id", "ThresholdMetricId", None),
                               ("comparison_operator", "ComparisonOperator", None),
                               ("treat_missing_data", "TreatMissingData", None),
                               ("evaluate_low_sample_count_percentiles", "EvaluateLowSampleCountPercentile", None)):
            v = ctx.get(block, body, arg, f"{path}.{key}", conv)
            if v is not None:
                out[key] = v
        for arg, key in (("alarm_actions", "AlarmActions"), ("ok_actions", "OKActions"),
                         ("insufficient_data_actions", "InsufficientDataActions")):
            v = ctx.get(block, body, arg, f"{path}.{key}", _strings)
            if v is not None:
                out[key] = [self._arn(block, arg, a) for a in v]
        dims = ctx.get(block, body, "dimensions", f"{path}.Dimensions")
        if dims is not None:
            out["Dimensions"] = self._dimensions(block, "dimensions", dims)
        queries = []
        for k, q in enumerate(blocks(body, "metric_query")):
            qp = f"{path}.Metrics[{k}]"
            wrap = {"metric_query": q}
            mq: dict[str, Any] = {"Id": ctx.get(block, wrap, "metric_query.id", f"{qp}.Id")}
            for arg, key, conv in (("expression", "Expression", None), ("label", "Label", None),
                                   ("return_data", "ReturnData", _bool), ("period", "Period", _int),
                                   ("account_id", "AccountId", None)):
                v = ctx.get(block, wrap, f"metric_query.{arg}", f"{qp}.{key}", conv)
                if v is not None:
                    mq[key] = v
            metric = one_block(ctx, block, q, "metric")
            if metric is not None:
                m: dict[str, Any] = {}
                for arg, key in (("namespace", "Namespace"), ("metric_name", "MetricName")):
                    m[key] = ctx.get(block, {"metric_query": {"metric": metric}}, f"metric_query.metric.{arg}",
                                     f"{qp}.MetricStat.Metric.{key}")
                d = ctx.get(block, {"metric_query": {"metric": metric}}, "metric_query.metric.dimensions",
                            f"{qp}.MetricStat.Metric.Dimensions")
                if d is not None:
                    m["Dimensions"] = self._dimensions(block, "metric_query.metric.dimensions", d)
                stat: dict[str, Any] = {"Metric": m}
                for arg, key, conv in (("period", "Period", _int), ("stat", "Stat", None), ("unit", "Unit", None)):
                    v = ctx.get(block, {"metric_query": {"metric": metric}}, f"metric_query.metric.{arg}",
                                f"{qp}.MetricStat.{key}", conv)
                    if v is not None:
                        stat[key] = v
                mq["MetricStat"] = stat
            queries.append(mq)
        if queries:
            out["Metrics"] = queries
        tags = ctx.get(block, body, "tags", f"{path}.Tags")
        if isinstance(tags, dict) and tags:
            out["Tags"] = [{"Key": k, "Value": str(v)} for k, v in tags.items()]
        self._ignore_rest(block, {"alarm_name", "alarm_description", "actions_enabled", "metric_name", "namespace",
                                  "statistic", "extended_statistic", "period", "unit", "evaluation_periods",
                                  "datapoints_to_alarm", "threshold", "threshold_metric_id", "comparison_operator",
                                  "treat_missing_data", "evaluate_low_sample_count_percentiles", "alarm_actions",
                                  "ok_actions", "insufficient_data_actions", "dimensions", "metric_query", "tags"})
        return out

    def _dimensions(self, block: Block, arg: str, dims: Any) -> list[dict[str, str]]:
        if not isinstance(dims, dict):
            raise self.ctx.fail(block, arg, f"{dims!r} is not a map of dimension names to values")
        out = []
        for name, value in dims.items():
            if isinstance(value, Ref):
                raise self.ctx.fail(block, f"{arg}.{name}", f"{value}.arn: CloudWatch's dimension is the ARN's "
                                                            "suffix (use .arn_suffix)")
            out.append({"Name": name, "Value": str(value)})
        return out

    # -- the rest -----------------------------------------------------------------

    def _lambda_functions(self, dc: dict[str, Any]) -> dict[str, str]:
        out = {}
        for i, hook in enumerate(dc.get("lifecycleHooks", [])):
            arn = hook.get("hookTargetArn", "")
            if arn.startswith("arn:") and ":lambda:" in arn:
                name = arn.split(":function:", 1)[-1].split(":", 1)[0]
                if self.headless and "PRODUCTION_TRAFFIC_SHIFT" in hook.get("lifecycleStages", []):
                    out[name] = ACTIVATION_HOOK
                    notes.local(self.ctx.report, f"lambdaFunctions.{name}", "the activation mechanism of this "
                                f"headless service (deploymentConfiguration.lifecycleHooks[{i}], at "
                                "PRODUCTION_TRAFFIC_SHIFT, decides which revision consumes): shiftlab's activation "
                                "hook stands in, flipping per-revision flags the tasks poll at "
                                "SHIFTLAB_ACTIVATION_URL (README: Headless services)")
                    continue
                out[name] = PLACEHOLDER_HOOK
                notes.local(self.ctx.report, f"lambdaFunctions.{name}", f"what runs in place of the Lambda function of "
                            f"deploymentConfiguration.lifecycleHooks[{i}] "
                            "(a stand-in that succeeds)")
        if (self.headless and dc.get("strategy", "ROLLING") != "ROLLING"
                and not any(v == ACTIVATION_HOOK for v in out.values())):
            notes.local(self.ctx.report, "deploymentConfiguration.lifecycleHooks", "the activation mechanism of this "
                        "headless service: no Lambda lifecycle_hook at PRODUCTION_TRAFFIC_SHIFT, so nothing "
                        f"activates green here; add shiftlab's activation hook ({ACTIVATION_HOOK}) at that stage")
        return out

    def _ignore_rest(self, block: Block, mapped: set[str]) -> None:
        for arg in block.body:
            if arg.startswith("__") or arg in mapped:
                continue
            notes.ignored(self.ctx.report, f"{block.address}.{arg}", REASONS.get(arg, "not rehearsed"))
