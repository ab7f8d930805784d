"""`shiftlab demo --scenario nlb` as a user runs it: a canary behind a
network load balancer, every expectation met (long-lived connections stay
on blue, new ones follow the weights, ECS's delay after each shift)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_the_nlb_demo_meets_its_expectations() -> None:
    out = subprocess.run([sys.executable, "-m", "shiftlab", "demo", "--scenario", "nlb", "--time-scale", "120"],
                         capture_output=True, text=True, timeout=180, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("ok ", "FAIL"))]
    assert len(lines) == 5 and all(ln.startswith("ok ") for ln in lines), lines
    assert "waiting the 10 minutes ECS adds behind a network load balancer (5 s at this time scale)" in out.stdout


def test_the_nlb_demo_refuses_the_docker_backend() -> None:
    out = subprocess.run([sys.executable, "-m", "shiftlab", "demo", "--scenario", "nlb", "--backend", "docker"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and "--backend" in out.stderr
