"""Each command's happy path and its refusals, through the real PTB over HTTP against FakeTelegram (LIVE unless noted)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.control.parse import ParseError
from bot.domain.errors import ErrorCode
from bot.domain.modes import Mode
from bot.risk.limits import RiskLimits
from bot.risk.safety import Check, TradingState
from bot.store.models import IntentRow, OperatorCommandRow
from tests.control.harness import ASSET, OP, OP2, EveryTick, Harness

NS = 1_000_000_000


async def audit_rows(h: Harness) -> list[Any]:
    await h.flush()
    async with h.db.connect() as conn:
        return list((await conn.execute(select(OperatorCommandRow).order_by(OperatorCommandRow.id))).all())


async def test_commands_are_registered_with_set_my_commands(h: Harness) -> None:
    names = [c["command"] for c in h.fake.my_commands()]
    assert names == ["status", "arm", "disarm", "intent", "confirm", "intents", "cancel", "orders", "positions", "pnl", "kill",
                     "resume", "report", "incident", "approve", "help"]


async def test_help_lists_every_command_with_an_example(h: Harness) -> None:
    text = (await h.command("/help")).plain_text or ""
    for name in h.plane.commands:
        assert f"/{name}" in text
    assert "/intent manual buy BTC/USDT 0.01 limit 60000" in text and "max_notional=" in text


async def test_status_fits_one_phone_screen(h: Harness) -> None:
    await h.command("/arm 15m")
    await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    h.advance(2)
    reply = await h.command("/status")
    text = reply.plain_text or ""
    lines = text.splitlines()
    assert len(lines) <= 16 and len(text) <= 1200
    assert lines[0] == "LIVE · 🟢 ACTIVE: start"
    assert lines[1].startswith("🔓 Armed: 14m 58s left")
    assert "Feeds: BTC/USDT 2.0s" in text  # age of the last tick, from the (injected) monotonic clock
    assert "Positions: flat" in text and "Open orders: 0" in text
    assert "PnL (this run): 0.00 USDT net, fees 0.00 USDT" in text
    assert "Staged intents: 1 · mandates running: 0" in text
    assert "Reconciliation: n/a" in text
    assert "vtest · up" in text
    assert reply.parse_mode == "HTML"


async def test_arm_happy_path_and_refusals(h: Harness) -> None:
    assert "usage: /arm" in ((await h.command("/arm")).plain_text or "")
    assert "not a duration" in ((await h.command("/arm 900")).plain_text or "")
    assert "exceeds the maximum arming time 1h" in ((await h.command("/arm 2h")).plain_text or "")
    assert not h.control.arming.is_armed()
    reply = await h.command("/arm 15m")
    assert "ARMED for 15m" in (reply.plain_text or "") and h.control.arming.remaining_s() == 900
    again = await h.command("/arm 30m")
    assert "Already armed (15m left)" in (again.plain_text or "") and h.control.arming.remaining_s() == 900  # never extended
    h.control.safety.enter(TradingState.SAFE, ErrorCode.POSITION_MISMATCH, "reconciliation mismatch")
    assert not h.control.arming.is_armed()  # SAFE revoked it
    refused = await h.command("/arm 15m")
    assert "Not armed: trading state is SAFE" in (refused.plain_text or "") and not h.control.arming.is_armed()
    rows = await audit_rows(h)
    assert [(r.command, r.args, r.outcome) for r in rows if r.command == "arm"] == [
        ("arm", "", "refused"), ("arm", "900", "refused"), ("arm", "2h", "refused"), ("arm", "15m", "ok"), ("arm", "30m", "refused"),
        ("arm", "15m", "refused"),
    ]
    assert all(r.user_id == OP and r.chat_id == OP for r in rows)


async def test_arm_needs_an_approved_configuration_in_live(tmp_path: Path) -> None:
    async with Harness(tmp_path, approve_config=False) as h:
        refused = await h.command("/arm 15m")
        assert "configuration is not approved" in (refused.plain_text or "") and not h.control.arming.is_armed()
        wrong = await h.command("/approve 0123456789")
        assert "is not the running configuration's hash" in (wrong.plain_text or "")
        ok = await h.command(f"/approve {h.config_hash[:12]}")
        assert "approved" in (ok.plain_text or "")
        assert "ARMED" in ((await h.command("/arm 15m")).plain_text or "")
        assert "Configuration not approved" not in ((await h.command("/status")).plain_text or "")


async def test_arm_in_dry_run_is_a_rehearsal(tmp_path: Path) -> None:
    async with Harness(tmp_path, mode=Mode.DRY_RUN, approve_config=False) as h:
        reply = await h.command("/arm 5m")
        assert "ARMED for 5m" in (reply.plain_text or "") and "DRY_RUN: execution does not need arming" in (reply.plain_text or "")


async def test_disarm(h: Harness) -> None:
    assert "Not armed (nothing to revoke)" in ((await h.command("/disarm")).plain_text or "")
    await h.command("/arm 15m")
    staged = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    reply = await h.command("/disarm")
    assert "Disarmed" in (reply.plain_text or "") and not h.control.arming.is_armed()
    confirm = await h.command(f"/confirm {h.hash_of(staged)[:10]}")
    assert "was voided" in (confirm.plain_text or "") and "arming ended" in (confirm.plain_text or "")
    assert h.venue.placed == []


async def test_intent_shows_everything_before_confirmation(h: Harness) -> None:
    await h.command("/arm 15m")
    reply = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000.004")
    text = reply.plain_text or ""
    full = h.hash_of(reply)
    assert text.startswith(f"price rounded to the tick (passive side): 59,000.00 USDT\n📝 Intent {full[:10]} · User1001 (1001)")
    assert "BUY 0.01 BTC on BTC/USDT · LIMIT @ 59,000.00 USDT · GTC" in text
    assert "Risk pre-check: ✅ passed" in text
    assert "Notional ≈ 590.00 USDT · fee ≈ 0.5900 USDT (maker)" in text
    assert "Slippage: none (a passive limit fills at its price or not at all)" in text
    assert "Mid at staging 60,000.01 USDT; confirm refused if it moves > 50.0 bps" in text
    assert "(in 2m) · single use" in text and f"Confirm: /confirm {full[:10]}" in text
    assert reply.reply_markup == {"inline_keyboard": [[{"text": "✅ Confirm", "callback_data": f"c:{full[:32]}"},
                                                       {"text": "❌ Reject", "callback_data": f"r:{full[:32]}"}]]}
    assert h.venue.placed == []  # staging never executes
    market = await h.command("/intent manual sell BTC/USDT 0.05 market")
    mtext = market.plain_text or ""
    assert "SELL 0.05 BTC on BTC/USDT · MARKET · IOC" in mtext and "(taker)" in mtext and "Slippage vs mid ≈" in mtext


async def test_a_manual_intent_is_the_manual_strategys_intent(h: Harness) -> None:
    """/intent manual takes its grammar and its intent from the manual strategy (one path for a manual order)."""
    await h.command("/arm 15m")
    reply = await h.command("/intent manual sell BTC/USDT 0.010009 post 60100.001")
    assert "quantity rounded down to the lot" in (reply.plain_text or "")
    await h.flush()
    async with h.db.connect() as conn:
        row = (await conn.execute(select(IntentRow).order_by(IntentRow.id.desc()).limit(1))).one()
    assert (row.strategy_id, row.side, row.order_type, row.tif, row.qty, row.limit_price) == (
        "manual", "SELL", "LIMIT_MAKER", "GTC", Decimal("0.01000"), Decimal("60100.01")
    )
    assert row.rationale == "operator User1001 (1001) via Telegram: sell BTC/USDT 0.01000 maker 60100.01"
    assert h.venue.placed == []


async def test_a_run_without_the_manual_strategy_refuses_manual_intents_clearly(h: Harness) -> None:
    del h.engine.strategies["manual"]
    reply = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    assert "Not staged: no strategy 'manual' in this run" in (reply.plain_text or "") and h.venue.placed == []


async def test_intent_refusals(tmp_path: Path) -> None:
    async with Harness(tmp_path, lockout_after_failures=20) as h:
        await h.tick("60000")
        await _intent_refusals(h)


async def _intent_refusals(h: Harness) -> None:
    await h.command("/arm 15m")
    for text, expected in [
        ("/intent", "usage: /intent"),
        ("/intent manual buy BTC/USDT", "usage: /intent manual"),
        ("/intent manual buy ETH/BTC 1 limit 1", "unknown asset ETH/BTC"),
        ("/intent manual buy BTC/USDT 0.00001 limit 60000", "Not staged"),  # below the minimum notional of 5 USDT
        ("/intent manual buy BTC/USDT 0.5 limit 60000", "Risk pre-check blocked"),  # above max_trade_qty 0.1
        ("/intent nosuch a=1", "unknown strategy 'nosuch'"),
    ]:
        reply = await h.command(text)
        assert expected in (reply.plain_text or ""), (text, reply.plain_text)
    assert h.control.book.pending(h.clock.now_ns()) == []
    h.control.safety.enter(TradingState.HALTED, ErrorCode.RISK_BLOCKED, "portfolio loss limit")
    halted = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    assert "Trading state is HALTED" in (halted.plain_text or "")


async def test_intent_while_not_armed_is_a_preview_that_cannot_be_confirmed(h: Harness) -> None:
    preview = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    assert "Not armed: preview only" in (preview.plain_text or "") and preview.reply_markup is None
    await h.command("/arm 15m")
    reply = await h.command(f"/confirm {h.hash_of(preview)[:10]}")
    assert "staged outside the current arming window" in (reply.plain_text or "")
    assert h.venue.placed == []


async def test_confirm_by_typing_and_by_button_and_reject_button(h: Harness) -> None:
    await h.command("/arm 15m")
    first = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    done = await h.command(f"/confirm {h.hash_of(first)[:12].upper()}")
    assert "✅ Executed" in (done.plain_text or "") and "ACCEPTED" in (done.plain_text or "")
    second = await h.command("/intent manual sell BTC/USDT 0.01 limit 61000")
    pressed = await h.press(second, f"c:{h.hash_of(second)[:32]}")
    assert "✅ Executed" in (pressed.plain_text or "")
    [answer] = h.fake.calls_to("answerCallbackQuery")
    assert answer.status == 200
    assert "reply_markup" not in (h.fake.message(OP, second.message_id) or {})  # the buttons are gone once used
    third = await h.command("/intent manual sell BTC/USDT 0.02 limit 62000")
    rejected = await h.press(third, f"r:{h.hash_of(third)[:32]}")
    assert "cancelled" in (rejected.plain_text or "")
    assert [(r.side.value, r.qty, r.limit_price) for r in h.venue.placed] == [("BUY", Decimal("0.01"), Decimal("59000.00")),
                                                                             ("SELL", Decimal("0.01"), Decimal("61000.00"))]


async def test_intents_cancel_orders_positions_pnl(h: Harness) -> None:
    await h.command("/arm 15m")
    assert "No staged intents" in ((await h.command("/intents")).plain_text or "")
    staged = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000")
    short = h.hash_of(staged)[:10]
    listing = (await h.command("/intents")).plain_text or ""
    assert f"• {short} BUY 0.01 BTC on BTC/USDT · LIMIT @ 59,000.00 USDT · GTC · 2m left" in listing
    assert "cancelled" in ((await h.command(f"/cancel {short}")).plain_text or "")
    assert "was cancelled" in ((await h.command(f"/confirm {short}")).plain_text or "")
    assert "No staged intent matches" in ((await h.command("/cancel 0123456789")).plain_text or "")
    # a crossing buy fills at the ask; a resting sell stays open
    buy = await h.command("/intent manual buy BTC/USDT 0.01 limit 60010")
    assert "taker" in (buy.plain_text or "")
    assert "✅ Executed" in ((await h.command(f"/confirm {h.hash_of(buy)[:10]}")).plain_text or "")
    sell = await h.command("/intent manual sell BTC/USDT 0.005 limit 61000")
    await h.command(f"/confirm {h.hash_of(sell)[:10]}")
    orders = (await h.command("/orders")).plain_text or ""
    assert "Open orders (1):" in orders and "SELL 0.005 BTC on BTC/USDT · LIMIT @ 61,000.00 USDT · GTC · ACCEPTED" in orders
    positions = (await h.command("/positions")).plain_text or ""
    # bought 0.01 at the ask 60,000.02; mid 60,000.01 -> unrealised (60000.01 - 60000.02) * 0.01 = -0.0001 -> -0.00 USDT
    assert "BTC/USDT +0.01 BTC @ 60,000.02 USDT · unrealised -0.00 USDT" in positions
    pnl = (await h.command("/pnl")).plain_text or ""
    # fee: 0.01 * 60000.02 * 0.001 = 0.6000002 -> 0.60 USDT; net = -0.0001 - 0.6000002 -> -0.60 USDT
    assert "Net -0.60 USDT = realised 0.00 USDT + unrealised -0.00 USDT − fees 0.60 USDT" in pnl
    assert "By strategy: manual -0.60 USDT" in pnl


async def test_kill_cancels_everything_and_resume_runs_the_checklist(h: Harness) -> None:
    await h.command("/arm 15m")
    for price in ("59000", "58000"):
        staged = await h.command(f"/intent manual buy BTC/USDT 0.01 limit {price}")
        await h.command(f"/confirm {h.hash_of(staged)[:10]}")
    pending = await h.command("/intent manual buy BTC/USDT 0.01 limit 57000")
    assert len(h.oms.live) == 2
    reply = await h.command("/kill")
    assert "KILLED: trading state SAFE, 2 resting order(s) cancelled" in (reply.plain_text or "")
    assert h.control.safety.state is TradingState.SAFE and h.control.safety.code is ErrorCode.KILL_SWITCH
    assert h.oms.live == {} and not h.control.arming.is_armed()
    assert "was voided" in ((await h.command(f"/confirm {h.hash_of(pending)[:10]}")).plain_text or "")
    assert "Not armed: trading state is SAFE" in ((await h.command("/arm 5m")).plain_text or "")
    reconciled = {"ok": False}
    h.control.safety.add_check(lambda: Check("positions reconciled", reconciled["ok"], "venue 0 vs internal 0"))
    refused = (await h.command("/resume")).plain_text or ""
    assert "Still SAFE" in refused and "❌ positions reconciled: venue 0 vs internal 0" in refused
    reconciled["ok"] = True
    resumed = (await h.command("/resume")).plain_text or ""
    assert "Trading state ACTIVE" in resumed and "LIVE still needs a fresh /arm" in resumed
    assert h.control.safety.state is TradingState.ACTIVE and not h.control.arming.is_armed()
    assert "already ACTIVE" in ((await h.command("/resume")).plain_text or "")
    assert len(h.venue.placed) == 2


async def test_report_uses_the_injected_provider(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        assert "not available in this build" in ((await h.command("/report")).plain_text or "")

        async def provider() -> tuple[str, bytes | None]:
            return "<b>Daily summary</b> intents 3", None

        h.plane.report_provider = provider
        assert (await h.command("/report")).plain_text == "Daily summary intents 3"


async def test_unknown_and_malformed_commands_count_toward_lockout(h: Harness) -> None:
    assert "Unknown command /frobnicate" in ((await h.command("/frobnicate")).plain_text or "")
    assert "Commands start with /" in ((await h.command("hello bot")).plain_text or "")  # plain text is not a failure
    assert "not a duration" in ((await h.command("/arm soon")).plain_text or "")
    locked = await h.command("/confirm zz")
    assert "locked out until" in (locked.plain_text or "")
    assert "You are locked out until" in ((await h.command("/status")).plain_text or "")
    assert "Not armed (nothing to revoke)" in ((await h.command("/disarm")).plain_text or "")  # /disarm still works
    other = await h.command("/status", user=OP2)
    assert "🔒 Lockouts: user 1001 until" in (other.plain_text or "")  # /status says when it ends
    rows = await audit_rows(h)
    assert [r.outcome for r in rows][-3:] == ["locked_out", "ok", "ok"]


async def test_mandate_lets_a_strategy_trade_within_its_bounds(tmp_path: Path) -> None:
    strat = EveryTick("grid", {"order_qty": "0.001", "offset": "1000"}, [ASSET])
    async with Harness(tmp_path, strategies=[strat], strategy_push_interval_s=30,
                       risk=RiskLimits(Decimal("0.1"), Decimal("10000"), Decimal("1"), {"sim": (ASSET,)})) as h:
        await h.tick("60000")
        strat.on = True
        await h.tick("60000")  # not armed: strategy intents are refused, never staged or sent
        assert h.venue.placed == [] and h.control.book.pending(h.clock.now_ns()) == []
        await h.command("/arm 30m")
        since = len(h.fake.sent)
        await h.tick("60001")
        [pushed] = await h.fake.wait_for_sent(lambda r: "Strategy grid wants to trade" in (r.plain_text or ""), since=since)
        assert pushed.reply_markup is not None and "BUY 0.001 BTC on BTC/USDT · LIMIT @ 59,001.00 USDT" in (pushed.plain_text or "")
        await h.tick("60002")  # within the push interval: refused, counted
        assert len(h.control.book.pending(h.clock.now_ns())) == 1
        assert "differs from the running configuration" in ((await h.command("/intent grid order_qty=0.5 max_notional=200 max_orders=3 max_loss=10 expiry=10m")).plain_text or "")
        assert "missing max_loss" in ((await h.command("/intent grid max_notional=200 max_orders=3")).plain_text or "")
        staged = await h.command("/intent grid max_notional=200 max_orders=3 max_loss=10 expiry=10m")
        text = staged.plain_text or ""
        assert "Mandate" in text and "Bounds: notional ≤ 200.00 USDT · ≤ 3 orders · loss ≤ 10.00 USDT" in text
        assert "Parameters: offset=1000, order_qty=0.001" in text and "Runs for 10m after confirmation" in text
        ok = await h.command(f"/confirm {h.hash_of(staged)[:10]}")
        assert "Mandate" in (ok.plain_text or "") and "running" in (ok.plain_text or "")
        for bid in ("60003", "60004"):
            await h.tick(bid)
        status = (await h.command("/status")).plain_text or ""
        assert "mandates running: 1" in status and "grid: 118.01 USDT of 200.00 USDT, 2/3 orders" in status
        await h.tick("60005")
        assert [r.limit_price for r in h.venue.placed] == [Decimal("59003.00"), Decimal("59004.00"), Decimal("59005.00")]
        assert h.control.book.active_mandates() == []  # bounds used up: ended
        await h.tick("60006")
        assert len(h.venue.placed) == 3  # outside the mandate nothing reaches the venue
        # a new mandate ends with /disarm
        staged = await h.command("/intent grid max_notional=200 max_orders=3 max_loss=10 expiry=10m")
        await h.command(f"/confirm {h.hash_of(staged)[:10]}")
        await h.command("/disarm")
        await h.tick("60007")
        assert len(h.venue.placed) == 3


async def test_parse_error_type_is_the_malformed_marker() -> None:
    assert issubclass(ParseError, ValueError)


async def test_kill_file_blocks_arming_and_shows_on_status(h: Harness, tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    h.plane.kill_file = kill
    kill.write_text("")
    assert "the kill file" in ((await h.command("/arm 15m")).plain_text or "") and not h.control.arming.is_armed()
    assert "kill file present" in ((await h.command("/status")).plain_text or "")
    kill.unlink()
    assert "ARMED" in ((await h.command("/arm 15m")).plain_text or "")


class FakeIncidents:
    """The part of ops' IncidentDesk the control plane calls."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, str]] = {}
        self.open: str | None = None

    async def open_incident(self) -> Any:
        return self.open

    async def recent(self, limit: int = 5) -> list[Any]:
        return []

    async def open_manual(self, text: str, by: str) -> Any:
        self.open = "20260101-1"
        self.entries[self.open] = {"opened": f"{text} by {by}"}
        return _Inc(self.open)

    async def annotate(self, incident_id: str, field: str, text: str, by: str) -> Any:
        if incident_id not in self.entries:
            raise ValueError(f"no incident {incident_id!r}")
        self.entries[incident_id][field] = f"{text} ({by})"
        return _Inc(incident_id)

    def render(self, inc: Any) -> str:
        key = inc if isinstance(inc, str) else inc.incident_id
        return f"<b>Incident {key}</b> " + "; ".join(f"{k}: {v}" for k, v in self.entries[key].items()).replace("<", "&lt;")


