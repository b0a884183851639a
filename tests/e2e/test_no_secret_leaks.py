"""No secret anywhere it should not be: a full DRY_RUN session with Telegram, debug logging, SQL logging, operator
commands, and a forced exception carrying every secret in its message; then a scan of every log line, every
row of every table (and the SQLite files), every CLI output and every request the bot sent to the Bot API.

The secrets: the Telegram token (environment), a read key and a trade key (API key, secret, passphrase) added
through ``bot keys add``, and the master key (a key file). The forced exception proves the scan can fail: its
traceback reaches the log through the redacting filter, and the test checks that it arrived masked.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import MetaData, select

from bot import service
from bot.cli import main
from bot.config import load_settings
from bot.domain.market import Tick
from bot.domain.ports import MarketFeed
from bot.ops import logs
from tests.conftest import DB
from tests.fakes.telegram_server import FakeTelegram, SentMessage
from tests.keys_support import SecretSet, key_file_forms, new_api_key, new_key_file

OP = 1001
BOUND = 30.0


class ExplodingFeed:
    """Delegates to the real feed until ``boom`` is set, then fails with a message that carries every secret."""

    def __init__(self, inner: MarketFeed, message: str) -> None:
        self.inner, self.message = inner, message
        self.boom = asyncio.Event()

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        async for batch in self.inner.batches():
            yield batch
            if self.boom.is_set():
                raise RuntimeError(self.message)

    async def close(self) -> None:
        await self.inner.close()


async def _dump_database(db: DB, tmp_path: Path) -> tuple[str, bytes]:
    """Every row of every table as text, plus (SQLite) the raw bytes of the database files."""
    engine = db.engine()
    chunks: list[str] = []
    blobs: list[bytes] = []
    try:
        async with engine.connect() as conn:
            meta = MetaData()
            await conn.run_sync(lambda c: meta.reflect(c, schema=db.schema))
            assert "key_entries" in {t.name for t in meta.sorted_tables} and len(meta.sorted_tables) >= 10
            for table in meta.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    for value in row:
                        if isinstance(value, (bytes, memoryview)):
                            blobs.append(bytes(value))
                        chunks.append(repr(value))
    finally:
        await engine.dispose()
    if db.schema is None:
        with sqlite3.connect(tmp_path / "bot.db") as con:
            chunks.extend(con.iterdump())
        for f in tmp_path.glob("bot.db*"):
            blobs.append(f.read_bytes())
    return "\n".join(chunks), b"\0".join(blobs)


def _sent_text(fake: FakeTelegram) -> str:
    """Everything the bot sent to the Bot API: every call's parameters, every message's text and caption."""
    parts = [json.dumps({"method": c.method, "params": {k: str(v) for k, v in c.params.items()}}) for c in fake.calls]
    parts += [f"{m.text}\n{m.caption}\n{m.plain_text}" for m in fake.sent]
    return "\n".join(parts)


def test_a_dry_run_session_leaks_no_secret(
    db: DB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_env: None, isolated_logging: None
) -> None:
    key_file = new_key_file(tmp_path)
    token = f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(33)}"
    read_api, read_secret, trade_api, trade_secret = new_api_key(), new_api_key(), new_api_key(), new_api_key()
    phrase = f"trade pass {secrets.token_hex(6)}"
    values = {
        "telegram token": token, "telegram token (url)": quote(token, safe=""),
        "read api key": read_api, "read secret": read_secret, "trade api key": trade_api, "trade secret": trade_secret,
        "trade passphrase": phrase, **key_file_forms(key_file),
    }
    leaks = SecretSet(values)
    monkeypatch.setenv("BOT_TELEGRAM__TOKEN", token)
    base = (
        db.store_toml()
        + f'[keys]\nmaster_key_file = "{key_file}"\n[logging]\nlevel = "DEBUG"\n'
        + '[market.synthetic]\ninterval_ms = 2\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
        + f'[engine]\nheartbeat_interval_s = 3600\nstate_dir = "{tmp_path / "state"}"\nkill_file = "{tmp_path / "state" / "KILL"}"\n'
        + f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\n'
    )
    cfg = tmp_path / "bot.toml"
    cfg.write_text(base)

    # the operator's side: schema, keys in through stdin, list and verify
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{read_api}\n{read_secret}\n"))
    assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "read"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{trade_api}\n{trade_secret}\n{phrase}\n"))
    assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "trade", "--passphrase"]) == 0
    assert main(["keys", "list", "--config", str(cfg)]) == 0
    assert main(["keys", "verify", "--offline", "--config", str(cfg)]) == 0

    forced = (
        f"forced failure: token={token} read={read_api}/{read_secret} trade={trade_api}/{trade_secret} "
        f"master={values['master key (base64)']} hex={values['master key (hex)']} url=https://api.telegram.org/bot{token}/getMe"
    )
    sent: dict[str, str] = {}

    async def session() -> int:
        async with FakeTelegram(token=token) as fake:
            cfg.write_text(
                base + f'[telegram]\nbase_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n'
                f"allowed_chat_ids = [{OP}]\nallowed_user_ids = [{OP}]\ncommands_per_minute = 600\n"
            )
            loaded = load_settings(cfg)
            logs.configure("DEBUG")
            logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # every statement with its parameters
            svc = await service.build(loaded)
            assert svc.keys is not None and len(svc.keys.entries) == 2 and svc.control is not None
            feed = ExplodingFeed(svc.feed, forced)
            svc.feed = feed
            task = asyncio.create_task(service.run(svc, install_signals=False))
            await fake.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)

            async def command(text: str) -> SentMessage:
                since = len(fake.sent)
                fake.send_message(OP, OP, text)
                [reply] = await fake.wait_for_sent(lambda r: True, since=since, timeout=BOUND)
                return reply

            for text in ("/status", "/arm 15m", "/status", "/disarm", "/help"):
                await command(text)
            # an alert that (by a bug) carries secrets: masked before the outbox row and before the chat
            svc.control.notifier.alert("ERROR", "test:forced", f"forced alert {token} {read_secret} {trade_secret} {values['master key (base64)']}")
            [alert] = await fake.wait_for_sent(lambda r: "forced alert" in (r.plain_text or ""), timeout=BOUND)
            assert "forced alert [REDACTED] [REDACTED] [REDACTED] [REDACTED]" in (alert.plain_text or "")
            await command("/kill")
            feed.boom.set()  # the forced exception, with every secret in its message
            async with asyncio.timeout(60):
                code = await task
            sent["text"] = _sent_text(fake)
            sent["count"] = str(len(fake.sent))
            logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
            return code

    assert asyncio.run(session()) == 1  # the engine failed: the forced exception
    del forced

    captured = capsys.readouterr()
    text = captured.out + captured.err
    lines = text.splitlines()
    assert any("market feed failed" in line for line in lines), "the forced exception must reach the log"
    assert any("RuntimeError: forced failure: token=[REDACTED] read=[REDACTED]/[REDACTED] trade=[REDACTED]/[REDACTED]" in line for line in lines)
    assert "INSERT INTO" in text, "SQL logging with parameters must be part of the scan"
    assert any(" DEBUG " in line for line in lines) and len(lines) > 50
    assert leaks.found_in(text) == [], "a secret reached the logs or the CLI output"

    assert int(sent["count"]) >= 7 and "armed" in sent["text"].lower()
    assert leaks.found_in(sent["text"]) == [], "a secret reached a Telegram message"

    dump, blobs = asyncio.run(_dump_database(db, tmp_path))
    assert leaks.found_in(dump) == [], "a secret reached the database"
    assert leaks.found_in_bytes(blobs) == [], "a secret reached the database files"
    # the audit trail of this session is there (so the dump is not empty by accident)
    assert "keys add" in dump and "ARMED" in dump and "KILL_SWITCH" in dump and "'arm'" in dump and "forced alert [REDACTED]" in dump
