"""The long-lived objects of one control-plane process, shared by handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from control.api.authn import RestAuthenticator
from control.auth.secrets import SecretBox
from control.config import Settings
from control.metrics import Metrics
from control.store.apps import AppStore
from control.store.tenants import TenantStore
from control.throttle import RestThrottle

if TYPE_CHECKING:
    from control.rooms.service import RoomService
    from control.workers.registry import WorkerRegistry


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    box: SecretBox
    tenants: TenantStore
    apps: AppStore
    authenticator: RestAuthenticator
    throttle: RestThrottle
    metrics: Metrics
    rooms: RoomService | None = None
    workers: WorkerRegistry | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)
