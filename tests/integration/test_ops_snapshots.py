"""Snapshots: atomic write (a crash mid-write leaves the previous one readable), restore picks the newest
valid one, the row is recorded, old files are pruned."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.engine.clock import ManualClock
from bot.ops import snapshot as snapmod
from bot.ops.snapshot import SnapshotError, SnapshotStore, load
from bot.store import migrate
from bot.store.models import SnapshotRow
from tests.conftest import DB

T0 = 1_774_800_000_000_000_000  # 2026-03-29T16:00:00Z
HOUR = 3600 * 1_000_000_000


def state(qty: str) -> dict[str, object]:
    return {
        "positions": {"BTC/USDT": {"qty": Decimal(qty), "avg_price": Decimal("60000.5")}},
        "open_orders": [{"client_order_id": "a-1-0", "side": "BUY", "qty": Decimal("0.001")}],
        "pnl": {"net": Decimal("-1.25")},
        "trading_state": {"state": "ACTIVE"},
        "arming": {"armed": False},
    }


def store(tmp_path: Path, clock: ManualClock, keep: int = 3, mode: str = "DRY_RUN", run_id: str = "run1aaaabbbb") -> SnapshotStore:
    return SnapshotStore(tmp_path / "snaps", keep=keep, clock=clock, run_id=run_id, mode=mode)


def test_write_is_complete_verified_and_decimal_exact(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    s = store(tmp_path, clock)
    snap = s.write(state("0.003"))
    assert snap.path.name.startswith("snapshot-20260329T160000.") and snap.path.suffix == ".json"
    again = load(snap.path)
    assert again.sha256 == snap.sha256 and again.ts_ns == T0
    assert again.state["positions"]["BTC/USDT"]["qty"] == "0.003"  # exact decimal text
    assert not [p for p in s.directory.iterdir() if p.name.endswith(".tmp")]
    assert oct(snap.path.stat().st_mode & 0o777) == "0o600"


def test_crash_during_the_write_leaves_the_previous_snapshot_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(T0)
    s = store(tmp_path, clock)
    first = s.write(state("0.001"))
    clock.advance(HOUR)

    class Crash(BaseException):
        """The process dies (not an Exception: nothing catches it)."""

    real_write = os.write

    def dying_write(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])  # half of the new file reaches the disk
        raise Crash

    monkeypatch.setattr(snapmod.os, "write", dying_write)
    with pytest.raises(Crash):
        s.write(state("0.002"))
    monkeypatch.undo()

    leftovers = [p for p in s.directory.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1, "the half-written file is a temporary file, never the final name"
    with pytest.raises(SnapshotError):
        load(leftovers[0])
    restored = s.latest_valid()
    assert restored is not None and restored.path == first.path
    assert restored.state["positions"]["BTC/USDT"]["qty"] == "0.001"


def test_crash_between_fsync_and_rename_restores_from_the_complete_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(T0)
    s = store(tmp_path, clock)
    s.write(state("0.001"))
    clock.advance(HOUR)

    def no_rename(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # the process is stopped right before the rename

    monkeypatch.setattr(snapmod.os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        s.write(state("0.002"))
    monkeypatch.undo()
    restored = s.latest_valid()
    assert restored is not None and restored.path.name.endswith(".tmp")  # seed 000 §07: restore from the atomic .tmp
    assert restored.state["positions"]["BTC/USDT"]["qty"] == "0.002"


def test_restore_skips_damaged_newer_files(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    s = store(tmp_path, clock, keep=10)
    good = s.write(state("0.001"))
    clock.advance(HOUR)
    edited = s.write(state("0.002"))
    doc = json.loads(edited.path.read_text())
    doc["state"]["positions"]["BTC/USDT"]["qty"] = "5"  # tampered: the hash no longer matches
    edited.path.write_text(json.dumps(doc))
    clock.advance(HOUR)
    truncated = s.write(state("0.003"))
    truncated.path.write_bytes(truncated.path.read_bytes()[:50])
    clock.advance(HOUR)
    (s.directory / "snapshot-29990101T000000.000000000Z-garbage.json").write_text("not json")
    restored = s.latest_valid()
    assert restored is not None and restored.path == good.path


def test_no_snapshot_at_all(tmp_path: Path) -> None:
    assert store(tmp_path, ManualClock(T0)).latest_valid() is None


def test_prune_keeps_the_newest_n_and_the_last_of_each_live_run(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    live_a = store(tmp_path, clock, keep=2, mode="LIVE", run_id="aaaaaaaa1111")
    a_last = None
    for i in range(3):
        a_last = live_a.write(state(f"0.00{i}"))
        clock.advance(HOUR)
    live_b = store(tmp_path, clock, keep=2, mode="LIVE", run_id="bbbbbbbb2222")
    b = [live_b.write(state("0.1")) for _ in range(1)]
    clock.advance(HOUR)
    b.append(live_b.write(state("0.2")))
    clock.advance(HOUR)
    b.append(live_b.write(state("0.3")))
    removed = live_b.prune()
    left = sorted(p.name for p in live_b.directory.iterdir())
    assert a_last is not None and a_last.path.name in left  # the last snapshot of LIVE run a is kept
    assert {b[1].path.name, b[2].path.name} <= set(left)
    assert len(left) == 3 and len(removed) == 3


async def test_take_records_a_row_and_prunes(db: DB, tmp_path: Path) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        clock = ManualClock(T0)
        s = SnapshotStore(tmp_path / "snaps", keep=2, clock=clock, run_id="r" * 12, mode="DRY_RUN", db=engine)
        taken = []
        for i in range(4):
            taken.append(await s.take(state(f"0.00{i}")))
            clock.advance(HOUR)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(SnapshotRow.sha256, SnapshotRow.summary).order_by(SnapshotRow.id))).all()
        assert [r.sha256 for r in rows] == [t.sha256 for t in taken]
        assert rows[-1].summary == {"positions": {"BTC/USDT": "0.003"}, "open_orders": 1, "pnl_net": "-1.25", "trading_state": "ACTIVE", "armed": False}
        assert sorted(p.name for p in s.directory.iterdir()) == sorted(t.path.name for t in taken[-2:])
        assert s.latest_valid() is not None and s.latest_valid().path == taken[-1].path  # type: ignore[union-attr]
    finally:
        await engine.dispose()
