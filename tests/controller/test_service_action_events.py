"""ECS's "ECS Service Action" events, the ones shiftlab can know: the
service reached a steady state, and new tasks keep failing to start.

https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html:
"Amazon ECS sends service action events with the detail type ECS Service
Action"; SERVICE_STEADY_STATE (INFO) "The service is healthy and at the
desired number of tasks, thus reaching a steady state";
SERVICE_TASK_START_IMPAIRED (WARN) "The service is unable to consistently
start tasks successfully". The page's examples: `resources` holds the
service's ARN, `detail` is eventType, eventName, clusterArn and createdAt
(milliseconds, "2019-11-19T19:27:22.695Z"), and no version of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller.eventbridge import service_action, service_action_events

SERVICE = "arn:aws:ecs:local:000000000000:service/default/web"
CLUSTER = "arn:aws:ecs:local:000000000000:cluster/default"
AT = 1_574_191_642.695  # 2019-11-19T19:27:22.695Z, the page's steady-state example


@pytest.mark.parametrize(("event_type", "event_name"), [
    ("INFO", "SERVICE_STEADY_STATE"),          # the page's "Service steady state event" example
    ("WARN", "SERVICE_TASK_START_IMPAIRED"),   # the page's "Service task start impaired event" example
])
def test_service_action_shapes_are_the_pages_examples(event_type: str, event_name: str) -> None:
    e = service_action(event_type, event_name, SERVICE, CLUSTER, AT)
    assert set(e) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert (e["version"], e["detail-type"], e["source"], e["resources"]) == (
        "0", "ECS Service Action", "aws.ecs", [SERVICE])
    assert e["time"] == "2019-11-19T19:27:22Z"
    assert e["detail"] == {"eventType": event_type, "eventName": event_name, "clusterArn": CLUSTER,
                           "createdAt": "2019-11-19T19:27:22.695Z"}


def _entry(entry: eventlog.Entry) -> tuple[str, dict[str, Any]]:
    record = eventlog.event_record(entry, None, "d-1", AT)
    return record["type"], record["data"]


@pytest.mark.parametrize(("entry", "expected"), [
    # A deployment or its rollback completes: the service is at its desired count, healthy.
    (eventlog.status_changed("SUCCESSFUL"), [("INFO", "SERVICE_STEADY_STATE")]),
    (eventlog.status_changed("ROLLBACK_SUCCESSFUL", "alarm"), [("INFO", "SERVICE_STEADY_STATE")]),
    (eventlog.status_changed("IN_PROGRESS"), []),
    (eventlog.status_changed("ROLLBACK_IN_PROGRESS", "alarm"), []),
    (eventlog.status_changed("ROLLBACK_FAILED", "x"), []),
    (eventlog.status_changed("STOPPED", "x"), []),
    # New tasks failing: once the second in a row fails (the breaker's count at 2) ...
    (eventlog.task_failed("t1", "2", "exited", 1, 3), []),
    (eventlog.task_failed("t2", "2", "exited", 2, 3), [("WARN", "SERVICE_TASK_START_IMPAIRED")]),
    (eventlog.task_failed("t3", "2", "exited", 3, 3), []),
    # ... or not healthy within taskStartTimeoutSeconds, without a breaker.
    (eventlog.task_not_healthy(2, 1, 60.0), [("WARN", "SERVICE_TASK_START_IMPAIRED")]),
    (eventlog.alarm_watched(), []),
])
def test_which_log_entries_send_a_service_action(entry: eventlog.Entry, expected: list[tuple[str, str]]) -> None:
    kind, data = _entry(entry)
    events = service_action_events(kind, data, SERVICE, CLUSTER, AT)
    assert [(e["detail"]["eventType"], e["detail"]["eventName"]) for e in events] == expected
    assert all(e["detail-type"] == "ECS Service Action" and e["resources"] == [SERVICE] for e in events)
