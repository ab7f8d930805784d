"""Listener-rule conditions, as pure predicates: one table per condition type
with ALB's case rules and `*` / `?` wildcards."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import unquote

import pytest
from multidict import CIMultiDict, MultiDict

from shiftlab.proxy.config import Condition
from shiftlab.proxy.matching import (
    FakeRequest,
    build_prefilter,
    compile_condition,
    compile_conditions,
    condition_hint,
    header_predicate,
    values_matcher,
    wildcard,
)


def cond(data: dict[str, Any]) -> Condition:
    return Condition.model_validate(data)


def host(*values: str) -> Condition:
    return cond({"Field": "host-header", "HostHeaderConfig": {"Values": list(values)}})


def path(*values: str) -> Condition:
    return cond({"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}})


def header(name: str, *values: str) -> Condition:
    return cond({"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": name, "Values": list(values)}})


def method(*values: str) -> Condition:
    return cond({"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": list(values)}})


def query(*pairs: tuple[str | None, str]) -> Condition:
    vals = [{"Value": v} if k is None else {"Key": k, "Value": v} for k, v in pairs]
    return cond({"Field": "query-string", "QueryStringConfig": {"Values": vals}})


def source(*cidrs: str) -> Condition:
    return cond({"Field": "source-ip", "SourceIpConfig": {"Values": list(cidrs)}})


@pytest.mark.parametrize(("pattern", "request_host", "expected"), [
    ("example.com", "example.com", True),
    ("example.com", "EXAMPLE.COM", True),  # host-header is case-insensitive
    ("Example.COM", "example.com", True),
    ("example.com", "example.com:8080", True),  # the port is not part of the name
    ("example.com", "www.example.com", False),
    ("*.example.com", "www.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False),
    ("*example.com", "example.com", True),  # `*` is zero or more characters
    ("api?.example.com", "api1.example.com", True),
    ("api?.example.com", "api.example.com", False),  # `?` is exactly one character
    ("api?.example.com", "api12.example.com", False),
    ("a.b", "axb", False),  # `.` is not special
    ("[::1]", "[::1]:80", True),
])
def test_host_header(pattern: str, request_host: str, expected: bool) -> None:
    assert compile_condition(host(pattern))(FakeRequest(host=request_host)) is expected


def test_host_header_any_of_three_values() -> None:
    pred = compile_condition(host("a.com", "b.com", "c.com"))
    assert [pred(FakeRequest(host=h)) for h in ("a.com", "c.com", "d.com")] == [True, True, False]


@pytest.mark.parametrize(("pattern", "request_path", "expected"), [
    ("/api", "/api", True),
    ("/api", "/API", False),  # path-pattern is case-sensitive
    ("/API/*", "/api/x", False),
    ("/api/*", "/api/", True),
    ("/api/*", "/api/v1/users", True),
    ("/api/*", "/api", False),
    ("/img/*.png", "/img/a/b.png", True),
    ("/img/*.png", "/img/a.PNG", False),
    ("/v?/x", "/v1/x", True),
    ("/v?/x", "/v/x", False),
    ("/v?/x", "/v10/x", False),
    ("*", "/anything", True),
    ("/a+b", "/a+b", True),  # regex metacharacters are literal
    ("/a+b", "/aab", False),
    ("/(x)", "/(x)", True),
])
def test_path_pattern(pattern: str, request_path: str, expected: bool) -> None:
    assert compile_condition(path(pattern))(FakeRequest(path=request_path)) is expected


def test_path_pattern_never_sees_the_query() -> None:
    # aiohttp's request.path excludes the query; the predicate must use only it.
    pred = compile_condition(path("/search"))
    assert pred(FakeRequest(path="/search", query=MultiDict(q="x"))) is True
    assert compile_condition(path("*q=x*"))(FakeRequest(path="/search", query=MultiDict(q="x"))) is False


@pytest.mark.parametrize(("name", "pattern", "headers", "expected"), [
    ("X-Env", "canary", {"X-Env": "canary"}, True),
    ("X-Env", "canary", {"x-env": "CANARY"}, True),  # name and value case-insensitive
    ("x-env", "CaNaRy", {"X-ENV": "canary"}, True),
    ("X-Env", "canary", {"X-Env": "canary2"}, False),
    ("X-Env", "can*", {"X-Env": "canary2"}, True),
    ("X-Env", "c?nary", {"X-Env": "canary"}, True),
    ("X-Env", "c?nary", {"X-Env": "cnary"}, False),
    ("X-Env", "*", {"X-Env": ""}, True),
    ("X-Env", "canary", {}, False),
    ("X-Env", "canary", {"X-Other": "canary"}, False),
    ("User-Agent", "*Mobile*", {"User-Agent": "Mozilla/5.0 (iPhone; Mobile)"}, True),
])
def test_http_header(name: str, pattern: str, headers: dict[str, str], expected: bool) -> None:
    req = FakeRequest(headers=CIMultiDict(headers))
    assert compile_condition(header(name, pattern))(req) is expected


def test_http_header_any_repeated_value_matches() -> None:
    req = FakeRequest(headers=CIMultiDict([("X-Env", "blue"), ("X-Env", "green")]))
    assert compile_condition(header("X-Env", "green"))(req) is True


@pytest.mark.parametrize(("allowed", "request_method", "expected"), [
    (["GET"], "GET", True),
    (["GET"], "get", False),  # method is case-sensitive
    (["get"], "GET", False),
    (["GET", "HEAD"], "HEAD", True),
    (["POST"], "GET", False),
    (["CUSTOM_VERB"], "CUSTOM_VERB", True),
])
def test_http_request_method(allowed: list[str], request_method: str, expected: bool) -> None:
    assert compile_condition(method(*allowed))(FakeRequest(method=request_method)) is expected


@pytest.mark.parametrize(("pairs", "qs", "expected"), [
    ([("version", "v1")], {"version": "v1"}, True),
    ([("version", "v1")], {"VERSION": "V1"}, True),  # key and value case-insensitive
    ([("version", "v1")], {"version": "v2"}, False),
    ([("version", "v*")], {"version": "v2"}, True),
    ([("ver?ion", "v1")], {"version": "v1"}, True),
    ([(None, "v1")], {"anything": "v1"}, True),  # no key: any key with that value
    ([(None, "v1")], {"anything": "v2"}, False),
    ([("version", "v1")], {}, False),
    ([("a", "1"), ("b", "2")], {"b": "2"}, True),  # any pair matches
    ([("a", "*")], {"a": ""}, True),
])
def test_query_string(pairs: list[tuple[str | None, str]], qs: dict[str, str], expected: bool) -> None:
    req = FakeRequest(query=MultiDict(qs))
    assert compile_condition(query(*pairs))(req) is expected


@pytest.mark.parametrize(("cidrs", "remote", "expected"), [
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "11.1.2.3", False),
    (["192.168.1.7/32"], "192.168.1.7", True),
    (["192.168.1.7/32"], "192.168.1.8", False),
    (["127.0.0.1/32", "10.0.0.0/8"], "10.9.9.9", True),
    (["2001:db8::/32"], "2001:db8::1", True),
    (["2001:db8::/32"], "2001:db9::1", False),
    (["::1/128"], "::1", True),
    (["0.0.0.0/0"], "::1", False),  # an IPv4 block never matches an IPv6 peer
    (["::/0"], "127.0.0.1", False),
    (["10.0.0.0/8"], None, False),
    (["10.0.0.0/8"], "not-an-ip", False),
])
def test_source_ip(cidrs: list[str], remote: str | None, expected: bool) -> None:
    assert compile_condition(source(*cidrs))(FakeRequest(remote=remote)) is expected


def test_source_ip_uses_the_peer_not_x_forwarded_for() -> None:
    req = FakeRequest(remote="127.0.0.1", headers=CIMultiDict({"X-Forwarded-For": "10.0.0.1"}))
    assert compile_condition(source("10.0.0.0/8"))(req) is False


def test_legacy_values_form_for_host_and_path() -> None:
    pred = compile_condition(cond({"Field": "path-pattern", "Values": ["/old/*"]}))
    assert pred(FakeRequest(path="/old/x")) is True
    pred = compile_condition(cond({"Field": "host-header", "Values": "legacy.example"}))
    assert pred(FakeRequest(host="LEGACY.example")) is True


def test_all_conditions_of_a_rule_must_match() -> None:
    pred = compile_conditions([path("/api/*"), method("POST"), header("X-Env", "canary")])
    canary: CIMultiDict[str] = CIMultiDict({"X-Env": "canary"})
    assert pred(FakeRequest(path="/api/x", method="POST", headers=canary)) is True
    assert pred(FakeRequest(path="/web", method="POST", headers=canary)) is False
    assert pred(FakeRequest(path="/api/x", method="GET", headers=canary)) is False
    assert pred(FakeRequest(path="/api/x", method="POST")) is False


@pytest.mark.parametrize(("names", "exact", "headers", "expected"), [
    (("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test"), None,
     {"x-amzn-ecs-blue-green-test": "1"}, True),
    (("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test"), None,
     {"X-Amazon-ECS-blue-green-test": ""}, True),  # presence is enough, any spelling of case
    (("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test"), None, {"x-other": "1"}, False),
    (("x-test",), "yes", {"X-Test": "yes"}, True),
    (("x-test",), "yes", {"X-Test": "no"}, False),
    (("x-test",), "yes", {"X-Test": "YES"}, False),  # the exact match is exact
])
def test_test_traffic_header(names: tuple[str, ...], exact: str | None, headers: dict[str, str],
                             expected: bool) -> None:
    assert header_predicate(names, exact)(FakeRequest(headers=CIMultiDict(headers))) is expected


def test_wildcard_is_anchored_and_dotall() -> None:
    assert wildcard("a*", False).fullmatch("a\nb")
    assert not wildcard("a", False).fullmatch("ba")


KELVIN, LONG_S = "\u212a", "\u017f"  # non-ASCII letters that Unicode case folding matches to k and s


@pytest.mark.parametrize("ignore_case", [True, False], ids=["case-insensitive", "case-sensitive"])
def test_fast_matching_agrees_with_the_wildcard_regex(ignore_case: bool) -> None:
    """Literals and `prefix*` skip the regex engine; the regex stays the reference."""
    rng = random.Random(7)
    alphabet = ["a", "B", "k", "K", "s", "/", ".", KELVIN, LONG_S, "é", "*", "?", "\n"]
    pattern_sets = [["/api/*"], ["svc.example.com"], ["A*", "b"], ["*"], [""], ["x?z"], ["é*"], ["a*b"],
                    ["K", "s"], [KELVIN], ["/static/*", "/index.html"]]
    for _ in range(300):
        stem = "".join(rng.choice(alphabet[:10]) for _ in range(rng.randrange(4)))
        pattern_sets.append([stem + rng.choice(["", "*"])])
    values = ["", "/api/", "/API/x", "SVC.example.COM", "ab", "Ab", "b", "B", "xyz", "é", "É1", "k", "K", "S",
              KELVIN, LONG_S, "/static/a\nb", "/index.html"]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(300)]
    for patterns in pattern_sets:
        fast = values_matcher(patterns, ignore_case)
        regexes = [wildcard(p, ignore_case) for p in patterns]
        for v in values:
            assert fast(v) == any(r.fullmatch(v) for r in regexes), (patterns, v)


# -- the listener's prefilter ------------------------------------------------------

HOSTS = ["a.com", "A.com", "b.org", "api.a.com", "x", "b\u212a.org", "a.com:8080"]
PATHS = ["/", "/api", "/api/v1/x", "/static/a.png", "/API/v1", "/a%2Fb", "/s?x=1", "/caf%C3%A9"]
HOST_PATTERNS = ["a.com", "*.a.com", "api.*", "b?org", "A.COM", "x*", "bk.org"]
PATH_PATTERNS = ["/api/*", "/static/*.png", "/", "/a/b", "*", "/s", "/API*", "/café"]


def random_condition(rng: random.Random) -> Condition:
    kind = rng.randrange(6)
    if kind == 0:
        return host(*rng.sample(HOST_PATTERNS, rng.randint(1, 3)))
    if kind == 1:
        return path(*rng.sample(PATH_PATTERNS, rng.randint(1, 3)))
    if kind == 2:
        return header(rng.choice(["X-Tenant", "x-canary"]), rng.choice(["a", "b*", "*"]))
    if kind == 3:
        return method(*rng.sample(["GET", "POST", "PUT"], rng.randint(1, 2)))
    if kind == 4:
        return query((rng.choice([None, "q"]), rng.choice(["x", "*"])))
    return source(rng.choice(["127.0.0.0/8", "10.0.0.0/8"]))


def random_request(rng: random.Random) -> FakeRequest:
    raw = rng.choice(PATHS)
    path_only, _, q = raw.partition("?")
    headers: CIMultiDict[str] = CIMultiDict()
    if rng.random() < 0.3:
        headers[rng.choice(["X-Tenant", "X-Canary", "x-other"])] = rng.choice(["a", "bb", "c"])

    key, _, value = q.partition("=")
    return FakeRequest(method=rng.choice(["GET", "POST", "DELETE"]), host=rng.choice(HOSTS), path=unquote(path_only),
                       headers=headers, query=MultiDict([(key, value)]) if q else MultiDict(),
                       remote=rng.choice(["127.0.0.1", "192.168.1.2"]), raw=raw)


@pytest.mark.parametrize("seed", range(20))
def test_the_prefilter_never_turns_away_a_request_a_rule_matches(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        rules = [[random_condition(rng) for _ in range(rng.randint(1, 2))] for _ in range(rng.randint(1, 6))]
        prefilter = build_prefilter([condition_hint(r[0]) for r in rules])
        preds = [compile_conditions(r) for r in rules]
        for _ in range(30):
            req = random_request(rng)
            if any(p(req) for p in preds):
                assert prefilter is None or prefilter(req), (rules, req)


def test_the_prefilter_turns_away_what_no_rule_can_match() -> None:
    rules = [path("/api/v1/*", "/static1/*"), host("svc1.example.com"), header("X-Tenant", "tenant-1")]
    prefilter = build_prefilter([condition_hint(c) for c in rules])
    assert prefilter is not None
    assert prefilter(FakeRequest(host="127.0.0.1:8080", path="/")) is False
    assert prefilter(FakeRequest(host="svc1.example.com:80", path="/")) is True
    assert prefilter(FakeRequest(path="/api/v1/users")) is True
    assert prefilter(FakeRequest(headers=CIMultiDict({"x-tenant": "z"}))) is True
    # A condition it cannot judge cheaply (source-ip, a pattern starting with a wildcard) turns it off.
    assert build_prefilter([condition_hint(c) for c in [*rules, source("10.0.0.0/8")]]) is None
    assert build_prefilter([condition_hint(path("*.png"))]) is None
