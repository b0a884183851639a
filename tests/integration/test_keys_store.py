"""The key store on SQLite and PostgreSQL: add/list/remove, one key per venue and kind, no mixed master keys,
start-up errors for a wrong master key or a tampered row, atomic master-key rotation (also when killed midway)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import service
from bot.config import load_settings
from bot.domain.credentials import KeyScope
from bot.engine.clock import ManualClock
from bot.keys.errors import KeyExists, KeyNotFound, TamperedEntry, WrongMasterKey
from bot.keys.master import FileSource, MasterKey
from bot.keys.sealing import SealedEntry, credentials_from, open_into, wipe
from bot.keys.store import KeyStore
from bot.store import migrate
from bot.store.models import KeyEntryRow
from tests.conftest import DB
from tests.keys_support import new_api_key, new_key_file

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


async def _store(db: DB) -> KeyStore:
    engine = db.engine()
    await migrate.upgrade(engine)
    return KeyStore(engine, ManualClock(T0).now_ns)


def _opens(master: MasterKey, entry: SealedEntry) -> bool:
    try:
        wipe(open_into(master, entry))
        return True
    except (WrongMasterKey, TamperedEntry):
        return False


async def test_add_list_touch_remove(db: DB) -> None:
    store = await _store(db)
    master = MasterKey.generate()
    api, secret = new_api_key(), new_api_key()
    try:
        added = await store.add(master, "binance", KeyScope.READ, api, secret, key_id="r1")
        await store.add(master, "binance", KeyScope.TRADE, new_api_key(), new_api_key(), "pass phrase")
        entries = await store.entries()
        assert [(e.venue, e.kind, e.key_id == "r1") for e in entries] == [("binance", KeyScope.READ, True), ("binance", KeyScope.TRADE, False)]
        read = entries[0]
        assert read == added and read.api_key_masked == f"{api[:4]}...{api[-4:]}" and read.last_used_at is None
        assert read.created_at is not None and read.created_at.year == 2026
        buf = open_into(master, read)
        creds = credentials_from(buf, read)
        wipe(buf)
        assert creds.api_key.get_secret_value() == api and creds.secret.get_secret_value() == secret
        await store.touch(read, T0 + 5_000_000_000)
        got = await store.get("binance", KeyScope.READ)
        assert got is not None and got.last_used_at is not None and got.last_used_at.second == 5
        removed = await store.remove("binance", KeyScope.READ)
        assert removed.key_id == "r1" and await store.get("binance", KeyScope.READ) is None
        with pytest.raises(KeyNotFound, match="no read key for binance"):
            await store.remove("binance", KeyScope.READ)
        # nothing in the table is a clear secret
        async with store.db.connect() as conn:
            for row in (await conn.execute(select(KeyEntryRow.__table__))).all():
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    assert api.encode() not in blob and secret.encode() not in blob
    finally:
        await store.db.dispose()


async def test_one_key_per_venue_and_kind_and_atomic_replace(db: DB) -> None:
    store = await _store(db)
    master = MasterKey.generate()
    try:
        first = await store.add(master, "binance", KeyScope.READ, new_api_key(), new_api_key(), key_id="old")
        with pytest.raises(KeyExists, match="--replace"):
            await store.add(master, "binance", KeyScope.READ, new_api_key(), new_api_key(), key_id="new")
        assert [e.key_id for e in await store.entries()] == ["old"]
        new_api = new_api_key()
        await store.add(master, "binance", KeyScope.READ, new_api, new_api_key(), key_id="new", replace=True)
        entries = await store.entries()
        assert [e.key_id for e in entries] == ["new"] and entries[0].api_key_masked != first.api_key_masked
    finally:
        await store.db.dispose()


async def test_adding_under_another_master_key_is_refused(db: DB) -> None:
    store = await _store(db)
    a, b = MasterKey.generate(), MasterKey.generate()
    try:
        await store.add(a, "binance", KeyScope.READ, new_api_key(), new_api_key())
        with pytest.raises(WrongMasterKey, match="refusing to mix master keys"):
            await store.add(b, "binance", KeyScope.TRADE, new_api_key(), new_api_key())
        assert [e.kind for e in await store.entries()] == [KeyScope.READ]  # rolled back
    finally:
        await store.db.dispose()


async def test_rotation_reseals_everything_and_the_old_key_stops_working(db: DB) -> None:
    store = await _store(db)
    old, new = MasterKey.generate(), MasterKey.generate()
    try:
        for venue in ("binance", "kraken"):
            for kind in KeyScope:
                await store.add(old, venue, kind, new_api_key(), new_api_key())
        before = {e.label: e for e in await store.entries()}
        assert await store.rotate_master(old, new) == 4
        after = await store.entries()
        assert {e.master_key_id for e in after} == {new.key_id}
        for e in after:
            assert _opens(new, e) and not _opens(old, e)
            b = open_into(new, e)
            a = open_into(old, before[e.label])
            assert b == a  # same credentials, new seal
            wipe(a)
            wipe(b)
        with pytest.raises(Exception, match="is the current one"):
            await store.rotate_master(new, new)
    finally:
        await store.db.dispose()


async def test_rotation_with_the_wrong_old_key_changes_nothing(db: DB) -> None:
    store = await _store(db)
    right, wrong, new = MasterKey.generate(), MasterKey.generate(), MasterKey.generate()
    try:
        await store.add(right, "binance", KeyScope.READ, new_api_key(), new_api_key())
        with pytest.raises(WrongMasterKey):
            await store.rotate_master(wrong, new)
        assert all(_opens(right, e) for e in await store.entries())
    finally:
        await store.db.dispose()


ROTATE_AND_DIE = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from bot.keys.master import FileSource
    from bot.keys.store import KeyStore
    from bot.store.db import create_engine

    url, schema, old, new = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4]

    async def main():
        db = create_engine(url, schema=schema)
        store = KeyStore(db, time.time_ns)
        with FileSource(old).load() as o, FileSource(new).load() as n:
            def die(done, total):
                if done == 2:          # two of four entries re-sealed, not committed: the power goes out
                    sys.stdout.write(f"dying at {done}/{total}\\n"); sys.stdout.flush()
                    os._exit(17)
            await store.rotate_master(o, n, on_progress=die)

    asyncio.run(main())
    """
)


