"""Application management: A1–A6 of rest-api.md §3.1."""

from __future__ import annotations

from aiohttp import web

from control.api.middleware import CALLER, json_body
from control.errors import RestErrors, RestException
from control.services import SERVICES
from control.store.apps import ACTIVATION, DEACTIVATION, LISTABLE_STATES

MAX_APP_NAME = 64


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RestException(RestErrors.INVALID_PARAMETER, f"{name} must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise RestException(RestErrors.INVALID_PARAMETER, f"{name} must be in {bounds}")
    return value


async def create_app(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    body = await json_body(request, {"app_name"})
    name = body.get("app_name")
    if name is None:
        raise RestException(RestErrors.MISSING_PARAMETER, "app_name is required")
    if not isinstance(name, str):
        raise RestException(RestErrors.INVALID_PARAMETER, "app_name must be a string")
    if not name.strip():
        raise RestException(RestErrors.INVALID_PARAMETER, "app_name must not be empty")
    if len(name) > MAX_APP_NAME:
        raise RestException(RestErrors.INVALID_PARAMETER, f"app_name is longer than {MAX_APP_NAME} characters")
    if any(ord(c) < 0x20 for c in name):
        raise RestException(RestErrors.INVALID_PARAMETER, "app_name must not contain control characters")
    app_id = await svc.apps.create(request[CALLER].project_id, name)
    return web.json_response({"app_id": app_id}, status=201)


async def list_apps(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    unknown = set(request.query) - {"state", "offset", "limit"}
    if unknown:
        raise RestException(RestErrors.INVALID_PARAMETER, f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    state = request.query.get("state") or None
    if state is not None and state not in LISTABLE_STATES:
        raise RestException(RestErrors.INVALID_PARAMETER, f"state must be one of {', '.join(LISTABLE_STATES)}")
    page = _int_param(request, "offset", 0, 0, None)
    limit = _int_param(request, "limit", 100, 1, 100)
    project_id = request[CALLER].project_id
    count, apps = await svc.apps.list(project_id, state, page, limit)
    tenant = await svc.tenants.project_name(project_id)
    return web.json_response({"count": count, "apps": [svc.apps.to_json(a, tenant) for a in apps]})


async def show_app(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    project_id = request[CALLER].project_id
    app = await svc.apps.get(project_id, request.match_info["app_id"])
    return web.json_response(svc.apps.to_json(app, await svc.tenants.project_name(project_id)))


async def delete_app(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    app_id = request.match_info["app_id"]
    await svc.apps.delete(request[CALLER].project_id, app_id)
    if svc.rooms is not None:
        # room-rules.md R-APP-03: deleting an app dismisses its running rooms.
        await svc.rooms.dismiss_app(app_id)
    return web.Response(status=204)


async def _set_state(request: web.Request, state: str) -> web.Response:
    svc = request.app[SERVICES]
    app = await svc.apps.set_state(request[CALLER].project_id, request.match_info["app_id"], state)
    if svc.rooms is not None:
        svc.rooms.forget_app(app.app_id)  # joins see the new state at once
    return web.json_response(svc.apps.state_json(app))


async def enable_app(request: web.Request) -> web.Response:
    return await _set_state(request, ACTIVATION)


async def disable_app(request: web.Request) -> web.Response:
    return await _set_state(request, DEACTIVATION)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2/apps", create_app)
    app.router.add_get("/v2/apps", list_apps)
    app.router.add_get("/v2/apps/{app_id}", show_app)
    app.router.add_delete("/v2/apps/{app_id}", delete_app)
    app.router.add_post("/v2/apps/{app_id}/enable", enable_app)
    app.router.add_post("/v2/apps/{app_id}/disable", disable_app)
