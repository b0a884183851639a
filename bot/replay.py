"""REPLAY orchestration (``bot replay``): re-run a recorded run and report ``identical`` or the first divergence,
or backtest a strategy on recorded data.

    bot replay --run RUN_ID [--config FILE] [--record-dir DIR] [--out DIR] [--force]
    bot replay --data FILE [FILE ...] --strategy NAME [--param k=v ...] [--config FILE] [--out DIR] [--json FILE]
    bot replay --list [--config FILE]

Both use the same pipeline as DRY_RUN (spec 8.9), built by the composition root in mode REPLAY: the recorded
market data as the feed, an injected clock that follows the events (never wall time), the simulated venue with
the run's seed, and the audit store (a SQLite file in ``--out``, default a temporary directory: the operator's
database only ever gets read). ``--out`` also receives ``decisions.jsonl`` and ``intents.jsonl``, the canonical
decision and intent logs (byte-identical for identical decisions).

Exit codes: 0 identical (or backtest done), 1 runtime failure, 2 usage or configuration error (unknown run,
code changed without --force, bad parameter), 3 store schema not at head, 4 replay diverged.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import service
from bot.config import LoadedConfig, Settings, secret_paths
from bot.domain.modes import Mode
from bot.domain.money import ZERO
from bot.domain.ports import MarketFeed
from bot.engine.clock import ManualClock
from bot.engine.recorder import RecordedFeed, read_file, run_files
from bot.engine.registry import UnknownStrategy, code_hash, load_strategy_class
from bot.engine.backtest_stats import Stats, StatsCollector
from bot.engine.decision_log import Decision, Divergence, canonical_decision, canonical_intent, dumps, first_divergence, from_lines
from bot.store import migrate
from bot.store.db import create_engine
from bot.store.models import DecisionRow, IntentRow, Run

class ReplayError(Exception):
    """A replay that cannot start; the message says why and what to do (exit 2)."""


# ----------------------------------------------------------------------------- the recorded run
@dataclass
class RecordedRun:
    run_id: str
    mode: str
    version_hash: str
    config_hash: str
    start_ts: datetime
    data: dict[str, Any]
    stop_ts: datetime | None = None
    stop_data: dict[str, Any] = field(default_factory=dict)


async def load_run(db: AsyncEngine, run_id: str) -> RecordedRun:
    async with db.connect() as conn:
        rows = (await conn.execute(select(Run).where(Run.run_id == run_id).order_by(Run.id))).mappings().all()
    start = next((r for r in rows if r["run_kind"] == "start"), None)
    if start is None:
        raise ReplayError(f"no run {run_id!r} in the audit store (list them with 'bot replay --list')")
    data = start["data"] or {}
    if "config" not in data or "id_prefix" not in data:
        raise ReplayError(f"run {run_id} was recorded without its configuration (an older version): it cannot be replayed")
    stop = next((r for r in rows if r["run_kind"] == "stop"), None)
    return RecordedRun(
        run_id, start["mode"], start["version_hash"], start["config_hash"], start["ts"], data,
        stop["ts"] if stop else None, (stop["data"] or {}) if stop else {},
    )


def code_changes(run: RecordedRun, *, current_version: str) -> list[str]:
    """What differs between the recorded run's code and this one (strategy code hashes, then the package)."""
    changes = []
    for sid, meta in sorted(run.data.get("strategies", {}).items()):
        try:
            cls = load_strategy_class(meta["name"])
        except (UnknownStrategy, TypeError) as exc:
            changes.append(f"strategy {sid} ({meta.get('name')}): cannot be loaded here ({exc})")
            continue
        now = code_hash(cls)
        if now != meta.get("code_hash"):
            changes.append(f"strategy {sid} ({meta['name']}): code hash {meta.get('code_hash', '')[:12]} recorded, {now[:12]} now")
    if run.version_hash != current_version:
        changes.append(f"code version {run.version_hash} recorded, {current_version} now")
    return changes


def _strip_secrets(cfg: dict[str, Any]) -> dict[str, Any]:
    for path in secret_paths():
        node = cfg
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.get(part) or {}
        if parts[-1] in node:
            node[parts[-1]] = None
    return cfg


