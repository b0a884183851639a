"""Staged intents and mandates awaiting an operator's confirmation, found by their hash.

A staged entry is either one order (an ``Intent``) or a mandate (a bounded run of a strategy). Its hash is
SHA-256 over the canonical payload, the staging time, the source and a random nonce (DESIGN: contracts), so the
same order staged twice gets two hashes. The operator types at least the first 10 hex characters; a prefix
must match exactly one pending, unexpired entry. Entries are single use: once confirmed, cancelled, voided or
expired they stay in the book (bounded) only so a late or repeated confirm gets a precise answer.

Staged entries live in memory: a restart drops them (fail closed: nothing staged before a restart executes).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from bot.control.estimate import Estimate
from bot.domain.intent import Intent, intent_hash
from bot.domain.money import ZERO

NS = 1_000_000_000
HashFn = Callable[[dict[str, object], str], str]


class EntryStatus(str, Enum):
    PENDING = "PENDING"  # waiting for confirmation
    EXECUTED = "EXECUTED"  # an order: confirmed and sent
    BLOCKED = "BLOCKED"  # an order: confirmed, but risk blocked it at execution
    ACTIVE = "ACTIVE"  # a mandate: confirmed and running
    ENDED = "ENDED"  # a mandate: bounds used up, expired, disarmed, SAFE, cancelled
    EXPIRED = "EXPIRED"  # not confirmed in time
    CANCELLED = "CANCELLED"  # /cancel or the Reject button
    VOIDED = "VOIDED"  # disarm, SAFE, kill, price drift (re-staged)

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Mandate:
    """A bounded run of a strategy. ``used_*`` grow as its orders pass the LIVE gate."""

    strategy_id: str
    params: dict[str, str]
    assets: tuple[str, ...]
    quote: str
    max_notional: Decimal
    max_orders: int
    max_loss: Decimal
    run_s: int  # how long it runs once confirmed
    ends_ns: int = 0  # set at confirmation
    start_pnl: Decimal = ZERO  # the strategy's net PnL at confirmation
    used_notional: Decimal = ZERO
    used_orders: int = 0

    def canonical(self) -> dict[str, object]:
        return {
            "kind": "MANDATE",
            "strategy_id": self.strategy_id,
            "params": dict(sorted(self.params.items())),
            "assets": list(self.assets),
            "max_notional": format(self.max_notional, "f"),
            "max_orders": self.max_orders,
            "max_loss": format(self.max_loss, "f"),
            "run_s": self.run_s,
        }

    def refusal(self, intent: Intent, notional: Decimal | None, now_ns: int, loss: Decimal) -> str | None:
        """Why this mandate does not cover ``intent`` (None: it does)."""
        if now_ns >= self.ends_ns:
            return "mandate expired"
        if intent.asset not in self.assets:
            return f"{intent.asset} is not among the mandate's assets"
        if self.used_orders >= self.max_orders:
            return f"all {self.max_orders} orders of the mandate are used"
        if loss >= self.max_loss:
            return f"strategy loss {loss} reached the mandate's max_loss {self.max_loss}"
        if notional is None:
            return "no price to count the order's notional against the mandate"
        if self.used_notional + notional > self.max_notional:
            return f"order notional {notional} would pass the mandate's remaining {self.max_notional - self.used_notional}"
        return None

    @property
    def exhausted(self) -> bool:
        return self.used_orders >= self.max_orders or self.used_notional >= self.max_notional


@dataclass(slots=True)
class Staged:
    hash: str
    source: str  # "operator" or "strategy"
    staged_by: str  # who: "@alice (1001)" or "strategy quote"
    staged_by_user: int | None
    staged_ns: int
    expires_ns: int
    arming_epoch: int | None  # the arming window it belongs to (LIVE); None when arming is not required
    intent: Intent | None = None
    mandate: Mandate | None = None
    estimate: Estimate | None = None
    risk_text: str = ""
    confirmations_needed: int = 1
    confirmed_by: list[int] = field(default_factory=list)
    status: EntryStatus = EntryStatus.PENDING
    status_reason: str = ""
    status_ns: int = 0
    client_order_id: str | None = None

    @property
    def kind(self) -> str:
        return "mandate" if self.mandate is not None else "order"

    @property
    def strategy_id(self) -> str:
        if self.mandate is not None:
            return self.mandate.strategy_id
        assert self.intent is not None
        return self.intent.strategy_id

    @property
    def short(self) -> str:
        return self.hash[:10]

    def is_live(self, now_ns: int) -> bool:
        return self.status is EntryStatus.PENDING and now_ns < self.expires_ns

    def close(self, status: EntryStatus, reason: str, now_ns: int) -> None:
        self.status, self.status_reason, self.status_ns = status, reason, now_ns


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of finding an entry by hash prefix."""

    entry: Staged | None  # the one pending entry (found) or the most recent non-pending match (explains why not)
    pending_matches: int  # pending, unexpired entries the prefix matches

    @property
    def found(self) -> bool:
        return self.pending_matches == 1 and self.entry is not None

    @property
    def ambiguous(self) -> bool:
        return self.pending_matches > 1


