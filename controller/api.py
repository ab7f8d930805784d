"""The controller API: JSON over HTTP, plus an SSE event stream.

Loopback by default; any other address needs a token (shiftlab.common.netsafety).
`POST /api/deployments` is `update-service --force-new-deployment` with a
new revision; `GET /api/deployments/{id}` is DescribeServiceDeployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from importlib import resources
from typing import Any

from aiohttp import web

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.common.netsafety import bearer_middleware, browser_guard
from shiftlab.controller import activation, cloudwatch_http
from shiftlab.controller.config import TaskDefinitionSpec
from shiftlab.controller.router import DnsWeightedRouter, RouterError
from shiftlab.controller.service import DeploymentConflict, ServiceController
from shiftlab.controller.validation import check_deployment

CONTROLLER_KEY = web.AppKey("controller", ServiceController)
TOKEN_KEY = web.AppKey("token", str)  # "" when the API is open
STREAMS_KEY = web.AppKey("streams", set)  # the queues of the open SSE streams
_END_OF_STREAM: dict[str, Any] = {"type": "end"}
STREAM_BACKLOG = 1000  # messages a slow stream client may fall behind before it is cut off
EVENTS_PAGE = 1000
MIN_ID_PREFIX = 6  # a deployment id may be shortened to this many characters, as the views show it

# The dashboard's static files (controller/dashboard/*), by suffix.
DASHBOARD_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

SSE_HEARTBEAT = 15.0


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ConfigError as exc:
        return web.json_response({"error": "; ".join(exc.problems), "problems": exc.problems}, status=400)
    except DeploymentConflict as exc:
        return web.json_response({"error": str(exc)}, status=409)
    except KeyError as exc:
        return web.json_response({"error": f"not found: {exc.args[0]}"}, status=404)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(["body: not JSON"]) from None
    if not isinstance(data, dict):
        raise ConfigError(["body: must be a JSON object"])
    return data


def _ctl(request: web.Request) -> ServiceController:
    return request.app[CONTROLLER_KEY]


async def get_service(request: web.Request) -> web.Response:
    return web.json_response(_ctl(request).service_view())


async def create_deployment(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    body = await _body(request)
    problems: list[str] = []
    known = {"taskDefinition", "deploymentConfiguration", "strategy"}
    problems += [f"{k}: unknown field (known: {', '.join(sorted(known))})" for k in body if k not in known]
    overrides = body.get("taskDefinition") or {}
    if not isinstance(overrides, dict):
        problems.append("taskDefinition: must be an object")
        overrides = {}
    # As update-service: the fields given replace the file's, the rest stay.
    changes = body.get("deploymentConfiguration")
    if changes is None:
        changes = {}
    elif not isinstance(changes, dict):
        problems.append("deploymentConfiguration: must be an object")
        changes = {}
    if body.get("strategy"):
        changes = {**changes, "strategy": body["strategy"]}
    dc = None
    try:
        # The fields the file gave (not its defaults): ECS's rules on what must be given see the same input.
        dc = check_deployment({**ctl.settings.deployment.model_dump(mode="json", exclude_unset=True), **changes},
                              ctl.service.desiredCount, ctl.evaluators,
                              ctl.settings.lambda_functions,
                              advanced=None if ctl.service.exposure == "headless" else not ctl.single_group,
                              exposure=ctl.service.exposure)
    except ConfigError as exc:
        problems += exc.problems
    try:
        extra = {k: v for k, v in overrides.items() if k not in ("env",)}
        base = {**ctl.state.revisions[ctl.state.running_revision], **extra}
        parse(TaskDefinitionSpec, base, "taskDefinition")
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    assert dc is not None
    d = ctl.create_deployment(overrides, dc)
    return web.json_response(ctl.describe(d), status=201)


async def list_deployments(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    items = []
    for d in ctl.records.recent(ctl.name):
        if ctl.current is not None and ctl.current.id == d.id:
            d = ctl.current
        items.append(ctl.describe(d))
    return web.json_response({"serviceDeployments": items})


def _deployment(ctl: ServiceController, deployment_id: str) -> Any:
    if deployment_id in ("current", "latest"):
        if deployment_id == "current" and ctl.current is not None:
            return ctl.current
        latest = ctl.records.recent(ctl.name, limit=1)
        if not latest:
            raise KeyError("no deployments yet")
        return ctl.current if ctl.current and ctl.current.id == latest[0].id else latest[0]
    if ctl.current is not None and ctl.current.id == deployment_id:
        return ctl.current
    d = ctl.records.get(deployment_id)
    if d is None and len(deployment_id) >= MIN_ID_PREFIX:
        ids = ctl.records.ids_starting(deployment_id)
        if len(ids) > 1:
            raise ConfigError([f"deployment id {deployment_id!r} is ambiguous: give more of it"])
        d = ctl.records.get(ids[0]) if ids else None
        if d is not None and ctl.current is not None and ctl.current.id == d.id:
            d = ctl.current
    if d is None:
        raise KeyError(deployment_id)
    return d


async def describe_deployment(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    d = _deployment(ctl, request.match_info["id"])
    out = ctl.describe(d)
    out["events"] = ctl.records.events(d.id)
    return web.json_response(out)


async def stop_deployment(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    body = await _body(request)
    d = _deployment(ctl, request.match_info["id"])
    ctl.stop_deployment(d.id, rollback=bool(body.get("rollback", False)))
    return web.json_response(ctl.describe(d), status=202)


async def approve(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    d = _deployment(ctl, request.match_info["id"])
    ctl.approve(d.id)
    return web.json_response(ctl.describe(d), status=202)


async def task_logs(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    tail = request.query.get("tail")
    try:
        text = await ctl.backend.logs(request.match_info["task"], int(tail) if tail else None)
    except KeyError:
        raise KeyError(f"task {request.match_info['task']}") from None
    return web.Response(text=text)


async def list_tasks(request: web.Request) -> web.Response:
    ctl = _ctl(request)
    tasks = await ctl.backend.tasks(ctl.name)
    return web.json_response({"tasks": [
        {"taskId": t.task_id, "revision": t.revision, "colour": t.colour, "lastStatus": t.state,
         "address": f"{t.host}:{t.port}", "stoppedReason": t.stopped_reason, "exitCode": t.exit_code,
         "pid": t.pid}
        for t in tasks]})


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError([f"{name}: {raw!r} is not an integer in {low}..{high}"])
    return int(raw)


async def get_events(request: web.Request) -> web.Response:
    """`?after=SEQ&limit=N` pages forward from SEQ (the oldest first); `?tail=N`
    gives the newest N. `more` says whether a next page exists."""
    ctl = _ctl(request)
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", EVENTS_PAGE, 1, 10 * EVENTS_PAGE)
    tail = _int_param(request, "tail", 0, 0, 10 * EVENTS_PAGE)
    deployment = request.query.get("deployment")
    if tail:
        events = ctl.records.events(deployment, after, tail, newest=True)
        more = False
    else:
        events = ctl.records.events(deployment, after, limit + 1)
        more = len(events) > limit
        events = events[:limit]
    return web.json_response({"events": events, "more": more})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every transition, weight change, alarm state and
    a metrics frame per scrape. `Last-Event-ID` replays missed log events."""
    ctl = _ctl(request)
    if not _stream_allowed(request):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=STREAM_BACKLOG + 1)

    def push(message: dict[str, Any]) -> None:
        # A client this far behind is cut off after what it has queued rather
        # than silently missing messages: it reconnects with Last-Event-ID and
        # the rest of the log is replayed. The last slot is for the cut.
        if queue.qsize() < STREAM_BACKLOG:
            queue.put_nowait(message)
        elif not queue.full():
            queue.put_nowait(_END_OF_STREAM)

    unsubscribe = ctl.subscribe(push)
    request.app[STREAMS_KEY].add(queue)
    try:
        last = request.headers.get("Last-Event-ID") or request.query.get("after")
        if last and last.isdigit():
            after = int(last)
            while page := ctl.records.events(None, after, EVENTS_PAGE):
                for ev in page:
                    await _send(resp, {"type": "event", "event": ev})
                after = page[-1]["seq"]
        await _send(resp, {"type": "service", "service": ctl.service_view()})
        if ctl.current is not None:
            await _send(resp, {"type": "deployment", "deployment": ctl.describe(ctl.current)})
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if message is _END_OF_STREAM:
                break
            await _send(resp, message)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
        request.app[STREAMS_KEY].discard(queue)
    return resp


