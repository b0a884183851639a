"""The append-only audit log: buffered appends, batched writes, nothing ever updated or deleted.

Rows are plain dicts keyed by column name; ``ts_ns`` (UTC epoch ns, event time) becomes the ``ts`` column.
The common columns (run_id, mode, version_hash, config_hash, schema_version) are added here, so callers
never forget them. A write that fails keeps its rows in the buffer (nothing is lost) and raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import AUDIT_TABLES, SCHEMA_VERSION, OutboxRow
from bot.store.types import ns_to_datetime

log = logging.getLogger(__name__)

_JSON_COLUMNS = {"data", "inputs"}


def jsonable(value: Any) -> Any:
    """Decimals become exact strings and enums their values, recursively."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return value


def _column_defaults(table: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for col in table.columns:
        if col.name == "id":
            continue
        default = col.default.arg if col.default is not None and not callable(col.default.arg) else None
        defaults[col.name] = default
    return defaults


class AuditStore:
    """Implements the AuditSink port over SQLAlchemy Core (executemany per table, one transaction per flush)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        run_id: str,
        mode: str,
        version_hash: str,
        config_hash: str,
        now_ns: Callable[[], int],
        batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self._now_ns = now_ns
        self._common = {
            "run_id": run_id,
            "mode": mode,
            "version_hash": version_hash,
            "config_hash": config_hash,
            "schema_version": SCHEMA_VERSION,
        }
        self._tables = {kind: model.__table__ for kind, model in AUDIT_TABLES.items()}
        self._buffer: dict[str, list[dict[str, Any]]] = {kind: [] for kind in AUDIT_TABLES}
        # every row of a kind must carry the same keys for executemany: start from the column defaults
        self._defaults = {kind: _column_defaults(table) for kind, table in self._tables.items()}
        self._pending = 0
        self._lock = asyncio.Lock()  # one flush at a time, or two flushes could write the same rows
        self.written = 0
        # alerts ride in the same transaction as the audit rows of their event (the outbox pattern)
        self._outbox: list[dict[str, Any]] = []
        self._outbox_table = OutboxRow.__table__
        self.outbox_listeners: list[Callable[[int], None]] = []  # told how many outbox rows a flush committed

    @property
    def pending(self) -> int:
        return self._pending

    def record(self, kind: str, row: dict[str, Any]) -> None:
        buf = self._buffer.get(kind)
        if buf is None:
            raise KeyError(f"unknown audit kind {kind!r} (known: {', '.join(self._buffer)})")
        ts_ns = row.pop("ts_ns", None)
        row["ts"] = ns_to_datetime(self._now_ns() if ts_ns is None else ts_ns)
        venue_ts_ns = row.pop("venue_ts_ns", None)
        if venue_ts_ns is not None:
            row["venue_ts"] = ns_to_datetime(venue_ts_ns)
        for key, value in row.items():
            if key in _JSON_COLUMNS:
                row[key] = None if value is None else jsonable(value)
            elif isinstance(value, Enum):
                row[key] = value.value
        full = dict(self._defaults[kind])
        full.update(row)
        full.update(self._common)
        unknown = full.keys() - self._defaults[kind].keys()
        if unknown:
            raise KeyError(f"audit kind {kind!r} has no column(s) {sorted(unknown)}")
        buf.append(full)
        self._pending += 1

    def add_outbox(self, row: dict[str, Any]) -> None:
        """Buffer an outbox row (severity, dedup_key, text, chat_id, optional photo); written by the next flush."""
        full = {"chat_id": None, "photo": None, "status": "pending", "attempts": 0, "next_attempt_at": None, "sent_at": None, "last_error": ""}
        full.update(row)
        full.setdefault("created_at", ns_to_datetime(self._now_ns()))
        self._outbox.append(full)
        self._pending += 1

    def needs_flush(self) -> bool:
        return self._pending >= self.batch_size

    async def flush(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batches = [(kind, rows[:]) for kind, rows in self._buffer.items() if rows]  # copies: rows may arrive meanwhile
        outbox = self._outbox[:]
        async with self.engine.begin() as conn:
            for kind, rows in batches:
                await conn.execute(insert(self._tables[kind]), rows)
            if outbox:
                await conn.execute(insert(self._outbox_table), outbox)
        # only after the commit: a failed write keeps every row for the next attempt
        for kind, rows in batches:
            del self._buffer[kind][: len(rows)]
        del self._outbox[: len(outbox)]
        written = sum(len(r) for _, r in batches)
        self._pending -= written + len(outbox)
        self.written += written
        if outbox:
            for listener in self.outbox_listeners:
                try:
                    listener(len(outbox))
                except Exception:
                    log.exception("outbox listener failed")
