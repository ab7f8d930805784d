"""Every token is strong or refused (issue 10, item 2): a token of one
character, even a space, used to let the admin API bind 0.0.0.0. And a
config whose admin API or controller API would take a listener's port (or
each other's) is refused by `validate`, naming both fields."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.common.netsafety import strong_token
from shiftlab.proxy.app import Proxy
from shiftlab.proxy.config import load_balancer_from_dict
from shiftlab.settings import load_settings
from shiftlab.stack import Stack
from tests.controller.support import config
from tests.helpers import REPO, lb_config

RULE = ("a token needs at least 16 characters, no whitespace, at least 8 different characters; make one with: "
        'python3 -c "import secrets; print(secrets.token_urlsafe(24))"')


@pytest.mark.parametrize(("token", "problem"), [
    (" ", "contains whitespace"),
    ("t", "is 1 character long"),
    ("s3cret", "is 6 characters long"),
    ("abcdefghijklmno", "is 15 characters long"),
    ("0123456789abcdef ", "contains whitespace"),
    ("correct horse battery staple", "contains whitespace"),
    ("line\nbreak-0123456789", "contains whitespace"),
    ("a" * 40, "has 1 different character only"),
    ("abcabcabcabcabcabc", "has 3 different characters only"),
    ("12121212343434345656565677", "has 7 different characters only"),
])
def test_weak_tokens_are_refused_naming_the_field_and_the_rule(token: str, problem: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        strong_token(token, "controller.token")
    assert info.value.problems == [f"controller.token: the token {problem}; {RULE}"]
    # The same from the environment names the variable.
    monkeypatch.setenv("SHIFTLAB_TOKEN", token)
    with pytest.raises(ConfigError) as info:
        strong_token(None, "controller.token")
    assert info.value.problems == [f"the SHIFTLAB_TOKEN environment variable: the token {problem}; {RULE}"]


@pytest.mark.parametrize("token", ["abcdefgh12345678", secrets.token_urlsafe(24), uuid.uuid4().hex,
                                   "s3cret-token-for-tests"])
def test_strong_tokens_pass(token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    assert strong_token(token, "controller.token") == token
    assert strong_token(None, "controller.token") is None
    monkeypatch.setenv("SHIFTLAB_TOKEN", token)
    assert strong_token(None, "controller.token") == token
    assert strong_token("", "controller.token") == token  # an empty field means "not set"


@pytest.mark.parametrize("token", [" ", "t"])
def test_a_weak_token_does_not_open_the_admin_api_beyond_loopback(token: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case, where programs build a Proxy or a Stack themselves."""
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    lb = lb_config(1)
    lb["Admin"] = {"Address": "0.0.0.0", "Port": 0, "Token": token}
    with pytest.raises(ConfigError) as info:
        Proxy(load_balancer_from_dict(lb))
    assert info.value.problems[0].startswith("loadBalancer.Admin.Token: the token ")
    monkeypatch.setenv("SHIFTLAB_TOKEN", token)
    lb["Admin"].pop("Token")
    with pytest.raises(ConfigError) as info:
        Proxy(load_balancer_from_dict(lb))
    assert info.value.problems[0].startswith("the SHIFTLAB_TOKEN environment variable: the token ")


def test_a_stack_refuses_a_weak_controller_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIFTLAB_TOKEN", raising=False)
    settings = load_settings(config(tmp_path, {"strategy": "CANARY"}))
    weak = settings.controller.model_copy(update={"token": "t"})
    with pytest.raises(ConfigError) as info:
        Stack(type(settings)(settings.load_balancer, settings.time_scale, settings.service, settings.deployment,
                             settings.alarms, weak))
    assert info.value.problems[0].startswith("controller.token: the token is 1 character long")


def validate(tmp_path: Path, data: dict[str, Any], token: str | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "SHIFTLAB_TOKEN"}
    if token is not None:
        env["SHIFTLAB_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "shiftlab", "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)


def test_validate_lists_weak_tokens(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    data["loadBalancer"]["Admin"] = {"Address": "0.0.0.0", "Port": 0, "Token": " "}
    data["controller"]["token"] = "short"
    res = validate(tmp_path, data)
    assert res.returncode == 2, res
    assert f"  loadBalancer.Admin.Token: the token contains whitespace; {RULE}" in res.stderr
    assert f"  controller.token: the token is 5 characters long; {RULE}" in res.stderr
    # A weak token opens nothing: the bind is refused as if there were none.
    assert "loadBalancer.Admin.Address: 0.0.0.0 is not a loopback address; binding there needs a token" in res.stderr
    assert "Traceback" not in res.stderr

    # From the environment: one problem, though both APIs would use it.
    data = config(tmp_path, {"strategy": "CANARY"})
    res = validate(tmp_path, data, token="t")
    assert res.returncode == 2, res
    assert res.stderr.count("SHIFTLAB_TOKEN environment variable: the token is 1 character long") == 1, res.stderr

    res = validate(tmp_path, data, token=secrets.token_urlsafe(24))
    assert res.returncode == 0, res.stderr


def test_validate_refuses_an_admin_port_that_is_a_listeners(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    listener = data["loadBalancer"]["Listeners"][1]["Port"]
    data["loadBalancer"]["Admin"]["Port"] = listener
    res = validate(tmp_path, data)
    assert res.returncode == 2, res
    assert (f"  loadBalancer.Admin.Port: {listener} is also loadBalancer.Listeners[1].Port; "
            "each needs a port of its own") in res.stderr


@pytest.mark.parametrize("other", ["admin", "listener"])
def test_validate_refuses_a_controller_port_that_is_taken(tmp_path: Path, other: str) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    data["loadBalancer"]["Admin"]["Port"] = 19_090
    port, field = ((19_090, "loadBalancer.Admin.Port") if other == "admin"
                   else (data["loadBalancer"]["Listeners"][0]["Port"], "loadBalancer.Listeners[0].Port"))
    data["controller"]["port"] = port
    res = validate(tmp_path, data)
    assert res.returncode == 2, res
    assert f"  controller.port: {port} is also {field}; each needs a port of its own" in res.stderr


def test_port_0_never_collides(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    assert data["loadBalancer"]["Admin"]["Port"] == 0 and data["controller"]["port"] == 0
    res = validate(tmp_path, data)
    assert res.returncode == 0, res.stderr
