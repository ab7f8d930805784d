"""The controller's CloudWatch endpoint, called by the real boto3 client
(dummy credentials) on 127.0.0.1: PutMetricData as the API reference
describes it, its limits answered with AWS's error codes as botocore parses
them, the datapoints in the store the alarms read, DescribeAlarms, the
token (SigV4 with the token as the secret key) and the browser guard.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import botocore.auth
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shiftlab.controller import cbor
from shiftlab.controller.metricstore import Entry, custom_stat, metric_key
from shiftlab.stack import Stack
from tests.controller.support import config
from tests.helpers import aws_walkthrough

BUSINESS = json.loads((aws_walkthrough() / "canary-business-alarm.json").read_text())
KEY = metric_key("CustomApp/Payments", "TransactionFailureRate", ())
TOKEN = "cloudwatch-token-0123456789"


def client(stack: Stack, secret: str = "dummy") -> Any:
    return boto3.client("cloudwatch", endpoint_url=f"{stack.api_url}/cloudwatch", region_name="us-east-1",
                        aws_access_key_id="dummy", aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


async def call(cw: Any, operation: str, **params: Any) -> Any:
    """boto3 blocks: off the loop the stack runs on."""
    return await asyncio.to_thread(getattr(cw, operation), **params)


@pytest.fixture
async def stack(stack_factory: Any, tmp_path: Path) -> Stack:
    data = config(tmp_path, {"strategy": "ROLLING"}, alarms=[BUSINESS], desired=1)
    started: Stack = await stack_factory(data)
    return started


def held(stack: Stack, key: Any = KEY, unit: str | None = None) -> list[Entry]:
    ctl = stack.controller
    assert ctl is not None
    return ctl.monitor.store.custom.entries(key, unit)


def stats(stack: Stack, key: Any = KEY, stat: str = "Sum", unit: str | None = None) -> float | None:
    """The statistic over every datapoint the store holds for the metric (a test puts them in one call)."""
    return custom_stat(held(stack, key, unit), stat)


async def test_current_botocore_speaks_cbor_and_a_put_reaches_the_store(stack: Stack) -> None:
    cw = client(stack)
    # botocore's model lists smithy-rpc-v2-cbor first: what it sends.
    assert cw.meta.service_model.protocol == "smithy-rpc-v2-cbor"
    await call(cw, "put_metric_data", Namespace="CustomApp/Payments",
               MetricData=[{"MetricName": "TransactionFailureRate", "Value": 0.75, "Unit": "None"}])
    assert stats(stack) == 0.75


@pytest.mark.parametrize(
    ("datum", "expected"),
    [
        ({"Value": 3.0}, {"SampleCount": 1, "Sum": 3, "Average": 3, "Minimum": 3, "Maximum": 3, "p50": 3}),
        # Values and Counts: each value as often as its count; percentiles from them.
        ({"Values": [1.0, 2.0, 10.0], "Counts": [2, 1, 1]},
         {"SampleCount": 4, "Sum": 14, "Average": 3.5, "Minimum": 1, "Maximum": 10, "p50": 1, "p75": 2, "p99": 10}),
        ({"Values": [5.0, 7.0]}, {"SampleCount": 2, "Sum": 12, "Average": 6, "p100": 7}),  # Counts default to 1
        # A statistic set: no percentile unless its samples are all one value.
        ({"StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}},
         {"SampleCount": 4, "Sum": 10, "Average": 2.5, "Minimum": 1, "Maximum": 4, "p50": None}),
        ({"StatisticValues": {"SampleCount": 3, "Sum": 6, "Minimum": 2, "Maximum": 2}}, {"p90": 2}),
        # Percentiles are not available when any value is negative.
        ({"Values": [-1.0, 2.0]}, {"Sum": 1, "p50": None}),
        ({"Value": 1.0, "StorageResolution": 1}, {"Sum": 1}),
    ],
)
async def test_put_metric_data_shapes_and_their_statistics(stack: Stack, datum: dict[str, Any],
                                                           expected: dict[str, float | None]) -> None:
    key = metric_key("CustomApp/Payments", "Latency", [("Service", "pay"), ("Stage", "prod")])
    await call(client(stack), "put_metric_data", Namespace="CustomApp/Payments", MetricData=[{
        "MetricName": "Latency", "Unit": "Milliseconds",
        # Dimension order does not make another metric.
        "Dimensions": [{"Name": "Stage", "Value": "prod"}, {"Name": "Service", "Value": "pay"}], **datum}])
    assert {stat: stats(stack, key, stat) for stat in expected} == expected
    assert stats(stack, key, "Sum", unit="Seconds") is None  # another unit is another series for an alarm


def too_many(n: int) -> list[dict[str, Any]]:
    return [{"MetricName": f"m{i}", "Value": 1.0} for i in range(n)]


NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("namespace", "data", "code"),
    [
        # "Each request is also limited to no more than 1000 different metrics."
        ("CustomApp/Payments", too_many(1001), "InvalidParameterValue"),
        # "You can use up to 30 dimensions per metric."
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 1.0,
                                 "Dimensions": [{"Name": f"d{i}", "Value": "v"} for i in range(31)]}],
         "InvalidParameterValue"),
        # "Values must be in the range of -2^360 to 2^360. In addition, special values (for example, NaN,
        # +Infinity, -Infinity) are not supported."
        ("CustomApp/Payments", [{"MetricName": "m", "Value": float("nan")}], "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Value": float("inf")}], "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 2.0 ** 361}], "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Values": [1.0, -(2.0 ** 361)]}], "InvalidParameterValue"),
        # "You can specify time stamps that are as much as two weeks before the current date, and as much
        # as 2 hours after the current day and time."
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 1.0, "Timestamp": NOW - dt.timedelta(days=15)}],
         "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 1.0, "Timestamp": NOW + dt.timedelta(hours=3)}],
         "InvalidParameterValue"),
        # StorageResolution: "Valid values are 1 and 60."
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 1.0, "StorageResolution": 5}],
         "InvalidParameterValue"),
        # "You can include up to 150 unique values in each PutMetricData action that specifies a Values array."
        ("CustomApp/Payments", [{"MetricName": "m", "Values": [float(i) for i in range(151)]}],
         "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1.0]}],
         "InvalidParameterValue"),
        ("CustomApp/Payments", [{"MetricName": "m", "Value": 1.0,
                                 "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}],
         "InvalidParameterCombination"),
        ("CustomApp/Payments", [{"MetricName": "m"}], "MissingParameter"),
        # AWS's own namespaces are not for PutMetricData.
        ("AWS/ECS", [{"MetricName": "CPUUtilization", "Value": 1.0}], "InvalidParameterValue"),
    ],
)
async def test_calls_outside_the_limits_get_aws_error_codes_and_store_nothing(
        stack: Stack, namespace: str, data: list[dict[str, Any]], code: str) -> None:
    cw = client(stack)
    # One good datum first: a refused call stores none of its datapoints.
    data = [{"MetricName": "TransactionFailureRate", "Value": 0.5}, *data]
    with pytest.raises(ClientError) as err:
        await call(cw, "put_metric_data", Namespace=namespace, MetricData=data)
    assert err.value.response["Error"]["Code"] == code, err.value.response
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert stats(stack) is None


async def test_a_thousand_metrics_in_one_gzipped_call(stack: Stack) -> None:
    """botocore gzips PutMetricData bodies of 10 KiB and more; 1000 metrics is the most a call may hold."""
    await call(client(stack), "put_metric_data", Namespace="CustomApp/Payments", MetricData=too_many(1000))
    assert stats(stack, metric_key("CustomApp/Payments", "m999", ())) == 1.0


async def test_a_timestamp_places_the_datapoint_that_far_back(stack: Stack) -> None:
    await call(client(stack), "put_metric_data", Namespace="CustomApp/Payments", MetricData=[
        {"MetricName": "TransactionFailureRate", "Value": 1.0, "Timestamp": NOW - dt.timedelta(hours=1)},
        {"MetricName": "TransactionFailureRate", "Value": 2.0}])
    assert stack.controller is not None
    now = stack.controller.clock.now()
    # An hour back on the store's clock (real seconds), the other one now; each at the start of its
    # (scaled) minute, one second at timeScale 60.
    old, new = held(stack)
    assert (old.total, new.total) == (1.0, 2.0)
    assert abs((new.at - old.at) - (3600 + dt.datetime.now(dt.UTC).timestamp() - NOW.timestamp())) <= 2
    assert 0 <= now - new.at <= 2


async def test_describe_alarms_answers_from_the_controller(stack: Stack) -> None:
    out = await call(client(stack), "describe_alarms", AlarmNames=[BUSINESS["AlarmName"]])
    (alarm,) = out["MetricAlarms"]
    assert alarm["AlarmName"] == BUSINESS["AlarmName"] and alarm["Namespace"] == "CustomApp/Payments"
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"  # nothing published yet
    assert isinstance(alarm["StateUpdatedTimestamp"], dt.datetime)
    assert (await call(client(stack), "describe_alarms", StateValue="ALARM"))["MetricAlarms"] == []


async def test_json_protocol_and_cbor_errors_on_the_wire(stack: Stack) -> None:
    """AWS JSON 1.0 (botocore's second protocol for CloudWatch) is served too;
    errors carry x-amzn-query-error, as an awsQueryCompatible service's do."""
    url = f"{stack.api_url}/cloudwatch/"
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/x-amz-json-1.0",
                   "X-Amz-Target": "GraniteServiceVersion20100801.PutMetricData"}
        body = {"Namespace": "CustomApp/Payments", "MetricData": [{"MetricName": "TransactionFailureRate",
                                                                   "Value": 0.25}]}
        async with session.post(url, data=json.dumps(body), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        assert stats(stack) == 0.25
        cbor_url = f"{stack.api_url}/cloudwatch/service/GraniteServiceVersion20100801/operation/PutMetricData"
        async with session.post(cbor_url, data=cbor.dumps({"Namespace": ":bad"}),
                                headers={"Content-Type": "application/cbor"}) as resp:
            assert resp.status == 400
            assert resp.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
            assert cbor.loads(await resp.read())["__type"].endswith("#InvalidParameterValueException")
        async with session.post(cbor_url, data=b"\xbf\x61", headers={"Content-Type": "application/cbor"}) as resp:
            assert resp.status == 400  # truncated CBOR: an error, never a crash


async def test_a_form_post_is_refused_by_the_browser_guard(stack: Stack) -> None:
    """The query protocol's form body is what a web page can send cross-site
    without a preflight: refused, as every API call that is not JSON is."""
    async with aiohttp.ClientSession() as session, session.post(f"{stack.api_url}/cloudwatch/", data={
            "Action": "PutMetricData", "Namespace": "CustomApp/Payments",
            "MetricData.member.1.MetricName": "TransactionFailureRate",
            "MetricData.member.1.Value": "1"}) as resp:
        assert resp.status == 415
    assert stats(stack) is None


async def test_with_a_token_the_sdk_signs_with_it(stack_factory: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """SigV4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), the token as
    the secret access key; "the request must reach AWS within five minutes of the time stamp"."""
    data = config(tmp_path, {"strategy": "ROLLING"}, alarms=[BUSINESS], desired=1)
    data["controller"]["token"] = TOKEN
    stack: Stack = await stack_factory(data)
    datum = [{"MetricName": "TransactionFailureRate", "Value": 0.5}]
    with pytest.raises(ClientError) as err:
        await call(client(stack, secret="not-the-token"), "put_metric_data", Namespace="CustomApp/Payments",
                   MetricData=datum)
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert stats(stack) is None
    await call(client(stack, secret=TOKEN), "put_metric_data", Namespace="CustomApp/Payments", MetricData=datum)
    assert stats(stack) == 0.5
    # Signed ten minutes ago: expired.
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10))
    with pytest.raises(ClientError) as err:
        await call(client(stack, secret=TOKEN), "put_metric_data", Namespace="CustomApp/Payments", MetricData=datum)
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "expired" in err.value.response["Error"]["Message"]
    # The rest of the API still wants the bearer token.
    async with aiohttp.ClientSession() as session, session.get(f"{stack.api_url}/api/service") as resp:
        assert resp.status == 401


