"""The outbox: alerts waiting for delivery to a chat.

Rows are inserted by ``AuditStore.flush`` in the same transaction as the audit rows of the event that raised
them (so an alert exists exactly when its event does). The delivery worker reads due rows in id order and marks
each one ``sent`` (or ``dropped`` for a permanent error) after the Bot API answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import OutboxRow


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    chat_id: int | None
    severity: str
    dedup_key: str
    text: str
    photo: bytes | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None


class OutboxRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._t = OutboxRow.__table__

    async def pending(self, limit: int = 50) -> list[OutboxItem]:
        """The oldest pending rows, in id order (delivery keeps that order: it stops at the first row not due)."""
        t = self._t
        stmt = (
            select(t.c.id, t.c.chat_id, t.c.severity, t.c.dedup_key, t.c.text, t.c.photo, t.c.attempts, t.c.created_at, t.c.next_attempt_at)
            .where(t.c.status == "pending")
            .order_by(t.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [OutboxItem(*row) for row in rows]

    async def pending_count(self) -> int:
        t = self._t
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(t).where(t.c.status == "pending"))).scalar() or 0)

    async def mark_sent(self, row_id: int, now: datetime) -> None:
        await self._set(row_id, status="sent", sent_at=now, attempts=self._t.c.attempts + 1, next_attempt_at=None)

    async def mark_retry(self, row_id: int, next_at: datetime, error: str) -> None:
        await self._set(row_id, attempts=self._t.c.attempts + 1, next_attempt_at=next_at, last_error=error[:2000])

    async def mark_dropped(self, row_id: int, error: str) -> None:
        await self._set(row_id, status="dropped", attempts=self._t.c.attempts + 1, last_error=error[:2000])

    async def fan_out(self, item: OutboxItem, chat_ids: Sequence[int]) -> None:
        """A row written without a chat (ops' messages) becomes one row per chat, in one transaction; the
        original is marked ``fanned``. Each copy is then delivered and tracked on its own."""
        t = self._t
        async with self._engine.begin() as conn:
            if chat_ids:
                await conn.execute(
                    t.insert(),
                    [
                        {"created_at": item.created_at, "chat_id": chat, "severity": item.severity, "dedup_key": item.dedup_key,
                         "text": item.text, "photo": item.photo, "status": "pending", "attempts": 0, "next_attempt_at": None,
                         "sent_at": None, "last_error": ""}
                        for chat in chat_ids
                    ],
                )
            await conn.execute(
                update(t).where(t.c.id == item.id, t.c.status == "pending").values(status="fanned" if chat_ids else "dropped",
                                                                                    last_error="" if chat_ids else "no alert chat")
            )

    async def defer_all(self, next_at: datetime) -> None:
        """Flood control: no pending row is attempted before ``next_at``."""
        t = self._t
        async with self._engine.begin() as conn:
            await conn.execute(
                update(t)
                .where(t.c.status == "pending", or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at < next_at))
                .values(next_attempt_at=next_at)
            )

    async def statuses(self) -> Sequence[tuple[int, str, int]]:
        """(id, status, attempts) of every row (tests and the operator's diagnostics)."""
        t = self._t
        async with self._engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(select(t.c.id, t.c.status, t.c.attempts).order_by(t.c.id))).all()]  # type: ignore[misc]

    async def _set(self, row_id: int, **values: object) -> None:
        t = self._t
        async with self._engine.begin() as conn:
            await conn.execute(update(t).where(t.c.id == row_id).values(**values))