def _store_in(out_dir: Path) -> dict[str, Any]:
    return {"url": f"sqlite+aiosqlite:///{out_dir / 'replay.db'}", "batch_size": 5000}


def settings_from(cfg: dict[str, Any], source: str) -> LoadedConfig:
    try:
        return LoadedConfig(Settings.model_validate(cfg), source, [])
    except ValueError as exc:
        raise ReplayError(f"{source}: the configuration does not validate with this code: {exc}") from None


# ----------------------------------------------------------------------------- running the pipeline
@dataclass
class Outcome:
    svc: service.Service
    elapsed_s: float
    exit_code: int
    cpu_s: float = 0.0  # process CPU time of the run (both threads: the engine's and the store's writer)
    engine_cpu_s: float = 0.0  # CPU time of the engine's thread alone


async def _prepare_store(out_dir: Path) -> None:
    db = create_engine(_store_in(out_dir)["url"])
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


async def run_pipeline(
    loaded: LoadedConfig,
    feed: MarketFeed,
    clock: ManualClock,
    out_dir: Path,
    *,
    id_prefix: str | None = None,
    stats: bool = False,
    install_signals: bool = False,
) -> tuple[Outcome, StatsCollector | None]:
    """Build the REPLAY pipeline through the composition root, run it to the end of the data, return what it did."""
    await _prepare_store(out_dir)
    svc = await service.build(loaded, clock=clock, feed=feed, run_id=uuid.uuid4().hex, id_prefix=id_prefix)
    collector = attach_stats(svc) if stats else None
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    code = await service.run(svc, install_signals=install_signals)
    elapsed, cpu, engine_cpu = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    return Outcome(svc, elapsed, code, cpu, engine_cpu), collector


async def write_logs(db: AsyncEngine, run_id: str, out_dir: Path, prefix: str = "") -> tuple[Path, Path]:
    """Write the run's canonical decision and intent logs (``{prefix}decisions.jsonl``, ``{prefix}intents.jsonl``)
    from its audit store, in paged reads (any run size)."""
    d_path, i_path = out_dir / f"{prefix}decisions.jsonl", out_dir / f"{prefix}intents.jsonl"
    async with db.connect() as conn:
        for model, path, canon in ((DecisionRow, d_path, canonical_decision), (IntentRow, i_path, canonical_intent)):
            with path.open("w", encoding="ascii", newline="\n") as fh:
                async for row in _paged(conn, model, run_id):
                    if model is IntentRow and row["decision_id"] is None:
                        continue
                    fh.write(dumps(canon(dict(row))) + "\n")
    return d_path, i_path


async def write_replay_logs(outcome: Outcome, out_dir: Path) -> tuple[Path, Path]:
    db = create_engine(_store_in(out_dir)["url"])
    try:
        return await write_logs(db, outcome.svc.run_id, out_dir)
    finally:
        await db.dispose()


def attach_stats(svc: service.Service) -> StatsCollector:
    engine = svc.engine
    balances = {k: Decimal(v) for k, v in svc.settings.sim.balances.items()}
    quote = next(iter(engine.instruments.values())).quote

    def marks() -> dict[str, Decimal]:
        return {a: t.mid for a, t in engine.market.last.items()}

    def pnl() -> Decimal:
        realised, unrealised, fees = engine.portfolio.totals(marks())
        return realised + unrealised - fees

    def mark(asset: str) -> Decimal | None:
        t = engine.market.last.get(asset)
        return t.mid if t is not None else None

    def account_value() -> Decimal:
        total = ZERO
        m = marks()
        for asset, amount in balances.items():
            if asset == quote:
                total += amount
            elif f"{asset}/{quote}" in m:
                total += amount * m[f"{asset}/{quote}"]
        return total

    collector = StatsCollector(pnl, mark, account_value)
    engine.tick_listeners.append(collector.on_tick)
    engine.submit_listeners.append(collector.on_submit)
    engine.oms.fill_listeners.append(collector.on_fill)
    return collector


