"""AWS's own API shapes as a check of the config sections that copy them.

botocore carries every AWS API as data: `botocore/data/<service>/<date>/
service-2.json(.gz)`, the model its clients validate parameters with and
AWS's SDKs are generated from. Checking a section against it refuses an
unknown field, a wrong type (a string where AWS takes a number, "yes"
where it takes a boolean), a missing required field, a value outside an
enum, or a length or count outside the model's `min`/`max`, as AWS's API
would, each problem naming its field path. Field names and types are read
from the model, never copied by hand, so they cannot drift from AWS's.

Pure core: `problems(shapes, shape, value, path) -> list[str]`, over a
mapping of shape names to botocore shape dicts. Two additions to botocore's
vocabulary let a section say where shiftlab's spelling differs:

- the shape name `LOCAL`: a value shiftlab defines itself (a key of its
  own beside AWS's, or an AWS key it spells its own way); not checked here,
  its section's model checks it;
- `ONE_OR_MORE: True` on a list shape: a single item stands for a
  one-item list (shiftlab's shorthand).

`derive` builds such a section shape from an AWS one. `service_shapes(name)`
reads a service's model from botocore's data directory (without importing
botocore: only the JSON file is read), once per process.

Not checked: `pattern` (server-side regular expressions in Java's dialect;
each section's model checks the values shiftlab uses). JSON null counts as
absent, as shiftlab's own models take it.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from collections import ChainMap
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

Shapes = Mapping[str, Mapping[str, Any]]

LOCAL = "shiftlab:local"
ONE_OR_MORE = "shiftlab:oneOrMore"

_KINDS = {
    "structure": "an object",
    "list": "a list",
    "map": "an object",
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "double": "a number",
    "float": "a number",
    "boolean": "true or false",
    "timestamp": "a timestamp",
    "blob": "a string",
}


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _given(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        text = repr(value) if len(value) <= 60 else repr(value[:57] + "...")
        return f"{text} (a string)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _type_ok(kind: str, value: Any) -> bool:
    if kind in ("structure", "map"):
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind in ("string", "blob"):
        return isinstance(value, str)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("double", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    return True


def _fmt(n: Any) -> str:
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


def _bounds(shape: Mapping[str, Any], size: float, path: str, unit: str) -> list[str]:
    """The model's `min`/`max`: of a number (`unit` ""), a string's length or a list's items."""
    lo, hi = shape.get("min"), shape.get("max")
    if (lo is None or size >= lo) and (hi is None or size <= hi):
        return []
    if not unit and lo is not None and hi is not None:
        return [f"{path}: {_fmt(size)} is out of AWS's range {_fmt(lo)}..{_fmt(hi)}"]
    bound = f"at least {_fmt(lo)}" if lo is not None and size < lo else f"at most {_fmt(hi)}"
    return [f"{path}: {_fmt(size)}{unit} - AWS's API takes {bound}"]


def problems(shapes: Shapes, shape_name: str, value: Any, path: str) -> list[str]:
    """What AWS's API would refuse in `value`, checked as the shape
    `shape_name` of `shapes`, each problem prefixed with its field path."""
    if shape_name == LOCAL or value is None:
        return []
    shape = shapes[shape_name]
    kind = shape["type"]
    if kind == "structure" and shape.get("document"):
        return []  # any JSON value (e.g. ECS's hookDetails)
    if kind == "list" and shape.get(ONE_OR_MORE) and not isinstance(value, list):
        value = [value]
    if not _type_ok(kind, value):
        return [f"{path}: {_given(value)} - AWS's API takes {_KINDS.get(kind, kind)} here"]
    if kind == "structure":
        return _structure(shapes, shape_name, shape, value, path)
    if kind == "list":
        out = _bounds(shape, len(value), path, " items")
        for i, item in enumerate(value):
            out += problems(shapes, shape["member"]["shape"], item, join(path, i))
        return out
    if kind == "map":
        out = _bounds(shape, len(value), path, " entries")
        for key, item in value.items():
            out += problems(shapes, shape["key"]["shape"], key, join(path, str(key)))
            out += problems(shapes, shape["value"]["shape"], item, join(path, str(key)))
        return out
    if kind == "string":
        enum = shape.get("enum")
        if enum is not None and value not in enum:
            return [f"{path}: {value!r} is not one of {', '.join(enum)}"]
        return _bounds(shape, len(value), path, " characters")
    if kind in ("integer", "long", "double", "float"):
        return _bounds(shape, value, path, "")
    return []


def _structure(shapes: Shapes, shape_name: str, shape: Mapping[str, Any], value: dict[str, Any],
               path: str) -> list[str]:
    members: Mapping[str, Any] = shape.get("members", {})
    out = [f"{join(path, key)}: is required" for key in shape.get("required", ()) if value.get(key) is None]
    for key, item in value.items():
        if key not in members:
            out.append(f"{join(path, key)}: unknown field")
        else:
            out += problems(shapes, members[key]["shape"], item, join(path, key))
    if shape.get("union"):
        given = [k for k in value if value[k] is not None]
        if len(given) != 1:
            out.append(f"{path or '(top level)'}: takes exactly one of {', '.join(members)} ({shape_name})")
    return out


def derive(shapes: Shapes, base: str, *, required: Collection[str] | None = None,
           members: Mapping[str, str] | None = None, drop: Collection[str] = (),
           **extra: Any) -> dict[str, Any]:
    """The shape `base` of `shapes` as a section of shiftlab's spells it:
    `required` replaces its required fields, `members` adds or retypes
    fields (name -> shape name, LOCAL for shiftlab's own), `drop` removes
    fields, `extra` sets other keys of the shape (e.g. ONE_OR_MORE)."""
    shape = dict(shapes[base])
    merged = {k: v for k, v in shape.get("members", {}).items() if k not in drop}
    merged.update({name: {"shape": ref} for name, ref in (members or {}).items()})
    shape["members"] = merged
    if required is not None:
        shape["required"] = list(required)
    shape.update(extra)
    return shape


def overlay(shapes: Shapes, own: Mapping[str, Mapping[str, Any]]) -> Shapes:
    """`shapes` with the section's own shapes (`own`) over them."""
    return ChainMap(dict(own), dict(shapes))


def model_path(service: str) -> Path:
    """botocore's model of `service`: the newest API version it carries."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("botocore is not installed: shiftlab checks AWS's config sections against its models")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / service
    versions = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for version in reversed(versions):
        for name in ("service-2.json.gz", "service-2.json"):
            if (version / name).is_file():
                return version / name
    raise RuntimeError(f"botocore has no model of {service} in {root}")


@functools.cache
def service_shapes(service: str) -> Shapes:
    """The shapes of `service`'s API model (e.g. "ecs", "elbv2", "cloudwatch"), read once."""
    path = model_path(service)
    raw = path.read_bytes()
    text = gzip.decompress(raw) if path.suffix == ".gz" else raw
    shapes: Shapes = json.loads(text)["shapes"]
    return shapes
