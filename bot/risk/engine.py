"""``RiskEngine.check(intent, state)``: the one entry point. Pure and fast; the caller audits the verdict.

The engine runs it when an intent is staged and again at execution. It reads the state of the monitors
(trading state, loss, drawdown, breakers, latency, staleness, events) and never changes any of them: the
monitors move in ``RiskSupervisor.evaluate`` (once per engine iteration) and in the engine's hooks.

Policies, in the order they are checked (the first that fails blocks; every block carries its ``policy``,
its error code and the inputs it used; docs/risk.md is the reference):

 1. cancels always pass (they only reduce resting exposure)
 2. manual kill (the kill file exists)                         KILL_SWITCH     everything
 3. per-venue asset allowlist                                  RISK_BLOCKED
 4. stale market data on the asset                             MARKET_DATA_STALE (reducing too: no price)
 5. trading state, global then the strategy's                  SAFE_MODE / RISK_BLOCKED
 6. latency: venue BLOCKED (new risk), THROTTLED order rate    RISK_BLOCKED
 7. new risk only: circuit breaker, strategy cooldown, daily-loss lockout and cap (global, strategy),
    portfolio loss limit, strategy loss kill, event discipline (PULL / WIDEN)   RISK_BLOCKED
 8. max trade size (throttled size is approved smaller), max notional, max position incl. resting and
    in-flight orders (throttled)                               RISK_BLOCKED
 9. expected slippage                                          RISK_BLOCKED

"New risk" is an order that does not reduce the position: a buy reduces only a short, and only while the
short plus the resting buys plus this order stays at or below zero (it can never flip the position).
Caps are inclusive (the configured maximum itself is allowed); triggers (loss, drawdown, slippage, latency,
staleness) fire at their threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.intent import Intent, IntentKind, OrderType, Side
from bot.domain.money import ONE, ZERO
from bot.risk.advice import QuoteMode
from bot.risk.breakers import Breakers
from bot.risk.drawdown import DrawdownMonitor
from bot.risk.events import EventCalendar, EventDiscipline, JumpDetector
from bot.risk.latency import LatencyMonitor, LatencyState
from bot.risk.limits import RiskLimits
from bot.risk.pnl import GLOBAL, LossMonitor, iso
from bot.risk.safety import SafetyController, TradingState
from bot.risk.slippage import estimate
from bot.risk.staleness import StalenessMonitor
from bot.risk.verdict import Approved, Blocked, Verdict
from bot.risk.view import RiskView

BPS = Decimal(10_000)
NS = 1_000_000_000
_CANCEL_OK = Approved({"kind": "CANCEL"})
RB = ErrorCode.RISK_BLOCKED


def reduces(side: Side, qty: Decimal, pos: Decimal, buys: Decimal, sells: Decimal) -> bool:
    """True if the order can only bring the position toward zero, counting same-side resting orders."""
    if side is Side.BUY:
        return pos < 0 and pos + buys + qty <= 0
    return pos > 0 and pos - sells - qty >= 0


def _block(code: ErrorCode, policy: str, reason: str, inputs: dict[str, Any]) -> Blocked:
    inputs["policy"] = policy
    return Blocked(code, reason, inputs, policy)


class RiskEngine:
    def __init__(self, limits: RiskLimits, safety: SafetyController, *, assets: Iterable[str] = (), start_ns: int = 0) -> None:
        self.limits = limits
        self.safety = safety
        self.loss = LossMonitor(limits.loss)
        self.drawdown = DrawdownMonitor(limits.drawdown, limits.account_value)
        self.breakers = Breakers(limits.cooldown)
        self.latency = LatencyMonitor(limits.latency)
        self.stale = StalenessMonitor(limits.stale, assets, start_ns)
        ev = limits.events
        self.events = EventDiscipline(
            JumpDetector(
                sigma=ev.jump_sigma, window_s=ev.jump_window_s, min_move_bps=ev.jump_min_move_bps,
                min_samples=ev.jump_min_samples, halflife_s=ev.jump_halflife_s,
            ),
            EventCalendar(ev.calendar),
            QuoteMode(ev.jump_action.upper()),
            int(ev.cooldown_s * NS),
        )
        self.manual_kill = False  # the kill file exists: act on nothing
        self.limits_confirmed: tuple[int, str] | None = None  # (ts, by) of the operator's last confirmation

    def confirm_limits(self, by: str, now_ns: int) -> None:
        """The operator reviewed and confirmed the limits (a resume check: it must follow the last escalation)."""
        self.limits_confirmed = (now_ns, by)

    # ------------------------------------------------------------------ the check
    def check(self, intent: Intent, state: RiskView) -> Verdict:
        if intent.kind is IntentKind.CANCEL:
            return _CANCEL_OK
        lim = self.limits
        asset, sid, side, qty = intent.asset, intent.strategy_id, intent.side, intent.qty
        if self.manual_kill:
            return _block(ErrorCode.KILL_SWITCH, "manual_kill", "the kill file exists: the engine acts on nothing", {"asset": asset})
        if qty <= 0:
            return _block(ErrorCode.INVALID_ORDER, "invalid_qty", f"order quantity must be positive, got {qty}", {"qty": qty})
        venue = state.venue()
        allowed = lim.allowed_assets.get(venue)
        if allowed is not None and asset not in allowed:
            return _block(RB, "asset_allowlist", f"{asset} is not on the {venue} allowlist", {"venue": venue, "asset": asset})
        mono = state.monotonic_ns()
        last = state.last_update_ns(asset)
        if self.stale.blocked(asset, last, mono):
            age = self.stale.age_ns(last, mono)
            return _block(
                ErrorCode.MARKET_DATA_STALE, "stale_data",
                f"market data for {asset} is stale ({age / NS:.1f}s old; threshold {lim.stale.asset_stale_s:g}s, or recovering)",
                {"asset": asset, "age_s": round(age / NS, 3), "threshold_s": lim.stale.asset_stale_s, "recovering": asset in self.stale.stale},
            )
        pos = state.position(asset)
        buys, sells, sbuys, ssells = state.exposures(asset, sid)
        new_risk = not reduces(side, qty, pos, buys, sells)
        safety = self.safety
        gstate = safety.state
        if gstate is not TradingState.ACTIVE:
            if gstate is TradingState.HALTED or new_risk:
                return _block(
                    ErrorCode.SAFE_MODE if gstate is TradingState.SAFE else RB, "trading_state",
                    f"trading state {gstate.value} ({safety.code or '-'}: {safety.reason}): "
                    + ("no new orders" if gstate is TradingState.HALTED else "only orders that reduce the position"),
                    {"state": gstate.value, "scope": "global", "position": pos, "resting_buy": buys, "resting_sell": sells, "qty": qty},
                )
        spos = state.strategy_position(sid, asset)
        s_new_risk = not reduces(side, qty, spos, sbuys, ssells)
        if safety.scoped:
            sc = safety.scoped.get("strategy:" + sid)
            if sc is not None and (sc.state is TradingState.HALTED or s_new_risk):
                return _block(
                    ErrorCode.SAFE_MODE if sc.state is TradingState.SAFE else RB, "trading_state",
                    f"strategy {sid} is {sc.state.value} ({sc.code or '-'}: {sc.reason})",
                    {"state": sc.state.value, "scope": f"strategy:{sid}", "strategy_position": spos, "qty": qty},
                )
        lat = self.latency.state(venue)
        if lat is not LatencyState.NORMAL:
            if lat is LatencyState.BLOCKED and new_risk:
                return _block(
                    RB, "latency_block", f"order-ack latency on {venue} is over its limit: new orders blocked",
                    {"venue": venue, "p95_ms": self.latency.p95_ms(venue), "baseline_ms": self.latency.baseline_ms(venue), "hard_ms": lim.latency.hard_ms},
                )
            sent = self.latency.orders_last_second(venue, mono)
            cap = self.latency.throttled_limit()
            if sent + 1 > cap:
                return _block(
                    RB, "latency_throttle", f"order rate on {venue} is throttled to {cap}/s by latency ({sent} in the last second)",
                    {"venue": venue, "orders_last_s": sent, "limit_per_s": cap, "state": lat.value, "p95_ms": self.latency.p95_ms(venue)},
                )
        tick = state.tick(asset)
        if tick is None:
            return _block(ErrorCode.MARKET_DATA_STALE, "no_price", f"no price for {asset} yet", {"asset": asset})
        now = state.now_ns()
        scale = ONE
        if new_risk or s_new_risk:
            blocked = self._new_risk(intent, state, tick, now, mono, new_risk, s_new_risk)
            if blocked is not None:
                return blocked
            scale = self.drawdown.scale(sid)
        # --- per-order caps (every order, reducing or not) ------------------------------------
        if qty > lim.max_trade_qty:
            return _block(
                RB, "max_trade_size", f"order quantity {qty} exceeds max_trade_qty {lim.max_trade_qty}",
                {"qty": qty, "max_trade_qty": lim.max_trade_qty},
            )
        approved_qty = None
        if scale < ONE and qty > lim.max_trade_qty * scale:
            approved_qty = qty = lim.max_trade_qty * scale  # drawdown throttle: reduce size
        price = intent.limit_price if intent.limit_price is not None and intent.order_type is not OrderType.MARKET else tick.mid
        notional = qty * price
        max_notional = lim.max_order_notional * scale
        if notional > max_notional:
            return _block(
                RB, "max_notional", f"order notional {notional} exceeds max_order_notional {max_notional}",
                {"notional": notional, "max_order_notional": max_notional, "qty": qty, "price": price, "scale": scale},
            )
        worst = pos + buys + qty if side is Side.BUY else pos - sells - qty
        max_pos = lim.max_position_qty * scale if new_risk else lim.max_position_qty
        inputs: dict[str, Any] = {
            "position": pos, "resting_buy": buys, "resting_sell": sells, "qty": qty, "worst_case": worst, "max_position_qty": max_pos,
        }
        if abs(worst) > max_pos and abs(worst) > abs(pos):
            return _block(
                RB, "max_position", f"position would reach {worst} (incl. resting and in-flight orders), beyond max_position_qty {max_pos}", inputs
            )
        est = estimate(side, qty, intent.order_type, intent.limit_price, tick, state.book(asset), lim.slippage.unknown_depth_bps)
        if est.bps >= lim.slippage.max_bps:
            return _block(
                RB, "slippage", f"expected slippage {est.bps:.2f} bps >= max {lim.slippage.max_bps} bps",
                {"slippage_bps": est.bps, "max_bps": lim.slippage.max_bps, "marketable_qty": est.marketable_qty, "avg_price": est.avg_price,
                 "mid": est.mid, "beyond_known_depth": est.beyond_known_depth, "qty": qty},
            )
        inputs["notional"] = notional
        inputs["slippage_bps"] = est.bps
        inputs["new_risk"] = new_risk
        if approved_qty is not None:
            inputs["throttled_from"] = intent.qty
            inputs["scale"] = scale
        return Approved(inputs, qty=approved_qty)

    def _new_risk(
        self, intent: Intent, state: RiskView, tick: Any, now: int, mono: int, new_risk: bool, s_new_risk: bool
    ) -> Blocked | None:
        """Policies that only bind orders adding risk (global ones on the account, strategy ones on the strategy)."""
        lim = self.limits
        sid, asset = intent.strategy_id, intent.asset
        loss = self.loss
        if new_risk:
            if self.breakers.global_.is_open(mono):
                b = self.breakers.global_
                return _block(RB, "circuit_breaker", f"global circuit breaker open ({b.reason})",
                              {"scope": "global", "remaining_s": round((b.open_until or 0) / NS - mono / NS, 3)})
            net = state.net_pnl(None)
            until = loss.locked(GLOBAL, now)
            daily = loss.daily_pnl(GLOBAL, net)
            if until is not None or -daily >= lim.loss.max_daily_loss:
                return _block(
                    RB, "max_daily_loss",
                    f"daily loss {-daily} >= max_daily_loss {lim.loss.max_daily_loss}" if until is None
                    else f"daily loss cap hit: no new risk until the next trading day ({iso(until)})",
                    {"scope": "global", "daily_pnl": daily, "max_daily_loss": lim.loss.max_daily_loss, "locked_until": until},
                )
            session = loss.session_pnl(GLOBAL, net)
            if -session >= lim.loss.max_portfolio_loss:
                return _block(RB, "portfolio_loss", f"portfolio loss {-session} >= max_portfolio_loss {lim.loss.max_portfolio_loss}",
                              {"session_pnl": session, "max_portfolio_loss": lim.loss.max_portfolio_loss})
            mode, why, until_ev = self.events.mode(asset, tick.ts_local_ns)
            if mode is QuoteMode.PULL:
                return _block(RB, "event_pull", f"event discipline: no new exposure on {asset} ({why})",
                              {"asset": asset, "mode": mode.value, "event": why, "until_ns": until_ev})
            if mode is QuoteMode.WIDEN:
                mid = tick.mid
                w = lim.events.widen_min_bps
                px = intent.limit_price
                far = px is not None and intent.order_type is not OrderType.MARKET and (
                    px <= mid * (ONE - w / BPS) if intent.side is Side.BUY else px >= mid * (ONE + w / BPS)
                )
                if not far:
                    return _block(RB, "event_widen", f"event discipline: quotes on {asset} must be at least {w} bps from mid ({why})",
                                  {"asset": asset, "mode": mode.value, "event": why, "price": px, "mid": mid, "widen_min_bps": w})
        if s_new_risk:
            b = self.breakers.strategy_open(sid, mono)
            if b is not None:
                return _block(RB, "cooldown", f"strategy {sid} is cooling down ({b.reason})",
                              {"scope": f"strategy:{sid}", "remaining_s": round(((b.open_until or 0) - mono) / NS, 3)})
            snet = state.net_pnl(sid)
            cap = lim.loss.daily_cap(sid)
            until = loss.locked(sid, now)
            sdaily = loss.daily_pnl(sid, snet)
            if until is not None or -sdaily >= cap:
                return _block(
                    RB, "max_daily_loss_strategy",
                    f"strategy {sid} daily loss {-sdaily} >= {cap}" if until is None
                    else f"strategy {sid} hit its daily loss cap: no new risk until {iso(until)}",
                    {"scope": f"strategy:{sid}", "daily_pnl": sdaily, "max_daily_loss": cap, "locked_until": until},
                )
            ssession = loss.session_pnl(sid, snet)
            if -ssession >= lim.loss.strategy_loss_kill:
                return _block(RB, "strategy_loss_kill", f"strategy {sid} loss {-ssession} >= strategy_loss_kill {lim.loss.strategy_loss_kill}",
                              {"scope": f"strategy:{sid}", "session_pnl": ssession, "strategy_loss_kill": lim.loss.strategy_loss_kill})
        return None
