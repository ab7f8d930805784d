"""A Terraform module's .tf files, read with python-hcl2, and the values of
its expressions: literals, string templates, references within the module
(`var.x`, `local.x`, `<type>.<name>.<attribute>`, `data.<type>.<name>.<attribute>`)
and `jsonencode`/`tostring`/`tonumber`. Anything else (conditionals,
arithmetic, `for` expressions, other functions) is refused with the
resource and argument it was met in, never guessed.

python-hcl2 (8.x) gives a string literal with its quotes (`"\"web\""`) and
an expression as `"${...}"`: the two are told apart by that, and evaluated
only when an importer asks for the argument (what it ignores is never
evaluated, so an unresolvable `vpc_id` does not stop an import)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from shiftlab.common.configfile import ConfigError

OPTIONS = SerializationOptions(with_comments=False, preserve_heredocs=False)


class HclError(Exception):
    """An expression this reader cannot evaluate; the caller adds where it was."""


@dataclass(frozen=True)
class Ref:
    """A module resource's identity (its `arn` or `id`): each importer turns it
    into what the config names it by (a target group's name, a rule's id)."""

    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}.{self.name}"


@dataclass
class Block:
    kind: str  # resource | data
    type: str
    name: str
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}" if self.kind == "resource" else f"data.{self.type}.{self.name}"


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return dict(hcl2.loads(text, serialization_options=OPTIONS))
    except Exception as exc:  # python-hcl2 raises lark's errors, of many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError([f"{where}: not valid HCL: {first}"]) from None


@dataclass
class Module:
    """The root module of a directory: its variables, locals, resources and data sources."""

    variables: dict[str, Any] = field(default_factory=dict)  # name -> default (raw), absent: no default
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], Block] = field(default_factory=dict)
    data: dict[tuple[str, str], Block] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: str | Path) -> Module:
        d = Path(directory)
        if not d.is_dir():
            raise ConfigError([f"{d}: not a directory"])
        files = sorted(d.glob("*.tf"))
        if not files:
            raise ConfigError([f"{d}: no .tf files"])
        module = cls()
        problems: list[str] = []
        for f in files:
            try:
                doc = _parse(f.read_text(encoding="utf-8"), str(f))
            except ConfigError as exc:
                problems += exc.problems
                continue
            module._add(doc, f.name, problems)
        if problems:
            raise ConfigError(problems)
        return module

    def _add(self, doc: dict[str, Any], file: str, problems: list[str]) -> None:
        for entry in doc.get("variable", []):
            for name, body in entry.items():
                if name.startswith("__"):
                    continue
                self.variables[unquote(name)] = body.get("default", _NO_DEFAULT) if isinstance(body, dict) \
                    else _NO_DEFAULT
        for entry in doc.get("locals", []):
            for name, value in entry.items():
                if not name.startswith("__"):
                    self.locals[unquote(name)] = value
        for kind in ("resource", "data"):
            table = self.resources if kind == "resource" else self.data
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    if rtype.startswith("__"):
                        continue
                    for rname, body in named.items():
                        if rname.startswith("__"):
                            continue
                        key = (unquote(rtype), unquote(rname))
                        if key in table:
                            problems.append(f"{file}: {kind} {key[0]}.{key[1]} is declared twice")
                        table[key] = Block(kind, key[0], key[1], body, file)

    def of_type(self, rtype: str) -> list[Block]:
        return [b for (t, _), b in self.resources.items() if t == rtype]


_NO_DEFAULT = object()


def read_tfvars(path: str | Path) -> dict[str, Any]:
    """A .tfvars file (HCL) or .tfvars.json: name -> raw value."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read ({exc.strerror})"]) from None
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([f"{p}: not valid JSON: {exc}"]) from None
        if not isinstance(data, dict):
            raise ConfigError([f"{p}: must be an object of variable values"])
        return {k: _from_json(v) for k, v in data.items()}
    return {unquote(k): v for k, v in _parse(text, str(p)).items() if not k.startswith("__")}


def _from_json(v: Any) -> Any:
    """A JSON value in this reader's raw form (strings quoted, as python-hcl2 gives them)."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def var_flag(text: str) -> tuple[str, Any]:
    """`--var name=value`: the value as Terraform's -var reads it (an HCL
    expression for lists and maps, else a string)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*", name.strip()):
        raise ConfigError([f"--var {text!r}: expected NAME=VALUE"])
    value = value.strip()
    if value[:1] in ("[", "{"):
        parsed = _parse(f"v = {value}", f"--var {name}")
        return name.strip(), parsed["v"]
    return name.strip(), json.dumps(value)


