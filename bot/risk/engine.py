"""``RiskEngine.check(intent, state)``: the one entry point. Pure and fast; the caller audits the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.intent import Intent, IntentKind, Side
from bot.domain.money import ZERO
from bot.risk.verdict import Approved, Blocked, Verdict
from bot.risk.view import RiskView


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_trade_qty: Decimal
    max_order_notional: Decimal
    max_position_qty: Decimal
    allowed_assets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # venue -> assets


class RiskEngine:
    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check(self, intent: Intent, state: RiskView) -> Verdict:
        if intent.kind is IntentKind.CANCEL:
            return Approved({"kind": "CANCEL"})  # reducing resting exposure is always allowed
        lim = self.limits
        venue = state.venue()
        allowed = lim.allowed_assets.get(venue)
        if allowed is not None and intent.asset not in allowed:
            return Blocked(
                ErrorCode.RISK_BLOCKED, f"{intent.asset} is not on the {venue} allowlist", {"venue": venue, "asset": intent.asset}, "asset_allowlist"
            )
        if intent.qty > lim.max_trade_qty:
            return Blocked(
                ErrorCode.RISK_BLOCKED,
                f"order quantity {intent.qty} exceeds max_trade_qty {lim.max_trade_qty}",
                {"qty": intent.qty, "max_trade_qty": lim.max_trade_qty},
                "max_trade_size",
            )
        price = intent.limit_price if intent.limit_price is not None else state.mark(intent.asset)
        if price is None:
            return Blocked(ErrorCode.MARKET_DATA_STALE, f"no price for {intent.asset} yet", {"asset": intent.asset}, "no_price")
        notional = intent.qty * price
        if notional > lim.max_order_notional:
            return Blocked(
                ErrorCode.RISK_BLOCKED,
                f"order notional {notional} exceeds max_order_notional {lim.max_order_notional}",
                {"notional": notional, "max_order_notional": lim.max_order_notional},
                "max_notional",
            )
        pos = state.position(intent.asset)
        buys, sells = state.open_exposure(intent.asset)
        if intent.side is Side.BUY:
            worst = pos + buys + intent.qty
        else:
            worst = pos - sells - intent.qty
        inputs = {"position": pos, "resting_buy": buys, "resting_sell": sells, "qty": intent.qty, "max_position_qty": lim.max_position_qty}
        if abs(worst) > lim.max_position_qty and abs(worst) > abs(pos):
            return Blocked(
                ErrorCode.RISK_BLOCKED,
                f"position would reach {worst} (incl. resting orders), beyond max_position_qty {lim.max_position_qty}",
                inputs | {"worst_case": worst},
                "max_position",
            )
        return Approved(inputs | {"notional": notional, "worst_case": worst if worst else ZERO})