# ----------------------------------------------------------------------------- --run
@dataclass
class RunReport:
    run_id: str
    identical: bool
    compared: int
    divergence: Divergence | None
    events_recorded: int | None
    events_replayed: int
    gaps: int
    truncated: list[str]
    code_changes: list[str]
    out_dir: Path
    param_changes: list[str] = field(default_factory=list)
    operator_decisions: int = 0  # in the recorded run, not reproduced by the replay

    def text(self) -> str:
        lines = []
        if self.param_changes:
            lines.append("replayed with changed parameters:")
            lines.extend(f"  {c}" for c in self.param_changes)
        if self.code_changes:
            lines.append("replayed with changed code (--force):")
            lines.extend(f"  {c}" for c in self.code_changes)
        lines.append(
            f"run {self.run_id}: {self.events_replayed} market events replayed"
            + (f" of {self.events_recorded} recorded" if self.events_recorded is not None else "")
            + f", {self.compared} decisions compared"
        )
        if self.operator_decisions:
            lines.append(
                f"note: {self.operator_decisions} operator decision(s) of the run are not replayed (they came from outside the "
                "recording); strategy decisions after their fills may differ"
            )
        if self.gaps:
            lines.append(f"warning: {self.gaps} market events missing from the recording (index gaps)")
        for t in self.truncated:
            lines.append(f"warning: {t} ends cut short; replayed up to the cut")
        if self.events_recorded is not None and self.events_replayed != self.events_recorded:
            lines.append("warning: the replay did not see every event the run handled (recording incomplete)")
        if self.identical:
            lines.append("identical")
        else:
            assert self.divergence is not None
            lines.append(self.divergence.describe())
        lines.append(f"logs: {self.out_dir}")
        return "\n".join(lines)


async def _paged(conn: Any, model: Any, run_id: str, page: int = 5000) -> AsyncIterator[Any]:
    last = 0
    while True:
        stmt = select(model).where(model.run_id == run_id, model.id > last).order_by(model.id).limit(page)
        rows = (await conn.execute(stmt)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1]["id"]


def _days(start: datetime, stop: datetime | None) -> list[Any]:
    first = start.astimezone(UTC).date()
    last = (stop or datetime.now(UTC)).astimezone(UTC).date()
    out = []
    d = first
    while d <= last:
        out.append(d)
        d += timedelta(days=1)
    return out


async def replay_run(
    store: LoadedConfig,
    run_id: str,
    *,
    record_dir: Path | None,
    out_dir: Path,
    force: bool,
    params: dict[str, Any] | None = None,
    install_signals: bool = False,
) -> RunReport:
    """Re-run ``run_id`` and compare. ``params`` (``{"strategy_id.key": value}``) changes parameters for a
    what-if replay: the report shows the first decision the change alters."""
    s = store.settings
    db = create_engine(s.store.url, schema=s.store.pg_schema)
    try:
        await migrate.check_schema(db, "")
        run = await load_run(db, run_id)
        changes = code_changes(run, current_version=service.version_hash())
        strategy_changes = [c for c in changes if c.startswith("strategy")]
        if strategy_changes and not force:
            raise ReplayError(
                "refusing to replay: the strategy code differs from the recorded run's pinned version:\n  "
                + "\n  ".join(strategy_changes)
                + "\nrun the recorded code version, or pass --force to replay anyway and see where decisions diverge"
            )
        cfg = _strip_secrets(dict(run.data["config"]))
        cfg["mode"] = Mode.REPLAY.value
        cfg["store"] = _store_in(out_dir)
        # the simulated venue stands in for whatever venue the run traded on, with the instruments as traded and
        # that venue's asset allowlist
        traded_on = cfg["market"]["venue"]
        cfg["market"] = dict(cfg["market"], record=False, venue="sim", feed="synthetic")
        if run.data.get("instruments"):
            cfg["sim"] = dict(cfg["sim"], instruments=run.data["instruments"])
        allowed = dict(cfg["risk"]["allowed_assets"])
        if traded_on != "sim" and traded_on in allowed:
            allowed["sim"] = allowed[traded_on]
        cfg["risk"] = dict(cfg["risk"], allowed_assets=allowed)
        cfg["engine"] = _replay_engine_paths(cfg["engine"], out_dir)
        cfg.pop("keys", None)  # a replay trades on the simulated venue: it needs no key (nor the master key's file)
        changed = _override_params(cfg, params or {})
        loaded = settings_from(cfg, f"run {run_id}")
        directory = record_dir or (Path(run.data["record_dir"]) if run.data.get("record_dir") else None)
        if directory is None:
            raise ReplayError(f"run {run_id} did not record its market data (market.record was off): nothing to replay")
        files = run_files(directory, run_id, _days(run.start_ts, run.stop_ts))
        if not files:
            raise ReplayError(f"no market data files for run {run_id} under {directory} (moved? pass --record-dir)")
        feed = RecordedFeed(files, run_id=run_id)
        clock = ManualClock(int(run.data.get("start_ns") or 0))
        outcome, _ = await run_pipeline(loaded, feed, clock, out_dir, id_prefix=run.data["id_prefix"], install_signals=install_signals)
        if outcome.exit_code != 0:
            raise RuntimeError(f"the replay pipeline failed (exit {outcome.exit_code}); see the log above")
        exp_d, exp_i = await write_logs(db, run_id, out_dir, prefix="expected.")
    finally:
        await db.dispose()
    act_d, act_i = await write_replay_logs(outcome, out_dir)
    with exp_d.open(encoding="ascii") as fd, exp_i.open(encoding="ascii") as fi, act_d.open(encoding="ascii") as ad, act_i.open(
        encoding="ascii"
    ) as ai:
        skipped = [0, 0]
        divergence, compared = first_divergence(
            _market_decisions(from_lines(fd, fi), skipped, 0), _market_decisions(from_lines(ad, ai), skipped, 1)
        )
    if feed.stats.events == 0:
        raise ReplayError(f"the market data files of run {run_id} hold no events of it")
    return RunReport(
        run_id, divergence is None, compared, divergence, run.stop_data.get("events"), outcome.svc.engine.counters.events,
        feed.gaps, feed.stats.truncated or [], changes if force else [], out_dir, changed, skipped[0],
    )