async def test_rotate_master_interrupted_midway_leaves_every_entry_readable(db: DB, tmp_path: Path) -> None:
    store = await _store(db)
    old_path, new_path = new_key_file(tmp_path, "old.key"), new_key_file(tmp_path, "new.key")
    try:
        with FileSource(old_path).load() as old:
            for venue in ("binance", "kraken"):
                for kind in KeyScope:
                    await store.add(old, venue, kind, new_api_key(), new_api_key())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ROTATE_AND_DIE, db.url, db.schema or "", str(old_path), str(new_path),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode == 17, err.decode()
        assert out.decode().strip() == "dying at 2/4"
        entries = await store.entries()
        assert len(entries) == 4
        with FileSource(old_path).load() as old, FileSource(new_path).load() as new:
            for e in entries:
                assert _opens(old, e) or _opens(new, e), f"{e.label} opens with neither key"
            assert all(_opens(old, e) for e in entries)  # one transaction: nothing of it was committed
            # the rotation can simply be run again
            assert await store.rotate_master(old, new) == 4
            assert all(_opens(new, e) for e in await store.entries())
    finally:
        await store.db.dispose()


# ---------------------------------------------------------------------------------------------- start-up
def _config(db: DB, tmp_path: Path, key_file: Path, venue: str = "sim") -> Path:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        db.store_toml()
        + f'[keys]\nmaster_key_file = "{key_file}"\n'
        + '[market.synthetic]\ninterval_ms = 0\nmax_ticks = 50\nstart_ts = "2026-01-01T00:00:00Z"\n'
    )
    return cfg


async def _seed(db: DB, key_file: Path) -> KeyStore:
    store = await _store(db)
    with FileSource(key_file).load() as master:
        await store.add(master, "binance", KeyScope.READ, new_api_key(), new_api_key(), key_id="r1")
        await store.add(master, "binance", KeyScope.TRADE, new_api_key(), new_api_key(), key_id="t1")
    return store


async def test_startup_verifies_every_entry(db: DB, tmp_path: Path, isolated_logging: None) -> None:
    key_file = new_key_file(tmp_path)
    store = await _seed(db, key_file)
    await store.db.dispose()
    svc = await service.build(load_settings(_config(db, tmp_path, key_file), env={}))
    try:
        assert svc.keys is not None and svc.keys.master_key_id is not None and len(svc.keys.entries) == 2
        assert svc.keys.read is None and svc.keys.trade_entry is None  # the simulated venue needs no keys
    finally:
        await svc.db.dispose()


async def test_startup_with_the_wrong_master_key_is_refused(db: DB, tmp_path: Path, isolated_logging: None) -> None:
    store = await _seed(db, new_key_file(tmp_path, "right.key"))
    await store.db.dispose()
    wrong = new_key_file(tmp_path, "wrong.key")
    with pytest.raises(service.StartupError, match=r"key store: key entry binance/read/r1 is encrypted under master key mk-\w+, but the master key from key file"):
        await service.build(load_settings(_config(db, tmp_path, wrong), env={}))


@pytest.mark.parametrize("tamper", ["flip", "swap"])
async def test_startup_with_a_tampered_row_is_refused(db: DB, tmp_path: Path, tamper: str, isolated_logging: None) -> None:
    key_file = new_key_file(tmp_path)
    store = await _seed(db, key_file)
    t = KeyEntryRow.__table__
    async with store.db.begin() as conn:
        rows = {r.kind: r for r in (await conn.execute(select(t))).all()}
        if tamper == "flip":
            blob = bytearray(rows["trade"].ciphertext)
            blob[len(blob) // 2] ^= 0x80
            await conn.execute(update(t).where(t.c.id == rows["trade"].id).values(ciphertext=bytes(blob)))
        else:  # an attacker with database access moves the trade secret into the read row
            await conn.execute(update(t).where(t.c.id == rows["read"].id).values(ciphertext=rows["trade"].ciphertext))
            await conn.execute(update(t).where(t.c.id == rows["trade"].id).values(ciphertext=rows["read"].ciphertext))
    await store.db.dispose()
    with pytest.raises(service.StartupError, match=r"key store: key entry binance/(read/r1|trade/t1) fails authentication"):
        await service.build(load_settings(_config(db, tmp_path, key_file), env={}))


async def test_startup_with_a_loose_key_file_is_refused(db: DB, tmp_path: Path, isolated_logging: None) -> None:
    key_file = new_key_file(tmp_path)
    store = await _seed(db, key_file)
    await store.db.dispose()
    key_file.chmod(0o640)
    with pytest.raises(service.StartupError, match="chmod 600"):
        await service.build(load_settings(_config(db, tmp_path, key_file), env={}))
