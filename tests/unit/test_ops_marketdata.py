"""The reports read what the engine's recorder writes (format compatibility, continuation files, crash cuts)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bot.domain.market import Book, BookLevel, Tick
from bot.engine.recorder import MarketRecorder
from bot.ops.marketdata import RecordedPrices

D = Decimal
S = 1_000_000_000
T0 = 1_780_358_400 * S  # 2026-06-02T00:00:00Z


def tick(ts: int, bid: str, ask: str, seq: int) -> Tick:
    return Tick("BTC/USDT", D(bid), D("1"), D(ask), D("1"), ts, ts, seq, "sim")


def test_reads_the_recorders_files_across_days_sessions_and_a_cut_short_member(tmp_path: Path) -> None:
    rec = MarketRecorder(tmp_path, run_id="r1", config_hash="c", code_version="v")
    rec(1, tick(T0 - 60 * S, "59999", "60001", 1))  # the day before: the opening mark
    rec(2, tick(T0 + 10 * S, "60009", "60011", 2))
    rec(3, Book("BTC/USDT", (BookLevel(D("60000"), D("1")),), (BookLevel(D("60002"), D("1")),), T0 + 11 * S, T0 + 11 * S, 3, "sim"))
    rec(4, tick(T0 + 20 * S, "60019", "60021", 4))
    rec.close()
    # a second session the same day (a restart) appends a member; a third one is cut short by a crash
    rec2 = MarketRecorder(tmp_path, run_id="r2", config_hash="c", code_version="v")
    rec2(1, tick(T0 + 30 * S, "60029", "60031", 1))
    rec2.close()
    day = sorted((tmp_path / "sim" / "BTC-USDT").glob("2026-06-02*.jsonl.gz"))
    data = day[-1].read_bytes()
    rec3 = MarketRecorder(tmp_path, run_id="r3", config_hash="c", code_version="v")
    rec3(1, tick(T0 + 40 * S, "60039", "60041", 1))
    rec3.close()
    grown = day[-1].read_bytes()
    day[-1].write_bytes(grown[: len(data) + (len(grown) - len(data)) // 2])  # the crash cut the last member
    prices = RecordedPrices(tmp_path)
    path = prices.path("BTC/USDT", T0, T0 + 3600 * S)
    assert path is not None and path.source == "recorded"
    assert path.at(T0) == D("60000")  # the last mid before the window
    assert [path.at(T0 + k * S) for k in (10, 20, 30)] == [D("60010"), D("60020"), D("60030")]
    assert path.at(T0 + 45 * S) == D("60030")  # the cut-short member's tick is lost, what precedes it is kept
    assert prices.skipped_lines == 0  # header and book lines are skipped as what they are, not as damage
