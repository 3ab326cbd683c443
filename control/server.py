"""Assembling and running one control-plane process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
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
        sessions, box, max_apps=settings.max_apps_per_project, domain=settings.public_domain()
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
    from control.rooms.media import MediaCoordinator
    from control.rooms.service import RoomService
    from control.workers.registry import WorkerRegistry

    svc.workers = WorkerRegistry(svc)
    metrics.watch_workers(svc.workers)
    svc.rooms = RoomService(svc)
    svc.rooms.media = MediaCoordinator(svc.rooms)
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
    from control.api import web as web_api
    from control.signalling import endpoint as signalling
    from control.workers import registry as workers_rpc

    rooms_api.add_routes(app)
    signalling.add_routes(app)
    workers_rpc.add_routes(app)
    web_api.add_routes(app)

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


def _announce(message: str) -> None:
    print(message, flush=True)  # stdout may be a pipe: the one-time secret must not wait in a buffer


async def serve(settings: Settings, database_url: str, *, announce=_announce) -> None:
    """Run until SIGINT/SIGTERM."""
    if settings.workers > 0 and not settings.worker_secret:
        settings.worker_secret = secrets.token_urlsafe(24)
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

    children = spawn_workers(settings, scheme)
    if children:
        announce(f"Started {len(children)} SFU worker process(es)")
    monitor = asyncio.create_task(_watch_workers(settings, scheme, children))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    announce("Kindling shutting down")
    monitor.cancel()
    stop_workers(children)
    await runner.cleanup()


async def _watch_workers(settings: Settings, scheme: str, children: list[subprocess.Popen]) -> None:
    """Restart a worker process that died (its rooms are re-placed meanwhile), at
    most once per 5 s per slot so a worker that cannot start does not spin."""
    last_start = [0.0] * len(children)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(1.0)
        for i, child in enumerate(children):
            code = child.poll()
            if code is None or loop.time() - last_start[i] < 5.0:
                continue
            log.warning("SFU worker %d exited with code %s; restarting it", i, code)
            last_start[i] = loop.time()
            children[i] = _spawn_one(settings, scheme, i)


def spawn_workers(settings: Settings, scheme: str) -> list[subprocess.Popen]:
    """``--workers N``: one SFU worker process per core by default, on this host."""
    if settings.workers <= 0:
        return []
    if not settings.worker_secret:
        settings.worker_secret = secrets.token_urlsafe(24)
    return [_spawn_one(settings, scheme, i) for i in range(settings.workers)]


def _spawn_one(settings: Settings, scheme: str, index: int) -> subprocess.Popen:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"{'wss' if scheme == 'https' else 'ws'}://{host}:{settings.port}/rpc/worker"
    env = dict(os.environ, KINDLING_WORKER_SECRET=settings.worker_secret or "")
    if scheme == "https":
        env["KINDLING_WORKER_INSECURE_TLS"] = "1"  # our own child, talking to our own certificate
    return subprocess.Popen(
        [sys.executable, "-m", "sfu.worker", "--control", url, "--media-host", settings.media_host,
         "--worker-id", f"{socket.gethostname()}-w{index}"],
        env=env,
    )


def stop_workers(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()


def run_serve(settings: Settings) -> None:
    # Until serve() installs its loop handlers, let SIGTERM unwind so the finally runs.
    signal.signal(signal.SIGTERM, _terminate)
    embedded: EmbeddedPostgres | None = None
    database_url = settings.database_url
    try:
        if not database_url:
            embedded = EmbeddedPostgres(settings.data_dir.resolve() / "pgdata")
            database_url = embedded.start()
        _run(serve(settings, database_url))
    finally:
        if embedded is not None:
            embedded.stop()


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
