"""Logging set-up: UTC timestamps, one line per event, optional JSON, every line through the redactor.

``configure`` puts ``bot.keys.redaction``'s filter on its handler: every registered secret (the Telegram token,
the venue keys, the master key) is masked in messages, arguments and tracebacks before a line is written.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from bot.keys.redaction import install_redaction


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (stdlib name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


class _JSONFormatter(_UTCFormatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # the redacting filter leaves the masked traceback here
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload)


def configure(level: str = "INFO", json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONFormatter() if json_format else _UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    install_redaction()
    root.setLevel(level)
    for noisy in ("httpx", "aiosqlite", "sqlalchemy.engine", "apscheduler", "telegram", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
