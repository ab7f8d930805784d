"""Fixtures of the controller tests that run `shiftlab` as subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.subprocesses import Processes, task_pids
from tests.helpers import kill_left_over_proxies


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        kill_left_over_proxies(tmp_path)  # of an `up` the test killed and did not restart
        print(procs.logs())  # shown when the test failed
        for pid in task_pids(procs.marker):  # only if the test failed before its own checks
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
