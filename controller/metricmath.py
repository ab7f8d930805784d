"""CloudWatch metric math for alarms: parsed once at config time, evaluated
per period over the series the metric store returns. No eval().

Public API
----------
`parse_expression(text) -> Expression` raises `MathError` (a ValueError)
whose message quotes the expression and says what is wrong and where.

`Expression`:
  - `source`: the text as given;
  - `ids`: the query Ids it references (the caller checks they exist);
  - `returns_series`: False when the result is a single number over the
    window (e.g. `MAX(m1)` or `2*3`); an alarm must return a time series;
  - `evaluate(env, length) -> list[float | None]`: `env` maps each Id to its
    series (oldest first, `length` datapoints, None = missing). A scalar
    result is repeated `length` times.

Language (the subset of CloudWatch's that alarms on ALB metrics need):
numbers, Ids (lowercase first letter), `+ - * /`, parentheses, unary minus,
`SUM MAX MIN AVG` over an array `[a, b, ...]` (per period) or over one
series (one number for the whole window, as CloudWatch does: `m1 - MIN(m1)`),
`ABS(x)`, `FILL(series, value)`.

Per period: arithmetic with a missing operand is missing; division by zero
is missing; SUM/MAX/MIN/AVG skip missing members and are missing when all
are; FILL replaces missing datapoints with the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Series = list[float | None]

AGGREGATES = ("SUM", "MAX", "MIN", "AVG")
FUNCTIONS = (*AGGREGATES, "ABS", "FILL")


class MathError(ValueError):
    """An expression shiftlab cannot parse; the message quotes it."""


# --- syntax tree ----------------------------------------------------------


@dataclass(frozen=True)
class _Num:
    value: float


@dataclass(frozen=True)
class _Ref:
    id: str


@dataclass(frozen=True)
class _Neg:
    operand: _Node


@dataclass(frozen=True)
class _Bin:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Array:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


_Node = _Num | _Ref | _Neg | _Bin | _Array | _Call


# --- tokens ---------------------------------------------------------------

_TOKEN = re.compile(r"(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/()\[\],]))")
_ID = re.compile(r"[a-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, name, op, end
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            out.append(_Tok("end", "", pos))
            return out
        m = _TOKEN.match(text, pos)
        if m is None:
            raise MathError(f"{text!r}: unexpected {text[pos]!r} at position {pos}")
        kind = m.lastgroup or "op"
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()


# --- parser (recursive descent, usual precedence) --------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def error(self, msg: str, tok: _Tok | None = None) -> MathError:
        tok = tok or self.peek()
        where = "at the end" if tok.kind == "end" else f"at position {tok.pos}"
        return MathError(f"{self.text!r}: {msg} {where}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        tok = self.peek()
        if tok.kind != "op" or tok.text != op:
            found = "nothing" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {op!r}, found {found}")
        self.i += 1

    def at_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise MathError(f"{self.text!r}: the expression is empty")
        node = self.sum()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def sum(self) -> _Node:
        node = self.product()
        while self.at_op("+", "-"):
            op = self.take().text
            node = _Bin(op, node, self.product())
        return node

    def product(self) -> _Node:
        node = self.unary()
        while self.at_op("*", "/"):
            op = self.take().text
            node = _Bin(op, node, self.unary())
        return node

    def unary(self) -> _Node:
        if self.at_op("-"):
            self.take()
            return _Neg(self.unary())
        if self.at_op("+"):
            self.take()
            return self.unary()
        return self.primary()

    def primary(self) -> _Node:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            return _Num(float(tok.text))
        if tok.kind == "name":
            self.take()
            if self.at_op("("):
                return self.call(tok)
            if not _ID.match(tok.text):
                raise self.error(f"{tok.text!r} is not an Id (Ids start with a lowercase letter; "
                                 f"functions need parentheses)", tok)
            return _Ref(tok.text)
        if self.at_op("("):
            self.take()
            node = self.sum()
            self.expect(")")
            return node
        if self.at_op("["):
            raise self.error("an array [..] is allowed only as the argument of " + ", ".join(AGGREGATES))
        found = "nothing" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a number, an Id or a function, found {found}", tok)

    def call(self, name: _Tok) -> _Node:
        if name.text not in FUNCTIONS:
            raise self.error(f"{name.text}() is not a function shiftlab supports ({', '.join(FUNCTIONS)})", name)
        self.expect("(")
        args: list[_Node] = []
        if name.text in AGGREGATES and self.at_op("["):
            args.append(self.array())
        else:
            args.append(self.sum())
            while self.at_op(","):
                self.take()
                args.append(self.sum())
        self.expect(")")
        want = 2 if name.text == "FILL" else 1
        if len(args) != want:
            raise self.error(f"{name.text}() takes {want} argument{'s' if want > 1 else ''}, got {len(args)}", name)
        return _Call(name.text, tuple(args))

    def array(self) -> _Node:
        self.expect("[")
        if self.at_op("]"):
            raise self.error("an array needs at least one member")
        items = [self.sum()]
        while self.at_op(","):
            self.take()
            items.append(self.sum())
        self.expect("]")
        return _Array(tuple(items))


# --- static facts ---------------------------------------------------------


def _ids(node: _Node) -> set[str]:
    if isinstance(node, _Ref):
        return {node.id}
    if isinstance(node, _Num):
        return set()
    if isinstance(node, _Neg):
        return _ids(node.operand)
    if isinstance(node, _Bin):
        return _ids(node.left) | _ids(node.right)
    out: set[str] = set()
    for child in node.items if isinstance(node, _Array) else node.args:
        out |= _ids(child)
    return out


def _is_series(node: _Node) -> bool:
    if isinstance(node, _Ref | _Array):
        return True
    if isinstance(node, _Num):
        return False
    if isinstance(node, _Neg):
        return _is_series(node.operand)
    if isinstance(node, _Bin):
        return _is_series(node.left) or _is_series(node.right)
    if node.name in AGGREGATES:
        # Over an array: per period. Over one series: one number for the window.
        return isinstance(node.args[0], _Array)
    return _is_series(node.args[0])


# --- evaluation -----------------------------------------------------------


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _arith(op: str, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if op == "+":
        return _finite(a + b)
    if op == "-":
        return _finite(a - b)
    if op == "*":
        return _finite(a * b)
    return None if b == 0 else _finite(a / b)


def _avg(xs: list[float]) -> float:
    return sum(xs) / len(xs)


_AGG: dict[str, Callable[[list[float]], float]] = {"SUM": sum, "MAX": max, "MIN": min, "AVG": _avg}


def _aggregate(name: str, values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _finite(float(_AGG[name](present))) if present else None


def _eval(node: _Node, env: Mapping[str, Sequence[float | None]], n: int) -> Series:
    if isinstance(node, _Num):
        return [node.value] * n
    if isinstance(node, _Ref):
        series = list(env[node.id])
        if len(series) != n:
            raise ValueError(f"series {node.id!r} has {len(series)} datapoints, expected {n}")
        return series
    if isinstance(node, _Neg):
        return [None if v is None else -v for v in _eval(node.operand, env, n)]
    if isinstance(node, _Bin):
        left, right = _eval(node.left, env, n), _eval(node.right, env, n)
        return [_arith(node.op, a, b) for a, b in zip(left, right, strict=True)]
    if isinstance(node, _Array):
        raise AssertionError("arrays are evaluated by their aggregate")  # the parser guarantees it
    if node.name in AGGREGATES:
        arg = node.args[0]
        if isinstance(arg, _Array):
            members = [_eval(item, env, n) for item in arg.items]
            return [_aggregate(node.name, column) for column in zip(*members, strict=True)]
        return [_aggregate(node.name, _eval(arg, env, n))] * n
    if node.name == "ABS":
        return [None if v is None else abs(v) for v in _eval(node.args[0], env, n)]
    series, fill = _eval(node.args[0], env, n), _eval(node.args[1], env, n)
    return [f if v is None else v for v, f in zip(series, fill, strict=True)]


@dataclass(frozen=True)
class Expression:
    source: str
    ids: frozenset[str]
    returns_series: bool
    _root: _Node

    def evaluate(self, env: Mapping[str, Sequence[float | None]], length: int) -> list[float | None]:
        """The expression's value for each of `length` periods, oldest first."""
        return _eval(self._root, env, length)


def parse_expression(text: str) -> Expression:
    root = _Parser(text).parse()
    return Expression(text, frozenset(_ids(root)), _is_series(root), root)
