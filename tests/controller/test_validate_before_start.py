"""`shiftlab validate` refuses what `up` or a deployment would refuse later:
a bad file is refused before anything starts, and CI never mistakes a
config mistake for a rollback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.controller.support import config

REPO = Path(__file__).resolve().parents[2]


def validate(tmp_path: Path, data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "SHIFTLAB_TOKEN"}
    return subprocess.run([sys.executable, "-m", "shiftlab", "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)


def test_an_admin_api_off_loopback_needs_a_token(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    data["loadBalancer"]["Admin"] = {"Address": "0.0.0.0"}
    res = validate(tmp_path, data)
    assert res.returncode == 2, res
    assert "loadBalancer.Admin.Address: 0.0.0.0 is not a loopback address; binding there needs a token" in res.stderr
    data["loadBalancer"]["Admin"]["Token"] = "s3cret-token-for-tests"
    res = validate(tmp_path, data)
    assert res.returncode == 0, res.stderr


def test_a_lambda_arn_hook_without_a_mapping_is_refused_naming_the_hook(tmp_path: Path) -> None:
    hook = {"hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [hook]})
    res = validate(tmp_path, data)
    assert res.returncode == 2, res
    assert "deploymentConfiguration.lifecycleHooks[0].hookTargetArn" in res.stderr
    assert "has no mapping in lambdaFunctions" in res.stderr and "arn:aws:lambda" in res.stderr
    # Mapped (by name), the same hook, as AWS has it, is valid.
    res = validate(tmp_path, {**data, "lambdaFunctions": {"check": "command:true"}})
    assert res.returncode == 0, res.stderr
    for target in ("http://127.0.0.1:9/hook", "command:true"):
        hook["hookTargetArn"] = target
        res = validate(tmp_path, config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
                                               "lifecycleHooks": [hook]}))
        assert res.returncode == 0, res.stderr


def test_an_option_is_checked_as_the_files_field_would_be(tmp_path: Path) -> None:
    # --backend docker as `controller.backend: docker`: the SHIFTLAB_DOCKER_* variables are
    # checked with the file, before a stack is built.
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, {"strategy": "CANARY"})))
    env = {**os.environ, "SHIFTLAB_DOCKER_PULL": "sometimes"}
    res = subprocess.run([sys.executable, "-m", "shiftlab", "rehearse", "-c", str(path), "--backend", "docker",
                          "--load-rps", "0", "-q"], capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert res.returncode == 2, res
    assert res.stderr == (f"{path}: invalid configuration (1 problem):\n"
                          "  SHIFTLAB_DOCKER_PULL: 'sometimes' is not one of missing, never, always\n")
