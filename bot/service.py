"""Composition root: builds everything for the chosen mode and runs it. The only place that wires.

Lifecycle (named phases, like uvicorn's): startup (schema check, build, run-start row) -> main loop
(engine + heartbeat + periodic audit flush) -> shutdown (stop intake, cancel resting orders, flush, exit 0).
SIGINT and SIGTERM set the stop event; shutdown waits at most ``engine.shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

import bot
from bot.config import LoadedConfig, Settings, TelegramSettings, public_dict
from bot.control.approval import ConfigApproval
from bot.control.arming import Arming
from bot.control.auth import Gatekeeper
from bot.control.events import ControlEvents
from bot.control.fmt import esc
from bot.control.gate import GatedVenue, LiveGate, SafetyGate
from bot.control.lockout import Lockouts
from bot.control.notifier import LogNotifier, OutboxNotifier
from bot.control.plane import ControlPlane
from bot.control.ratelimit import CommandRateLimiter
from bot.control.risk_commands import limits_command
from bot.control.stager import Stager
from bot.control.staging import IntentBook
from bot.control.telegram_bot import TelegramControl
from bot.control.views import daily_pnl_line, reconciliation_line
from bot.domain.instrument import FeeModel, Instrument, PositionSemantics
from bot.domain.modes import Mode
from bot.domain.ports import Clock, MarketFeed
from bot.domain.position import Portfolio
from bot.engine.clock import ManualClock, WallClock
from bot.engine.loop import AutoGate, Engine, ExecutionGate, StrategyMeta
from bot.engine.market_state import MarketState
from bot.engine.recorder import MarketRecorder, RecordedDataError, RecordedFeed
from bot.engine.registry import UnknownStrategy, code_hash, load_strategy_class, params_hash
from bot.engine.risk_runtime import RiskRuntime, VenueTap, connect_tap
from bot.engine.sim_venue import SimulatedVenue
from bot.engine.strategy import Strategy
from bot.engine.synthetic import SyntheticFeed
from bot.keys.errors import KeyStoreError
from bot.keys.holder import TradeKeyHolder
from bot.keys.runtime import KeyRuntime, open_keys, register_config_secrets
from bot.domain.streams import SequenceGap, StreamStatus
from bot.domain.venue import VenueError
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.oms.reconcile import Reconciler, SchedulerSteps
from bot.ops.incidents import RunInfo
from bot.ops.runtime import OpsDeps, OpsRuntime
from bot.risk.drawdown import AccountValue
from bot.risk.engine import RiskEngine
from bot.risk.limits import limits_from_settings
from bot.risk.safety import POSITIONS_RECONCILED, RECOVERY_CHECKLIST, Check, SafetyController, TradingState
from bot.risk.supervisor import RiskSupervisor
from bot.store.audit import AuditStore
from bot.store.db import create_engine, redacted_url
from bot.store.kv import KVStore
from bot.store.migrate import check_schema
from bot.store.outbox import OutboxRepo
from bot.strategies.manual import ManualStrategy

if TYPE_CHECKING:  # the live venue (ccxt: about 70 MB and 0.7 s to import) is loaded only when LIVE starts
    from bot.venues.binance import BinanceLive

log = logging.getLogger("bot.service")


class StartupError(Exception):
    """The service refuses to start; the message says why and what to do."""


def version_hash() -> str:
    """Code version: package version plus a hash of every source file of the package."""
    root = Path(bot.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{bot.__version__}+{digest.hexdigest()[:12]}"


def sim_instruments(settings: Settings) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for asset in settings.market.assets:
        spec = settings.sim.instruments.get(asset)
        if spec is None:
            raise StartupError(f"sim.instruments has no entry for {asset}: add [sim.instruments.\"{asset}\"] to the configuration")
        base, quote = asset.split("/")
        try:
            out[asset] = Instrument(
                symbol=asset,
                venue="sim",
                venue_symbol=spec.venue_symbol or base + quote,
                base=base,
                quote=quote,
                tick_size=spec.tick_size,
                lot_size=spec.lot_size,
                min_qty=spec.min_qty,
                max_qty=spec.max_qty,
                min_notional=spec.min_notional,
                contract_size=spec.contract_size,
                semantics=PositionSemantics(spec.semantics),
                fees=FeeModel(maker=spec.maker_fee, taker=spec.taker_fee, gas=spec.gas),
                chain=spec.chain,
                network=spec.network,
            )
        except ValueError as exc:
            raise StartupError(f"sim.instruments.\"{asset}\": {exc}") from None
    return out


def build_strategies(settings: Settings) -> tuple[list[Strategy], dict[str, StrategyMeta]]:
    strategies: list[Strategy] = []
    meta: dict[str, StrategyMeta] = {}
    for spec in settings.strategies:
        if not spec.enabled:
            continue
        try:
            cls = load_strategy_class(spec.name)
        except (UnknownStrategy, TypeError) as exc:
            raise StartupError(f"strategies[{spec.id}]: {exc}") from None
        assets = spec.assets or settings.market.assets
        try:
            strat = cls(spec.id, spec.params, assets)
        except (ValueError, TypeError) as exc:
            raise StartupError(f"strategies[{spec.id}] ({spec.name}): {exc}") from None
        strategies.append(strat)
        meta[spec.id] = StrategyMeta(code_hash(cls), params_hash(spec.params))
    if not any(isinstance(st, ManualStrategy) for st in strategies) and "manual" not in meta:
        # operators' orders (/intent manual ...) need a strategy to belong to: always present, trades nothing alone
        strategies.append(ManualStrategy("manual", {}, settings.market.assets))
        meta["manual"] = StrategyMeta(code_hash(ManualStrategy), params_hash({}))
    return strategies, meta


def parse_utc(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise StartupError(f"market.synthetic.start_ts {text!r} must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    return int(dt.astimezone(UTC).timestamp()) * 1_000_000_000


@dataclass
class Service:
    loaded: LoadedConfig
    run_id: str
    version: str
    clock: Clock
    db: AsyncEngine
    audit: AuditStore
    engine: Engine
    venue: Any
    feed: MarketFeed
    risk: RiskRuntime
    arming: Arming
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    ops: OpsRuntime | None = None
    reconciler: Reconciler | None = None  # ops schedules it (OpsDeps.reconciler = SchedulerSteps(reconciler))
    safety: SafetyController | None = None
    control: Control | None = None
    recorder: MarketRecorder | None = None  # market data recording (DRY_RUN, LIVE)
    start_ns: int = 0  # the clock at build: where a replay's injected clock starts
    live: BinanceLive | None = None  # LIVE: the venue adapter bundle (streams, clock sync, cancel-on-disconnect)
    trade_key: TradeKeyHolder | None = None  # LIVE: holds the trade key only while armed
    keys: KeyRuntime | None = None

    @property
    def settings(self) -> Settings:
        return self.loaded.settings


async def build(
    loaded: LoadedConfig,
    *,
    clock: Clock | None = None,
    feed: MarketFeed | None = None,
    config_hint: str = "",
    control_clock: Clock | None = None,
    run_id: str | None = None,
    id_prefix: str | None = None,
) -> Service:
    """Build everything for the configured mode. REPLAY needs ``clock`` (an injected ManualClock: never wall
    time) and ``feed`` (recorded data); ``bot replay`` passes them, plus the recorded run's ``id_prefix`` so
    intent and order ids come out the same."""
    s = loaded.settings
    if s.mode is Mode.LIVE:
        live_preconditions(s)
    elif s.market.venue != "sim":
        raise StartupError(f"market.venue = {s.market.venue!r}: {s.mode.value} trades against the simulated venue 'sim' only")
    if s.mode is Mode.REPLAY and not (isinstance(clock, ManualClock) and feed is not None):
        raise StartupError(
            "mode REPLAY re-runs recorded data with an injected clock: use 'bot replay --run RUN_ID' or "
            "'bot replay --data FILE --strategy NAME' (bot run serves DRY_RUN)"
        )
    if feed is None and s.market.feed == "recorded":
        if s.market.recorded_file is None:
            raise StartupError("market.feed = 'recorded' needs market.recorded_file")
        try:
            feed = RecordedFeed([s.market.recorded_file])
        except RecordedDataError as exc:
            raise StartupError(str(exc)) from None
    elif feed is None and s.market.feed == "venue" and s.mode is not Mode.LIVE:
        raise StartupError("market.feed = 'venue' is the live venue's own feed: it needs mode = \"LIVE\"")
    if clock is None and s.market.venue == "sim":
        # the simulated venue and the OMS's time-based guards (rate limit, flip-flop, dirty age) live in event
        # time, so a fast-forward DRY_RUN behaves like its REPLAY: the engine moves this clock with the ticks
        syn = s.market.synthetic
        first = feed.first_ts_ns() if isinstance(feed, RecordedFeed) else None
        clock = ManualClock(first if first is not None else parse_utc(syn.start_ts) if syn.start_ts else WallClock().now_ns())
    clock = clock or WallClock()
    register_config_secrets(s)  # before anything can log: the Telegram token, TOTP secret, an env master key
    db = create_engine(s.store.url, echo=s.store.echo, schema=s.store.pg_schema)
    try:
        await check_schema(db, config_hint)
        # every key entry is opened once here: a wrong master key or a tampered entry stops the start-up
        try:
            keys = await open_keys(s, db, clock=WallClock())  # created/last-used times are wall time, even in REPLAY
        except KeyStoreError as exc:
            raise StartupError(f"key store: {exc}") from None
        if s.mode is Mode.LIVE:
            if keys.read is None:
                raise StartupError(
                    f"LIVE needs a read-only API key for {s.market.venue}: add one with "
                    f"'bot keys add --venue {s.market.venue} --kind read'"
                )
            if keys.trade_entry is None:
                raise StartupError(
                    f"LIVE needs a trade API key for {s.market.venue} (decrypted only while armed): add one with "
                    f"'bot keys add --venue {s.market.venue} --kind trade'"
                )
        return await _assemble(loaded, db, clock, feed, run_id, id_prefix, control_clock, keys)
    except BaseException:
        await db.dispose()  # a refused start leaves no connection behind
        raise


async def _assemble(
    loaded: LoadedConfig, db: AsyncEngine, clock: Clock, feed: MarketFeed | None, run_id: str | None, id_prefix: str | None,
    control_clock: Clock | None, keys: KeyRuntime,
) -> Service:
    s = loaded.settings
    run_id = run_id or uuid.uuid4().hex
    version = version_hash()
    # REPLAY writes audit rows as fast as the engine makes them: on a SQLite file, from a writer process (a writer
    # thread would take turns with the engine for the interpreter lock instead of running beside it)
    sqlite_file = db.dialect.name == "sqlite" and db.url.database not in (None, "", ":memory:")
    audit = AuditStore(
        db, run_id=run_id, mode=s.mode.value, version_hash=version, config_hash=loaded.hash, now_ns=clock.now_ns,
        batch_size=s.store.batch_size, writer_process=s.mode is Mode.REPLAY and sqlite_file,
    )
    late = _Late()  # callbacks the venue needs before the parts they reach exist
    start_ns = clock.now_ns()
    live: BinanceLive | None = None
    if s.mode is Mode.LIVE:
        live, account_balances = await _start_live_venue(s, keys, clock, late)
        return await _assemble_with_venue(
            loaded, db, clock, live.feed, run_id, id_prefix, control_clock, keys, audit, version, live.venue, dict(live.venue.instruments),
            start_ns, live=live, account_balances=account_balances, late=late,
        )
    instruments = sim_instruments(s)
    # the simulated venue lives in event time in every mode: its clock follows the market data it is fed
    sim_clock = clock if isinstance(clock, ManualClock) else ManualClock(start_ns)
    sim = s.sim
    venue = SimulatedVenue(
        instruments,
        sim_clock,
        balances=sim.balances,
        ack_latency_ns=sim.ack_latency_ms * 1_000_000,
        latency_jitter_ns=sim.latency_jitter_ms * 1_000_000,
        seed=sim.seed,
        l1_extra_levels=sim.l1_extra_levels,
        fill_on_touch=sim.fill_on_touch,
        enforce_balances=sim.enforce_balances,
        history=sim.history,
        follow_clock=sim_clock is not clock,  # the engine already moves a clock it shares with the venue
        balance_positions=True,  # spot positions as a real venue has them: the OMS takes its baseline at start-up
    )
    return await _assemble_with_venue(
        loaded, db, clock, feed, run_id, id_prefix, control_clock, keys, audit, version, venue, instruments, start_ns,
        live=None, account_balances=dict(s.sim.balances), late=late,
    )


async def _assemble_with_venue(
    loaded: LoadedConfig, db: AsyncEngine, clock: Clock, feed: MarketFeed | None, run_id: str, id_prefix: str | None,
    control_clock: Clock | None, keys: KeyRuntime, audit: AuditStore, version: str, venue: Any, instruments: dict[str, Instrument],
    start_ns: int, *, live: BinanceLive | None, account_balances: dict[str, Decimal], late: _Late,
) -> Service:
    """Everything after the venue: the same for every mode (the venue, its feed and its clock are the only differences)."""
    s = loaded.settings
    syn = s.market.synthetic
    portfolio = Portfolio()
    market = MarketState()
    # SAFE is the risk part's state machine; the OMS only asks for it (on_safe) and never imports it
    safety = SafetyController(audit, clock, required_checks=RECOVERY_CHECKLIST)
    id_prefix = id_prefix or run_id[:12]  # from the run id: client order ids stay unique across restarts
    tap = VenueTap(venue, clock)  # risk's view of the venue: order-ack latency samples and errors
    # the control plane: the execution gate and, in front of the venue, its guard (in LIVE no order without arming
    # and a confirmation). The operator's clock (arming, staged intents, message age, lockouts) is the wall clock,
    # except in REPLAY, where nothing may follow wall time
    if control_clock is None:
        control_clock = clock if s.mode is Mode.REPLAY else WallClock()
    control = build_control_core(
        s.telegram, mode=s.mode, clock=control_clock, audit=audit, venue=tap, instruments=instruments,
        market=market, portfolio=portfolio, safety=safety,
    )
    oms = OrderManager(
        venue=control.venue,
        venue_name=venue.name,
        portfolio=portfolio,
        audit=audit,
        clock=clock,
        instruments=instruments,
        limits=OmsLimits.from_mapping(s.oms),
        on_safe=lambda code, reason: runtime.on_safe(code, reason),  # SAFE now; resting orders cancelled in the loop
        id_prefix=id_prefix,
        fee_rate=lambda ccy, quote: _mid(market, f"{ccy}/{quote}"),
        feed=late.feed_health,  # LIVE: the user-data stream's health gates new orders; the sim has no stream
        # REST reconciliation runs in wall time whatever the engine's clock (REPLAY: the injected clock, no wall time)
        freshness_clock=clock.monotonic_ns if s.mode is Mode.REPLAY else time.monotonic_ns,
    )
    reconciler = Reconciler(oms)
    safety.provide_check(POSITIONS_RECONCILED, lambda: Check(POSITIONS_RECONCILED, *reconciler.resume_check()))
    risk = RiskEngine(limits_from_settings(s.risk), safety, assets=s.market.assets, start_ns=clock.monotonic_ns())
    first = next(iter(instruments.values()))
    account = None if s.risk.account_value is not None else AccountValue(
        account_balances, first.quote, {i.base: a for a, i in instruments.items() if i.quote == first.quote}
    )
    strategies, meta = build_strategies(s)
    engine = Engine(
        mode=s.mode,
        clock=clock,
        audit=audit,
        risk=risk,
        oms=oms,
        portfolio=portfolio,
        market=market,
        instruments=instruments,
        strategies=strategies,
        strategy_meta=meta,
        gate=control.gate,
        id_prefix=id_prefix,
        queue_size=s.engine.queue_size,
    )
    control.venue.set_report_sink(engine.on_report)  # through the guard to the venue: fills and rejects are alerted
    if live is None:  # the simulated venue matches against the market data the engine sees
        engine.tick_listeners.append(venue.on_tick)
        engine.book_listeners.append(venue.on_book)
    else:  # staleness per asset and the dead man's switch, at the top of every iteration
        engine.guards.append(live.engine_guard)
    engine.guards.append(oms.guard)  # stream staleness, dirty max age, reconciliation freshness
    recorder = None
    if s.market.record and s.mode is not Mode.REPLAY:
        recorder = MarketRecorder(s.market.record_dir, run_id=run_id, config_hash=loaded.hash, code_version=version)
        engine.market_listeners.append(recorder)
        engine.batch_listeners.append(recorder.start_batch)
    runtime = RiskRuntime(engine, risk, RiskSupervisor(risk, account), kill_file=s.engine.kill_file).install()
    runtime.exits_via_gate = s.risk.flatten.via_gate
    late.runtime = runtime
    late.engine = engine
    connect_tap(tap, runtime)
    arming = control.arming  # in the operator's (wall) clock

    def revoke_arming(old: TradingState, new: TradingState, code: Any, reason: str) -> None:
        if new is not TradingState.ACTIVE:  # any automatic halt revokes arming: LIVE needs a human re-arm
            arming.disarm(f"trading state {new.value}: {reason}")

    safety.add_listener(revoke_arming)
    if feed is None:
        first = next(iter(instruments.values()))
        feed = SyntheticFeed(
            s.market.assets,
            seed=syn.seed,
            start_price=syn.start_price,
            tick_size=first.tick_size,
            size=syn.size,
            step_ticks=syn.step_ticks,
            spread_ticks=syn.spread_ticks,
            start_ns=start_ns,
            interval_s=syn.interval_ms / 1000,
            max_ticks=syn.max_ticks,
        )
    svc = Service(
        loaded, run_id, version, clock, db, audit, engine, venue, feed, runtime, arming, reconciler=reconciler, safety=safety,
        control=control, recorder=recorder, start_ns=start_ns, keys=keys, live=live,
    )
    if live is not None and keys.trade_entry is not None:  # LIVE: the trade key stays sealed until an arming
        late.holder = svc.trade_key = wire_trade_key(
            keys, arming, safety, engine, drain_timeout_s=s.keys.trade_key_drain_timeout_s, drop_client=live.venue.drop_trade_client
        )
    if s.mode is Mode.REPLAY:
        # no scheduler and no operator in REPLAY: their wall-time jobs and commands would call into the engine at
        # moments no recording holds, and a replay is reproducible only from its events
        return svc
    # operations: the one scheduler and its jobs (bot/ops). With Telegram, the control plane gives ops its
    # Notifier, the delivery nudge and the expiry jobs (intents, arming); without it ops writes alerts to the outbox.
    ops = svc.ops = OpsRuntime(
        OpsDeps(
            settings=s, clock=clock, db=db, engine=engine, run=RunInfo(run_id, s.mode.value, version, loaded.hash), flush=audit.flush,
            reconciler=SchedulerSteps(reconciler), venue=venue, on_safe=oms.rec.on_safe, safety=safety,
            state_extra={
                "trading_state": runtime.status,  # the risk status: state, code, reason, lockouts, throttles...
                "arming": lambda: {"armed": arming.is_armed(), "armed_by": arming.armed_by, "expires_ns": arming.expires_ns},
            },
            **control.ops_hooks(),
        )
    )
    oms.rec.alert = ops.alert
    late.alert = ops.alert
    # risk alerts (kill switches, breaches, flattening, per-strategy halts) reach the operator through the outbox;
    # global SAFE / HALTED are announced by the incident desk (its draft), so they are not alerted twice
    runtime.alert = ops.alert
    runtime.alert_global_halts = False
    # ops drafts an incident on SAFE/HALTED and fills the checklist slot INCIDENT_RECORDED itself (OpsDeps.safety)
    control.events.announce_trading_state = False  # risk and the incident desk announce state changes (no double alert)
    await build_control_plane(
        control, s.telegram, engine=engine, db=db, config_hash=loaded.hash, config_public=public_dict(s), version=version,
        run_id=run_id, kill_file=s.engine.kill_file, job_queue=ops.scheduler.ptb_job_queue() if s.telegram.token else None,
        report_provider=_report_provider(ops), incidents=ops.incidents,
        reconciliation=_reconciliation_status(reconciler, clock), pnl_today=_pnl_status(runtime, first.quote),
    )
    if control.plane is not None:  # the recovery checklist's "limits confirmed" needs an operator command
        control.plane.commands["limits"] = limits_command(runtime)
    return svc


def live_preconditions(s: Settings) -> None:
    """LIVE starts only with everything that keeps it safe: fail closed, with the fix in the message."""
    if s.market.venue != s.venue.exchange:
        raise StartupError(f"mode LIVE: market.venue = {s.market.venue!r} must name the live venue (venue.exchange = {s.venue.exchange!r})")
    if s.venue.exchange != "binance":
        raise StartupError(f"venue.exchange = {s.venue.exchange!r}: only 'binance' has an adapter (docs/venues.md: adding a venue)")
    if s.market.feed != "venue":
        raise StartupError("mode LIVE trades on the venue's own market data: set market.feed = \"venue\"")
    if s.telegram.token is None:
        raise StartupError(
            "mode LIVE needs the Telegram control plane (nothing executes without an operator's arming and confirmation): "
            "set BOT_TELEGRAM__TOKEN and telegram.allowed_chat_ids / allowed_user_ids"
        )
    if not s.telegram.allowed_chat_ids or not s.telegram.allowed_user_ids:
        raise StartupError("mode LIVE needs telegram.allowed_chat_ids and telegram.allowed_user_ids: nobody could arm or confirm")


class _Late:
    """Callbacks the live venue needs at build time towards parts built after it (risk runtime, ops alerts,
    the trade-key holder). Until they exist the callbacks fail closed (no trade key; SAFE is only recorded)."""

    def __init__(self) -> None:
        self.runtime: RiskRuntime | None = None
        self.alert: Callable[[str, str, str], None] | None = None
        self.holder: TradeKeyHolder | None = None
        self.feed_health: FeedHealth | None = None
        self.engine: Engine | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def trade_credentials(self) -> Any:
        return self.holder.trade_credentials() if self.holder is not None else None

    def on_alert(self, severity: str, key: str, text: str) -> None:
        if self.alert is not None:
            self.alert(severity, key, text)
        else:
            log.warning("venue alert before the notifier exists: %s %s", severity, text)

    def on_safe(self, code: Any, reason: str) -> None:
        if self.runtime is not None:
            self.runtime.on_safe(code, reason)
        else:
            log.error("venue asked for SAFE before the risk runtime exists: %s %s", code, reason)

    def on_gap(self, gap: SequenceGap) -> None:
        """Fills the stream skipped: the OMS marks the asset dirty and asks for SAFE, inside the engine loop (one
        writer); the adapter calls this from its own task."""
        engine = self.engine
        if engine is None:
            log.error("venue reported a gap before the engine exists: %s", gap)
            return
        task = asyncio.get_running_loop().create_task(engine.call(lambda: engine.oms.on_sequence_gap(gap)), name="venue-gap")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_status(self, status: StreamStatus) -> None:
        # losing a stream's connection is a connectivity loss: SAFE (spec 4.7.4; the adapter's own
        # cancel-on-disconnect sweeps resting orders). The user stream's health also gates orders through FeedHealth.
        if self.runtime is None or status.healthy or status.asset is not None:
            return  # per-asset staleness is measured by risk from the market data itself
        if status.stream == "market":
            self.runtime.on_disconnect(f"{status.venue} market data: {status.reason}")
        else:  # the user-data stream (fills, orders) down: connectivity loss as well
            self.runtime.on_stream_status(status)


async def _start_live_venue(s: Settings, keys: KeyRuntime, clock: Clock, late: _Late) -> tuple[BinanceLive, dict[str, Decimal]]:
    """Build and start the live adapter with the read key (markets, fees, clock offset, streams) and read the
    account's balances: the starting account value of the drawdown policy."""
    late.feed_health = FeedHealth(WallClock(), int(s.oms.stream_stale_s * 1_000_000_000))
    from bot.venues.binance import build_binance

    live = build_binance(
        s,
        read_credentials=keys.read,
        trade_credentials=late.trade_credentials,
        clock=clock,
        on_alert=late.on_alert,
        on_status=late.on_status,
        on_gap=late.on_gap,
        on_safe=late.on_safe,
        feed_health=late.feed_health,
    )
    try:
        await live.start()
        balances = await live.venue.get_balances()
    except VenueError as exc:
        await live.stop("start failed")
        raise StartupError(f"{s.venue.exchange}: {exc.code.value}: {exc.message}") from None
    missing = [a for a in s.market.assets if a not in live.venue.instruments]
    if missing:
        await live.stop("start failed")
        raise StartupError(f"{s.venue.exchange} does not list {', '.join(missing)} (market.assets)")
    return live, {ccy: b.total for ccy, b in balances.items()}