def _market_decisions(decisions: Iterable[Decision], skipped: list[int], side: int) -> Iterator[Decision]:
    """The decisions a replay can reproduce: those made on market data and fills. An operator's (a manual order
    staged from Telegram, an ``Engine.propose`` request) came from outside the recording: counted, not compared."""
    for d in decisions:
        if d.row.get("event") is None or str(d.row.get("inputs_ref", "")).startswith("request:"):
            skipped[side] += 1
            continue
        yield d


def _replay_engine_paths(engine: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """A replay's kill file and state directory are its own: the operator's KILL file (it may well exist while
    a halted run is being investigated) is not part of the recording and must not change the replay."""
    return dict(engine, kill_file=str(out_dir / "state" / "KILL"), state_dir=str(out_dir / "state"))


def _override_params(cfg: dict[str, Any], params: dict[str, Any]) -> list[str]:
    strategies = {st["id"]: st for st in cfg.get("strategies", [])}
    changed = []
    for dotted, value in sorted(params.items()):
        sid, sep, key = dotted.partition(".")
        if not sep or not key:
            raise ReplayError(f"--param {dotted}: with --run, name the strategy: STRATEGY_ID.key=value")
        if sid not in strategies:
            raise ReplayError(f"--param {dotted}: run has no strategy {sid!r} (it has: {', '.join(sorted(strategies)) or 'none'})")
        before = strategies[sid]["params"].get(key, "(default)")
        strategies[sid]["params"] = dict(strategies[sid]["params"], **{key: value})
        changed.append(f"{sid}.{key}: {before} -> {value}")
    return changed


# ----------------------------------------------------------------------------- --data (backtest)
@dataclass
class BacktestReport:
    strategy: str
    params: dict[str, Any]
    files: list[str]
    assets: list[str]
    events: int
    ticks: int
    first_ns: int | None
    last_ns: int | None
    elapsed_s: float
    pnl_gross: Decimal
    pnl_net: Decimal
    fees: Decimal
    stats: Stats
    quote: str
    out_dir: Path
    cpu_s: float = 0.0
    engine_cpu_s: float = 0.0

    @property
    def ticks_per_s(self) -> float:
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "strategy": self.strategy, "params": self.params, "files": self.files, "assets": self.assets,
            "events": self.events, "ticks": self.ticks, "first_ts": _iso(self.first_ns), "last_ts": _iso(self.last_ns),
            "pnl_gross": str(self.pnl_gross), "pnl_net": str(self.pnl_net), "fees": str(self.fees), "quote": self.quote,
            "orders": s.orders, "fills": s.fills, "orders_filled": s.orders_filled, "fill_ratio": s.fill_ratio,
            "qty_fill_ratio": s.qty_fill_ratio, "account_value": str(s.account_value), "max_drawdown": str(s.max_drawdown),
            "max_drawdown_pct": s.max_drawdown_pct, "sharpe": s.sharpe(),
            "slippage_bps": s.slippage_bps(s.slippage_cost, s.slippage_notional), "slippage_cost": str(s.slippage_cost),
            "taker_slippage_bps": s.slippage_bps(s.taker_cost, s.taker_notional),
            "maker_slippage_bps": s.slippage_bps(s.maker_cost, s.maker_notional),
            "elapsed_s": round(self.elapsed_s, 3), "ticks_per_s": round(self.ticks_per_s, 1), "out_dir": str(self.out_dir),
            "cpu_s": round(self.cpu_s, 3), "engine_cpu_s": round(self.engine_cpu_s, 3),
        }

    def text(self) -> str:
        s, q = self.stats, self.quote

        def bps(v: float | None) -> str:
            return "n/a" if v is None else f"{v:+.2f} bps"

        sharpe = s.sharpe()
        return "\n".join([
            f"backtest {self.strategy} {json.dumps(self.params, sort_keys=True)} on {', '.join(self.files)}",
            f"  data           {', '.join(self.assets)}: {self.events} events ({self.ticks} ticks), {_iso(self.first_ns)} .. {_iso(self.last_ns)}",
            f"  pnl gross      {_money(self.pnl_gross)} {q}",
            f"  pnl net        {_money(self.pnl_net)} {q}   (after fees)",
            f"  fees           {_money(self.fees)} {q}",
            f"  orders         {s.orders}",
            f"  fills          {s.fills}",
            f"  fill ratio     {s.fill_ratio:.1%} of orders had a fill ({s.qty_fill_ratio:.1%} of the ordered quantity)",
            f"  max drawdown   {_money(s.max_drawdown)} {q} = {s.max_drawdown_pct:.4f}% of the account value "
            f"{_money(s.account_value)} {q}",
            f"  sharpe         {'n/a' if sharpe is None else f'{sharpe:.2f}'} (annualised, 1-minute returns, 24/7)",
            f"  slippage       {bps(s.slippage_bps(s.slippage_cost, s.slippage_notional))} vs arrival mid "
            f"(cost {_money(s.slippage_cost)} {q}; taker {bps(s.slippage_bps(s.taker_cost, s.taker_notional))}, "
            f"maker {bps(s.slippage_bps(s.maker_cost, s.maker_notional))})",
            f"  time           {self.elapsed_s:.2f} s, {self.ticks_per_s:,.0f} ticks/s (CPU {self.cpu_s:.2f} s, engine thread "
            f"{self.engine_cpu_s:.2f} s)",
            f"  logs           {self.out_dir}",
        ])


