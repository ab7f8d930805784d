"""CloudFormation's intrinsic functions as shiftlab's importer evaluates them
(shiftlab.interop.template), in their long form and YAML's short form.

The cases are the examples of AWS's intrinsic function reference,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference.html
and its pages per function: Fn::Join ("The following example returns:
"a:b:c""), Fn::Select (returns "grapes"), Fn::Split, Fn::Sub (the ARN built
from AWS::Region, AWS::AccountId and a variable map), Fn::GetAZs, Fn::If
and the condition functions, Fn::FindInMap (the RegionMap example),
Fn::Base64 ("AWS CloudFormation" -> its Base64), Fn::ImportValue, Ref of
a parameter and of AWS::NoValue. What the importer cannot evaluate is an
error naming the property it was found in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shiftlab.interop.report import ImportProblem
from shiftlab.interop.template import NO_VALUE, Resolver, load_template

TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "EnvType": {"Type": "String", "Default": "prod"},
        "Subnets": {"Type": "CommaDelimitedList", "Default": "subnet-1,subnet-2"},
        "RootDomainName": {"Type": "String", "Default": "example.com"},
        "NoDefault": {"Type": "String"},
        "Count": {"Type": "Number", "Default": 3},
    },
    "Conditions": {
        "CreateProdResources": {"Fn::Equals": [{"Ref": "EnvType"}, "prod"]},
        "IsDev": {"Fn::Equals": [{"Ref": "EnvType"}, "dev"]},
        "ProdAndNotDev": {"Fn::And": [{"Condition": "CreateProdResources"}, {"Fn::Not": [{"Condition": "IsDev"}]}]},
        "DevOrTest": {"Fn::Or": [{"Condition": "IsDev"}, {"Fn::Equals": ["test", {"Ref": "EnvType"}]}]},
    },
    "Mappings": {"RegionMap": {"us-east-1": {"HVM64": "ami-0ff8a91507f77f867", "HVMG2": "ami-0a584ac55a7631c0c"}}},
    "Resources": {
        "vpc": {"Type": "AWS::EC2::VPC", "Properties": {}},
        "Blue": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {"Name": "blue"}},
        "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Name": "my-alb"}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "hook"}},
        "Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "web-5xx"}},
    },
}

TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/"

CASES = [
    # (id, long form, expected)
    ("join", {"Fn::Join": [":", ["a", "b", "c"]]}, "a:b:c"),
    ("join-partition", {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::elasticbeanstalk-*-",
                                          {"Ref": "AWS::AccountId"}]]},
     "arn:aws:s3:::elasticbeanstalk-*-123456789012"),
    ("select", {"Fn::Select": ["1", ["apples", "grapes", "oranges", "mangoes"]]}, "grapes"),
    ("select-list-parameter", {"Fn::Select": ["0", {"Ref": "Subnets"}]}, "subnet-1"),
    ("split", {"Fn::Split": ["|", "a|b|c"]}, ["a", "b", "c"]),
    ("split-empty", {"Fn::Split": ["|", "a||c|"]}, ["a", "", "c", ""]),
    ("sub-pseudo", {"Fn::Sub": "arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${vpc}"},
     "arn:aws:ec2:us-east-1:123456789012:vpc/shiftlab-vpc-" + "X"),  # the vpc's id: checked below
    ("sub-map", {"Fn::Sub": ["www.${Domain}", {"Domain": {"Ref": "RootDomainName"}}]}, "www.example.com"),
    ("sub-literal", {"Fn::Sub": "${!Literal}-${EnvType}"}, "${Literal}-prod"),
    ("sub-getatt", {"Fn::Sub": "${Blue.TargetGroupName}"}, "blue"),
    ("getazs", {"Fn::GetAZs": ""}, ["us-east-1a", "us-east-1b", "us-east-1c"]),
    ("getazs-region", {"Fn::Select": [0, {"Fn::GetAZs": {"Ref": "AWS::Region"}}]}, "us-east-1a"),
    ("if-true", {"Fn::If": ["CreateProdResources", "c5.large", "t3.micro"]}, "c5.large"),
    ("if-novalue", {"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]}, NO_VALUE),
    ("and-not", {"Fn::If": ["ProdAndNotDev", 1, 2]}, 1),
    ("or", {"Fn::If": ["DevOrTest", 1, 2]}, 2),
    ("equals", {"Fn::Equals": ["a", "a"]}, True),
    ("equals-bool-text", {"Fn::Equals": [True, "true"]}, True),
    ("equals-number-text", {"Fn::Equals": [{"Ref": "Count"}, 3]}, True),
    ("equals-differ", {"Fn::Equals": [{"Ref": "EnvType"}, "dev"]}, False),
    ("findinmap", {"Fn::FindInMap": ["RegionMap", {"Ref": "AWS::Region"}, "HVM64"]}, "ami-0ff8a91507f77f867"),
    ("base64", {"Fn::Base64": "AWS CloudFormation"}, "QVdTIENsb3VkRm9ybWF0aW9u"),
    ("ref-number", {"Ref": "Count"}, "3"),
    ("ref-list", {"Ref": "Subnets"}, ["subnet-1", "subnet-2"]),
    ("ref-targetgroup", {"Fn::Select": [0, {"Fn::Split": ["blue/", {"Ref": "Blue"}]}]},
     "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/"),
    ("getatt-fullname", {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": ["Blue", "TargetGroupFullName"]}]}]},
     "blue"),
    ("getatt-lb", {"Fn::Select": [0, {"Fn::Split": ["/", {"Fn::GetAtt": ["Alb", "LoadBalancerFullName"]}]}]}, "app"),
    ("getatt-lambda", {"Fn::GetAtt": ["Fn", "Arn"]}, "arn:aws:lambda:us-east-1:123456789012:function:hook"),
    ("ref-alarm", {"Ref": "Errors"}, "web-5xx"),
    ("tojsonstring", {"Fn::ToJsonString": {"a": [1, 2]}}, '{"a":[1,2]}'),
    ("length", {"Fn::Length": [1, 2, 3]}, 3),
    ("novalue-in-list", ["a", {"Ref": "AWS::NoValue"}, "b"], ["a", "b"]),
    ("novalue-in-map", {"A": 1, "B": {"Ref": "AWS::NoValue"}}, {"A": 1}),
]


@pytest.mark.parametrize(("node", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_long_form(node: Any, expected: Any) -> None:
    got = Resolver(TEMPLATE).value(node, "R.Properties.P")
    if isinstance(expected, str) and expected.endswith("vpc/shiftlab-vpc-X"):
        assert got.startswith("arn:aws:ec2:us-east-1:123456789012:vpc/shiftl")
        return
    assert got == expected


def test_parameters_and_pseudo_parameters_from_the_command_line() -> None:
    r = Resolver(TEMPLATE, {"EnvType": "dev", "AWS::Region": "eu-west-1", "NoDefault": "given"})
    assert r.value({"Fn::If": ["IsDev", "d", "p"]}, "w") == "d"
    assert r.value({"Fn::Sub": "${AWS::Region}/${NoDefault}"}, "w") == "eu-west-1/given"
    assert r.value({"Ref": "Blue"}, "w").startswith("arn:aws:elasticloadbalancing:eu-west-1:")


def test_the_arns_are_stable_and_in_aws_formats() -> None:
    a, b = Resolver(TEMPLATE), Resolver(TEMPLATE)
    arn = a.value({"Ref": "Blue"}, "w")
    assert arn == b.value({"Ref": "Blue"}, "w")
    assert arn.startswith(TG_ARN) and len(arn.rsplit("/", 1)[1]) == 16
    assert a.value({"Fn::GetAtt": ["Blue", "TargetGroupFullName"]}, "w") == arn.split(":", 5)[5]


SHORT = """
Parameters:
  EnvType: {Type: String, Default: prod}
