"""`shiftlab simulate` as CI runs it: the real `python -m shiftlab simulate`
subprocess on AWS's walkthrough configs as they are (shared/examples), its
table, JSON, HTML chart and exit codes (0; 1 when --expect or
--max-blast-radius is not met; 2 for a bad config or scenario)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.test_cli_lint import walkthrough_config, write

REPO = Path(__file__).resolve().parents[2]


def shiftlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", "simulate", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


def rows(stdout: str) -> list[list[str]]:
    """The table's rows (after its header and rule), cells split on two spaces or more."""
    import re

    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    out = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        out.append(re.split(r"\s{2,}", line.strip()))
    return out


def test_two_walkthrough_configs_side_by_side(tmp_path: Path) -> None:
    linear = write(tmp_path, walkthrough_config("linear"), "linear.yaml")
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    res = shiftlab("-c", linear, "-c", canary, "--rps", "20", "--error-rate", "0.1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("traffic 20 req/s; green: 10% errors; 1 run(s) from seed 0")
    table = rows(res.stdout)
    assert [r[:3] for r in table] == [["linear.yaml", "LINEAR", "ROLLBACK_SUCCESSFUL"],
                                      ["canary.yaml", "CANARY", "ROLLBACK_SUCCESSFUL"]]
    assert table[0][-1] == "alarm my-service-5xx-errors"
    assert table[1][-1] == "alarm payment-service-errors"


def test_a_sweep_and_seeded_runs_in_json(tmp_path: Path) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    res = shiftlab("-c", canary, "--rps", "50", "--error-rate", "0.05", "--canary-percent", "1,5,10", "--runs", "40",
                   "--seed", "7", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["runs"], doc["seed"], doc["traffic"]) == (40, 7, "50 req/s")
    configs = doc["configurations"]
    assert [c["label"] for c in configs] == [f"canary.yaml canaryPercent={p}" for p in (1, 5, 10)]
    for c in configs:
        assert len(c["runs"]) == 40 and [r["seed"] for r in c["runs"]] == list(range(7, 47))
        assert c["blastRadius"]["median"] <= c["blastRadius"]["p95"]
        assert sum(c["outcomes"].values()) == 40
        assert "stages" not in c["runs"][0]  # many runs: one line each
    # From 5 % up, the bigger the canary, the more requests green fails before
    # the alarm sees them. At 1 % (0.5 req/s, 1.5 errors a minute) the alarm
    # over both groups (more than 5 a minute, twice) cannot see green at all:
    # the canary passes, the full shift fails everyone until the alarm trips.
    one, five, ten = (c["blastRadius"]["median"] for c in configs)
    assert five < ten < one
    assert configs[0]["timeToDetect"]["median"] > configs[1]["timeToDetect"]["median"]


def test_one_run_in_json_has_its_timeline(tmp_path: Path) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    res = shiftlab("-c", canary, "--rps", "20", "--error-rate", "0.5", "--json", cwd=tmp_path)
    run = json.loads(res.stdout)["configurations"][0]["runs"][0]
    assert run["status"] == "ROLLBACK_SUCCESSFUL"
    assert [w["percent"] for w in run["weights"] if w["traffic"] == "production"] == [5]
    assert run["triggeredAlarms"] == ["payment-service-errors"]
    assert {"t": run["detectedAt"], "alarm": "payment-service-errors", "state": "ALARM"} in run["alarmTimeline"]
    assert run["timeToDetect"] == pytest.approx(run["detectedAt"] - run["faultAt"], abs=1e-3)
    assert run["stages"][0]["stage"] == "PRE_SCALE_UP"


@pytest.mark.parametrize(("flags", "code", "unmet"), [
    (["--expect", "rollback"], 0, None),
    (["--expect", "success"], 1, "unmet: canary.yaml: 3 of 3 run(s) did not succeed"),
    (["--max-blast-radius", "1"], 1, "unmet: canary.yaml: p95 blast radius"),
    (["--expect", "rollback", "--max-blast-radius", "100000"], 0, None),
])
def test_exit_codes_for_ci(tmp_path: Path, flags: list[str], code: int, unmet: str | None) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    res = shiftlab("-c", canary, "--rps", "20", "--error-rate", "0.5", "--runs", "3", *flags, cwd=tmp_path)
    assert res.returncode == code, res.stdout + res.stderr
    if unmet:
        assert res.stderr.startswith(unmet)
    else:
        assert res.stderr == ""


def test_a_scenario_file_a_profile_and_the_html_chart(tmp_path: Path) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    (tmp_path / "traffic.csv").write_text("minute,requests\n" + "\n".join(f"{i},{1200 + 60 * i}" for i in range(30)))
    scenario = {"traffic": {"profile": "traffic.csv"},
                "metrics": [{"Namespace": "CustomApp/Payments", "MetricName": "TransactionFailureRate",
                             "blue": 0.1, "green": 2.0}],
                "green": {"startsAfterMinutes": 10}}
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    res = shiftlab("-c", canary, "--scenario", "scenario.yaml", "--html", "chart.html", "--timeline", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("traffic traffic.csv (30 min, 20..49 req/s); green: app metrics "
                                 "TransactionFailureRate (from 10 min)")
    assert rows(res.stdout)[0][-1] == "alarm payment-transaction-failure-rate"
    assert "alarm payment-transaction-failure-rate: ALARM" in res.stdout
    assert res.stdout.rstrip().endswith("chart: chart.html")
    page = (tmp_path / "chart.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "href=" not in page
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])
    states = {(r.get("data-alarm"), r.get("data-state")) for r in svg.iter("{http://www.w3.org/2000/svg}rect")}
    assert ("payment-transaction-failure-rate", "ALARM") in states


@pytest.mark.parametrize(("args", "scenario", "problem"), [
    ([], {"green": {"errorRate": 1.5}}, "scenario.green.errorRate: 1.5 is out of range 0..1"),
    ([], {"traffic": {"profile": "missing.csv"}}, "scenario.traffic.profile: cannot read 'missing.csv'"),
    ([], {"hooks": [{"hook": -1}]}, "scenario.hooks[0].hook: "),
    ([], {"hooks": [{"hook": 0}]}, "scenario.hooks[0].hook: 0 names no hook of deploymentConfiguration.lifecycleHooks "
                                   "(0 hooks)"),
    ([], {"hooks": [{"hook": 0, "stage": "LUNCH"}]}, "scenario.hooks[0].stage: "),
])
def test_a_bad_scenario_exits_2_naming_the_field(tmp_path: Path, args: list[str], scenario: dict[str, Any],
                                                 problem: str) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    res = shiftlab("-c", canary, "--scenario", "s.yaml", *args, cwd=tmp_path)
    assert res.returncode == 2
    assert f"  {problem}" in res.stderr, res.stderr


def test_a_bad_config_or_sweep_exits_2(tmp_path: Path) -> None:
    data = walkthrough_config("canary")
    canary = write(tmp_path, data, "canary.yaml")
    res = shiftlab("-c", canary, "--canary-percent", "0.01", cwd=tmp_path)
    assert res.returncode == 2
    assert "deploymentConfiguration.canaryConfiguration.canaryPercent" in res.stderr
    res = shiftlab("-c", canary, "--canary-percent", "5", "--step-percent", "10", cwd=tmp_path)
    assert res.returncode == 2 and "not both" in res.stderr


def test_readmes_example_is_real_output(tmp_path: Path) -> None:
    """README's Simulate section: its scenario parses, and its first example's
    output is what the command prints (the same seeds give the same runs)."""
    from shiftlab.simulate.scenario import load_scenario

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Simulate"):readme.index("## Configuration reference")]
    scenario = section[section.index("```yaml\n") + 8:section.index("```", section.index("```yaml\n") + 8)]
    (tmp_path / "full.yaml").write_text(scenario)
    world, _ = load_scenario(str(tmp_path / "full.yaml"))
    assert world.green.errorRate == 0.05 and world.hooks[1].approveAfterMinutes == 5
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(scenario).items()
                                                            if k in ("traffic", "blue", "green")}))
    write(tmp_path, walkthrough_config("linear"), "linear-walkthrough.yaml")
    write(tmp_path, walkthrough_config("canary"), "canary-walkthrough.yaml")
    block = section[section.index("```console\n$ shiftlab simulate ") + 11:]
    block = block[:block.index("```")]
    command, *expected = block.splitlines()
    args = command.split()[3:]  # after "$ shiftlab simulate"
    res = shiftlab(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == expected


def test_traffic_from_a_load_summary_and_a_daily_curve(tmp_path: Path) -> None:
    canary = write(tmp_path, walkthrough_config("canary"), "canary.yaml")
    (tmp_path / "load.json").write_text(json.dumps({"requests": 3000, "seconds": 60.0, "statuses": {"200": 3000}}))
    res = shiftlab("-c", canary, "--rps-from", "load.json", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["traffic"] == "load.json (1 min, 50 req/s)"
    res = shiftlab("-c", canary, "--daily", "5:100", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("traffic daily 5..100 req/s (peak at 14h, start at 10h); green: no fault")
    res = shiftlab("-c", canary, "--rps", "5", "--daily", "5:100", cwd=tmp_path)
    assert res.returncode == 2 and "give one of --rps, --rps-from and --daily" in res.stderr