class IntentBook:
    def __init__(self, *, hash_fn: HashFn = intent_hash, keep_closed: int = 2000) -> None:
        self._hash_fn = hash_fn
        self._entries: OrderedDict[str, Staged] = OrderedDict()  # hash -> entry, staging order
        self._live: dict[str, Staged] = {}  # the pending and running ones (pruned lazily: a closed entry drops out)
        self._by_intent: dict[str, Staged] = {}
        self._keep_closed = keep_closed

    # ------------------------------------------------------------------ staging
    def add(self, entry_without_hash: Staged) -> Staged:
        """Give the entry its hash and keep it. ``entry.hash`` is ignored on the way in."""
        e = entry_without_hash
        payload: dict[str, object] = dict(e.mandate.canonical() if e.mandate is not None else e.intent.canonical())  # type: ignore[union-attr]
        payload.update({"staged_ns": e.staged_ns, "source": e.source, "staged_by": e.staged_by})
        for _ in range(8):
            h = self._hash_fn(payload, secrets.token_hex(16))
            if h not in self._entries:
                break
        else:  # pragma: no cover - eight SHA-256 collisions in a row
            raise RuntimeError("could not find a unique hash")
        e.hash = h
        self._entries[h] = e
        self._live[h] = e
        if e.intent is not None:
            self._by_intent[e.intent.id] = e
        self._trim()
        return e

    # ------------------------------------------------------------------ lookups
    def _live_entries(self) -> list[Staged]:
        closed = [h for h, e in self._live.items() if e.status not in (EntryStatus.PENDING, EntryStatus.ACTIVE)]
        for h in closed:
            del self._live[h]
        return list(self._live.values())

    def lookup(self, prefix: str, now_ns: int) -> Lookup:
        self.expire_due(now_ns)
        live = [e for e in self._live.values() if e.hash.startswith(prefix) and e.is_live(now_ns)]
        if len(live) == 1:
            return Lookup(live[0], 1)
        if live:
            return Lookup(None, len(live))
        matches = [e for h, e in self._entries.items() if h.startswith(prefix)]  # the rare path: explain why not
        latest = max(matches, key=lambda e: e.status_ns, default=None)
        return Lookup(latest, 0)

    def by_intent_id(self, intent_id: str) -> Staged | None:
        return self._by_intent.get(intent_id)

    def pending(self, now_ns: int) -> list[Staged]:
        self.expire_due(now_ns)
        return [e for e in self._live.values() if e.status is EntryStatus.PENDING]

    def active_mandates(self) -> list[Staged]:
        return [e for e in self._live.values() if e.status is EntryStatus.ACTIVE]

    def active_mandate(self, strategy_id: str) -> Staged | None:
        for e in self._live.values():
            if e.status is EntryStatus.ACTIVE and e.mandate is not None and e.mandate.strategy_id == strategy_id:
                return e
        return None

    def __iter__(self) -> Iterator[Staged]:
        return iter(list(self._entries.values()))

    # ------------------------------------------------------------------ closing
    def expire_due(self, now_ns: int) -> list[Staged]:
        """Pending entries past their expiry become EXPIRED; running mandates past their end become ENDED."""
        changed: list[Staged] = []
        for e in self._live_entries():
            if e.status is EntryStatus.PENDING and now_ns >= e.expires_ns:
                e.close(EntryStatus.EXPIRED, "not confirmed in time", e.expires_ns)
                changed.append(e)
            elif e.status is EntryStatus.ACTIVE and e.mandate is not None and now_ns >= e.mandate.ends_ns:
                e.close(EntryStatus.ENDED, "mandate expired", e.mandate.ends_ns)
                changed.append(e)
        return changed

    def void_all(self, reason: str, now_ns: int, *, mandates: bool = True) -> list[Staged]:
        """Void every pending entry (and end every running mandate): disarm, SAFE, kill."""
        changed: list[Staged] = []
        for e in self._live_entries():
            if e.status is EntryStatus.PENDING:
                e.close(EntryStatus.VOIDED, reason, now_ns)
                changed.append(e)
            elif mandates and e.status is EntryStatus.ACTIVE:
                e.close(EntryStatus.ENDED, reason, now_ns)
                changed.append(e)
        return changed

    def _trim(self) -> None:
        """Forget the oldest closed entries beyond ``keep_closed`` (pending and running ones are never dropped)."""
        if len(self._entries) <= self._keep_closed * 2:
            return
        closed = [h for h, e in self._entries.items() if e.status not in (EntryStatus.PENDING, EntryStatus.ACTIVE)]
        for h in closed[: max(0, len(closed) - self._keep_closed)]:
            e = self._entries.pop(h)
            self._live.pop(h, None)
            if e.intent is not None:
                self._by_intent.pop(e.intent.id, None)
