"""Fill bookkeeping helpers: fill sequence gaps (spec 4.7.1) and fee conversion for P&L. Pure."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from decimal import Decimal
from enum import Enum

from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.money import ZERO

# (fee currency, quote currency) -> price of one unit of the fee currency in the quote currency, or None
RateLookup = Callable[[str, str], Decimal | None]


class SeqOutcome(str, Enum):
    FIRST = "FIRST"  # the first sequence number seen: nothing to compare with
    OK = "OK"  # exactly the next one
    GAP = "GAP"  # numbers were skipped: fills may have been missed
    GAP_FILLED = "GAP_FILLED"  # a number that had been missing arrived late
    REUSED = "REUSED"  # a number already used by another fill: the venue's sequence is not what we think


class FillSequence:
    """Strictly increasing fill sequence numbers of one venue stream. Missing numbers are kept as ranges
    (a jump of a billion costs one range, not a billion set entries)."""

    __slots__ = ("first", "last", "_missing")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self._missing: list[tuple[int, int]] = []  # sorted, disjoint, inclusive ranges

    @property
    def missing(self) -> list[tuple[int, int]]:
        return list(self._missing)

    def missing_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._missing)

    def observe(self, seq: int) -> tuple[SeqOutcome, tuple[int, int] | None]:
        """Record ``seq``. Returns the outcome and, for GAP, the range that was skipped."""
        if self.last is None or self.first is None:
            self.first = self.last = seq
            return SeqOutcome.FIRST, None
        if seq < self.first:
            # earlier than anything seen (reports raced each other): a hole below the first number is a gap too
            old, self.first = self.first, seq
            if seq + 1 <= old - 1:
                gap = (seq + 1, old - 1)
                self._missing.insert(0, gap)
                return SeqOutcome.GAP, gap
            return SeqOutcome.OK, None
        if seq == self.last + 1:
            self.last = seq
            return SeqOutcome.OK, None
        if seq > self.last + 1:
            gap = (self.last + 1, seq - 1)
            self._missing.append(gap)
            self.last = seq
            return SeqOutcome.GAP, gap
        # seq <= last: either it fills a hole or it is a reuse
        i = bisect_right(self._missing, (seq, math.inf)) - 1
        if i >= 0:
            lo, hi = self._missing[i]
            if lo <= seq <= hi:
                replacement = [r for r in ((lo, seq - 1), (seq + 1, hi)) if r[0] <= r[1]]
                self._missing[i : i + 1] = replacement
                return SeqOutcome.GAP_FILLED, None
        return SeqOutcome.REUSED, None


def fee_in_quote(fill: Fill, instrument: Instrument | None, rate: RateLookup | None) -> tuple[Decimal, str]:
    """The fill's fee in the instrument's quote currency, for P&L, and a note when it could not be converted.

    Quote-currency fees are taken as they are; base-currency fees are valued at the fill price; any other
    currency (e.g. BNB) at the rate the injected lookup gives. Without a rate the venue's own conversion
    (``fill.fee_quote``) is kept and the note says so (the caller audits it).
    """
    if fill.fee == ZERO:
        return ZERO, ""
    if instrument is None:
        return fill.fee_quote, f"no instrument for {fill.asset}: kept the venue's fee_quote"
    ccy = fill.fee_currency.upper()
    if ccy == instrument.quote:
        return fill.fee, ""
    if ccy == instrument.base:
        return fill.fee * fill.price, ""
    price = rate(ccy, instrument.quote) if rate is not None else None
    if price is None or price <= 0:
        return fill.fee_quote, f"no {ccy}/{instrument.quote} rate: kept the venue's fee_quote {fill.fee_quote}"
    return fill.fee * price, ""
