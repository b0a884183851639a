"""Market data retention: dated data files older than the retention go, nothing else does."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from bot.ops.retention import file_date, prune_market_data


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_removes_only_dated_data_files_older_than_the_retention(tmp_path: Path) -> None:
    root = tmp_path / "md"
    old = touch(root / "binance" / "BTC-USDT" / "2026-04-30.jsonl.gz", b"12345")
    old_session = touch(root / "binance" / "BTC-USDT" / "2026-04-30.1.jsonl.gz")  # the recorder's continuation file
    run_index = touch(root / "_runs" / "run-2026-01-01.txt")  # the recorder's per-run index: not data
    edge = touch(root / "binance" / "BTC-USDT" / "2026-05-01.jsonl.gz")  # exactly 30 days before: kept
    new = touch(root / "binance" / "BTC-USDT" / "2026-05-31.jsonl")
    lonely = touch(root / "sim" / "ETH-USDT" / "2026-01-02.jsonl.gz")
    undated = touch(root / "binance" / "README.txt")
    notes = touch(root / "binance" / "notes-2020-01-01.txt")  # not a data file kind
    outside = touch(tmp_path / "elsewhere" / "2020-01-01.jsonl.gz")
    os.symlink(outside.parent, root / "linked")
    result = prune_market_data(root, keep_days=30, today=date(2026, 5, 31))
    assert sorted(result.removed) == sorted([old, old_session, lonely])
    assert result.bytes_freed == 7
    for kept in (edge, new, undated, notes, outside, run_index):
        assert kept.exists()
    assert not (root / "sim").exists()  # emptied directories go too
    assert (root / "linked").is_symlink()


def test_retention_bounds_and_missing_directory(tmp_path: Path) -> None:
    for days in (29, 91):
        with pytest.raises(ValueError, match="30-90"):
            prune_market_data(tmp_path, keep_days=days, today=date(2026, 5, 31))
    assert prune_market_data(tmp_path / "absent", keep_days=90, today=date(2026, 5, 31)).removed == []


def test_file_date() -> None:
    assert file_date("2026-03-29.jsonl.gz") == date(2026, 3, 29)
    assert file_date("btc_2026-02-30.csv") is None
    assert file_date("12026-03-291.csv") is None
    assert file_date("data.jsonl") is None