# A reference: a name, then attributes and indexes.
_REF = re.compile(r'[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\]|\["[^"]*"\])*')
_STEP = re.compile(r'\.([A-Za-z_][\w-]*)|\[(\d+)\]|\["([^"]*)"\]')
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

Resolver = Callable[[list[str | int]], Any]


class Evaluator:
    """Values of raw python-hcl2 values. `resolve` gets a reference's steps
    (`["aws_lb", "main", "arn"]`) and returns its value or raises HclError."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve

    def value(self, raw: Any) -> Any:
        if raw is None or isinstance(raw, bool | int | float):
            return raw
        if isinstance(raw, list):
            return [self.value(x) for x in raw]
        if isinstance(raw, dict):
            return {unquote(k): self.value(v) for k, v in raw.items() if not k.startswith("__")}
        if isinstance(raw, str):
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                return self.template(raw[1:-1])
            if raw.startswith("${") and raw.endswith("}") and _closing(raw, 2) == len(raw) - 1:
                return self.expr(raw[2:-1])
            return raw
        raise HclError(f"unsupported value {raw!r}")

    def template(self, text: str) -> Any:
        parts: list[Any] = []
        buf = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                nxt = text[i + 1]
                if nxt in _ESCAPES:
                    buf.append(_ESCAPES[nxt])
                    i += 2
                    continue
                if nxt == "u" and i + 6 <= len(text):
                    buf.append(chr(int(text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                buf.append(c)
                i += 1
                continue
            if text.startswith("$${", i) or text.startswith("%%{", i):
                buf.append(text[i + 1:i + 3])
                i += 3
                continue
            if text.startswith("%{", i):
                raise HclError("template directives (%{ ... }) are not supported")
            if text.startswith("${", i):
                end = _closing(text, i + 2)
                if end < 0:
                    raise HclError(f"unclosed interpolation in {text!r}")
                parts.append("".join(buf))
                buf = []
                parts.append(self.expr(text[i + 2:end]))
                i = end + 1
                continue
            buf.append(c)
            i += 1
        parts.append("".join(buf))
        pieces = [p for p in parts if p != ""]
        if len(pieces) == 1 and not isinstance(pieces[0], str):
            return pieces[0]  # "${x}" alone keeps x's type, as Terraform does
        return "".join(_text(p) for p in parts)

    def expr(self, text: str) -> Any:
        t = text.strip()
        if t in ("true", "false"):
            return t == "true"
        if t == "null":
            return None
        if _NUMBER.fullmatch(t):
            return float(t) if any(c in t for c in ".eE") else int(t)
        if len(t) >= 2 and t[0] == t[-1] == '"' and _closing_quote(t, 1) == len(t) - 1:
            return self.template(t[1:-1])
        m = re.fullmatch(r"(jsonencode|tostring|tonumber|tobool)\((.*)\)", t, re.DOTALL)
        if m:
            arg = self.value(_parse(f"v = {m.group(2)}", "expression")["v"])
            return _call(m.group(1), arg)
        if _REF.fullmatch(t):
            steps: list[str | int] = [t[:t.find(".")] if "." in t else t]
            head = len(str(steps[0]))
            for step in _STEP.finditer(t, head):
                steps.append(int(step.group(2)) if step.group(2) is not None else step.group(1) or step.group(3))
            return self.resolve(steps)
        raise HclError(f"the expression {t!r} is not supported (references, literals, jsonencode, tostring, "
                       "tonumber are)")


def _call(name: str, arg: Any) -> Any:
    if name == "jsonencode":
        return json.dumps(arg, separators=(",", ":"), default=str)
    if name == "tostring":
        return _text(arg)
    if name == "tobool":
        if isinstance(arg, bool):
            return arg
        if arg in ("true", "false"):
            return arg == "true"
        raise HclError(f"tobool({arg!r}): not a bool")
    try:
        f = float(arg)
    except (TypeError, ValueError):
        raise HclError(f"tonumber({arg!r}): not a number") from None
    return int(f) if f.is_integer() else f


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list | dict):
        raise HclError(f"cannot put {v!r} in a string")
    return "" if v is None else str(v)


def _closing(text: str, start: int) -> int:
    """Index of the `}` closing an interpolation whose body starts at `start`."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _closing_quote(text, i + 1)
            if i < 0:
                return -1
        elif c in "{([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _closing_quote(text: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1
