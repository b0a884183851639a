"""The key store: sealed venue credentials in the ``key_entries`` table (never in the TOML configuration).

At most one entry per (venue, kind): a venue has one read-only key and one trade key. Every entry is sealed
under the same master key; ``add`` refuses to mix keys and ``rotate_master`` re-seals every entry in one
transaction, so an interrupted rotation leaves the old key in force for all of them.

Concurrency: on PostgreSQL each writing operation takes ``LOCK TABLE key_entries IN EXCLUSIVE MODE`` (reads
by a running service still proceed); on SQLite the database's single writer serialises them. Each writer
re-checks the invariants after its writes, inside its transaction, and rolls back if another writer slipped
in between (``StoreChanged``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain.credentials import KeyScope
from bot.keys.errors import InvalidKeyInput, KeyExists, KeyNotFound, MasterKeyError, StoreChanged, TamperedEntry, WrongMasterKey
from bot.keys.master import MasterKey
from bot.keys.sealing import SealedEntry, encode_plaintext, mask_api_key, open_into, seal, wipe
from bot.store.models import KeyEntryRow
from bot.store.types import ns_to_datetime

log = logging.getLogger(__name__)

T = KeyEntryRow.__table__
VENUE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ProgressHook = Callable[[int, int], object]


def check_venue(venue: str) -> str:
    if not VENUE_RE.match(venue):
        raise InvalidKeyInput(f"venue {venue!r}: use the exchange's id in lower case, e.g. binance")
    return venue


def check_key_id(key_id: str) -> str:
    if not KEY_ID_RE.match(key_id):
        raise InvalidKeyInput(f"key id {key_id!r}: 1-64 letters, digits, '.', '_' or '-'")
    return key_id


def _entry(row: Any) -> SealedEntry:
    try:
        kind = KeyScope(row.kind)
    except ValueError:
        raise TamperedEntry(f"key entry {row.venue}/{row.kind}/{row.key_id}: unknown kind {row.kind!r}") from None
    return SealedEntry(
        venue=row.venue,
        kind=kind,
        key_id=row.key_id,
        api_key_masked=row.api_key_masked,
        master_key_id=row.master_key_id,
        ciphertext=bytes(row.ciphertext),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE key_entries IN EXCLUSIVE MODE"))


class KeyStore:
    def __init__(self, db: AsyncEngine, now_ns: Callable[[], int]) -> None:
        self.db = db
        self._now_ns = now_ns

    # ------------------------------------------------------------------ reads
    async def entries(self) -> list[SealedEntry]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(T).order_by(T.c.venue, T.c.kind, T.c.key_id))).all()
        return [_entry(r) for r in rows]

    async def get(self, venue: str, kind: KeyScope) -> SealedEntry | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(T).where(T.c.venue == venue, T.c.kind == kind.value))).first()
        return _entry(row) if row is not None else None

    # ------------------------------------------------------------------ writes
    async def add(
        self,
        master: MasterKey,
        venue: str,
        kind: KeyScope,
        api_key: str,
        secret: str,
        passphrase: str | None = None,
        *,
        key_id: str | None = None,
        replace: bool = False,
    ) -> SealedEntry:
        """Seal and store a credential. Refuses a second entry for (venue, kind) unless ``replace`` (an atomic swap)."""
        check_venue(venue)
        key_id = check_key_id(key_id) if key_id else f"{kind.value}-{secrets.token_hex(4)}"
        masked = mask_api_key(api_key)
        plaintext = encode_plaintext(api_key, secret, passphrase)
        try:
            ciphertext = seal(master, venue, kind, key_id, masked, plaintext)
        finally:
            wipe(plaintext)
        now = ns_to_datetime(self._now_ns())
        async with self.db.begin() as conn:
            await _lock(conn)
            existing = (await conn.execute(select(T.c.key_id).where(T.c.venue == venue, T.c.kind == kind.value))).scalars().all()
            if existing and not replace:
                raise KeyExists(
                    f"a {kind.value} key for {venue} exists already (key id {', '.join(existing)}): add with --replace to swap "
                    f"it atomically, or run 'bot keys remove --venue {venue} --kind {kind.value}' first"
                )
            if existing:
                await conn.execute(delete(T).where(T.c.venue == venue, T.c.kind == kind.value))
            await conn.execute(
                insert(T).values(
                    venue=venue, kind=kind.value, key_id=key_id, api_key_masked=masked,
                    master_key_id=master.key_id, ciphertext=ciphertext, created_at=now, last_used_at=None,
                )
            )
            # invariants, checked inside the transaction after our write
            ids = set((await conn.execute(select(T.c.master_key_id).distinct())).scalars().all())
            if ids != {master.key_id}:
                others = ", ".join(sorted(ids - {master.key_id}))
                raise WrongMasterKey(
                    f"the key store is encrypted under master key {others}, but the master key from {master.source} is "
                    f"{master.key_id}: refusing to mix master keys (wrong key file, or a rotation happened)"
                )
            count = (await conn.execute(select(func.count()).select_from(T).where(T.c.venue == venue, T.c.kind == kind.value))).scalar_one()
            if count != 1:
                raise StoreChanged(f"another writer added a {kind.value} key for {venue} at the same time; nothing was changed")
        entry = SealedEntry(venue, kind, key_id, masked, master.key_id, ciphertext, now, None)
        log.info("key store: added %s (api key %s, master key %s)%s", entry.label, masked, master.key_id, " replacing " + ", ".join(existing) if existing else "")
        return entry

    async def remove(self, venue: str, kind: KeyScope, key_id: str | None = None) -> SealedEntry:
        async with self.db.begin() as conn:
            await _lock(conn)
            cond = [T.c.venue == venue, T.c.kind == kind.value]
            if key_id:
                cond.append(T.c.key_id == key_id)
            row = (await conn.execute(select(T).where(*cond))).first()
            if row is None:
                raise KeyNotFound(f"no {kind.value} key for {venue}" + (f" with key id {key_id}" if key_id else "") + " (see: bot keys list)")
            await conn.execute(delete(T).where(T.c.id == row.id))
        entry = _entry(row)
        log.info("key store: removed %s", entry.label)
        return entry

    async def touch(self, entry: SealedEntry, when_ns: int | None = None) -> None:
        """Record that a key was used (decrypted for a client, or verified against the venue)."""
        when = ns_to_datetime(self._now_ns() if when_ns is None else when_ns)
        async with self.db.begin() as conn:
            await conn.execute(
                update(T).where(T.c.venue == entry.venue, T.c.kind == entry.kind.value, T.c.key_id == entry.key_id).values(last_used_at=when)
            )

    async def rotate_master(self, old: MasterKey, new: MasterKey, *, on_progress: ProgressHook | None = None) -> int:
        """Re-seal every entry under ``new`` in ONE transaction. Until it commits, every entry stays under ``old``
        (an interruption rolls back); after, every entry is under ``new``. Returns the number re-sealed."""
        if old.key_id == new.key_id:
            raise MasterKeyError(f"the new master key is the current one ({old.key_id}): generate a new one with bot keys gen-master")
        done = 0
        async with self.db.begin() as conn:
            await _lock(conn)
            rows = (await conn.execute(select(T).order_by(T.c.id))).all()
            total = len(rows)
            for row in rows:
                entry = _entry(row)
                if entry.master_key_id == new.key_id:
                    wipe(open_into(new, entry))  # already under the new key (added with it): must open, nothing to do
                    continue
                plaintext = open_into(old, entry)  # WrongMasterKey / TamperedEntry abort the whole rotation
                try:
                    ciphertext = seal(new, entry.venue, entry.kind, entry.key_id, entry.api_key_masked, plaintext)
                finally:
                    wipe(plaintext)
                result = await conn.execute(
                    update(T).where(T.c.id == row.id, T.c.master_key_id == old.key_id).values(ciphertext=ciphertext, master_key_id=new.key_id)
                )
                if result.rowcount != 1:
                    raise StoreChanged(f"key entry {entry.label} changed during the rotation; nothing was changed, run it again")
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
            left = (await conn.execute(select(func.count()).select_from(T).where(T.c.master_key_id != new.key_id))).scalar_one()
            if left:
                raise StoreChanged(f"{left} key entr{'y' if left == 1 else 'ies'} appeared during the rotation; nothing was changed, run it again")
        log.info("key store: re-sealed %d entr%s from master key %s to %s", done, "y" if done == 1 else "ies", old.key_id, new.key_id)
        return done
