"""The risk monitors as pure objects: jump detector, calendar, slippage, latency p95, trading day, breakers,
the scoped state machine and its checklist, and the configuration bounds. Hand-worked numbers."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side
from bot.domain.market import Book, BookLevel, Tick
from bot.engine.clock import ManualClock
from bot.risk.advice import QuoteMode
from bot.risk.breakers import Breakers
from bot.risk.events import EventCalendar, JumpDetector, ScheduledEvent
from bot.risk.latency import p95
from bot.risk.limits import CooldownLimits, LossLimits, limits_from_settings
from bot.risk.pnl import DAY_NS, LossMonitor, TradingDay
from bot.risk.safety import Check, SafetyController, TradingState
from bot.risk.slippage import estimate
from tests.unit.risk_harness import ListAudit

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def test_jump_detector_needs_warm_up_and_fires_at_n_sigma() -> None:
    det = JumpDetector(sigma=5, window_s=5, min_move_bps=10, min_samples=20, halflife_s=60)
    # cold: a 100 bps move on the second price is not a jump (nothing is known about this market yet)
    assert det.observe("A", T0, 100.0) is None
    assert det.observe("A", T0 + S, 101.0) is None
    det2 = JumpDetector(sigma=5, window_s=5, min_move_bps=10, min_samples=20, halflife_s=60)
    t = T0
    for i in range(40):  # +-1 bps every second
        t += S
        assert det2.observe("A", t, 100.0 if i % 2 else 100.01) is None
    assert det2.warmed_up("A")
    # 8 bps: beyond 5 sigma of a ~1 bps/s market (sigma over 5 s ~ 2.2 bps) but under min_move_bps 10: no jump
    assert det2.observe("A", t + S, 100.08) is None
    t += S
    j = det2.observe("A", t + S, 100.2)  # 20 bps from the oldest price in the window
    assert j is not None and j.move_bps > 10 and j.sigmas >= 5


def test_calendar_windows_assets_and_severity() -> None:
    cpi = ScheduledEvent("CPI", T0 + 100 * S, 10 * S, 20 * S, frozenset({"BTC/USDT"}), QuoteMode.WIDEN)
    fomc = ScheduledEvent("FOMC", T0 + 105 * S, 0, 5 * S, frozenset(), QuoteMode.PULL)
    cal = EventCalendar([fomc, cpi])
    assert cal.advance(T0 + 89 * S) == ([], [])
    started, _ = cal.advance(T0 + 90 * S)
    assert started == [cpi] and cal.mode("BTC/USDT") == (QuoteMode.WIDEN, cpi) and cal.mode("ETH/USDT")[0] is QuoteMode.NORMAL
    cal.advance(T0 + 105 * S)
    assert cal.mode("BTC/USDT") == (QuoteMode.PULL, fomc) and cal.mode("ETH/USDT") == (QuoteMode.PULL, fomc)
    _, ended = cal.advance(T0 + 110 * S)
    assert ended == [fomc] and cal.mode("BTC/USDT")[0] is QuoteMode.WIDEN
    _, ended = cal.advance(T0 + 120 * S)
    assert ended == [cpi] and not cal.active
    late = EventCalendar([cpi])
    assert late.advance(T0 + 200 * S) == ([], [])  # a window entirely in the past never starts


def test_slippage_walks_l2_up_to_the_limit() -> None:
    tick = Tick("A", D("99.9"), D("1"), D("100.1"), D("1"), 0, 0, 1)  # mid 100
    book = Book("A", (BookLevel(D("99.9"), D("1")),), (BookLevel(D("100.1"), D("1")), BookLevel(D("100.3"), D("2")), BookLevel(D("100.6"), D("5"))), 0, 0, 1)
    # market buy 2: 1 @ 100.1 + 1 @ 100.3 = avg 100.2 -> 20 bps vs mid
    est = estimate(Side.BUY, D("2"), OrderType.MARKET, None, tick, book, D("50"))
    assert est.avg_price == D("100.2") and est.bps == D("20") and est.beyond_known_depth == 0
    # limit buy 5 at 100.3: takes 1 @ 100.1 + 2 @ 100.3 (avg 100.2333..), the rest rests passively
    est = estimate(Side.BUY, D("5"), OrderType.LIMIT, D("100.3"), tick, book, D("50"))
    assert est.marketable_qty == D("3") and D("23.33") < est.bps < D("23.34")
    # market buy 10: 8 in the book, 2 beyond it at 100.6 x 1.005 = 101.103
    est = estimate(Side.BUY, D("10"), OrderType.MARKET, None, tick, book, D("50"))
    assert est.beyond_known_depth == D("2")
    assert est.avg_price == (D("100.1") + 2 * D("100.3") + 5 * D("100.6") + 2 * D("101.103")) / 10
    # sells mirror buys; post-only never takes
    assert estimate(Side.SELL, D("1"), OrderType.MARKET, None, tick, None, D("50")).bps == D("10")
    assert estimate(Side.BUY, D("9"), OrderType.LIMIT_MAKER, D("101"), tick, book, D("50")).bps == 0


def test_p95_is_nearest_rank() -> None:
    assert p95(list(range(1, 21))) == 19  # ceil(0.95 x 20) = 19th
    assert p95([5] * 19 + [100]) == 5
    assert p95(list(range(1, 11))) == 10  # ceil(9.5) = 10th: on 10 samples the worst one


def test_trading_day_resets_at_the_configured_utc_hour() -> None:
    day = TradingDay(8)
    eight = T0 + 8 * 3600 * S
    assert day.start_of(eight - 1) == eight - DAY_NS and day.start_of(eight) == eight
    assert day.next_start(eight + 3600 * S) == eight + DAY_NS
    loss = LossMonitor(LossLimits(reset_hour_utc=8))
    assert loss.roll(eight, {"*": D("0")}) == []  # the first roll only takes the baseline
    assert loss.daily_pnl("*", D("-5")) == D("-5")
    until = loss.lock("*", eight + S)
    assert until == eight + DAY_NS and loss.locked("*", until - 1) == until and loss.locked("*", until) is None
    t = loss.roll(eight + DAY_NS, {"*": D("-5"), "s1": D("-1")})
    assert [x.to_state for x in t] == ["NEW_DAY", "UNLOCKED"]
    assert loss.daily_pnl("*", D("-5")) == 0 and loss.daily_pnl("s1", D("-1")) == 0 and loss.daily_pnl("s2", D("-1")) == D("-1")


def test_breakers_cool_down_and_escalate_on_repeated_trips() -> None:
    b = Breakers(CooldownLimits(breaker_errors=2, breaker_window_s=10, global_cooldown_s=5, breaker_max_trips=2, breaker_escalation_s=60))
    assert not b.note_error(0)
    assert not b.note_error(11 * S)  # the first error left the 10 s window
    assert b.note_error(12 * S)
    t, escalate = b.trip_global(12 * S, "burst")
    assert t.to_state == "OPEN" and not escalate and b.global_.is_open(16 * S) and not b.global_.is_open(17 * S)
    assert [x.to_state for x in b.step(17 * S)] == ["CLOSED"]
    _, escalate = b.trip_global(30 * S, "burst")
    assert escalate  # two trips within the escalation window: a human decides
    _, escalate = b.trip_global(200 * S, "burst")
    assert not escalate  # the older trips left the window


async def test_scoped_states_checklist_slots_and_async_checks() -> None:
    audit, clock = ListAudit(), ManualClock(T0)
    s = SafetyController(audit, clock, required_checks=("positions_reconciled", "incident_recorded"))
    heard: list[tuple[str, str]] = []
    s.add_scope_listener(lambda scope, o, n, c, r: heard.append((scope, n.value)))
    assert s.enter(TradingState.HALTED, ErrorCode.RISK_BLOCKED, "loss", "strategy:a")
    assert s.state is TradingState.ACTIVE and s.strategy_state("a") is TradingState.HALTED and s.strategy_state("b") is TradingState.ACTIVE
    assert s.enter(TradingState.REDUCING, ErrorCode.RISK_BLOCKED, "drawdown")
    assert s.strategy_state("b") is TradingState.REDUCING and s.strategy_state("a") is TradingState.HALTED
    ok, checks = s.resume("alice", "strategy:a")
    assert not ok and {c.name for c in checks if not c.ok} == {"positions_reconciled", "incident_recorded"}
    assert "not wired" in checks[0].detail
    s.provide_check("positions_reconciled", lambda: Check("positions_reconciled", True))

    async def incident() -> Check:
        return Check("incident_recorded", True)

    s.provide_check("incident_recorded", incident)
    s.add_check(incident)  # the same check added twice (slot + extra) runs once
    ok, checks = s.resume("alice", "strategy:a")
    assert not ok and "asynchronous" in next(c.detail for c in checks if c.name == "incident_recorded")  # sync path: fail closed
    ok, checks = await s.resume_async("alice", "strategy:a")
    assert ok and len(checks) == 2 and s.strategy_state("a") is TradingState.REDUCING  # the global state still binds
    ok, _ = await s.resume_async("alice")
    assert ok and s.strategy_state("a") is TradingState.ACTIVE
    assert heard == [("strategy:a", "HALTED"), ("global", "REDUCING"), ("strategy:a", "ACTIVE"), ("global", "ACTIVE")]
    assert not s.enter(TradingState.ACTIVE, None, "automatic de-escalation")
    rows = audit.transitions()
    assert [r["kind"] for r in rows].count("resume_refused") == 2


def write(tmp_path: Any, text: str) -> Any:
    p = tmp_path / "bot.toml"
    p.write_text(text)
    return p


def test_risk_configuration_is_bounded_and_consistent(tmp_path: Any, clean_env: None) -> None:
    s = load_settings(env={}).settings
    lim = limits_from_settings(s.risk)
    assert lim.loss.max_daily_loss == D("200") and lim.drawdown.kill_at == D("0.05") and lim.events.jump_action == "pull"
    for text, needle in (
        ('[risk.drawdown]\nthrottle_at = "0.06"\n', "release_at < throttle_at <= kill_at"),
        ("[risk.latency]\nrecover_ratio = 2.5\n", "recover_ratio must be below degrade_ratio"),
        ('[risk.events]\njump_sigma = 1\n', "risk.events.jump_sigma"),
        ('[risk.events]\ncalendar = [{name = "CPI", at = "2026-03-01T13:30:00"}]\n', "must carry a time zone"),
        ('[risk.flatten]\nslice_qty = "1"\n', "slice_qty must not exceed max_trade_qty"),
        ('[risk.slippage]\nmax_bps = "-1"\n', "risk.slippage.max_bps"),
        ("[risk.stale]\nasset_stale_s = 0\n", "risk.stale.asset_stale_s"),
        ("[risk]\ndaily_reset_hour_utc = 24\n", "risk.daily_reset_hour_utc"),
    ):
        with pytest.raises(ConfigError, match=needle):
            load_settings(write(tmp_path, text), env={})
    cal = load_settings(write(tmp_path, '[risk.events]\ncalendar = [{name = "CPI", at = "2026-03-01T13:30:00Z", assets = ["BTC/USDT"], action = "widen"}]\n'), env={})
    [ev] = limits_from_settings(cal.settings.risk).events.calendar
    assert ev.start_ns == 1_772_371_800 * S and ev.action is QuoteMode.WIDEN and ev.assets == frozenset({"BTC/USDT"})
