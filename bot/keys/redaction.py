"""Redaction: no secret reaches a log line, a traceback or an outgoing message.

Two ways to recognise a secret, because "mask it" and "do not hold it" pull in opposite directions:

* **Exact** (``Redactor.add``): the clear text is kept and every occurrence is replaced, including its
  URL-quoted, JSON-escaped and ``repr`` forms. Used for secrets the process holds anyway while they are in
  use (the Telegram token, the read key, the trade key while armed). ``add`` returns a handle; ``remove``
  forgets the text again (the trade key on disarm), so the redactor never keeps a secret alive.
* **Fingerprint** (``Redactor.add_fingerprint``): only a keyed BLAKE2b digest and the length are kept. Log
  text is scanned for runs of token characters (``A-Z a-z 0-9 + / = _ -``) and every window of a
  registered length is hashed and compared. Used for secrets the process must NOT hold: the master key (its
  base64 and hex forms) and the trade key while disarmed. Only secrets made of token characters can be
  found this way (venue API keys and secrets, base64 and hex keys are).

``RedactingFilter`` applies it to a log record's message (after ``%`` formatting), its traceback and its
stack; ``install_redaction`` puts the filter on every handler of the root logger (``bot.ops.logs.configure``
calls it) and routes uncaught exceptions through it. Anything that sends text out of the process (the
Telegram notifier, the audit store's free-text columns) can call ``redact(text)`` as a last line of defence.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

MASK = "[REDACTED]"
MIN_EXACT = 4  # shorter strings would mask ordinary text; the key store refuses such secrets anyway
MIN_FINGERPRINT = 8
LONG_RUN = 4096  # a token run longer than this is masked whole when fingerprints exist (bounded scan cost)
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{%d,}" % MIN_FINGERPRINT)


def _variants(secret: str) -> set[str]:
    """The forms a secret takes when it is printed, put in a URL, JSON-encoded, repr()-ed or HTML-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1], html.escape(secret)}
    return {f for f in forms if len(f) >= MIN_EXACT}