async def _end_streams(app: web.Application) -> None:
    """On shutdown: a stream never ends by itself, and aiohttp would wait for
    open ones (its shutdown timeout, twice) before stopping."""
    for queue in app[STREAMS_KEY]:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(_END_OF_STREAM)


def _stream_allowed(request: web.Request) -> bool:
    """The stream takes the token as `?token=` too: a browser's EventSource
    cannot send an Authorization header."""
    token = request.app[TOKEN_KEY]
    if not token:
        return True
    header = request.headers.get("Authorization", "").encode()
    if hmac.compare_digest(header, f"Bearer {token}".encode()):
        return True
    return hmac.compare_digest(request.query.get("token", "").encode(), token.encode())


async def _send(resp: web.StreamResponse, message: dict[str, Any]) -> None:
    event_id = message["event"]["seq"] if message.get("type") == "event" else None
    head = f"id: {event_id}\n" if event_id is not None else ""
    await resp.write(f"{head}event: {message['type']}\ndata: {json.dumps(message)}\n\n".encode())


async def dashboard(request: web.Request) -> web.Response:
    try:
        page = resources.files("shiftlab.controller").joinpath("dashboard/index.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        page = "<!doctype html><title>shiftlab</title><p>shiftlab controller API: see /api/service</p>"
    return web.Response(text=page, content_type="text/html")


def _dashboard_files() -> dict[str, str]:
    """Name -> content type of each static file shipped next to index.html."""
    folder = resources.files("shiftlab.controller").joinpath("dashboard")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return {f.name: DASHBOARD_TYPES[suffix] for f in folder.iterdir()
                if (suffix := "." + f.name.rpartition(".")[2]) in DASHBOARD_TYPES and f.is_file()}
    return {}


async def dashboard_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _dashboard_files().get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    body = resources.files("shiftlab.controller").joinpath("dashboard").joinpath(name).read_bytes()
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})


