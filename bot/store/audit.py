"""The append-only audit log: buffered appends, batched writes, nothing ever updated or deleted.

Rows are plain dicts keyed by column name; ``ts_ns`` (UTC epoch ns, event time) becomes the ``ts`` column and
``venue_ts_ns`` the ``venue_ts`` column. The common columns (run_id, mode, version_hash, config_hash,
schema_version) are added here, so callers never forget them. A write that fails keeps its rows in the buffer
(nothing is lost) and raises.

Speed (the engine appends several rows per order): ``record`` turns a row into a tuple of database values at
once, with a converter generated per table (exact decimal text, UTC timestamps in the dialect's storage form,
JSON text, enum values); ``flush`` writes each table's rows with plain driver statements in one transaction:
multi-row INSERTs on SQLite (a few hundred rows per statement, so the writer thread rarely needs the
interpreter lock), executemany on PostgreSQL. The stored values are exactly those SQLAlchemy's column types
write, so every reader (ORM or Core) reads them back the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from itertools import chain
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import AUDIT_TABLES, SCHEMA_VERSION, OutboxRow
from bot.store.sqlite_writer import ProcessWriter
from bot.store.types import DecimalText, UTCDateTime, ns_to_datetime

log = logging.getLogger(__name__)

_JSON_COLUMNS = {"data", "inputs"}
_COMMON = ("run_id", "mode", "version_hash", "config_hash", "schema_version")
_SQLITE_MAX_VARIABLES = 32_766
_SQLITE_ROWS_PER_STATEMENT = 500


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


# ----------------------------------------------------------------------------- value converters
def _decimal_text(value: Any) -> str | None:
    """DecimalText's storage: exact text; floats refused (they are already inexact)."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("floats are not accepted for money columns")
    return format(value if value.__class__ is Decimal else Decimal(value), "f")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return [jsonable(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_dumps = json.JSONEncoder(default=_json_default).encode


def _json_text(value: Any) -> str | None:
    """The JSON text SQLAlchemy's JSON type would store for ``jsonable(value)`` (the C encoder does the walk)."""
    if value is None:
        return None
    try:
        return _dumps(value)
    except (TypeError, ValueError):
        return json.dumps(jsonable(value))  # e.g. non-string keys: jsonable turns them into strings


def _plain(value: Any) -> Any:
    return value._value_ if isinstance(value, Enum) else value


class _Timestamps:
    """UTC epoch ns -> the column's stored value: SQLite text as SQLAlchemy writes it, or an aware datetime."""

    __slots__ = ("sqlite", "_sec", "_prefix")

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self._sec = -1
        self._prefix = ""

    def __call__(self, ts_ns: int) -> Any:
        if not self.sqlite:
            return ns_to_datetime(ts_ns)
        sec, rem = divmod(ts_ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._prefix}.{rem // 1000:06d}"

    def from_datetime(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else value


class _TableSpec:
    """One audit table: its columns in order, the generated row converter, its INSERT statements."""

    def __init__(
        self, kind: str, table: Any, dialect: str, common: dict[str, Any], now_ns: Callable[[], int], stamps: _Timestamps
    ) -> None:
        self.kind = kind
        self.table = table
        self.columns = [c.name for c in table.columns if c.name != "id"]
        defaults = _column_defaults(table)
        self.known = frozenset(self.columns) | {"ts_ns", "venue_ts_ns"}
        sqlite = dialect == "sqlite"
        self.sqlite = sqlite
        env: dict[str, Any] = {
            "_dec": _decimal_text, "_json": _json_text, "_plain": _plain, "_ts": stamps, "_ts_dt": stamps.from_datetime,
            "_now": now_ns, "_known": self.known, "_kind": kind, "_Enum": Enum, "_bool": bool, "_Decimal": Decimal,
        }
        exprs = []
        for i, name in enumerate(self.columns):
            col = table.columns[name]
            default = f"_d{i}"
            env[default] = defaults.get(name)
            if name in _COMMON:
                env[f"_c{i}"] = common[name]
                exprs.append(f"_c{i}")
            elif name == "ts":
                exprs.append("_ts(_now() if (t := g('ts_ns')) is None else t)")
            elif isinstance(col.type, UTCDateTime) or isinstance(col.type, DateTime):
                exprs.append(f"(_ts(t) if (t := g('{name}_ns')) is not None else _ts_dt(g('{name}', {default})))")
            elif name in _JSON_COLUMNS or isinstance(col.type, JSON):
                exprs.append(f"(None if (v := g('{name}', {default})) is None else _json(v))")
            elif isinstance(col.type, DecimalText):
                exprs.append(f"(format(v, 'f') if (v := g('{name}', {default})).__class__ is _Decimal else _dec(v))")
            elif isinstance(col.type, Boolean):
                exprs.append(f"(None if (v := g('{name}', {default})) is None else _bool(v))")
            else:
                exprs.append(f"(v if (v := g('{name}', {default})) is None or v.__class__ is str else _plain(v))")
        source = (
            "def convert(row):\n"
            "    if not row.keys() <= _known:\n"
            "        raise KeyError(f'audit kind {_kind!r} has no column(s) {sorted(row.keys() - _known)}')\n"
            "    g = row.get\n"
            f"    return ({', '.join(exprs)},)\n"
        )
        exec(compile(source, f"<audit converter {kind}>", "exec"), env)  # noqa: S102 - generated from the schema
        self.convert: Callable[[dict[str, Any]], tuple[Any, ...]] = env["convert"]
        names = ", ".join(f'"{c}"' for c in self.columns)
        n = len(self.columns)
        if sqlite:
            self.rows_per_statement = max(1, min(_SQLITE_ROWS_PER_STATEMENT, _SQLITE_MAX_VARIABLES // n))
            one = "(" + ", ".join("?" * n) + ")"
            self._head = f'INSERT INTO "{table.name}" ({names}) VALUES '
            self._one = one
            self._sql_cache: dict[int, str] = {}
        else:
            self.rows_per_statement = 0
            self.single = f'INSERT INTO "{table.name}" ({names}) VALUES (' + ", ".join(f"${i + 1}" for i in range(n)) + ")"

    def single_row_sql(self) -> str:
        return self._head + self._one

    def sql(self, rows: int) -> str:
        stmt = self._sql_cache.get(rows)
        if stmt is None:
            stmt = self._sql_cache[rows] = self._head + ", ".join([self._one] * rows)
        return stmt

    async def insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if not self.sqlite:
            await conn.exec_driver_sql(self.single, rows)
            return
        step = self.rows_per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            await conn.exec_driver_sql(self.sql(len(chunk)), tuple(chain.from_iterable(chunk)))


class AuditStore:
    """Implements the AuditSink port over SQLAlchemy's driver connection (one transaction per flush)."""

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
        writer_process: bool = False,
    ) -> None:
        """``writer_process`` (SQLite files only): write from a separate process (``bot/store/sqlite_writer.py``),
        for a high write rate (REPLAY); otherwise through the engine's connection."""
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
        dialect = engine.dialect.name
        stamps = _Timestamps(dialect == "sqlite")  # one cache of the current second's text for every table
        self._specs = {kind: _TableSpec(kind, table, dialect, self._common, now_ns, stamps) for kind, table in self._tables.items()}
        self._buffer: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in AUDIT_TABLES}
        self._pending = 0
        self._lock = asyncio.Lock()  # one flush at a time, or two flushes could write the same rows
        self._writes: set[asyncio.Task[None]] = set()  # flushes in progress (they outlive a cancelled caller)
        self.written = 0
        # alerts ride in the same transaction as the audit rows of their event (the outbox pattern)
        self._outbox: list[dict[str, Any]] = []
        self._outbox_table = OutboxRow.__table__
        self.outbox_listeners: list[Callable[[int], None]] = []  # told how many outbox rows a flush committed
        self._stamps = stamps
        self._writer: ProcessWriter | None = None
        if writer_process:
            path = engine.url.database
            if dialect != "sqlite" or not path or path == ":memory:":
                raise ValueError("writer_process needs a SQLite database file")
            self._writer = ProcessWriter(path)

    @property
    def pending(self) -> int:
        return self._pending

    def record(self, kind: str, row: dict[str, Any]) -> None:
        spec = self._specs.get(kind)
        if spec is None:
            raise KeyError(f"unknown audit kind {kind!r} (known: {', '.join(self._buffer)})")
        self._buffer[kind].append(spec.convert(row))
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
        """Write everything buffered, in one transaction. A flush once started runs to its end even if its caller
        is cancelled (shutdown cancels the periodic flush): the write may already be committing in a thread or the
        writer process, and the rows it wrote must leave the buffer, or the next flush would write them twice."""
        task = asyncio.get_running_loop().create_task(self._flush_locked(), name="audit-write")
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed write keeps its rows, and the next flush raises to its caller

    async def _flush_locked(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batches = [(kind, rows[:]) for kind, rows in self._buffer.items() if rows]  # copies: rows may arrive meanwhile
        outbox = self._outbox[:]
        if self._writer is not None:
            work = [(self._specs[kind].single_row_sql(), rows) for kind, rows in batches]
            if outbox:
                work.append(self._outbox_rows(outbox))
            await self._writer.write(work)
        else:
            async with self.engine.begin() as conn:
                for kind, rows in batches:
                    await self._specs[kind].insert(conn, rows)
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

    def _outbox_rows(self, outbox: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        """Outbox rows as the writer process takes them: plain values in the table's column order."""
        table = self._outbox_table
        columns = [c.name for c in table.columns if c.name != "id"]
        sql = f'INSERT INTO "{table.name}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES (" + ", ".join("?" * len(columns)) + ")"
        to_text = self._stamps.from_datetime
        rows = [tuple(to_text(v) if isinstance(v, datetime) else v for v in (row.get(c) for c in columns)) for row in outbox]
        return sql, rows

    async def close(self) -> None:
        """Stop the writer process, if any (after the last flush, and after any flush still in progress)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._writer is not None:
            await self._writer.close()
