"""Small persistent state in the ``state_kv`` table: one JSON document per (namespace, key).

Used for what must survive a restart but is not an audit fact: lockouts, the approved configuration hash.
Every change of such state is also audited by its owner; this table only holds the current value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import StateKV
from bot.store.types import ns_to_datetime


class KVStore:
    """Async get/put of JSON documents. Values must be JSON-able (no Decimal: convert to text first)."""

    def __init__(self, engine: AsyncEngine, now_ns: Callable[[], int]) -> None:
        self._engine = engine
        self._now_ns = now_ns
        self._table = StateKV.__table__

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        t = self._table
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(t.c.value).where(t.c.namespace == namespace, t.c.key == key))).first()
        return None if row is None else dict(row[0])

    async def all(self, namespace: str) -> dict[str, dict[str, Any]]:
        t = self._table
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t.c.key, t.c.value).where(t.c.namespace == namespace))).all()
        return {k: dict(v) for k, v in rows}

    async def put(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (one transaction)."""
        t = self._table
        now = ns_to_datetime(self._now_ns())
        for _ in range(2):  # a concurrent insert of the same key turns into an update on the second pass
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(t).where(t.c.namespace == namespace, t.c.key == key).values(value=value, updated_at=now)
                )
                if result.rowcount:
                    return
                try:
                    await conn.execute(t.insert().values(namespace=namespace, key=key, value=value, updated_at=now))
                    return
                except IntegrityError:
                    await conn.rollback()
        raise RuntimeError(f"state_kv: could not write {namespace}/{key}")