def _money(v: Decimal) -> str:
    return f"{v.quantize(Decimal('0.01')):,}"


def _iso(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``k=v`` pairs: v is text (strategies parse their own numbers); a JSON object or list stays structured."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ReplayError(f"--param {pair!r}: expected key=value")
        if key in out:
            raise ReplayError(f"--param {key} given twice")
        value = value.strip()
        if value[:1] in ("{", "["):
            try:
                out[key] = json.loads(value, parse_float=str)
            except ValueError:
                raise ReplayError(f"--param {key}: {value!r} is not valid JSON") from None
        else:
            out[key] = value
    return out


def _peek(files: Sequence[Path]) -> tuple[list[str], int | None]:
    """The assets of the files (from their headers) and the first event time."""
    assets: list[str] = []
    first: int | None = None
    for path in files:
        events = read_file(path)
        try:
            for rec in events:
                if rec.header.asset not in assets:
                    assets.append(rec.header.asset)
                first = rec.event.ts_local_ns if first is None else min(first, rec.event.ts_local_ns)
                break
        finally:
            events.close()
    return assets, first


async def backtest(
    base: LoadedConfig,
    files: Sequence[Path],
    strategy: str,
    params: dict[str, Any],
    out_dir: Path,
    *,
    feed: MarketFeed | None = None,
    assets: Sequence[str] | None = None,
    start_ns: int | None = None,
    install_signals: bool = False,
    logs: bool = True,
) -> BacktestReport:
    """Backtest one strategy on recorded files (or on ``feed``, e.g. the benchmark's generator)."""
    if feed is None:
        for path in files:
            if not Path(path).is_file():
                raise ReplayError(f"market data file not found: {path}")
        peeked_assets, start_ns = _peek(files)
        if not peeked_assets:
            raise ReplayError(f"no market data in {', '.join(map(str, files))}")
        assets = peeked_assets
        feed = RecordedFeed(files)
    assert assets
    cfg = base.settings.model_dump(mode="json")
    cfg["mode"] = Mode.REPLAY.value
    cfg["store"] = dict(cfg["store"], **_store_in(out_dir))
    cfg["market"] = dict(cfg["market"], assets=list(assets), record=False, feed="synthetic")
    cfg["engine"] = _replay_engine_paths(cfg["engine"], out_dir)
    missing = [a for a in assets if a not in cfg["sim"]["instruments"]]
    if missing:
        raise ReplayError(
            f"no instrument definition for {', '.join(missing)}: add [sim.instruments.\"{missing[0]}\"] "
            "(tick_size, lot_size, min_notional, fees) to the configuration given with --config"
        )
    cfg["strategies"] = [{"id": _strategy_id(strategy), "name": strategy, "assets": list(assets), "params": params}]
    cfg["risk"] = dict(cfg["risk"], allowed_assets={**cfg["risk"]["allowed_assets"], "sim": list(assets)})
    loaded = settings_from(_strip_secrets(cfg), base.source)
    clock = ManualClock(start_ns or 0)
    # a fixed id prefix: the same backtest gives the same intent and order ids (byte-identical logs)
    outcome, collector = await run_pipeline(loaded, feed, clock, out_dir, id_prefix="bt", stats=True, install_signals=install_signals)
    if outcome.exit_code != 0:
        raise RuntimeError(f"the backtest pipeline failed (exit {outcome.exit_code}); see the log above")
    assert collector is not None
    stats = collector.finish()
    if logs:
        await write_replay_logs(outcome, out_dir)
    engine = outcome.svc.engine
    realised, unrealised, fees = engine.pnl()
    last = max((t.ts_local_ns for t in engine.market.last.values()), default=None)
    return BacktestReport(
        strategy, params, [str(f) for f in files], list(assets), engine.counters.events, engine.counters.ticks, start_ns, last,
        outcome.elapsed_s, realised + unrealised, realised + unrealised - fees, fees, stats,
        next(iter(engine.instruments.values())).quote, out_dir, outcome.cpu_s, outcome.engine_cpu_s,
    )


def _strategy_id(name: str) -> str:
    sid = "".join(c if c.isalnum() or c in "_-" else "_" for c in name.lower())[:32]
    return sid if sid[:1].isalpha() else f"s{sid}"[:32]


# ----------------------------------------------------------------------------- --list
async def list_runs(store: LoadedConfig, limit: int = 20) -> list[str]:
    s = store.settings
    db = create_engine(s.store.url, schema=s.store.pg_schema)
    try:
        await migrate.check_schema(db, "")
        async with db.connect() as conn:
            stmt = select(Run).where(Run.run_kind == "start").order_by(Run.id.desc()).limit(limit)
            rows = (await conn.execute(stmt)).mappings().all()
    finally:
        await db.dispose()
    out = []
    for r in rows:
        data = r["data"] or {}
        replayable = "replayable" if "config" in data and data.get("record_dir") else "not replayable"
        out.append(f"{r['run_id']}  {r['ts'].strftime('%Y-%m-%dT%H:%M:%SZ')}  {r['mode']:<8} {r['version_hash']}  {replayable}")
    return out
