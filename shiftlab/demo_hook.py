"""The demo's lifecycle hook, a `command:` hook: ECS's payload on stdin, the
answer on stdout. The first call answers IN_PROGRESS (call me again after
`hookDetails.waitSeconds` AWS seconds), the second SUCCEEDED, as a smoke
test that needs a moment would."""

from __future__ import annotations

import json
import sys
from typing import Any


def answer(payload: dict[str, Any]) -> dict[str, Any]:
    details = payload.get("hookDetails") or {}
    if details.get("checked"):
        return {"hookStatus": "SUCCEEDED"}
    return {"hookStatus": "IN_PROGRESS", "callBackDelay": details.get("waitSeconds", 30),
            "hookDetails": {**details, "checked": True}}


if __name__ == "__main__":
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
