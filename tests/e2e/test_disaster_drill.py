"""Disaster drill (spec 16 "trigger loss limits + verify auto-halt + recovery flow", 16.1 the recovery procedure).

The service as the composition root builds it (risk, OMS + reconciler, ops incident desk, arming), on SQLite and
PostgreSQL, driven by an injected clock and a scripted feed:

  a loss through the daily cap -> auto-halt (SAFE, arming revoked) -> gradual flatten -> resume refused until
  every check passes (incident root cause, limits confirmed, kill cooldown, positions reconciled) -> resume ->
  still no new risk until the next trading day -> the next day LIVE still needs a fresh arming.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import service
from bot.config import load_settings
from bot.control.arming import Arming
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.market import Tick
from bot.engine.clock import ManualClock
from bot.engine.loop import Admission
from bot.risk.safety import TradingState
from bot.store import migrate
from bot.store.models import StateTransitionRow
from tests.conftest import DB

T0 = 1_767_261_600 * 1_000_000_000  # 2026-01-01T10:00:00Z
S = 1_000_000_000
BTC = "BTC/USDT"

CONFIG = """
[market]
assets = ["BTC/USDT"]
record = false
[engine]
kill_file = "{kill}"
[risk]
max_trade_qty = "0.01"
max_position_qty = "0.05"
max_daily_loss = "20"
max_daily_loss_per_strategy = "100"
max_portfolio_loss = "1000"
strategy_loss_kill = "1000"
account_value = "100000"
[risk.stale]
asset_stale_s = 3600
[risk.flatten]
slice_qty = "0.004"
interval_s = 1
[risk.cooldown]
kill_cooldown_s = 600
[ops]
snapshot_dir = "{snaps}"
"""


class QueueFeed:
    def __init__(self) -> None:
        self.q: asyncio.Queue[list[Tick] | None] = asyncio.Queue()

    async def batches(self):  # type: ignore[no-untyped-def]
        while (batch := await self.q.get()) is not None:
            yield batch

    async def close(self) -> None:
        return None


class ArmedGate:
    """What the LIVE gate requires first (the control plane's gate adds the confirmation): an unexpired arming."""

    def __init__(self, arming: Arming) -> None:
        self.arming = arming

    def admit(self, intent: Intent) -> Admission:
        return Admission.EXECUTE if self.arming.is_armed() else Admission.REFUSED


async def test_disaster_drill_daily_loss_halt_flatten_resume_and_rearm(db: DB, tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text("strategies = []\n" + db.store_toml() + CONFIG.format(kill=tmp_path / "KILL", snaps=tmp_path / "snaps"))
    dbe = db.engine()
    await migrate.upgrade(dbe)
    clock = ManualClock(T0)
    feed = QueueFeed()
    svc = await service.build(load_settings(cfg, env={}), clock=clock, feed=feed)
    engine, risk, safety, ops, arming, rec = svc.engine, svc.risk, svc.safety, svc.ops, svc.arming, svc.reconciler
    assert safety is not None and ops is not None and rec is not None
    engine.gate = ArmedGate(arming)
    seq = 0

    async def px(bid: str, ask: str, advance_s: float = 0.1) -> None:
        nonlocal seq
        clock.advance(int(advance_s * S))
        seq += 1
        now = clock.now_ns()
        feed.q.put_nowait([Tick(BTC, D(bid), D("1"), D(ask), D("1"), now, now, seq, "sim")])
        await asyncio.wait_for(engine.call(lambda: None), 5)  # that batch has been handled

    async def idle(advance_s: float) -> None:
        clock.advance(int(advance_s * S))
        await asyncio.wait_for(engine.call(lambda: None), 5)

    async def reconcile() -> None:  # what the ops job does every oms.reconcile_interval_s
        await rec.reconcile_once(engine.call)

    def intent(side: Side, qty: str, price: str | None = None) -> Intent:
        return Intent(engine.next_id(), clock.now_ns(), "operator", BTC, side, D(qty),
                      OrderType.LIMIT if price else OrderType.MARKET, D(price) if price else None, TimeInForce.GTC if price else TimeInForce.IOC)

    async def new_risk_verdict() -> Any:
        i = intent(Side.BUY, "0.001", "50000")
        return await engine.call(lambda: engine.check_risk(i, "staged")), i

    await rec.take_baseline(service._call_now)
    await ops.incidents.load()
    runner = asyncio.create_task(engine.run(feed))
    await engine.start()
    try:
        await px("59999.99", "60000.01")
        arming.arm(600, "alice")
        # --- the position, then the loss through the daily cap ----------------------------------------------
        v, order = await engine.call(lambda: engine.execute_confirmed(intent(Side.BUY, "0.01")))
        assert v.approved and order is not None and engine.portfolio.qty(BTC) == D("0.01")  # bought at 60000.01
        await reconcile()
        # bought 0.01 at 60000.01 with a 0.1 % taker fee of 0.6000001; mid 58060.02: 19.3999 + 0.6000001 = 19.9999001
        await px("58060.01", "58060.03")
        await idle(0.1)
        assert safety.state is TradingState.ACTIVE and arming.is_armed()
        await px("58060.00", "58060.02")  # mid 58060.01: 19.40 + 0.6000001 = 20.0000001 >= 20: auto-halt
        await idle(0.1)
        assert safety.state is TradingState.SAFE and safety.code is not None and safety.code.value == "RISK_BLOCKED"
        assert not arming.is_armed()  # SAFE revoked the arming
        assert engine.portfolio.qty(BTC) == D("0.006")  # the first flatten slice (0.004) went at once ...
        for expected in ("0.002", "0"):  # ... then one slice a second, once reconciliation has cleaned the fill
            await reconcile()
            await idle(1.0)
            assert engine.portfolio.qty(BTC) == D(expected)
        await idle(1.0)
        # --- resume refused until every check passes --------------------------------------------------------
        await reconcile()
        await ops.incidents.drain()
        ok, checks = await engine.call(lambda: risk.resume("alice"))
        failing = {c.name for c in checks if not c.ok}
        assert not ok and failing == {"incident_recorded", "limits_confirmed", "kill_cooldown_elapsed"}, checks
        assert safety.state is TradingState.SAFE
        inc = await ops.incidents.open_incident()
        assert inc is not None
        await ops.incidents.annotate(inc.incident_id, "root_cause", "drill: simulated loss through the daily cap", by="alice")
        await engine.call(lambda: risk.confirm_limits("alice"))
        ok, checks = await engine.call(lambda: risk.resume("alice"))
        assert not ok and {c.name for c in checks if not c.ok} == {"kill_cooldown_elapsed"}
        await idle(600)  # the automated-kill cooldown
        await reconcile()
        await engine.call(lambda: risk.confirm_limits("alice"))
        ok, checks = await engine.call(lambda: risk.resume("alice"))
        assert ok and safety.state is TradingState.ACTIVE, checks
        # --- resumed, but no new risk today; LIVE still needs arming -----------------------------------------
        verdict, _ = await new_risk_verdict()
        assert not verdict.approved and verdict.inputs["policy"] == "max_daily_loss" and "next trading day" in verdict.reason
        for _ in range(28):  # 14 hours of market data, a tick every 30 min: 2026-01-02T00:10Z, the next trading day
            await px("57999.99", "58000.01", advance_s=1800)
        await reconcile()
        verdict, i = await new_risk_verdict()
        assert verdict.approved
        assert engine.gate.admit(i) is Admission.REFUSED  # not armed: nothing executes in LIVE
        arming.arm(600, "alice")
        assert engine.gate.admit(i) is Admission.EXECUTE
    finally:
        engine.stop()
        await asyncio.wait_for(runner, 10)
        await engine.shutdown("drill over")
        await ops.incidents.drain()
        if ops.outbox_alert is not None:
            await ops.outbox_alert.drain()
        await svc.audit.flush()
        await svc.db.dispose()
    try:
        async with dbe.connect() as conn:
            rows = (await conn.execute(select(StateTransitionRow).order_by(StateTransitionRow.id))).all()
    finally:
        await dbe.dispose()
    story = [(r.kind, r.scope, r.to_state) for r in rows if r.kind in ("trading_state", "resume_refused", "flatten", "daily_loss", "arming")]
    assert story[:4] == [("arming", "global", "ARMED"), ("trading_state", "global", "SAFE"), ("arming", "global", "DISARMED"), ("daily_loss", "global", "LOCKED")]
    assert ("flatten", "global", "STARTED") in story and ("flatten", "global", "DONE") in story
    assert [s for s in story if s[0] == "resume_refused"] == [("resume_refused", "global", "SAFE")] * 2
    assert ("trading_state", "global", "ACTIVE") in story and ("daily_loss", "global", "UNLOCKED") in story
    assert story[-1] == ("arming", "global", "ARMED")
    safe = next(r for r in rows if r.kind == "trading_state" and r.to_state == "SAFE")
    assert safe.code == "RISK_BLOCKED" and "daily loss 20.0000001 >= max_daily_loss 20" in safe.reason
    assert all(r.run_id == svc.run_id and r.config_hash == svc.loaded.hash for r in rows)