class Redactor:
    """Thread-safe registry of secrets and the function that masks them. Readers see immutable snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._exact: dict[int, tuple[frozenset[str], str]] = {}
        self._exact_forms: tuple[str, ...] = ()  # longest first, so a secret inside a longer one is masked whole
        self._fp_key = os.urandom(32)  # per process: the digests mean nothing outside it
        self._fingerprints: dict[int, frozenset[bytes]] = {}  # length -> digests
        self._prefilter: dict[int, frozenset[int]] = {}  # length -> hash() values: a fast first test per window
        self._fp_labels: set[str] = set()

    # ------------------------------------------------------------------ registration
    def add(self, secret: str | None, label: str) -> int | None:
        """Mask ``secret`` exactly until ``remove(handle)``. Returns the handle (None if nothing registered)."""
        if not secret:
            return None
        if len(secret) < MIN_EXACT:
            log.warning("secret %s is shorter than %d characters and cannot be masked in logs", label, MIN_EXACT)
            return None
        with self._lock:
            handle = next(self._ids)
            self._exact[handle] = (frozenset(_variants(secret)), label)
            self._rebuild_exact()
        return handle

    def remove(self, handle: int | None) -> None:
        if handle is None:
            return
        with self._lock:
            if self._exact.pop(handle, None) is not None:
                self._rebuild_exact()

    def _rebuild_exact(self) -> None:
        forms = set().union(*(f for f, _ in self._exact.values())) if self._exact else set()
        self._exact_forms = tuple(sorted(forms, key=len, reverse=True))

    def add_fingerprint(self, secret: bytes | bytearray | memoryview, label: str) -> bool:
        """Mask ``secret`` (bytes of token characters) without keeping it. False if it cannot be matched this way."""
        view = memoryview(secret)
        if len(view) < MIN_FINGERPRINT or not all(b in _TOKEN_CHARS for b in view):
            return False
        digest = hashlib.blake2b(view, key=self._fp_key, digest_size=16).digest()
        quick = hash(bytes(view))  # a transient copy: Python hashes only immutable bytes
        size = len(view)
        with self._lock:
            self._fingerprints = {**self._fingerprints, size: self._fingerprints.get(size, frozenset()) | {digest}}
            self._prefilter = {**self._prefilter, size: self._prefilter.get(size, frozenset()) | {quick}}
            self._fp_labels.add(label)
        return True

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._exact.clear()
            self._exact_forms = ()
            self._fingerprints = {}
            self._prefilter = {}
            self._fp_labels.clear()

    @property
    def empty(self) -> bool:
        return not self._exact_forms and not self._fingerprints

    def labels(self) -> list[str]:
        """What is registered (labels only), for start-up logging and tests."""
        with self._lock:
            return sorted({label for _, label in self._exact.values()} | self._fp_labels)

    # ------------------------------------------------------------------ masking
    def redact(self, text: str) -> str:
        forms, fingerprints, prefilter = self._exact_forms, self._fingerprints, self._prefilter
        for form in forms:
            if form in text:
                text = text.replace(form, MASK)
        if fingerprints:
            text = self._redact_fingerprints(text, fingerprints, prefilter)
        return text

    def _redact_fingerprints(self, text: str, fingerprints: dict[int, frozenset[bytes]], prefilter: dict[int, frozenset[int]]) -> str:
        """Every window of a registered length inside a token run: a cheap ``hash()`` test, then the keyed digest."""
        lengths = sorted(fingerprints, reverse=True)
        shortest = lengths[-1]
        spans: list[tuple[int, int]] = []
        key = self._fp_key
        for match in _TOKEN_RUN.finditer(text):
            run = match.group()
            if len(run) < shortest:
                continue
            if len(run) > LONG_RUN:
                spans.append(match.span())
                continue
            raw = run.encode()
            for length in lengths:
                quick = prefilter[length]
                for i in range(len(raw) - length + 1):
                    window = raw[i : i + length]
                    if hash(window) in quick and hashlib.blake2b(window, key=key, digest_size=16).digest() in fingerprints[length]:
                        spans.append((match.start() + i, match.start() + i + length))
        if not spans:
            return text
        spans.sort()
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out, pos = [], 0
        for start, end in merged:
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)


REDACTOR = Redactor()


def redact(text: str) -> str:
    """Mask every registered secret in ``text`` (for anything that leaves the process)."""
    return REDACTOR.redact(text)


# ---------------------------------------------------------------------------------------------- logging
class RedactingFilter(logging.Filter):
    """Formats the record's message once, masks it and its traceback/stack, and freezes the result in the record
    (``args`` cleared, ``exc_info`` replaced by the masked ``exc_text``) so later handlers see only masked text."""

    _formatter = logging.Formatter()

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the template, never the arguments
            message = f"{record.msg} [log arguments dropped: formatting failed]"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


FILTER = RedactingFilter(REDACTOR)


def _redacted_excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(REDACTOR.redact("".join(traceback.format_exception(exc_type, exc, tb))))


def _redacted_thread_hook(args: Any) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    sys.stderr.write(REDACTOR.redact(f"Exception in thread {name}:\n{text}"))


def install_redaction(secrets: Iterable[tuple[str | None, str]] = (), *, logger: logging.Logger | None = None) -> None:
    """Register ``(secret, label)`` pairs and put the redacting filter on every handler of ``logger`` (root).

    Also routes uncaught exceptions (main thread and other threads) through the redactor. Idempotent."""
    for secret, label in secrets:
        REDACTOR.add(secret, label)
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if FILTER not in handler.filters:
            handler.addFilter(FILTER)
    if sys.excepthook is not _redacted_excepthook:
        sys.excepthook = _redacted_excepthook
    if threading.excepthook is not _redacted_thread_hook:
        threading.excepthook = _redacted_thread_hook
