"""Message formatting for a phone screen: HTML escaping, numbers with their units, durations, UTC times.

Every dynamic string that goes into a message passes through ``esc`` (Telegram's HTML parse mode refuses a
bare ``<`` or ``&``). Numbers are Decimals and always carry their unit (``0.01 BTC``, ``600.00 USDT``,
``12 bps``, ``4m 30s``).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

NS = 1_000_000_000


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def qty(value: Decimal, unit: str = "") -> str:
    """A quantity exactly as it is (no exponent, no trailing zeros), with its unit."""
    text = format(value.normalize(), "f") if value != 0 else "0"
    return f"{text} {esc(unit)}".rstrip()


def signed_qty(value: Decimal, unit: str = "") -> str:
    return ("+" if value > 0 else "") + qty(value, unit)


def money(value: Decimal, unit: str, places: int = 2, signed: bool = False) -> str:
    """Rounded for display only (half-even), thousands separated: ``60,000.00 USDT``."""
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = f"{q:,.{places}f}"
    if signed and q > 0:
        text = "+" + text
    return f"{text} {esc(unit)}"


def price(value: Decimal, unit: str, tick: Decimal | None = None) -> str:
    """A price with the decimals of its tick (``60,000.50 USDT``), or every significant decimal it has."""
    if tick is not None:
        places = max(0, -int(tick.normalize().as_tuple().exponent))
        places = max(places, max(0, -int(value.normalize().as_tuple().exponent)))
        text = f"{value:,.{places}f}"
    else:
        text = f"{value.normalize():,f}" if value != value.to_integral() else f"{value:,.0f}"
    return f"{text} {esc(unit)}"


def bps(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)} bps"


def duration(seconds: float | int) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def utc(ts_ns: int) -> str:
    """``2026-01-01 12:34:56Z``."""
    return datetime.fromtimestamp(ts_ns / NS, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def utc_time(ts_ns: int) -> str:
    """``12:34:56Z`` (same-day times on the status screen)."""
    return datetime.fromtimestamp(ts_ns / NS, UTC).strftime("%H:%M:%SZ")


def short_hash(h: str) -> str:
    return h[:10]


def units(asset: str) -> tuple[str, str]:
    """(base, quote) of ``BASE/QUOTE``."""
    base, _, quote = asset.partition("/")
    return base, quote or "?"