class _Inc:
    def __init__(self, incident_id: str) -> None:
        self.incident_id = incident_id


async def test_incident_command(h: Harness) -> None:
    assert "not available in this build" in ((await h.command("/incident")).plain_text or "")
    desk = FakeIncidents()
    h.plane.incidents = desk
    assert (await h.command("/incident")).plain_text == "No incident reports."
    opened = await h.command("/incident new feed froze at 12:00")
    assert "Incident 20260101-1" in (opened.plain_text or "") and "feed froze at 12:00 by User1001 (1001)" in (opened.plain_text or "")
    done = await h.command("/incident 20260101-1 root_cause venue <maintenance>")
    assert "root_cause: venue <maintenance> (User1001 (1001))" in (done.plain_text or "")
    assert "no incident 'nope'" in ((await h.command("/incident nope note x")).plain_text or "")
    assert "usage: /incident" in ((await h.command("/incident 20260101-1 note")).plain_text or "")


async def test_fills_and_rejects_raise_alerts(h: Harness) -> None:
    await h.command("/arm 15m")
    since = len(h.fake.sent)
    buy = await h.command("/intent manual buy BTC/USDT 0.01 limit 60010")
    await h.command(f"/confirm {h.hash_of(buy)[:10]}")
    maker = await h.command("/intent manual buy BTC/USDT 0.01 limit_maker 60010")  # would cross: the venue rejects it
    assert "was confirmed and sent, but order" in ((await h.command(f"/confirm {h.hash_of(maker)[:10]}")).plain_text or "")
    await h.flush()
    fill, reject = await h.fake.wait_for_sent(lambda r: "Fill" in (r.plain_text or "") or "rejected" in (r.plain_text or ""), count=2, since=since)
    assert (fill.plain_text or "").startswith("ℹ️ 💱 Fill BUY 0.01 BTC BTC/USDT @ 60,000.02 USDT (fee 0.6000 USDT, taker)")
    assert "Order rejected" in (reject.plain_text or "") and "would immediately match" in (reject.plain_text or "")


