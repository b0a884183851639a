"""Alerts through the outbox: nothing lost while Telegram is unreachable, nothing sent twice, order kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.domain.errors import ErrorCode
from bot.risk.safety import TradingState
from bot.store.outbox import OutboxRepo
from tests.control.harness import OP, Harness

NS = 1_000_000_000


def alerts(h: Harness, since: int = 0) -> list[str]:
    return [r.plain_text or "" for r in h.fake.sent[since:] if "#" in (r.plain_text or "") and r.chat_id == OP]


async def test_alerts_raised_while_telegram_is_down_arrive_once_in_order(h: Harness) -> None:
    notifier = h.control.notifier
    since = len(h.fake.sent)
    await h.fake.go_down()
    for i in range(5):
        notifier.alert("WARNING", f"test:{i}", f"alert number {i} &lt;ok&gt;")
    h.control.safety.enter(TradingState.SAFE, ErrorCode.MARKET_DATA_STALE, "all feeds stale for 30 s")
    await h.flush()  # committed to the outbox with the state transition
    repo = OutboxRepo(h.db)
    # delivery keeps failing while the server is down (connection refused): nothing is marked sent
    h.telegram.delivery.transient_failure.clear()
    async with asyncio.timeout(10):
        await h.telegram.delivery.transient_failure.wait()
    assert all(s == "pending" for _, s, _ in await repo.statuses())
    assert any(a > 0 for _, _, a in await repo.statuses())
    await h.fake.come_back()
    delivered = await h.fake.wait_for_sent(lambda r: r.chat_id == OP and "#" in (r.plain_text or ""), count=6, since=since, timeout=10)
    texts = [r.plain_text or "" for r in delivered]
    assert [t.split("\n")[0] for t in texts[:5]] == [f"⚠️ alert number {i} <ok>" for i in range(5)]
    assert texts[5].startswith("🛑 Trading state SAFE (MARKET_DATA_STALE): all feeds stale for 30 s. New orders stop.")
    ids = [int(t.rsplit("#", 1)[1]) for t in texts]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # a later alert arrives after them, and none of the earlier ones is sent again
    notifier.alert("INFO", "test:after", "after the outage")
    await h.flush()
    await h.fake.wait_for_sent(lambda r: "after the outage" in (r.plain_text or ""), since=since)
    async with asyncio.timeout(10):
        await h.telegram.delivery.settled()
    assert len(alerts(h, since)) == len(texts) + 1
    assert {s for _, s, _ in await repo.statuses()} == {"sent"}


async def test_flood_control_retry_after_is_honoured(h: Harness) -> None:
    h.fake.fail_next("sendMessage", 429, retry_after=1)
    since = len(h.fake.sent)
    h.control.notifier.alert("CRITICAL", "k1", "first")
    h.control.notifier.alert("CRITICAL", "k2", "second")
    await h.flush()
    [first, second] = await h.fake.wait_for_sent(lambda r: r.chat_id == OP and "#" in (r.plain_text or ""), count=2, since=since)
    assert (first.plain_text or "").startswith("🛑 first") and (second.plain_text or "").startswith("🛑 second")
    calls = [c for c in h.fake.calls_to("sendMessage") if "first" in str(c.params.get("text"))]
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].ts - calls[0].ts >= 1.0  # not before retry_after
    assert len(alerts(h, since)) == 2


async def test_a_permanent_error_drops_that_alert_only(h: Harness) -> None:
    h.fake.fail_next("sendMessage", 400, description="Bad Request: chat not found")
    since = len(h.fake.sent)
    h.control.notifier.alert("WARNING", "a", "undeliverable")
    h.control.notifier.alert("WARNING", "b", "deliverable")
    await h.flush()
    [sent] = await h.fake.wait_for_sent(lambda r: "deliverable" in (r.plain_text or ""), since=since)
    assert (sent.plain_text or "").startswith("⚠️ deliverable")
    async with asyncio.timeout(10):
        await h.telegram.delivery.settled()
    statuses = [s for _, s, _ in await OutboxRepo(h.db).statuses()]
    assert statuses == ["dropped", "sent"]


async def test_outbox_survives_a_restart(tmp_path: Path) -> None:
    from tests.fakes.telegram_server import FakeTelegram

    async with FakeTelegram() as fake:
        async with Harness(tmp_path, fake=fake) as h:
            await fake.go_down()
            h.control.notifier.alert("CRITICAL", "x", "raised before the restart")
            await h.flush()
            h.telegram.delivery.retry_max_s = 0.05
        await fake.come_back()
        since = len(fake.sent)
        async with Harness(tmp_path, fake=fake):
            [sent] = await fake.wait_for_sent(lambda r: "raised before the restart" in (r.plain_text or ""), since=since, timeout=10)
            assert sent.chat_id == OP


async def test_overlapping_delivery_passes_never_send_a_row_twice(tmp_path: Path) -> None:
    """The worker and the shutdown drain may run a pass at the same time: each row still goes out once."""
    import time

    from bot.control.delivery import OutboxDelivery
    from bot.engine.clock import ManualClock
    from bot.store.audit import AuditStore
    from bot.store.db import create_engine
    from bot.store import migrate
    from bot.store.outbox import OutboxItem

    db = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    try:
        await migrate.upgrade(db)
        audit = AuditStore(db, run_id="r", mode="LIVE", version_hash="v", config_hash="c", now_ns=ManualClock(time.time_ns()).now_ns)
        for i in range(3):
            audit.add_outbox({"severity": "INFO", "dedup_key": f"k{i}", "text": f"t{i}", "chat_id": OP})
        await audit.flush()
        gate = asyncio.Event()
        sent: list[int] = []

        async def slow_sender(item: OutboxItem) -> None:
            await gate.wait()
            sent.append(item.id)

        delivery = OutboxDelivery(OutboxRepo(db), slow_sender, now_ns=time.time_ns, retry_max_s=1)
        first = asyncio.create_task(delivery.deliver_due())
        second = asyncio.create_task(delivery.deliver_due())
        gate.set()
        async with asyncio.timeout(10):
            await asyncio.gather(first, second)
        assert sorted(sent) == [1, 2, 3]
    finally:
        await db.dispose()


async def test_rows_written_without_a_chat_go_to_every_alert_chat(tmp_path: Path) -> None:
    """Ops writes its messages (daily summary, incident reports) without a chat: each alert chat gets one."""
    from bot.ops.outbox import enqueue
    from bot.store.types import ns_to_datetime
    from tests.control.harness import GROUP

    async with Harness(tmp_path, alert_chat_ids=(OP, GROUP)) as h:
        since = len(h.fake.sent)
        async with h.db.begin() as conn:
            await enqueue(conn, now=ns_to_datetime(h.clock.now_ns()), severity="INFO", dedup_key="daily-summary:x:text", text="<b>Daily</b> summary")
        h.telegram.delivery.wake()
        sent = await h.fake.wait_for_sent(lambda r: "Daily summary" in (r.plain_text or ""), count=2, since=since)
        assert sorted(r.chat_id for r in sent) == sorted([OP, GROUP])
        async with asyncio.timeout(10):
            await h.telegram.delivery.settled()
        assert sorted(s for _, s, _ in await OutboxRepo(h.db).statuses()) == ["fanned", "sent", "sent"]
