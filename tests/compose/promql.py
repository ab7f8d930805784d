"""Just enough PromQL reading for the dashboard tests: which metrics an
expression selects (with its label matchers), which labels it groups by and
which functions it calls. Not a parser: a few regular expressions that the
dashboard's expressions (and anything like them) satisfy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STRING = r'"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*(" + _STRING + ")")
_GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")
_MATCHING = re.compile(r"\b(on|ignoring|group_left|group_right)\s*\([^)]*\)")  # vector matching: no grouping
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


@dataclass
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str], variables: dict[str, str]) -> bool:
        value = self.value
        for name, replacement in variables.items():
            value = value.replace(f"${name}", replacement)
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == value
        if self.op == "!=":
            return got != value
        hit = re.fullmatch(value, got) is not None  # PromQL regexes are anchored
        return hit if self.op == "=~" else not hit


@dataclass
class Query:
    selectors: list[tuple[str, list[Matcher]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # by (...)
    without: set[str] = field(default_factory=set)  # without (...)
    functions: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> set[str]:
        return {name for name, _ in self.selectors}


def parse(expr: str) -> Query:
    q = Query()
    for name, body in _SELECTOR.findall(expr):
        matchers = [Matcher(label, op, value[1:-1].encode().decode("unicode_escape"))
                    for label, op, value in _MATCHER.findall(body)]
        rest = _MATCHER.sub("", body).replace(",", "").strip()
        if rest:
            raise ValueError(f"cannot read the matchers {body!r} of {name} in {expr!r}")
        q.selectors.append((name, matchers))
    # What is left once selectors' braces, ranges and strings are blanked out:
    # functions (followed by "("), grouping clauses and bare metric names.
    rest = re.sub(r"\{[^}]*\}", "", expr)
    rest = re.sub(r"\[[^\]]*\]", "", rest)
    rest = re.sub(_STRING, '""', rest)
    for kind, labels in _GROUPING.findall(rest):
        named = {label.strip() for label in labels.split(",") if label.strip()}
        if kind == "by":
            q.grouping |= named
        else:
            q.without |= named
    rest = _GROUPING.sub("", rest)
    rest = _MATCHING.sub("", rest)
    braced = {name for name, _ in q.selectors}
    for name, call in _IDENT.findall(rest):
        if call:
            q.functions.add(name)
        elif name not in _KEYWORDS and name not in braced:
            q.selectors.append((name, []))
    return q
