"""Parsing of operator command arguments. Strict: anything unexpected is refused with the usage line.

A refusal here is a "malformed command" (it counts toward the sender's lockout), so every message says
exactly what was wrong and what a correct command looks like.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain.money import to_decimal
from bot.strategies.manual import ManualOrder, ManualOrderError


class ParseError(ValueError):
    """A malformed command. The message is shown to the operator (it is HTML-escaped there)."""


_TTL = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_HEX = re.compile(r"^[0-9a-f]+$")
_ASSET = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MIN_HASH_PREFIX = 10

ARM_USAGE = "/arm <ttl> [totp], e.g. /arm 15m"
MANUAL_USAGE = "/intent manual buy|sell BASE/QUOTE <qty> limit <price> [gtc|ioc|fok]  or  ... market  or  ... maker <price>"
MANDATE_USAGE = (
    "/intent <strategy> [key=value ...] max_notional=<quote> max_orders=<n> max_loss=<quote> expiry=<ttl> [assets=A/B,C/D]"
)


def parse_ttl(text: str, *, what: str = "time") -> int:
    """``90s``, ``15m``, ``1h``, ``1h30m``, ``2d`` -> seconds. A unit is required (``900`` is ambiguous)."""
    t = text.strip().lower()
    m = _TTL.match(t)
    if not t or m is None or not any(m.groups()):
        raise ParseError(f"{what} {text!r} is not a duration: use a number with a unit, e.g. 90s, 15m, 1h, 1h30m")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    if seconds <= 0:
        raise ParseError(f"{what} must be positive")
    return seconds


def parse_hash_prefix(text: str | None, *, command: str) -> str:
    if not text:
        raise ParseError(f"usage: /{command} <hash> (at least the first {MIN_HASH_PREFIX} hex characters)")
    h = text.strip().lower()
    if not _HEX.match(h):
        raise ParseError(f"{text!r} is not a hash: hex characters 0-9 a-f only")
    if len(h) < MIN_HASH_PREFIX:
        raise ParseError(f"give at least the first {MIN_HASH_PREFIX} hex characters of the hash (got {len(h)})")
    if len(h) > 64:
        raise ParseError("a hash has at most 64 hex characters")
    return h


def _positive(text: str, name: str) -> Decimal:
    try:
        value = to_decimal(text, field=name)
    except (TypeError, ValueError):
        raise ParseError(f"{name} {text!r} is not a number") from None
    if value <= 0:
        raise ParseError(f"{name} must be positive, got {text}")
    if value.adjusted() > 15 or value.adjusted() < -18 or len(value.as_tuple().digits) > 30:
        raise ParseError(f"{name} {text!r} is not a plausible number (out of range)")
    return value


def _asset(text: str) -> str:
    a = text.strip().upper()
    if not _ASSET.match(a):
        raise ParseError(f"asset {text!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return a


def parse_manual(args: list[str]) -> ManualOrder:
    """``buy BTC/USDT 0.01 limit 60000 [ioc|tif=IOC]`` (the arguments after ``manual``), in the grammar of the
    ``manual`` strategy (bot/strategies/manual.py): one grammar for Telegram and for ``Engine.propose``."""
    if len(args) < 4:
        raise ParseError(f"usage: {MANUAL_USAGE}")
    try:
        return ManualOrder.parse(args)
    except ManualOrderError as exc:
        raise ParseError(f"{str(exc).split('; usage:')[0]}: {MANUAL_USAGE}") from None


@dataclass(frozen=True, slots=True)
class MandateSpec:
    strategy_id: str
    params: dict[str, Any]
    assets: tuple[str, ...] | None
    max_notional: Decimal
    max_orders: int
    max_loss: Decimal
    expiry_s: int
    raw: dict[str, str] = field(default_factory=dict)


BOUND_KEYS = ("max_notional", "max_orders", "max_loss", "expiry", "assets")


def parse_mandate(strategy_id: str, args: list[str]) -> MandateSpec:
    """``key=value`` pairs; the four bounds are required, ``assets`` defaults to the strategy's assets."""
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.strip().lower()
        if not sep or not _KEY.match(key) or not value:
            raise ParseError(f"{arg!r} is not key=value: {MANDATE_USAGE}")
        if key in values:
            raise ParseError(f"{key} is given twice")
        values[key] = value.strip()
    missing = [k for k in ("max_notional", "max_orders", "max_loss", "expiry") if k not in values]
    if missing:
        raise ParseError(f"a mandate needs explicit bounds; missing {', '.join(missing)}: {MANDATE_USAGE}")
    max_notional = _positive(values["max_notional"], "max_notional")
    try:
        max_orders = int(values["max_orders"])
    except ValueError:
        raise ParseError(f"max_orders {values['max_orders']!r} must be a whole number") from None
    if max_orders <= 0:
        raise ParseError("max_orders must be positive")
    max_loss = _positive(values["max_loss"], "max_loss")
    expiry_s = parse_ttl(values["expiry"], what="expiry")
    assets = tuple(_asset(a) for a in values["assets"].split(",") if a) if "assets" in values else None
    params = {k: v for k, v in values.items() if k not in BOUND_KEYS}
    return MandateSpec(strategy_id, params, assets, max_notional, max_orders, max_loss, expiry_s, values)
