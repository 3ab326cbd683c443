"""Room management: M1 (remove users) and M2 (dismiss) of rest-api.md §3.7."""

from __future__ import annotations

from aiohttp import web

from control.api.middleware import CALLER, json_body
from control.errors import RestErrors, RestException
from control.services import SERVICES
from control.signalling.protocol import ID_RE

MAX_USERS_PER_CALL = 500


async def _app_and_room(request: web.Request) -> tuple[str, str]:
    svc = request.app[SERVICES]
    app_id = request.match_info["app_id"]
    room_id = request.match_info["room_id"]
    await svc.apps.get(request[CALLER].project_id, app_id)  # 404 for unknown or foreign apps
    if not ID_RE.fullmatch(room_id):
        raise RestException(RestErrors.INVALID_PARAMETER, "room_id must be 1-64 of [A-Za-z0-9_-]")
    return app_id, room_id


async def remove_users(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    app_id, room_id = await _app_and_room(request)
    body = await json_body(request, {"user_ids"})
    user_ids = body.get("user_ids")
    if user_ids is None:
        raise RestException(RestErrors.MISSING_PARAMETER, "user_ids is required")
    if not isinstance(user_ids, list) or not user_ids:
        raise RestException(RestErrors.INVALID_PARAMETER, "user_ids must be a non-empty array")
    if len(user_ids) > MAX_USERS_PER_CALL:
        raise RestException(RestErrors.INVALID_PARAMETER, f"at most {MAX_USERS_PER_CALL} user_ids per call")
    if not all(isinstance(u, str) for u in user_ids):
        raise RestException(RestErrors.INVALID_PARAMETER, "user_ids must be strings")
    # Unknown users (or an unknown room) are a no-op: the call is "delivered" (rest-api.md M1).
    svc.rooms.remove_users(app_id, room_id, [u for u in user_ids if ID_RE.fullmatch(u)])
    return web.Response(status=202)


async def dismiss_room(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    app_id, room_id = await _app_and_room(request)
    if await request.read():
        await json_body(request, set())
    if not svc.rooms.dismiss(app_id, room_id):
        raise RestException(RestErrors.ROOM_NOT_EXIST, "the room does not exist")
    return web.Response(status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2/apps/{app_id}/rooms/{room_id}/batch-remove-users", remove_users)
    app.router.add_post("/v2/apps/{app_id}/rooms/{room_id}/dismiss", dismiss_room)
