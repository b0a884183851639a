"""Recorded market data: the recorder (DRY_RUN, LIVE), the reader, and the file layout's housekeeping.

Layout (one file per venue, symbol and UTC day; gzip-compressed JSON lines; append-only)::

    {record_dir}/{venue}/{BASE}-{QUOTE}/{YYYY-MM-DD}.jsonl.gz        e.g. var/marketdata/sim/BTC-USDT/2026-01-01.jsonl.gz

Every writer session (a run, or a run crossing midnight) appends one gzip member that starts with a header line
``{"type": "header", "format": "bot-md/1", "run_id", "venue", "asset", "config_hash", "code_version"}``; then one
line per market event, in the order the engine handled it:

    {"n": 17, "seq": 9, "ts_venue_ns": ..., "ts_local_ns": ..., "bid": "60000.00", "bid_size": "1.5",
     "ask": "60000.01", "ask_size": "1.5"}                                   (+ "last" when the feed has it)
    {"n": 18, "type": "book", "seq": ..., "ts_venue_ns": ..., "ts_local_ns": ..., "bids": [["p", "s"], ...], "asks": [...]}

``n`` is the event's index in the run (1-based, across all assets: the engine's ``counters.events``, recorded with
every decision), ``"b": 1`` marks the first event of each batch the engine handled (its guards, risk's evaluation
among them, run once per batch: ``bot replay --run`` reproduces the batches), ``seq`` the feed's own sequence number, ``ts_venue_ns`` the venue's and ``ts_local_ns`` our
receive time (UTC epoch ns; the day of the file is the UTC day of ``ts_local_ns``). Prices and sizes are exact
decimal strings.

Crash safety: lines are written through a gzip stream that is sync-flushed every ``flush()`` (the service calls
it every second), so a crash loses at most the last second and leaves a file whose readable part ends cleanly;
readers stop at a cut-short member and keep what precedes it. A new session never appends to a file whose last
member was cut short (or that another process holds locked): it writes ``{YYYY-MM-DD}.{k}.jsonl.gz`` (k = 1, 2...)
instead. ``day_files`` lists every file of a day in order; ``expired_files`` / ``delete_expired`` implement the
retention (spec 4.3, 30-90 days) for the scheduled job. ``{record_dir}/_runs/{run_id}.txt`` lists the files a run
wrote to (``run_files``), so ``bot replay --run`` finds them whatever the days.
"""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import heapq
import json
import logging
import os
import re
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from bot.domain.market import Book, BookLevel, Tick

log = logging.getLogger(__name__)

FORMAT = "bot-md/1"
RUNS_DIR = "_runs"  # per-run index files (not a venue)
_MAX_RECORDED_BATCH = 65_536  # a recording without batch marks is still fed in bounded batches
DAY_NS = 86_400_000_000_000
_FILE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.jsonl(?:\.gz)?$")


def symbol_dir(asset: str) -> str:
    return asset.replace("/", "-")


def day_of(ts_ns: int) -> date:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).date()


def day_files(record_dir: Path, venue: str, asset: str, day: date) -> list[Path]:
    """Every file of one venue, asset and UTC day, in writing order (the plain name first, then .1, .2 ...)."""
    folder = Path(record_dir) / venue / symbol_dir(asset)
    if not folder.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for path in folder.iterdir():
        m = _FILE_RE.match(path.name)
        if m and m.group(1) == day.isoformat():
            found.append((int(m.group(2) or 0), path))
    return [p for _, p in sorted(found)]


def all_files(record_dir: Path) -> list[tuple[str, str, date, Path]]:
    """(venue, asset, day, path) of every recorded file under ``record_dir``."""
    out: list[tuple[str, str, date, Path]] = []
    root = Path(record_dir)
    if not root.is_dir():
        return out
    for venue_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != RUNS_DIR):
        for sym_dir in sorted(p for p in venue_dir.iterdir() if p.is_dir()):
            for path in sorted(sym_dir.iterdir()):
                m = _FILE_RE.match(path.name)
                if m:
                    out.append((venue_dir.name, sym_dir.name.replace("-", "/", 1), date.fromisoformat(m.group(1)), path))
    return out


