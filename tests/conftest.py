"""Shared fixtures: a real PostgreSQL (embedded by default, or
``KINDLING_TEST_DATABASE_URL``), a fresh migrated database per test (cloned from a
template, so each test starts empty in ~0.1 s), and a real Kindling server on
127.0.0.1 with a seeded project and AK/SK pair."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from control.config import Settings
from control.server import build_services, make_app
from control.services import Services
from control.store.database import EmbeddedPostgres, make_engine
from control.store.migrate import upgrade_head
from kindling_sdk import Client, make_signature

pytest_plugins = ["tests.media_fixtures"]

TEMPLATE = "kindling_test_template"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _with_db(url: str, name: str) -> str:
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


@pytest.fixture(scope="session")
def pg_url():
    external = os.environ.get("KINDLING_TEST_DATABASE_URL")
    if external:
        yield external.replace("postgresql://", "postgresql+asyncpg://", 1)
        return
    tmp = Path(tempfile.mkdtemp(prefix="kindling-pg-"))
    pg = EmbeddedPostgres(tmp / "pgdata")
    url = pg.start()
    yield url
    pg.stop()


def _dsn(url: str) -> dict:
    # asyncpg takes the unix socket directory as "host" in the query string.
    from sqlalchemy.engine import make_url

    u = make_url(url)
    kw = {"user": u.username or "postgres", "database": u.database or "postgres"}
    if u.password:
        kw["password"] = u.password
    host = u.query.get("host") or u.host
    if host:
        kw["host"] = host
    port = u.query.get("port") or u.port
    if port:
        kw["port"] = int(port)
    return kw


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(**_dsn(_with_db(url, "postgres")))
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_url(pg_url):
    async def build():
        await _admin(pg_url, f'DROP DATABASE IF EXISTS "{TEMPLATE}"', f'CREATE DATABASE "{TEMPLATE}"')
        engine = make_engine(_with_db(pg_url, TEMPLATE), pool_size=1)
        await upgrade_head(engine)
        await engine.dispose()

    asyncio.run(build())
    return _with_db(pg_url, TEMPLATE)


@pytest.fixture
def database_url(pg_url, template_url):
    name = "k_" + uuid.uuid4().hex[:16]
    asyncio.run(_admin(pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
    yield _with_db(pg_url, name)
    if os.environ.get("KINDLING_TEST_DATABASE_URL"):
        asyncio.run(_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=free_port(),
        data_dir=tmp_path / "data",
        heartbeat_interval_s=0.5,
        disconnect_after_s=2.0,
        keepalive_s=3.0,
        ws_rate_per_s=50.0,
        ws_burst=100,
    )


@dataclass
class Kindling:
    """A running server plus the credentials of its seeded project."""

    settings: Settings
    database_url: str
    services: Services
    runner: web.AppRunner
    project_id: str
    ak: str
    sk: str
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def rtc(self, ak: str | None = None, sk: str | None = None, project_id: str | None = "same"):
        """The official huaweicloudsdkcloudrtc v2 client pointed at this server."""
        from huaweicloudsdkcloudrtc.v2 import CloudRTCClient
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.http.http_config import HttpConfig

        config = HttpConfig.get_default_config()
        config.retry_times = 0
        pid = self.project_id if project_id == "same" else project_id
        return (
            CloudRTCClient.new_builder()
            .with_http_config(config)
            .with_credentials(BasicCredentials(ak or self.ak, sk or self.sk, pid))
            .with_endpoints([self.url])
            .build()
        )

    async def new_project(self) -> tuple[str, str, str]:
        pid = await self.services.tenants.ensure_project(name=f"p-{uuid.uuid4().hex[:6]}")
        cred = await self.services.tenants.create_credential(pid)
        return pid, cred.access_key, cred.secret_key

    async def app(self, name: str | None = None) -> tuple[str, str]:
        """Create an app in the seeded project: (app_id, app_key)."""
        app_id = await self.services.apps.create(self.project_id, name or f"app-{uuid.uuid4().hex[:8]}")
        joinable = await self.services.apps.for_join(app_id)
        return app_id, joinable.app_key

    def client(self, app_id: str, **kw) -> Client:
        c = Client(self.url, app_id, **kw)
        self.clients.append(c)
        return c


def sign(app_key: str, app_id: str, room_id: str, user_id: str, valid_for: int = 3600) -> tuple[str, str]:
    import time

    ctime = str(int(time.time()) + valid_for)
    return ctime, make_signature(app_key, app_id, room_id, user_id, ctime)


async def start_kindling(settings: Settings, database_url: str) -> tuple[Services, web.AppRunner]:
    svc = await build_services(settings, database_url)
    runner = web.AppRunner(make_app(svc), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    return svc, runner


@pytest.fixture
async def kindling(settings, database_url):
    svc, runner = await start_kindling(settings, database_url)
    pid = await svc.tenants.ensure_project(name="tests")
    cred = await svc.tenants.create_credential(pid)
    k = Kindling(settings, database_url, svc, runner, pid, cred.access_key, cred.secret_key)
    yield k
    for c in k.clients:
        try:
            await c.close()
        except Exception:
            pass
    await k.runner.cleanup()
