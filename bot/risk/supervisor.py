"""The risk supervisor: once per engine iteration it moves the monitors and fires the automatic kill switches.

It decides; the engine acts. ``evaluate(view)`` returns the monitor transitions (the caller audits and alerts
them) and the actions to take (cancel resting orders of a scope, flatten a scope). Trading-state changes go
through the ``SafetyController``, which audits them itself.

Triggers and effects (docs/risk.md has the table with defaults):

- trading day rolled over               -> daily P&L re-based, daily-loss lockouts lifted
- an asset without updates              -> the asset is blocked (hysteresis on recovery); all assets -> SAFE
- daily loss >= cap (global)            -> SAFE, cancel resting, flatten, no new risk until the next trading day
- daily loss >= cap (strategy)          -> that strategy SAFE, cancel its resting, flatten it, lockout, cooldown
- portfolio loss >= limit               -> HALTED (halt all), cancel resting, hold positions
- strategy loss >= kill                 -> that strategy HALTED, cancel its resting, cooldown, alert
- drawdown >= throttle_at               -> size throttled (strategy: + cooldown); lifted below release_at
- drawdown >= kill_at                   -> REDUCING, cancel resting, flatten gradually, alert
- global breaker tripped max_trips times within the escalation window -> HALTED

Loss and drawdown kills fire once per cause (per trading day for the daily cap) and are remembered: a human
resume re-bases the scope's session loss and drawdown peak. Automated kills start the kill cooldown: resume
is refused until it has passed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from bot.domain.errors import ErrorCode
from bot.risk.drawdown import AccountValue
from bot.risk.engine import RiskEngine
from bot.risk.pnl import DAY_NS, GLOBAL, scope_name
from bot.risk.safety import TradingState
from bot.risk.transition import Transition
from bot.risk.view import RiskView

NS = 1_000_000_000
MS = 1_000_000
RB = ErrorCode.RISK_BLOCKED


def m(value: Decimal) -> str:
    """Money in a message: exact, without trailing zeros."""
    text = format(value.normalize(), "f")
    return text


class CancelResting(NamedTuple):
    scope: str  # global | strategy:<id>
    reason: str


class Flatten(NamedTuple):
    scope: str  # global | strategy:<id>
    reason: str


Action = CancelResting | Flatten


class RiskSupervisor:
    def __init__(self, risk: RiskEngine, account: AccountValue | None = None) -> None:
        self.risk = risk
        self.account = account
        self.pnl_dirty = True  # a fill happened since the last P&L evaluation
        self._last_pnl_mono: int | None = None
        self.last_kill_mono: int | None = None  # last automated loss/drawdown kill (the kill cooldown)
        self._eval_ns = risk.limits.eval_interval_ms * MS

    # ------------------------------------------------------------------ the evaluation
    def evaluate(self, view: RiskView) -> tuple[list[Transition], list[Action]]:
        r = self.risk
        now, mono = view.now_ns(), view.monotonic_ns()
        out: list[Transition] = []
        actions: list[Action] = []
        loss = r.loss
        if loss.day_start_ns is None or not loss.day_start_ns <= now < loss.day_start_ns + DAY_NS:
            nets = {GLOBAL: view.net_pnl(None)}
            for sid in view.strategy_ids():
                nets[sid] = view.net_pnl(sid)
            out += loss.roll(now, nets)
        out += r.stale.evaluate(view.last_update_ns, mono)
        if r.limits.stale.all_stale_safe and r.stale.all_stale():
            if r.safety.enter(TradingState.SAFE, ErrorCode.MARKET_DATA_STALE, f"all market data stale ({', '.join(r.stale.assets)})"):
                actions.append(CancelResting("global", "all market data stale"))
        out += r.latency.evaluate(mono)
        started, ended = r.events.calendar.advance(now)
        for ev in started:
            scope = "global" if not ev.assets else "asset:" + ",".join(sorted(ev.assets))
            out.append(Transition("event", scope, "NORMAL", ev.action.value, None, f"scheduled event {ev.name}: {ev.action.value.lower()} quotes", "info"))
        for ev in ended:
            scope = "global" if not ev.assets else "asset:" + ",".join(sorted(ev.assets))
            out.append(Transition("event", scope, ev.action.value, "NORMAL", None, f"scheduled event {ev.name} over: re-tighten", "info"))
        for asset, jump in r.events.expire(lambda a: (t.ts_local_ns if (t := view.tick(a)) is not None else None)):
            out.append(Transition("event", f"asset:{asset}", r.events.jump_action.value, "NORMAL", None,
                                  f"jump cooldown over ({jump.move_bps:+.1f} bps): re-tighten", "info"))
        out += r.breakers.step(mono)
        if self.pnl_dirty or self._last_pnl_mono is None or mono - self._last_pnl_mono >= self._eval_ns:
            self.pnl_dirty = False
            self._last_pnl_mono = mono
            self._evaluate_pnl(view, now, mono, out, actions)
        return out, actions

    def _evaluate_pnl(self, view: RiskView, now: int, mono: int, out: list[Transition], actions: list[Action]) -> None:
        r = self.risk
        lim = r.limits.loss
        safety, loss, dd = r.safety, r.loss, r.drawdown
        net = view.net_pnl(None)
        nets = {sid: view.net_pnl(sid) for sid in view.strategy_ids()}
        if not dd.observed and self.account is not None:
            value = self.account.value(view.marks())
            if value is not None and value > 0:
                dd.set_start_equity(value)
                out.append(Transition("baseline", "global", None, "OBSERVED", None, f"starting account value {value} observed: drawdown armed"))
        # --- daily loss, global: SAFE + flatten + lockout until the next trading day
        daily = loss.daily_pnl(GLOBAL, net)
        if -daily >= lim.max_daily_loss and "daily:" + GLOBAL not in loss.killed:
            loss.killed.add("daily:" + GLOBAL)
            until = loss.lock(GLOBAL, now)
            reason = f"daily loss {m(-daily)} >= max_daily_loss {lim.max_daily_loss}: flatten; no new risk until the next trading day"
            out.append(Transition("daily_loss", "global", "OPEN", "LOCKED", RB, reason, "critical"))
            safety.enter(TradingState.SAFE, RB, reason)
            actions += [CancelResting("global", reason), Flatten("global", reason)]
            self.last_kill_mono = mono
        # --- portfolio loss limit: halt all
        session = loss.session_pnl(GLOBAL, net)
        if -session >= lim.max_portfolio_loss and "portfolio:" + GLOBAL not in loss.killed:
            loss.killed.add("portfolio:" + GLOBAL)
            reason = f"portfolio loss {m(-session)} >= max_portfolio_loss {lim.max_portfolio_loss}: halt all"
            out.append(Transition("loss_limit", "global", None, "TRIGGERED", RB, reason, "critical"))
            safety.enter(TradingState.HALTED, RB, reason)
            actions.append(CancelResting("global", reason))
            self.last_kill_mono = mono
        # --- per strategy
        for sid, snet in nets.items():
            scope = f"strategy:{sid}"
            sdaily = loss.daily_pnl(sid, snet)
            cap = lim.daily_cap(sid)
            if -sdaily >= cap and "daily:" + sid not in loss.killed:
                loss.killed.add("daily:" + sid)
                loss.lock(sid, now)
                reason = f"strategy {sid} daily loss {m(-sdaily)} >= {cap}: flatten it; no new risk for it until the next trading day"
                out.append(Transition("daily_loss", scope, "OPEN", "LOCKED", RB, reason, "critical"))
                safety.enter(TradingState.SAFE, RB, reason, scope)
                actions += [CancelResting(scope, reason), Flatten(scope, reason)]
                out.append(r.breakers.strategy(sid).trip(mono, "daily loss cap"))
                self.last_kill_mono = mono
            ssession = loss.session_pnl(sid, snet)
            if -ssession >= lim.strategy_loss_kill and "loss:" + sid not in loss.killed:
                loss.killed.add("loss:" + sid)
                reason = f"strategy {sid} loss {m(-ssession)} >= strategy_loss_kill {lim.strategy_loss_kill}: strategy halted"
                out.append(Transition("loss_limit", scope, None, "TRIGGERED", RB, reason, "critical"))
                safety.enter(TradingState.HALTED, RB, reason, scope)
                actions.append(CancelResting(scope, reason))
                out.append(r.breakers.strategy(sid).trip(mono, "loss kill-switch"))
                self.last_kill_mono = mono
        # --- drawdown on account value (only once equity has been observed)
        if dd.observed:
            self._drawdown(GLOBAL, net, mono, out, actions)
            for sid, snet in nets.items():
                self._drawdown(sid, snet, mono, out, actions)

    def _drawdown(self, key: str, net: Decimal, mono: int, out: list[Transition], actions: list[Action]) -> None:
        r = self.risk
        lim = r.limits.drawdown
        sd = r.drawdown.scope(key)
        if sd is None:
            return
        equity, d = sd.observe(net)
        scope = scope_name(key)
        detail = f"drawdown {d:.4%} = (peak {m(sd.peak)} - equity {m(equity)}) / peak"
        if d >= lim.kill_at:
            if not sd.killed:
                sd.killed = True
                reason = f"{detail} >= kill_at {lim.kill_at:%}: cancel resting, flatten gradually"
                out.append(Transition("drawdown", scope, None, "KILL", RB, reason, "critical"))
                r.safety.enter(TradingState.REDUCING, RB, reason, scope)
                actions += [CancelResting(scope, reason), Flatten(scope, reason)]
                if key != GLOBAL:
                    out.append(r.breakers.strategy(key).trip(mono, "drawdown kill"))
                self.last_kill_mono = mono
        if d >= lim.throttle_at and not sd.throttled:
            sd.throttled = True
            out.append(Transition("throttle", scope, "OFF", "ON", RB, f"{detail} >= throttle_at {lim.throttle_at:%}: size x{lim.throttle_scale}", "warning"))
            if key != GLOBAL:
                out.append(r.breakers.strategy(key).trip(mono, "drawdown throttle"))
        elif sd.throttled and d < lim.release_at:
            sd.throttled = False
            out.append(Transition("throttle", scope, "ON", "OFF", None, f"{detail} < release_at {lim.release_at:%}: full size", "info"))

    # ------------------------------------------------------------------ other inputs
    def venue_error(self, mono: int) -> list[Transition]:
        """A venue error (rejection, failure). A burst trips the global breaker; repeated trips halt."""
        r = self.risk
        if not r.breakers.note_error(mono):
            return []
        t, escalate = r.breakers.trip_global(mono, f"{r.limits.cooldown.breaker_errors} venue errors within {r.limits.cooldown.breaker_window_s:g}s")
        if escalate:
            r.safety.enter(TradingState.HALTED, RB, f"global circuit breaker tripped {r.limits.cooldown.breaker_max_trips} times: a human decides")
        return [t]

    def rebase(self, scope: str, view: RiskView) -> Transition:
        """A human resumed ``scope``: its session loss and drawdown peak restart from now (limits reset)."""
        r = self.risk
        key = GLOBAL if scope == "global" else scope.removeprefix("strategy:")
        net = view.net_pnl(None if key == GLOBAL else key)
        r.loss.rebase(key, net)
        r.drawdown.rebase(key)
        self.pnl_dirty = True
        return Transition("baseline", scope, None, "REBASED", None, f"resumed: session loss and drawdown peak re-based at net P&L {m(net)}")

    def cooldown_left_s(self, mono: int) -> float:
        if self.last_kill_mono is None:
            return 0.0
        return max(0.0, self.risk.limits.cooldown.kill_cooldown_s - (mono - self.last_kill_mono) / NS)
