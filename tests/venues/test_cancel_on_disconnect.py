"""Cancel-on-disconnect cancels resting orders at the venue; the dead man's switch where the venue has one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.streams import StreamStatus
from bot.domain.venue import OrderRequest
from bot.engine.clock import ManualClock
from bot.venues.cancel_on_disconnect import CancelOnDisconnect, DeadMansSwitch
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import TRADE_KEY, Harness, is_status, make_harness

D = Decimal


def order(coid: str, asset: str = "BTC/USDT", side: Side = Side.BUY, price: str = "99") -> OrderRequest:
    return OrderRequest(coid, asset, side, D("0.1") if asset == "BTC/USDT" else D("0.01"), OrderType.LIMIT, D(price), TimeInForce.GTC)


async def test_user_stream_death_cancels_resting_orders_at_the_venue(fake: FakeBinance, harness: Harness) -> None:
    fake.set_balance("ETH", "1")
    await harness.venue.place_order(order("r-1"))
    await harness.venue.place_order(order("r-2", side=Side.SELL, price="120"))
    await harness.venue.place_order(order("r-3", asset="ETH/USDT", side=Side.SELL, price="2100"))
    assert len(fake.open_orders("BTC/USDT")) == 2 and len(fake.open_orders("ETH/USDT")) == 1
    harness.sleeps.hold()  # keep the streams down while we look
    await fake.drop_streams()
    await harness.statuses.wait_for(is_status("user", False))
    await harness.live.cancel_on_disconnect.wait_idle()
    assert fake.open_orders() == [] and fake.open_orders("ETH/USDT") == []  # cancelled at the venue
    cancels = [r for r in harness.reports.items if r.status is OrderStatus.CANCELED]
    assert sorted(r.client_order_id for r in cancels) == ["r-1", "r-2", "r-3"]  # the OMS hears of them
    assert all("cancel-all" in r.reason and r.venue_order_id for r in cancels)
    assert any(a[0] == "warning" and "Cancelled 3 resting order(s)" in a[2] for a in harness.alerts.items)
    assert {r.api_key for r in fake.requests_for("DELETE", "openOrders")} == {TRADE_KEY}
    harness.sleeps.release()
    await harness.statuses.wait_count(is_status("user", True), 2)


async def test_stale_market_data_cancels_that_assets_orders(fake: FakeBinance, harness: Harness) -> None:
    fake.set_balance("ETH", "1")
    await harness.venue.place_order(order("btc-1"))
    await harness.venue.place_order(order("eth-1", asset="ETH/USDT", side=Side.SELL, price="2100"))
    harness.live.cancel_on_disconnect.on_status(
        StreamStatus("binance", "market", False, ErrorCode.MARKET_DATA_STALE, "no update for 11 s", 0, "ETH/USDT"))
    await harness.live.cancel_on_disconnect.wait_idle()
    assert fake.open_orders("ETH/USDT") == [] and [o.client_order_id for o in fake.open_orders("BTC/USDT")] == ["btc-1"]


async def test_service_stop_cancels_resting_orders(fake: FakeBinance) -> None:
    h = make_harness(fake)
    await h.live.start()
    await h.venue.place_order(order("stop-1"))
    await h.live.stop("service stop")
    assert fake.open_orders() == []
    assert fake.order("stop-1").status == "CANCELED"
    assert fake.listen_keys == {}  # the listen key was closed too


async def test_not_armed_means_an_alert_naming_what_is_still_resting(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(order("na-1"))
    harness.disarm()
    reports = await harness.live.cancel_on_disconnect.sweep("user stream down")
    assert reports == [] and [o.client_order_id for o in fake.open_orders()] == ["na-1"]
    critical = [a for a in harness.alerts.items if a[0] == "critical"]
    assert len(critical) == 1 and "1 resting order(s)" in critical[0][2] and "not armed" in critical[0][2]
    harness.arm()


async def test_not_armed_with_nothing_resting_is_quiet(fake: FakeBinance, harness: Harness) -> None:
    harness.disarm()
    assert await harness.live.cancel_on_disconnect.sweep("user stream down") == []
    assert not [a for a in harness.alerts.items if a[0] == "critical"]
    harness.arm()


async def test_disabled_does_nothing(fake: FakeBinance) -> None:
    h = make_harness(fake, cancel_on_disconnect=False)
    await h.live.start()
    try:
        await h.venue.place_order(order("keep-1"))
        h.live.cancel_on_disconnect.on_status(StreamStatus("binance", "user", False, ErrorCode.WS_STALE, "gone", 0))
        await h.live.cancel_on_disconnect.wait_idle()
        assert len(fake.open_orders()) == 1
    finally:
        await h.live.stop()
        assert len(fake.open_orders()) == 1  # and not at stop either: the operator chose so


# ---------------------------------------------------------------------------- dead man's switch
class _StubTrade:
    def __init__(self, supported: bool) -> None:
        self.supports_cancel_all_after = supported
        self.calls: list[int] = []

    async def cancel_all_orders_after(self, timeout_ms: int) -> Any:
        self.calls.append(timeout_ms)
        return {}


class _StubVenue:
    name = "stub"

    def __init__(self, trade: _StubTrade | None) -> None:
        self.trade = trade

    @property
    def has_trade_client(self) -> bool:
        return self.trade is not None

    async def trade_client_if_armed(self) -> _StubTrade | None:
        return self.trade


async def test_dead_mans_switch_is_armed_and_refreshed_where_supported() -> None:
    clock = ManualClock(0)
    trade = _StubTrade(supported=True)
    dms = DeadMansSwitch(_StubVenue(trade), timeout_s=60, clock=clock)  # type: ignore[arg-type]
    assert dms.due()
    assert await dms.refresh() and trade.calls == [60_000]
    assert not dms.due()
    clock.advance(19 * 10**9)
    assert not dms.due()
    clock.advance(1 * 10**9)  # every timeout/3
    assert dms.due()
    dms.kick()
    assert dms._task is not None
    await dms._task
    assert trade.calls == [60_000, 60_000] and dms.refreshes == 2
    await dms.disarm()
    assert trade.calls[-1] == 0


async def test_dead_mans_switch_off_where_unsupported_or_not_armed() -> None:
    clock = ManualClock(0)
    trade = _StubTrade(supported=False)
    dms = DeadMansSwitch(_StubVenue(trade), timeout_s=60, clock=clock)  # type: ignore[arg-type]
    assert not await dms.refresh() and dms.supported is False and not dms.due()
    assert trade.calls == []
    idle = DeadMansSwitch(_StubVenue(None), timeout_s=60, clock=clock)  # type: ignore[arg-type]
    idle.kick()
    assert idle._task is None and not await idle.refresh()


async def test_binance_spot_has_no_server_side_switch(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(order("dms-1"))  # builds the trade client
    assert not await harness.live.dead_mans_switch.refresh()
    assert harness.live.dead_mans_switch.supported is False
    await harness.live.engine_guard()  # runs from the engine loop: nothing to refresh, nothing blocks
    assert harness.live.dead_mans_switch._task is None


def test_cancel_on_disconnect_ignores_healthy_and_unrelated_statuses() -> None:
    cod = CancelOnDisconnect(None, enabled=True)  # type: ignore[arg-type]
    cod.on_status(StreamStatus("binance", "market", True, None, "connected", 0))
    cod.on_status(StreamStatus("binance", "market", False, ErrorCode.MARKET_DATA_STALE, "stale", 0, None))
    assert cod._tasks == set()
