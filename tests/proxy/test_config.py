"""The loadBalancer section: every refusal names its field path and the bad
value, and the real CLI refuses a bad file with exit code 2 before anything
listens."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.common.naming import target_group_name
from shiftlab.proxy.config import load_balancer_from_dict, parse_matcher, parse_target
from tests.helpers import eventually, free_port

REPO = Path(__file__).resolve().parents[2]
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{}/73e2d6bc24d8a067"


def valid() -> dict[str, Any]:
    def rule(prio: int, path: str, action: dict[str, Any]) -> dict[str, Any]:
        return {"Priority": prio, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}}],
                "Actions": [action]}

    weighted = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": "blue", "Weight": 90}, {"TargetGroupArn": "green", "Weight": 10},
    ]}}
    return {
        "Listeners": [{
            "Port": 8080,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": "blue"}],
            "Rules": [
                rule(10, "/a", {"Type": "forward", "TargetGroupArn": "blue"}),
                rule(20, "/b", {"Type": "forward", "TargetGroupArn": "green"}),
                rule(30, "/c", weighted),
            ],
        }],
        "TargetGroups": [
            {"Name": "blue", "Targets": ["127.0.0.1:8001"]},
            {"Name": "green", "Targets": [{"Id": "127.0.0.1", "Port": 8002}]},
        ],
    }


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets a dotted path like `Listeners.0.Rules.2.Priority`."""

    def edit(d: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


L0 = "loadBalancer.Listeners[0]"
R2_TG1 = f"{L0}.Rules[2].Actions[0].ForwardConfig.TargetGroups[1]"

# (edit, the problem line expected, exactly)
CASES: list[tuple[str, Edit, str]] = [
    ("weight above 999", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups.1.Weight", 1200),
     f"{R2_TG1}.Weight: 1200 is out of range 0..999"),
    ("negative weight", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups.1.Weight", -1),
     f"{R2_TG1}.Weight: -1 is out of range 0..999"),
    ("port", _set("Listeners.0.Port", 70000), f"{L0}.Port: 70000 is out of range 1..65535"),
    ("priority 0", _set("Listeners.0.Rules.1.Priority", 0), f"{L0}.Rules[1].Priority: 0 is out of range 1..50000"),
    ("priority too high", _set("Listeners.0.Rules.1.Priority", 50001),
     f"{L0}.Rules[1].Priority: 50001 is out of range 1..50000"),
    ("duplicate priority", _set("Listeners.0.Rules.2.Priority", 10), f"{L0}.Rules[2].Priority: 10 is used by Rules[0]"),
    ("unknown group in ForwardConfig", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups.1.TargetGroupArn",
                                           "red"),
     f"{R2_TG1}.TargetGroupArn: 'red' names no target group (known: blue, green)"),
    ("unknown group in shorthand", _set("Listeners.0.DefaultActions.0.TargetGroupArn", "red"),
     f"{L0}.DefaultActions[0].TargetGroupArn: 'red' names no target group (known: blue, green)"),
    ("unknown group by ARN", _set("Listeners.0.Rules.0.Actions.0.TargetGroupArn", ARN.format("red")),
     f"{L0}.Rules[0].Actions[0].TargetGroupArn: '{ARN.format('red')}' names no target group (known: blue, green)"),
    ("group listed twice", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups.1.TargetGroupArn", "blue"),
     f"{R2_TG1}.TargetGroupArn: 'blue' is listed twice"),
    ("all weights zero", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups",
                              [{"TargetGroupArn": "blue", "Weight": 0}, {"TargetGroupArn": "green", "Weight": 0}]),
     f"{L0}.Rules[2].Actions[0].ForwardConfig.TargetGroups: at least one weight must be above 0"),
    ("stickiness duration", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroupStickinessConfig",
                                 {"Enabled": True, "DurationSeconds": 604801}),
     f"{L0}.Rules[2].Actions[0].ForwardConfig.TargetGroupStickinessConfig.DurationSeconds: "
     "604801 is out of range 1..604800"),
    ("unknown condition field", _set("Listeners.0.Rules.0.Conditions.0.Field", "host-headr"),
     f"{L0}.Rules[0].Conditions[0].Field: 'host-headr' - Input should be 'host-header', 'path-pattern', "
     "'http-header', 'http-request-method', 'query-string' or 'source-ip'"),
    ("condition without its config", _set("Listeners.0.Rules.0.Conditions.0", {"Field": "http-request-method"}),
     f"{L0}.Rules[0].Conditions[0]: Field http-request-method needs HttpRequestMethodConfig"),
    ("http-header on Host", _set("Listeners.0.Rules.0.Conditions.0", {
        "Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "HOST", "Values": ["x"]}}),
     f"{L0}.Rules[0].Conditions[0].HttpHeaderConfig.HttpHeaderName: cannot match Host with http-header; "
     "use host-header"),
    ("bad CIDR", _set("Listeners.0.Rules.0.Conditions.0", {
        "Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/33"]}}),
     f"{L0}.Rules[0].Conditions[0].SourceIpConfig.Values: '10.0.0.0/33' is not a CIDR block"),
    ("four condition values",
     _set("Listeners.0.Rules.0.Conditions.0.PathPatternConfig.Values", ["/1", "/2", "/3", "/4"]),
     f'{L0}.Rules[0].Conditions[0].PathPatternConfig.Values: ["/1", "/2", "/3", "/4"] - '
     "Value should have at most 3 items, not 4"),
    ("six target groups", _set("Listeners.0.Rules.2.Actions.0.ForwardConfig.TargetGroups",
                               [{"TargetGroupArn": "blue"}] * 6),
     f"{L0}.Rules[2].Actions[0].ForwardConfig.TargetGroups: " + json.dumps([{"TargetGroupArn": "blue"}] * 6)[:77]
     + "... - List should have at most 5 items, not 6"),
    ("redirect without config", _set("Listeners.0.DefaultActions.0", {"Type": "redirect"}),
     f"{L0}.DefaultActions[0]: Type redirect needs RedirectConfig"),
    ("unknown field", _set("TargetGroups.0.Bogus", 1), "loadBalancer.TargetGroups[0].Bogus: unknown field"),
    ("missing port", lambda d: d["Listeners"][0].pop("Port"),
     f"{L0}.Port: is required"),
    ("health interval", _set("TargetGroups.0.HealthCheckIntervalSeconds", 4),
     "loadBalancer.TargetGroups[0].HealthCheckIntervalSeconds: 4 is out of range 5..300"),
    ("healthy threshold", _set("TargetGroups.0.HealthyThresholdCount", 11),
     "loadBalancer.TargetGroups[0].HealthyThresholdCount: 11 is out of range 2..10"),
    ("timeout not below interval", _set("TargetGroups.0.HealthCheckTimeoutSeconds", 30),
     "loadBalancer.TargetGroups[0].HealthCheckTimeoutSeconds: 30 must be less than HealthCheckIntervalSeconds (30)"),
    ("matcher code", _set("TargetGroups.0.Matcher", {"HttpCode": "200,600"}),
     "loadBalancer.TargetGroups[0].Matcher.HttpCode: '600' is out of range 200..499"),
    ("matcher half range", _set("TargetGroups.0.Matcher", {"HttpCode": "200-"}),
     "loadBalancer.TargetGroups[0].Matcher.HttpCode: '200-' is not a list of codes or ranges such as 200,202 "
     "or 200-299"),
    ("target without port", _set("TargetGroups.0.Targets", ["127.0.0.1"]),
     "loadBalancer.TargetGroups[0].Targets[0]: '127.0.0.1' needs a port (host:port, or Port on the target or group)"),
    ("deregistration delay", _set("TargetGroups.0.TargetGroupAttributes",
                                  [{"Key": "deregistration_delay.timeout_seconds", "Value": "3601"}]),
     "loadBalancer.TargetGroups[0].TargetGroupAttributes[0].Value: 3601 is out of range 0..3600 "
     "for deregistration_delay.timeout_seconds"),
    ("algorithm", _set("TargetGroups.0.TargetGroupAttributes",
                       [{"Key": "load_balancing.algorithm.type", "Value": "random"}]),
     "loadBalancer.TargetGroups[0].TargetGroupAttributes[0].Value: 'random' is not one of round_robin, "
     "least_outstanding_requests, weighted_random"),
    ("idle timeout", _set("LoadBalancerAttributes", [{"Key": "idle_timeout.timeout_seconds", "Value": "4001"}]),
     "loadBalancer.LoadBalancerAttributes[0].Value: 4001 is out of range 1..4000 for idle_timeout.timeout_seconds"),
    ("duplicate group name", _set("TargetGroups.1.Name", "blue"),
     "loadBalancer.TargetGroups[1].Name: 'blue' is used by another target group"),
    ("bad group name", _set("TargetGroups.1.Name", "green_1"),
     "loadBalancer.TargetGroups[1].Name: 'green_1' must be 1..32 letters, digits or hyphens, as ELBv2 names are"),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refusal_names_field_and_value(edit: Edit, expected: str) -> None:
    data = valid()
    edit(data)
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(data)
    assert expected in info.value.problems, info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    data = valid()
    data["Listeners"][0]["Port"] = 0
    data["TargetGroups"][0]["UnhealthyThresholdCount"] = 1
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(data)
    assert info.value.problems == [
        f"{L0}.Port: 0 is out of range 1..65535",
        "loadBalancer.TargetGroups[0].UnhealthyThresholdCount: 1 is out of range 2..10",
    ]


