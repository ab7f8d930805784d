"""An imported template rehearses: `shiftlab import cloudformation` then
`shiftlab rehearse` on the written file, real subprocesses on loopback.
The blue/green template's canary, its Lambda hook (through the stand-in the
import writes) and its 5xx alarm on the green target group (dimensions
resolved from `!GetAtt ...FullName`) drive a real deployment: a good
revision completes, one answering 5xx rolls back on that alarm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shiftlab.interop.template import load_template
from tests.helpers import free_port

TEMPLATE = Path(__file__).parent / "templates" / "ecs-bluegreen.yaml"


def shiftlab(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)


@pytest.mark.parametrize(("env", "exit_code", "status"), [
    ([], 0, "SUCCESSFUL"),
    (["--env", "ERROR_RATE=1"], 1, "ROLLBACK_SUCCESSFUL"),
])
def test_imported_template_rehearses(tmp_path: Path, env: list[str], exit_code: int, status: str) -> None:
    template = load_template(TEMPLATE)
    dc = template["Resources"]["ECSDemoService"]["Properties"]["DeploymentConfiguration"]
    dc["LifecycleHooks"] = dc["LifecycleHooks"][:1]  # the Lambda hook; not the hour-long PAUSE
    (tmp_path / "template.json").write_text(json.dumps(template))
    # staging: 2 tasks, a 50 % canary baking 2 minutes; a 1-minute bake.
    # The listeners (AWS's 80 and 8080) on free ports, beside anything else running here.
    out = shiftlab("import", "cloudformation", "template.json", "--parameter", "Environment=staging",
                   "--parameter", "BakeMinutes=1", "--listener-port", f"80={free_port()}",
                   "--listener-port", f"8080={free_port()}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # At 50 requests a second, a green answering only 5xx sends it ~25 a (scaled) minute: above the threshold, 5.
    run = shiftlab("rehearse", "-c", "shiftlab.yaml", "--time-scale", "60", "--load-rps", "50", "--timeout", "120",
                   "-q", "--json", *env, cwd=tmp_path, timeout=180)
    assert run.returncode == exit_code, run.stdout + run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["status"] == status
    assert "POST_TEST_TRAFFIC_SHIFT" in outcome["stages"]  # the Lambda hook's stage, answered by the stand-in
    if exit_code:
        assert outcome["triggeredAlarms"] == ["staging-web-5xx"]
