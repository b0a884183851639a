"""Writing operator messages into the outbox table (delivery is the control plane's Notifier).

A row with a ``photo`` is sent as a photo with ``text`` as its caption (at most 1024 characters); a row
without one as a text message (at most 4096). Both use HTML parse mode. ``dedup_key`` makes a write
idempotent: a second write with the same key is skipped, so a job that runs twice never sends twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import OutboxRow, StateKV

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


async def enqueue(
    conn: AsyncConnection,
    *,
    now: datetime,
    severity: str,
    dedup_key: str,
    text: str,
    photo: bytes | None = None,
) -> bool:
    """Insert one pending message unless one with ``dedup_key`` exists. Returns True when inserted."""
    limit = CAPTION_LIMIT if photo is not None else TEXT_LIMIT
    if len(text) > limit:
        raise ValueError(f"outbox message {dedup_key!r} is {len(text)} characters; Telegram allows {limit}")
    exists = (await conn.execute(select(OutboxRow.id).where(OutboxRow.dedup_key == dedup_key).limit(1))).first()
    if exists is not None:
        return False
    await conn.execute(
        insert(OutboxRow).values(
            created_at=now,
            severity=severity,
            dedup_key=dedup_key,
            text=text,
            photo=photo,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            last_error="",
        )
    )
    return True


async def kv_get(conn: AsyncConnection, namespace: str, key: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(StateKV.value).where(StateKV.namespace == namespace, StateKV.key == key))).first()
    return None if row is None else dict(row[0])


async def kv_put(conn: AsyncConnection, namespace: str, key: str, value: dict[str, Any], now: datetime) -> None:
    result = await conn.execute(
        update(StateKV).where(StateKV.namespace == namespace, StateKV.key == key).values(value=value, updated_at=now)
    )
    if result.rowcount == 0:
        await conn.execute(insert(StateKV).values(namespace=namespace, key=key, value=value, updated_at=now))
