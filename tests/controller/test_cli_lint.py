"""`shiftlab lint` as CI runs it: the real `python -m shiftlab lint`
subprocess on AWS's walkthrough configs, in text, JSON and SARIF 2.1.0,
and its exit codes (0 no error, 1 errors, 2 an invalid config, as
`validate`).

SARIF 2.1.0 (OASIS): https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html; what GitHub code
scanning reads of it: https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import aws_walkthrough

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = aws_walkthrough()
BASE: dict[str, Any] = yaml.safe_load(
    resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8"))


def shiftlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


def walkthrough_config(kind: str) -> dict[str, Any]:
    """The annotated example's load balancer and service with AWS's
    walkthrough deployment configuration and alarms as they are."""
    names = {"linear": ["linear-5xx-alarm", "linear-latency-alarm"],
             "canary": ["canary-errors-alarm", "canary-business-alarm"]}[kind]
    data = dict(BASE)
    data["deploymentConfiguration"] = json.loads((EXAMPLES / f"{kind}-deployment-configuration.json").read_text())
    data["alarms"] = [json.loads((EXAMPLES / f"{n}.json").read_text()) for n in names]
    return data


def write(tmp_path: Path, data: dict[str, Any], name: str = "shiftlab.yaml") -> str:
    (tmp_path / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def with_error(tmp_path: Path) -> str:
    """The linear walkthrough with its 5xx alarm on the green target group
    alone, without LoadBalancer: ALB never publishes that (SL001, an error)."""
    data = walkthrough_config("linear")
    dims = data["alarms"][0]["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"]
    data["alarms"][0]["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] = [dims[0]]
    return write(tmp_path, data)


def test_text_report_of_the_linear_walkthrough(tmp_path: Path) -> None:
    name = write(tmp_path, walkthrough_config("linear"))
    res = shiftlab("lint", "-c", name, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr  # warnings and notes only
    lines = res.stdout.splitlines()
    text = (tmp_path / name).read_text().splitlines()
    sl003 = next(line for line in lines if " SL003 " in line)
    # file:line of the alarm's Threshold, the severity, the field path, the limit.
    where, severity, rest = sl003.split(": ", 2)
    assert severity == "warning"
    assert text[int(where.split(":")[1]) - 1].strip().startswith("Threshold:")
    assert rest.startswith("SL003 alarms[0].Threshold: alarm 'my-service-5xx-errors'")
    assert "more than 16.7 % of green's requests fail" in rest
    assert "see https://docs.aws.amazon.com/" in res.stdout
    assert lines[-1] == f"{name}: 0 error(s), 3 warning(s), 1 note(s) at 10 req/s"


def test_rps_changes_the_detection_limit(tmp_path: Path) -> None:
    name = write(tmp_path, walkthrough_config("linear"))
    res = shiftlab("lint", "-c", name, "--rps", "100", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["trafficRps"] == 100
    sl003 = next(f for f in doc["findings"] if f["rule"] == "SL003")
    assert sl003["severity"] == "note" and "more than 1.7 %" in sl003["message"]  # 10 / (100 x 60 x 10 %)


def test_json_report(tmp_path: Path) -> None:
    name = write(tmp_path, walkthrough_config("canary"))
    res = shiftlab("lint", "-c", name, "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["config"] == name
    assert doc["counts"] == {"error": 0, "warning": sum(f["severity"] == "warning" for f in doc["findings"]),
                             "note": sum(f["severity"] == "note" for f in doc["findings"])}
    rules = {f["rule"] for f in doc["findings"]}
    assert {"SL002", "SL003", "SL004", "SL006"} <= rules  # the business alarm nothing feeds; the diluted 5xx alarm
    for f in doc["findings"]:
        assert set(f) == {"rule", "severity", "path", "message", "helpUri", "line"}
        assert f["helpUri"].startswith("https://docs.aws.amazon.com/")
        assert isinstance(f["line"], int) and f["line"] >= 1


def check_sarif(doc: dict[str, Any]) -> None:
    """The SARIF 2.1.0 schema's required properties and value rules for what
    lint writes (checked by hand: no network for the schema), and what code
    scanning needs of each result."""
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    rules = driver["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    for r in rules:  # reportingDescriptor: id required; multiformatMessageString: text required
        assert isinstance(r["id"], str)
        assert isinstance(r["shortDescription"]["text"], str) and r["shortDescription"]["text"]
        assert r["helpUri"].startswith("https://")
        assert r["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
    for res in run["results"]:  # result: message required (text or id)
        assert isinstance(res["message"]["text"], str) and res["message"]["text"]
        assert res["level"] in ("none", "note", "warning", "error")
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert len(res["locations"]) == 1
        physical = res["locations"][0]["physicalLocation"]
        assert isinstance(physical["artifactLocation"]["uri"], str)
        if "region" in physical:
            assert isinstance(physical["region"]["startLine"], int) and physical["region"]["startLine"] >= 1


def test_sarif_report_with_an_error_exits_1(tmp_path: Path) -> None:
    name = with_error(tmp_path)
    res = shiftlab("lint", "-c", name, "--format", "sarif", "--output", "lint.sarif", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert res.stdout == ""
    doc = json.loads((tmp_path / "lint.sarif").read_text())
    check_sarif(doc)
    results = doc["runs"][0]["results"]
    sl001 = next(r for r in results if r["ruleId"] == "SL001")
    assert sl001["level"] == "error"
    assert "would never fire on AWS" in sl001["message"]["text"]
    location = sl001["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == name
    text = (tmp_path / name).read_text().splitlines()
    assert "AlarmName: my-service-5xx-errors" in text[location["region"]["startLine"] - 1]


def test_sarif_of_a_clean_config(tmp_path: Path) -> None:
    res = shiftlab("lint", "-c", write(tmp_path, BASE), "--format", "sarif", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    check_sarif(doc)
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["SL003"]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_errors_exit_1_in_every_format(tmp_path: Path, fmt: str) -> None:
    res = shiftlab("lint", "-c", with_error(tmp_path), "--format", fmt, cwd=tmp_path)
    assert res.returncode == 1
    assert "SL001" in res.stdout


def test_an_invalid_config_exits_2_as_validate_reports_it(tmp_path: Path) -> None:
    data = walkthrough_config("linear")
    data["deploymentConfiguration"]["linearConfiguration"]["stepPercent"] = 1  # ECS: 3..100
    name = write(tmp_path, data)
    res = shiftlab("lint", "-c", name, cwd=tmp_path)
    validate = shiftlab("validate", "-c", name, cwd=tmp_path)
    assert res.returncode == validate.returncode == 2
    assert res.stderr == validate.stderr
    assert "deploymentConfiguration.linearConfiguration.stepPercent" in res.stderr
    assert res.stdout == ""


def test_rps_must_be_positive(tmp_path: Path) -> None:
    res = shiftlab("lint", "-c", write(tmp_path, BASE), "--rps", "0", cwd=tmp_path)
    assert res.returncode == 2 and "--rps" in res.stderr


def test_the_readme_shows_the_real_output(tmp_path: Path) -> None:
    """README's lint example is this command's output on AWS's linear walkthrough."""
    readme = (REPO / "README.md").read_text()
    head = "```console\n$ shiftlab lint -c shiftlab.yaml\n"
    shown = readme.split(head, 1)[1].split("```", 1)[0]
    res = shiftlab("lint", "-c", write(tmp_path, walkthrough_config("linear")), cwd=tmp_path)
    assert res.stdout == shown


