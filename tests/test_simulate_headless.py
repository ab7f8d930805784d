"""`shiftlab simulate` of a headless service (neither loadBalancers nor
serviceConnectConfiguration): the same machine, no request traffic.

ECS runs a headless service's blue/green deployment with every stage and
hook, alarms and rollback, "but Amazon ECS doesn't manage the traffic shift
automatically"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html):
which revision works is the activation hook's doing (controller/activation.py).
So the fault that matters is the consumers' own metric (MessagesFailed, EMF)
and crashes; the report's request columns say n/a (JSON: null) rather than
0, and the timeline shows which revision is active instead of weights.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.settings import load_settings
from shiftlab.simulate import chart, report
from shiftlab.simulate.engine import RunResult, activation_hooks, run
from shiftlab.simulate.scenario import load_scenario

EXAMPLE_PATH = Path(str(resources.files("shiftlab").joinpath("examples/headless.yaml")))
EXAMPLE: dict[str, Any] = yaml.safe_load(EXAMPLE_PATH.read_text(encoding="utf-8"))
FAILING = [{"Namespace": "WorkQueue", "MetricName": "MessagesFailed", "blue": 0, "green": 0.3, "perRequest": True}]
HEALTHY = [{"Namespace": "WorkQueue", "MetricName": "MessagesFailed", "blue": 0, "perRequest": True}]


def simulate(data: dict[str, Any] | None = None, seed: int = 1, **world: Any) -> RunResult:
    world.setdefault("traffic", {"rps": 20})
    scenario, traffic = load_scenario(None, world)
    return run(load_settings(copy.deepcopy(data or EXAMPLE)), scenario, traffic, seed=seed)


def test_green_failing_messages_trips_the_alarm_and_rolls_back() -> None:
    r = simulate(metrics=FAILING)
    assert r.headless and r.status == "ROLLBACK_SUCCESSFUL"
    assert r.detected_by == "alarm queue-consumer-failures"
    # Green works once the activation hook runs at PRODUCTION_TRAFFIC_SHIFT; the rollback's call puts blue back.
    assert [a["active"] for a in r.activations] == [["2"], ["1"]]
    assert all(a["by"] == "hook 0 at PRODUCTION_TRAFFIC_SHIFT" for a in r.activations)
    assert r.fault_at == r.activations[0]["t"]  # green's fault shows once green works, not before
    assert r.back_on_blue_at == r.activations[1]["t"]
    assert r.time_to_detect is not None and r.time_to_rollback is not None
    assert r.weights == [] and r.requests == r.green_requests == r.green_failed == 0


def test_a_healthy_green_is_activated_and_the_deployment_succeeds() -> None:
    r = simulate(metrics=HEALTHY)
    assert r.status == "SUCCESSFUL" and r.fault_at is None and r.detected_by is None
    assert [a["active"] for a in r.activations] == [["2"]]


def test_a_green_standing_by_shows_no_fault() -> None:
    """Without an activation hook nothing activates green: its failures never
    show (a standing-by consumer takes no message), as on AWS."""
    data = copy.deepcopy(EXAMPLE)
    data["deploymentConfiguration"]["lifecycleHooks"] = []
    r = simulate(data, metrics=FAILING)
    assert r.status == "SUCCESSFUL" and r.activations == [] and r.fault_at is None


def test_a_lambda_hook_whose_stand_in_is_the_activation_hook_activates() -> None:
    data = copy.deepcopy(EXAMPLE)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:activate"
    data["deploymentConfiguration"]["lifecycleHooks"] = [
        {"hookTargetArn": arn, "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]
    data["lambdaFunctions"] = {arn: "command:{python} -m shiftlab.activation_hook"}
    assert activation_hooks(load_settings(copy.deepcopy(data))) == {0}
    assert simulate(data, metrics=FAILING).status == "ROLLBACK_SUCCESSFUL"


def test_rolling_works_the_new_revision_as_it_comes_up() -> None:
    data = copy.deepcopy(EXAMPLE)
    data["deploymentConfiguration"] = {"strategy": "ROLLING", "alarms": data["deploymentConfiguration"]["alarms"]}
    r = simulate(data, metrics=FAILING)
    assert r.strategy == "ROLLING" and r.rolled_back
    assert r.activations[0]["active"] == ["1", "2"] and r.activations[-1]["active"] == ["1"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_report_says_n_a_for_requests(seed: int) -> None:
    runs = [simulate(metrics=FAILING, seed=seed)]
    s = report.summarize("headless", runs)
    row = report.table([s]).splitlines()[2].split()
    assert row.count("n/a") == 2  # green req, failed (blast)
    doc = report.summary_json(s)
    assert doc["greenRequests"] is None and doc["blastRadius"] is None and doc["requests"] is None
    one = report.run_json(runs[0], detail=True)
    assert one["requests"] is None and one["greenFailed"] is None and "weights" not in one
    text = report.timeline(runs[0])
    assert "active: green (revision 2), by hook 0 at PRODUCTION_TRAFFIC_SHIFT" in text
    assert "active: blue (revision 1)" in text and "% green" not in text
    page = chart.html([s], runs)
    assert "green active (headless" in page


def test_the_command_simulates_the_headless_example(tmp_path: Path) -> None:
    for metrics, expect, status in ((FAILING, "rollback", "ROLLBACK_SUCCESSFUL"), (HEALTHY, "success", "SUCCESSFUL")):
        scenario = tmp_path / f"{expect}.yaml"
        scenario.write_text(yaml.safe_dump({"traffic": {"rps": 20}, "metrics": metrics}))
        out = subprocess.run([sys.executable, "-m", "shiftlab", "simulate", "-c", str(EXAMPLE_PATH), "--scenario",
                              str(scenario), "--expect", expect, "--timeline"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr + out.stdout
        assert "headless: no request traffic" in out.stdout and status in out.stdout
        assert "n/a" in out.stdout and "active: green (revision 2)" in out.stdout
        as_json = subprocess.run([sys.executable, "-m", "shiftlab", "simulate", "-c", str(EXAMPLE_PATH),
                                  "--scenario", str(scenario), "--json"],
                                 capture_output=True, text=True, timeout=120, check=False)
        doc = json.loads(as_json.stdout)["configurations"][0]
        assert doc["blastRadius"] is None and doc["runs"][0]["status"] == status


def test_readmes_headless_example_is_the_commands_output(tmp_path: Path) -> None:
    """README's Simulate section: the headless example's table and timeline are real output."""
    from tests.helpers import REPO

    text = (REPO / "README.md").read_text()
    start = text.index("$ cat failing.yaml")
    block = text[start:text.index("```", start)].splitlines()
    (tmp_path / "failing.yaml").write_text("\n".join(block[1:3]) + "\n")
    (tmp_path / "headless.yaml").write_text(EXAMPLE_PATH.read_text())
    out = subprocess.run([sys.executable, "-m", "shiftlab", "simulate", "-c", "headless.yaml", "--scenario",
                          "failing.yaml", "--runs", "50", "--timeline", "--expect", "rollback"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr
    shown = block[4:8]
    assert out.stdout.splitlines()[:4] == shown
    for line in block[9:]:
        if line.strip() and line != "...":
            assert line in out.stdout.splitlines(), line
