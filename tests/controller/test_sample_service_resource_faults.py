"""The sample service's CPU and memory faults (CPU_BURN,
MEMORY_LEAK_MIB_PER_SECOND, MEMORY_LEAK_MAX_MIB): a bad value is refused at
start with the variable's name, as its other faults are. What they do to a
task is measured in tests/controller/test_usage_contract.py."""

from __future__ import annotations

import pytest

from shiftlab.sample_service import main


@pytest.mark.parametrize(("env", "words"), [
    ({"CPU_BURN": "lots"}, "CPU_BURN='lots': not a number"),
    ({"CPU_BURN": "-1"}, "CPU_BURN='-1': out of range 0..64"),
    ({"MEMORY_LEAK_MIB_PER_SECOND": "2000"}, "MEMORY_LEAK_MIB_PER_SECOND='2000': out of range 0..1024"),
    ({"MEMORY_LEAK_MAX_MIB": "x"}, "MEMORY_LEAK_MAX_MIB='x': not a number"),
])
def test_a_bad_resource_fault_is_refused_at_start(env: dict[str, str], words: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main({**env, "PORT": "0"}) == 2
    assert words in capsys.readouterr().err
