"""Database engines and the schema check. SQLite (WAL) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(url: str, *, echo: bool = False, schema: str | None = None) -> AsyncEngine:
    """Build the async engine. For a SQLite file, creates its directory and turns on WAL.

    ``schema`` (PostgreSQL only) pins the connections' search_path, so several bots or test runs can share
    one database.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if schema:
            raise ValueError("store.schema applies to PostgreSQL only")
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise ValueError(f"store.url: use postgresql+asyncpg://..., got driver {parsed.get_driver_name()!r}")
        if schema:
            if not schema.replace("_", "").isalnum():
                raise ValueError(f"store.schema {schema!r}: letters, digits and underscores only")
            kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    raise ValueError(f"store.url: unsupported database {parsed.get_backend_name()!r} (use sqlite+aiosqlite or postgresql+asyncpg)")


def redacted_url(url: str) -> str:
    """The URL with any password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)
