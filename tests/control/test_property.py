"""Property (hypothesis): random command sequences from allowed and disallowed senders never produce a venue order
unless an arm, an intent and its matching confirmation happened, in that order, within their time limits.

How it is driven: through the real PTB ``Application`` (the same handlers, the group -1 gate, the control plane,
the engine in LIVE mode with the LIVE gate and the venue guard), fed real ``Update`` objects with
``Application.process_update``; the Bot API is a recording ``BaseRequest`` instead of HTTP, and state_kv/audit are in
memory. Over HTTP each command costs a few milliseconds of PTB polling; this way a few hundred sequences run in
seconds. (Every command path is also covered over HTTP against FakeTelegram in the other test files.)
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from telegram import Update
from telegram.request import BaseRequest, RequestData

from bot.strategies.manual import MANUAL, ManualStrategy
from bot.config import Settings, TelegramSettings, public_dict
from bot.domain.market import Tick
from bot.domain.modes import Mode
from bot.domain.position import Portfolio
from bot.engine.clock import ManualClock
from bot.engine.loop import Engine
from bot.engine.market_state import MarketState
from bot.engine.sim_venue import SimulatedVenue
from bot.oms.orders import OrderManager
from bot.risk.engine import RiskEngine
from bot.risk.limits import RiskLimits
from bot.risk.safety import SafetyController
from bot.service import build_control_core, build_control_plane
from tests.control.harness import ASSET, GROUP, OP, OP2, OTHER_CHAT, STRANGER, QueueFeed, RecordingVenue, instruments

NS = 1_000_000_000
T0 = 1_800_000_000 * NS
TOKEN = "123456:PROPERTY-token"
INTENT_TTL_S = 120
CONFIG_HASH = "c" * 64
HASH = re.compile(r"Hash (?:<code>)?([0-9a-f]{64})")


class MemoryKV:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Any]] = {("config", "approved"): {"hash": CONFIG_HASH, "by": "test", "at_ns": 0}}

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        return self.data.get((namespace, key))

    async def all(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {k: v for (n, k), v in self.data.items() if n == namespace}

    async def put(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        self.data[(namespace, key)] = value


class MemoryAudit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []
        self.outbox: list[dict[str, Any]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, row))

    def add_outbox(self, row: dict[str, Any]) -> None:
        self.outbox.append(row)

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


class RecordingRequest(BaseRequest):
    """The Bot API without HTTP: canned answers, every sent message recorded."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: list[dict[str, Any]] = []
        self._ids: dict[int, int] = {}

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[1]
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if endpoint == "getMe":
            result = {"id": 123456, "is_bot": True, "first_name": "Bot", "username": "test_bot"}
        elif endpoint == "sendMessage":
            chat_id = int(params["chat_id"])
            self._ids[chat_id] = self._ids.get(chat_id, 1000) + 1
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            self.sent.append({"chat_id": chat_id, "message_id": self._ids[chat_id], "text": str(params["text"]), "reply_markup": markup})
            result = {"message_id": self._ids[chat_id], "date": self.clock.now_ns() // NS, "chat": _chat(chat_id), "text": str(params["text"])}
        return 200, json.dumps({"ok": True, "result": result}).encode()


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private"} if chat_id > 0 else {"id": chat_id, "type": "supergroup", "title": "g"}


# --------------------------------------------------------------------------- the model of what was sent
SENDERS = [(OP, OP), (OP2, OP2), (OP, GROUP), (STRANGER, GROUP), (OP, OTHER_CHAT), (STRANGER, STRANGER)]
AUTHORIZED = {(OP, OP), (OP2, OP2), (OP, GROUP)}


@dataclass
class Event:
    step: int
    t: int
    kind: str  # arm | disarm | kill | stage | confirm
    ttl_s: int = 0
    text: str = ""  # confirm: the typed prefix, or "button:<32 hex>"
    hash: str = ""  # stage: the hash the bot showed


@dataclass
class Run:
    events: list[Event] = field(default_factory=list)  # only authorized, fresh commands
    staged_hashes: list[tuple[int, str, int]] = field(default_factory=list)  # (chat, hash, message id) shown with buttons


step_strategy = st.one_of(
    st.tuples(st.just("arm"), st.sampled_from(["1m", "5m"])),  # weighted toward what makes orders possible
    st.tuples(st.just("intent"), st.sampled_from(["59000", "58000"])),
    st.tuples(st.just("confirm"), st.tuples(st.integers(0, 5), st.integers(10, 16))),
    st.tuples(st.just("arm"), st.sampled_from(["30s", "1m", "5m", "2h", "soon"])),
    st.tuples(st.just("disarm"), st.none()),
    st.tuples(st.just("intent"), st.sampled_from(["59000", "58000", "60000", "0.5"])),
    st.tuples(st.just("confirm"), st.tuples(st.integers(0, 5), st.integers(9, 64))),
    st.tuples(st.just("confirm_random"), st.text("0123456789abcdef", min_size=10, max_size=12)),
    st.tuples(st.just("button"), st.tuples(st.integers(0, 5), st.booleans())),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("kill"), st.none()),
    st.tuples(st.just("resume"), st.none()),
    st.tuples(st.just("status"), st.none()),
    st.tuples(st.just("advance"), st.sampled_from([5, 30, 61, 125, 400])),
    st.tuples(st.just("tick"), st.sampled_from(["60000", "60100", "60400"])),
)
# (sender, stale): mostly operators with fresh messages, so sequences get far enough to matter
sender_strategy = st.tuples(st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5]), st.sampled_from([False, False, False, False, True]))


