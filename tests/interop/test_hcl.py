"""The Terraform reader's expressions: what python-hcl2 gives for literals,
templates and expressions, evaluated as Terraform would; anything else
refused by name (https://developer.hashicorp.com/terraform/language/expressions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shiftlab.interop.hcl import Evaluator, HclError, Ref, _parse, var_flag


def values(text: str, refs: dict[str, Any] | None = None) -> dict[str, Any]:
    table = refs or {}

    def resolve(steps: list[str | int]) -> Any:
        key = ".".join(map(str, steps))
        if key not in table:
            raise HclError(f"{key}: unknown")
        return table[key]

    ev = Evaluator(resolve)
    return {k: ev.value(v) for k, v in _parse(text, "test").items() if not k.startswith("__")}


@pytest.mark.parametrize(("source", "expected"), [
    ('"web"', "web"),
    ("42", 42),
    ("1.5", 1.5),
    ("true", True),
    ("null", None),
    ('"a\\"b\\\\c"', 'a"b\\c'),
    ('"tab\\there"', "tab\there"),
    ('"$${literal}"', "${literal}"),
    ('"${var.name}-blue"', "web-blue"),
    ('"${var.count}"', 3),  # an interpolation alone keeps its type
    ('"n=${var.count}"', "n=3"),
    ("var.name", "web"),
    ('["a", var.name]', ["a", "web"]),
    ('{ a = 1, "b-c" = var.name }', {"a": 1, "b-c": "web"}),
    ('jsonencode({ waitSeconds = 60, list = [1, "two"] })', '{"waitSeconds":60,"list":[1,"two"]}'),
    ('tostring(var.count)', "3"),
    ('tonumber("12")', 12),
])
def test_values(source: str, expected: Any) -> None:
    assert values(f"x = {source}", {"var.name": "web", "var.count": 3})["x"] == expected


def test_a_heredoc_is_its_text() -> None:
    got = values('x = <<EOT\n{"a": 1}\nEOT\n')["x"]
    assert json.loads(got) == {"a": 1}


def test_references_keep_their_steps() -> None:
    seen: list[list[str | int]] = []

    def resolve(steps: list[str | int]) -> Any:
        seen.append(steps)
        return Ref("aws_lb_target_group", "blue")

    ev = Evaluator(resolve)
    assert ev.value("${aws_lb_target_group.blue[0].arn}") == Ref("aws_lb_target_group", "blue")
    assert seen == [["aws_lb_target_group", "blue", 0, "arn"]]


@pytest.mark.parametrize("source", ['var.x ? 1 : 2', "var.a + 1", "upper(var.name)", "[for s in var.l : s]",
                                    '"%{ if var.x }a%{ endif }"'])
def test_what_is_not_supported_is_refused_by_name(source: str) -> None:
    with pytest.raises(HclError, match="not supported"):
        values(f"x = {source}", {"var.x": True, "var.a": 1, "var.name": "w", "var.l": []})


def test_var_flags_read_as_terraform_reads_minus_var() -> None:
    assert var_flag("name=web") == ("name", '"web"')
    assert var_flag('subnets=["a", "b"]') == ("subnets", ['"a"', '"b"'])
    with pytest.raises(Exception, match="NAME=VALUE"):
        var_flag("novalue")