async def test_the_venue_guard_refuses_orders_nobody_confirmed(h: Harness) -> None:
    """A bug that submits an intent directly (bypassing /confirm) is stopped in front of the venue."""
    from bot.domain.intent import Intent, Side

    intent = Intent(h.engine.next_id(), h.clock.now_ns(), "manual", ASSET, Side.BUY, Decimal("0.01"), limit_price=Decimal("59000"))
    order = await h.engine.call(lambda: h.engine.submit(intent))
    assert order is not None and order.status.value == "REJECTED"
    assert h.venue.placed == [] and h.control.venue.refused[-1].client_order_id == order.client_order_id
    await h.command("/arm 15m")
    intent2 = Intent(h.engine.next_id(), h.clock.now_ns(), "manual", ASSET, Side.BUY, Decimal("0.01"), limit_price=Decimal("59000"))
    order2 = await h.engine.call(lambda: h.engine.submit(intent2))  # armed, but still not confirmed
    assert order2 is not None and order2.status.value == "REJECTED" and h.venue.placed == []


async def test_dry_run_rehearsal_of_the_live_gate(tmp_path: Path) -> None:
    """gate_in_dry_run: strategy intents are staged and mandates work as in LIVE, without arming."""
    strat = EveryTick("grid", {"order_qty": "0.001", "offset": "1000"}, [ASSET])
    async with Harness(tmp_path, mode=Mode.DRY_RUN, strategies=[strat], gate_in_dry_run=True) as h:
        await h.tick("60000")
        strat.on = True
        since = len(h.fake.sent)
        await h.tick("60001")
        [pushed] = await h.fake.wait_for_sent(lambda r: "Strategy grid wants to trade" in (r.plain_text or ""), since=since)
        assert h.venue.placed == []
        pressed = await h.press(pushed, f"c:{h.hash_of(pushed)[:32]}")
        assert "✅ Executed" in (pressed.plain_text or "") and len(h.venue.placed) == 1
        staged = await h.command("/intent grid max_notional=200 max_orders=2 max_loss=10 expiry=10m")
        assert "Mandate" in ((await h.command(f"/confirm {h.hash_of(staged)[:10]}")).plain_text or "")
        await h.tick("60002")
        await h.tick("60003")
        assert len(h.venue.placed) == 3


async def test_mandates_are_refused_in_plain_dry_run(tmp_path: Path) -> None:
    strat = EveryTick("grid", {"order_qty": "0.001"}, [ASSET])
    async with Harness(tmp_path, mode=Mode.DRY_RUN, strategies=[strat]) as h:
        reply = await h.command("/intent grid max_notional=200 max_orders=2 max_loss=10 expiry=10m")
        assert "already trade against the simulated venue" in (reply.plain_text or "")


async def test_live_without_telegram_refuses_to_build(tmp_path: Path) -> None:
    from bot.config import TelegramSettings
    from bot.domain.position import Portfolio
    from bot.engine.market_state import MarketState
    from bot.service import StartupError, build_control_core

    with pytest.raises(StartupError, match="LIVE needs the Telegram control plane"):
        build_control_core(TelegramSettings(), mode=Mode.LIVE, clock=h_clock(), audit=None, venue=None, instruments={},
                           market=MarketState(), portfolio=Portfolio())


def h_clock() -> Any:
    from bot.engine.clock import ManualClock

    return ManualClock(0)
