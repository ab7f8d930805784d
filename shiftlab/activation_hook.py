"""The activation hook of a headless service, a `command:` hook: ECS's
payload on stdin, the answer on stdout.

Register it at PRODUCTION_TRAFFIC_SHIFT:

    lifecycleHooks:
      - hookTargetArn: "command:{python} -m shiftlab.activation_hook"
        lifecycleStages: [PRODUCTION_TRAFFIC_SHIFT]

It sets each revision's activation flag (controller/activation.py) from
the payload's productionTrafficWeights: the revision with production
traffic works, the other stands by. Going forward that activates green and
deactivates blue; on a rollback ECS calls the PRODUCTION_TRAFFIC_SHIFT hooks
again with production back on blue, and the same hook reactivates blue and
deactivates green. Green is activated before blue is deactivated, so a
moment of both working (at-least-once consumers cope) is preferred to a
moment of neither.

The controller gives command hooks SHIFTLAB_ACTIVATION_URL (and
SHIFTLAB_API_TOKEN); a FAILED answer (the controller unreachable) fails the
hook, which rolls the deployment back.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from shiftlab.controller.activation import TOKEN_VAR, URL_VAR, ActivationError, set_active, wanted_from_weights


def answer(payload: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    url = env.get(URL_VAR)
    if not url:
        return {"hookStatus": "FAILED", "hookDetails": {"error": f"{URL_VAR} is not set: run me as a shiftlab hook"}}
    details = payload.get("executionDetails") or {}
    wanted = wanted_from_weights(details.get("productionTrafficWeights") or {})
    if not wanted:
        return {"hookStatus": "FAILED", "hookDetails": {"error": "the payload has no productionTrafficWeights"}}
    flags: dict[str, bool] = {}
    try:
        # Whoever works from now on first, then whoever stops.
        for on in (True, False):
            changes = {arn: on for arn, flag in wanted.items() if flag is on}
            if changes:
                flags = set_active(url, changes, env.get(TOKEN_VAR))
    except ActivationError as exc:
        return {"hookStatus": "FAILED", "hookDetails": {"error": str(exc)}}
    return {"hookStatus": "SUCCEEDED", "hookDetails": {"active": flags}}


if __name__ == "__main__":
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
