"""The engine's read model of the market: last L1 per asset, optional L2, a bounded recent history."""

from __future__ import annotations

from collections import deque

from bot.domain.market import Book, Tick


class MarketState:
    def __init__(self, history: int = 600) -> None:
        self.last: dict[str, Tick] = {}
        self.books: dict[str, Book] = {}
        self.last_update_mono_ns: dict[str, int] = {}
        self._history_len = history
        self.history: dict[str, deque[Tick]] = {}

    def update(self, tick: Tick, mono_ns: int) -> None:
        asset = tick.asset
        self.last[asset] = tick
        self.last_update_mono_ns[asset] = mono_ns
        try:
            self.history[asset].append(tick)
        except KeyError:
            self.history[asset] = deque((tick,), maxlen=self._history_len)

    def update_book(self, book: Book) -> None:
        self.books[book.asset] = book
