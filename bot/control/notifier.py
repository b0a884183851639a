"""Operator alerts through the outbox (implements the ``Notifier`` port).

``alert(severity, key, text)`` is synchronous and cheap: it decides (deduplication, throttling) and buffers
one outbox row per alert chat in the audit store, which writes them in the same transaction as the audit rows
of the event that raised the alert. Delivery is ``OutboxDelivery``'s job.

- Deduplication: an alert whose ``key`` was alerted less than ``dedup_s`` ago is suppressed and counted; the
  next alert of that key says how many were suppressed.
- Throttling: at most ``info_per_minute`` INFO alerts per minute (fills can be many); WARNING, ERROR and
  CRITICAL are never throttled, only deduplicated.
``text`` is HTML: callers escape what they interpolate (``bot.control.fmt.esc``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from bot.domain.ports import Clock
from bot.keys.redaction import redact

NS = 1_000_000_000
SEVERITIES = ("INFO", "WARNING", "ERROR", "CRITICAL")
ICON = {"INFO": "ℹ️", "WARNING": "⚠️", "ERROR": "❗", "CRITICAL": "🛑"}


class OutboxSink(Protocol):
    def add_outbox(self, row: dict[str, Any]) -> None: ...


class OutboxNotifier:
    def __init__(self, sink: OutboxSink, chat_ids: Sequence[int], clock: Clock, *, dedup_s: int, info_per_minute: int) -> None:
        self._sink = sink
        self.chat_ids = tuple(chat_ids)
        self._clock = clock
        self._dedup_ns = dedup_s * NS
        self._info_per_minute = info_per_minute
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._info_times: deque[int] = deque()
        self._info_suppressed = 0
        self.raised = 0
        self.suppressed = 0

    def alert(self, severity: str, key: str, text: str) -> None:
        text = redact(text)  # no registered secret reaches the outbox table or a chat (bot.keys.redaction)
        sev = severity.upper() if severity.upper() in SEVERITIES else "WARNING"
        now = self._clock.monotonic_ns()
        last = self._last.get(key)
        if last is not None and now - last < self._dedup_ns:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            self.suppressed += 1
            return
        notes = []
        if sev == "INFO":
            times = self._info_times
            while times and now - times[0] >= 60 * NS:
                times.popleft()
            if len(times) >= self._info_per_minute:
                self._info_suppressed += 1
                self.suppressed += 1
                return
            times.append(now)
            if self._info_suppressed:
                notes.append(f"+{self._info_suppressed} info alert(s) suppressed")
                self._info_suppressed = 0
        self._last[key] = now
        repeated = self._suppressed.pop(key, 0)
        if repeated:
            notes.append(f"repeated {repeated} more time(s)")
        body = f"{ICON[sev]} {text}"
        if notes:
            body += f"\n<i>({'; '.join(notes)})</i>"
        self.raised += 1
        for chat_id in self.chat_ids:
            self._sink.add_outbox({"severity": sev, "dedup_key": key[:128], "text": body, "chat_id": chat_id})


class LogNotifier:
    """Without Telegram, alerts go to the log (nothing would ever deliver outbox rows)."""

    def __init__(self, logger_name: str = "bot.alerts") -> None:
        self._log = logging.getLogger(logger_name)
        self.raised = 0

    def alert(self, severity: str, key: str, text: str) -> None:
        self.raised += 1
        level = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}.get(
            severity.upper(), logging.WARNING
        )
        self._log.log(level, "alert %s: %s", key, text)
