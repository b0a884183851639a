from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.control.harness import Harness


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (the control plane must stop cleanly)."""
    yield
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, f"tasks still running: {leftovers}"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A LIVE control plane with a market price of about 60,000 USDT."""
    async with Harness(tmp_path) as harness:
        await harness.tick("60000", "60000.02")
        yield harness
