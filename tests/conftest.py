"""Shared fixtures: databases (SQLite file per test, a fresh PostgreSQL schema per test), settings."""

from __future__ import annotations

import decimal
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.db import create_engine

# PTB 22 builds RetryAfter through a deprecated property unless this is set; with filterwarnings=error the
# warning would replace the real exception (measured with the fake Bot API server).
os.environ.setdefault("PTB_TIMEDELTA", "1")

@pytest.fixture(autouse=True)
def pristine_decimal_context() -> Iterator[None]:
    """Every test starts with the default decimal context. ccxt changes the context it runs in (ROUND_HALF_UP,
    Underflow trapped); a test that calls ccxt directly must not change the arithmetic of the tests after it."""
    decimal.setcontext(decimal.Context())
    yield
    decimal.setcontext(decimal.Context())


PG_URL = os.environ.get("BOT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _fresh_decimal_context() -> Iterator[None]:
    """Every test starts from Python's default decimal context. ccxt changes the context it finds in place
    (ROUND_HALF_UP, Underflow trapped); a test that calls raw ccxt must not leak that into the next test."""
    decimal.setcontext(decimal.DefaultContext.copy())
    yield


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


async def _pg_schema() -> str:
    """Create a fresh schema so parallel runs and helpers never collide. Fails loudly if PostgreSQL is down."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - environment problem, reported clearly
        raise RuntimeError(
            f"PostgreSQL is required for this test and is not reachable at {PG_URL} ({type(exc).__name__}); "
            "start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ) from None
    finally:
        await admin.dispose()
    return schema


async def _drop_schema(schema: str) -> None:
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()


class DB:
    """A test database: ``url`` plus the PostgreSQL ``schema`` (None for SQLite) = store.url / store.schema."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url = url
        self.schema = schema

    def engine(self) -> AsyncEngine:
        return create_engine(self.url, schema=self.schema)

    def store_toml(self) -> str:
        lines = ["[store]", f'url = "{self.url}"']
        if self.schema:
            lines.append(f'pg_schema = "{self.schema}"')
        return "\n".join(lines) + "\n"


@pytest.fixture
async def pg_db() -> AsyncIterator[DB]:
    """PostgreSQL with a fresh schema (dropped afterwards)."""
    schema = await _pg_schema()
    yield DB(PG_URL, schema)
    await _drop_schema(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DB]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
        return
    schema = await _pg_schema()
    yield DB(PG_URL, schema)
    await _drop_schema(schema)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No BOT_* variables from the developer's shell leak into a test."""
    for key in list(os.environ):
        if key.startswith("BOT_") and key != "BOT_TEST_PG_URL":
            monkeypatch.delenv(key)
    yield


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """Tests that call ``bot.ops.logs.configure`` (or the CLI): root handlers, levels, the redactor's registry and
    the exception hooks are restored afterwards."""
    import logging
    import sys
    import threading

    from bot.keys.redaction import REDACTOR

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "aiosqlite", "sqlalchemy.engine", "apscheduler", "telegram", "websockets")}
    hooks = (sys.excepthook, threading.excepthook)
    REDACTOR.clear()
    yield
    REDACTOR.clear()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
    sys.excepthook, threading.excepthook = hooks
