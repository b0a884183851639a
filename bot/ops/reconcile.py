"""The reconciliation job (spec 4.7.3): every ``oms.reconcile_interval_s`` the OMS's reconciler fetches the
venue's state (REST, outside the engine loop) and applies it inside the engine loop.

The decisions (grace window, threshold, SAFE on a persistent mismatch) belong to the OMS's ``Reconciler``.
This job adds what only the schedule can know: a fetch that hangs is abandoned after ``timeout_s`` (or the
next run could never start), and ``max_failures`` failed runs in a row put the bot in SAFE through the
injected ``on_safe`` (fail closed: a bot that cannot reconcile must not keep trading).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.domain.errors import ErrorCode

log = logging.getLogger(__name__)


class Reconciler(Protocol):
    """What the OMS provides (docs/interfaces.md "Reconciler")."""

    async def fetch(self, venue: Any) -> Any:
        """REST snapshot of the venue's positions, balances and open orders (runs outside the engine loop)."""

    def apply(self, snapshot: Any) -> Any:
        """Compare with internal state and act (runs inside the engine loop)."""


RunInEngine = Callable[[Callable[[], Any]], Awaitable[Any]]
OnSafe = Callable[[ErrorCode, str], Any]


class ReconcileJob:
    def __init__(
        self,
        reconciler: Reconciler,
        venue: Any,
        run_in_engine: RunInEngine,
        *,
        timeout_s: float,
        max_failures: int,
        on_safe: OnSafe | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.venue = venue
        self.run_in_engine = run_in_engine
        self.timeout_s = timeout_s
        self.max_failures = max_failures
        self.on_safe = on_safe
        self.consecutive_failures = 0
        self.runs = 0
        self.last_result: Any = None

    async def __call__(self) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                snapshot = await self.reconciler.fetch(self.venue)
            result = await asyncio.wait_for(self.run_in_engine(lambda: self.reconciler.apply(snapshot)), self.timeout_s)
        except Exception as exc:
            self.consecutive_failures += 1
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"reconciliation did not finish within {self.timeout_s:g} s")
            if self.consecutive_failures == self.max_failures and self.on_safe is not None:
                reason = f"reconciliation failed {self.consecutive_failures} times in a row ({type(exc).__name__}: {exc})"
                log.error("entering SAFE: %s", reason)
                await _maybe_await(self.on_safe(ErrorCode.VENUE_UNAVAILABLE, reason))
            raise exc from None
        self.consecutive_failures = 0
        self.runs += 1
        self.last_result = result
        return result


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value
