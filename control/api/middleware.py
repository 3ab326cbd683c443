"""REST plumbing shared by every route: request IDs, metrics, error bodies,
authentication and throttling.

Every response carries ``X-Request-Id``; every failure becomes the documented
``{"error_code", "error_msg"}`` body, including failures nobody planned for (those
are logged with the request ID and answered 500, never a stack trace).
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from control import ids
from control.api.authn import Caller
from control.errors import RestError, RestErrors, RestException
from control.services import SERVICES
from control.throttle import rest_category

log = logging.getLogger("kindling.api")

CALLER = web.RequestKey("caller", Caller)
REQUEST_ID = web.RequestKey("request_id", str)


def error_response(error: RestError, message: str | None = None) -> web.Response:
    return web.json_response({"error_code": error.code, "error_msg": message or error.msg}, status=error.status)


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


def _is_rest(path: str) -> bool:
    return path.startswith("/v1/") or path.startswith("/v2/")


@web.middleware
async def observe(request: web.Request, handler):
    """Outermost: request ID, error mapping and metrics for every request."""
    rid = ids.request_id()
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    try:
        response = await handler(request)
    except RestException as exc:
        response = error_response(exc.error, exc.message)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(RestErrors.BODY_TOO_LARGE, "InvalidParameterValue: request body too large")
    except web.HTTPNotFound:
        response = error_response(RestErrors.NOT_FOUND, "InvalidParameterValue: no such resource")
    except web.HTTPMethodNotAllowed:
        response = error_response(RestErrors.METHOD_NOT_ALLOWED, "InvalidParameterValue: method not allowed")
    except web.HTTPException as exc:
        if exc.status >= 400 and _is_rest(request.path):
            response = error_response(RestError(exc.status, "RTC.00001003", "InvalidParameterValue"), exc.reason)
        else:
            response = exc
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, rid)
        response = error_response(RestErrors.INTERNAL)
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    metrics = request.app[SERVICES].metrics
    route = _route_label(request)
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)
    return response


@web.middleware
async def rest_guard(request: web.Request, handler):
    """Authenticate and throttle /v1 and /v2 calls before any handler runs."""
    if not _is_rest(request.path):
        return await handler(request)
    svc = request.app[SERVICES]
    body = await request.read()
    caller = await svc.authenticator.authenticate(request, body)
    request[CALLER] = caller
    category = rest_category(request.path)
    if category is not None and not svc.throttle.allow(caller.project_id, category):
        raise RestException(RestErrors.THROTTLED, f"too many {category} requests")
    return await handler(request)


async def json_body(request: web.Request, allowed: set[str]) -> dict:
    """The request's JSON object, refusing what SparkRTC would refuse: non-JSON,
    non-objects and fields the API does not define."""
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "")
    if raw and ctype and not ctype.split(";")[0].strip().lower().endswith("json"):
        raise RestException(RestErrors.MALFORMED_BODY, "Content-Type must be application/json")
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise RestException(RestErrors.MALFORMED_BODY) from None
    if not isinstance(body, dict):
        raise RestException(RestErrors.MALFORMED_BODY, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RestException(RestErrors.INVALID_PARAMETER, f"unknown field(s): {', '.join(unknown)}")
    return body
