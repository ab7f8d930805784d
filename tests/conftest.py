"""Fixtures of every test directory: a real stack (proxy, controller, API) per test."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

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
    for s in stacks:
        await s.stop()
