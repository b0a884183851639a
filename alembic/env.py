"""Alembic environment. The connection is passed in by bot.store.migrate (works inside a running loop)."""

from __future__ import annotations

import asyncio

from alembic import context
from bot.store.db import create_engine
from bot.store.models import Base

target_metadata = Base.metadata
config = context.config


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: use 'bot db upgrade --config FILE'")

    async def _go() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
        await engine.dispose()

    asyncio.run(_go())


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run 'bot db upgrade'")
run_migrations_online()