def wire_trade_key(
    keys: KeyRuntime,
    arming: Arming,
    safety: SafetyController,
    engine: Engine,
    *,
    drain_timeout_s: float,
    drop_client: Callable[[], Awaitable[None]] | None = None,
) -> TradeKeyHolder:
    """Least exposure: the trade key is decrypted when LIVE is armed and dropped when the arming ends (disarm,
    expiry, SAFE, kill), after resting orders are cancelled (bounded by ``drain_timeout_s``).

    The live venue takes ``holder.trade_credentials`` as its ``trade_credentials`` provider and passes its
    ``drop_trade_client`` as ``drop_client``, so its trade client (and the key inside ccxt) goes with the key."""

    async def drain() -> object:
        return await engine.call(lambda: engine.oms.cancel_all(reason="arming ended: trade key about to be dropped"))

    def on_error(message: str) -> None:  # an armed bot that cannot load its trade key disarms (fail closed)
        asyncio.get_running_loop().call_soon(arming.disarm, "trade key unavailable")

    holder = keys.build_trade_holder(is_armed=arming.is_armed, drain=drain, drain_timeout_s=drain_timeout_s, on_error=on_error)
    if drop_client is not None:
        dropping: set[asyncio.Task[None]] = set()

        def on_key(creds: object) -> None:
            if creds is None:
                task = asyncio.get_running_loop().create_task(drop_client(), name="drop-trade-client")
                dropping.add(task)
                task.add_done_callback(dropping.discard)

        holder.add_listener(on_key)
    arming.add_listener(holder.on_arming)
    safety.add_listener(holder.on_trading_state)

    async def arming_expiry() -> None:
        arming.check_expiry()  # an expiry is noticed at the next event at the latest; listeners drop the key

    engine.guards.append(arming_expiry)
    return holder