def test_valid_config_with_arn_references() -> None:
    data = valid()
    data["TargetGroups"][1]["TargetGroupArn"] = ARN.format("green")
    data["Listeners"][0]["Rules"][1]["Actions"][0]["TargetGroupArn"] = ARN.format("green")
    fwd = data["Listeners"][0]["Rules"][2]["Actions"][0]["ForwardConfig"]
    fwd["TargetGroups"][0]["TargetGroupArn"] = "targetgroup/blue/abc"
    lb = load_balancer_from_dict(copy.deepcopy(data))
    tgs = lb.Listeners[0].Rules[2].Actions[0].ForwardConfig.TargetGroups  # type: ignore[union-attr]
    assert [t.name for t in tgs] == ["blue", "green"]
    assert lb.Listeners[0].Rules[1].Actions[0].forward().TargetGroups[0].name == "green"  # type: ignore[union-attr]


@pytest.mark.parametrize(("ref", "name"), [
    ("blue", "blue"),
    ("targetgroup/blue/123", "blue"),
    ("arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/blue/123", "blue"),
    ("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/my-green-tg/73e2d6bc24d8a067", "my-green-tg"),
])
def test_target_group_name_from_arn(ref: str, name: str) -> None:
    assert target_group_name(ref) == name


def test_defaults_match_aws() -> None:
    lb = load_balancer_from_dict(valid())
    tg = lb.TargetGroups[0]
    assert (tg.HealthCheckPath, tg.HealthCheckIntervalSeconds, tg.HealthCheckTimeoutSeconds) == ("/", 30, 5)
    assert (tg.HealthyThresholdCount, tg.UnhealthyThresholdCount, tg.Matcher.HttpCode) == (5, 2, "200")
    assert (tg.deregistration_delay, tg.algorithm, lb.idle_timeout) == (300, "round_robin", 60)
    assert lb.Admin.Address == "127.0.0.1"
    assert lb.Listeners[0].name == "8080"


