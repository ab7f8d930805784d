"""Reading shiftlab.yaml (YAML or JSON) and turning validation failures into
one error type whose lines name the field path and the bad value.

Both planes parse their own section with pydantic; this module is the edge
where a file becomes a dict and where pydantic's errors become the messages
a user sees (`loadBalancer.Listeners[0].Port: 70000 is out of range 1..65535`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails


class ConfigError(Exception):
    """A refused configuration. `problems` holds one line per bad field."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def in_range(lo: float, hi: float) -> AfterValidator:
    """A range check whose message names both bounds, as AWS's API errors do."""

    def check(value: Any) -> Any:
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"{_fmt(value)} is out of range {_fmt(lo)}..{_fmt(hi)}")
        return value

    return AfterValidator(check)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Model(BaseModel):
    """Base of every config model: frozen, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def field_path(loc: Sequence[int | str], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    return [describe_error(err, error_path(err, prefix)) for err in exc.errors(include_url=False)]


def error_path(err: ErrorDetails, prefix: str = "") -> str:
    # Tagged unions and function validators add their own names to loc;
    # they mean nothing to a user, so keep only fields and indexes.
    loc = [p for p in err["loc"] if isinstance(p, int) or not _is_internal(p)]
    return field_path(loc, prefix) or "(top level)"


def describe_error(err: ErrorDetails, path: str) -> str:
    """One problem line: `path` (a field path, or whatever else named the value) and what is wrong."""
    kind = err["type"]
    msg = err["msg"]
    if kind == "missing":
        return f"{path}: is required"
    if kind == "extra_forbidden":
        return f"{path}: unknown field"
    if kind == "value_error":
        return f"{path}: {msg.removeprefix('Value error, ')}"
    # "after validation" is pydantic's view of the pipeline, not the user's.
    msg = msg.replace(" after validation", "")
    return f"{path}: {_short(err.get('input'))} - {msg}"


def _is_internal(part: str) -> bool:
    return "[" in part or part.startswith(("function-", "tagged-union", "union["))


def load_file(path: str | Path, what: str = "the top level") -> dict[str, Any]:
    """Read a YAML or JSON file into a dict (JSON is valid YAML); `what`
    names the document in the error when it is not a mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read ({exc.strerror})"]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{p}: not valid YAML/JSON: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{p}: {what} must be a mapping"])
    return data


def parse(model: type[Any], data: Any, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, prefix)) from None


def _path_of(problem: str) -> str:
    return problem.split(": ", 1)[0]


def merge_problems(own: list[str], aws: list[str]) -> list[str]:
    """`own` (a section's model's problems), then those of AWS's API model
    (shiftlab.common.awsmodel) on the fields `own` does not name: where
    both name a field, the model's own message is kept, one line per field."""
    named = {_path_of(p) for p in own}
    return own + [p for p in aws if _path_of(p) not in named]


def parse_checked(model: type[Any], data: Any, prefix: str, aws: list[str]) -> Any:
    """`parse`, refusing too what AWS's API model refuses (`aws`)."""
    try:
        parsed = parse(model, data, prefix)
    except ConfigError as exc:
        raise ConfigError(merge_problems(exc.problems, aws)) from None
    if aws:
        raise ConfigError(aws)
    return parsed
