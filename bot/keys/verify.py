"""``bot keys verify``: check each key against its venue where that can be done without side effects.

For Binance (the venue this build trades), per key:

* **reads**: a signed ``GET /api/v3/account`` (balances) must succeed;
* **trading permission**: a cancel of a client order id that cannot exist (``keysverify-<random>``). A key
  with trading permission gets "unknown order" (-2011); a key without gets -2015. A read key must get
  -2015 ("cannot trade"); a trade key must get -2011. Nothing is ever placed or cancelled;
* **withdrawals** (``GET /sapi/v1/account/apiRestrictions``): a key that can withdraw fails the check
  (a single stolen key must not be able to drain the account); IP restriction is reported. A venue that
  does not answer it (a testnet, the local fake) leaves the check "unknown".

Other exchanges get the read check only. Each probe uses a fresh ccxt client: ccxt reports a -2015 as
``DDoSProtection`` once a client has made a successful private call, so the probes classify by the
venue's error code in the answer, never by ccxt's exception class.

The ccxt client is built here from ``[venue]`` (REST URL, options, sandbox) because the venue adapter
(``bot.venues``, issue 6) was not on main when this was written; switch to its client builder once it is.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.config import VenueSettings
from bot.domain.credentials import Credentials, KeyKind
from bot.keys.redaction import redact
from bot.keys.sealing import SealedEntry

Status = Literal["ok", "fail", "warn", "unknown"]
_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


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
    text = redact(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 240 else text[:237] + "..."


def venue_code(exc: BaseException) -> int | None:
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def ccxt_config(vs: VenueSettings, creds: Credentials) -> dict[str, Any]:
    """Constructor config of a ccxt exchange for ``[venue]``. A ``rest_url`` on another host than the exchange's
    own (a testnet proxy, the local fake) takes every REST section of the exchange with it."""
    import ccxt

    sync_cls = getattr(ccxt, vs.exchange, None)
    if sync_cls is None:
        raise ValueError(f"venue.exchange {vs.exchange!r} is not an exchange ccxt knows")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": vs.request_timeout_ms,
        "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False, "recvWindow": vs.recv_window_ms},
    }
    urls = sync_cls().describe()["urls"].get("api", {})
    target = urlsplit(vs.rest_url)
    default_host = urlsplit(urls.get("public", "")).netloc if isinstance(urls.get("public"), str) else ""
    if target.netloc and target.netloc != default_host:
        base = f"{target.scheme}://{target.netloc}"

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            if isinstance(node, str) and urlsplit(node).scheme in ("http", "https"):
                return base + urlsplit(node).path
            return node

        config["urls"] = {"api": rewrite(urls)}
    config = _deep_merge(config, dict(vs.ccxt_options))
    config.update(creds.ccxt_fields())
    return config


ClientFactory = Callable[[VenueSettings, Credentials], Any]


def build_client(vs: VenueSettings, creds: Credentials) -> Any:
    import ccxt.async_support as ccxt_async

    client = getattr(ccxt_async, vs.exchange)(ccxt_config(vs, creds))
    if vs.sandbox:
        client.set_sandbox_mode(True)
    return client


async def _with_client(factory: ClientFactory, vs: VenueSettings, creds: Credentials, fn: Callable[[Any], Any]) -> Any:
    client = factory(vs, creds)
    try:
        return await fn(client)
    finally:
        await client.close()


async def check_reads(factory: ClientFactory, vs: VenueSettings, creds: Credentials) -> Check:
    try:
        await _with_client(factory, vs, creds, lambda c: c.fetch_balance())
    except Exception as exc:
        return Check("reads", "fail", f"a signed balance request was refused: {_short(exc)}")
    return Check("reads", "ok", "a signed balance request was accepted")


async def check_trading(factory: ClientFactory, vs: VenueSettings, creds: Credentials, kind: KeyKind, symbol: str) -> Check:
    probe = f"keysverify-{secrets.token_hex(8)}"
    try:
        await _with_client(factory, vs, creds, lambda c: c.cancel_order(probe, symbol, params={"origClientOrderId": probe}))
        can_trade: bool | None = True  # a cancel of an order that cannot exist succeeded?! treat as "can trade"
        detail = "the venue accepted a cancel"
    except Exception as exc:
        code = venue_code(exc)
        if code == -2011:
            can_trade, detail = True, "the venue answered a trade request with 'unknown order' (-2011)"
        elif code == -2015:
            can_trade, detail = False, "the venue refused a trade request for lack of permission (-2015)"
        else:
            can_trade, detail = None, f"the trade probe was inconclusive: {_short(exc)}"
    if can_trade is None:
        return Check("trading permission", "unknown", detail)
    if kind is KeyKind.READ:
        if can_trade:
            return Check("cannot trade", "fail", f"this READ key CAN trade ({detail}): create a key with trading disabled on the venue and replace it")
        return Check("cannot trade", "ok", detail)
    if can_trade:
        return Check("can trade", "ok", detail)
    return Check("can trade", "fail", f"this TRADE key cannot trade ({detail}): enable spot trading for it on the venue")


async def check_withdrawals(factory: ClientFactory, vs: VenueSettings, creds: Credentials) -> list[Check]:
    try:
        answer = await _with_client(factory, vs, creds, lambda c: c.sapi_get_account_apirestrictions())
    except Exception as exc:
        return [Check("withdrawals", "unknown", f"the venue did not answer the API-restrictions request: {_short(exc)}")]
    checks = []
    if answer.get("enableWithdrawals"):
        checks.append(Check("withdrawals", "fail", "this key can WITHDRAW: disable withdrawals for it on the venue (a stolen key would drain the account)"))
    else:
        checks.append(Check("withdrawals", "ok", "withdrawals are disabled for this key"))
    if not answer.get("ipRestrict"):
        checks.append(Check("ip restriction", "warn", "the key is not restricted to trusted IP addresses: restrict it to the server's address"))
    else:
        checks.append(Check("ip restriction", "ok", "restricted to trusted IP addresses"))
    return checks


async def verify_online(
    vs: VenueSettings, entry: SealedEntry, creds: Credentials, symbol: str, factory: ClientFactory = build_client
) -> list[Check]:
    checks = [await check_reads(factory, vs, creds)]
    if vs.exchange != "binance":
        checks.append(Check("trading permission", "unknown", f"no side-effect-free trade probe is known for {vs.exchange}"))
        return checks
    checks.append(await check_trading(factory, vs, creds, entry.kind, symbol))
    checks.extend(await check_withdrawals(factory, vs, creds))
    return checks
