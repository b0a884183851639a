"""The keys part of a running service: what ``bot.service`` builds at start-up.

``open_keys`` (called by the composition root before anything else touches a venue):

1. (``register_config_secrets``, called by the root first) the configuration's secrets (Telegram token,
   TOTP secret, an environment master key) are registered with the redactor;
2. finds the master key source; without one, a run that needs venue keys refuses to start, and a run on the
   simulated venue goes on without the key store;
3. opens EVERY entry once: a wrong master key or a tampered entry stops the start-up here, with the entry
   named, never later at an arming; each entry's secrets are fingerprinted for the redactor, then zeroed;
4. keeps the read key of the configured live venue (decrypted at start: market data, balances and
   reconciliation need it all the time) and, in LIVE, the trade entry still sealed for a ``TradeKeyHolder``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings, secret_paths
from bot.domain.credentials import Credentials, KeyScope
from bot.domain.modes import Mode
from bot.domain.ports import Clock
from bot.keys.errors import KeyNotFound, MasterKeyError
from bot.keys.holder import TradeKeyHolder
from bot.keys.master import MasterKeySource, no_source_message, resolve_source
from bot.keys.redaction import REDACTOR, Redactor
from bot.keys.sealing import SealedEntry, credentials_from, open_into, register_exact, register_fingerprints, wipe
from bot.keys.store import KeyStore

log = logging.getLogger(__name__)


def register_config_secrets(settings: Settings, redactor: Redactor = REDACTOR) -> list[str]:
    """Mask every ``SecretStr`` of the configuration in logs. Returns the dotted names registered."""
    names: list[str] = []
    for path in secret_paths():
        node: object = settings
        for part in path.split("."):
            node = getattr(node, part, None)
        if isinstance(node, SecretStr) and node.get_secret_value():
            if redactor.add(node.get_secret_value(), path) is not None:
                names.append(path)
    return names


@dataclass
class KeyRuntime:
    store: KeyStore
    source: MasterKeySource | None
    master_key_id: str | None
    entries: list[SealedEntry]
    venue: str | None = None
    read: Credentials | None = None
    read_entry: SealedEntry | None = None
    trade_entry: SealedEntry | None = None
    trade: TradeKeyHolder | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def read_credentials(self) -> Credentials:
        if self.read is None:
            raise KeyNotFound("no read key is loaded (the simulated venue needs none)")
        return self.read

    def build_trade_holder(
        self,
        *,
        is_armed: Callable[[], bool],
        drain: Callable[[], Awaitable[object]] | None = None,
        drain_timeout_s: float = 10.0,
        on_error: Callable[[str], None] | None = None,
    ) -> TradeKeyHolder:
        """The holder of the trade key (LIVE). The root subscribes it to Arming and the SafetyController."""
        if self.trade_entry is None or self.source is None:
            raise KeyNotFound(f"no trade key for {self.venue}")
        self.trade = TradeKeyHolder(
            self.trade_entry, self.source, is_armed=is_armed, drain=drain, drain_timeout_s=drain_timeout_s,
            on_loaded=self.touch_later, on_error=on_error,
        )
        return self.trade

    def touch_later(self, entry: SealedEntry) -> None:
        """Record ``last_used_at`` without blocking the caller (a sync listener inside the engine loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._touch(entry), name="key-touch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, entry: SealedEntry) -> None:
        try:
            await self.store.touch(entry)
        except Exception:
            log.exception("key store: recording the use of %s failed", entry.label)

    async def close(self) -> None:
        if self.trade is not None:
            self.trade.drop_now("service stop")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.read = None


async def open_keys(
    settings: Settings,
    db: AsyncEngine,
    *,
    clock: Clock,
    env: Mapping[str, str] | None = None,
    redactor: Redactor = REDACTOR,
) -> KeyRuntime:
    """Verify the key store and load what this run needs. Raises ``KeyStoreError`` subclasses (start-up errors).

    The caller registers the configuration's secrets first (``register_config_secrets``)."""
    mode = settings.mode
    venue = settings.market.venue if settings.market.venue != "sim" else None
    store = KeyStore(db, clock.now_ns)
    entries = await store.entries()
    source = resolve_source(settings.keys, mode, env)
    if source is None:
        if venue is not None:
            raise MasterKeyError(f"{venue} needs its API keys and there is {no_source_message(settings.keys, env)}")
        if entries:
            log.warning("key store: %d entries not verified: no master key is configured (the simulated venue needs none)", len(entries))
        return KeyRuntime(store, None, None, entries)
    runtime = KeyRuntime(store, source, None, entries, venue)
    with source.load() as master:
        master.register_fingerprints(redactor)
        runtime.master_key_id = master.key_id
        for entry in entries:
            buf = open_into(master, entry)  # WrongMasterKey / TamperedEntry: start-up stops here
            try:
                register_fingerprints(buf, entry.label, redactor)
                if venue is not None and entry.venue == venue and entry.kind is KeyScope.READ:
                    runtime.read = credentials_from(buf, entry)
                    runtime.read_entry = entry
                if venue is not None and entry.venue == venue and entry.kind is KeyScope.TRADE:
                    runtime.trade_entry = entry
            finally:
                wipe(buf)
    log.info(
        "key store: master key %s from %s; %d entr%s verified", runtime.master_key_id, source.description,
        len(entries), "y" if len(entries) == 1 else "ies",
    )
    if venue is None:
        return runtime
    if runtime.read is None or runtime.read_entry is None:
        raise KeyNotFound(f"no read key for {venue}: add one with: bot keys add --venue {venue} --kind read")
    register_exact(runtime.read, f"read key {runtime.read_entry.label}", redactor)
    await store.touch(runtime.read_entry)
    log.info("key store: read key %s loaded (api key %s)", runtime.read_entry.label, runtime.read_entry.api_key_masked)
    if mode is Mode.LIVE and runtime.trade_entry is None:
        raise KeyNotFound(f"LIVE needs a trade key for {venue}: add one with: bot keys add --venue {venue} --kind trade")
    if mode is not Mode.LIVE:
        runtime.trade_entry = None  # only LIVE ever decrypts a trade key
    return runtime
