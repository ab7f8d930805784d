"""The controller API binds beyond loopback only with a token, as the proxy's
admin API does: `shiftlab up` refuses before anything starts (exit 2,
naming the field), and accepts the same address once a token is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.support import config

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "SHIFTLAB_TOKEN"}
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**base, **(env or {})})


def write(tmp_path: Path, **controller: Any) -> tuple[Path, dict[str, Any]]:
    data = config(tmp_path, {"strategy": "CANARY"})
    data["controller"].update(controller)
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10"])
def test_up_refuses_a_non_loopback_api_without_a_token(tmp_path: Path, address: str) -> None:
    path, data = write(tmp_path, address=address, port=0)
    res = run("up", "-c", str(path))
    assert res.returncode == 2, res
    assert (f"  controller.address: {address} is not a loopback address; binding there needs a token "
            f"(set controller.token or the SHIFTLAB_TOKEN environment variable)") in res.stderr
    assert "Traceback" not in res.stderr
    # Nothing started: no listener was bound, no state directory (records, task logs) was made.
    assert all(free(ls["Port"]) for ls in data["loadBalancer"]["Listeners"])
    assert not Path(data["controller"]["stateDir"]).exists()
    # validate says the same.
    res = run("validate", "-c", str(path))
    assert res.returncode == 2 and "controller.address: " + address + " is not a loopback address" in res.stderr


def test_a_token_from_the_file_or_the_environment_allows_it(tmp_path: Path) -> None:
    path, _ = write(tmp_path, address="0.0.0.0", token="s3cret-token-for-tests")
    res = run("validate", "-c", str(path))
    assert res.returncode == 0, res.stderr
    path, _ = write(tmp_path, address="0.0.0.0")
    res = run("validate", "-c", str(path), env={"SHIFTLAB_TOKEN": "s3cret-token-for-tests"})
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(tmp_path: Path, address: str) -> None:
    path, _ = write(tmp_path, address=address)
    res = run("validate", "-c", str(path))
    assert res.returncode == 0, res.stderr
