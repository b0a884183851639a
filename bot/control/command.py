"""What a command handler receives and returns, independent of Telegram."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.engine.loop import Engine

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sender:
    user_id: int
    chat_id: int
    name: str  # "@alice" or the first name

    @property
    def label(self) -> str:
        return f"{self.name} ({self.user_id})"


Buttons = list[list[tuple[str, str]]]  # rows of (label, callback data)


@dataclass(slots=True)
class Reply:
    html: str
    buttons: Buttons | None = None
    outcome: str = "ok"  # ok | refused | error (audited)
    failure: str | None = None  # counts toward the sender's lockout when set
    photo: bytes | None = None
    detail: str = ""  # for the audit row (no secrets)
    extra: list["Reply"] = field(default_factory=list)  # further messages (e.g. a re-staged intent)


def refused(html: str, failure: str | None = None, detail: str = "") -> Reply:
    return Reply(html, outcome="refused", failure=failure, detail=detail or html)


class EngineTimeout(Exception):
    """The engine did not run the call in time (its loop is busy or stopped)."""

    def __init__(self, started: bool) -> None:
        super().__init__("engine did not answer in time")
        self.started = started


async def in_engine(engine: Engine, fn: Callable[[], T | Awaitable[T]], timeout_s: float) -> T:
    """``engine.call`` bounded in time. A call that has not started when the time is up never runs."""
    state = {"abandoned": False, "started": False}

    def guarded() -> Any:
        if state["abandoned"]:
            raise EngineTimeout(False)
        state["started"] = True
        return fn()

    try:
        async with asyncio.timeout(timeout_s):
            return await engine.call(guarded)
    except TimeoutError:
        state["abandoned"] = True
        raise EngineTimeout(bool(state["started"])) from None
