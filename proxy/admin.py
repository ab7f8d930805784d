"""The admin API: the ELBv2 API's role, JSON over HTTP on its own port.

This is the contract the controller uses (see README, "Admin API"). Every
change answers with what is now in force, so a caller can verify a weight
step by reading it back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shiftlab.common.configfile import ConfigError
from shiftlab.common.netsafety import bearer_middleware, browser_guard
from shiftlab.proxy.config import parse_target
from shiftlab.proxy.state import LoadBalancerState, StateError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LB_KEY = web.AppKey("lb", LoadBalancerState)
REGISTRY_KEY = web.AppKey("registry", object)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StateError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    except ConfigError as exc:
        return web.json_response({"error": "; ".join(exc.problems), "problems": exc.problems}, status=400)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StateError("the body is not JSON") from None


def _rule_ref(request: web.Request) -> str:
    return f"{request.match_info['listener']}/{request.match_info['rule']}"


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[LB_KEY].describe())


async def get_rule(request: web.Request) -> web.Response:
    return web.json_response(request.app[LB_KEY].rule(_rule_ref(request)).describe())


async def put_forward(request: web.Request) -> web.Response:
    lb = request.app[LB_KEY]
    rule = lb.set_forward(_rule_ref(request), await _json_body(request))
    assert rule.forward is not None
    return web.json_response({"Rule": rule.id, "ForwardConfig": rule.forward.describe()})


async def put_rules(request: web.Request) -> web.Response:
    lb = request.app[LB_KEY]
    ls = lb.set_rules(request.match_info["listener"], await _json_body(request))
    return web.json_response({"Listener": ls.name, "Rules": [r.describe() for r in ls.all_rules()]})


async def get_group(request: web.Request) -> web.Response:
    return web.json_response(request.app[LB_KEY].group(request.match_info["name"]).describe())


def _targets(body: Any) -> list[tuple[str, int]]:
    items = body.get("Targets") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise StateError('expected {"Targets": [{"Id": "host:port"} or {"Id": "host", "Port": n}]}')
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, dict) or not isinstance(t.get("Id"), str):
            raise StateError(f"Targets[{i}]: needs Id")
        try:
            out.append(parse_target(t["Id"], t.get("Port")))
        except ValueError as exc:
            raise StateError(f"Targets[{i}]: {exc}") from None
    return out


async def register(request: web.Request) -> web.Response:
    lb = request.app[LB_KEY]
    group = lb.group(request.match_info["name"])
    now = time.time()
    for host, port in _targets(await _json_body(request)):
        group.register(host, port, now)
    return web.json_response(group.describe())


async def deregister(request: web.Request) -> web.Response:
    lb = request.app[LB_KEY]
    group = lb.group(request.match_info["name"])
    for host, port in _targets(await _json_body(request)):
        ident = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        group.deregister(ident)
    return web.json_response(group.describe())


async def get_stats(request: web.Request) -> web.Response:
    lb = request.app[LB_KEY]
    return web.json_response(lb.stats.snapshot(lb.health_counts()))


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])  # type: ignore[arg-type]
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_admin_app(lb: LoadBalancerState, registry: Any, token: str | None, bind_host: str) -> web.Application:
    # The guard first: a web page's request is refused before anything else (see browser_guard).
    bearer = bearer_middleware(token, open_paths=("/admin/healthz",))
    app = web.Application(middlewares=[browser_guard(bind_host), bearer, errors])
    app[LB_KEY] = lb
    app[REGISTRY_KEY] = registry
    r = app.router
    r.add_get("/admin/healthz", healthz)
    r.add_get("/admin/state", get_state)
    r.add_get("/admin/stats", get_stats)
    r.add_get("/admin/listeners/{listener}/rules/{rule}", get_rule)
    r.add_put("/admin/listeners/{listener}/rules/{rule}/forward", put_forward)
    r.add_put("/admin/listeners/{listener}/rules", put_rules)
    r.add_get("/admin/target-groups/{name}", get_group)
    r.add_post("/admin/target-groups/{name}/register", register)
    r.add_post("/admin/target-groups/{name}/deregister", deregister)
    r.add_get("/metrics", metrics)
    return app
