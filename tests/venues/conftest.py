"""Fixtures of the venue tests: a FakeBinance with a trade key and a read-only key of one account."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import READ_KEY, READ_SECRET, TRADE_KEY, TRADE_SECRET, Harness, make_harness


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as venue:
        venue.add_key(TRADE_KEY, TRADE_SECRET, can_trade=True)
        venue.add_key(READ_KEY, READ_SECRET, can_trade=False)
        venue.set_balance("USDT", "1000")
        venue.set_balance("BTC", "1")
        venue.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        venue.set_book("ETH/USDT", "2000.00", "1", "2000.01", "1")
        yield venue


@pytest.fixture
async def harness(fake: FakeBinance) -> AsyncIterator[Harness]:
    h = make_harness(fake)
    await h.live.start()
    await fake.wait_for_ws_clients(2)  # market + user streams connected
    try:
        yield h
    finally:
        await h.live.stop("test end")
