"""What a strategy learns from risk without reaching out: a read-only ``Advice`` in its context.

``ctx.advice(asset)`` returns the current advice for the calling strategy and asset. Quoting strategies
widen their spread by ``spread_mult`` in WIDEN, cancel their quotes and place none in PULL, and multiply
their order size by ``size_scale`` (the drawdown throttle). Risk enforces the same limits on every intent
anyway (a strategy that ignores the advice is blocked, not trusted), so advice only saves blocked intents.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import NamedTuple


class QuoteMode(str, Enum):
    NORMAL = "NORMAL"
    WIDEN = "WIDEN"  # quote wider (spread x spread_mult); passive orders closer than widen_min_bps to mid are blocked
    PULL = "PULL"  # no new exposure on the asset: cancel quotes, place none

    def __str__(self) -> str:
        return self.value


SEVERITY = {QuoteMode.NORMAL: 0, QuoteMode.WIDEN: 1, QuoteMode.PULL: 2}


class Advice(NamedTuple):
    mode: QuoteMode = QuoteMode.NORMAL
    spread_mult: Decimal = Decimal(1)
    size_scale: Decimal = Decimal(1)
    reason: str = ""
    until_ns: int | None = None  # when the current event cooldown ends, if known


NORMAL = Advice()
