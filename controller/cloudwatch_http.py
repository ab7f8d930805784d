"""The CloudWatch endpoint on the controller API's port, under /cloudwatch:
point an SDK at it with `endpoint_url="http://127.0.0.1:9091/cloudwatch"`
(or AWS_ENDPOINT_URL_CLOUDWATCH, which the controller gives its tasks).

Wire protocols, as botocore's model for CloudWatch lists them ("protocols":
smithy-rpc-v2-cbor, json, query): Smithy RPC v2 CBOR (what current botocore
sends: `POST /service/GraniteServiceVersion20100801/operation/<Op>`,
application/cbor) and AWS JSON 1.0 (`X-Amz-Target:
GraniteServiceVersion20100801.<Op>`, application/x-amz-json-1.0). Errors
carry `__type` and the `x-amzn-query-error: <Code>;Sender` header of an
awsQueryCompatible service, so botocore raises a ClientError whose code is
the query-protocol one (InvalidParameterValue, MissingParameter, ...). The
query protocol (form-encoded) is not served: a web page can send a form
cross-site without a preflight, which the browser guard exists to stop.

Security: the controller API's rules. On loopback without a token any
credentials are accepted (the SDK signs with whatever it has); with the
API's token, a request must be signed (SigV4) with the token as the secret
access key (any access key id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from shiftlab.controller import cbor
from shiftlab.controller.cloudwatch import (
    ERROR_TYPES,
    INVALID_VALUE,
    CloudWatchError,
    describe_alarms,
    get_metric_data,
    put_metric_data,
)

log = logging.getLogger("shiftlab.controller")

PREFIX = "/cloudwatch"
TARGET_PREFIX = "GraniteServiceVersion20100801"
CBOR_TYPE = "application/cbor"
JSON_TYPE = "application/x-amz-json-1.0"
CONTENT_TYPES = frozenset({CBOR_TYPE, JSON_TYPE})
ERROR_NAMESPACE = "com.amazonaws.cloudwatch#"

Operation = Callable[[Mapping[str, Any]], dict[str, Any]]


def _to_json(value: Any) -> Any:
    if isinstance(value, cbor.Timestamp):
        return value.seconds
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


class Endpoint:
    """The operations, bound to a controller (duck-typed: `.monitor.store`,
    `.monitor.evaluators`, `.monitor.alarm_states`, `.monitor.alarm_reasons`,
    `.clock`), and the secret a signature must use (None: not checked)."""

    def __init__(self, ctl: Any, secret: str | None) -> None:
        self.ctl = ctl
        self.secret = secret
        self.operations: dict[str, Operation] = {
            "PutMetricData": self.put_metric_data,
            "DescribeAlarms": self.describe_alarms,
            "GetMetricData": lambda params: get_metric_data(params, ctl.monitor.store, ctl.time_scale),
        }

    def put_metric_data(self, params: Mapping[str, Any]) -> dict[str, Any]:
        now = self.ctl.clock.now()
        store = self.ctl.monitor.store.custom
        refused = store.refused
        put_metric_data(params, store, dt.datetime.now(dt.UTC).timestamp(), now)
        if store.refused > refused:
            log.warning("PutMetricData: %d datapoint(s) of new metrics refused: the store holds %d metrics "
                        "(its cap)", store.refused - refused, store.max_series)
        return {}

    def describe_alarms(self, params: Mapping[str, Any]) -> dict[str, Any]:
        mon = self.ctl.monitor
        alarms = []
        for name, ev in mon.evaluators.items():
            alarm = ev.alarm.model_dump(mode="json", exclude_none=True, exclude={"Tags"})
            since = ev.since if ev.since is not None else self.ctl.clock.now()
            alarms.append({**alarm, "AlarmArn": f"arn:aws:cloudwatch:us-east-1:000000000000:alarm:{name}",
                           "StateValue": mon.alarm_states.get(name, "INSUFFICIENT_DATA"),
                           "StateReason": mon.alarm_reasons.get(name, ev.reason),
                           "StateUpdatedTimestamp": cbor.Timestamp(since)})
        return describe_alarms(params, alarms)

    # -- the wire ---------------------------------------------------------------

    async def cbor_call(self, request: web.Request) -> web.Response:
        return await self._call(request, request.match_info["operation"], CBOR_TYPE)

    async def json_call(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        service, _, operation = target.partition(".")
        if service != TARGET_PREFIX or not operation:
            return self._error(CloudWatchError("InvalidAction", f"X-Amz-Target {target!r} is not "
                                                                f"{TARGET_PREFIX}.<Operation>"), JSON_TYPE)
        return await self._call(request, operation, JSON_TYPE)

    async def _call(self, request: web.Request, operation: str, kind: str) -> web.Response:
        body = await request.read()
        try:
            if request.content_type != kind:
                raise CloudWatchError("InvalidAction", f"Content-Type must be {kind} (got {request.content_type})")
            if self.secret is not None:
                verify_signature(request, body, self.secret)
            op = self.operations.get(operation)
            if op is None:
                raise CloudWatchError("InvalidAction", f"{operation} is not an operation this endpoint serves "
                                                       f"({', '.join(self.operations)})")
            params = _decode(_inflate(body, request.headers.get("Content-Encoding", "")), kind)
            result = op(params)
        except CloudWatchError as exc:
            return self._error(exc, kind)
        if kind == CBOR_TYPE:
            return web.Response(body=cbor.dumps(result), content_type=CBOR_TYPE,
                                headers={"smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": str(uuid.uuid4())})
        return web.Response(body=json.dumps(_to_json(result)).encode(), content_type=JSON_TYPE,
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})

    def _error(self, exc: CloudWatchError, kind: str) -> web.Response:
        doc = {"__type": ERROR_NAMESPACE + ERROR_TYPES.get(exc.code, exc.code), "message": exc.message}
        headers = {"x-amzn-query-error": f"{exc.code};{'Sender' if exc.status < 500 else 'Receiver'}",
                   "x-amzn-RequestId": str(uuid.uuid4())}
        if kind == CBOR_TYPE:
            headers["smithy-protocol"] = "rpc-v2-cbor"
            return web.Response(status=exc.status, body=cbor.dumps(doc), content_type=CBOR_TYPE, headers=headers)
        return web.Response(status=exc.status, body=json.dumps(doc).encode(), content_type=JSON_TYPE,
                            headers=headers)


MAX_INFLATED = 16 * 1024 * 1024  # bytes a gzip body may inflate to (the body itself: aiohttp's 1 MiB, as AWS's 1 MB)


def _inflate(body: bytes, encoding: str) -> bytes:
    """botocore gzips PutMetricData bodies of 10 KiB and more (Content-Encoding: gzip)."""
    if "gzip" not in encoding.lower() or not body.startswith(b"\x1f\x8b"):
        return body  # not compressed, or already inflated by the server
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, MAX_INFLATED)
    except zlib.error as exc:
        raise CloudWatchError("SerializationException", f"the gzip body does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise CloudWatchError(INVALID_VALUE, f"the gzip body inflates to more than {MAX_INFLATED} bytes")
    return out


def _decode(body: bytes, kind: str) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = cbor.loads(body) if kind == CBOR_TYPE else json.loads(body)
    except (cbor.CBORError, ValueError) as exc:
        raise CloudWatchError("SerializationException", f"the body is not {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise CloudWatchError("SerializationException", "the body must be a structure (a map)")
    return data


# --- Signature Version 4 ----------------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html


SIGNATURE_WINDOW = 300


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_signature(request: web.Request, body: bytes, secret: str) -> None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise CloudWatchError("IncompleteSignature", "Authorization: an AWS4-HMAC-SHA256 signature is required "
                                                     "(this endpoint has a token: sign with it as the secret "
                                                     "access key)", 403)
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in part)
    try:
        scope = fields["Credential"].split("/", 1)[1]
        signed = fields["SignedHeaders"]
        signature = fields["Signature"]
        amz_date = request.headers["X-Amz-Date"]
        date, region, service, terminal = scope.split("/")
    except (KeyError, IndexError, ValueError):
        raise CloudWatchError("IncompleteSignature", "Authorization: Credential, SignedHeaders, Signature and "
                                                     "X-Amz-Date are required", 403) from None
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise CloudWatchError("IncompleteSignature", f"X-Amz-Date: {amz_date!r} is not YYYYMMDDTHHMMSSZ", 403) from None
    # "The request must reach AWS within five minutes of the time stamp in the request."
    if abs(dt.datetime.now(dt.UTC).timestamp() - signed_at) > SIGNATURE_WINDOW:
        raise CloudWatchError("SignatureDoesNotMatch", f"Signature expired: {amz_date} is more than "
                                                       f"{SIGNATURE_WINDOW // 60} minutes from now", 403)
    names = signed.split(";")
    headers = "".join(f"{n}:{' '.join(request.headers.get(n, '').split())}\n" for n in names)
    query = "&".join(sorted(f"{k}={v}" for k, v in (p.split("=", 1) if "=" in p else (p, "")
                                                    for p in request.query_string.split("&") if p)))
    canonical = "\n".join([request.method, request.raw_path.split("?", 1)[0], query, headers, signed,
                           hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), terminal)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise CloudWatchError("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                       "signature you provided (sign with the controller's token "
                                                       "as the secret access key)", 403)


def cloudwatch_env(api_url: str, token: str | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What tasks get so that an SDK's CloudWatch client reaches this endpoint
    unchanged: AWS_ENDPOINT_URL_CLOUDWATCH (the SDKs' service-specific
    endpoint variable) and, only when the environment has no AWS credentials
    or region at all, dummy ones (the token as the secret key when there is
    one). Real credentials are never replaced: the task's other AWS calls use them."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    env = {"AWS_ENDPOINT_URL_CLOUDWATCH": f"http://{host}:{parts.port}{PREFIX}"}
    if not environ.get("AWS_ACCESS_KEY_ID") and not environ.get("AWS_PROFILE"):
        env |= {"AWS_ACCESS_KEY_ID": "shiftlab", "AWS_SECRET_ACCESS_KEY": token or "shiftlab"}
    if not environ.get("AWS_REGION") and not environ.get("AWS_DEFAULT_REGION"):
        env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def add_routes(app: web.Application, ctl: Any, token: str | None) -> None:
    endpoint = Endpoint(ctl, token or None)
    app.router.add_post(f"{PREFIX}/service/{TARGET_PREFIX}/operation/{{operation}}", endpoint.cbor_call)
    app.router.add_post(PREFIX, endpoint.json_call)
    app.router.add_post(f"{PREFIX}/", endpoint.json_call)