async def scenario(steps: list[tuple[tuple[str, Any], tuple[int, bool]]]) -> list[Any]:
    """Run the steps; check the invariant; return the order requests that reached the venue."""
    clock = ManualClock(T0)
    audit = MemoryAudit()
    tg = TelegramSettings(
        token=TOKEN, base_url="http://127.0.0.1:9/bot", base_file_url="http://127.0.0.1:9/file/bot", allowed_chat_ids=(OP, OP2, GROUP),
        allowed_user_ids=(OP, OP2), alert_chat_ids=(OP,), commands_per_minute=600, lockout_after_failures=5, intent_ttl_s=INTENT_TTL_S,
        send_rate_per_s=1000,
    )
    inst = instruments()
    sim = SimulatedVenue(inst, clock, balances={"USDT": Decimal("1000000"), "BTC": Decimal("10")})
    venue = RecordingVenue(sim)
    portfolio, market = Portfolio(), MarketState()
    safety = SafetyController(audit, clock)
    control = build_control_core(
        tg, mode=Mode.LIVE, clock=clock, audit=audit, venue=venue, instruments=inst, market=market, portfolio=portfolio, safety=safety
    )
    oms = OrderManager(venue=control.venue, venue_name="sim", portfolio=portfolio, audit=audit, clock=clock, instruments=inst)
    engine = Engine(
        mode=Mode.LIVE, clock=clock, audit=audit, risk=RiskEngine(RiskLimits(Decimal("0.1"), Decimal("100000"), Decimal("5"), {"sim": (ASSET,)}), safety, assets=(ASSET,)),
        oms=oms, portfolio=portfolio, market=market, instruments=inst, strategies=[ManualStrategy(MANUAL, {}, (ASSET,))], strategy_meta={}, gate=control.gate, id_prefix="p",
    )
    control.venue.set_report_sink(engine.on_report)
    engine.tick_listeners.append(sim.on_tick)
    request = RecordingRequest(clock)
    await build_control_plane(
        control, tg, engine=engine, db=None, config_hash=CONFIG_HASH, config_public=public_dict(Settings(telegram=tg)), version="t", run_id="p" * 32,
        request=request, kv=MemoryKV(),
    )
    assert control.telegram is not None
    app = control.telegram.app
    feed = QueueFeed()
    engine_task = asyncio.create_task(engine.run(feed))
    seq = [0]

    async def tick(bid: str) -> None:
        seq[0] += 1
        now = clock.now_ns()
        feed.push([Tick(ASSET, Decimal(bid), Decimal("5"), Decimal(bid) + Decimal("0.02"), Decimal("5"), now, now, seq[0], "sim")])
        while engine.market.last.get(ASSET) is None or engine.market.last[ASSET].seq != seq[0]:
            await engine.call(lambda: None)

    run = Run()
    update_id = [0]
    message_id = [0]

    def user(uid: int) -> dict[str, Any]:
        return {"id": uid, "is_bot": False, "first_name": f"U{uid}"}

    async def send(text: str, uid: int, chat: int, stale: bool) -> None:
        update_id[0] += 1
        message_id[0] += 1
        date = clock.now_ns() // NS - (300 if stale else 0)
        command = text.split()[0]
        data = {"update_id": update_id[0], "message": {
            "message_id": message_id[0], "date": date, "chat": _chat(chat), "from": user(uid), "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}}
        await app.process_update(Update.de_json(data, app.bot))

    async def press(data: str, uid: int, chat: int, target_message: int) -> None:
        update_id[0] += 1
        payload = {"update_id": update_id[0], "callback_query": {
            "id": str(update_id[0]), "from": user(uid), "chat_instance": "1", "data": data,
            "message": {"message_id": target_message, "date": clock.now_ns() // NS, "chat": _chat(chat), "text": "intent"}}}
        await app.process_update(Update.de_json(payload, app.bot))

    try:
        await app.initialize()
        await tick("60000")
        for index, ((kind, arg), (who, stale)) in enumerate(steps):
            uid, chat = SENDERS[who]
            fresh_ok = (uid, chat) in AUTHORIZED and not stale
            before = len(request.sent)
            now = clock.now_ns()
            if kind == "advance":
                clock.advance(arg * NS)
                continue
            if kind == "tick":
                await tick(arg)
                continue
            if kind == "arm":
                await send(f"/arm {arg}", uid, chat, stale)
                if fresh_ok and arg in ("30s", "1m", "5m"):
                    run.events.append(Event(index, now, "arm", ttl_s={"30s": 30, "1m": 60, "5m": 300}[arg]))
            elif kind in ("disarm", "kill", "resume", "status"):
                await send(f"/{kind}", uid, chat, stale)
                if fresh_ok and kind in ("disarm", "kill"):
                    run.events.append(Event(index, now, kind))
            elif kind == "intent":
                qty = "0.5" if arg == "0.5" else "0.01"
                price = "59000" if arg == "0.5" else arg
                await send(f"/intent manual buy BTC/USDT {qty} limit {price}", uid, chat, stale)
            elif kind == "confirm":
                idx, length = arg
                if not run.staged_hashes:
                    continue
                _, full, _ = run.staged_hashes[idx % len(run.staged_hashes)]
                prefix = full[:length]
                await send(f"/confirm {prefix}", uid, chat, stale)
                if fresh_ok and length >= 10:
                    run.events.append(Event(index, now, "confirm", text=prefix))
            elif kind == "confirm_random":
                await send(f"/confirm {arg}", uid, chat, stale)
                if fresh_ok:
                    run.events.append(Event(index, now, "confirm", text=arg))
            elif kind == "button":
                idx, is_confirm = arg
                if not run.staged_hashes:
                    continue
                staged_chat, full, msg = run.staged_hashes[idx % len(run.staged_hashes)]
                data = ("c:" if is_confirm else "r:") + full[:32]
                await press(data, uid, chat, msg if chat == staged_chat else 1)
                if (uid, chat) in AUTHORIZED and is_confirm:  # presses carry no date: never stale
                    run.events.append(Event(index, now, "confirm", text="button:" + full[:32]))
            elif kind == "cancel":
                if run.staged_hashes:
                    await send(f"/cancel {run.staged_hashes[arg % len(run.staged_hashes)][1][:10]}", uid, chat, stale)
            # every hash the bot showed (staged, preview or re-staged after drift) is a staging event of this step
            for message in request.sent[before:]:
                for full in HASH.findall(message["text"]):
                    if message["reply_markup"]:
                        run.staged_hashes.append((message["chat_id"], full, message["message_id"]))
                    if (uid, chat) in AUTHORIZED:
                        run.events.append(Event(index, now, "stage", hash=full))
        check_invariant(run, control, venue)
        return list(venue.placed)
    finally:
        engine.stop()
        await engine_task
        await app.shutdown()


def check_invariant(run: Run, control: Any, venue: RecordingVenue) -> None:
    per_intent: dict[str, int] = {}
    for request in venue.placed:
        intent_id = request.client_order_id.rsplit("-", 1)[0]
        per_intent[intent_id] = per_intent.get(intent_id, 0) + 1
        entry = control.book.by_intent_id(intent_id)
        assert entry is not None, f"order {request.client_order_id} has no staged intent"
        h = entry.hash
        stages = [e for e in run.events if e.kind == "stage" and e.hash == h]
        assert stages, f"order {request.client_order_id}: no authorized staging of {h[:10]}"
        stage = stages[0]
        confirms = [
            e for e in run.events
            if e.kind == "confirm" and e.step >= stage.step and stage.t <= e.t < stage.t + INTENT_TTL_S * NS
            and ((e.text.startswith("button:") and h.startswith(e.text[7:])) or (not e.text.startswith("button:") and h.startswith(e.text)))
        ]
        assert confirms, f"order {request.client_order_id}: no authorized confirmation of {h[:10]} within {INTENT_TTL_S}s of staging"

        def covered(confirm: Event) -> bool:
            for arm in (e for e in run.events if e.kind == "arm" and e.step <= stage.step and e.t <= stage.t):
                if confirm.t >= arm.t + arm.ttl_s * NS:
                    continue
                revoked = any(e.kind in ("disarm", "kill") and arm.step < e.step < confirm.step for e in run.events)
                if not revoked:
                    return True
            return False

        assert any(covered(c) for c in confirms), f"order {request.client_order_id}: no unexpired, unrevoked arming before staging and confirmation"
    assert all(n == 1 for n in per_intent.values()), f"an intent produced more than one order: {per_intent}"


single = st.tuples(step_strategy, sender_strategy).map(lambda step: [step])
# a whole arm -> intent -> confirm flow from one sender (later steps can still interleave between flows)
flow = st.tuples(sender_strategy, st.sampled_from(["1m", "5m"]), st.sampled_from(["59000", "58000"]), st.integers(10, 16)).map(
    lambda f: [(("arm", f[1]), f[0]), (("intent", f[2]), f[0]), (("confirm", (-1, f[3])), f[0])]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(single, single, single, flow), min_size=1, max_size=25).map(lambda chunks: [s for c in chunks for s in c]))
def test_no_order_without_arm_intent_and_matching_confirm(steps: list[tuple[tuple[str, Any], tuple[int, bool]]]) -> None:
    placed = asyncio.run(scenario(steps))
    event(f"orders at the venue: {min(len(placed), 3)}{'+' if len(placed) > 3 else ''}")  # the property is exercised, not vacuous


def test_the_happy_sequence_does_produce_exactly_one_order() -> None:
    ok = (0, False)
    steps = [(("arm", "5m"), ok), (("intent", "59000"), ok), (("confirm", (0, 10)), ok), (("confirm", (0, 10)), ok), (("button", (0, True)), ok)]
    placed = asyncio.run(scenario(steps))
    assert len(placed) == 1 and placed[0].limit_price == Decimal("59000.00")
