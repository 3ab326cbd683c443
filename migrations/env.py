"""Alembic environment.

Two ways in: ``kindling serve`` hands over a live connection in
``config.attributes["connection"]`` (so migrations share its engine and advisory
lock); the ``alembic`` command line builds its own async engine from
``KINDLING_DATABASE_URL``.
"""

import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from control.store.database import to_asyncpg_url
from control.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_with(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    url = os.environ.get("KINDLING_DATABASE_URL")
    if not url:
        raise SystemExit("set KINDLING_DATABASE_URL (or let `kindling serve` run the migrations)")
    engine = create_async_engine(to_asyncpg_url(url))
    async with engine.connect() as conn:
        await conn.run_sync(run_with)
        await conn.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_async())
