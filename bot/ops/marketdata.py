"""Prices for reports: recorded market data files when present, otherwise our own fill prices.

Recorded files are the engine's recorder's (``bot/engine/recorder.py``; its ``day_files`` finds them):
``{record_dir}/{venue}/{BASE}-{QUOTE}/{YYYY-MM-DD}[.k].jsonl.gz`` (UTC day), gzip members of JSON lines; tick
lines carry ``ts_local_ns``, ``bid`` and ``ask`` (decimal strings; ``mid`` or ``last`` are accepted when
bid/ask are absent). Header and book lines are skipped, as is anything that does not parse (counted, never
fatal); a member cut short by a crash ends that file's reading and what precedes it is kept. Only the lines
inside the window are parsed: the others are skipped on a cheap look at their timestamp.
"""

from __future__ import annotations

import bisect
import gzip
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

from bot.engine.recorder import day_files

log = logging.getLogger(__name__)
_TS = re.compile(r'"ts_local_ns"\s*:\s*(\d+)')


@dataclass
class PricePath:
    """Mid prices of one asset in time order. ``source`` is 'recorded' or 'fills'."""

    asset: str
    source: str
    ts: list[int] = field(default_factory=list)
    px: list[Decimal] = field(default_factory=list)
    end_ns: int | None = None  # the newest observation (unchanged mids are not stored but still count)

    def add(self, ts_ns: int, price: Decimal) -> None:
        if self.end_ns is None or ts_ns > self.end_ns:
            self.end_ns = ts_ns
        if self.ts and ts_ns < self.ts[-1]:
            i = bisect.bisect_right(self.ts, ts_ns)
            self.ts.insert(i, ts_ns)
            self.px.insert(i, price)
            return
        if self.px and self.px[-1] == price and self.ts:
            return  # an unchanged mid adds nothing for a step function
        self.ts.append(ts_ns)
        self.px.append(price)

    def at(self, ts_ns: int) -> Decimal | None:
        """The last price at or before ``ts_ns`` (None before the first one)."""
        i = bisect.bisect_right(self.ts, ts_ns)
        return self.px[i - 1] if i else None

    def covers(self, ts_ns: int) -> bool:
        """True when the data runs at least until ``ts_ns`` (so ``at`` is not a stale last value)."""
        return self.end_ns is not None and self.end_ns >= ts_ns

    def __len__(self) -> int:
        return len(self.ts)


class PriceSource(Protocol):
    def path(self, asset: str, start_ns: int, end_ns: int) -> PricePath | None:
        """Mid prices of ``asset`` between the two instants (plus the last one before ``start_ns`` when known)."""


def _dec(value: object) -> Decimal | None:
    if value is None or isinstance(value, float):
        return None if value is None else Decimal(str(value))
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _open(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        yield from fh


class RecordedPrices:
    """Reads the recorder's files. ``lead_s`` of data before the window gives the opening mark."""

    def __init__(self, record_dir: Path, *, lead_s: int = 86_400) -> None:
        self.record_dir = Path(record_dir)
        self.lead_ns = lead_s * 1_000_000_000
        self.skipped_lines = 0

    def files(self, asset: str, start_ns: int, end_ns: int) -> list[Path]:
        if not self.record_dir.is_dir():
            return []
        first = datetime.fromtimestamp((start_ns - self.lead_ns) / 1e9, UTC).date()
        last = datetime.fromtimestamp(end_ns / 1e9, UTC).date()
        days: list[date] = []
        d = first
        while d <= last:
            days.append(d)
            d += timedelta(days=1)
        out: list[Path] = []
        for venue_dir in sorted(p for p in self.record_dir.iterdir() if p.is_dir()):
            for day in days:
                out.extend(day_files(self.record_dir, venue_dir.name, asset, day))  # incl. {day}.{k}.jsonl.gz
        return out

    def path(self, asset: str, start_ns: int, end_ns: int) -> PricePath | None:
        files = self.files(asset, start_ns, end_ns)
        if not files:
            return None
        lo = start_ns - self.lead_ns
        rows: list[tuple[int, Decimal]] = []
        lead: list[tuple[int, str]] = []  # the newest raw line before the window, per file
        for f in files:
            rows.extend(self._read(f, lo, start_ns, end_ns, lead))
        if lead:
            ts, line = max(lead, key=lambda r: r[0])
            rows.extend(self._parse(line, lo, end_ns))
        if not rows:
            return None
        rows.sort(key=lambda r: r[0])
        out = PricePath(asset, "recorded")
        for ts, px in rows:
            out.add(ts, px)
        return out

    def _read(self, path: Path, lo: int, start: int, hi: int, lead: list[tuple[int, str]]) -> Iterable[tuple[int, Decimal]]:
        """Rows inside [start, hi]; of the lines in [lo, start) only the newest is kept (raw, in ``lead``):
        the opening mark needs nothing else, and most lines are skipped without being parsed."""
        newest: tuple[int, str] | None = None
        try:
            for line in _open(path):
                line = line.strip()
                if not line:
                    continue
                quick = _TS.search(line)
                if quick is not None:
                    ts = int(quick[1])
                    if ts < lo or ts > hi:
                        continue
                    if ts < start:
                        if newest is None or ts >= newest[0]:
                            newest = (ts, line)
                        continue
                yield from self._parse(line, start, hi)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:  # a file cut short by a crash: keep what was read
            log.warning("market data file %s is damaged (%s); using the part that reads", path, exc)
        if newest is not None:
            lead.append(newest)

    def _parse(self, line: str, lo: int, hi: int) -> Iterable[tuple[int, Decimal]]:
        try:
            obj = json.loads(line)
            if obj.get("type") in ("header", "book"):  # the recorder's member headers and L2 books carry no L1 price
                return
            ts = int(obj.get("ts_local_ns", obj.get("ts_ns")))
        except (ValueError, TypeError, AttributeError):
            self.skipped_lines += 1
            return
        if ts < lo or ts > hi:
            return
        bid, ask = _dec(obj.get("bid")), _dec(obj.get("ask"))
        if bid is not None and ask is not None and bid > 0 and ask > 0:
            yield ts, (bid + ask) / 2
            return
        mid = _dec(obj.get("mid", obj.get("last")))
        if mid is not None and mid > 0:
            yield ts, mid
        else:
            self.skipped_lines += 1


def fill_price_path(asset: str, fills: Iterable[tuple[int, Decimal]]) -> PricePath:
    """The fallback: our own fill prices as the price of the asset (coarse: only where we traded)."""
    out = PricePath(asset, "fills")
    for ts, px in sorted(fills, key=lambda r: r[0]):
        out.ts.append(ts)
        out.px.append(px)
        out.end_ns = ts
    return out
