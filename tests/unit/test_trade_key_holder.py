"""Least exposure: the trade key is decrypted only while armed, and gone after disarm, expiry, SAFE and kill.

"Gone" is checked the strong way: after the drop, no object the garbage collector can reach refers to a
string equal to the trade secret or the master key (tests/keys_support.reachable)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.control.arming import Arming
from bot.domain.credentials import Credentials, KeyScope
from bot.domain.errors import ErrorCode
from bot.engine.clock import ManualClock
from bot.keys.errors import TradeKeyUnavailable
from bot.keys.holder import TradeKeyHolder
from bot.keys.master import FileSource
from bot.keys.redaction import REDACTOR
from bot.keys.sealing import SealedEntry, encode_plaintext, mask_api_key, seal, wipe
from bot.risk.safety import SafetyController, TradingState
from tests.keys_support import digest, key_file_digests, new_api_key, new_key_file, reachable

NS = 1_000_000_000


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, row))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


def _sealed_trade_key(source: FileSource) -> tuple[SealedEntry, set[bytes]]:
    """Seal a fresh random trade key; return the entry and only the digests of its api key and secret."""
    api, secret = new_api_key(), new_api_key()
    digests = {digest(api), digest(secret)}
    plaintext = encode_plaintext(api, secret, None)
    masked = mask_api_key(api)
    del api, secret
    with source.load() as master:
        ct = seal(master, "binance", KeyScope.TRADE, "t1", masked, plaintext)
        entry = SealedEntry("binance", KeyScope.TRADE, "t1", masked, master.key_id, ct)
    wipe(plaintext)
    return entry, digests


class CountingSource:
    """A FileSource that counts loads (how often the master key was read, i.e. the entry decrypted)."""

    def __init__(self, inner: FileSource) -> None:
        self.inner = inner
        self.description = inner.description
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        return self.inner.load()


@pytest.fixture
def setup(tmp_path: Path, isolated_logging: None) -> Any:
    path = new_key_file(tmp_path)
    source = CountingSource(FileSource(path))
    entry, secret_digests = _sealed_trade_key(source.inner)
    clock = ManualClock(1_000 * NS)
    audit = Audit()
    arming = Arming(clock, audit, max_ttl_s=600)
    safety = SafetyController(audit, clock)
    holder = TradeKeyHolder(entry, source, is_armed=arming.is_armed)  # type: ignore[arg-type]
    arming.add_listener(holder.on_arming)
    safety.add_listener(holder.on_trading_state)
    received: list[Credentials | None] = []
    holder.add_listener(received.append)

    class S:
        pass

    s = S()
    s.__dict__.update(
        path=path, source=source, holder=holder, arming=arming, safety=safety, clock=clock, received=received,
        secrets=secret_digests, master=key_file_digests(path),
    )
    return s


def _held_secret(s: Any) -> list[str]:
    return reachable(s.secrets, {64})


def test_not_decrypted_while_disarmed(setup: Any) -> None:
    s = setup
    assert not s.holder.held and s.source.loads == 0 and s.holder.loads == 0
    with pytest.raises(TradeKeyUnavailable, match="not armed"):
        s.holder.credentials()
    assert _held_secret(s) == []
    assert reachable(s.master, {32, 44, 64}) == []


def test_decrypted_after_arming_and_gone_after_disarm(setup: Any) -> None:
    s = setup
    s.arming.arm(60, "alice")
    assert s.holder.held and s.source.loads == 1
    creds = s.holder.credentials()
    assert s.received == [creds]
    assert _held_secret(s), "while armed the credentials are held (the scan must be able to see them)"
    assert reachable(s.master, {32, 44, 64}) == [], "the master key is wiped right after the decryption"
    assert REDACTOR.redact(creds.secret.get_secret_value()) == "[REDACTED]"
    del creds
    s.arming.disarm("operator /disarm")
    assert not s.holder.held and s.received[-1] is None
    with pytest.raises(TradeKeyUnavailable):
        s.holder.credentials()
    s.received.clear()
    assert _held_secret(s) == [], "after disarm no reachable object holds the trade secret"
    assert REDACTOR.labels() == [], "the redactor forgot the clear trade secret too"


def test_gone_after_expiry(setup: Any) -> None:
    s = setup
    s.arming.arm(60, "alice")
    assert s.holder.held
    s.clock.advance(59 * NS)
    assert s.holder.credentials() is not None
    s.clock.advance(1 * NS)
    assert s.arming.check_expiry()  # what the engine guard / scheduled job calls
    assert not s.holder.held and s.received[-1] is None
    s.received.clear()
    assert _held_secret(s) == []


def test_an_expiry_nobody_announced_is_caught_on_access(setup: Any) -> None:
    s = setup
    s.arming.arm(60, "alice")
    s.clock.advance(61 * NS)  # nobody called check_expiry yet
    with pytest.raises(TradeKeyUnavailable, match="expired"):
        s.holder.credentials()
    assert not s.holder.held


@pytest.mark.parametrize("how", ["safe", "kill"])
def test_gone_on_safe_and_kill_and_not_reloaded_while_safe(setup: Any, how: str) -> None:
    s = setup
    s.arming.arm(60, "alice")
    assert s.holder.held
    if how == "kill":
        s.safety.kill("operator /kill")
    else:
        s.safety.enter(TradingState.SAFE, ErrorCode.POSITION_MISMATCH, "reconciliation failed")
    assert not s.holder.held
    s.received.clear()
    assert _held_secret(s) == []
    s.arming.arm(60, "alice")  # even if the arming goes through, SAFE keeps the key sealed
    assert not s.holder.held and s.holder.loads == 1
    s.safety.resume("alice")
    s.arming.arm(60, "alice")
    assert s.holder.held and s.holder.loads == 2


def test_rearming_keeps_one_copy(setup: Any) -> None:
    s = setup
    s.arming.arm(60, "alice")
    s.arming.arm(120, "alice")
    assert s.holder.loads == 1 and len(s.received) == 1


def test_a_missing_master_key_at_arming_fails_closed(setup: Any) -> None:
    s = setup
    errors: list[str] = []
    s.holder._on_error = errors.append
    s.path.chmod(0o644)
    s.arming.arm(60, "alice")
    assert not s.holder.held and errors and "chmod 600" in errors[0]


async def test_resting_orders_are_cancelled_before_the_drop(setup: Any) -> None:
    s = setup
    events: list[str] = []
    started, gate = asyncio.Event(), asyncio.Event()

    async def drain() -> None:
        events.append(f"drain starts, key held={s.holder.held}")
        started.set()
        await gate.wait()
        events.append("drain done")

    s.holder._drain = drain
    s.holder.add_listener(lambda c: events.append("dropped" if c is None else "loaded"))
    s.arming.arm(60, "alice")
    s.arming.disarm("operator /disarm")
    with pytest.raises(TradeKeyUnavailable):  # disarmed: nobody may fetch the key for new orders meanwhile
        s.holder.credentials()
    async with asyncio.timeout(5):
        await started.wait()
    assert events == ["loaded", "drain starts, key held=True"]
    gate.set()
    async with asyncio.timeout(5):
        await s.holder.wait_released()
    assert events == ["loaded", "drain starts, key held=True", "drain done", "dropped"]
    assert not s.holder.held


async def test_a_stuck_drain_is_bounded(setup: Any) -> None:
    s = setup

    async def never() -> None:
        await asyncio.Event().wait()

    s.holder._drain = never
    s.holder._drain_timeout_s = 0.05
    s.arming.arm(60, "alice")
    s.arming.disarm("operator /disarm")
    async with asyncio.timeout(5):
        await s.holder.wait_released()
    assert not s.holder.held


async def test_rearming_during_the_drain_keeps_the_key(setup: Any) -> None:
    s = setup
    started = asyncio.Event()

    async def drain() -> None:
        started.set()
        await asyncio.Event().wait()

    s.holder._drain = drain
    s.arming.arm(60, "alice")
    s.arming.disarm("operator /disarm")
    task = s.holder._draining
    async with asyncio.timeout(5):
        await started.wait()
    s.arming.arm(60, "alice")
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert s.holder.held and s.holder.loads == 1 and s.holder.credentials() is not None
