"""`shiftlab demo --backend docker`: blue and green as containers of the
sample image, a bad canary rolled back. The demo's containers carry the
test's owner label (SHIFTLAB_DOCKER_OWNER), so that whatever it leaves,
even when it fails or is killed, is removed; and it must leave nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.demo.support import interrupt
from tests.docker.conftest import REPO, SAMPLE_IMAGE, owned

pytestmark = pytest.mark.docker


def test_demo_with_the_docker_backend_rolls_back_a_bad_canary(docker_client: Any,
                                                              owners: Callable[[], str]) -> None:
    owner = owners()
    seen: set[str] = set()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiftlab", "demo", "--backend", "docker", "--image", SAMPLE_IMAGE,
         "--scenario", "bad-canary", "--time-scale", "120", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, start_new_session=True,
        env={**os.environ, "SHIFTLAB_DOCKER_OWNER": owner})
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the demo did not end within 90 s"
            seen.update(c.labels["io.shiftlab.colour"] for c in owned(docker_client, owner))
            time.sleep(0.2)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        interrupt(proc)  # Ctrl-C (the demo removes its containers), then SIGKILL
        if proc.stdout is not None:
            proc.stdout.close()
        # The `owners` fixture then removes whatever still carries the label.
    assert proc.returncode == 0, out
    assert "as expected: ROLLBACK_SUCCESSFUL" in out, out
    assert "ok     alarm service-5xx trips" in out, out
    assert "ok     the 5xx come from green only" in out, out
    assert "first bad response (5xx) -> production back on blue: " in out, out
    assert seen == {"blue", "green"}, f"containers seen: {seen}\n{out}"
    assert owned(docker_client, owner) == [], "the demo left containers behind"


def test_demo_with_the_docker_backend_says_when_its_image_is_missing(docker_client: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "shiftlab", "demo", "--backend", "docker", "--image",
                           "shiftlab-test/not-built:nowhere", "-q"], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert done.returncode == 1
    assert "shiftlab-test/not-built:nowhere, which is not on this machine" in done.stderr
