"""Per-user command budget, on the ``limits`` library.

A moving window of ``per_minute`` commands per user: a burst of up to ``per_minute`` commands is allowed, then
one more for every command that leaves the one-minute window (a token bucket whose capacity equals its refill
per minute). ``limits`` measures time with the wall clock; the budget is about pacing, not about a trading
decision, so it does not follow the injected clock.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class CommandRateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, user_id: int) -> bool:
        """Spend one command of the user's budget; False when the budget is used up (nothing spent)."""
        return self._limiter.hit(self.item, "cmd", str(user_id))

    def retry_after_s(self, user_id: int) -> int:
        stats = self._limiter.get_window_stats(self.item, "cmd", str(user_id))
        return max(1, math.ceil(stats.reset_time - time.time()))
