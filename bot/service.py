"""Composition root: builds everything for the chosen mode and runs it. The only place that wires.

Lifecycle (named phases, like uvicorn's): startup (schema check, build, run-start row) -> main loop
(engine + heartbeat + periodic audit flush) -> shutdown (stop intake, cancel resting orders, flush, exit 0).
SIGINT and SIGTERM set the stop event; shutdown waits at most ``engine.shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import bot
from bot.config import LoadedConfig, Settings
from bot.control.arming import Arming
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.modes import Mode
from bot.domain.ports import Clock, MarketFeed
from bot.domain.position import Portfolio
from bot.engine.clock import ManualClock, WallClock
from bot.engine.loop import AutoGate, Engine, StrategyMeta
from bot.engine.market_state import MarketState
from bot.engine.registry import code_hash, load_strategy_class, params_hash
from bot.engine.risk_runtime import RiskRuntime, VenueTap, connect_tap
from bot.engine.sim_venue import SimulatedVenue
from bot.engine.strategy import Strategy
from bot.engine.synthetic import SyntheticFeed
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.oms.reconcile import Reconciler, SchedulerSteps
from bot.ops.incidents import RunInfo
from bot.ops.runtime import OpsDeps, OpsRuntime
from bot.risk.drawdown import AccountValue
from bot.risk.engine import RiskEngine
from bot.risk.limits import limits_from_settings
from bot.risk.safety import INCIDENT_RECORDED, POSITIONS_RECONCILED, RECOVERY_CHECKLIST, Check, SafetyController, TradingState
from bot.risk.supervisor import RiskSupervisor
from bot.store.audit import AuditStore
from bot.store.db import create_engine, redacted_url
from bot.store.migrate import check_schema

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
        out[asset] = Instrument(
            symbol=asset,
            venue="sim",
            venue_symbol=base + quote,
            base=base,
            quote=quote,
            tick_size=spec.tick_size,
            lot_size=spec.lot_size,
            min_qty=spec.min_qty,
            min_notional=spec.min_notional,
            contract_size=spec.contract_size,
            fees=FeeModel(maker=spec.maker_fee, taker=spec.taker_fee, gas=spec.gas),
        )
    return out


def build_strategies(settings: Settings) -> tuple[list[Strategy], dict[str, StrategyMeta]]:
    strategies: list[Strategy] = []
    meta: dict[str, StrategyMeta] = {}
    for spec in settings.strategies:
        if not spec.enabled:
            continue
        cls = load_strategy_class(spec.name)
        assets = spec.assets or settings.market.assets
        try:
            strat = cls(spec.id, spec.params, assets)
        except (ValueError, TypeError) as exc:
            raise StartupError(f"strategies[{spec.id}] ({spec.name}): {exc}") from None
        strategies.append(strat)
        meta[spec.id] = StrategyMeta(code_hash(cls), params_hash(spec.params))
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

    @property
    def settings(self) -> Settings:
        return self.loaded.settings


async def build(loaded: LoadedConfig, *, clock: Clock | None = None, feed: MarketFeed | None = None, config_hint: str = "") -> Service:
    s = loaded.settings
    if s.mode is Mode.LIVE:
        raise StartupError(
            "LIVE mode is not available in this build: the live venue adapter and the Telegram arming/confirmation "
            "gate must both be present (fail closed). Use mode = \"DRY_RUN\"."
        )
    if s.market.venue != "sim":
        raise StartupError(f"market.venue = {s.market.venue!r}: only the simulated venue 'sim' is available in {s.mode.value}")
    if clock is None and s.market.venue == "sim":
        # the simulated venue and the OMS's time-based guards (rate limit, flip-flop, dirty age) live in event
        # time, so a fast-forward DRY_RUN behaves like its REPLAY: the engine moves this clock with the ticks
        syn = s.market.synthetic
        clock = ManualClock(parse_utc(syn.start_ts) if syn.start_ts else WallClock().now_ns())
    clock = clock or WallClock()
    db = create_engine(s.store.url, echo=s.store.echo, schema=s.store.pg_schema)
    try:
        await check_schema(db, config_hint)
    except Exception:
        await db.dispose()
        raise
    run_id = uuid.uuid4().hex
    version = version_hash()
    audit = AuditStore(
        db, run_id=run_id, mode=s.mode.value, version_hash=version, config_hash=loaded.hash, now_ns=clock.now_ns, batch_size=s.store.batch_size
    )
    instruments = sim_instruments(s)
    venue = SimulatedVenue(instruments, clock, balances=s.sim.balances)
    portfolio = Portfolio()
    market = MarketState()
    # SAFE is the risk part's state machine; the OMS only asks for it (on_safe) and never imports it
    safety = SafetyController(audit, clock, required_checks=RECOVERY_CHECKLIST)
    id_prefix = run_id[:12]  # from the run id: client order ids stay unique across restarts
    tap = VenueTap(venue, clock)  # risk's view of the venue: order-ack latency samples and errors
    oms = OrderManager(
        venue=tap,
        venue_name=venue.name,
        portfolio=portfolio,
        audit=audit,
        clock=clock,
        instruments=instruments,
        limits=OmsLimits.from_mapping(s.oms),
        on_safe=lambda code, reason: runtime.on_safe(code, reason),  # SAFE now; resting orders cancelled in the loop
        id_prefix=id_prefix,
        fee_rate=lambda ccy, quote: _mid(market, f"{ccy}/{quote}"),
        feed=None,  # the simulated venue delivers reports in-process: no stream to watch
        freshness_clock=time.monotonic_ns,  # REST reconciliation runs in wall time whatever the engine's clock
    )
    reconciler = Reconciler(oms)
    safety.provide_check(POSITIONS_RECONCILED, lambda: Check(POSITIONS_RECONCILED, *reconciler.resume_check()))
    risk = RiskEngine(limits_from_settings(s.risk), safety, assets=s.market.assets, start_ns=clock.monotonic_ns())
    first = next(iter(instruments.values()))
    account = None if s.risk.account_value is not None else AccountValue(
        s.sim.balances, first.quote, {i.base: a for a, i in instruments.items() if i.quote == first.quote}
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
        gate=AutoGate(),
        id_prefix=id_prefix,
        queue_size=s.engine.queue_size,
    )
    venue.set_report_sink(engine.on_report)
    engine.tick_listeners.append(venue.on_tick)
    engine.guards.append(oms.guard)  # stream staleness, dirty max age, reconciliation freshness
    runtime = RiskRuntime(engine, risk, RiskSupervisor(risk, account), kill_file=s.engine.kill_file).install()
    connect_tap(tap, runtime)
    arming = Arming(clock, audit, s.telegram.arm_max_ttl_s)

    def revoke_arming(old: TradingState, new: TradingState, code: Any, reason: str) -> None:
        if new is not TradingState.ACTIVE:  # any automatic halt revokes arming: LIVE needs a human re-arm
            arming.disarm(f"trading state {new.value}: {reason}")

    safety.add_listener(revoke_arming)
    if feed is None:
        syn = s.market.synthetic
        first = next(iter(instruments.values()))
        feed = SyntheticFeed(
            s.market.assets,
            seed=syn.seed,
            start_price=syn.start_price,
            tick_size=first.tick_size,
            size=syn.size,
            step_ticks=syn.step_ticks,
            spread_ticks=syn.spread_ticks,
            start_ns=parse_utc(syn.start_ts) if syn.start_ts else clock.now_ns(),
            interval_s=syn.interval_ms / 1000,
            max_ticks=syn.max_ticks,
        )
    # operations: the one scheduler and its jobs (bot/ops). Alerts go straight to the outbox until the control
    # plane's Notifier is wired (then: alert=notifier.alert, deliver_outbox=..., arming=..., expiry=...).
    ops = OpsRuntime(
        OpsDeps(
            settings=s, clock=clock, db=db, engine=engine, run=RunInfo(run_id, s.mode.value, version, loaded.hash), flush=audit.flush,
            reconciler=SchedulerSteps(reconciler), venue=venue, on_safe=oms.rec.on_safe, safety=safety,
            state_extra={
                "trading_state": runtime.status,  # the risk status: state, code, reason, lockouts, throttles...
                "arming": lambda: {"armed": arming.is_armed(), "armed_by": arming.armed_by, "expires_ns": arming.expires_ns},
            },
        )
    )
    oms.rec.alert = ops.alert
    # risk alerts (kill switches, breaches, flattening, per-strategy halts) reach the operator through the outbox;
    # global SAFE / HALTED are announced by the incident desk (its draft), so they are not alerted twice
    runtime.alert = ops.alert
    runtime.alert_global_halts = False
    # ops drafts an incident on SAFE/HALTED; its check fills the checklist slot (spec 16.1 "incident report drafted")
    safety.provide_check(INCIDENT_RECORDED, ops.incidents.resume_check_item)
    return Service(
        loaded, run_id, version, clock, db, audit, engine, venue, feed, runtime, arming, ops=ops, reconciler=reconciler, safety=safety
    )


def _mid(market: MarketState, asset: str) -> Decimal | None:
    tick = market.last.get(asset)
    return tick.mid if tick is not None else None


async def _call_now(fn: Any) -> Any:
    """``engine.call`` before the engine loop runs (start-up: nothing else can be changing state)."""
    result = fn()
    if asyncio.iscoroutine(result):
        result = await result
    return result


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
            "data": {
                "overrides": service.loaded.overrides,
                "strategies": {k: {"code_hash": v.code_hash, "params_hash": v.params_hash} for k, v in engine.strategy_meta.items()},
            },
        },
    )
    log.info(
        "starting run=%s mode=%s version=%s config_hash=%s store=%s",
        service.run_id, s.mode.value, service.version, service.loaded.hash[:12], redacted_url(s.store.url),
    )
    for key in service.loaded.overrides:
        log.warning("mode override in effect for %s: %s", s.mode.value, key)
    await audit.flush()
    stop = service.stop_event
    if service.reconciler is not None:
        # before trading and before the scheduler: the venue's holdings become the baseline of the running sum
        await service.reconciler.take_baseline(_call_now)
        await audit.flush()
    ops = service.ops
    if ops is not None:
        await ops.start()  # the scheduler: heartbeat, audit flush, reconciliation, snapshots, daily summary...
    # wakes the engine when no market data arrives: staleness, time limits and the kill file still get checked
    risk_timer = asyncio.create_task(_every(stop, s.risk.timer_interval_s, lambda: engine.call(_noop)), name="risk-timer")
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
        risk_timer.cancel()
        await asyncio.gather(risk_timer, return_exceptions=True)
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
        if ops is not None:
            await ops.final_snapshot()
        log.info(engine.heartbeat_line())
        audit.record("run", {"run_kind": "stop", "detail": engine.heartbeat_line()})
        await audit.flush()
        await service.venue.close()
        await service.db.dispose()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return exit_code


def _noop() -> None:
    return None


async def _engine_main(engine: Engine, feed: MarketFeed) -> None:
    await engine.start()
    await engine.run(feed)
