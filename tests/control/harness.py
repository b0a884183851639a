"""A running control plane for tests: real PTB over HTTP against FakeTelegram, a real engine, a real store.

The parts are composed with the service's own ``build_control_core`` / ``build_control_plane`` (the same wiring
as ``bot run``), around an engine in LIVE or DRY_RUN mode whose venue is the simulated venue behind a recorder
(``placed`` lists every order request that reached the venue: the thing the invariants are about).

Time is a ManualClock that starts at the wall time (messages carry wall-clock dates); ``advance`` moves it.
Messages are dated with the clock, so a test that advances the clock still sends fresh messages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import Settings, TelegramSettings, public_dict
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import Intent, Side
from bot.domain.market import Tick
from bot.domain.modes import Mode
from bot.domain.position import Portfolio
from bot.domain.venue import ExecutionReport, OrderRequest
from bot.engine.clock import ManualClock
from bot.engine.loop import Engine, StrategyMeta
from bot.engine.market_state import MarketState
from bot.engine.sim_venue import SimulatedVenue
from bot.engine.strategy import Strategy, StrategyContext
from bot.strategies.manual import MANUAL, ManualStrategy
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.risk.engine import RiskEngine
from bot.risk.limits import RiskLimits
from bot.risk.safety import SafetyController
from bot.service import Control, build_control_core, build_control_plane
from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.kv import KVStore
from tests.fakes.telegram_server import FakeTelegram, SentMessage

NS = 1_000_000_000
OP = 1001  # an allowlisted operator (private chat id = user id)
OP2 = 1002  # a second allowlisted operator
GROUP = -1002003004005  # an allowlisted group
STRANGER = 6666  # not allowlisted
OTHER_CHAT = -1009999  # a group that is not allowlisted
ASSET = "BTC/USDT"
BOUND = 10.0


class QueueFeed:
    """A MarketFeed the test pushes ticks into."""

    def __init__(self) -> None:
        self._q: asyncio.Queue[Sequence[Tick] | None] = asyncio.Queue()

    def push(self, ticks: Sequence[Tick]) -> None:
        self._q.put_nowait(ticks)

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        while True:
            item = await self._q.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        return None


class RecordingVenue:
    """The simulated venue, recording every order request that reaches it."""

    def __init__(self, inner: SimulatedVenue) -> None:
        self._inner = inner
        self.placed: list[OrderRequest] = []
        self.name = inner.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self._inner, item)

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        self.placed.append(request)
        return await self._inner.place_order(request)


class EveryTick(Strategy):
    """Test strategy: one passive limit buy per tick while ``on`` (to exercise staging and mandates)."""

    name = "everytick"

    def __init__(self, strategy_id: str, params: Mapping[str, Any], assets: Sequence[str]) -> None:
        super().__init__(strategy_id, params, assets)
        self.on = False

    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        if not self.on or ctx.tick is None:
            return []
        price = ctx.tick.bid - Decimal(self.params.get("offset", "1000"))
        return [ctx.place(ctx.tick.asset, Side.BUY, Decimal(self.params.get("order_qty", "0.001")), price=price, tag="t")]


def instruments() -> dict[str, Instrument]:
    return {
        ASSET: Instrument(
            symbol=ASSET, venue="sim", venue_symbol="BTCUSDT", base="BTC", quote="USDT", tick_size=Decimal("0.01"),
            lot_size=Decimal("0.00001"), min_qty=Decimal("0.00001"), min_notional=Decimal("5"), fees=FeeModel(Decimal("0.001"), Decimal("0.001")),
        )
    }


def telegram_settings(fake: FakeTelegram, **overrides: Any) -> TelegramSettings:
    values: dict[str, Any] = {
        "token": fake.token,
        "base_url": fake.base_url,
        "base_file_url": fake.base_file_url,
        "allowed_chat_ids": (OP, OP2, GROUP),
        "allowed_user_ids": (OP, OP2),
        "alert_chat_ids": (OP,),
        "commands_per_minute": 600,
        "lockout_after_failures": 3,
        "outbox_retry_max_s": 0.2,
        "send_rate_per_s": 1000,
    }
    values.update(overrides)
    return TelegramSettings(**values)


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        *,
        mode: Mode = Mode.LIVE,
        db_url: str | None = None,
        db_schema: str | None = None,
        fake: FakeTelegram | None = None,
        approve_config: bool = True,
        strategies: Sequence[Strategy] = (),
        risk: RiskLimits | None = None,
        oms_limits: OmsLimits | None = None,
        **telegram: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.mode = mode
        self.db_url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        self.db_schema = db_schema
        self.fake = fake or FakeTelegram()
        self._own_fake = fake is None
        self.approve_config = approve_config
        self.strategies = list(strategies)
        if not any(s.strategy_id == MANUAL for s in self.strategies):
            self.strategies.append(ManualStrategy(MANUAL, {}, (ASSET,)))  # as the service does: /intent manual uses it
        self.risk = risk or RiskLimits(Decimal("0.1"), Decimal("10000"), Decimal("1"), {"sim": (ASSET,)})
        self.telegram_overrides = telegram
        self.oms_limits = oms_limits
        self.clock = ManualClock(time.time_ns())
        self.seq = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "Harness":
        if self._own_fake:
            await self.fake.start()
        from bot.store.db import create_engine

        self.db = create_engine(self.db_url, schema=self.db_schema)
        await migrate.upgrade(self.db)
        self.settings = telegram_settings(self.fake, **self.telegram_overrides)
        cfg = Settings(mode=Mode.DRY_RUN, telegram=self.settings)
        self.config_hash = "c" * 64
        if self.approve_config:
            await KVStore(self.db, self.clock.now_ns).put("config", "approved", {"hash": self.config_hash, "by": "test", "at_ns": 0, "config": {}})
        self.run_id = uuid.uuid4().hex
        self.audit = AuditStore(self.db, run_id=self.run_id, mode=self.mode.value, version_hash="test", config_hash=self.config_hash,
                                now_ns=self.clock.now_ns, batch_size=100_000)
        self.instruments = instruments()
        self.sim = SimulatedVenue(self.instruments, self.clock, balances={"USDT": Decimal("1000000"), "BTC": Decimal("10")})
        self.venue = RecordingVenue(self.sim)
        self.portfolio = Portfolio()
        self.market = MarketState()
        self.safety = SafetyController(self.audit, self.clock)
        self.control: Control = build_control_core(
            self.settings, mode=self.mode, clock=self.clock, audit=self.audit, venue=self.venue, instruments=self.instruments,
            market=self.market, portfolio=self.portfolio, safety=self.safety,
        )
        self.oms = OrderManager(venue=self.control.venue, venue_name="sim", portfolio=self.portfolio, audit=self.audit, clock=self.clock,
                                instruments=self.instruments, limits=self.oms_limits)
        self.engine = Engine(
            mode=self.mode, clock=self.clock, audit=self.audit, risk=RiskEngine(self.risk, self.safety, assets=(ASSET,), start_ns=self.clock.monotonic_ns()), oms=self.oms, portfolio=self.portfolio,
            market=self.market, instruments=self.instruments, strategies=self.strategies,
            strategy_meta={s.strategy_id: StrategyMeta("c", "p") for s in self.strategies}, gate=self.control.gate, id_prefix=self.run_id[:8],
        )
        self.control.venue.set_report_sink(self.engine.on_report)
        self.engine.tick_listeners.append(self.sim.on_tick)
        self._ticked = asyncio.Event()
        self.engine.tick_listeners.append(lambda _t: self._ticked.set())
        await build_control_plane(
            self.control, self.settings, engine=self.engine, db=self.db, config_hash=self.config_hash, config_public=public_dict(cfg),
            version="test", run_id=self.run_id,
        )
        self.feed = QueueFeed()
        self._tasks.append(asyncio.create_task(self.engine.run(self.feed), name="engine"))
        assert self.control.telegram is not None and self.control.plane is not None
        self.telegram = self.control.telegram
        self.plane = self.control.plane
        self.telegram.start()
        async with asyncio.timeout(BOUND):
            await self.telegram.ready.wait()
        await self.fake.wait_for_poll()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.telegram.stop(drain_s=0.5)
        self.engine.stop()
        for task in self._tasks:
            try:
                async with asyncio.timeout(BOUND):
                    await task
            except Exception:
                task.cancel()
        await self.audit.flush()
        await self.db.dispose()
        if self._own_fake:
            await self.fake.stop()

    # ------------------------------------------------------------------ driving
    def advance(self, seconds: float) -> None:
        self.clock.advance(int(seconds * NS))

    async def tick(self, bid: str | Decimal, ask: str | Decimal | None = None, size: str = "5") -> None:
        """Feed one tick and wait until the engine handled it."""
        b = Decimal(bid)
        a = Decimal(ask) if ask is not None else b + Decimal("0.02")
        self.seq += 1
        now = self.clock.now_ns()
        self._ticked.clear()
        self.feed.push([Tick(ASSET, b, Decimal(size), a, Decimal(size), now, now, self.seq, "sim")])
        async with asyncio.timeout(BOUND):
            await self._ticked.wait()
        await self.engine.call(lambda: None)  # the tick's whole dispatch is done

    def say(self, text: str, user: int = OP, chat: int | None = None, **kwargs: Any) -> dict[str, Any]:
        chat = user if chat is None else chat
        chat_type = "private" if chat > 0 else "supergroup"
        kwargs.setdefault("date", self.clock.now_ns() // NS)
        return self.fake.send_message(chat, user, text, chat_type=chat_type, **kwargs)

    async def command(self, text: str, user: int = OP, chat: int | None = None, **kwargs: Any) -> SentMessage:
        """Send a command and return the bot's first message to that chat after it."""
        chat_id = user if chat is None else chat
        since = len(self.fake.sent)
        self.say(text, user, chat, **kwargs)
        [reply] = await self.fake.wait_for_sent(lambda r: r.chat_id == chat_id and r.method == "sendMessage", since=since, timeout=BOUND)
        return reply

    async def press(self, message: SentMessage, data: str, user: int = OP, chat: int | None = None) -> SentMessage:
        chat_id = message.chat_id if chat is None else chat
        since = len(self.fake.sent)
        self.fake.press_button(chat_id, user, message.message_id, data, require_button=False)
        [reply] = await self.fake.wait_for_sent(lambda r: r.chat_id == chat_id and r.method == "sendMessage", since=since, timeout=BOUND)
        return reply

    async def settle(self, user: int = OP) -> SentMessage:
        """Barrier: PTB handles updates one at a time, so once /help is answered everything sent before it was handled."""
        return await self.command("/help", user)

    async def flush(self) -> None:
        await self.audit.flush()

    def hash_of(self, reply: SentMessage) -> str:
        """The full hash a staged-intent reply shows."""
        text = reply.plain_text or ""
        marker = "Hash "
        start = text.index(marker) + len(marker)
        return text[start : start + 64]
