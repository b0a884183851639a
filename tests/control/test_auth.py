"""The group -1 gate: allowlists, other bots, edits, stale updates, rate limiting, lockout (real PTB over HTTP)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from bot.risk.safety import TradingState
from bot.store.models import OperatorCommandRow, OutboxRow
from tests.control.harness import GROUP, OP, OP2, OTHER_CHAT, STRANGER, Harness
from tests.fakes.telegram_server import FakeTelegram

NS = 1_000_000_000


async def commands(h: Harness) -> list[tuple[int | None, int | None, str, str, str]]:
    await h.flush()
    async with h.db.connect() as conn:
        rows = (await conn.execute(select(OperatorCommandRow).order_by(OperatorCommandRow.id))).all()
    return [(r.chat_id, r.user_id, r.command, r.args, r.outcome) for r in rows]


def untouched(h: Harness) -> None:
    assert h.control.safety.state is TradingState.ACTIVE
    assert not h.control.arming.is_armed()
    assert h.venue.placed == []


async def test_unauthorized_chat_has_no_effect_is_audited_and_alerts_once(h: Harness) -> None:
    since = len(h.fake.sent)
    h.say("/kill", OP, OTHER_CHAT)  # an operator, but from a chat that is not allowlisted
    h.say("/arm 15m", OP, OTHER_CHAT)
    await h.settle(OP2)
    untouched(h)
    assert [r.chat_id for r in h.fake.sent[since:]] == [OP2]  # nothing was said in the foreign chat
    rows = await commands(h)
    assert (OTHER_CHAT, OP, "kill", "", "unauthorized") in rows and (OTHER_CHAT, OP, "arm", "15m", "unauthorized") in rows
    alerts = await h.fake.wait_for_sent(lambda r: "Unauthorized attempt" in (r.plain_text or ""), since=since)
    assert alerts[0].chat_id == OP and "/kill from user 1001" in (alerts[0].plain_text or "") and "chat not allowlisted" in (alerts[0].plain_text or "")
    async with h.db.connect() as conn:
        outbox = (await conn.execute(select(OutboxRow.text))).all()
    assert len(outbox) == 1  # throttled: the second attempt within the interval raised no second alert


async def test_allowlisted_chat_with_an_unauthorized_user_has_no_effect(h: Harness) -> None:
    since = len(h.fake.sent)
    for text in ("/arm 15m", "/kill", "/intent manual buy BTC/USDT 0.01 limit 59000", "/approve cccccccccc"):
        h.say(text, STRANGER, GROUP)
    await h.settle()
    untouched(h)
    assert h.control.book.pending(h.clock.now_ns()) == []
    assert [r.chat_id for r in h.fake.sent[since:]] == [OP]  # no answer in the group
    assert {o for *_, o in await commands(h) if _[1] == STRANGER} == {"unauthorized"}


async def test_unauthorized_button_presses_have_no_effect(h: Harness) -> None:
    await h.command("/arm 15m")
    staged = await h.command("/intent manual buy BTC/USDT 0.01 limit 59000", OP, GROUP)
    full = h.hash_of(staged)
    h.fake.press_button(GROUP, STRANGER, staged.message_id, f"c:{full[:32]}")  # a stranger in the operators' group
    foreign = h.fake.send_message(OTHER_CHAT, OP, "hi", chat_type="supergroup")["message"]["message_id"]
    h.fake.press_button(OTHER_CHAT, OP, foreign, f"c:{full[:32]}", require_button=False)  # forged, from a foreign chat
    await h.settle()
    assert h.venue.placed == [] and h.control.book.pending(h.clock.now_ns())
    assert h.fake.calls_to("answerCallbackQuery") == []  # not even answered
    assert "✅ Executed" in ((await h.command(f"/confirm {full[:10]}", OP, GROUP)).plain_text or "")


async def test_commands_for_other_bots_and_edits_are_ignored(h: Harness) -> None:
    since = len(h.fake.sent)
    h.say("/kill@other_bot", OP, GROUP)
    first = await h.command("/help", OP, GROUP)
    h.say("/kill", OP, GROUP, edited=True, message_id=first.message_id - 1)  # the /help edited into /kill
    reply = await h.command("/status@test_bot", OP, GROUP)
    assert reply.plain_text and reply.plain_text.startswith("LIVE · 🟢 ACTIVE")
    untouched(h)
    assert len([r for r in h.fake.sent[since:] if r.chat_id == GROUP]) == 2
    assert all(c != "kill" for _, _, c, _, _ in await commands(h))


async def test_stale_message_is_dropped_and_the_sender_told(h: Harness) -> None:
    reply = await h.command("/arm 15m", date=h.clock.now_ns() // NS - 61)
    assert "Dropped /arm sent 1m 01s ago" in (reply.plain_text or "") and "not executed" in (reply.plain_text or "")
    untouched(h)
    assert (OP, OP, "arm", "15m", "dropped_stale") in await commands(h)


async def test_updates_queued_while_the_service_was_down_are_not_executed(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        old = int(time.time()) - 600
        fake.send_message(OP, OP, "/arm 15m", date=old)
        fake.send_message(OP, OP, "/kill", date=old + 1)
        fake.send_message(OP2, OP2, "/intent manual buy BTC/USDT 0.01 limit 59000", date=old + 2)
        async with Harness(tmp_path, fake=fake) as h:
            dropped = await fake.wait_for_sent(lambda r: (r.plain_text or "").startswith("⏱ Dropped"), count=3)
            assert [(r.chat_id, (r.plain_text or "").split(" sent")[0]) for r in dropped] == [
                (OP, "⏱ Dropped /arm"), (OP, "⏱ Dropped /kill"), (OP2, "⏱ Dropped /intent")]
            untouched(h)
            assert h.control.book.pending(h.clock.now_ns()) == []
            assert "ARMED" in ((await h.command("/arm 15m")).plain_text or "")  # fresh commands work


async def test_rate_limit_per_user_spares_kill(tmp_path: Path) -> None:
    async with Harness(tmp_path, commands_per_minute=3) as h:
        for _ in range(3):
            assert (await h.command("/status")).plain_text
        limited = await h.command("/status")
        assert "Too many commands: try again in" in (limited.plain_text or "")
        assert (await h.command("/status", OP2)).plain_text.startswith("LIVE")  # type: ignore[union-attr]  # per user
        assert "KILLED" in ((await h.command("/kill")).plain_text or "")
        assert ("rate_limited" in [o for *_, o in await commands(h)])


async def test_unauthorized_attempts_lock_the_user_out_everywhere(h: Harness) -> None:
    for _ in range(3):
        h.say("/status", OP, OTHER_CHAT)
    reply = await h.command("/status")
    assert "You are locked out until" in (reply.plain_text or "")
    assert "KILLED" in ((await h.command("/kill")).plain_text or "")  # stopping the bot always works


async def test_lockout_escalates_and_survives_a_restart(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        async with Harness(tmp_path, fake=fake) as h:
            await h.command("/confirm 0123456789")
            await h.command("/confirm 0123456789")
            third = await h.command("/confirm 0123456789")
            assert "you are locked out until" in (third.plain_text or "")
            until = h.plane.lockouts.locked_until(OP)
            assert until is not None and 59 * NS <= until - h.clock.now_ns() <= 60 * NS
        async with Harness(tmp_path, fake=fake) as h2:  # a restart: same database, new process state
            reply = await h2.command("/status")
            assert "You are locked out until" in (reply.plain_text or "")
            status = (await h2.command("/status", OP2)).plain_text or ""
            assert "🔒 Lockouts: user 1001 until" in status
            h2.advance(61)
            assert (await h2.command("/status")).plain_text.startswith("LIVE")  # type: ignore[union-attr]
            for _ in range(2):
                await h2.command("/arm nonsense")
            second = await h2.command("/arm nonsense")
            assert "you are locked out until" in (second.plain_text or "")
            until2 = h2.plane.lockouts.locked_until(OP)
            assert until2 is not None and until2 - h2.clock.now_ns() == 240 * NS  # escalated: 4 x 60 s
