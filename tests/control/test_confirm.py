"""/confirm: every way a confirmation must be refused, and the ones that must execute (real PTB over HTTP)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pyotp

from bot.domain.errors import ErrorCode
from bot.domain.modes import Mode
from bot.risk.limits import RiskLimits
from bot.risk.safety import TradingState
from tests.control.harness import ASSET, GROUP, OP, OP2, STRANGER, Harness

NS = 1_000_000_000
BUY = "/intent manual buy BTC/USDT 0.01 limit 59000"


async def staged(h: Harness, text: str = BUY, user: int = OP, chat: int | None = None) -> str:
    reply = await h.command(text, user, chat)
    assert reply.reply_markup is not None, reply.plain_text
    return h.hash_of(reply)


async def test_wrong_hash_is_refused_and_counts_as_a_failure(h: Harness) -> None:
    await h.command("/arm 15m")
    good = await staged(h)
    bad = "0123456789" if not good.startswith("0123456789") else "9876543210"
    reply = await h.command(f"/confirm {bad}")
    assert "No staged intent matches" in (reply.plain_text or "")
    assert "at least the first 10" in ((await h.command(f"/confirm {good[:9]}")).plain_text or "")
    locked = await h.command("/confirm ffffffffffffffff" if not good.startswith("ffffffffff") else "/confirm eeeeeeeeeeeeeee")
    assert "locked out" in (locked.plain_text or "")
    assert "locked out" in ((await h.command(f"/confirm {good[:10]}")).plain_text or "")  # even the right hash, while locked out
    assert h.venue.placed == []


async def test_ambiguous_prefix_is_refused_until_it_is_unique(h: Harness) -> None:
    counter = itertools.count()
    h.control.book._hash_fn = lambda payload, nonce: "abcdef0123" + f"{next(counter):054x}"
    await h.command("/arm 15m")
    first = await staged(h)
    second = await staged(h, "/intent manual buy BTC/USDT 0.01 limit 58000")
    assert first[:10] == second[:10]
    reply = await h.command("/confirm abcdef0123")
    assert "2 staged intents start with abcdef0123: give more characters" in (reply.plain_text or "")
    assert h.venue.placed == []
    done = await h.command(f"/confirm {second}")
    assert "✅ Executed" in (done.plain_text or "")
    assert [r.limit_price for r in h.venue.placed] == [Decimal("58000.00")]
    assert "✅ Executed" in ((await h.command("/confirm abcdef0123")).plain_text or "")  # unique again: only one pending


async def test_expired_intent_is_refused(h: Harness) -> None:
    await h.command("/arm 1h")
    full = await staged(h)
    h.advance(120)  # intent_ttl_s = 120: expired at exactly 120 s
    reply = await h.command(f"/confirm {full[:10]}")
    assert "expired at" in (reply.plain_text or "") and "stage it again" in (reply.plain_text or "")
    assert h.venue.placed == []


async def test_not_armed_is_refused(h: Harness) -> None:
    full = h.hash_of(await h.command(BUY))  # staged while not armed: a preview
    reply = await h.command(f"/confirm {full[:10]}")
    assert "Not armed" in (reply.plain_text or "") and h.venue.placed == []


async def test_arming_expired_between_intent_and_confirm(h: Harness) -> None:
    await h.command("/arm 1m")
    full = await staged(h)
    h.advance(61)  # the intent (2 min) is still fresh, the arming (1 min) is not
    reply = await h.command(f"/confirm {full[:10]}")
    assert "was voided" in (reply.plain_text or "") and "arming ended: arming expired" in (reply.plain_text or "")
    assert h.venue.placed == []
    await h.command("/arm 1m")  # a new window does not revive it
    assert "was voided" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    assert h.venue.placed == []


async def test_price_drift_restages_with_a_new_hash(h: Harness) -> None:
    await h.command("/arm 15m")
    full = await staged(h)
    await h.tick("60400", "60400.02")  # mid moved 400 / 60000.01 = 66.7 bps > 50 bps
    reply = await h.command(f"/confirm {full[:10]}")
    text = reply.plain_text or ""
    assert "The price moved 66.7 bps since staging" in text and "was not executed" in text
    assert h.venue.placed == []
    new = h.hash_of(reply)
    assert new != full and reply.reply_markup is not None
    assert "Mid at staging 60,400.01 USDT" in text
    assert "was voided" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    assert "✅ Executed" in ((await h.command(f"/confirm {new[:10]}")).plain_text or "")
    assert [(r.side.value, r.qty, r.limit_price) for r in h.venue.placed] == [("BUY", Decimal("0.01"), Decimal("59000.00"))]


async def test_drift_just_within_the_limit_executes(h: Harness) -> None:
    await h.command("/arm 15m")
    full = await staged(h)
    await h.tick("60299", "60299.02")  # 299 / 60000.01 = 49.8 bps
    assert "Drift 49.8 bps" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    assert len(h.venue.placed) == 1


async def test_replayed_confirm_is_refused(h: Harness) -> None:
    await h.command("/arm 15m")
    full = await staged(h)
    staged_reply = h.fake.sent[-1]
    assert "✅ Executed" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    again = await h.command(f"/confirm {full}")
    assert "was already confirmed at" in (again.plain_text or "") and "single use" in (again.plain_text or "")
    button = await h.press(staged_reply, f"c:{full[:32]}")  # a stale button press is a replay too
    assert "was already confirmed" in (button.plain_text or "")
    assert len(h.venue.placed) == 1


async def test_confirm_after_disarm_is_refused(h: Harness) -> None:
    await h.command("/arm 15m")
    full = await staged(h)
    await h.command("/disarm")
    assert "was voided" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    await h.command("/arm 15m")
    assert "was voided" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
    assert h.venue.placed == []


async def test_confirm_after_safe_is_refused(h: Harness) -> None:
    await h.command("/arm 15m")
    full = await staged(h)
    h.control.safety.enter(TradingState.SAFE, ErrorCode.POSITION_MISMATCH, "reconciliation: venue 0.02 vs internal 0")
    reply = await h.command(f"/confirm {full[:10]}")
    assert "was voided" in (reply.plain_text or "") and "trading state SAFE" in (reply.plain_text or "")
    assert h.venue.placed == []


async def test_risk_runs_again_at_confirmation(tmp_path: Path) -> None:
    limits = RiskLimits(Decimal("0.1"), Decimal("10000"), Decimal("0.015"), {"sim": (ASSET,)})
    async with Harness(tmp_path, risk=limits) as h:
        await h.tick("60000")
        await h.command("/arm 15m")
        a = await staged(h)
        b = await staged(h, "/intent manual buy BTC/USDT 0.01 limit 58000")  # passes alone
        assert "✅ Executed" in ((await h.command(f"/confirm {a[:10]}")).plain_text or "")
        reply = await h.command(f"/confirm {b[:10]}")  # now 0.01 resting + 0.01 > 0.015
        assert "Risk blocked" in (reply.plain_text or "") and "max_position_qty" in (reply.plain_text or "")
        assert len(h.venue.placed) == 1
        assert "was already confirmed" in ((await h.command(f"/confirm {b[:10]}")).plain_text or "")


async def test_no_market_data_fails_closed(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:  # no tick yet
        await h.command("/arm 15m")
        reply = await h.command(BUY)
        assert "Risk pre-check blocked" in (reply.plain_text or "") and "MARKET_DATA_STALE" in (reply.plain_text or "")
        await h.tick("60000")
        full = await staged(h)
        h.market.last.clear()  # the price disappears between staging and confirmation
        assert "No market price to check the drift against" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
        assert h.venue.placed == []
        await h.tick("60000")
        assert "✅ Executed" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")  # still pending: it can go now


async def test_four_eyes_needs_a_second_operator(tmp_path: Path) -> None:
    async with Harness(tmp_path, four_eyes_notional=Decimal("500")) as h:
        await h.tick("60000")
        await h.command("/arm 15m")
        small = await staged(h, "/intent manual buy BTC/USDT 0.005 limit 59000")  # 295 USDT: one confirmation
        assert "✅ Executed" in ((await h.command(f"/confirm {small[:10]}")).plain_text or "")
        reply = await h.command(BUY, OP, GROUP)  # 590 USDT, staged in the operators' group
        assert "Needs 2 confirmations from different operators" in (reply.plain_text or "")
        big = h.hash_of(reply)
        first = await h.command(f"/confirm {big[:10]}", OP, GROUP)
        assert "Confirmation 1 of 2 recorded" in (first.plain_text or "")
        assert "You already confirmed" in ((await h.command(f"/confirm {big[:10]}", OP, GROUP)).plain_text or "")
        h.fake.press_button(GROUP, STRANGER, reply.message_id, f"c:{big[:32]}")  # not an operator: no effect, no answer
        await h.settle()
        assert len(h.venue.placed) == 1
        second = await h.press(reply, f"c:{big[:32]}", user=OP2)
        assert "✅ Executed" in (second.plain_text or "")
        assert len(h.venue.placed) == 2


async def test_dry_run_confirm_executes_without_arming_with_the_same_checks(tmp_path: Path) -> None:
    async with Harness(tmp_path, mode=Mode.DRY_RUN) as h:
        await h.tick("60000")
        reply = await h.command(BUY)
        assert reply.reply_markup is not None and "preview" not in (reply.plain_text or "")
        full = h.hash_of(reply)
        assert "✅ Executed" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
        assert "was already confirmed" in ((await h.command(f"/confirm {full[:10]}")).plain_text or "")
        drifting = await staged(h)
        await h.tick("61000")
        assert "The price moved" in ((await h.command(f"/confirm {drifting[:10]}")).plain_text or "")
        last = await staged(h, "/intent manual buy BTC/USDT 0.01 limit 60000")
        h.control.safety.kill("test kill")
        assert "was voided" in ((await h.command(f"/confirm {last[:10]}")).plain_text or "")
        assert len(h.venue.placed) == 1


async def test_totp_second_factor_on_arm(tmp_path: Path) -> None:
    secret = pyotp.random_base32()
    async with Harness(tmp_path, totp_secret=secret, lockout_after_failures=10) as h:
        totp = pyotp.TOTP(secret)
        assert "requires a second factor" in ((await h.command("/arm 15m")).plain_text or "")
        now_s = h.clock.now_ns() // NS
        good = totp.at(now_s)
        wrong = f"{(int(good) + 1) % 1_000_000:06d}"
        assert "wrong second-factor code" in ((await h.command(f"/arm 15m {wrong}")).plain_text or "")
        assert not h.control.arming.is_armed()
        assert "ARMED" in ((await h.command(f"/arm 15m {good}")).plain_text or "")
        await h.command("/disarm")
        assert "already used" in ((await h.command(f"/arm 15m {good}")).plain_text or "")
        h.advance(30)
        assert "ARMED" in ((await h.command(f"/arm 15m {totp.at(h.clock.now_ns() // NS)}")).plain_text or "")
        await h.flush()
        async with h.db.connect() as conn:
            from sqlalchemy import text

            args = [r[0] for r in (await conn.execute(text("SELECT args FROM operator_commands WHERE command = 'arm'"))).all()]
        assert args and all(good not in a and wrong not in a for a in args)
        assert "15m ******" in args
