"""The enums of controller.vocabulary are ECS's strings: a deployment record
written before them (deployment_record.json, by shiftlab at 07f17a0: a
BLUE_GREEN deployment with two hooks, rolled back when its PAUSE timed out)
loads with enum members and is written back byte for byte; and the enums
name what the state machine and the backends still spell as strings."""

from __future__ import annotations

import json
from pathlib import Path

from shiftlab.controller import machine as m
from shiftlab.controller.backends import base
from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.records import Records
from shiftlab.controller.vocabulary import FINAL_STATUSES, Colour, Stage, Status, Strategy

RECORD = Path(__file__).with_name("deployment_record.json")


def test_a_record_written_before_the_enums_loads_and_is_written_back_unchanged(tmp_path: Path) -> None:
    text = RECORD.read_text()
    doc = json.loads(text)
    records = Records(tmp_path / "records.sqlite")
    try:
        # As the code before the enums stored it.
        records.db.execute("INSERT INTO deployments (id, service, status, created_at, doc) VALUES (?, ?, ?, ?, ?)",
                           (doc["id"], doc["service"], doc["status"], doc["created_at"], text))
        d = records.get(doc["id"])
        assert d is not None
        assert d.dc.strategy is Strategy.BLUE_GREEN
        stages = [s for h in d.dc.lifecycleHooks for s in h.lifecycleStages]
        assert stages == [Stage.POST_TEST_TRAFFIC_SHIFT, Stage.PRE_SCALE_UP, Stage.POST_PRODUCTION_TRAFFIC_SHIFT]
        assert all(type(s) is Stage for s in stages)
        assert d.status == Status.ROLLBACK_SUCCESSFUL and d.final
        records.save(d)
        [(status, stored)] = list(records.db.execute("SELECT status, doc FROM deployments"))
        assert (status, stored) == ("ROLLBACK_SUCCESSFUL", text)
        assert records.unfinished("web") == []
    finally:
        records.close()


def test_a_configuration_is_written_as_the_strings_it_was_read_from() -> None:
    config = json.loads(RECORD.read_text())["config"]
    dc = DeploymentConfiguration.model_validate(config)
    assert dc.model_dump(mode="json") == config
    # Even unconverted, StrEnum members go into JSON as their strings.
    assert json.dumps(dc.model_dump()) == json.dumps(config)
    assert json.dumps({"strategy": Strategy.CANARY, "status": Status.STOPPED, "colour": Colour.GREEN}) == \
        '{"strategy": "CANARY", "status": "STOPPED", "colour": "green"}'


def test_the_enums_name_what_the_machine_and_the_backends_spell_as_strings() -> None:
    assert list(Stage) == [m.RECONCILE_SERVICE, m.PRE_SCALE_UP, m.SCALE_UP, m.POST_SCALE_UP, m.TEST_TRAFFIC_SHIFT,
                           m.POST_TEST_TRAFFIC_SHIFT, m.PRE_PRODUCTION_TRAFFIC_SHIFT, m.PRODUCTION_TRAFFIC_SHIFT,
                           m.POST_PRODUCTION_TRAFFIC_SHIFT, m.BAKE_TIME, m.CLEAN_UP]
    assert set(Status) == {m.PENDING, m.IN_PROGRESS, m.SUCCESSFUL, m.STOP_REQUESTED, m.STOPPED, m.ROLLBACK_REQUESTED,
                           m.ROLLBACK_IN_PROGRESS, m.ROLLBACK_SUCCESSFUL, m.ROLLBACK_FAILED}
    assert FINAL_STATUSES == m.FINAL
    assert list(Colour) == [base.BLUE, base.GREEN]
