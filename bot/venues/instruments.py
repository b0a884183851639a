"""ccxt markets -> the one instrument schema (spec 8.8), and numbers at the adapter edge.

Every price, size and fee that crosses the adapter becomes a ``Decimal`` here. With ``exchange.number = str``
ccxt hands over strings; a few static values (the default maker/taker fees of its market table) stay floats
whatever ``number`` is: those are converted through ``repr`` (the shortest text that round-trips, e.g.
``0.001``), never through ``Decimal(float)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bot.domain.instrument import FeeModel, Instrument, PositionSemantics
from bot.domain.money import ZERO, to_decimal

# ccxt precision modes (ccxt.base.decimal_to_precision)
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4


def edge_decimal(value: Any, *, field: str) -> Decimal:
    """A ccxt number (str, int, Decimal; float only for ccxt's static tables) as a Decimal."""
    if type(value) is str:  # the hot path (every stream message): plain text from the venue
        try:
            result = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"{field}: {value!r} is not a number") from None
        if result.is_finite():
            return result
        raise ValueError(f"{field}: {value!r} is not a finite number")
    if isinstance(value, float):
        return to_decimal(repr(value), field=field)
    return to_decimal(value, field=field)


def optional_decimal(value: Any, *, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    return edge_decimal(value, field=field)


def _step(value: Any, precision_mode: int, field: str) -> Decimal:
    if value is None:
        raise ValueError(f"{field}: the venue gives no precision")
    if precision_mode == TICK_SIZE:
        step = edge_decimal(value, field=field)
    elif precision_mode == DECIMAL_PLACES:
        places = int(edge_decimal(value, field=field))
        step = Decimal(1).scaleb(-places)
    else:
        raise ValueError(f"{field}: precision mode {precision_mode} (significant digits) is not supported; add it in bot/venues/instruments.py")
    if step <= 0:
        raise ValueError(f"{field}: precision {value!r} is not a positive step")
    return step.normalize()


def instrument_from_market(market: Mapping[str, Any], *, venue: str, precision_mode: int, fees: FeeModel | None = None) -> Instrument:
    """One ccxt market as an Instrument. ``fees`` (the account's own rates) win over the market's defaults."""
    symbol = market["symbol"]
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    cost_limits = limits.get("cost") or {}
    tick = _step(precision.get("price"), precision_mode, f"{symbol}.precision.price")
    lot = _step(precision.get("amount"), precision_mode, f"{symbol}.precision.amount")
    min_qty = optional_decimal(amount_limits.get("min"), field=f"{symbol}.limits.amount.min") or ZERO
    min_notional = optional_decimal(cost_limits.get("min"), field=f"{symbol}.limits.cost.min") or ZERO
    contract_size = optional_decimal(market.get("contractSize"), field=f"{symbol}.contractSize") or Decimal(1)
    if fees is None:
        maker = optional_decimal(market.get("maker"), field=f"{symbol}.maker")
        taker = optional_decimal(market.get("taker"), field=f"{symbol}.taker")
        default = FeeModel()
        fees = FeeModel(maker=default.maker if maker is None else maker, taker=default.taker if taker is None else taker)
    semantics = PositionSemantics.SPOT if market.get("spot", True) and not market.get("contract") else PositionSemantics.CONTRACTS
    return Instrument(
        symbol=symbol,
        venue=venue,
        venue_symbol=market["id"],
        base=market["base"],
        quote=market["quote"],
        tick_size=tick,
        lot_size=lot,
        min_qty=min_qty,
        min_notional=min_notional,
        contract_size=contract_size,
        semantics=semantics,
        fees=fees,
    )


def market_maxima(market: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(max qty, max price, max notional) from the market's limits; None where the venue sets none."""
    limits = market.get("limits") or {}
    symbol = market.get("symbol", "?")
    return (
        optional_decimal((limits.get("amount") or {}).get("max"), field=f"{symbol}.limits.amount.max"),
        optional_decimal((limits.get("price") or {}).get("max"), field=f"{symbol}.limits.price.max"),
        optional_decimal((limits.get("cost") or {}).get("max"), field=f"{symbol}.limits.cost.max"),
    )