def expired_files(record_dir: Path, retention_days: int, today: date) -> list[Path]:
    """Files whose UTC day is more than ``retention_days`` before ``today`` (today's and recent files are kept)."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = today - timedelta(days=retention_days)
    return [path for _v, _a, day, path in all_files(record_dir) if day < cutoff]


def delete_expired(record_dir: Path, retention_days: int, today: date) -> list[Path]:
    """Delete what ``expired_files`` lists; returns the deleted paths. Files being written are never expired
    (they are today's). For the retention job (ops): ``delete_expired(settings.market.record_dir,
    settings.market.retention_days, utc_today)``."""
    deleted = []
    for path in expired_files(record_dir, retention_days, today):
        try:
            path.unlink()
            deleted.append(path)
        except FileNotFoundError:
            continue
    return deleted


# ----------------------------------------------------------------------------- writing
def _member_complete(path: Path) -> bool:
    """True when every gzip member of the file is complete (its last writer closed it cleanly)."""
    try:
        with open(path, "rb") as raw:
            for _ in _gunzip(raw):
                pass
        return True
    except (EOFError, OSError, zlib.error):
        return False


class _DayFile:
    __slots__ = ("path", "raw", "gz", "lines", "day_end_ns", "written")

    def __init__(self, path: Path, raw: BinaryIO, day_end_ns: int, level: int) -> None:
        self.path = path
        self.raw = raw
        self.gz = gzip.GzipFile(filename="", mode="ab", fileobj=raw, compresslevel=level)
        self.lines: list[str] = []
        self.day_end_ns = day_end_ns
        self.written = 0

    def write_pending(self) -> None:
        if self.lines:
            self.gz.write("".join(self.lines).encode())
            self.written += len(self.lines)
            self.lines.clear()

    def sync(self) -> None:
        self.write_pending()
        self.gz.flush(zlib.Z_SYNC_FLUSH)
        self.raw.flush()

    def close(self) -> None:
        self.write_pending()
        self.gz.close()  # writes the member's trailer
        self.raw.flush()
        os.fsync(self.raw.fileno())
        fcntl.flock(self.raw.fileno(), fcntl.LOCK_UN)
        self.raw.close()


class MarketRecorder:
    """Engine market listener (``engine.market_listeners``): writes every event it is given, in order."""

    def __init__(
        self,
        record_dir: Path,
        *,
        run_id: str,
        config_hash: str,
        code_version: str,
        buffer_lines: int = 512,
        compresslevel: int = 5,
    ) -> None:
        self.record_dir = Path(record_dir)
        self.run_id = run_id
        self.config_hash = config_hash
        self.code_version = code_version
        self._buffer_lines = buffer_lines
        self._level = compresslevel
        self._files: dict[tuple[str, str], _DayFile] = {}
        self.paths: list[Path] = []  # every file this recorder wrote to, in opening order
        self.events = 0
        self._closed = False
        self._batch_start = 0  # index of the first event of the engine's current batch

    def start_batch(self, n: int) -> None:
        """Engine batch listener: event ``n`` starts a batch (written as ``"b": 1`` on its line)."""
        self._batch_start = n

    def __call__(self, n: int, event: Tick | Book) -> None:
        if self._closed:
            return
        venue = event.venue or "unknown"
        key = (venue, event.asset)
        f = self._files.get(key)
        ts = event.ts_local_ns
        if f is None or ts >= f.day_end_ns:
            f = self._open(venue, event.asset, ts, f)
        if event.__class__ is Book:
            line = _book_line(n, event)  # type: ignore[arg-type]
        else:
            line = _tick_line(n, event)  # type: ignore[arg-type]
        if n == self._batch_start:
            line = '{"b":1,' + line[1:]
        f.lines.append(line)
        self.events += 1
        if len(f.lines) >= self._buffer_lines:
            f.write_pending()

    def _open(self, venue: str, asset: str, ts_ns: int, previous: _DayFile | None) -> _DayFile:
        if previous is not None:
            previous.close()
        day = day_of(ts_ns)
        folder = self.record_dir / venue / symbol_dir(asset)
        folder.mkdir(parents=True, exist_ok=True)
        k = 0
        while True:
            path = folder / (f"{day.isoformat()}.jsonl.gz" if k == 0 else f"{day.isoformat()}.{k}.jsonl.gz")
            if path.exists() and not _member_complete(path):
                log.warning("market data file %s ends cut short (a crash?): writing the next one instead", path)
                k += 1
                continue
            raw = open(path, "ab")  # noqa: SIM115 - closed by _DayFile.close
            try:
                fcntl.flock(raw.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raw.close()
                log.warning("market data file %s is locked by another process: writing the next one instead", path)
                k += 1
                continue
            break
        day_start = (ts_ns // DAY_NS) * DAY_NS
        f = _DayFile(path, raw, day_start + DAY_NS, self._level)
        header = {
            "type": "header", "format": FORMAT, "run_id": self.run_id, "venue": venue, "asset": asset,
            "config_hash": self.config_hash, "code_version": self.code_version,
        }
        f.lines.append(json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
        self._files[(venue, asset)] = f
        self.paths.append(path)
        self._index(path)
        return f

    def _index(self, path: Path) -> None:
        """``{record_dir}/_runs/{run_id}.txt`` lists the run's files (relative paths), for 'bot replay --run'."""
        index = self.record_dir / RUNS_DIR / f"{self.run_id}.txt"
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a", encoding="utf-8") as fh:
            fh.write(path.relative_to(self.record_dir).as_posix() + "\n")

    def flush(self) -> None:
        """Make everything recorded so far readable from the files (sync flush of the gzip streams)."""
        for f in self._files.values():
            f.sync()

    def close(self) -> None:
        self._closed = True
        for f in self._files.values():
            f.close()
        self._files.clear()


