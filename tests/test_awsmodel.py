"""shiftlab.common.awsmodel: a value checked against a botocore shape, as
AWS's API checks its input (the shapes below use botocore's vocabulary:
https://github.com/boto/botocore/tree/develop/botocore/data), and the
models read from the installed botocore, without importing it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from shiftlab.common.awsmodel import LOCAL, ONE_OR_MORE, derive, model_path, overlay, problems, service_shapes

SHAPES: dict[str, dict[str, Any]] = {
    "Config": {"type": "structure", "required": ["name", "enable"], "members": {
        "name": {"shape": "Name"},
        "enable": {"shape": "Boolean"},
        "count": {"shape": "Count"},
        "percent": {"shape": "Double"},
        "mode": {"shape": "Mode"},
        "tags": {"shape": "Tags"},
        "values": {"shape": "Values"},
        "details": {"shape": "Details"},
        "labels": {"shape": "Labels"},
        "when": {"shape": "Timestamp"},
        "own": {"shape": LOCAL},
        "items": {"shape": "Items"},
        "either": {"shape": "Either"},
    }},
    "Name": {"type": "string", "min": 1, "max": 8},
    "Boolean": {"type": "boolean"},
    "Count": {"type": "integer", "min": 1, "max": 10},
    "Double": {"type": "double"},
    "Mode": {"type": "string", "enum": ["fast", "slow"]},
    "Tags": {"type": "list", "member": {"shape": "Name"}, "max": 2},
    "Values": {"type": "list", "member": {"shape": "Name"}, ONE_OR_MORE: True},
    "Details": {"type": "structure", "members": {}, "document": True},
    "Labels": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Count"}},
    "Timestamp": {"type": "timestamp"},
    "Items": {"type": "list", "member": {"shape": "Item"}},
    "Item": {"type": "structure", "required": ["id"], "members": {"id": {"shape": "Count"}}},
    "Either": {"type": "structure", "union": True, "members": {"a": {"shape": "Count"}, "b": {"shape": "Name"}}},
}
OK = {"name": "web", "enable": True}


@pytest.mark.parametrize(("value", "expected"), [
    (OK, []),
    ({**OK, "count": 10, "percent": 2, "mode": "fast", "tags": ["a", "b"], "when": "2026-01-01T00:00:00Z"}, []),
    ({**OK, "percent": 0.5}, []),
    # null is absent (shiftlab's models take it so).
    ({**OK, "count": None}, []),
    ({"name": "web", "enable": None}, ["cfg.enable: is required"]),
    ({}, ["cfg.name: is required", "cfg.enable: is required"]),
    ({**OK, "colour": "red"}, ["cfg.colour: unknown field"]),
    # Types: no coercion, as AWS's JSON APIs.
    ({**OK, "count": "5"}, ["cfg.count: '5' (a string) - AWS's API takes an integer here"]),
    ({**OK, "count": 5.0}, ["cfg.count: 5.0 (a number) - AWS's API takes an integer here"]),
    ({**OK, "count": True}, ["cfg.count: true (a boolean) - AWS's API takes an integer here"]),
    ({**OK, "percent": "0.5"}, ["cfg.percent: '0.5' (a string) - AWS's API takes a number here"]),
    ({**OK, "percent": False}, ["cfg.percent: false (a boolean) - AWS's API takes a number here"]),
    ({"name": "web", "enable": "true"}, ["cfg.enable: 'true' (a string) - AWS's API takes true or false here"]),
    ({"name": 7, "enable": 1}, ["cfg.name: 7 (a number) - AWS's API takes a string here",
                                "cfg.enable: 1 (a number) - AWS's API takes true or false here"]),
    ({**OK, "tags": "a"}, ["cfg.tags: 'a' (a string) - AWS's API takes a list here"]),
    ({**OK, "items": [["x"]]}, ["cfg.items[0]: a list - AWS's API takes an object here"]),
    ({**OK, "when": True}, ["cfg.when: true (a boolean) - AWS's API takes a timestamp here"]),
    # Enums, lengths, counts, ranges: the model's min/max.
    ({**OK, "mode": "FAST"}, ["cfg.mode: 'FAST' is not one of fast, slow"]),
    ({**OK, "name": ""}, ["cfg.name: 0 characters - AWS's API takes at least 1"]),
    ({**OK, "name": "much-too-long"}, ["cfg.name: 13 characters - AWS's API takes at most 8"]),
    ({**OK, "tags": ["a", "b", "c"]}, ["cfg.tags: 3 items - AWS's API takes at most 2"]),
    ({**OK, "count": 0}, ["cfg.count: 0 is out of AWS's range 1..10"]),
    ({**OK, "count": 11}, ["cfg.count: 11 is out of AWS's range 1..10"]),
    # Nested paths.
    ({**OK, "items": [{"id": 1}, {}, {"id": "2"}]},
     ["cfg.items[1].id: is required", "cfg.items[2].id: '2' (a string) - AWS's API takes an integer here"]),
    ({**OK, "tags": ["ok", "much-too-long"]}, ["cfg.tags[1]: 13 characters - AWS's API takes at most 8"]),
    ({**OK, "labels": {"a": 1, "b": "2"}}, ["cfg.labels.b: '2' (a string) - AWS's API takes an integer here"]),
    # A document takes any JSON; LOCAL is shiftlab's own, not checked.
    ({**OK, "details": {"anything": [1, "x"]}, "own": {"whatever": True}}, []),
    ({**OK, "own": 5}, []),
    # ONE_OR_MORE: a single item stands for a one-item list, checked as one.
    ({**OK, "values": "a"}, []),
    ({**OK, "values": "much-too-long"}, ["cfg.values[0]: 13 characters - AWS's API takes at most 8"]),
    # A union takes exactly one member.
    ({**OK, "either": {"a": 1}}, []),
    ({**OK, "either": {"a": 1, "b": "x"}}, ["cfg.either: takes exactly one of a, b (Either)"]),
])
def test_a_value_is_checked_as_aws_checks_its_shape(value: Any, expected: list[str]) -> None:
    assert problems(SHAPES, "Config", value, "cfg") == expected


def test_the_top_level_path_is_the_field_itself() -> None:
    assert problems(SHAPES, "Config", {"name": 1, "enable": True}, "") == [
        "name: 1 (a number) - AWS's API takes a string here"]


def test_derive_retypes_adds_drops_and_replaces_required() -> None:
    shapes = overlay(SHAPES, {"Mine": derive(SHAPES, "Config", required=["name"], drop=["mode"],
                                             members={"extra": LOCAL, "count": "Name"})})
    assert problems(shapes, "Mine", {"name": "web", "extra": [1], "count": "x"}, "m") == []
    assert problems(shapes, "Mine", {"name": "web", "mode": "fast"}, "m") == ["m.mode: unknown field"]
    assert problems(shapes, "Config", {"name": "web"}, "c") == ["c.enable: is required"]  # the base is unchanged


@pytest.mark.parametrize(("service", "shape", "members"), [
    ("ecs", "DeploymentConfiguration", {"strategy", "bakeTimeInMinutes", "canaryConfiguration", "lifecycleHooks"}),
    ("elbv2", "CreateRuleInput", {"Conditions", "Priority", "Actions"}),
    ("cloudwatch", "PutMetricAlarmInput", {"AlarmName", "Metrics", "TreatMissingData"}),
])
def test_the_models_are_botocores_read_once_without_importing_it(service: str, shape: str,
                                                                    members: set[str]) -> None:
    path = model_path(service)
    assert path.parent.parent.name == service and path.name.startswith("service-2.json")
    shapes = service_shapes(service)
    assert members <= set(shapes[shape]["members"])
    assert service_shapes(service) is shapes


def test_reading_the_models_imports_no_botocore() -> None:
    """In a process of its own: other tests (boto3's clients) import botocore."""
    code = ("import sys; from shiftlab.common.awsmodel import service_shapes\n"
            "for name in ('ecs', 'elbv2', 'cloudwatch'): service_shapes(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('botocore')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
