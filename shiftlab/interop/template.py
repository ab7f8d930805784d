"""A CloudFormation template read and its intrinsic functions resolved.

`load_template` reads JSON, or YAML with the short-form tags (`!Ref`,
`!GetAtt`, `!Sub`, ...; a CDK `cdk.out/*.template.json` is plain JSON with
the long forms). `Resolver.value(node, where)` evaluates a property as
CloudFormation would when the stack is created: `Ref` of a parameter (its
value from the command line, else its Default), of a pseudo parameter, or
of a resource (what that resource type's Ref returns); `Fn::GetAtt`,
`Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::If` with the
Conditions section, `Fn::FindInMap`, `Fn::GetAZs`, `Fn::Base64`,
`Fn::ImportValue` (values given with --import-value), `Fn::ToJsonString`
and `Fn::Length` (AWS::LanguageExtensions). Values AWS would assign when
the stack is created (ARNs, generated names, ids) are synthesized in AWS's
formats, stable for a logical id. Anything else raises `ImportProblem`
naming the resource and property.

Source of the functions' semantics: the intrinsic function reference,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from shiftlab.interop.report import ImportProblem

# Short-form tags -> the long form's key. `!GetAtt A.B` is the one whose
# scalar form differs (a dotted string for [A, B]).
_TAGS = {
    "Ref": "Ref", "Condition": "Condition", "GetAtt": "Fn::GetAtt", "Sub": "Fn::Sub", "Join": "Fn::Join",
    "Select": "Fn::Select", "Split": "Fn::Split", "If": "Fn::If", "Equals": "Fn::Equals", "And": "Fn::And",
    "Or": "Fn::Or", "Not": "Fn::Not", "FindInMap": "Fn::FindInMap", "GetAZs": "Fn::GetAZs",
    "Base64": "Fn::Base64", "ImportValue": "Fn::ImportValue", "Cidr": "Fn::Cidr", "Transform": "Fn::Transform",
    "ToJsonString": "Fn::ToJsonString", "Length": "Fn::Length",
}

NO_VALUE = object()  # AWS::NoValue: the property is removed

PSEUDO_DEFAULTS = {
    "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
    "AWS::StackName": "shiftlab-import", "AWS::URLSuffix": "amazonaws.com",
}


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    key = _TAGS.get(suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(None, None, f"unknown tag !{suffix}", node.start_mark)
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_Loader.add_multi_constructor("!", _construct)


def find_template(path: str | Path) -> Path:
    """`path`, or in a `cdk.out` directory the one `<Stack>.template.json`
    with an AWS::ECS::Service (CDK writes a template per stack)."""
    p = Path(path)
    if not p.is_dir():
        return p
    candidates = sorted(p.glob("*.template.json"))
    with_service = [c for c in candidates if '"AWS::ECS::Service"' in c.read_text(encoding="utf-8")]
    if len(with_service) == 1:
        return with_service[0]
    if not with_service:
        raise ImportProblem(str(p), f"no *.template.json with an AWS::ECS::Service ({len(candidates)} template(s))")
    raise ImportProblem(str(p), "several stacks have an AWS::ECS::Service (" + ", ".join(c.name for c in with_service)
                        + "): give the template file")


def load_template(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportProblem(str(p), f"cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ImportProblem(str(p), f"not a CloudFormation template (JSON or YAML): {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ImportProblem(str(p), "not a CloudFormation template: no Resources section")
    return data


def _scalar(value: Any) -> Any:
    """A value as CloudFormation compares it: scalars as their text (YAML's
    `true` and a parameter's "true" are equal), lists and maps as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _hex(seed: str, n: int = 16) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def generated_name(stack: str, logical: str, limit: int) -> str:
    """A name as CloudFormation generates one (stack, logical id, a suffix), within `limit` characters."""
    suffix = _hex(logical, 12).upper()
    head = re.sub(r"[^A-Za-z0-9-]", "-", f"{stack[:8]}-{logical}")
    return f"{head[:limit - len(suffix) - 1]}-{suffix}"


class Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None,
                 import_values: dict[str, str] | None = None):
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.given = dict(parameters or {})
        self.import_values = dict(import_values or {})
        self._stack: list[str] = []
        self._conditions: dict[str, bool] = {}
        transform = template.get("Transform")
        transforms = transform if isinstance(transform, list) else [transform] if transform else []
        others = [t for t in transforms if t != "AWS::LanguageExtensions"]
        if others:
            raise ImportProblem("Transform", f"{', '.join(map(str, others))} changes the template when the stack is "
                                "created; import the processed template (aws cloudformation get-template "
                                "--template-stage Processed)")
        for key in self.given:
            if key not in (template.get("Parameters") or {}) and key not in PSEUDO_DEFAULTS:
                raise ImportProblem(f"--parameter {key}", "the template has no such parameter")

    # -- the pseudo parameters ---------------------------------------------------
    def pseudo(self, name: str) -> str:
        return self.given.get(name, PSEUDO_DEFAULTS[name])

    @property
    def region(self) -> str:
        return self.pseudo("AWS::Region")

    @property
    def account(self) -> str:
        return self.pseudo("AWS::AccountId")

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.pseudo('AWS::Partition')}:{service}:{where}:{self.account}:{resource}"

    # -- resources -------------------------------------------------------------------
    def type_of(self, logical: str) -> str:
        res = self.resources.get(logical)
        return str(res.get("Type", "")) if isinstance(res, dict) else ""

    def props(self, logical: str) -> dict[str, Any]:
        res = self.resources.get(logical) or {}
        p = res.get("Properties") or {}
        return p if isinstance(p, dict) else {}

    def exists(self, logical: str) -> bool:
        """Whether the resource is created (its Condition, if any, holds)."""
        res = self.resources.get(logical)
        if not isinstance(res, dict):
            return False
        cond = res.get("Condition")
        return cond is None or self.condition(str(cond), f"{logical}.Condition")

    def prop(self, logical: str, name: str, default: Any = None) -> Any:
        """A resource's property, resolved (`default` when absent or AWS::NoValue)."""
        raw = self.props(logical).get(name)
        if raw is None:
            return default
        value = self.value(raw, f"{logical}.Properties.{name}")
        return default if value is NO_VALUE else value

    def name_of(self, logical: str, prop: str, limit: int) -> str:
        """The resource's name: the property, else the one CloudFormation would generate."""
        given = self.prop(logical, prop)
        if given is not None:
            return str(given)
        return generated_name(self.pseudo("AWS::StackName"), logical, limit)

    @staticmethod
    def logical_named(node: Any) -> str | None:
        """The logical id a `Ref` or `Fn::GetAtt` names, unresolved."""
        if not isinstance(node, dict):
            return None
        if isinstance(node.get("Ref"), str):
            return str(node["Ref"])
        att = node.get("Fn::GetAtt")
        if isinstance(att, str):
            att = att.split(".", 1)
        return str(att[0]) if isinstance(att, list) and att else None

    def _lb_of_listener(self, listener: str) -> tuple[str, str, str]:
        """The listener's load balancer: its name, id and scheme (app; net for a network one)."""
        lb = self.logical_named(self.props(listener).get("LoadBalancerArn"))
        if isinstance(lb, str) and self.type_of(lb).endswith("::LoadBalancer"):
            return self.name_of(lb, "Name", 32), _hex(lb), "net" if self.prop(lb, "Type") == "network" else "app"
        return "load-balancer", _hex(listener + "/lb"), "app"

    def ref_of_resource(self, logical: str, where: str) -> Any:
        kind = self.type_of(logical)
        elb = "elasticloadbalancing"
        if kind == "AWS::ElasticLoadBalancingV2::TargetGroup":
            return self.arn(elb, f"targetgroup/{self.name_of(logical, 'Name', 32)}/{_hex(logical)}")
        if kind == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            scheme = "net" if self.prop(logical, "Type") == "network" else "app"
            return self.arn(elb, f"loadbalancer/{scheme}/{self.name_of(logical, 'Name', 32)}/{_hex(logical)}")
        if kind == "AWS::ElasticLoadBalancingV2::Listener":
            lb, lb_id, scheme = self._lb_of_listener(logical)
            return self.arn(elb, f"listener/{scheme}/{lb}/{lb_id}/{_hex(logical)}")
        if kind == "AWS::ElasticLoadBalancingV2::ListenerRule":
            listener = self.logical_named(self.props(logical).get("ListenerArn"))
            if isinstance(listener, str) and listener in self.resources:
                lb, lb_id, _ = self._lb_of_listener(listener)
                return self.arn(elb, f"listener-rule/app/{lb}/{lb_id}/{_hex(listener)}/{_hex(logical)}")
            return self.arn(elb, f"listener-rule/app/load-balancer/{_hex(logical + '/lb')}/"
                                 f"{_hex(logical + '/l')}/{_hex(logical)}")
        if kind == "AWS::CloudWatch::Alarm":
            return self.name_of(logical, "AlarmName", 255)
        if kind == "AWS::Lambda::Function":
            return self.name_of(logical, "FunctionName", 64)
        if kind == "AWS::IAM::Role":
            return self.name_of(logical, "RoleName", 64)
        if kind == "AWS::ECS::Cluster":
            return self.name_of(logical, "ClusterName", 255)
        if kind == "AWS::ECS::TaskDefinition":
            family = self.name_of(logical, "Family", 255)
            return self.arn("ecs", f"task-definition/{family}:1")
        if kind == "AWS::ECS::Service":
            return self.arn("ecs", f"service/{self.name_of(logical, 'ServiceName', 255)}")
        if kind == "AWS::SQS::Queue":  # Ref gives the queue's URL (a headless consumer's queue)
            name = self.name_of(logical, "QueueName", 80)
            return f"https://sqs.{self.region}.amazonaws.com/{self.pseudo('AWS::AccountId')}/{name}"
        # Another type: its physical id, whatever AWS names it; only what is mapped needs it.
        return generated_name(self.pseudo("AWS::StackName"), logical, 128)

    def get_att(self, logical: str, attr: str, where: str) -> Any:
        if logical not in self.resources:
            raise ImportProblem(where, f"Fn::GetAtt names {logical!r}, which is not a resource of the template")
        kind = self.type_of(logical)
        ref = self.ref_of_resource(logical, where)
        if kind == "AWS::ElasticLoadBalancingV2::TargetGroup":
            full = ref.split(":", 5)[5]
            table: dict[str, Any] = {"TargetGroupArn": ref, "TargetGroupFullName": full,
                                     "TargetGroupName": full.split("/")[1], "LoadBalancerArns": []}
        elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            full = ref.split(":", 5)[5].removeprefix("loadbalancer/")
            name = full.split("/")[1]
            table = {"LoadBalancerArn": ref, "LoadBalancerFullName": full, "LoadBalancerName": name,
                     "DNSName": f"{name}-{int(_hex(logical, 8), 16)}.{self.region}.elb.amazonaws.com",
                     "CanonicalHostedZoneID": "Z35SXDOTRQ7X7K", "SecurityGroups": []}
        elif kind == "AWS::ElasticLoadBalancingV2::Listener":
            table = {"ListenerArn": ref}
        elif kind == "AWS::ElasticLoadBalancingV2::ListenerRule":
            table = {"RuleArn": ref, "IsDefault": "false"}
        elif kind == "AWS::CloudWatch::Alarm":
            table = {"Arn": self.arn("cloudwatch", f"alarm:{ref}")}
        elif kind == "AWS::Lambda::Function":
            table = {"Arn": self.arn("lambda", f"function:{ref}")}
        elif kind == "AWS::IAM::Role":
            table = {"Arn": self.arn("iam", f"role/{ref}", region=False), "RoleId": "AROA" + _hex(logical).upper()}
        elif kind == "AWS::ECS::Cluster":
            table = {"Arn": self.arn("ecs", f"cluster/{ref}")}
        elif kind == "AWS::ECS::TaskDefinition":
            table = {"TaskDefinitionArn": ref}
        elif kind == "AWS::ECS::Service":
            table = {"ServiceArn": ref, "Name": ref.rsplit("/", 1)[1]}
        elif kind == "AWS::SQS::Queue":
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sqs-queue.html
            name = ref.rsplit("/", 1)[1]
            table = {"Arn": self.arn("sqs", name), "QueueName": name, "QueueUrl": ref}
        else:
            raise ImportProblem(where, f"Fn::GetAtt {logical}.{attr}: shiftlab does not know the attributes of "
                                f"{kind or 'a resource without a Type'}")
        if attr not in table:
            raise ImportProblem(where, f"Fn::GetAtt {logical}.{attr}: {kind} has no attribute {attr} "
                                f"(known: {', '.join(table)})")
        return table[attr]

    # -- Ref ------------------------------------------------------------------------
    def ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_DEFAULTS:
            return self.pseudo(name)
        if name.startswith("AWS::"):
            raise ImportProblem(where, f"Ref {name}: a pseudo parameter shiftlab cannot know "
                                f"(known: {', '.join(PSEUDO_DEFAULTS)}, AWS::NoValue)")
        params = self.template.get("Parameters") or {}
        if name in params:
            spec = params[name] if isinstance(params[name], dict) else {}
            if name in self.given:
                value: Any = self.given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ImportProblem(where, f"Ref {name}: the parameter has no Default; give it with "
                                    f"--parameter {name}=VALUE")
            kind = str(spec.get("Type", "String"))
            if (kind == "CommaDelimitedList" or kind.startswith("List<")) and isinstance(value, str):
                return [v.strip() for v in value.split(",")]
            return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        if name in self.resources:
            return self.ref_of_resource(name, where)
        raise ImportProblem(where, f"Ref {name}: neither a parameter nor a resource of the template")

    # -- conditions -----------------------------------------------------------------
    def condition(self, name: str, where: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise ImportProblem(where, f"Condition {name}: not in the template's Conditions")
        if name in self._stack:
            raise ImportProblem(where, f"Condition {name}: refers to itself")
        self._stack.append(name)
        try:
            result = self.value(conditions[name], f"Conditions.{name}")
        finally:
            self._stack.pop()
        if not isinstance(result, bool):
            raise ImportProblem(f"Conditions.{name}", "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not "
                                "or Condition")
        self._conditions[name] = result
        return result

    # -- values ---------------------------------------------------------------------
    def value(self, node: Any, where: str) -> Any:
        """`node` with every intrinsic function evaluated (AWS::NoValue removes a key or an item)."""
        if isinstance(node, list):
            out = [self.value(item, f"{where}[{i}]") for i, item in enumerate(node)]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                return self._function(key, arg, where)
        mapping: dict[str, Any] = {}
        for key, item in node.items():
            v = self.value(item, f"{where}.{key}")
            if v is not NO_VALUE:
                mapping[key] = v
        return mapping

    def _function(self, key: str, arg: Any, where: str) -> Any:
        fn = getattr(self, "_fn_" + key.removeprefix("Fn::").lower(), None)
        if fn is None:
            raise ImportProblem(where, f"{key}: an intrinsic function shiftlab does not evaluate")
        return fn(arg, where)

    def _fn_ref(self, arg: Any, where: str) -> Any:
        if not isinstance(arg, str):
            raise ImportProblem(where, "Ref takes a name")
        return self.ref(arg, where)

    def _fn_condition(self, arg: Any, where: str) -> bool:
        return self.condition(str(arg), where)

    def _fn_getatt(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not isinstance(arg, list) or len(arg) != 2:
            raise ImportProblem(where, "Fn::GetAtt takes [LogicalId, Attribute]")
        attr = self.value(arg[1], where)
        return self.get_att(str(arg[0]), str(attr), where)

    def _fn_sub(self, arg: Any, where: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[1], dict):
                raise ImportProblem(where, "Fn::Sub takes a string, or [string, {variable: value}]")
            text = arg[0]
            variables = {k: self.value(v, f"{where}.{k}") for k, v in arg[1].items()}
        else:
            text = arg
        if not isinstance(text, str):
            raise ImportProblem(where, "Fn::Sub takes a string")

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is written as ${Literal}
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                value = self.get_att(logical, attr, where)
            else:
                value = self.ref(name, where)
            if isinstance(value, list | dict) or value is NO_VALUE:
                raise ImportProblem(where, f"Fn::Sub: ${{{name}}} is not a string")
            return str(value)

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def _fn_join(self, arg: Any, where: str) -> str:
        if not isinstance(arg, list) or len(arg) != 2:
            raise ImportProblem(where, "Fn::Join takes [delimiter, [values]]")
        items = self.value(arg[1], where)
        if not isinstance(items, list):
            raise ImportProblem(where, "Fn::Join: the values must be a list")
        return str(arg[0]).join(str(i) for i in items)

    def _fn_select(self, arg: Any, where: str) -> Any:
        if not isinstance(arg, list) or len(arg) != 2:
            raise ImportProblem(where, "Fn::Select takes [index, [values]]")
        index = self.value(arg[0], where)
        items = self.value(arg[1], where)
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise ImportProblem(where, f"Fn::Select: index {index!r} is not a number") from None
        if not isinstance(items, list) or not 0 <= i < len(items):
            raise ImportProblem(where, f"Fn::Select: index {i} is outside the list "
                                f"({len(items) if isinstance(items, list) else 'not a list'})")
        return items[i]

    def _fn_split(self, arg: Any, where: str) -> list[str]:
        if not isinstance(arg, list) or len(arg) != 2:
            raise ImportProblem(where, "Fn::Split takes [delimiter, string]")
        text = self.value(arg[1], where)
        if not isinstance(text, str):
            raise ImportProblem(where, "Fn::Split: the source must be a string")
        return text.split(str(arg[0]))

    def _fn_if(self, arg: Any, where: str) -> Any:
        if not isinstance(arg, list) or len(arg) != 3:
            raise ImportProblem(where, "Fn::If takes [condition, value if true, value if false]")
        chosen = arg[1] if self.condition(str(arg[0]), where) else arg[2]
        return self.value(chosen, where)

    def _fn_equals(self, arg: Any, where: str) -> bool:
        if not isinstance(arg, list) or len(arg) != 2:
            raise ImportProblem(where, "Fn::Equals takes [value, value]")
        a, b = (_scalar(self.value(x, where)) for x in arg)
        return a == b

    def _bools(self, arg: Any, where: str, name: str) -> list[bool]:
        if not isinstance(arg, list):
            raise ImportProblem(where, f"{name} takes a list of conditions")
        out = [self.value(x, where) for x in arg]
        if not all(isinstance(x, bool) for x in out):
            raise ImportProblem(where, f"{name}: every item must be a condition")
        return out

    def _fn_and(self, arg: Any, where: str) -> bool:
        return all(self._bools(arg, where, "Fn::And"))

    def _fn_or(self, arg: Any, where: str) -> bool:
        return any(self._bools(arg, where, "Fn::Or"))

    def _fn_not(self, arg: Any, where: str) -> bool:
        values = self._bools(arg, where, "Fn::Not")
        if len(values) != 1:
            raise ImportProblem(where, "Fn::Not takes one condition")
        return not values[0]

    def _fn_findinmap(self, arg: Any, where: str) -> Any:
        if not isinstance(arg, list) or len(arg) not in (3, 4):
            raise ImportProblem(where, "Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]")
        name, top, second = (self.value(x, where) for x in arg[:3])
        mapping = (self.template.get("Mappings") or {}).get(name)
        try:
            return mapping[top][second]  # type: ignore[index]
        except (KeyError, TypeError):
            if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self.value(arg[3]["DefaultValue"], where)
            raise ImportProblem(where, f"Fn::FindInMap: Mappings has no {name}.{top}.{second}") from None

    def _fn_getazs(self, arg: Any, where: str) -> list[str]:
        region = self.value(arg, where) or self.region
        # The account's Availability Zones are AWS's to say; three stand in for them.
        return [f"{region}{z}" for z in "abc"]

    def _fn_base64(self, arg: Any, where: str) -> str:
        return base64.b64encode(str(self.value(arg, where)).encode()).decode()

    def _fn_importvalue(self, arg: Any, where: str) -> Any:
        name = self.value(arg, where)
        if name not in self.import_values:
            raise ImportProblem(where, f"Fn::ImportValue {name}: another stack's export; give it with "
                                f"--import-value {name}=VALUE")
        return self.import_values[name]

    def _fn_tojsonstring(self, arg: Any, where: str) -> str:
        return json.dumps(self.value(arg, where), separators=(",", ":"))

    def _fn_length(self, arg: Any, where: str) -> int:
        items = self.value(arg, where)
        if not isinstance(items, list):
            raise ImportProblem(where, "Fn::Length takes a list")
        return len(items)