def _d(value: Decimal) -> str:
    return format(value, "f")


def _tick_line(n: int, t: Tick) -> str:
    last = "" if t.last is None else f',"last":"{_d(t.last)}"'
    return (
        f'{{"n":{n},"seq":{t.seq},"ts_venue_ns":{t.ts_venue_ns},"ts_local_ns":{t.ts_local_ns},'
        f'"bid":"{_d(t.bid)}","bid_size":"{_d(t.bid_size)}","ask":"{_d(t.ask)}","ask_size":"{_d(t.ask_size)}"{last}}}\n'
    )


def _book_line(n: int, b: Book) -> str:
    bids = ",".join(f'["{_d(lv.price)}","{_d(lv.size)}"]' for lv in b.bids)
    asks = ",".join(f'["{_d(lv.price)}","{_d(lv.size)}"]' for lv in b.asks)
    return (
        f'{{"n":{n},"type":"book","seq":{b.seq},"ts_venue_ns":{b.ts_venue_ns},"ts_local_ns":{b.ts_local_ns},'
        f'"bids":[{bids}],"asks":[{asks}]}}\n'
    )


# ----------------------------------------------------------------------------- reading
class RecordedDataError(Exception):
    """A recorded file cannot be used (not our format, a line that does not parse)."""


@dataclass(frozen=True, slots=True)
class Header:
    run_id: str
    venue: str
    asset: str
    config_hash: str
    code_version: str


@dataclass
class ReadStats:
    files: int = 0
    events: int = 0
    truncated: list[str] | None = None  # files that end cut short (read up to the cut)


def _gunzip(raw: BinaryIO) -> Iterator[bytes]:
    """Decompress concatenated gzip members as they come; raise EOFError at a member cut short (after yielding
    everything before the cut) and zlib.error at garbage."""
    d = zlib.decompressobj(31)
    fed = False
    while True:
        chunk = raw.read(1 << 18)
        if not chunk:
            break
        while chunk:
            fed = True
            out = d.decompress(chunk)
            if out:
                yield out
            if d.eof:
                chunk = d.unused_data
                d = zlib.decompressobj(31)
                fed = False
            else:
                chunk = b""
    if fed and not d.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _lines(path: Path, stats: ReadStats) -> Iterator[str]:
    """The file's complete lines; a file cut short yields what precedes the cut (never a partial line)."""
    rest = b""
    try:
        with open(path, "rb") as raw:
            chunks = _gunzip(raw) if path.name.endswith(".gz") else iter(lambda: raw.read(1 << 18), b"")
            for chunk in chunks:
                data = rest + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    rest = data
                    continue
                rest = data[end + 1 :]
                for line in data[: end + 1].splitlines():
                    yield line.decode()
    except (EOFError, zlib.error) as exc:
        log.warning("market data file %s ends cut short (%s): using what precedes the cut", path, exc)
        stats.truncated = (stats.truncated or []) + [str(path)]
        return
    if rest.strip():
        yield rest.decode()


class RecordedEvent(NamedTuple):
    n: int  # the event's index in its run
    header: Header
    event: Tick | Book
    batch_start: bool  # the recording engine started a batch with this event


