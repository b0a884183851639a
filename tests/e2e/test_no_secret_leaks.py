"""No secret anywhere it should not be: a full DRY_RUN session, debug logging, SQL logging, a forced exception
carrying every secret in its message, then a scan of every log line, the whole database and the CLI output.

The secrets: the Telegram token (environment), a read key and a trade key (API key, secret, passphrase) added
through ``bot keys add``, and the master key (a key file). The forced exception proves the scan can fail: its
traceback reaches the log through the redacting filter, and the test checks it arrived masked.
"""

from __future__ import annotations

import asyncio
import io
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
from tests.keys_support import SecretSet, key_file_forms, new_api_key, new_key_file


class ExplodingFeed:
    """Delegates to the real feed, then fails with a message that carries every secret."""

    def __init__(self, inner: MarketFeed, after: int, message: str) -> None:
        self.inner, self.after, self.message = inner, after, message

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        n = 0
        async for batch in self.inner.batches():
            yield batch
            n += 1
            if n == self.after:
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
        path = tmp_path / "bot.db"
        with sqlite3.connect(path) as con:
            chunks.extend(con.iterdump())
        for f in tmp_path.glob("bot.db*"):
            blobs.append(f.read_bytes())
    return "\n".join(chunks), b"\0".join(blobs)


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
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        db.store_toml()
        + f'[keys]\nmaster_key_file = "{key_file}"\n[logging]\nlevel = "DEBUG"\n'
        + '[market.synthetic]\ninterval_ms = 0\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n[engine]\nheartbeat_interval_s = 3600\n'
    )

    # the operator's side: schema, keys in through stdin, list and verify
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{read_api}\n{read_secret}\n"))
    assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "read"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{trade_api}\n{trade_secret}\n{phrase}\n"))
    assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "trade", "--passphrase"]) == 0
    assert main(["keys", "list", "--config", str(cfg)]) == 0
    assert main(["keys", "verify", "--offline", "--config", str(cfg)]) == 0

    # the service: debug logging plus every SQL statement with its parameters
    loaded = load_settings(cfg)
    logs.configure("DEBUG")
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    forced = (
        f"forced failure: token={token} read={read_api}/{read_secret} trade={trade_api}/{trade_secret} "
        f"master={values['master key (base64)']} hex={values['master key (hex)']} url=https://api.telegram.org/bot{token}/getMe"
    )

    async def session() -> int:
        svc = await service.build(loaded)
        assert svc.keys is not None and len(svc.keys.entries) == 2
        svc.feed = ExplodingFeed(svc.feed, after=5, message=forced)
        assert svc.arming is not None and svc.safety is not None
        svc.arming.arm(60, "operator")  # arming and a kill are audited; no secret may ride along
        svc.safety.kill("test kill")
        async with asyncio.timeout(60):
            return await service.run(svc, install_signals=False)

    assert asyncio.run(session()) == 1  # the engine failed: the forced exception
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    captured = capsys.readouterr()
    text = captured.out + captured.err
    lines = text.splitlines()
    assert any("market feed failed" in line for line in lines), "the forced exception must reach the log"
    assert any("RuntimeError: forced failure: token=[REDACTED] read=[REDACTED]/[REDACTED] trade=[REDACTED]/[REDACTED]" in line for line in lines)
    assert "INSERT INTO" in text, "SQL logging with parameters must be part of the scan"
    assert sum(1 for line in lines if "DEBUG" in line) > 0 and len(lines) > 50
    assert leaks.found_in(text) == [], "a secret reached the logs or the CLI output"

    dump, blobs = asyncio.run(_dump_database(db, tmp_path))
    assert leaks.found_in(dump) == [], "a secret reached the database"
    assert leaks.found_in_bytes(blobs) == [], "a secret reached the database files"
    # the audit trail of this session is there (so the dump is not empty by accident)
    assert "keys add" in dump and "ARMED" in dump and "KILL_SWITCH" in dump
