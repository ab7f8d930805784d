"""Fixtures of every test directory: a real stack (proxy, controller, API) per test.

Whatever a test did with its stacks, every event they logged must keep its
type's promise (controller.eventlog.problems): checked as the stacks stop."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.eventlog import problems
from shiftlab.settings import load_settings
from shiftlab.stack import Stack


@pytest.fixture
async def stack_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stacks: list[Stack] = []

    async def start(data: dict[str, Any]) -> Stack:
        stack = Stack(load_settings(copy.deepcopy(data)))
        await stack.start()
        stacks.append(stack)
        return stack

    yield start
    broken = []
    for s in stacks:
        if s.records is not None:
            # Lines without a type come only from files written before events had one.
            broken += [(e["seq"], e["type"], problems(e)) for e in s.records.events(None, limit=1_000_000)
                       if e["type"] is not None and problems(e)]
        await s.stop()
    assert broken == [], "events that break their type's promise (seq, type, problems)"
