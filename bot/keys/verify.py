"""``bot keys verify``: check each key against its venue where that can be done without side effects.

For Binance (the venue this build trades), per key, each through a fresh client built by the venue adapter
(``bot.venues.binance_dialect.make_exchange_factory``: the same URLs, options and error mapping as the
service uses):

* **reads**: a signed balance request must succeed;
* **permissions** as the venue reports them (``bot.venues.binance.fetch_key_permissions``,
  ``GET /sapi/v1/account/apiRestrictions``): a read key must not be able to trade, no key may withdraw (a
  single stolen key must not drain the account); a key without an IP restriction is a warning;
* **trading, by behaviour**: a cancel of a client order id that cannot exist (``keysverify-<random>``). A key
  with trading permission gets "unknown order" (-2011), a key without gets -2015. A read key must get -2015,
  a trade key -2011. Nothing is ever placed or cancelled. This does not trust the permission flags.

A venue that does not answer a check (a testnet without ``/sapi``) leaves it "unknown". Other exchanges get
"not checked": this build has no adapter for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.config import Settings
from bot.domain.credentials import Credentials, KeyScope
from bot.domain.venue import VenueError
from bot.keys.redaction import redact
from bot.keys.sealing import SealedEntry

Status = Literal["ok", "fail", "warn", "unknown"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class EntryReport:
    entry: SealedEntry
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


def _short(exc: BaseException) -> str:
    code = getattr(exc, "venue_code", None)
    text = redact(f"{type(exc).__name__}{f' {code}' if code else ''}: {exc}")
    return text if len(text) <= 240 else text[:237] + "..."


Factory = Callable[[Credentials | None], Any]


async def _call(settings: Settings, factory: Factory, creds: Credentials, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """One request on a fresh client (time-corrected like the service's), errors mapped to ``VenueError``."""
    from bot.engine.clock import WallClock
    from bot.venues.ccxt_client import CcxtCall
    from bot.venues.metrics import VenueMetrics

    exchange = factory(creds)
    secret_values = (creds.api_key.get_secret_value(), creds.secret.get_secret_value())
    call = CcxtCall(exchange, role=f"verify-{creds.scope.value}", metrics=VenueMetrics(), clock=WallClock(), secrets=secret_values)
    try:
        venue_ms = int(await call("fetch_time", exchange.fetch_time))
        exchange.options["timeDifference"] = WallClock().now_ns() // 1_000_000 - venue_ms
        return await call(what, lambda: fn(exchange))
    finally:
        await call.close()


async def check_reads(settings: Settings, factory: Factory, creds: Credentials) -> Check:
    try:
        await _call(settings, factory, creds, "fetch_balance", lambda ex: ex.fetch_balance())
    except Exception as exc:
        return Check("reads", "fail", f"a signed balance request was refused: {_short(exc)}")
    return Check("reads", "ok", "a signed balance request was accepted")


async def check_permissions(settings: Settings, factory: Factory, creds: Credentials) -> list[Check]:
    from bot.venues.binance import fetch_key_permissions

    try:
        perms = await fetch_key_permissions(settings, creds, exchange_factory=factory)
    except Exception as exc:
        return [Check("permissions", "unknown", f"the venue did not answer the API-restrictions request: {_short(exc)}")]
    checks: list[Check] = []
    if creds.scope is KeyScope.READ:
        checks.append(
            Check("permissions: no trading", "fail", "the venue says this READ key may trade: create a read-only key and replace it")
            if perms.can_trade
            else Check("permissions: no trading", "ok", "the venue says this key may not trade")
        )
    else:
        checks.append(
            Check("permissions: trading", "ok", "the venue says this key may trade")
            if perms.can_trade
            else Check("permissions: trading", "fail", "the venue says this TRADE key may not trade: enable spot trading for it")
        )
    checks.append(
        Check("permissions: no withdrawals", "fail", "this key can WITHDRAW: disable withdrawals and universal transfer for it (a stolen key would drain the account)")
        if perms.can_withdraw
        else Check("permissions: no withdrawals", "ok", "withdrawals are disabled for this key")
    )
    checks.append(
        Check("ip restriction", "ok", "restricted to trusted IP addresses")
        if perms.ip_restricted
        else Check("ip restriction", "warn", "the key is not restricted to trusted IP addresses: restrict it to the server's address")
    )
    return checks


async def check_trading_behaviour(settings: Settings, factory: Factory, creds: Credentials, symbol: str) -> Check:
    probe = f"keysverify-{secrets.token_hex(8)}"
    name = "cannot trade" if creds.scope is KeyScope.READ else "can trade"
    try:
        await _call(settings, factory, creds, "cancel_order", lambda ex: ex.cancel_order(probe, symbol, {"origClientOrderId": probe}))
        return Check(name, "unknown", "the venue accepted a cancel of an order that cannot exist")
    except VenueError as exc:
        code = exc.venue_code
        if code == "-2011":
            can_trade, detail = True, "the venue answered a trade request with 'unknown order' (-2011)"
        elif code == "-2015":
            can_trade, detail = False, "the venue refused a trade request for lack of permission (-2015)"
        else:
            return Check(name, "unknown", f"the trade probe was inconclusive: {_short(exc)}")
    except Exception as exc:
        return Check(name, "unknown", f"the trade probe was inconclusive: {_short(exc)}")
    if creds.scope is KeyScope.READ:
        if can_trade:
            return Check(name, "fail", f"this READ key CAN trade ({detail}): create a key with trading disabled and replace it")
        return Check(name, "ok", detail)
    if can_trade:
        return Check(name, "ok", detail)
    return Check(name, "fail", f"this TRADE key cannot trade ({detail}): enable spot trading for it on the venue")


async def verify_online(settings: Settings, creds: Credentials, *, factory: Factory | None = None) -> list[Check]:
    """The venue checks of one key. Only Binance has an adapter in this build."""
    if creds.venue != "binance" or settings.venue.exchange != "binance":
        return [Check("venue", "unknown", f"not checked: this build verifies binance keys against [venue] exchange = binance (entry: {creds.venue}, [venue]: {settings.venue.exchange})")]
    from bot.venues.binance_dialect import make_exchange_factory

    factory = factory or make_exchange_factory(settings.venue)
    checks = [await check_reads(settings, factory, creds)]
    checks.extend(await check_permissions(settings, factory, creds))
    checks.append(await check_trading_behaviour(settings, factory, creds, settings.market.assets[0]))
    return checks