async def traffic(request: web.Request) -> web.Response:
    """What the load balancer has in force: each listener rule's weights and
    each target group's target health (read from the proxy, not the records)."""
    ctl = _ctl(request)
    kinds = [("production", r) for r in ctl.rules_of("production")] + [("test", r) for r in ctl.rules_of("test")]
    try:
        weights = await asyncio.gather(*[ctl.router.weights(rule) for _, rule in kinds])
        health = await asyncio.gather(*[ctl.router.target_health(g) for g in ctl.target_groups])
    except RouterError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    rules = []
    for (kind, rule), w in zip(kinds, weights, strict=True):
        total = sum(w.values())
        rules.append({"rule": rule, "kind": kind, "weights": w,
                      "percent": {g: round(100 * v / total, 2) if total else 0.0 for g, v in w.items()}})
        if isinstance(ctl.router, DnsWeightedRouter) and ctl.router.owns(rule):
            rules[-1]["dnsRecords"] = ctl.router.view()  # weighted DNS records: clients follow within a TTL
    return web.json_response({"rules": rules, "targetHealth": dict(zip(ctl.target_groups, health, strict=True))})


async def get_activation(request: web.Request) -> web.Response:
    """A headless service's activation flags (controller.activation), every revision's."""
    return web.json_response({"revisions": _ctl(request).activation()})


async def get_revision_activation(request: web.Request) -> web.Response:
    """One revision's flag, as its tasks ask for it."""
    ctl = _ctl(request)
    rev = activation.revision_of(request.match_info["revision"])
    flags = ctl.activation()
    if rev not in flags:
        raise KeyError(f"revision {rev}")
    return web.json_response({"revision": rev, "active": flags[rev]})


async def put_activation(request: web.Request) -> web.Response:
    """Set flags: {"revisions": {"2": true, "1": false}} (numbers or revision ARNs)."""
    try:
        changes = activation.changes_from_body(await _body(request))
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    return web.json_response({"revisions": _ctl(request).set_active(changes)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_api_app(ctl: ServiceController, token: str | None, bind_host: str) -> web.Application:
    # The page and its files hold no data; the stream checks the token itself (see _stream_allowed).
    open_paths = ("/", "/api/healthz", "/api/stream", *(f"/dashboard/{n}" for n in _dashboard_files()))
    # The CloudWatch endpoint checks the token itself: SDKs sign with it (SigV4), they send no bearer token.
    app = web.Application(middlewares=[
        browser_guard(bind_host, {cloudwatch_http.PREFIX: cloudwatch_http.CONTENT_TYPES}),
        bearer_middleware(token, open_paths=open_paths, open_prefixes=(cloudwatch_http.PREFIX + "/",
                                                                       cloudwatch_http.PREFIX)),
        errors])
    app[CONTROLLER_KEY] = ctl
    app[TOKEN_KEY] = token or ""
    app[STREAMS_KEY] = set()
    app.on_shutdown.append(_end_streams)
    r = app.router
    r.add_get("/", dashboard)
    r.add_get("/dashboard/{name}", dashboard_file)
    r.add_get("/api/healthz", healthz)
    r.add_get("/api/service", get_service)
    r.add_get("/api/deployments", list_deployments)
    r.add_post("/api/deployments", create_deployment)
    r.add_get("/api/deployments/{id}", describe_deployment)
    r.add_post("/api/deployments/{id}/stop", stop_deployment)
    r.add_post("/api/deployments/{id}/approve", approve)
    r.add_get("/api/tasks", list_tasks)
    r.add_get("/api/tasks/{task}/logs", task_logs)
    r.add_get("/api/events", get_events)
    r.add_get("/api/stream", stream)
    r.add_get("/api/traffic", traffic)
    r.add_get("/api/activation", get_activation)
    r.add_put("/api/activation", put_activation)
    r.add_get("/api/activation/{revision}", get_revision_activation)
    cloudwatch_http.add_routes(app, ctl, token)
    return app