@pytest.mark.parametrize(("spec", "codes"), [
    ("200", {200}),
    ("200,202", {200, 202}),
    ("200-204", {200, 201, 202, 203, 204}),
    ("200, 301-302", {200, 301, 302}),
    ("499", {499}),
])
def test_matcher(spec: str, codes: set[int]) -> None:
    assert parse_matcher(spec) == codes


@pytest.mark.parametrize(("spec", "message"), [
    ("199", "'199' is out of range 200..499"),
    ("500", "'500' is out of range 200..499"),
    ("200-500", "'200-500' is out of range 200..499"),
    ("299-200", "'299-200' is out of range 200..499"),
    ("abc", "'abc' is not a list of codes"),
    ("", "'' is not a list of codes"),
    ("200,,202", "'200,,202' is not a list of codes"),
    ("200-", "'200-' is not a list of codes"),
])
def test_matcher_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_matcher(spec)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("ident", "port", "expected"), [
    ("127.0.0.1:8001", None, ("127.0.0.1", 8001)),
    ("127.0.0.1", 8002, ("127.0.0.1", 8002)),
    ("[::1]:8003", None, ("::1", 8003)),
    ("[::1]", 8004, ("::1", 8004)),
    ("localhost:9", 80, ("localhost", 9)),
])
def test_parse_target(ident: str, port: int | None, expected: tuple[str, int]) -> None:
    assert parse_target(ident, port) == expected


