"""A task for the business-metric rehearsals: the sample service, plus what
a payments service does on AWS, unchanged: it publishes its
TransactionFailureRate to CloudWatch with boto3's put_metric_data (the
AWS walkthrough's CustomApp/Payments metric). The controller gives it
AWS_ENDPOINT_URL_CLOUDWATCH; PAYMENTS_FAILURE_RATE is the rate it reports
(unset: it publishes nothing)."""

from __future__ import annotations

import os
import sys
import threading
import time

import boto3

from shiftlab import sample_service

INTERVAL = 0.25  # real seconds between publications (15 s of AWS time at timeScale 60)


def publish(rate: float) -> None:
    client = boto3.client("cloudwatch")
    while True:
        try:
            client.put_metric_data(Namespace="CustomApp/Payments", MetricData=[
                {"MetricName": "TransactionFailureRate", "Value": rate, "Unit": "None"}])
        except Exception as exc:
            print(f"payments task: put_metric_data failed: {exc}", flush=True)
        time.sleep(INTERVAL)


if __name__ == "__main__":
    if os.environ.get("PAYMENTS_FAILURE_RATE"):
        threading.Thread(target=publish, args=(float(os.environ["PAYMENTS_FAILURE_RATE"]),), daemon=True).start()
    sys.exit(sample_service.main())
