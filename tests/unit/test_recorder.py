"""Recorded market data: what is written reads back identical; cut-short files; day files; retention; run index."""

from __future__ import annotations

import gzip
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.domain.market import Book, BookLevel, Tick
from bot.engine.recorder import (
    MarketRecorder,
    RecordedDataError,
    RecordedFeed,
    all_files,
    day_files,
    delete_expired,
    expired_files,
    read_file,
    run_files,
)

DAY = 86_400_000_000_000
T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


def tick(n: int, ts: int, asset: str = "BTC/USDT", bid: str = "60000.00", last: str | None = None) -> Tick:
    return Tick(asset, D(bid), D("1.5"), D(bid) + D("0.01"), D("0.25"), ts - 7, ts, 1000 + n, "sim", None if last is None else D(last))


def recorder(tmp_path: Path, run_id: str = "run1") -> MarketRecorder:
    return MarketRecorder(tmp_path, run_id=run_id, config_hash="c" * 64, code_version="0.1.0+abc", buffer_lines=3)


async def drain(feed: RecordedFeed) -> list[Tick | Book]:
    out: list[Tick | Book] = []
    async for batch in feed.batches():
        out.extend(batch)
    return out


async def test_written_events_read_back_identical(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    book = Book("BTC/USDT", (BookLevel(D("59999.99"), D("2")),), (BookLevel(D("60000.01"), D("0.5")), BookLevel(D("60000.02"), D("3"))),
                T0 + 5, T0 + 6, 77, "sim")
    events: list[Tick | Book] = [tick(1, T0 + 1), tick(2, T0 + 2, "ETH/USDT", "2000.5", last="2000.51"), book, tick(4, T0 + 9)]
    for n, e in enumerate(events, 1):
        rec(n, e)
    rec.close()
    path = tmp_path / "sim" / "BTC-USDT" / "2026-01-01.jsonl.gz"
    assert path.is_file() and (tmp_path / "sim" / "ETH-USDT" / "2026-01-01.jsonl.gz").is_file()
    first = gzip.open(path, "rt").readline()
    assert '"type":"header"' in first and '"run_id":"run1"' in first and '"format":"bot-md/1"' in first
    feed = RecordedFeed(run_files(tmp_path, "run1"), run_id="run1")
    assert await drain(feed) == events  # merged back into the engine's order by the event index
    assert feed.gaps == 0 and feed.last_n == 4


async def test_days_rotate_and_runs_append_members(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec(1, tick(1, T0 - 1))  # 2025-12-31T23:59:59.999999999Z
    rec(2, tick(2, T0))  # the next UTC day: a new file
    rec.close()
    rec2 = recorder(tmp_path, "run2")
    rec2(1, tick(3, T0 + 5))  # a second run the same day appends a member to the same file
    rec2.close()
    folder = tmp_path / "sim" / "BTC-USDT"
    assert sorted(p.name for p in folder.iterdir()) == ["2025-12-31.jsonl.gz", "2026-01-01.jsonl.gz"]
    assert [r.event.seq for r in read_file(folder / "2026-01-01.jsonl.gz")] == [1002, 1003]
    assert [r.event.seq for r in read_file(folder / "2026-01-01.jsonl.gz", run_id="run2")] == [1003]
    assert [p.name for p in run_files(tmp_path, "run1")] == ["2025-12-31.jsonl.gz", "2026-01-01.jsonl.gz"]
    assert [p.name for p in day_files(tmp_path, "sim", "BTC/USDT", date(2026, 1, 1))] == ["2026-01-01.jsonl.gz"]


async def test_a_file_cut_short_reads_up_to_the_cut_and_is_never_appended_to(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    for n in range(1, 101):
        rec(n, tick(n, T0 + n))
    rec.flush()  # what a crash leaves: synced up to here, no gzip trailer
    path = rec.paths[0]
    for f in rec._files.values():  # the crash: the process dies without closing the gzip stream
        f.raw.close()
    rec._files.clear()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3])  # and the last bytes never reached the disk
    feed = RecordedFeed([path], run_id="run1")
    got = await drain(feed)
    assert 0 < len(got) <= 100 and [e.seq for e in got] == list(range(1001, 1001 + len(got)))
    assert feed.stats.truncated == [str(path)]
    rec2 = recorder(tmp_path, "run2")  # a restart the same day must not append behind the torn member
    rec2(1, tick(1, T0 + 500))
    rec2.close()
    assert rec2.paths == [path.with_name("2026-01-01.1.jsonl.gz")]
    assert [p.name for p in day_files(tmp_path, "sim", "BTC/USDT", date(2026, 1, 1))] == ["2026-01-01.jsonl.gz", "2026-01-01.1.jsonl.gz"]


async def test_gaps_in_a_run_are_counted(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    for n in (1, 2, 5):
        rec(n, tick(n, T0 + n))
    rec.close()
    feed = RecordedFeed(rec.paths, run_id="run1")
    assert len(await drain(feed)) == 3 and feed.gaps == 2


def test_bad_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RecordedDataError, match="not found"):
        RecordedFeed([tmp_path / "nope.jsonl.gz"])
    plain = tmp_path / "x.jsonl"
    plain.write_text('{"n": 1, "bid": "1"}\n')
    with pytest.raises(RecordedDataError, match="before any header"):
        list(read_file(plain))
    plain.write_text('{"type":"header","format":"other/9","run_id":"r","venue":"v","asset":"A/B"}\n')
    with pytest.raises(RecordedDataError, match="unknown format"):
        list(read_file(plain))
    plain.write_text('{"type":"header","format":"bot-md/1","run_id":"r","venue":"v","asset":"A/B"}\n{"n":1,"bid":"x"}\n')
    with pytest.raises(RecordedDataError, match=r"x.jsonl:2: bad market data line"):
        list(read_file(plain))


def test_retention_lists_and_deletes_only_old_days(tmp_path: Path) -> None:
    for day in ("2025-10-01", "2025-12-01", "2025-12-02", "2026-01-01"):
        folder = tmp_path / "sim" / "BTC-USDT"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{day}.jsonl.gz").write_bytes(b"")
    (tmp_path / "sim" / "BTC-USDT" / "2025-10-01.1.jsonl.gz").write_bytes(b"")
    (tmp_path / "sim" / "BTC-USDT" / "notes.txt").write_text("not ours")
    today = date(2026, 1, 1)
    assert [p.name for p in expired_files(tmp_path, 30, today)] == ["2025-10-01.1.jsonl.gz", "2025-10-01.jsonl.gz", "2025-12-01.jsonl.gz"]
    deleted = delete_expired(tmp_path, 30, today)
    assert len(deleted) == 3
    assert [(v, a, d.isoformat()) for v, a, d, _p in all_files(tmp_path)] == [
        ("sim", "BTC/USDT", "2025-12-02"), ("sim", "BTC/USDT", "2026-01-01")
    ]
    with pytest.raises(ValueError):
        expired_files(tmp_path, 0, today)


def test_ops_reports_read_what_the_recorder_writes(tmp_path: Path) -> None:
    from bot.ops.marketdata import RecordedPrices

    rec = recorder(tmp_path)
    book = Book("BTC/USDT", (BookLevel(D("1"), D("1")),), (BookLevel(D("2"), D("1")),), T0 + 2, T0 + 2, 9, "sim")
    for n, e in enumerate([tick(1, T0 + 1, bid="60000.00"), book, tick(3, T0 + 3, bid="60010.00")], 1):
        rec(n, e)
    rec.close()
    prices = RecordedPrices(tmp_path, lead_s=0)
    path = prices.path("BTC/USDT", T0, T0 + 10)
    assert path is not None and path.px == [D("60000.005"), D("60010.005")] and prices.skipped_lines == 0


async def test_a_run_s_batches_are_replayed_as_they_were_handled(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    batches = [[1, 2, 3], [4], [5, 6]]
    for batch in batches:
        rec.start_batch(batch[0])
        for n in batch:
            rec(n, tick(n, T0 + n))
    rec.close()
    feed = RecordedFeed(rec.paths, run_id="run1")
    got = [[e.seq - 1000 for e in b] async for b in feed.batches()]
    assert got == batches
    plain = RecordedFeed(rec.paths, batch=4)  # a backtest over the file: batches by count
    assert [len(b) async for b in plain.batches()] == [4, 2]

