"""Delivery of outbox rows to Telegram: in order, with retries and backoff, honouring flood control.

- Rows go out strictly in id order: delivery stops at the first row that is not due yet or fails for a
  transient reason (network down, timeout, 5xx), so a later alert never overtakes an earlier one.
- HTTP 429 (``RetryAfter``): nothing is sent before ``retry_after`` has passed (it is written to the rows, so
  a restart honours it too).
- Transient errors back off exponentially (0.5 s, 1 s, 2 s ... up to ``retry_max_s``).
- A permanent error for one row (bad request, bot blocked in that chat) marks that row ``dropped`` with the
  error, logs it, and delivery goes on with the next row.
- A row without a chat (written by ops: the daily summary, incident reports) is fanned out into one row per
  alert chat first, so each chat's delivery is tracked on its own.
- A row is marked ``sent`` right after the Bot API accepted it. The only window for a duplicate is a crash or
  an ambiguous timeout between the two; every alert carries its outbox id (``#123``) so a repeat is visible.

The worker sleeps until woken (the audit store tells it when a flush committed outbox rows) or until the next
retry is due; it never polls the table on a timer while there is nothing to do.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram.error import BadRequest, ChatMigrated, EndPointNotFound, Forbidden, RetryAfter

from bot.store.outbox import OutboxItem, OutboxRepo
from bot.store.types import ns_to_datetime

log = logging.getLogger(__name__)
NS = 1_000_000_000

Sender = Callable[[OutboxItem], Awaitable[None]]


def retry_after_s(exc: RetryAfter) -> float:
    value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value))


class OutboxDelivery:
    def __init__(
        self,
        repo: OutboxRepo,
        sender: Sender,
        *,
        now_ns: Callable[[], int],
        retry_max_s: float,
        chat_ids: Sequence[int] = (),
        retry_base_s: float = 0.5,
        batch: int = 50,
    ) -> None:
        self.repo = repo
        self.chat_ids = tuple(chat_ids)
        self.sender = sender
        self._now_ns = now_ns
        self.retry_max_s = retry_max_s
        self.retry_base_s = min(retry_base_s, retry_max_s)
        self.batch = batch
        self._wake = asyncio.Event()
        self._pause_until = 0.0  # loop time before which nothing is attempted
        self._failures = 0  # consecutive transient failures (backoff exponent)
        self._lock = asyncio.Lock()
        self.sent = 0
        self.dropped = 0
        self.transient_failure = asyncio.Event()  # set on every failed attempt that will be retried (tests, health)
        self.marked = asyncio.Event()  # set whenever a row's state was written (sent, dropped, retry)

    def wake(self, *_: object) -> None:
        self._wake.set()

    def _backoff(self) -> float:
        delay = min(self.retry_max_s, self.retry_base_s * (2 ** min(self._failures, 30)))
        self._failures += 1
        return delay

    async def deliver_due(self) -> float | None:
        """One pass. Returns the seconds until the next pass is due, or None when nothing is waiting.

        Passes never overlap (the worker, the shutdown drain and any other caller share one lock): two
        overlapping passes would both send the row neither had marked yet."""
        async with self._lock:
            return await self._pass()

    async def _pass(self) -> float | None:
        loop = asyncio.get_running_loop()
        wait = self._pause_until - loop.time()
        if wait > 0:
            return wait
        while True:
            items = await self.repo.pending(self.batch)
            if not items:
                return None
            for item in items:
                now = ns_to_datetime(self._now_ns())
                if item.next_attempt_at is not None and item.next_attempt_at > now:
                    return max(0.0, (item.next_attempt_at - now).total_seconds())
                if item.chat_id is None:
                    await self.repo.fan_out(item, self.chat_ids)  # one row per alert chat, delivered after this pass
                    self.marked.set()
                    break
                try:
                    await self.sender(item)
                except RetryAfter as exc:
                    delay = retry_after_s(exc)
                    until = ns_to_datetime(self._now_ns() + int(delay * NS))
                    await self.repo.mark_retry(item.id, until, f"flood control: retry after {delay:g}s")
                    await self.repo.defer_all(until)
                    self.marked.set()
                    self._pause_until = loop.time() + delay
                    log.warning("outbox: Telegram flood control, next attempt in %.1fs", delay)
                    return delay
                except (BadRequest, Forbidden, ChatMigrated, EndPointNotFound) as exc:
                    await self._drop(item, f"{type(exc).__name__}: {exc}")
                    continue
                except Exception as exc:  # network down, timeout, 5xx, token trouble: keep the row, back off
                    delay = self._backoff()
                    until = ns_to_datetime(self._now_ns() + int(delay * NS))
                    await self.repo.mark_retry(item.id, until, f"{type(exc).__name__}: {exc}")
                    self.marked.set()
                    self._pause_until = loop.time() + delay
                    self.transient_failure.set()
                    log.warning("outbox: delivery of #%d failed (%s: %s), retrying in %.1fs", item.id, type(exc).__name__, exc, delay)
                    return delay
                await self.repo.mark_sent(item.id, ns_to_datetime(self._now_ns()))
                self._failures = 0
                self.sent += 1
                self.marked.set()
            else:
                if len(items) < self.batch:
                    return None

    async def _drop(self, item: OutboxItem, error: str) -> None:
        await self.repo.mark_dropped(item.id, error)
        self.dropped += 1
        self.marked.set()
        log.error("outbox: alert #%d to chat %s dropped permanently: %s", item.id, item.chat_id, error)

    async def settled(self) -> None:
        """Wait until no row is pending (tests and diagnostics)."""
        while True:
            self.marked.clear()
            if await self.repo.pending_count() == 0:
                return
            await self.marked.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set."""
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    delay = await self.deliver_due()
                except Exception:
                    log.exception("outbox: delivery pass failed (database?)")
                    delay = self._backoff()
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waker, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                # a wake-up during a flood-control or backoff pause waits for the pause to end
                pause = self._pause_until - asyncio.get_running_loop().time()
                if pause > 0 and not stop.is_set():
                    await asyncio.wait({stopper}, timeout=pause)
        finally:
            stopper.cancel()

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: deliver what is due, for at most ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    delay = await self.deliver_due()
                    if delay is None:
                        return
                    await asyncio.sleep(min(delay, timeout_s))
        except TimeoutError:
            log.warning("outbox: %d alert(s) still pending at shutdown; they go out at the next start", await self.repo.pending_count())
