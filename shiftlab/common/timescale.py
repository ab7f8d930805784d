"""`timeScale`: every AWS duration is divided by it (60 makes an ECS minute
one second). Kept in one place so that both planes scale alike."""

from __future__ import annotations

from typing import Any

from shiftlab.common.configfile import ConfigError

MAX_TIME_SCALE = 3600.0


def parse_time_scale(value: Any, field: str = "timeScale") -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ConfigError([f"{field}: {value!r} is not a number"]) from None
    if not 0 < scale <= MAX_TIME_SCALE:
        raise ConfigError([f"{field}: {value} is out of range (0..{int(MAX_TIME_SCALE)}], 1 is real time"])
    return scale
