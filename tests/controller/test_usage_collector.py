"""The usage collector as the controller runs it, on FakeBackend, FakeRouter
and a FakeUsageSampler, on a fake clock the test steps: a look every 20 s
(scaled), a datapoint a minute, an AWS/ECS CPUUtilization alarm copied from
AWS reading them and rolling a burning green back.

https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html
("Amazon ECS collects metrics every 20 seconds"; one datapoint a minute).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller import machine as m
from shiftlab.controller.backends.fake import FakeBackend
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.metricstore import metric_key
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter
from shiftlab.controller.service import ServiceController
from shiftlab.controller.usage import FakeUsageSampler, Usage
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.controller.support import config
from tests.controller.test_e2e_cpu_alarm import CPU_ALARM

SCALE = 60.0
CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
          "bakeTimeInMinutes": 2, "alarms": {"alarmNames": [CPU_ALARM["AlarmName"]], "enable": True,
                                             "rollback": True}}
SERVICE = [("ClusterName", "local"), ("ServiceName", "web")]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def controller(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[ServiceController, Records]] = []

    async def make(sampler: FakeUsageSampler) -> ServiceController:
        data = config(tmp_path, CANARY, alarms=[CPU_ALARM], time_scale=SCALE)
        data["service"]["taskDefinition"]["cpu"] = 256
        s = load_settings(data)
        router = FakeRouter({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"green": 1},
                             "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
        records = Records(tmp_path / f"records-{len(made)}.sqlite")
        ctl = ServiceController(s.controller_settings(), router, FakeBackend(clock=clock.now), records, clock=clock)
        ctl.usage.sampler = sampler
        made.append((ctl, records))
        await ctl.start()
        return ctl

    yield make
    for ctl, records in made:
        await ctl.stop()
        records.close()


async def test_a_look_every_scaled_20_seconds_and_a_datapoint_a_minute(controller, clock) -> None:
    sampler = FakeUsageSampler()
    sampler.by_revision["1"] = Usage(64.0, 100.0)
    ctl = await controller(sampler)
    start = clock.now()
    await run_until(clock, lambda: clock.now() - start >= 3.0, "three scaled minutes", within=5)
    # 20 s / 60 = a third of a second: about nine looks in three (scaled) minutes, never more.
    assert 8 <= ctl.usage.looks <= 10
    entries = ctl.monitor.store.custom.entries(metric_key("AWS/ECS", "CPUUtilization", SERVICE))
    assert len(entries) in (2, 3)  # one a minute, the current one not yet closed
    assert all(e.total / e.count == pytest.approx(25.0) for e in entries)  # 64 of 256 units
    assert all(e.at * SCALE % 60 == pytest.approx(0.0, abs=1e-6) for e in entries)  # at the minute's start


@pytest.mark.parametrize(("green_cpu", "status", "state"), [
    (1024.0, m.ROLLBACK_SUCCESSFUL, "ALARM"),  # a busy loop: the whole of its 256 units
    (32.0, m.SUCCESSFUL, "OK"),
])
async def test_the_cpu_alarm_decides_the_canary(controller, clock, green_cpu: float, status: str,
                                                state: str) -> None:
    sampler = FakeUsageSampler()
    sampler.by_revision.update({"1": Usage(16.0, 100.0), "2": Usage(green_cpu, 100.0)})
    ctl = await controller(sampler)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=60)
    assert final.status == status, final.status_reason
    assert ctl.monitor.alarm_states[CPU_ALARM["AlarmName"]] == state