def read_file(path: Path, *, run_id: str | None = None, stats: ReadStats | None = None) -> Iterator[RecordedEvent]:
    """Every event of the file (of one run only, when ``run_id`` is given), tolerating a cut-short end."""
    stats = stats if stats is not None else ReadStats()
    stats.files += 1
    header: Header | None = None
    keep = True
    for lineno, line in enumerate(_lines(path, stats), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise RecordedDataError(f"{path}:{lineno}: not a JSON line") from None
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "header":
            if obj.get("format") != FORMAT:
                raise RecordedDataError(f"{path}:{lineno}: unknown format {obj.get('format')!r} (expected {FORMAT})")
            header = Header(obj["run_id"], obj["venue"], obj["asset"], obj.get("config_hash", ""), obj.get("code_version", ""))
            keep = run_id is None or header.run_id == run_id
            continue
        if header is None:
            raise RecordedDataError(f"{path}:{lineno}: data before any header line (not a recorder file?)")
        if not keep:
            continue
        try:
            if kind == "book":
                event: Tick | Book = Book(
                    header.asset,
                    tuple(BookLevel(Decimal(p), Decimal(s)) for p, s in obj["bids"]),
                    tuple(BookLevel(Decimal(p), Decimal(s)) for p, s in obj["asks"]),
                    obj["ts_venue_ns"], obj["ts_local_ns"], obj["seq"], header.venue,
                )
            else:
                last = obj.get("last")
                event = Tick(
                    header.asset, Decimal(obj["bid"]), Decimal(obj["bid_size"]), Decimal(obj["ask"]), Decimal(obj["ask_size"]),
                    obj["ts_venue_ns"], obj["ts_local_ns"], obj["seq"], header.venue, None if last is None else Decimal(last),
                )
            n = int(obj["n"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise RecordedDataError(f"{path}:{lineno}: bad market data line ({type(exc).__name__}: {exc})") from None
        stats.events += 1
        yield RecordedEvent(n, header, event, bool(obj.get("b")))


def run_files(record_dir: Path, run_id: str, days: Iterable[date] = ()) -> list[Path]:
    """The files holding events of ``run_id``: those its index lists, or else every file of the given days."""
    root = Path(record_dir)
    index = root / RUNS_DIR / f"{run_id}.txt"
    if index.is_file():
        listed = [root / line.strip() for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [p for p in dict.fromkeys(listed) if p.is_file()]
    wanted = {d.isoformat() for d in days}
    return [p for _v, _a, d, p in all_files(root) if d.isoformat() in wanted]


class RecordedFeed:
    """``MarketFeed`` over recorded files.

    With ``run_id``: the events of that run, merged across files by their index ``n`` (the exact order the
    recording engine handled them). Without: every event of every file, merged by ``ts_local_ns`` (then file
    order), which is what a backtest over a day file wants. ``gaps`` counts missing indexes of a run.
    """

    def __init__(
        self, paths: Sequence[Path], *, run_id: str | None = None, batch: int = 512, max_events: int = 0, recorded_batches: bool | None = None
    ) -> None:
        if not paths:
            raise RecordedDataError("no market data files given")
        for p in paths:
            if not Path(p).is_file():
                raise RecordedDataError(f"market data file not found: {p}")
        self.paths = [Path(p) for p in paths]
        self.run_id = run_id
        self.stats = ReadStats()
        self.headers: dict[tuple[str, str], Header] = {}
        self.gaps = 0
        self.emitted = 0
        self.last_n = 0
        self._batch = batch
        self._max = max_events
        self._closed = False
        # a run's own batches (its guards ran once per batch): the default when replaying one run
        self._recorded_batches = run_id is not None if recorded_batches is None else recorded_batches

    def first_ts_ns(self) -> int | None:
        """Event time of the earliest first event of the files (where a clock following them should start)."""
        first: int | None = None
        for path in self.paths:
            events = read_file(path, run_id=self.run_id)
            try:
                for rec in events:
                    first = rec.event.ts_local_ns if first is None else min(first, rec.event.ts_local_ns)
                    break
            finally:
                events.close()
        return first

    def events(self) -> Iterator[tuple[Tick | Book, bool]]:
        """(event, whether it started a batch of the recording engine), in order."""
        streams = [self._stream(p, i) for i, p in enumerate(self.paths)]
        if self.run_id is not None:
            merged: Iterable[tuple[Any, ...]] = heapq.merge(*streams, key=lambda r: r[0])
        else:
            merged = heapq.merge(*streams, key=lambda r: (r[2].ts_local_ns, r[1]))
        last_n = 0
        for n, _file, event, starts in merged:
            if self.run_id is not None:
                if n <= last_n:
                    raise RecordedDataError(f"run {self.run_id}: event index {n} repeats or goes backwards after {last_n}")
                if n != last_n + 1:
                    self.gaps += n - last_n - 1
                last_n = n
            self.last_n = n
            yield event, starts

    def _stream(self, path: Path, index: int) -> Iterator[tuple[int, int, Tick | Book, bool]]:
        for n, header, event, starts in read_file(path, run_id=self.run_id, stats=self.stats):
            self.headers[(header.venue, header.asset)] = header
            yield n, index, event, starts

    async def batches(self) -> AsyncIterator[Sequence[Tick | Book]]:
        """The recording engine's batches (``recorded_batches``), else batches of up to ``batch`` events."""
        out: list[Tick | Book] = []
        recorded = self._recorded_batches
        size = self._batch
        for event, starts in self.events():
            if self._closed or (self._max and self.emitted >= self._max):
                break
            if out and ((starts or len(out) >= _MAX_RECORDED_BATCH) if recorded else len(out) >= size):
                yield out
                out = []
                await asyncio.sleep(0)  # let the engine, commands and signals in between batches
            out.append(event)
            self.emitted += 1
        if out and not self._closed:
            yield out

    async def close(self) -> None:
        self._closed = True
