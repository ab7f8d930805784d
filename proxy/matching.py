"""Listener-rule conditions as compiled predicates (pure; no sockets).

ALB's case rules: host-header, http-header values and query strings match
case-insensitively; path-pattern and http-request-method are case-sensitive.
`*` matches zero or more characters, `?` exactly one; nothing else is special.
A predicate takes any object with `method`, `host`, `path`, `headers`,
`query` and `remote` (aiohttp's request has them; tests pass a dataclass).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from multidict import CIMultiDict, MultiDict

from shiftlab.proxy.config import Condition


class RequestView(Protocol):
    method: str
    host: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    remote: str | None


Predicate = Callable[[Any], bool]


@dataclass
class FakeRequest:
    """The request fields rules look at, for unit tests and `explain`."""

    method: str = "GET"
    host: str = "example.com"
    path: str = "/"
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    query: MultiDict[str] = field(default_factory=MultiDict)
    remote: str | None = "127.0.0.1"
    raw: str | None = None  # the path and query as sent (encoded), when it differs from `path`

    @property
    def raw_path(self) -> str:
        if self.raw is not None:
            return self.raw
        return self.path + ("?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else "")


def wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any_full(patterns: list[re.Pattern[str]], value: str) -> bool:
    return any(p.fullmatch(value) for p in patterns)


def values_matcher(values: list[str], ignore_case: bool) -> Callable[[str], bool]:
    """Whether a value matches any of the wildcard patterns. Rules are
    tried for every request, in order, so the usual patterns skip the regex
    engine: literals are a set lookup, `prefix*` a startswith. The regexes
    stay the reference, and the answer for anything else."""
    pats = [wildcard(v, ignore_case) for v in values]
    exact: set[str] = set()
    prefixes: list[str] = []
    for v in values:
        if "?" in v or "*" in v[:-1] or (ignore_case and not v.isascii()):
            # Other wildcards, and case folding beyond ASCII, are the regex's.
            return lambda value: _any_full(pats, value)
        if v.endswith("*"):
            prefixes.append(v[:-1].lower() if ignore_case else v[:-1])
        else:
            exact.add(v.lower() if ignore_case else v)
    starts = tuple(prefixes)

    def match(value: str) -> bool:
        if ignore_case:
            if not value.isascii():
                # Unicode case folding matches some non-ASCII characters to
                # ASCII ones (K, the Kelvin sign, to k): the regex decides.
                return _any_full(pats, value)
            value = value.lower()
        return value in exact or value.startswith(starts)

    return match


def compile_condition(cond: Condition) -> Predicate:
    cfg = cond.config()
    kind = cond.Field
    if kind == "host-header":
        host_matches = values_matcher(cfg.Values, True)

        def host(req: Any) -> bool:
            h = req.host or ""
            # Host carries the port; ALB matches the name only.
            if h.startswith("["):
                h = h[: h.find("]") + 1]
            elif h.count(":") == 1:
                h = h.partition(":")[0]
            return host_matches(h)

        return host
    if kind == "path-pattern":
        path_matches = values_matcher(cfg.Values, False)
        return lambda req: path_matches(req.path)
    if kind == "http-header":
        name = cfg.HttpHeaderName
        header_matches = values_matcher(cfg.Values, True)

        def header(req: Any) -> bool:
            return any(header_matches(v) for v in req.headers.getall(name, ()))

        return header
    if kind == "http-request-method":
        methods = frozenset(cfg.Values)
        return lambda req: req.method in methods
    if kind == "query-string":
        pairs = [
            (wildcard(kv.Key, True) if kv.Key is not None else None, wildcard(kv.Value, True))
            for kv in cfg.Values
        ]

        def query(req: Any) -> bool:
            items = req.query.items()
            return any(
                (kp is None or kp.fullmatch(k)) and vp.fullmatch(v)
                for kp, vp in pairs
                for k, v in items
            )

        return query
    if kind == "source-ip":
        nets = [ipaddress.ip_network(v, strict=False) for v in cfg.Values]

        def source(req: Any) -> bool:
            if not req.remote:
                return False
            try:
                ip = ipaddress.ip_address(req.remote)
            except ValueError:
                return False
            return any(ip in n for n in nets if n.version == ip.version)

        return source
    raise AssertionError(kind)


def compile_conditions(conds: list[Condition]) -> Predicate:
    preds = [compile_condition(c) for c in conds]
    if len(preds) == 1:
        return preds[0]
    return lambda req: all(p(req) for p in preds)


def header_predicate(names: tuple[str, ...], exact: str | None) -> Predicate:
    """The test-traffic rule: one of the header names present (with the exact value, if set)."""

    def test(req: Any) -> bool:
        headers = req.headers
        for name in names:
            if name in headers:
                return exact is None or exact in headers.getall(name)
        return False

    return test


# -- the listener's prefilter ----------------------------------------------------
#
# A rule matches only if all its conditions do, so only if its first one does;
# and a condition can match only if a cheap necessary test passes (the literal
# part of its patterns begins the value, its header is present, ...). The
# prefilter is the union of those tests over a listener's rules: when it
# fails, no rule can match and the request goes to the default rule without
# running any predicate. Most requests of a rehearsal are such requests.

Hint = tuple[str, Any]  # (kind, data): what a rule's first condition needs


def _literal_prefix(pattern: str) -> str:
    cut = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=len(pattern))
    return pattern[:cut]


def condition_hint(cond: Condition) -> Hint:
    cfg = cond.config()
    kind = cond.Field
    if kind == "host-header":
        prefixes = [_literal_prefix(v) for v in cfg.Values]
        if any(not p or not p.isascii() for p in prefixes):
            return ("always", None)
        return ("host", tuple(p.lower() for p in prefixes))
    if kind == "path-pattern":
        prefixes = [_literal_prefix(v) for v in cfg.Values]
        return ("always", None) if any(not p for p in prefixes) else ("path", tuple(prefixes))
    if kind == "http-header":
        return ("headers", (cfg.HttpHeaderName,))
    if kind == "http-request-method":
        return ("method", tuple(cfg.Values))
    if kind == "query-string":
        return ("query", None)
    return ("always", None)


def build_prefilter(hints: list[Hint]) -> Predicate | None:
    """A predicate true whenever one of the rules could match (None: always)."""
    if not hints or any(kind == "always" for kind, _ in hints):
        return None
    hosts = tuple(p for kind, data in hints if kind == "host" for p in data)
    paths = tuple(p for kind, data in hints if kind == "path" for p in data)
    headers = tuple(dict.fromkeys(n for kind, data in hints if kind == "headers" for n in data))
    methods = frozenset(m for kind, data in hints if kind == "method" for m in data)
    query = any(kind == "query" for kind, _ in hints)

    def could_match(req: Any) -> bool:
        if headers:
            h = req.headers
            for name in headers:
                if name in h:
                    return True
        if methods and req.method in methods:
            return True
        if paths or query:
            raw: str = req.raw_path
            if query and "?" in raw:
                return True
            # The rules match the decoded path: an encoded one is not judged here.
            if paths and (raw.startswith(paths) or "%" in raw):
                return True
        if hosts:
            host: str = req.host or ""
            if not host.isascii() or host.lower().startswith(hosts):
                return True
        return False

    return could_match
