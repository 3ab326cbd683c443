"""Assembling and running one control-plane process."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web

from control.api import apps as apps_api
from control.api import health as health_api
from control.api.authn import RestAuthenticator
from control.api.middleware import observe, rest_guard
from control.auth.secrets import SecretBox
from control.config import Settings
from control.metrics import Metrics
from control.services import SERVICES, Services
from control.store.apps import AppStore
from control.store.database import EmbeddedPostgres, make_engine, make_sessionmaker
from control.store.migrate import upgrade_head
from control.store.tenants import IssuedCredential, TenantStore
from control.throttle import RestThrottle

log = logging.getLogger("kindling")


async def build_services(settings: Settings, database_url: str) -> Services:
    engine = make_engine(database_url)
    await upgrade_head(engine)
    sessions = make_sessionmaker(engine)
    box = SecretBox.load(settings.master_key, settings.data_dir)
    tenants = TenantStore(sessions, box)
    apps = AppStore(
        sessions, box, max_apps=settings.max_apps_per_project, domain=f"rtc.{settings.host}"
    )
    metrics = Metrics()
    metrics.watch_pool(engine)
    svc = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        tenants=tenants,
        apps=apps,
        authenticator=RestAuthenticator(tenants, settings.api_tokens, settings.auth_clock_skew_s),
        throttle=RestThrottle(settings.rest_throttle),
        metrics=metrics,
    )
    from control.rooms.service import RoomService

    svc.rooms = RoomService(svc)
    return svc


async def bootstrap_credentials(svc: Services) -> IssuedCredential | None:
    """Seed the pair named by the environment, or create a first pair on an empty
    database. Returns a newly generated pair (to print once), else None."""
    s = svc.settings
    if s.seed_access_key and s.seed_secret_key:
        project = await svc.tenants.ensure_project(s.seed_project_id)
        await svc.tenants.create_credential(
            project, access_key=s.seed_access_key, secret_key=s.seed_secret_key, description="from environment"
        )
        return None
    if await svc.tenants.count_active_credentials() == 0 and not await svc.tenants.list_projects():
        project = await svc.tenants.ensure_project(s.seed_project_id)
        return await svc.tenants.create_credential(project, description="created on first start")
    return None


def make_app(svc: Services) -> web.Application:
    app = web.Application(
        middlewares=[observe, rest_guard], client_max_size=svc.settings.max_body_bytes
    )
    app[SERVICES] = svc
    health_api.add_routes(app)
    apps_api.add_routes(app)
    from control.api import rooms as rooms_api
    from control.signalling import endpoint as signalling

    rooms_api.add_routes(app)
    signalling.add_routes(app)

    async def on_startup(_: web.Application) -> None:
        if svc.rooms is not None:
            await svc.rooms.start()

    async def on_cleanup(_: web.Application) -> None:
        if svc.rooms is not None:
            await svc.rooms.stop()
        await svc.engine.dispose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


@dataclass
class Serving:
    runner: web.AppRunner
    services: Services
    port: int


async def serve(settings: Settings, database_url: str, *, announce=print) -> None:
    """Run until SIGINT/SIGTERM."""
    svc = await build_services(settings, database_url)
    issued = await bootstrap_credentials(svc)
    if issued is not None:
        announce(
            "Created a project and an AK/SK pair (shown once; store the secret key now):\n"
            f"  project_id: {issued.project_id}\n"
            f"  access_key: {issued.access_key}\n"
            f"  secret_key: {issued.secret_key}"
        )
    app = make_app(svc)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context(settings))
    await site.start()
    scheme = "https" if settings.tls_cert else "http"
    announce(f"Kindling control plane listening on {scheme}://{settings.host}:{settings.port}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    announce("Kindling shutting down")
    await runner.cleanup()


def run_serve(settings: Settings) -> None:
    embedded: EmbeddedPostgres | None = None
    database_url = settings.database_url
    if not database_url:
        embedded = EmbeddedPostgres(settings.data_dir.resolve() / "pgdata")
        database_url = embedded.start()
    try:
        _run(serve(settings, database_url))
    finally:
        if embedded is not None:
            embedded.stop()


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
