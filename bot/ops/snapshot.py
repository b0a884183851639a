"""State snapshots (seed 000 §07 recovery tree): positions, open orders, PnL, trading state and arming.

A snapshot is one JSON file that carries its own SHA-256, written atomically: a temporary file in the same
directory, fsync, rename over the final name, fsync of the directory. A crash at any point leaves either the
previous snapshots untouched or a complete new one; a half-written temporary file never validates.
Each snapshot also gets a row in the ``snapshots`` table (path, hash, a short summary).

Restore (``latest_valid``) reads the newest snapshot whose hash checks out, including a complete
``.tmp`` file left by a crash between fsync and rename (the seed: "restore from atomic .tmp if present,
else last hourly snapshot"). Damaged files are reported and skipped, never deleted by restore.

Pruning keeps the newest ``keep`` snapshots plus, for every LIVE run, its newest one (spec 4.3: snapshots
are kept for each production run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.ports import Clock
from bot.store.audit import jsonable
from bot.store.models import SCHEMA_VERSION, SnapshotRow

log = logging.getLogger(__name__)

FORMAT = 1
PREFIX = "snapshot-"


class SnapshotError(Exception):
    """A snapshot file that cannot be trusted (unreadable, truncated, wrong hash, unknown format)."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    ts_ns: int
    run_id: str
    mode: str
    sha256: str
    state: dict[str, Any]


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path) -> Snapshot:
    """Read and verify one snapshot file; raises SnapshotError."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path.name}: unreadable ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or "sha256" not in doc:
        raise SnapshotError(f"{path.name}: not a snapshot")
    digest = doc.pop("sha256")
    if hashlib.sha256(_canonical(doc)).hexdigest() != digest:
        raise SnapshotError(f"{path.name}: hash mismatch (damaged or edited)")
    if doc.get("format") != FORMAT:
        raise SnapshotError(f"{path.name}: unknown format {doc.get('format')!r}")
    return Snapshot(path, int(doc["ts_ns"]), str(doc["run_id"]), str(doc["mode"]), digest, dict(doc["state"]))


class SnapshotStore:
    def __init__(
        self,
        directory: Path,
        *,
        keep: int,
        clock: Clock,
        run_id: str,
        mode: str,
        version_hash: str = "",
        config_hash: str = "",
        db: AsyncEngine | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = Path(directory)
        self.keep = keep
        self.clock = clock
        self.run_id = run_id
        self.mode = mode
        self.version_hash = version_hash
        self.config_hash = config_hash
        self.db = db

    # ------------------------------------------------------------------ write
    def write(self, state: Mapping[str, Any]) -> Snapshot:
        """Write one snapshot atomically (blocking file I/O: call it in a thread from async code)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ts_ns = self.clock.now_ns()
        stamp = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{PREFIX}{stamp}.{ts_ns % 1_000_000_000:09d}Z-{self.run_id[:8]}.json"
        body = {
            "format": FORMAT,
            "ts_ns": ts_ns,
            "ts": datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(),
            "run_id": self.run_id,
            "mode": self.mode,
            "version_hash": self.version_hash,
            "config_hash": self.config_hash,
            "schema_version": SCHEMA_VERSION,
            "state": jsonable(dict(state)),
        }
        digest = hashlib.sha256(_canonical(body)).hexdigest()
        data = _canonical({**body, "sha256": digest})
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        return Snapshot(final, ts_ns, self.run_id, self.mode, digest, body["state"])

    async def take(self, state: Mapping[str, Any]) -> Snapshot:
        """Write the file (in a thread), record the row, prune old files."""
        snap = await asyncio.to_thread(self.write, state)
        if self.db is not None:
            async with self.db.begin() as conn:
                await conn.execute(
                    insert(SnapshotRow).values(
                        ts=datetime.fromtimestamp(snap.ts_ns // 1_000_000_000, UTC).replace(microsecond=(snap.ts_ns // 1000) % 1_000_000),
                        run_id=self.run_id,
                        path=str(snap.path),
                        sha256=snap.sha256,
                        summary=summarize(snap.state),
                    )
                )
        await asyncio.to_thread(self.prune)
        return snap

    # ------------------------------------------------------------------ read
    def candidates(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [p for p in self.directory.iterdir() if p.is_file() and (p.name.startswith(PREFIX) or p.name.startswith("." + PREFIX))]

    def latest_valid(self) -> Snapshot | None:
        """The newest snapshot that verifies (a complete .tmp counts); damaged ones are logged and skipped."""
        good: list[Snapshot] = []
        for path in self.candidates():
            try:
                good.append(load(path))
            except SnapshotError as exc:
                if not path.name.endswith(".tmp"):
                    log.warning("snapshot skipped: %s", exc)
        if not good:
            return None
        return max(good, key=lambda s: (s.ts_ns, not s.path.name.endswith(".tmp")))

    # ------------------------------------------------------------------ prune
    def prune(self) -> list[Path]:
        finals: list[Snapshot] = []
        removed: list[Path] = []
        for path in self.candidates():
            if path.name.endswith(".tmp"):
                continue
            try:
                finals.append(load(path))
            except SnapshotError:
                continue  # never delete what we cannot read: an operator may want it
        finals.sort(key=lambda s: s.ts_ns, reverse=True)
        keep = {s.path for s in finals[: self.keep]}
        newest_per_live_run: dict[str, Path] = {}
        for s in finals:
            if s.mode == "LIVE":
                newest_per_live_run.setdefault(s.run_id, s.path)
        keep |= set(newest_per_live_run.values())
        for s in finals:
            if s.path not in keep:
                s.path.unlink(missing_ok=True)
                removed.append(s.path)
        newest = finals[0].ts_ns if finals else None
        for path in self.candidates():
            if path.name.endswith(".tmp") and newest is not None:
                try:
                    stale = load(path).ts_ns <= newest
                except SnapshotError:
                    stale = True  # a half-written temporary file from a crash: worthless once a newer snapshot exists
                if stale:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed


def summarize(state: Mapping[str, Any]) -> dict[str, Any]:
    positions = state.get("positions", {})
    return {
        "positions": {a: p.get("qty") for a, p in positions.items()} if isinstance(positions, dict) else {},
        "open_orders": len(state.get("open_orders", [])),
        "pnl_net": (state.get("pnl") or {}).get("net"),
        "trading_state": (state.get("trading_state") or {}).get("state"),
        "armed": (state.get("arming") or {}).get("armed"),
    }


def engine_state(engine: Any, extra: Mapping[str, Callable[[], Any]] | None = None) -> dict[str, Any]:
    """What a snapshot holds, read from the engine (call inside the engine loop: ``engine.call``)."""
    marks = {a: t.mid for a, t in engine.market.last.items()}
    positions = {
        asset: {
            "qty": p.qty,
            "avg_price": p.avg_price,
            "realised_pnl": p.realised_pnl,
            "fees": p.fees,
            "unrealised_pnl": p.unrealised(marks[asset]) if asset in marks else None,
            "mark": marks.get(asset),
        }
        for asset, p in sorted(engine.portfolio.positions.items())
    }
    orders = [
        {
            "client_order_id": o.client_order_id,
            "venue_order_id": o.venue_order_id,
            "strategy_id": o.strategy_id,
            "asset": o.asset,
            "side": o.side.value,
            "qty": o.qty,
            "filled_qty": o.filled_qty,
            "limit_price": o.limit_price,
            "order_type": o.order_type.value,
            "status": o.status.value,
        }
        for o in sorted(engine.oms.live.values(), key=lambda o: o.client_order_id)
    ]
    realised, unrealised, fees = engine.pnl()
    state: dict[str, Any] = {
        "mode": engine.mode.value,
        "positions": positions,
        "open_orders": orders,
        "pnl": {"realised": realised, "unrealised": unrealised, "fees": fees, "net": realised + unrealised - fees},
        "counters": {k: getattr(engine.counters, k) for k in engine.counters.__slots__},
    }
    for key, provider in (extra or {}).items():
        try:
            state[key] = provider()
        except Exception as exc:  # a provider that fails must not cost us the snapshot
            state[key] = {"error": f"{type(exc).__name__}"}
    return state
