"""A deployment is named in the API (and so the CLI) by its id or by the
short prefix the views show."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from shiftlab.controller.records import Records
from tests.controller.support import config
from tests.helpers import eventually


async def test_a_prefix_names_a_deployment(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "CANARY", "canaryConfiguration": {
        "canaryPercent": 50, "canaryBakeTimeInMinutes": 60}}))
    ctl = stack.controller
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await eventually(lambda: ctl.current.production_percent == 50, timeout=30, what="canary step")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{stack.api_url}/api/deployments/{d.id[:12]}") as resp:
            assert resp.status == 200
            assert (await resp.json())["shiftlab"]["id"] == d.id
        async with s.get(f"{stack.api_url}/api/deployments/{d.id[:3]}") as resp:
            assert resp.status == 404  # too short to be taken for an id
        async with s.get(f"{stack.api_url}/api/deployments/{d.id[:8]}%25") as resp:
            assert resp.status == 404  # a LIKE wildcard is a character, not a pattern
        async with s.post(f"{stack.api_url}/api/deployments/{d.id[:12]}/stop", json={"rollback": True}) as resp:
            assert resp.status == 202
    final = await ctl.wait_finished(d.id, timeout=30)
    assert final.status == "ROLLBACK_SUCCESSFUL"


def test_ids_starting_finds_every_match_up_to_the_limit(tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite")
    try:
        for i, id_ in enumerate(["abc123aa", "abc123bb", "abd000cc", "ab_x"]):
            records.db.execute("INSERT INTO deployments (id, service, status, created_at, doc) "
                               "VALUES (?, 'web', 'SUCCESSFUL', ?, '{}')", (id_, float(i)))
        assert records.ids_starting("abc123") == ["abc123aa", "abc123bb"]
        assert records.ids_starting("abd") == ["abd000cc"]
        assert records.ids_starting("ab_") == ["ab_x"]  # `_` is not LIKE's any-character here
        assert records.ids_starting("zz") == []
    finally:
        records.close()
