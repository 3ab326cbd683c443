"""Who is calling the REST API: AK/SK signatures or admin tokens, resolved to a project."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from control.auth import aksk
from control.config import ApiToken
from control.errors import RestErrors, RestException
from control.store.tenants import TenantStore
from control.timefmt import utcnow

_CACHE_TTL_S = 5.0  # a revoked AK stops working within this many seconds


@dataclass(frozen=True, slots=True)
class Caller:
    project_id: str
    access_key: str | None  # None for token callers


class RestAuthenticator:
    def __init__(self, tenants: TenantStore, tokens: list[ApiToken], max_skew_s: int) -> None:
        self._tenants = tenants
        self._tokens = tokens
        self._max_skew_s = max_skew_s
        self._cache: dict[str, tuple[float, tuple[str, str] | None]] = {}

    async def _secret(self, ak: str) -> tuple[str, str] | None:
        now = time.monotonic()
        hit = self._cache.get(ak)
        if hit is not None and now - hit[0] < _CACHE_TTL_S:
            return hit[1]
        found = await self._tenants.lookup(ak)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[ak] = (now, found)
        return found

    async def authenticate(self, request: web.Request, body: bytes) -> Caller:
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            caller = await self._by_token(request, token)
        else:
            caller = await self._by_signature(request, body)
        header_project = request.headers.get("X-Project-Id")
        if header_project and header_project != caller.project_id:
            raise RestException(RestErrors.AUTH_FORBIDDEN, "X-Project-Id does not match the credentials")
        # /v1/{project_id}/... must name the caller's project.
        parts = request.path.split("/")
        if len(parts) > 3 and parts[1] == "v1" and parts[3] == "rtc" and parts[2] != caller.project_id:
            raise RestException(RestErrors.AUTH_FORBIDDEN, "the project in the path is not yours")
        return caller

    async def _by_token(self, request: web.Request, token: str) -> Caller:
        match: ApiToken | None = None
        for candidate in self._tokens:
            if hmac.compare_digest(candidate.token.encode(), token.encode()):
                match = candidate
        if match is None:
            raise RestException(RestErrors.AUTH_FAILED, "unknown X-Auth-Token")
        project = match.project_id or request.headers.get("X-Project-Id")
        if not project or not await self._tenants.project_exists(project):
            raise RestException(RestErrors.OPERATION_UNAUTHORIZED)
        return Caller(project, None)

    async def _by_signature(self, request: web.Request, body: bytes) -> Caller:
        try:
            auth = aksk.parse_authorization(request.headers.get("Authorization"))
        except aksk.SignatureError as exc:
            raise RestException(RestErrors.AUTH_FAILED, str(exc)) from None
        found = await self._secret(auth.access_key)
        if found is None:
            raise RestException(RestErrors.AUTH_FAILED, "unknown or revoked access key")
        project_id, secret = found
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            aksk.verify(
                method=request.method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=request.headers,
                body=body,
                auth=auth,
                secret_key=secret,
                now=utcnow(),
                max_skew_s=self._max_skew_s,
            )
        except aksk.SignatureError as exc:
            raise RestException(RestErrors.AUTH_FAILED, str(exc)) from None
        return Caller(project_id, auth.access_key)