async def test_get_metric_data_answers_metric_stat_queries_from_the_store(stack: Stack) -> None:
    """GetMetricData (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html):
    the published datapoints per period (60 s of AWS time: 1 s at timeScale 60)."""
    cw = client(stack)
    await call(cw, "put_metric_data", Namespace="CustomApp/Payments", MetricData=[
        {"MetricName": "TransactionFailureRate", "Values": [0.25, 0.75]}])
    now = dt.datetime.now(dt.UTC)
    stat = {"Metric": {"Namespace": "CustomApp/Payments", "MetricName": "TransactionFailureRate"}, "Period": 60}
    out = await call(cw, "get_metric_data", StartTime=now - dt.timedelta(seconds=30),
                     EndTime=now + dt.timedelta(seconds=2), MetricDataQueries=[
                         {"Id": "avg", "MetricStat": {**stat, "Stat": "Average"}},
                         {"Id": "n", "MetricStat": {**stat, "Stat": "SampleCount"}, "Label": "samples"},
                         {"Id": "hidden", "MetricStat": {**stat, "Stat": "Sum"}, "ReturnData": False}])
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert set(results) == {"avg", "n"}
    assert results["avg"]["Values"] == [0.5] and results["n"]["Values"] == [2.0]
    assert results["n"]["Label"] == "samples" and results["avg"]["StatusCode"] == "Complete"
    (stamp,) = results["avg"]["Timestamps"]
    assert abs((stamp - now).total_seconds()) < 3
    with pytest.raises(ClientError) as err:
        await call(cw, "get_metric_data", StartTime=now - dt.timedelta(seconds=30), EndTime=now,
                   MetricDataQueries=[{"Id": "e", "Expression": "SUM(METRICS())"}])
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