def _reconciliation_status(reconciler: Reconciler, clock: Clock) -> Any:
    def line() -> str | None:
        res = reconciler.last_result
        if res is None:
            return "not run yet"
        age = (clock.now_ns() - res.apply_ns) / 1e9 if res.apply_ns else None
        return reconciliation_line(res.ok, res.problems + res.errors, age)

    return line


def _pnl_status(runtime: RiskRuntime, quote: str) -> Any:
    def line() -> str | None:
        st = runtime.status()
        pnl = st.get("daily_pnl")
        return None if pnl is None else daily_pnl_line(pnl, st.get("max_daily_loss"), quote)

    return line


def _report_provider(ops: OpsRuntime) -> Any:
    async def report() -> tuple[str, bytes | None]:
        summary = await ops.reports.daily()
        return summary.text_html, summary.png_bytes

    return report


def _mid(market: MarketState, asset: str) -> Decimal | None:
    tick = market.last.get(asset)
    return tick.mid if tick is not None else None


async def _call_now(fn: Any) -> Any:
    """``engine.call`` before the engine loop runs (start-up: nothing else can be changing state)."""
    result = fn()
    if asyncio.iscoroutine(result):
        result = await result
    return result


def run_start_data(service: Service) -> dict[str, Any]:
    """What a later 'bot replay --run' needs: the effective configuration (secrets masked), the id prefix,
    the clock at start, the seeds, the strategies' names, parameters and code hashes, where data is recorded."""
    engine, s = service.engine, service.settings
    return {
        "overrides": service.loaded.overrides,
        "config": public_dict(s),
        "id_prefix": engine.id_prefix,
        "start_ns": service.start_ns,
        "seeds": {"sim": s.sim.seed, "synthetic": s.market.synthetic.seed},
        "strategies": {
            sid: {
                "name": strat.name,
                "class": f"{type(strat).__module__}:{type(strat).__qualname__}",
                "params": strat.params,
                "code_hash": engine.strategy_meta[sid].code_hash if sid in engine.strategy_meta else "",
                "params_hash": engine.strategy_meta[sid].params_hash if sid in engine.strategy_meta else "",
            }
            for sid, (strat, _ctx) in engine.strategies.items()
        },
        "record_dir": str(s.market.record_dir) if service.recorder is not None else None,
        # the instruments as traded (a LIVE run's come from the venue): a replay's simulated venue uses them
        "instruments": {a: _instrument_settings(i) for a, i in sorted(engine.instruments.items())},
    }


