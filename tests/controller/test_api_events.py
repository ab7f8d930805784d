"""The event log through the controller API: paging and tail of
/api/events, the stream's replay of a long log, and a stream client that
falls too far behind is cut off (it reconnects and loses nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from shiftlab.controller import eventlog
from shiftlab.controller.api import EVENTS_PAGE, STREAM_BACKLOG
from tests.controller.support import config


def _note_many(stack: Any, count: int) -> list[int]:
    """`count` log events at once (no await between: the stream cannot keep up)."""
    ctl = stack.controller
    first = ctl.records.events(newest=True, limit=1)[0]["seq"]
    for i in range(count):
        ctl.note(None, eventlog.alarm_state(f"alarm-{i}", "OK", None))
    return [e["seq"] for e in ctl.records.events(after=first, limit=count + 1)]


async def _stream_events(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                         until_seq: int | None = None) -> tuple[list[int], bool]:
    """Reads the stream's `event` messages until `until_seq` was seen (then
    False) or the server ends the stream (then True)."""
    seqs: list[int] = []
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as resp:
        assert resp.status == 200
        kind = None
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "event":
                seqs.append(json.loads(line[6:])["event"]["seq"])
                if until_seq is not None and seqs[-1] == until_seq:
                    return seqs, False
    return seqs, True


async def test_events_page_forward_and_tail(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    seqs = _note_many(stack, 2 * EVENTS_PAGE + 10)
    url = stack.api_url + "/api/events"
    async with aiohttp.ClientSession() as s:
        got: list[int] = []
        after, more = seqs[0] - 1, True
        while more:
            async with s.get(url, params={"after": after, "limit": EVENTS_PAGE}) as resp:
                page = await resp.json()
            got += [e["seq"] for e in page["events"]]
            more = page["more"]
            after = got[-1]
        assert got == seqs
        async with s.get(url, params={"tail": 5}) as resp:
            tail = (await resp.json())["events"]
        assert [e["seq"] for e in tail] == seqs[-5:]
        assert tail[-1]["data"] == {"alarm": f"alarm-{len(seqs) - 1}", "state": "OK", "reason": None}
        for params, name in (({"after": "-1"}, "after"), ({"limit": "0"}, "limit"), ({"tail": "x"}, "tail")):
            async with s.get(url, params=params) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"].startswith(f"{name}: ")


async def test_the_stream_replays_a_log_longer_than_a_page(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    seqs = _note_many(stack, EVENTS_PAGE + 300)
    async with aiohttp.ClientSession() as s:
        got, ended = await _stream_events(s, stack.api_url + "/api/stream", {"Last-Event-ID": str(seqs[0] - 1)},
                                          until_seq=seqs[-1])
    assert not ended
    assert got == seqs


async def test_a_client_too_far_behind_is_cut_off_and_catches_up_on_reconnect(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}))
    url = stack.api_url + "/api/stream"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as resp:
            assert await resp.content.readline() == b"event: service\n"
            # More messages at once than the stream may hold for one client.
            seqs = _note_many(stack, STREAM_BACKLOG + 200)
            body = (await resp.content.read()).decode()  # returns: the server ended the stream
        seen = [json.loads(line[6:])["event"]["seq"] for line in body.splitlines()
                if line.startswith("data: ") and '"type": "event"' in line]
        assert seen and seen == seqs[:len(seen)] and len(seen) < len(seqs)
        # What a reconnecting EventSource does: Last-Event-ID, and the rest arrives.
        rest, ended = await _stream_events(s, url, {"Last-Event-ID": str(seen[-1])}, until_seq=seqs[-1])
    assert not ended
    assert seen + rest == seqs
