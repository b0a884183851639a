"""One instrument schema for every venue (spec section 8.8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import NamedTuple

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.money import ZERO, ceil_to_step, floor_to_step, is_multiple, truncate_to_step


class PositionSemantics(str, Enum):
    SPOT = "spot"  # position is a signed base-asset quantity
    CONTRACTS = "contracts"  # position is a signed number of contracts of contract_size


class FilterFailure(NamedTuple):
    """Which venue filter an order fails. ``filter`` uses Binance's names: PRICE_FILTER, LOT_SIZE, NOTIONAL."""

    filter: str
    message: str


@dataclass(frozen=True, slots=True)
class FeeModel:
    maker: Decimal = Decimal("0.001")  # fraction of notional; negative = rebate
    taker: Decimal = Decimal("0.001")
    gas: Decimal = ZERO  # fixed cost per transaction, in the quote currency (DEX / on-chain venues)

    def fee(self, notional: Decimal, *, maker: bool) -> Decimal:
        return notional * (self.maker if maker else self.taker) + self.gas


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str  # canonical, e.g. "BTC/USDT"
    venue: str
    venue_symbol: str  # the venue's own, e.g. "BTCUSDT"
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    contract_size: Decimal = Decimal(1)
    semantics: PositionSemantics = PositionSemantics.SPOT
    fees: FeeModel = field(default_factory=FeeModel)
    chain: str | None = None  # chain / network metadata where it applies
    network: str | None = None
    max_qty: Decimal | None = None  # the venue's largest order quantity (Binance LOT_SIZE maxQty), when it has one

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size and lot_size must be positive")
        if self.contract_size <= 0:
            raise ValueError(f"{self.symbol}: contract_size must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_qty and min_notional must not be negative")
        if self.max_qty is not None and self.max_qty < self.min_qty:
            raise ValueError(f"{self.symbol}: max_qty {self.max_qty} is below min_qty {self.min_qty}")
        if self.symbol.count("/") != 1:
            raise ValueError(f"{self.symbol!r}: canonical symbols look like BASE/QUOTE")

    # --- rounding: prices toward the passive side, sizes toward zero -------------------
    def round_price(self, price: Decimal, *, is_buy: bool) -> Decimal:
        """A buy is rounded down and a sell up, so rounding never makes an order more aggressive."""
        return floor_to_step(price, self.tick_size) if is_buy else ceil_to_step(price, self.tick_size)

    def round_qty(self, qty: Decimal) -> Decimal:
        return truncate_to_step(qty, self.lot_size)

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        return qty * price * self.contract_size

    def check_order(self, qty: Decimal, price: Decimal | None) -> FilterFailure | None:
        """The first venue filter the order fails, or None. ``price`` None (market order) skips the price and
        notional filters: the venue checks a market order's notional against its own reference price."""
        if price is not None:
            if price <= 0:
                return FilterFailure("PRICE_FILTER", f"{self.symbol}: price must be positive, got {price}")
            if not is_multiple(price, self.tick_size):
                return FilterFailure("PRICE_FILTER", f"{self.symbol}: price {price} is not a multiple of tick size {self.tick_size}")
        if qty <= 0:
            return FilterFailure("LOT_SIZE", f"{self.symbol}: quantity must be positive, got {qty}")
        if not is_multiple(qty, self.lot_size):
            return FilterFailure("LOT_SIZE", f"{self.symbol}: quantity {qty} is not a multiple of lot size {self.lot_size}")
        if qty < self.min_qty:
            return FilterFailure("LOT_SIZE", f"{self.symbol}: quantity {qty} is below the minimum {self.min_qty}")
        if self.max_qty is not None and qty > self.max_qty:
            return FilterFailure("LOT_SIZE", f"{self.symbol}: quantity {qty} is above the maximum {self.max_qty}")
        if price is not None and self.notional(qty, price) < self.min_notional:
            return FilterFailure("NOTIONAL", f"{self.symbol}: notional {self.notional(qty, price)} is below the minimum {self.min_notional}")
        return None

    def validate_order(self, qty: Decimal, price: Decimal | None) -> None:
        """Raise INVALID_ORDER unless qty and price are on the venue's grid and within its limits."""
        failure = self.check_order(qty, price)
        if failure is not None:
            raise DomainError(ErrorCode.INVALID_ORDER, failure.message)