Conditions:
  IsProd: !Equals [!Ref EnvType, prod]
Resources:
  Blue:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Name: !Join ["-", [!Ref EnvType, blue]]
      Tags:
        - {Key: a, Value: !Sub "${AWS::Region}-${EnvType}"}
        - {Key: b, Value: !Select [1, !Split [",", "x,y,z"]]}
        - {Key: c, Value: !If [IsProd, !GetAtt Blue.TargetGroupName, other]}
        - {Key: d, Value: !FindInMap [M, k, v]}
        - {Key: e, Value: !Select [2, !GetAZs ""]}
        - {Key: f, Value: !Base64 hi}
        - {Key: g, Value: !Sub ["${X}!", {X: !Ref EnvType}]}
Mappings:
  M: {k: {v: found}}
"""


def test_yaml_short_forms_are_the_long_forms(tmp_path: Path) -> None:
    """The short forms (`!Ref`, `!GetAtt A.B`, `!Sub`, ...) read as their long forms."""
    path = tmp_path / "t.yaml"
    path.write_text(SHORT)
    t = load_template(path)
    props = t["Resources"]["Blue"]["Properties"]
    assert props["Name"] == {"Fn::Join": ["-", [{"Ref": "EnvType"}, "blue"]]}
    assert props["Tags"][2]["Value"] == {"Fn::If": ["IsProd", {"Fn::GetAtt": ["Blue", "TargetGroupName"]}, "other"]}
    r = Resolver(t)
    assert r.prop("Blue", "Name") == "prod-blue"
    assert [tag["Value"] for tag in r.prop("Blue", "Tags")] == [
        "us-east-1-prod", "y", "prod-blue", "found", "us-east-1c", "aGk=", "prod!"]


ERRORS = [
    # (id, node, what the message says)
    ("unsupported-intrinsic", {"Fn::Cidr": ["10.0.0.0/16", 6, 5]}, "Fn::Cidr: an intrinsic function shiftlab"),
    ("unknown-ref", {"Ref": "Missing"}, "Ref Missing: neither a parameter nor a resource"),
    ("no-default", {"Ref": "NoDefault"}, "--parameter NoDefault=VALUE"),
    ("unknown-attribute", {"Fn::GetAtt": ["Blue", "Nope"]}, "has no attribute Nope"),
    ("getatt-unknown-resource", {"Fn::GetAtt": ["Nope", "Arn"]}, "'Nope', which is not a resource"),
    ("import-value", {"Fn::ImportValue": "shared-vpc"}, "--import-value shared-vpc=VALUE"),
    ("select-out-of-range", {"Fn::Select": [4, ["a"]]}, "index 4 is outside the list"),
    ("unknown-condition", {"Fn::If": ["Nope", 1, 2]}, "Condition Nope: not in the template's Conditions"),
    ("missing-mapping", {"Fn::FindInMap": ["RegionMap", "eu-west-9", "HVM64"]}, "Mappings has no RegionMap.eu-west-9"),
    ("transform", {"Fn::Transform": {"Name": "AWS::Include"}}, "Fn::Transform: an intrinsic function"),
]


@pytest.mark.parametrize(("node", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_what_cannot_be_evaluated_names_the_property(node: Any, message: str) -> None:
    with pytest.raises(ImportProblem) as info:
        Resolver(TEMPLATE).value({"Deep": [node]}, "MyService.Properties.DeploymentConfiguration")
    assert info.value.where == "MyService.Properties.DeploymentConfiguration.Deep[0]"
    assert message in info.value.message


def test_import_values_given() -> None:
    assert Resolver(TEMPLATE, import_values={"shared-vpc": "vpc-1"}).value({"Fn::ImportValue": "shared-vpc"}, "w") \
        == "vpc-1"


def test_a_transform_is_refused_by_name() -> None:
    with pytest.raises(ImportProblem, match="AWS::Serverless-2016-10-31"):
        Resolver({**TEMPLATE, "Transform": "AWS::Serverless-2016-10-31"})
    Resolver({**TEMPLATE, "Transform": ["AWS::LanguageExtensions"]})  # Fn::ToJsonString, Fn::Length: evaluated
