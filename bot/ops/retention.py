"""Raw market data retention (spec 4.3: 30-90 days, ``market.retention_days``).

Deletes recorded market data files under ``market.record_dir`` whose name carries a UTC date
(``YYYY-MM-DD``) older than the retention; everything else is left alone: files without a date in their
name, files of unknown kinds, anything outside the directory (symbolic links are not followed). Empty
directories left behind are removed. The audit store is never touched (kept indefinitely).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

_DATED = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz", ".gz", ".zst", ".parquet", ".bin")
MIN_DAYS, MAX_DAYS = 30, 90


@dataclass
class RetentionResult:
    removed: list[Path] = field(default_factory=list)
    bytes_freed: int = 0
    kept: int = 0


def file_date(name: str) -> date | None:
    match = _DATED.search(name)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def prune_market_data(record_dir: Path, *, keep_days: int, today: date) -> RetentionResult:
    """Remove data files dated before ``today - keep_days`` (so ``keep_days`` whole days are kept)."""
    if not MIN_DAYS <= keep_days <= MAX_DAYS:
        raise ValueError(f"market data retention must be {MIN_DAYS}-{MAX_DAYS} days, got {keep_days}")
    result = RetentionResult()
    root = Path(record_dir)
    if not root.is_dir():
        return result
    cutoff = today - timedelta(days=keep_days)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        here = Path(dirpath)
        for name in filenames:
            path = here / name
            if path.is_symlink() or not name.endswith(DATA_SUFFIXES):
                continue
            day = file_date(name)
            if day is None or day >= cutoff:
                result.kept += 1
                continue
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError as exc:
                log.warning("retention: could not remove %s: %s", path, exc)
                continue
            result.removed.append(path)
            result.bytes_freed += size
        if here != root:
            try:
                here.rmdir()  # only succeeds when empty
            except OSError:
                pass
    if result.removed:
        log.info("retention: removed %d market data file(s) older than %s (%d bytes)", len(result.removed), cutoff, result.bytes_freed)
    return result
