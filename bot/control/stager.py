"""Turns an approved intent (from an operator or a running strategy) or a mandate into a staged book entry.

The entry records everything the confirmation will be checked against: the reference mid for the drift check,
the arming window it belongs to (LIVE), its expiry, and how many operators must confirm it (four-eyes).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.control.arming import Arming
from bot.control.estimate import estimate
from bot.control.staging import IntentBook, Mandate, Staged
from bot.domain.instrument import Instrument
from bot.domain.intent import Intent
from bot.domain.ports import Clock
from bot.engine.market_state import MarketState

NS = 1_000_000_000


class Stager:
    def __init__(
        self,
        *,
        book: IntentBook,
        clock: Clock,
        arming: Arming,
        require_arming: bool,
        instruments: Mapping[str, Instrument],
        market: MarketState,
        intent_ttl_s: int,
        four_eyes_notional: Decimal | None,
    ) -> None:
        self.book = book
        self.clock = clock
        self.arming = arming
        self.require_arming = require_arming
        self.instruments = instruments
        self.market = market
        self.intent_ttl_s = intent_ttl_s
        self.four_eyes_notional = four_eyes_notional

    def _confirmations(self, notional: Decimal | None) -> int:
        if self.four_eyes_notional is None:
            return 1
        if notional is None or notional > self.four_eyes_notional:
            return 2  # unknown notional: fail closed
        return 1

    def stage_order(self, intent: Intent, risk_text: str, *, source: str, staged_by: str, user_id: int | None) -> Staged:
        now = self.clock.now_ns()
        est = estimate(intent, self.instruments[intent.asset], self.market.last.get(intent.asset))
        entry = Staged(
            hash="",
            source=source,
            staged_by=staged_by,
            staged_by_user=user_id,
            staged_ns=now,
            expires_ns=now + self.intent_ttl_s * NS,
            arming_epoch=self.arming.epoch if self.require_arming else None,
            intent=intent,
            estimate=est,
            risk_text=risk_text,
            confirmations_needed=self._confirmations(est.notional),
        )
        return self.book.add(entry)

    def stage_mandate(self, mandate: Mandate, risk_text: str, *, staged_by: str, user_id: int | None) -> Staged:
        now = self.clock.now_ns()
        entry = Staged(
            hash="",
            source="operator",
            staged_by=staged_by,
            staged_by_user=user_id,
            staged_ns=now,
            expires_ns=now + self.intent_ttl_s * NS,
            arming_epoch=self.arming.epoch if self.require_arming else None,
            mandate=mandate,
            risk_text=risk_text,
            confirmations_needed=self._confirmations(mandate.max_notional),
        )
        return self.book.add(entry)