@pytest.mark.parametrize("ident", ["127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", ":80", "127.0.0.1"])
def test_parse_target_refused(ident: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1|:80"):
        parse_target(ident, None)


# -- the real CLI, as a subprocess -------------------------------------------


def _run(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SHIFTLAB_TOKEN", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _bad_file(tmp_path: Path, suffix: str) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    data = valid()
    data["Listeners"][0]["Port"] = port
    data["Admin"] = {"Port": admin}
    data["Listeners"][0]["Rules"][2]["Actions"][0]["ForwardConfig"]["TargetGroups"][1]["Weight"] = 1200
    path = tmp_path / f"shiftlab{suffix}"
    doc = {"loadBalancer": data}
    path.write_text(json.dumps(doc) if suffix == ".json" else yaml.safe_dump(doc))
    return path, port, admin


WEIGHT_LINE = f"{R2_TG1}.Weight: 1200 is out of range 0..999"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_cli_validate_refuses_with_exit_2(tmp_path: Path, suffix: str) -> None:
    path, _, _ = _bad_file(tmp_path, suffix)
    res = _run([str(REPO / ".venv/bin/shiftlab"), "validate", "-c", str(path)])
    assert res.returncode == 2, res
    assert WEIGHT_LINE in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("command", [["{shiftlab}", "proxy"], ["{python}", "-m", "shiftlab", "proxy"]])
def test_cli_proxy_refuses_before_listening(tmp_path: Path, command: list[str]) -> None:
    path, port, admin = _bad_file(tmp_path, ".yaml")
    argv = [a.format(shiftlab=REPO / ".venv/bin/shiftlab", python=sys.executable) for a in command]
    res = _run([*argv, "-c", str(path)])
    assert res.returncode == 2, res
    assert WEIGHT_LINE in res.stderr
    assert "Traceback" not in res.stderr
    # Proxy.start logs "load balancer <name>: <listeners>; admin API <url>" once it listens.
    assert "admin API" not in res.stderr
    assert not _listening(port) and not _listening(admin)


def test_cli_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump({"loadBalancer": valid()}))
    res = _run([str(REPO / ".venv/bin/shiftlab"), "validate", "-c", str(path)])
    assert res.returncode == 0, res
    assert "OK" in res.stdout


def test_cli_refuses_non_loopback_admin_without_token(tmp_path: Path) -> None:
    data = valid()
    data["Listeners"][0]["Port"] = free_port()
    data["Admin"] = {"Address": "0.0.0.0", "Port": free_port()}
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump({"loadBalancer": data}))
    res = _run([str(REPO / ".venv/bin/shiftlab"), "proxy", "-c", str(path)])
    assert res.returncode == 2, res
    assert "loadBalancer.Admin.Address: 0.0.0.0 is not a loopback address" in res.stderr
    assert "admin API" not in res.stderr
    assert not _listening(data["Listeners"][0]["Port"])


async def test_cli_proxy_serves_and_stops_on_sigterm(tmp_path: Path, backends: Any) -> None:
    blue = await backends("blue-1")
    port, admin = free_port(), free_port()
    data = {"timeScale": 10, "loadBalancer": {
        "Listeners": [{"Port": port, "DefaultActions": [{"Type": "forward", "TargetGroupArn": "blue"}]}],
        "TargetGroups": [{"Name": "blue", "Targets": [blue.addr], "HealthCheckPath": "/health"}],
        "Admin": {"Port": admin},
    }}
    path = tmp_path / "shiftlab.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SHIFTLAB_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shiftlab", "proxy", "-c", str(path), cwd=REPO,
                                                env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as session:
            async def up() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/admin/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    assert proc.returncode is None, "the proxy exited"
                    return False

            await eventually(up, timeout=20, interval=0.05, what="the proxy subprocess's admin API")

            async def serving() -> bool:
                # The admin API opens first, the listeners right after (Proxy.start): CI once asked between the two.
                try:
                    async with session.get(f"http://127.0.0.1:{port}/") as resp:
                        assert (resp.status, await resp.text()) == (200, "blue-1")
                        return True
                except aiohttp.ClientConnectionError:
                    assert proc.returncode is None, "the proxy exited"
                    return False

            await eventually(serving, timeout=20, interval=0.05, what="the proxy subprocess's listener")
            async with session.get(f"http://127.0.0.1:{admin}/admin/state") as resp:
                assert (await resp.json())["TimeScale"] == 10
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"admin API" in err, "the start-up line the refusal tests rely on"
    assert not _listening(port)
