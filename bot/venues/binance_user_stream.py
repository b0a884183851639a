"""Binance's user-data stream: fills, cancels, rejects and balances as they happen (spec 4.7.4: WS first).

- A listen key is created with the *read* key (``POST /api/v3/userDataStream``; no trading permission
  needed), kept alive every ``keepalive_s`` and replaced when it expires (``listenKeyExpired``, -1125).
- ``executionReport`` -> ``ExecutionReport`` to the venue's report sink (NEW -> ACCEPTED, TRADE -> a fill
  with the venue's trade id, CANCELED with the *original* client id from ``C``, REJECTED, EXPIRED).
  Duplicated events are dropped (each trade id once, through the venue's fill ledger).
- ``outboundAccountPosition`` -> ``PositionUpdate`` (spot: base asset free + locked) through the report sink
  (the OMS cleans a dirty position with it), and the balances to ``on_balances``.
- Stream health for the OMS (``bot.oms.feed.FeedHealth``): ``connected()`` / ``disconnected(reason)`` on
  every change, ``alive()`` on every message and every heartbeat pong; and ``StreamStatus`` to ``on_status``.
- Missed fills: Binance spot has no contiguous fill sequence, so a fill the stream skipped is detected by
  the order's cumulative quantity (``z`` minus this fill's ``l`` is more than we were given) and recovered
  by an immediate REST poll of trades since the last id; the same poll runs after every reconnect (the fills
  of the outage) and periodically as a safety net (``poll_interval_s``, ``fallback_interval_s`` while the
  stream is down), so a fill never depends on the stream alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.intent import Side
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.ports import Clock
from bot.domain.streams import SequenceGap, StreamStatus
from bot.domain.venue import Balance, ExecutionReport, PositionUpdate, VenueError
from bot.oms.feed import FeedHealth
from bot.venues.ccxt_venue import CcxtVenue
from bot.venues.instruments import optional_decimal
from bot.venues.retry import Backoff
from bot.venues.ws import ReconnectingWebSocket, Sleep

log = logging.getLogger(__name__)

MS = 1_000_000
StatusFn = Callable[[StreamStatus], None]
GapFn = Callable[[SequenceGap], None]
BalancesFn = Callable[[Mapping[str, Balance]], None]


class BinanceUserStream:
    def __init__(
        self,
        *,
        venue: CcxtVenue,
        ws_url: str,
        clock: Clock,
        keepalive_s: float,
        poll_interval_s: float,
        fallback_interval_s: float,
        backoff: Backoff | None = None,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 10.0,
        on_status: StatusFn | None = None,
        on_gap: GapFn | None = None,
        on_balances: BalancesFn | None = None,
        feed_health: FeedHealth | None = None,
        rng: random.Random | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.venue = venue
        self._ws_url = ws_url.rstrip("/")
        self._clock = clock
        self._keepalive_s = keepalive_s
        self._poll_s = poll_interval_s
        self._fallback_s = fallback_interval_s
        self._on_status = on_status
        self._on_gap = on_gap
        self._on_balances = on_balances
        self.feed_health = feed_health
        self.listen_key: str | None = None
        self.healthy: bool | None = None
        self._primed = False
        self._seen_events: deque[tuple[Any, ...]] = deque(maxlen=4096)
        self._seen_set: set[tuple[Any, ...]] = set()
        self._poll_lock = asyncio.Lock()
        self._poll_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.polls = 0
        self.ws = ReconnectingWebSocket(
            f"{venue.name} user data",
            url=self._url,
            on_message=self._on_message,
            on_state=self._on_state,
            clock=clock,
            backoff=backoff or Backoff(0.25, 30.0),
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
            rng=rng,
            sleep=sleep,
            on_alive=feed_health.alive if feed_health is not None else None,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._tasks or self._closed:
            return
        await self.prime()
        self._tasks = [
            asyncio.create_task(self.ws.run(), name=f"{self.venue.name}-user-ws"),
            asyncio.create_task(self._keepalive_loop(), name=f"{self.venue.name}-listen-key"),
            asyncio.create_task(self._poll_loop(), name=f"{self.venue.name}-trade-poll"),
        ]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._side_tasks, return_exceptions=True)
        if self.listen_key is not None:
            try:
                await self.venue.read.raw("listen_key_close", "public_delete_userdatastream", {"listenKey": self.listen_key})
            except VenueError as exc:
                log.warning("closing the listen key failed: %s", exc.code)

    async def prime(self) -> None:
        """Start the REST poll after the newest existing trade (older trades are not this run's fills)."""
        if self._primed:
            return
        for asset in self.venue.assets:
            if asset in self.venue.ledger.poll_watermark:
                continue
            inst = self.venue.instruments[asset]
            trades = await self.venue.read.fetch_my_trades(inst.symbol, {}, limit=1)
            self.venue.ledger.poll_watermark[asset] = max((int(t["id"]) for t in trades), default=0)
        self._primed = True

    async def _url(self) -> str:
        answer = await self.venue.read.raw("listen_key", "public_post_userdatastream", {})
        self.listen_key = str(answer["listenKey"])
        return f"{self._ws_url}/ws/{self.listen_key}"

    # ------------------------------------------------------------------ health
    def _status(self, healthy: bool, reason: str) -> None:
        if self.healthy is healthy:
            return
        self.healthy = healthy
        self.venue.metrics.events[f"user_{'healthy' if healthy else 'unhealthy'}"] += 1
        status = StreamStatus(self.venue.name, "user", healthy, None if healthy else ErrorCode.WS_STALE, reason, self._clock.now_ns())
        if healthy:
            log.info("%s user-data stream healthy: %s", self.venue.name, reason)
        else:
            log.warning("%s user-data stream down: %s", self.venue.name, reason)
        if self._on_status is not None:
            self._on_status(status)

    async def _on_state(self, connected: bool, reason: str) -> None:
        if self.feed_health is not None:
            if connected:
                self.feed_health.connected()
            else:
                self.feed_health.disconnected(reason)
        if connected:
            self._status(True, reason)
            self._spawn(self.poll_all("reconnect", anomaly=False))  # the fills of the outage, if any
        else:
            self._status(False, reason)
            self._poll_wakeup.set()  # fall back to polling at once

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # ------------------------------------------------------------------ REST poll
    async def poll_all(self, reason: str, *, anomaly: bool | None = None) -> int:
        """Poll every asset. A fill found while the stream was healthy is an anomaly (reported as a gap)."""
        async with self._poll_lock:
            self.polls += 1
            total = 0
            flag = self.healthy is True if anomaly is None else anomaly
            for asset in self.venue.assets:
                try:
                    total += await self.venue.poll_fills(asset, reason, anomaly=flag)
                except VenueError as exc:
                    log.warning("%s: trade poll of %s failed: %s", self.venue.name, asset, exc.code)
            return total

    async def _poll_loop(self) -> None:
        while not self._closed:
            interval = self._poll_s if self.healthy else self._fallback_s
            try:
                await asyncio.wait_for(self._poll_wakeup.wait(), interval)
            except TimeoutError:
                pass
            self._poll_wakeup.clear()
            await self.poll_all("poll" if self.healthy else "fallback")

    async def _keepalive_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._keepalive_s)
            await self.keepalive()

    async def keepalive(self) -> None:
        key = self.listen_key
        if key is None:
            return
        try:
            await self.venue.read.raw("listen_key_keepalive", "public_put_userdatastream", {"listenKey": key})
        except VenueError as exc:
            log.warning("%s: listen key keepalive failed (%s): reconnecting with a new key", self.venue.name, exc.code)
            self.listen_key = None
            await self.ws.reconnect("listen key keepalive failed")

    # ------------------------------------------------------------------ messages
    async def _on_message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        if not isinstance(message, dict):
            return
        data = message.get("data", message) if "stream" in message else message
        event = data.get("e")
        if event == "executionReport":
            await self._execution_report(data)
        elif event == "outboundAccountPosition":
            self._account_position(data)
        elif event == "listenKeyExpired":
            self.venue.metrics.events["listen_key_expired"] += 1
            self.listen_key = None
            await self.ws.reconnect("listen key expired")
        else:
            self.venue.metrics.events["user_other_events"] += 1

    def _duplicate(self, data: Mapping[str, Any]) -> bool:
        key = (data.get("s"), data.get("i"), data.get("x"), data.get("X"), data.get("z"), data.get("t"), data.get("E"))
        if key in self._seen_set:
            self.venue.metrics.events["duplicate_events_dropped"] += 1
            return True
        if len(self._seen_events) == self._seen_events.maxlen:
            self._seen_set.discard(self._seen_events[0])
        self._seen_events.append(key)
        self._seen_set.add(key)
        return False

    async def _execution_report(self, d: Mapping[str, Any]) -> None:
        asset = self.venue.asset_of(str(d.get("s")))
        if asset is None:
            self.venue.metrics.events["reports_other_symbols"] += 1
            return
        if self._duplicate(d):
            return
        venue = self.venue
        inst = venue.instruments[asset]
        exec_type = str(d.get("x"))
        status = venue.dialect.status(d.get("X"))
        if status is None:
            log.warning("%s: executionReport with unknown status %r ignored (reconciliation resolves it)", venue.name, d.get("X"))
            return
        # "C" is the original client id on cancels (then "c" is the cancel's own id); empty otherwise
        client_order_id = str(d.get("C") or d.get("c") or "")
        venue_order_id = str(d.get("i"))
        local_ns = self._clock.now_ns()
        event_ns = int(d.get("E") or 0) * MS
        fill = None
        code = None
        reason = ""
        latency = None
        if exec_type == "TRADE":
            qty = optional_decimal(d.get("l"), field="l") or ZERO
            cum = optional_decimal(d.get("z"), field="z") or ZERO
            price = optional_decimal(d.get("L"), field="L") or ZERO
            fee = optional_decimal(d.get("n"), field="n") or ZERO
            currency = str(d.get("N") or inst.quote)
            trade_ns = int(d.get("T") or d.get("E") or 0) * MS
            latency = max(0, local_ns + (venue.clock_sync.offset_ns if venue.clock_sync else 0) - trade_ns)
            venue.metrics.fill.add(latency)
            delivered_before = venue.ledger.delivered_qty(asset, venue_order_id)
            missing = cum - qty - delivered_before
            if missing > 0 and not venue.ledger.seen(asset, str(d.get("t"))):
                log.warning("%s: %s fills of %s missing before trade %s: polling trades", venue.name, missing, client_order_id, d.get("t"))
                venue.metrics.events["fill_gaps"] += 1
                self._spawn(self.poll_all(f"stream skipped {missing} of {client_order_id}", anomaly=True))
            fill = Fill(
                fill_id=str(d.get("t")),
                client_order_id=client_order_id,
                venue_order_id=venue_order_id,
                venue=venue.name,
                asset=asset,
                side=Side.BUY if d.get("S") == "BUY" else Side.SELL,
                qty=qty,
                price=price,
                fee=fee,
                fee_currency=currency,
                fee_quote=await venue.fee_quote(inst, fee, currency, price),
                is_maker=bool(d.get("m")),
                ts_ns=trade_ns,
            )
        elif exec_type == "REJECTED" or status is OrderStatus.REJECTED:
            code = ErrorCode.ORDER_REJECTED
            reason = f"rejected by the venue: {d.get('r')}"
        elif exec_type in ("CANCELED", "EXPIRED", "TRADE_PREVENTION"):
            reason = f"{exec_type.lower()} at the venue"
        report = ExecutionReport(
            venue=venue.name,
            client_order_id=client_order_id,
            venue_order_id=venue_order_id,
            status=status,
            ts_ns=fill.ts_ns if fill is not None else event_ns,
            local_ts_ns=local_ns,
            fill=fill,
            cum_filled_qty=optional_decimal(d.get("z"), field="z"),
            code=code,
            reason=reason,
            seq=int(d["t"]) if fill is not None and str(d.get("t", "")).lstrip("-").isdigit() else None,
            latency_ns=latency,
        )
        venue.deliver_stream_report(asset, report)

    def _account_position(self, d: Mapping[str, Any]) -> None:
        rows = d.get("B") or []
        balances = {}
        for row in rows:
            ccy = str(row.get("a"))
            balances[ccy] = Balance(ccy, optional_decimal(row.get("f"), field="f") or ZERO, optional_decimal(row.get("l"), field="l") or ZERO)
        if self._on_balances is not None and balances:
            self._on_balances(balances)
        ts = int(d.get("u") or d.get("E") or 0) * MS
        local = self._clock.now_ns()
        for asset, inst in self.venue.instruments.items():
            bal = balances.get(inst.base)
            if bal is not None:
                self.venue.deliver_position(PositionUpdate(self.venue.name, asset, bal.total, ts, local))
