"""Least exposure for the trade key: decrypted only while LIVE is armed, dropped when the arming ends.

``TradeKeyHolder`` keeps the trade entry sealed. The composition root subscribes it to ``Arming``
(``on_arming``) and to the ``SafetyController`` (``on_trading_state``):

* armed -> the master key is read afresh from its source, the entry is opened into a buffer, the
  ``Credentials`` are built, the buffer and the master key are zeroed, and listeners (the venue adapter,
  which builds its trade client) receive the credentials;
* disarm, expiry, SAFE or a kill -> the holder first runs the injected ``drain`` (cancel resting orders: a
  disarmed bot must not leave orders it can no longer cancel), bounded by ``drain_timeout_s``, then drops the
  credentials: listeners receive ``None`` (the venue closes its trade client), the exact-match redaction
  entries are removed, every reference the holder has is released.

What "dropped" means in Python (docs/keys.md): the buffers we own are zeroed; ``str`` objects (inside
``SecretStr`` and inside the ccxt client) cannot be zeroed, only released for the garbage collector, and
the allocator may keep their bytes until the memory is reused. A disarmed process therefore holds no
*reachable* trade secret and no master key, which is what the tests check. (No forced ``gc.collect()`` here:
it would block the event loop for tens of milliseconds and cannot wipe memory anyway.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.domain.credentials import Credentials
from bot.domain.errors import ErrorCode
from bot.keys.errors import KeyStoreError, TradeKeyUnavailable
from bot.keys.master import MasterKeySource
from bot.keys.redaction import REDACTOR, Redactor
from bot.keys.sealing import SealedEntry, credentials_from, open_into, register_exact, wipe
from bot.risk.safety import TradingState

log = logging.getLogger(__name__)

CredentialsListener = Callable[[Credentials | None], None]


class TradeKeyHolder:
    def __init__(
        self,
        entry: SealedEntry,
        source: MasterKeySource,
        *,
        is_armed: Callable[[], bool],
        drain: Callable[[], Awaitable[object]] | None = None,
        drain_timeout_s: float = 10.0,
        on_loaded: Callable[[SealedEntry], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.entry = entry
        self._source = source
        self._is_armed = is_armed
        self._drain = drain
        self._drain_timeout_s = drain_timeout_s
        self._on_loaded = on_loaded
        self._on_error = on_error
        self._redactor = redactor
        self._creds: Credentials | None = None
        self._handles: list[int | None] = []
        self._listeners: list[CredentialsListener] = []
        self._safe = False
        self._draining: asyncio.Task[None] | None = None
        self.loads = 0  # how many times the entry was decrypted (tests and metrics)
        self.drops = 0

    # ------------------------------------------------------------------ queries
    @property
    def held(self) -> bool:
        return self._creds is not None

    def add_listener(self, fn: CredentialsListener) -> None:
        """``fn(credentials)`` when the key is loaded, ``fn(None)`` when it is dropped."""
        self._listeners.append(fn)

    def credentials(self) -> Credentials:
        """The trade credentials, only while armed. Raises ``TradeKeyUnavailable`` otherwise (fail closed)."""
        if self._creds is None or self._draining is not None:
            raise TradeKeyUnavailable(f"the trade key {self.entry.label} is not held: LIVE is not armed")
        if not self._is_armed():  # an expiry nobody has announced yet: drop now
            self.release("arming expired")
            raise TradeKeyUnavailable(f"the trade key {self.entry.label} was dropped: the arming expired")
        return self._creds

    def trade_credentials(self) -> Credentials | None:
        """The venue adapter's ``TradeCredentialsProvider``: the trade key while armed, and while resting orders are
        being cancelled after the arming ended (the drain); otherwise None (the adapter then drops its trade
        client). An expiry nobody has announced yet is noticed here."""
        if self._creds is None:
            return None
        if self._draining is not None:
            return self._creds
        if not self._is_armed():
            self.release("arming expired")
            return None
        return self._creds

    # ------------------------------------------------------------------ events (sync: called by Arming / SafetyController)
    def on_arming(self, armed: bool, reason: str) -> None:
        if armed:
            self.load(reason)
        else:
            self.release(reason)

    def on_trading_state(self, old: TradingState, new: TradingState, code: ErrorCode | None, reason: str) -> None:
        if new is TradingState.SAFE:
            self._safe = True
            self.release(f"trading state SAFE ({code.value if code else '-'}): {reason}")
        elif old is TradingState.SAFE:
            self._safe = False

    # ------------------------------------------------------------------ load / drop
    def load(self, reason: str) -> bool:
        if self._safe:
            self._fail("trading state is SAFE: the trade key stays sealed until the operator resumes and re-arms")
            return False
        if self._draining is not None:  # re-armed while the previous arming was winding down: keep the key
            self._draining.cancel()
            self._draining = None
        if self._creds is not None:
            return True
        try:
            with self._source.load() as master:
                buf = open_into(master, self.entry)
                try:
                    creds = credentials_from(buf, self.entry)
                finally:
                    wipe(buf)
        except KeyStoreError as exc:
            self._fail(f"the trade key {self.entry.label} could not be loaded: {exc}")
            return False
        self._creds = creds
        self._handles = register_exact(creds, f"trade key {self.entry.label}", self._redactor)
        self.loads += 1
        log.warning("trade key %s loaded (%s)", self.entry.label, reason)
        self._notify(creds)
        if self._on_loaded is not None:
            self._on_loaded(self.entry)
        return True

    def release(self, reason: str) -> None:
        """Arming ended: drain (cancel resting orders) if a drain is wired and a loop runs, then drop."""
        if self._creds is None or self._draining is not None:
            return
        if self._drain is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._draining = loop.create_task(self._drain_then_drop(reason), name="trade-key-drain")
                return
            log.error("trade key %s: no event loop to cancel resting orders before the drop", self.entry.label)
        self._drop(reason)

    def drop_now(self, reason: str) -> None:
        """Drop immediately, without draining (service stop: the engine has cancelled its orders already)."""
        if self._draining is not None:
            self._draining.cancel()
            self._draining = None
        self._drop(reason)

    async def wait_released(self) -> None:
        """Wait for a drain in progress to finish (tests, shutdown)."""
        task = self._draining
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    async def _drain_then_drop(self, reason: str) -> None:
        try:
            assert self._drain is not None
            async with asyncio.timeout(self._drain_timeout_s):
                await self._drain()
        except TimeoutError:
            log.error("trade key %s: cancelling resting orders took longer than %.0fs; dropping the key anyway", self.entry.label, self._drain_timeout_s)
        except asyncio.CancelledError:
            raise  # re-armed: keep the key
        except Exception:
            log.exception("trade key %s: cancelling resting orders failed; dropping the key anyway", self.entry.label)
        self._draining = None
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        if self._creds is None:
            return
        self._creds = None
        self._notify(None)
        for handle in self._handles:
            self._redactor.remove(handle)
        self._handles = []
        self.drops += 1
        log.warning("trade key %s dropped (%s)", self.entry.label, reason)

    def _notify(self, creds: Credentials | None) -> None:
        for fn in self._listeners:
            try:
                fn(creds)
            except Exception:
                log.exception("trade key listener failed")
        del creds

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:
                log.exception("trade key error callback failed")
