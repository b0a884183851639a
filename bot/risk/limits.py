"""The risk policy matrix's parameters (spec 12), as frozen values. ``docs/risk.md`` documents each one.

The composition root builds them from the ``[risk]`` configuration section with ``limits_from_settings``
(duck-typed on attribute names, so this package never imports the configuration module). Every value is
bounded in ``bot/config.py``; the defaults there are the conservative ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.risk.advice import QuoteMode
from bot.risk.events import ScheduledEvent

D = Decimal
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LossLimits:
    max_daily_loss: Decimal = D("200")  # global, quote currency, realised + unrealised net of fees
    max_daily_loss_per_strategy: Decimal = D("100")
    daily_loss_by_strategy: Mapping[str, Decimal] = field(default_factory=dict)  # per-strategy overrides
    reset_hour_utc: int = 0
    max_portfolio_loss: Decimal = D("400")  # cumulative since start (or the last resume): halt all
    strategy_loss_kill: Decimal = D("150")  # cumulative per strategy: halt that strategy + alert

    def daily_cap(self, strategy_id: str) -> Decimal:
        return self.daily_loss_by_strategy.get(strategy_id, self.max_daily_loss_per_strategy)


@dataclass(frozen=True, slots=True)
class DrawdownLimits:
    throttle_at: Decimal = D("0.02")  # drawdown fraction of peak equity that throttles size
    release_at: Decimal = D("0.01")  # hysteresis: the throttle lifts only once drawdown is back below this
    throttle_scale: Decimal = D("0.5")  # size multiplier while throttled
    kill_at: Decimal = D("0.05")  # cancel resting, flatten gradually, alert
    strategy_capital: Mapping[str, Decimal] = field(default_factory=dict)  # per-strategy equity base (listed strategies only)


@dataclass(frozen=True, slots=True)
class CooldownLimits:
    strategy_cooldown_s: float = 300.0  # new risk of a strategy delayed after its drawdown or loss trigger
    global_cooldown_s: float = 120.0  # global circuit breaker open time
    kill_cooldown_s: float = 600.0  # resume refused until this long after an automated kill
    breaker_errors: int = 10  # venue errors within breaker_window_s trip the global breaker
    breaker_window_s: float = 60.0
    breaker_max_trips: int = 3  # trips within breaker_escalation_s escalate to HALTED (a human decides)
    breaker_escalation_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class LatencyLimits:
    window: int = 50  # order-ack samples in the rolling window
    min_samples: int = 20  # no verdict on fewer
    baseline_ms: float = 0.0  # 0 = learn the baseline p95 from the first full window
    min_baseline_ms: float = 5.0  # floor: a 0 ms simulated ack must not make 1 ms a "doubling"
    degrade_ratio: float = 2.0  # p95 >= ratio x baseline: halve the order rate
    hard_ms: float = 2000.0  # p95 >= this: block new orders
    persist_s: float = 60.0  # throttled this long: block new orders
    recover_ratio: float = 1.5  # hysteresis: back to normal only below ratio x baseline ...
    recover_s: float = 30.0  # ... held this long
    block_cooldown_s: float = 30.0  # blocked at least this long, then probe at the throttled rate
    throttle_factor: Decimal = D("0.5")
    order_rate_per_s: Decimal = D("5")  # the normal order rate per venue (the throttle halves it)


@dataclass(frozen=True, slots=True)
class StaleLimits:
    asset_stale_s: float = 10.0  # no update for this long blocks the asset
    recover_s: float = 5.0  # hysteresis: updates must flow this long before the asset is unblocked
    all_stale_safe: bool = True  # every asset stale -> SAFE


@dataclass(frozen=True, slots=True)
class SlippageLimits:
    max_bps: Decimal = D("20")  # expected slippage vs mid at or above this blocks the order
    unknown_depth_bps: Decimal = D("50")  # assumed cost of the part beyond the known depth


@dataclass(frozen=True, slots=True)
class EventLimits:
    jump_sigma: float = 6.0
    jump_window_s: float = 5.0
    jump_min_move_bps: float = 10.0
    jump_min_samples: int = 100
    jump_halflife_s: float = 300.0
    jump_action: str = "pull"  # pull | widen
    cooldown_s: float = 60.0
    widen_factor: Decimal = D("3")
    widen_min_bps: Decimal = D("20")
    calendar: tuple[ScheduledEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class FlattenLimits:
    slice_qty: Decimal | None = None  # None = max_trade_qty (throttled)
    interval_s: float = 1.0
    max_slippage_bps: Decimal = D("50")  # marketable-limit bound of a flatten or barrier slice


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_trade_qty: Decimal
    max_order_notional: Decimal
    max_position_qty: Decimal
    allowed_assets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # venue -> assets
    loss: LossLimits = field(default_factory=LossLimits)
    drawdown: DrawdownLimits = field(default_factory=DrawdownLimits)
    cooldown: CooldownLimits = field(default_factory=CooldownLimits)
    latency: LatencyLimits = field(default_factory=LatencyLimits)
    stale: StaleLimits = field(default_factory=StaleLimits)
    slippage: SlippageLimits = field(default_factory=SlippageLimits)
    events: EventLimits = field(default_factory=EventLimits)
    flatten: FlattenLimits = field(default_factory=FlattenLimits)
    account_value: Decimal | None = None  # starting account value; None = from the venue's balances
    eval_interval_ms: int = 100


def _sub(cls: type, section: Any, **extra: Any) -> Any:
    names = [n for n in cls.__dataclass_fields__ if n not in extra]  # type: ignore[attr-defined]
    return cls(**{n: getattr(section, n) for n in names if hasattr(section, n)}, **extra)


def parse_utc_ns(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} must carry a time zone")
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def calendar_from_settings(entries: Any) -> tuple[ScheduledEvent, ...]:
    return tuple(
        ScheduledEvent(
            name=e.name, start_ns=parse_utc_ns(e.at), before_ns=int(e.before_s * NS), after_ns=int(e.after_s * NS),
            assets=frozenset(e.assets), action=QuoteMode(e.action.upper()),
        )
        for e in entries
    )


def limits_from_settings(risk: Any) -> RiskLimits:
    """Map the ``[risk]`` settings (attribute names match) onto ``RiskLimits``."""
    calendar = calendar_from_settings(risk.events.calendar)
    return RiskLimits(
        max_trade_qty=risk.max_trade_qty,
        max_order_notional=risk.max_order_notional,
        max_position_qty=risk.max_position_qty,
        allowed_assets={k: tuple(v) for k, v in risk.allowed_assets.items()},
        loss=LossLimits(
            max_daily_loss=risk.max_daily_loss,
            max_daily_loss_per_strategy=risk.max_daily_loss_per_strategy,
            daily_loss_by_strategy=dict(risk.daily_loss_by_strategy),
            reset_hour_utc=risk.daily_reset_hour_utc,
            max_portfolio_loss=risk.max_portfolio_loss,
            strategy_loss_kill=risk.strategy_loss_kill,
        ),
        drawdown=_sub(DrawdownLimits, risk.drawdown, strategy_capital=dict(risk.drawdown.strategy_capital)),
        cooldown=_sub(CooldownLimits, risk.cooldown),
        latency=_sub(LatencyLimits, risk.latency),
        stale=_sub(StaleLimits, risk.stale),
        slippage=_sub(SlippageLimits, risk.slippage),
        events=_sub(EventLimits, risk.events, calendar=calendar),
        flatten=_sub(FlattenLimits, risk.flatten),
        account_value=risk.account_value,
        eval_interval_ms=risk.eval_interval_ms,
    )