def test_traffic_from_a_recorded_profile(tmp_path: Path) -> None:
    """--rps-from: a CSV of per-minute counts, whose quietest minute (6,000
    requests: 100 req/s) sets the detection limit; or `shiftlab load --json`."""
    name = write(tmp_path, walkthrough_config("linear"))
    (tmp_path / "profile.csv").write_text("minute,requests\n10:00,30000\n10:01,6000\n10:02,12000\n")
    res = shiftlab("lint", "-c", name, "--rps-from", "profile.csv", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["trafficRps"] == 100
    assert "more than 1.7 %" in next(f for f in doc["findings"] if f["rule"] == "SL003")["message"]
    (tmp_path / "load.json").write_text(json.dumps({"requests": 100, "seconds": 20.0, "rps": 5.0}))
    res = shiftlab("lint", "-c", name, "--rps-from", "load.json", cwd=tmp_path)
    assert res.stdout.splitlines()[-1].endswith("at 5 req/s")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--rps", "5", "--rps-from", "profile.csv"], "give --rps or --rps-from, not both"),
        (["--rps-from", "profile.csv"], "profile.csv:2: 'x' is not a request count"),
    ],
)
def test_bad_traffic_options_exit_2(tmp_path: Path, args: list[str], error: str) -> None:
    (tmp_path / "profile.csv").write_text("minute,requests\n10:00,x\n")
    res = shiftlab("lint", "-c", write(tmp_path, BASE), *args, cwd=tmp_path)
    assert res.returncode == 2 and error in res.stderr
