"""Alembic owns the schema. These helpers run it from the CLI and check it at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


class SchemaBehind(Exception):
    """The database is not at the code's schema head."""


def alembic_config(url: str | None = None) -> Config:
    if not (ALEMBIC_DIR / "env.py").exists():
        raise RuntimeError(f"migrations not found at {ALEMBIC_DIR} (install the project with 'pip install -e .')")
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def code_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _db_heads(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


async def database_heads(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_db_heads)


async def check_schema(engine: AsyncEngine, config_hint: str) -> None:
    """Raise SchemaBehind with the command to run unless the database is exactly at head."""
    current = await database_heads(engine)
    heads = code_heads()
    if current == heads:
        return
    shown = ", ".join(sorted(current)) or "empty (no schema)"
    if current - heads and not (current & heads) and _is_ahead(current):
        raise SchemaBehind(
            f"database schema is at {shown}, newer than this code's {', '.join(sorted(heads))}: "
            "run the matching code version (downgrading a database loses audit history)"
        )
    raise SchemaBehind(
        f"database schema is at {shown} but this code needs {', '.join(sorted(heads))}: run 'bot db upgrade{config_hint}' first"
    )


def _is_ahead(current: set[str]) -> bool:
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return not current <= known


def _run(conn: Connection, cfg: Config, action: str, target: str) -> None:
    cfg.attributes["connection"] = conn
    if action == "upgrade":
        command.upgrade(cfg, target)
    else:
        command.downgrade(cfg, target)


async def upgrade(engine: AsyncEngine, target: str = "heads") -> None:
    cfg = alembic_config()
    async with engine.begin() as conn:
        await conn.run_sync(_run, cfg, "upgrade", target)


async def downgrade(engine: AsyncEngine, target: str = "base") -> None:
    cfg = alembic_config()
    async with engine.begin() as conn:
        await conn.run_sync(_run, cfg, "downgrade", target)
