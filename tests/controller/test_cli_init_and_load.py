"""`shiftlab init` writes a file that validates (YAML, or JSON when asked
for), and `shiftlab load` refuses what is not a URL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import aws_walkthrough

REPO = Path(__file__).resolve().parents[2]


def shiftlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("name", ["shiftlab.yaml", "shiftlab.json"])
def test_init_writes_a_file_that_validates(tmp_path: Path, name: str) -> None:
    res = shiftlab("init", name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"shiftlab up -c {name}" in res.stdout
    text = (tmp_path / name).read_text()
    data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    assert data["deploymentConfiguration"]["strategy"]
    res = shiftlab("validate", "-c", name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    again = shiftlab("init", name, cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    assert (tmp_path / name).read_text() == text


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://127.0.0.1/", "http://"])
def test_load_refuses_what_is_not_an_http_url(tmp_path: Path, url: str) -> None:
    res = shiftlab("load", "--url", url, "--duration", "1", cwd=tmp_path)
    assert res.returncode == 2
    assert "--url" in res.stderr and "is not an http(s) URL" in res.stderr


def test_validate_warns_of_an_alarm_aws_never_feeds(tmp_path: Path) -> None:
    # PutMetricAlarm accepts any dimensions; ALB publishes each metric with
    # its own (here, TargetGroup only with LoadBalancer): such an alarm never
    # gets data on AWS, and `validate` says so without refusing the file.
    assert shiftlab("init", "shiftlab.json", cwd=tmp_path).returncode == 0
    data = json.loads((tmp_path / "shiftlab.json").read_text())
    clean = shiftlab("validate", "-c", "shiftlab.json", cwd=tmp_path)
    assert clean.returncode == 0 and "warning" not in clean.stderr, clean.stderr
    for query in data["alarms"][0]["Metrics"]:
        if "MetricStat" in query:
            dims = query["MetricStat"]["Metric"]["Dimensions"]
            dims[:] = [d for d in dims if d["Name"] != "LoadBalancer"]
    (tmp_path / "shiftlab.json").write_text(json.dumps(data))
    res = shiftlab("validate", "-c", "shiftlab.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    name = data["alarms"][0]["AlarmName"]
    assert (f"shiftlab.json: warning: alarms[0] ({name}): this alarm would never fire on AWS: ALB publishes "
            f"HTTPCode_Target_5XX_Count only with a LoadBalancer dimension") in res.stderr, res.stderr


def test_validate_warns_that_nothing_feeds_a_custom_metric_alarm(tmp_path: Path) -> None:
    # The AWS walkthrough's business alarm (CustomApp/Payments), loaded as is:
    # accepted as PutMetricAlarm accepts it, and `validate` names the alarm
    # and the metric that only PutMetricData can feed.
    business = json.loads((aws_walkthrough() / "canary-business-alarm.json").read_text())
    assert shiftlab("init", "shiftlab.json", cwd=tmp_path).returncode == 0
    data = json.loads((tmp_path / "shiftlab.json").read_text())
    ecs = {**business, "AlarmName": "cpu", "Namespace": "AWS/ECS", "MetricName": "CPUUtilization"}
    data["alarms"] += [business, ecs]
    (tmp_path / "shiftlab.json").write_text(json.dumps(data))
    res = shiftlab("validate", "-c", "shiftlab.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (f"shiftlab.json: warning: alarms[1] ({business['AlarmName']}): nothing in this rehearsal feeds "
            "CustomApp/Payments TransactionFailureRate: the alarm stays INSUFFICIENT_DATA (TreatMissingData "
            "missing) unless a task publishes it with PutMetricData") in res.stderr, res.stderr
    # PutMetricData refuses AWS's namespaces: the warning does not suggest it.
    assert ("alarms[2] (cpu): nothing in this rehearsal feeds AWS/ECS CPUUtilization: the alarm stays "
            "INSUFFICIENT_DATA (TreatMissingData missing) (shiftlab computes AWS/ApplicationELB's metrics, and "
            "AWS/ECS CPUUtilization and MemoryUtilization with the dimensions ClusterName and ServiceName of this "
            "service; PutMetricData refuses AWS/ namespaces)") in res.stderr, res.stderr
