"""Market-making quotes (reference card 01, "MM quote model").

    bid = mid - spread/2 - skew        ask = mid + spread/2 - skew        skew = k * (inventory / cap) * spread

- **spread** is a fraction of the mid: ``2 * fee + sigma`` where ``fee`` is the instrument's maker fee (or the
  ``fee`` parameter) and ``sigma`` the standard deviation of 1-minute returns (below). ``spread_bps`` replaces the
  model with a fixed spread.
- **skew** moves both quotes against the inventory: long -> both lower (encourage selling), short -> both higher.
  ``k`` is in units of the spread: with the default k = 0.3 the quotes move by 0.3 spread when |inventory| = cap
  (linear in between, and beyond the cap).
- **never cross**: a bid is at most one tick below the best ask and an ask at least one tick above the best bid;
  quotes are rounded to the tick passively (bid down, ask up) and are at least ``min_spread_ticks`` apart.
- **inventory cap**: the side whose fill would take the strategy's inventory past ``inventory_cap`` is not quoted
  (and its resting quote is cancelled).

Sigma from event-time history: ticks are bucketed by UTC minute of their event time (``ts_local_ns``); the close
of a minute is the mid of its last tick. When a tick opens a new minute, the return of the minute that just
closed is ``close / previous close - 1``; if minutes without ticks lie in between, the return spans them and is
scaled to one minute by dividing by sqrt(number of minutes). ``sigma`` is the sample standard deviation (n - 1)
of the last ``sigma_window`` returns. **Warm-up**: until ``sigma_min_samples`` returns exist (that is
``sigma_min_samples + 1`` closed minutes), the strategy quotes nothing, unless ``sigma_prior`` is given, in which
case it quotes with that sigma until the estimate is ready. ``spread_bps`` needs no warm-up.

Replacing quotes: by default a side is replaced (cancel + place) when its desired price moved by at least
``requote_ticks`` ticks, at most once per ``min_requote_ms`` of event time; with ``refresh_ticks = N`` both sides
are cancelled and replaced on every N-th tick of the asset instead. ``shadow = true`` computes the quotes on every
tick (``last_quotes``) and emits nothing (shadow mode, spec 16). Quotes are post-only (LIMIT_MAKER) unless
``post_only = false``.

Risk advice (``ctx.advice``, read every tick): in PULL the strategy cancels its quotes at once and places none; in
WIDEN it multiplies its spread by ``spread_mult``; ``size_scale`` (the drawdown throttle) scales its order size
(rounded down to the lot; a size that rounds to nothing quotes nothing). Risk enforces all of it anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, NamedTuple

from bot.domain.intent import Intent, OrderType, Side
from bot.domain.money import ZERO, ceil_to_step, floor_to_step, to_decimal
from bot.domain.order import OrderStatus
from bot.engine.strategy import Strategy, StrategyContext
from bot.risk.advice import NORMAL, Advice, QuoteMode

MINUTE_NS = 60_000_000_000
ONE = Decimal(1)
TWO = Decimal(2)
BPS = Decimal(10_000)


class Quotes(NamedTuple):
    """The last quotes computed for an asset (None: that side is not quoted)."""

    ts_ns: int
    mid: Decimal
    bid: Decimal | None
    ask: Decimal | None
    sigma: Decimal | None
    inventory: Decimal


class _AssetQuote:
    """Per-asset state: sigma estimator, cached factors, last quotes."""

    __slots__ = (
        "tick_size", "fast_round", "bucket", "last_mid", "prev_close", "prev_bucket", "returns", "sigma",
        "inv", "bid_factor", "ask_factor", "can_buy", "can_sell", "dirty", "ticks", "last_requote_ns", "fee",
        "q_ts", "q_bid", "q_ask", "advice", "qty", "lot", "min_gap",
    )

    def __init__(self, window: int) -> None:
        self.tick_size = ZERO
        self.fast_round = False
        self.bucket = -1
        self.last_mid = ZERO
        self.prev_close: Decimal | None = None
        self.prev_bucket = -1
        self.returns: deque[Decimal] = deque(maxlen=window)
        self.sigma: Decimal | None = None
        self.inv: Decimal | None = None
        self.bid_factor = ONE
        self.ask_factor = ONE
        self.can_buy = False
        self.can_sell = False
        self.dirty = True
        self.ticks = 0
        self.last_requote_ns: int | None = None
        self.fee = ZERO
        self.q_ts = 0  # the last quotes (kept as fields: no allocation per tick)
        self.q_bid: Decimal | None = None
        self.q_ask: Decimal | None = None
        self.advice: Advice = NORMAL  # risk's advice the factors were computed with
        self.qty = ZERO  # the order size under that advice
        self.lot = ZERO
        self.min_gap = ZERO


class QuoteStrategy(Strategy):
    name = "quote"

    def __init__(self, strategy_id: str, params: Mapping[str, Any], assets: Sequence[str]) -> None:
        super().__init__(strategy_id, params, assets)
        p = dict(params)
        self.order_qty = _positive(p.pop("order_qty", "0.001"), "order_qty")
        self.inventory_cap = _positive(p.pop("inventory_cap", "0.01"), "inventory_cap")
        self.k = to_decimal(p.pop("k", "0.3"), field="quote.k")
        fee = p.pop("fee", None)
        self.fee = None if fee is None else to_decimal(fee, field="quote.fee")
        spread_bps = p.pop("spread_bps", None)
        self.spread_bps = None if spread_bps is None else _positive(spread_bps, "spread_bps")
        self.sigma_window = _int(p.pop("sigma_window", 60), "sigma_window", 2, 10_000)
        self.sigma_min_samples = _int(p.pop("sigma_min_samples", 10), "sigma_min_samples", 2, 10_000)
        prior = p.pop("sigma_prior", None)
        self.sigma_prior = None if prior is None else to_decimal(prior, field="quote.sigma_prior")
        self.min_spread_ticks = _int(p.pop("min_spread_ticks", 1), "min_spread_ticks", 1, 1_000_000)
        self.requote_ticks = _int(p.pop("requote_ticks", 1), "requote_ticks", 1, 1_000_000)
        self.min_requote_ns = _int(p.pop("min_requote_ms", 1000), "min_requote_ms", 0, 86_400_000) * 1_000_000
        self.refresh_ticks = _int(p.pop("refresh_ticks", 0), "refresh_ticks", 0, 1_000_000)
        self.shadow = _bool(p.pop("shadow", False), "shadow")
        self.post_only = _bool(p.pop("post_only", True), "post_only")
        if p:
            raise ValueError(f"quote: unknown parameter(s) {sorted(p)}")
        if not ZERO <= self.k <= ONE:
            raise ValueError(f"quote: k must be between 0 and 1, got {self.k}")
        if self.sigma_min_samples > self.sigma_window:
            raise ValueError("quote: sigma_min_samples must not exceed sigma_window")
        if self.fee is not None and not Decimal("-0.01") <= self.fee <= Decimal("0.01"):
            raise ValueError(f"quote: fee is a fraction of notional (0.001 = 10 bps), got {self.fee}")
        if self.sigma_prior is not None and not ZERO <= self.sigma_prior < ONE:
            raise ValueError(f"quote: sigma_prior is a fraction (0.0005 = 5 bps), got {self.sigma_prior}")
        if self.order_qty > self.inventory_cap:
            raise ValueError("quote: order_qty must not exceed inventory_cap (no side could ever be quoted)")
        self._order_type = OrderType.LIMIT_MAKER if self.post_only else OrderType.LIMIT
        self._min_gap_ticks = Decimal(self.min_spread_ticks)
        self._states: dict[str, _AssetQuote] = {}

    # ------------------------------------------------------------------ the model (pure)
    def spread_fraction(self, sigma: Decimal | None, fee: Decimal) -> Decimal | None:
        """The spread as a fraction of the mid, or None while sigma is unknown (warm-up)."""
        if self.spread_bps is not None:
            return self.spread_bps / BPS
        if sigma is None:
            return None
        return max(TWO * fee + sigma, ZERO)

    def quote(
        self, mid: Decimal, inventory: Decimal, spread: Decimal, tick: Decimal, best_bid: Decimal, best_ask: Decimal
    ) -> tuple[Decimal | None, Decimal | None]:
        """(bid, ask) for one mid; ``spread`` is a fraction of the mid. None = that side is not quoted."""
        bid_factor, ask_factor = self.factors(inventory, spread)
        bid = floor_to_step(mid * bid_factor, tick)
        ask = ceil_to_step(mid * ask_factor, tick)
        can_buy, can_sell = self.sides(inventory)
        return self._finish(bid, ask, tick, best_bid, best_ask, can_buy, can_sell)

    def factors(self, inventory: Decimal, spread: Decimal) -> tuple[Decimal, Decimal]:
        """bid = mid * bid_factor, ask = mid * ask_factor: 1 -/+ spread/2 - k * (inventory/cap) * spread."""
        skew = self.k * (inventory / self.inventory_cap) * spread
        half = spread / TWO
        return ONE - half - skew, ONE + half - skew

    def sides(self, inventory: Decimal, qty: Decimal | None = None) -> tuple[bool, bool]:
        """(may bid, may ask): a side whose fill would take the inventory past the cap is not quoted."""
        q = self.order_qty if qty is None else qty
        return inventory + q <= self.inventory_cap, inventory - q >= -self.inventory_cap

    def _finish(
        self, bid: Decimal, ask: Decimal, tick: Decimal, best_bid: Decimal, best_ask: Decimal, can_buy: bool, can_sell: bool
    ) -> tuple[Decimal | None, Decimal | None]:
        if bid >= best_ask:
            bid = best_ask - tick
        if ask <= best_bid:
            ask = best_bid + tick
        if ask - bid < self._min_gap_ticks * tick:
            ask = bid + self._min_gap_ticks * tick
        return (bid if can_buy and bid > 0 else None), (ask if can_sell else None)

    def sigma(self, returns: Sequence[Decimal]) -> Decimal | None:
        n = len(returns)
        if n < self.sigma_min_samples:
            return self.sigma_prior
        mean = sum(returns, ZERO) / n
        var = sum(((r - mean) * (r - mean) for r in returns), ZERO) / (n - 1)
        return var.sqrt()

    def last_quotes(self, asset: str) -> Quotes | None:
        st = self._states.get(asset)
        if st is None or st.ticks == 0:
            return None
        return Quotes(st.q_ts, st.last_mid, st.q_bid, st.q_ask, st.sigma, st.inv if st.inv is not None else ZERO)

    # ------------------------------------------------------------------ event time: the sigma estimator
    def _roll(self, st: _AssetQuote, bucket: int) -> None:
        """A tick opened a new minute: the previous minute closed at ``st.last_mid``."""
        if st.bucket >= 0:
            close = st.last_mid
            if st.prev_close is not None:
                r = close / st.prev_close - ONE
                gap = st.bucket - st.prev_bucket
                if gap > 1:
                    r = r / Decimal(gap).sqrt()
                st.returns.append(r)
                sigma = self.sigma(st.returns)
                if sigma != st.sigma:
                    st.sigma = sigma
                    st.dirty = True
            st.prev_close = close
            st.prev_bucket = st.bucket
        st.bucket = bucket

    def _state(self, ctx: StrategyContext, asset: str) -> _AssetQuote:
        st = self._states[asset] = _AssetQuote(self.sigma_window)
        inst = ctx.instrument(asset)
        st.tick_size = inst.tick_size
        # a power-of-ten tick (0.01) rounds with one quantize; other ticks (0.5) divide and multiply
        shape = inst.tick_size.as_tuple()
        st.fast_round = shape.digits == (1,) and isinstance(shape.exponent, int) and shape.exponent <= 0
        st.fee = self.fee if self.fee is not None else inst.fees.maker
        st.sigma = self.sigma_prior
        st.qty = self.order_qty
        st.lot = inst.lot_size
        st.min_gap = inst.tick_size * self.min_spread_ticks
        return st

    def _refactor(self, st: _AssetQuote, inv: Decimal, advice: Advice) -> None:
        """Recompute the cached factors: sigma, inventory or risk's advice changed."""
        spread = self.spread_fraction(st.sigma, st.fee)
        st.inv = inv
        st.dirty = False
        st.qty = self._size(st, advice)
        if spread is None or advice.mode is QuoteMode.PULL or st.qty <= 0:
            st.can_buy = st.can_sell = False  # warm-up, pulled by risk, or a size that rounds to nothing
            return
        if advice.spread_mult != 1:
            spread = spread * advice.spread_mult
        st.bid_factor, st.ask_factor = self.factors(inv, spread)
        st.can_buy, st.can_sell = self.sides(inv, st.qty)

    def _size(self, st: _AssetQuote, advice: Advice) -> Decimal:
        if advice.size_scale == 1:
            return self.order_qty
        scaled = self.order_qty * advice.size_scale
        return (scaled / st.lot).to_integral_value(rounding="ROUND_DOWN") * st.lot if scaled > 0 else ZERO

    # ------------------------------------------------------------------ strategy hooks
    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        # the hot path (every tick): one unpack, cached factors, two multiplications and two quantizes
        asset, best_bid, _bsz, best_ask, _asz, _tsv, ts, _seq, _venue, _last = ctx.tick  # type: ignore[misc]
        st = self._states.get(asset)
        if st is None:
            st = self._state(ctx, asset)
        mid = (best_bid + best_ask) / TWO
        bucket = ts // MINUTE_NS
        if bucket != st.bucket:
            self._roll(st, bucket)
        st.last_mid = mid
        st.ticks += 1
        inv = ctx.position(asset)
        advice = ctx.advice(asset)
        if advice is not st.advice and advice != st.advice:
            st.advice = advice
            st.dirty = True
        if st.dirty or inv != st.inv:
            self._refactor(st, inv, advice)
        if st.can_buy or st.can_sell:
            tick_size = st.tick_size
            if st.fast_round:
                bid = (mid * st.bid_factor).quantize(tick_size, ROUND_FLOOR)
                ask = (mid * st.ask_factor).quantize(tick_size, ROUND_CEILING)
            else:
                bid = floor_to_step(mid * st.bid_factor, tick_size)
                ask = ceil_to_step(mid * st.ask_factor, tick_size)
            if bid >= best_ask:  # never cross
                bid = best_ask - tick_size
            if ask <= best_bid:
                ask = best_bid + tick_size
            if ask - bid < st.min_gap:
                ask = bid + st.min_gap
            if not st.can_buy or bid <= ZERO:
                bid = None
            if not st.can_sell:
                ask = None
        else:
            bid = ask = None
        st.q_ts = ts
        st.q_bid = bid
        st.q_ask = ask
        if self.shadow:
            return []
        if advice.mode is QuoteMode.PULL:
            return self._requote(ctx, asset, None, None, mid, st, True)  # cancel what rests, now
        if self.refresh_ticks:
            if st.ticks % self.refresh_ticks:
                return []
            force = True
        else:
            last = st.last_requote_ns
            if last is not None and ts - last < self.min_requote_ns:
                return []
            force = False
        out = self._requote(ctx, asset, bid, ask, mid, st, force)
        if out:
            st.last_requote_ns = ts
        return out

    def _requote(
        self, ctx: StrategyContext, asset: str, bid: Decimal | None, ask: Decimal | None, mid: Decimal, st: _AssetQuote, force: bool
    ) -> list[Intent]:
        out: list[Intent] = []
        threshold = st.tick_size * self.requote_ticks
        live = [o for o in ctx.open_orders(asset) if o.status is not OrderStatus.PENDING_CANCEL]
        for side, price, tag in ((Side.BUY, bid, "bid"), (Side.SELL, ask, "ask")):
            current = [o for o in live if o.tag == tag]
            if (
                not force
                and price is not None
                and len(current) == 1
                and current[0].limit_price is not None
                and abs(current[0].limit_price - price) < threshold
            ):
                continue
            if not current and price is None:
                continue
            reason = f"pull {tag}: {st.advice.reason}" if st.advice.mode is QuoteMode.PULL else f"replace {tag}"
            out.extend(ctx.cancel(o, rationale=reason) for o in current)
            if price is not None:
                advice = st.advice
                out.append(
                    ctx.place(
                        asset, side, st.qty, price=price, order_type=self._order_type, tag=tag, risk_tags=("quote",),
                        rationale=f"{tag} {price} mid={mid} sigma={st.sigma} inv={st.inv}"
                        + (f" {advice.mode.value} {advice.reason}" if advice is not NORMAL else ""),
                    )
                )
        return out


def _positive(value: object, name: str) -> Decimal:
    d = to_decimal(value, field=f"quote.{name}")
    if d <= 0:
        raise ValueError(f"quote: {name} must be positive, got {d}")
    return d


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"quote: {name} must be an integer, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"quote: {name} must be an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise ValueError(f"quote: {name} must be between {lo} and {hi}, got {n}")
    return n


def _bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"quote: {name} must be true or false, got {value!r}")
