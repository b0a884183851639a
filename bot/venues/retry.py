"""Backoff with jitter, and retries for idempotent venue calls only.

A submit is never retried here: after a failure it may or may not exist at the venue, and the OMS resolves
that by looking the order up by client id. Reads and cancels are idempotent (repeating them cannot create
exposure) and are retried on ``VENUE_UNAVAILABLE`` and ``RATE_LIMITED``; the venue's Retry-After is waited
out (when it is longer than ``max_retry_after_s`` the call fails at once, carrying it, so the caller can
back off instead of blocking).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.domain.errors import ErrorCode
from bot.domain.venue import VenueError
from bot.venues.errors import RETRYABLE

log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)), at least ``floor``."""

    base_s: float
    cap_s: float
    floor_s: float = 0.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s <= 0 or self.floor_s < 0:
            raise ValueError("backoff base and cap must be positive, floor not negative")

    def ceiling(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * (2 ** min(attempt, 30)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return max(self.floor_s, rng.uniform(0.0, self.ceiling(attempt)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    backoff: Backoff
    max_retry_after_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


async def retry_idempotent(
    name: str,
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    rng: random.Random,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``call``; on a retryable VenueError wait (Retry-After or backoff) and try again, up to ``attempts``."""
    attempt = 0
    while True:
        try:
            return await call()
        except VenueError as exc:
            attempt += 1
            if exc.code not in RETRYABLE or attempt >= policy.attempts:
                raise
            wait = policy.backoff.delay(attempt - 1, rng)
            if exc.retry_after_s is not None:
                if exc.retry_after_s > policy.max_retry_after_s:
                    raise
                wait = max(wait, exc.retry_after_s)
            log.warning("%s failed (%s), retry %d/%d in %.3f s", name, exc.code, attempt, policy.attempts - 1, wait)
            await sleep(wait)


def is_retryable(code: ErrorCode) -> bool:
    return code in RETRYABLE
