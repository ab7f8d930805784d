"""Deployment records written before the controller's core was split
(tests/controller/data/deployments-v1.json: the `doc` column as that code
wrote it, one record per kind of wait) still load, keep their shape and
go on where they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller import machine as m
from shiftlab.controller.records import Records

DOCS: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "deployments-v1.json").read_text())


@pytest.fixture
def records(tmp_path: Path) -> Records:
    r = Records(tmp_path / "records.sqlite")
    for doc in DOCS.values():
        r.db.execute("INSERT INTO deployments (id, service, status, created_at, doc) VALUES (?, ?, ?, ?, ?)",
                     (doc["id"], doc["service"], doc["status"], doc["created_at"], json.dumps(doc)))
    return r


@pytest.mark.parametrize("deployment_id", sorted(DOCS))
def test_an_old_record_loads_and_writes_back_the_same_document(records: Records, deployment_id: str) -> None:
    d = records.get(deployment_id)
    assert d is not None
    assert d.to_dict() == DOCS[deployment_id]
    records.save(d)
    assert json.loads(records.db.execute("SELECT doc FROM deployments WHERE id = ?",
                                         (deployment_id,)).fetchone()[0]) == DOCS[deployment_id]


def test_old_unfinished_records_are_the_ones_a_restart_finds(records: Records) -> None:
    assert [d.id for d in records.unfinished("web")] == ["d-baking", "d-mid-hook", "d-rolling"]


def test_an_old_record_waiting_for_a_hook_callback_goes_on(records: Records) -> None:
    d = records.get("d-mid-hook")
    assert d is not None and d.hook is not None and d.hook.next_call_at is not None
    assert d.failed_tasks == ["t-9"] and d.failure_count == 1
    call_at = d.hook.next_call_at
    _, actions = m.step(d, m.Tick(), call_at)
    assert [a for a in actions if isinstance(a, m.InvokeHook)] == [
        m.InvokeHook(0, m.POST_TEST_TRAFFIC_SHIFT, "d-mid-hook-POST_TEST_TRAFFIC_SHIFT-1-0", {"k": "v2"}, 0.0, 100.0)]
    # A restart there rolls back: production traffic had not moved yet.
    d3, actions = m.step(d, m.Recover(), call_at)
    assert d3.status == m.ROLLBACK_IN_PROGRESS and m.SetWeights("all", 0.0) in actions


def test_an_old_record_in_a_canary_bake_ends_it_on_time(records: Records) -> None:
    d = records.get("d-baking")
    assert d is not None and d.waiting == m.W_BAKE and d.wake_at is not None
    d, actions = m.step(d, m.Tick(), d.wake_at)
    assert [a for a in actions if not isinstance(a, m.Note)] == [m.SetWeights("production", 100.0)]


def test_an_old_rolled_back_record_describes_its_rollback(records: Records) -> None:
    d = records.get("d-rolled")
    assert d is not None and d.final and d.status == m.ROLLBACK_SUCCESSFUL
    assert d.rollback is not None and d.rollback["serviceRevisionArn"] == "1"
    assert d.triggered_alarms == ["green-5xx"] and [r.status for r in d.hook_runs] == ["SUCCEEDED"]
    assert m.step(d, m.Tick(), d.finished_at or 0)[1] == []
