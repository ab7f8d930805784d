"""The embedded metric format, as CloudWatch Logs extracts it: the
specification's example and its rules as table tests, then a task that
logs with the real `aws-embedded-metrics` library, its metric in the store.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.emf import EmfError, EmfTailer, parse
from shiftlab.controller.metricstore import CustomMetrics, custom_stat, metric_key
from tests.helpers import eventually

# The specification's example document ("Example").
SPEC_EXAMPLE: dict[str, Any] = {
    "_aws": {
        "Timestamp": 1574109732004,
        "CloudWatchMetrics": [{
            "Namespace": "lambda-function-metrics",
            "Dimensions": [["functionVersion"]],
            "Metrics": [{"Name": "time", "Unit": "Milliseconds", "StorageResolution": 60}],
        }],
    },
    "functionVersion": "$LATEST",
    "time": 100,
    "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee",
}
WALL = 1574109732.004  # the example's time, as the wall clock when it was logged


def extract(doc: Any, wall: float = WALL) -> list[Any]:
    line = doc if isinstance(doc, str) else json.dumps(doc)
    return parse(line, wall, lambda at: at, lambda at, resolution: at)


def test_the_specifications_example_becomes_one_metric_with_its_dimension() -> None:
    [point] = extract(SPEC_EXAMPLE)
    assert point.key == metric_key("lambda-function-metrics", "time", [("functionVersion", "$LATEST")])
    assert point.entry.unit == "Milliseconds"
    assert (point.entry.count, point.entry.total) == (1.0, 100.0)
    assert point.entry.at == pytest.approx(1574109732.004)


def with_changes(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SPEC_EXAMPLE)
    change(doc)
    return doc


def directive(doc: dict[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = doc["_aws"]["CloudWatchMetrics"][0]
    return d


@pytest.mark.parametrize("change, expected", [
    # "Values ... MUST be ... a number or an array of numbers": each value is a sample.
    (lambda d: d.update(time=[1, 5, 7]), (3.0, 13.0, 1.0, 7.0)),
    # Several dimension sets: one metric each.
    (lambda d: (directive(d).update(Dimensions=[["functionVersion"], []])), (1.0, 100.0, 100.0, 100.0)),
    # Unit and StorageResolution are optional.
    (lambda d: directive(d).update(Metrics=[{"Name": "time"}]), (1.0, 100.0, 100.0, 100.0)),
    # Members not recognized by the specification are ignored.
    (lambda d: d["_aws"].update(LogGroupName="x"), (1.0, 100.0, 100.0, 100.0)),
])
def test_valid_documents(change: Any, expected: tuple[float, float, float, float]) -> None:
    points = extract(with_changes(change))
    assert points
    e = points[0].entry
    assert (e.count, e.total, e.low, e.high) == expected


def test_two_dimension_sets_make_two_metrics_and_no_dimension_set_one_without_dimensions() -> None:
    keys = [p.key for p in extract(with_changes(lambda d: directive(d).update(Dimensions=[["functionVersion"], []])))]
    assert keys == [metric_key("lambda-function-metrics", "time", [("functionVersion", "$LATEST")]),
                    metric_key("lambda-function-metrics", "time", [])]
    # aws-embedded-metrics writes "Dimensions": [] after reset_dimensions(False): a metric without dimensions.
    [point] = extract(with_changes(lambda d: directive(d).update(Dimensions=[])))
    assert point.key == metric_key("lambda-function-metrics", "time", [])


@pytest.mark.parametrize("line", [
    "plain text log line",
    '{"level": "info", "msg": "a JSON log without _aws"}',
    "[1, 2, 3]",
    "{not json",
    "",
])
def test_lines_that_are_not_embedded_metric_documents_are_logs(line: str) -> None:
    assert extract(line) == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(_aws=[]), "_aws"),
    (lambda d: d["_aws"].pop("Timestamp"), "_aws.Timestamp"),
    (lambda d: d["_aws"].update(Timestamp="yesterday"), "_aws.Timestamp"),
    (lambda d: d["_aws"].update(Timestamp=1574109732004 - 15 * 86_400_000), "_aws.Timestamp"),
    (lambda d: d["_aws"].update(Timestamp=1574109732004 + 3 * 3_600_000), "_aws.Timestamp"),
    (lambda d: d["_aws"].pop("CloudWatchMetrics"), "_aws.CloudWatchMetrics"),
    (lambda d: d["_aws"].update(CloudWatchMetrics={}), "_aws.CloudWatchMetrics"),
    (lambda d: directive(d).pop("Namespace"), "CloudWatchMetrics[0].Namespace"),
    (lambda d: directive(d).update(Namespace=""), "CloudWatchMetrics[0].Namespace"),
    (lambda d: directive(d).pop("Dimensions"), "CloudWatchMetrics[0].Dimensions"),
    (lambda d: directive(d).pop("Metrics"), "CloudWatchMetrics[0].Metrics"),
    # "A DimensionSet MUST NOT contain more than 30 dimension keys."
    (lambda d: (d.update({f"d{i}": "v" for i in range(31)}),
                directive(d).update(Dimensions=[[f"d{i}" for i in range(31)]])), "Dimensions[0]"),
    # Every referenced dimension is a target member, and its value a string.
    (lambda d: d.pop("functionVersion"), "Dimensions[0][0]"),
    (lambda d: d.update(functionVersion=3), "functionVersion"),
    # "MetricDirective ... MUST NOT contain more than 100 MetricDefinition objects."
    (lambda d: (d.update({f"m{i}": 1 for i in range(101)}),
                directive(d).update(Metrics=[{"Name": f"m{i}"} for i in range(101)])), "Metrics"),
    (lambda d: d.pop("time"), "Metrics[0].Name"),
    (lambda d: d.update(time="100"), "time"),
    (lambda d: d.update(time=True), "time"),
    (lambda d: d.update(time=[]), "time"),
    # An array holds at most 100 values.
    (lambda d: d.update(time=list(range(101))), "time"),
    (lambda d: d.update(time=[1, "2"]), "time[1]"),
    (lambda d: directive(d).update(Metrics=[{"Name": "time", "Unit": "Millis"}]), "Metrics[0].Unit"),
    (lambda d: directive(d).update(Metrics=[{"Name": "time", "StorageResolution": 5}]),
     "Metrics[0].StorageResolution"),
    (lambda d: directive(d).update(Metrics=[{"Unit": "Count"}]), "Metrics[0].Name"),
])
def test_invalid_documents_are_refused_naming_the_member(change: Any, where: str) -> None:
    with pytest.raises(EmfError, match=rf"{where.replace('[', '.').replace(']', '.')}"):
        extract(with_changes(change))


def test_a_document_over_the_log_event_limit_is_refused() -> None:
    doc = with_changes(lambda d: d.update(padding="x" * (1024 * 1024)))
    with pytest.raises(EmfError, match="log event"):
        extract(doc)


def test_the_number_nan_is_not_a_metric_value() -> None:
    with pytest.raises(EmfError, match="time"):
        extract(json.dumps(SPEC_EXAMPLE).replace('"time": 100', '"time": NaN'))


# -- the tailer, reading a real task's output ---------------------------------------------------------------------

EMF_TASK = """
import time
from aws_embedded_metrics import metric_scope

