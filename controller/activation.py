"""A headless service's activation flags: which revisions' tasks work.

A service with neither a load balancer nor Service Connect has no traffic
for a deployment to shift. ECS still runs blue and green side by side and
calls the lifecycle hooks; AWS's queue-consumer example keeps a parameter
per revision that says "consume" or "stand by", and hooks at the traffic
shift stages flip it: green starts deactivated, the PRODUCTION_TRAFFIC_SHIFT
hook activates green and deactivates blue, and on a rollback (ECS calls
that stage's hooks again, with production back on blue) the reverse.

shiftlab keeps that parameter for you: one flag per revision, in the
service's record (so a restarted controller keeps it), read and set through
the controller's API (`GET/PUT /api/activation`). Tasks of a headless
service get SHIFTLAB_ACTIVATION_URL (and SHIFTLAB_API_TOKEN when the API
has a token) and ask for their own revision (SHIFTLAB_REVISION);
`shiftlab.activation_hook` is the command hook that flips the flags from the
hook payload's productionTrafficWeights. The service's first revision
starts active; every revision registered later starts deactivated.

The client functions here use the standard library only: tasks and hooks
import them without the controller's dependencies.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

URL_VAR = "SHIFTLAB_ACTIVATION_URL"
TOKEN_VAR = "SHIFTLAB_API_TOKEN"
PATH = "/api/activation"


class ActivationError(Exception):
    """The controller refused a change or could not be reached."""


def activation_env(api_url: str, token: str | None) -> dict[str, str]:
    """What tasks and command hooks get to reach the flags: the API's URL as
    seen from this machine (a wildcard bind address becomes loopback)."""
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    env = {URL_VAR: f"http://{host}:{parts.port}{PATH}"}
    if token:
        env[TOKEN_VAR] = token
    return env


def wanted_from_weights(production_weights: Mapping[str, float]) -> dict[str, bool]:
    """The flags a hook payload's productionTrafficWeights (revision ARN ->
    percent) ask for: a revision with production traffic works, the others
    stand by. At PRODUCTION_TRAFFIC_SHIFT that is green (100) over blue (0);
    on a rollback's PRODUCTION_TRAFFIC_SHIFT, blue again."""
    return {arn: float(pct) > 0 for arn, pct in production_weights.items()}


def revision_of(ref: str) -> str:
    """A revision as the API takes it: "2", or a service revision ARN
    (`arn:...:service-revision/<cluster>/<service>/2`) as hook payloads name it."""
    return ref.rpartition("/")[2] if ref.startswith("arn:") else ref


def changes_from_body(body: Any) -> dict[str, bool]:
    """PUT /api/activation's body, `{"revisions": {"2": true, "1": false}}`
    (revision numbers or ARNs), as revision -> flag; ValueError naming the field."""
    if not isinstance(body, dict) or not isinstance(body.get("revisions"), dict) or not body["revisions"]:
        raise ValueError('revisions: must be an object of revision (or service revision ARN) -> true|false, '
                         'e.g. {"revisions": {"2": true, "1": false}}')
    out = {}
    for ref, flag in body["revisions"].items():
        if not isinstance(flag, bool):
            raise ValueError(f"revisions.{ref}: {flag!r} is not true or false")
        out[revision_of(str(ref))] = flag
    return out


# -- the client side: tasks and the hook ---------------------------------------------------

def _request(method: str, url: str, token: str | None, body: Any = None, timeout: float = 2.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise ActivationError(f"{method} {url}: HTTP {exc.code} {detail}") from None
    except (OSError, ValueError) as exc:
        raise ActivationError(f"{method} {url}: {exc}") from None


def is_active(url: str, revision: str, token: str | None = None, timeout: float = 2.0) -> bool:
    """Whether `revision`'s tasks should work now (GET <url>/<revision>)."""
    return bool(_request("GET", f"{url.rstrip('/')}/{revision}", token, timeout=timeout)["active"])


def set_active(url: str, changes: Mapping[str, bool], token: str | None = None,
               timeout: float = 5.0) -> dict[str, bool]:
    """Set flags (revision or ARN -> flag); returns every revision's flag after."""
    got = _request("PUT", url, token, {"revisions": dict(changes)}, timeout=timeout)
    return {str(k): bool(v) for k, v in got["revisions"].items()}
