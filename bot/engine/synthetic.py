"""A deterministic synthetic L1 feed: a seeded random walk on the tick grid. No network, no files."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

from bot.domain.market import Tick


class SyntheticFeed:
    def __init__(
        self,
        assets: Sequence[str],
        *,
        seed: int,
        start_price: Decimal,
        tick_size: Decimal,
        size: Decimal,
        step_ticks: int = 50,
        spread_ticks: int = 1,
        start_ns: int,
        period_ns: int = 100_000_000,
        interval_s: float = 0.0,
        max_ticks: int = 0,
        batch: int = 256,
        venue: str = "sim",
    ) -> None:
        if start_price <= 0 or tick_size <= 0:
            raise ValueError("start_price and tick_size must be positive")
        self.assets = tuple(assets)
        self._rng = random.Random(seed)
        self._tick = tick_size
        self._size = size
        self._step = step_ticks
        self._spread = spread_ticks
        self._level = {a: int(start_price / tick_size) for a in self.assets}
        self._ts = start_ns
        self._period = period_ns
        self._interval = interval_s
        self._max = max_ticks
        self._batch = 1 if interval_s > 0 else batch
        self._venue = venue
        self._closed = asyncio.Event()
        self.emitted = 0

    def _next(self, asset: str) -> Tick:
        level = self._level[asset] + self._rng.randint(-self._step, self._step)
        level = max(level, self._spread + 1)
        self._level[asset] = level
        bid = Decimal(level) * self._tick
        ask = Decimal(level + self._spread) * self._tick
        self._ts += self._period
        self.emitted += 1
        return Tick(asset, bid, self._size, ask, self._size, self._ts, self._ts, self.emitted, self._venue)

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        assets = self.assets
        n_assets = len(assets)
        while not self._closed.is_set():
            out: list[Tick] = []
            for _ in range(self._batch):
                if self._max and self.emitted >= self._max:
                    break
                out.append(self._next(assets[self.emitted % n_assets]))
            if not out:
                return
            yield out
            if self._interval > 0:
                try:
                    await asyncio.wait_for(self._closed.wait(), self._interval)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)  # let commands and signals in between batches

    async def close(self) -> None:
        self._closed.set()