@metric_scope
def publish(metrics):
    metrics.set_namespace("CustomApp/Payments")
    metrics.reset_dimensions(False)
    metrics.put_metric("TransactionFailureRate", 0.9, "None")

print("starting", flush=True)
print('{"_aws": {"Timestamp": "not a number"}}', flush=True)
for _ in range(3):
    publish()
print("done", flush=True)
"""


async def test_a_task_logging_with_aws_embedded_metrics_feeds_the_store(tmp_path: Path) -> None:
    """The real library in a task, writing to stdout as it does with
    AWS_EMF_ENVIRONMENT=Local; its output goes to the task's log file as
    the process backend keeps it. One invalid line is counted, not stored."""
    logs = tmp_path / "logs"
    logs.mkdir()
    task_id = "a" * 32
    script = tmp_path / "emf_task.py"
    script.write_text(EMF_TASK)
    out = os.open(logs / f"{task_id}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=out, stderr=out,
                                                    env={"AWS_EMF_ENVIRONMENT": "Local", "PATH": "/usr/bin"})
    finally:
        os.close(out)
    assert await proc.wait() == 0
    custom = CustomMetrics(3600.0)
    tailer = EmfTailer(logs, custom, time.time)
    key = metric_key("CustomApp/Payments", "TransactionFailureRate", [])

    async def read() -> bool:
        tailer.tick([(task_id, True)])
        await tailer.wait()
        return len(custom.entries(key)) == 3

    await eventually(read, timeout=10)
    assert custom_stat(custom.entries(key), "Average") == pytest.approx(0.9)
    assert tailer.rejected == 1
    assert tailer.extracted == 3


async def test_a_line_split_across_reads_is_read_whole(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    task_id = "b" * 32
    line = json.dumps({**SPEC_EXAMPLE, "_aws": {**SPEC_EXAMPLE["_aws"], "Timestamp": int(time.time() * 1000)}})
    path = logs / f"{task_id}.log"
    custom = CustomMetrics(3600.0)
    tailer = EmfTailer(logs, custom, time.time)
    path.write_text(line[:40])
    tailer.tick([(task_id, False)])
    await tailer.wait()
    assert tailer.extracted == 0 and tailer.rejected == 0
    path.write_text(line + "\n")  # the rest of the line arrives
    tailer.tick([(task_id, False)])
    await tailer.wait()
    assert (tailer.extracted, tailer.rejected) == (1, 0)