def _instrument_settings(inst: Instrument) -> dict[str, Any]:
    """An instrument as a ``[sim.instruments."BASE/QUOTE"]`` table (exact decimal text)."""
    def text(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    return {
        "tick_size": text(inst.tick_size), "lot_size": text(inst.lot_size), "min_qty": text(inst.min_qty),
        "max_qty": text(inst.max_qty), "min_notional": text(inst.min_notional), "maker_fee": text(inst.fees.maker),
        "taker_fee": text(inst.fees.taker), "gas": text(inst.fees.gas), "contract_size": text(inst.contract_size),
        "semantics": inst.semantics.value, "venue_symbol": inst.venue_symbol, "chain": inst.chain, "network": inst.network,
    }


async def _every(stop: asyncio.Event, interval_s: float, fn: Any) -> None:
    """Run ``fn`` every interval until ``stop`` is set (waits on the event, never polls a flag)."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
            return
        except TimeoutError:
            pass
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("periodic task %s failed", getattr(fn, "__name__", fn))


async def run(service: Service, *, install_signals: bool = True) -> int:
    s = service.settings
    engine, audit = service.engine, service.audit
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop_event.set)
    audit.record(
        "run",
        {
            "run_kind": "start",
            "detail": f"mode={s.mode.value} store={redacted_url(s.store.url)} source={service.loaded.source}",
            "data": run_start_data(service),
        },
    )
    log.info(
        "starting run=%s mode=%s version=%s config_hash=%s store=%s",
        service.run_id, s.mode.value, service.version, service.loaded.hash[:12], redacted_url(s.store.url),
    )
    for key in service.loaded.overrides:
        log.warning("mode override in effect for %s: %s", s.mode.value, key)
    control = service.control
    if control is not None and service.ops is not None:  # REPLAY has no operator to tell
        control.announce_start(s.mode.value, service.version, service.loaded.hash)
    await audit.flush()
    stop = service.stop_event
    if service.reconciler is not None:
        # before trading and before the scheduler: the venue's holdings become the baseline of the running sum
        await service.reconciler.take_baseline(_call_now)
        await audit.flush()
    ops = service.ops
    background: list[asyncio.Task[None]] = []
    if ops is not None:
        await ops.start()  # the scheduler: heartbeat, audit flush, reconciliation, snapshots, daily summary...
        # wakes the engine when no market data arrives: staleness, time limits and the kill file still get checked
        # (not in REPLAY: there the recorded events alone drive the engine, or it would not be reproducible)
        background.append(asyncio.create_task(_every(stop, s.risk.timer_interval_s, lambda: engine.call(_noop)), name="risk-timer"))
    else:  # REPLAY: the heartbeat and the periodic audit flush only (neither decides anything)
        background += [
            asyncio.create_task(_every(stop, s.engine.heartbeat_interval_s, lambda: log.info(engine.heartbeat_line())), name="heartbeat"),
            asyncio.create_task(_every(stop, s.store.flush_interval_ms / 1000, audit.flush), name="audit-flush"),
        ]
    if service.recorder is not None:
        background.append(asyncio.create_task(_every(stop, 1.0, service.recorder.flush), name="market-data-flush"))
    if control is not None and ops is not None:
        control.start()  # Telegram: polling and alert delivery
    # the start-up heap (modules, configuration, instruments, the venue library) lives as long as the run: frozen,
    # the cyclic garbage collector stops re-scanning it on every full collection (measured: a quarter of the time
    # per tick in a replay); unfrozen when the run ends
    gc.collect()
    gc.freeze()
    engine_task = asyncio.create_task(_engine_main(engine, service.feed), name="engine")
    stopper = asyncio.create_task(stop.wait(), name="stop-wait")
    exit_code = 0
    try:
        done, _ = await asyncio.wait({engine_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if engine_task in done and engine_task.exception() is not None:
            log.error("engine failed: %s", engine_task.exception())
            exit_code = 1
    finally:
        log.info("stopping: intake closed, cancelling resting orders")
        if ops is not None:
            await ops.stop(s.engine.shutdown_timeout_s)  # no scheduled job starts or calls into the engine any more
        for task in background:  # the risk timer first: nothing calls into the engine any more
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        engine.stop()
        try:
            await asyncio.wait_for(asyncio.shield(engine_task), s.engine.shutdown_timeout_s)
        except (TimeoutError, Exception):
            engine_task.cancel()
        stop.set()
        stopper.cancel()
        try:
            cancelled = await asyncio.wait_for(engine.shutdown("service stop"), s.engine.shutdown_timeout_s)
            log.info("cancelled %d resting order(s)", cancelled)
        except Exception:
            log.exception("shutdown: cancelling resting orders failed")
            exit_code = 1
        if service.recorder is not None:
            service.recorder.close()
        if ops is not None:
            await ops.final_snapshot()
        log.info(engine.heartbeat_line())
        c = engine.counters
        audit.record(
            "run",
            {
                "run_kind": "stop",
                "detail": engine.heartbeat_line(),
                "data": {"events": c.events, "ticks": c.ticks, "decisions": c.decisions, "intents": c.intents, "orders": c.orders, "fills": c.fills},
            },
        )
        if control is not None and ops is not None:
            control.announce_stop(engine.heartbeat_line())
        await engine.flush_audit()
        await audit.close()
        if control is not None and ops is not None:
            await control.stop()  # delivers what is due (bounded), then stops polling
        if service.live is not None:
            await service.live.stop("service stop")  # cancel-on-disconnect sweep, then streams and clients closed
        else:
            await service.venue.close()
        if service.keys is not None:
            await service.keys.close()
        await service.db.dispose()
        gc.unfreeze()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return exit_code


def _noop() -> None:
    return None


async def _engine_main(engine: Engine, feed: MarketFeed) -> None:
    await engine.start()
    await engine.run(feed)


# ----------------------------------------------------------------------------- control plane (issue 7)
@dataclass
class Control:
    """The control plane's parts. ``plane`` and ``telegram`` exist only when telegram.token is set."""

    safety: SafetyController
    arming: Arming
    book: IntentBook
    stager: Stager
    gate: ExecutionGate
    live_gate: LiveGate | None
    venue: GatedVenue  # what the OMS talks to
    notifier: Any
    events: ControlEvents
    require_arming: bool
    clock: Clock
    token: bool
    plane: ControlPlane | None = None
    telegram: TelegramControl | None = None
    approval: ConfigApproval | None = None

    def announce_start(self, mode: str, version: str, config_hash: str) -> None:
        self.notifier.alert("INFO", f"service:start:{config_hash}", f"▶️ <b>Service started</b>: {esc(mode)}, v{esc(version)}, config {config_hash[:10]}.")
        notice = self.approval.notice_html() if self.approval is not None else None
        if notice:
            self.notifier.alert("WARNING", f"config:{config_hash}", notice)

    def announce_stop(self, detail: str) -> None:
        self.notifier.alert("WARNING", "service:stop", f"⏹ <b>Service stopping</b>: {esc(detail)}")

    def ops_hooks(self) -> dict[str, Any]:
        """What ops (OpsDeps) takes from the control plane: alerts, the delivery nudge, expiry jobs, arming."""
        if not self.token:
            return {}  # no Telegram: nothing can be armed or staged; ops' own outbox fallback takes the alerts
        return {
            "expiry": {"intents": lambda: self.book.expire_due(self.clock.now_ns())},
            "arming": self.arming,
            "alert": lambda severity, key, text: self.notifier.alert(severity, key, esc(text)),  # ops passes plain text
            "deliver_outbox": self._nudge_delivery,
        }

    async def _nudge_delivery(self) -> None:
        """Ops' outbox job: wake the delivery worker (rows written by ops itself do not pass the audit flush)."""
        if self.telegram is not None:
            self.telegram.delivery.wake()

    def start(self) -> None:
        if self.telegram is not None:
            self.telegram.start()

    async def stop(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop()


def build_control_core(
    t: TelegramSettings,
    *,
    mode: Mode,
    clock: Clock,
    audit: AuditStore | Any,
    venue: Any,
    instruments: dict[str, Instrument],
    market: MarketState,
    portfolio: Portfolio,
    safety: SafetyController | None = None,
) -> Control:
    """What the engine needs from the control plane: the execution gate and the venue guard (before the engine)."""
    if mode is Mode.LIVE and t.token is None:
        raise StartupError(
            "mode LIVE needs the Telegram control plane (set BOT_TELEGRAM__TOKEN and the allowlists): without it nothing "
            "could be armed or confirmed (fail closed)"
        )
    safety = safety or SafetyController(audit, clock)
    require_arming = mode is Mode.LIVE
    arming = Arming(clock, audit, t.arm_max_ttl_s)
    book = IntentBook()
    stager = Stager(
        book=book, clock=clock, arming=arming, require_arming=require_arming, instruments=instruments, market=market,
        intent_ttl_s=t.intent_ttl_s, four_eyes_notional=t.four_eyes_notional,
    )
    live_gate: LiveGate | None = None
    gate: ExecutionGate
    if mode is Mode.LIVE or t.gate_in_dry_run:
        live_gate = LiveGate(
            clock=clock, audit=audit, book=book, stager=stager, arming=arming, safety=safety, require_arming=require_arming,
            market=market, portfolio=portfolio, instruments=instruments, push_interval_s=t.strategy_push_interval_s,
        )
        gate = live_gate
    else:
        gate = SafetyGate(AutoGate(), safety, audit)
    chats = t.alert_chat_ids or t.allowed_chat_ids
    notifier: Any = (
        OutboxNotifier(audit, chats, clock, dedup_s=t.alert_dedup_s, info_per_minute=t.info_alerts_per_minute)
        if t.token is not None else LogNotifier()
    )
    events = ControlEvents(notifier=notifier, clock=clock, arming=arming, book=book, instruments=instruments, require_arming=require_arming)
    safety.add_listener(events.on_trading_state)
    arming.add_listener(events.on_arming)
    gated = GatedVenue(venue, live_gate, [events.on_report])
    if live_gate is not None:
        live_gate.mandate_end_listeners.append(events.on_mandate_end)
    return Control(safety, arming, book, stager, gate, live_gate, gated, notifier, events, require_arming, clock, t.token is not None)


async def build_control_plane(
    control: Control,
    t: TelegramSettings,
    *,
    engine: Engine,
    db: AsyncEngine | None,
    config_hash: str,
    config_public: dict[str, Any],
    version: str,
    run_id: str,
    kill_file: Path | None = None,
    request: Any = None,
    delivery_now_ns: Any = None,
    kv: Any = None,
    report_provider: Any = None,
    job_queue: Any = None,
    incidents: Any = None,
    reconciliation: Any = None,
    pnl_today: Any = None,
) -> None:
    """The commands and the Telegram Application (only with a token). Loads lockouts and the approved config.

    ``request`` (a PTB BaseRequest) and ``kv`` replace the HTTP client and the state table in fast tests.
    """
    if t.token is None:
        return
    if not t.allowed_chat_ids or not t.allowed_user_ids:
        raise StartupError(
            "telegram.token is set but telegram.allowed_chat_ids or telegram.allowed_user_ids is empty: nobody could control "
            "the bot. Name at least one chat id and one user id (both must match for a command to take effect)."
        )
    clock, audit = control.clock, engine.audit
    kv = kv or KVStore(db, clock.now_ns)  # type: ignore[arg-type]
    lockouts = Lockouts(
        kv, clock, audit, threshold=t.lockout_after_failures, window_s=t.failure_window_s, base_s=t.lockout_base_s, max_s=t.lockout_max_s
    )
    await lockouts.load()
    approval = ConfigApproval(kv, audit, clock, current_hash=config_hash, current_public=config_public)
    await approval.load()
    plane = ControlPlane(
        engine=engine, clock=clock, audit=audit, settings=t, arming=control.arming, safety=control.safety, book=control.book,
        stager=control.stager, gate=control.live_gate, lockouts=lockouts, approval=approval, require_arming=control.require_arming,
        version=version, run_id=run_id, kill_file=kill_file, report_provider=report_provider, incidents=incidents,
        reconciliation=reconciliation, pnl_today=pnl_today,
    )
    gatekeeper = Gatekeeper(t, clock, lockouts, CommandRateLimiter(t.commands_per_minute), control.notifier, audit, plane.mask_args)
    telegram = TelegramControl(
        t, plane, gatekeeper, OutboxRepo(db), now_ns=delivery_now_ns or time.time_ns, alert_chat_ids=t.alert_chat_ids or t.allowed_chat_ids,
        request=request, job_queue=job_queue,
    )
    if isinstance(audit, AuditStore):
        audit.outbox_listeners.append(telegram.delivery.wake)
    if control.live_gate is not None:
        control.live_gate.staged_listeners.append(telegram.announce)
    control.plane, control.telegram, control.approval = plane, telegram, approval
