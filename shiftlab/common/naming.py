"""Names both planes and the application agree on."""

from __future__ import annotations

import re

_TG_ARN = re.compile(r"(?:^|:)targetgroup/([^/]+)(?:/|$)")


def target_group_name(ref: str) -> str:
    """`blue`, `targetgroup/blue/abc` and a full ARN all name the group `blue`."""
    m = _TG_ARN.search(ref)
    return m.group(1) if m else ref
