"""Self-tests of FakeTelegram, driven through a real python-telegram-bot Application.

Nothing here sleeps to wait: the bot's effects are awaited with ``fake.wait_for_*`` and
anything else is bounded with ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import html
import statistics
import struct
import time
import zlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from tests.fakes.telegram_server import EntityParseError, FakeTelegram, parse_html

USER = 1001
GROUP = -1002003004005
BOUND = 10.0  # safety bound (seconds) for awaits that are not fake.wait_for_*


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (torn down after every other fixture)."""
    yield
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, f"tasks still running: {leftovers}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def app(fake: FakeTelegram) -> Application:
    return build_app(fake)


def build_app(fake: FakeTelegram, token: str | None = None) -> Application:
    return (
        ApplicationBuilder()
        .token(token or fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )


@contextlib.asynccontextmanager
async def polling(app: Application, **start_polling_kwargs: object) -> AsyncIterator[Application]:
    """Run the application as a polling bot and shut it down cleanly."""
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(**start_polling_kwargs)  # type: ignore[arg-type]
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG, built by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def reply_hello(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message and update.effective_user
    await update.effective_message.reply_text(f"Hello {update.effective_user.id}")


# --------------------------------------------------------------------------- polling & commands


async def test_polling_bot_bootstraps_then_long_polls(fake: FakeTelegram, app: Application) -> None:
    async with polling(app):
        await fake.wait_for_poll()
        methods = [c.method for c in fake.calls]
        poll = fake.calls_to("getUpdates")[0]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert poll.params["timeout"] == "10"  # form-encoded: every value is a string
    # On shutdown PTB drops its long poll and confirms the offset with a short poll.
    assert fake.calls[-1].method == "getUpdates"
    assert fake.calls[-1].params["timeout"] == "0"


async def test_start_command_gets_a_reply_in_the_same_chat(
    fake: FakeTelegram, app: Application
) -> None:
    app.add_handler(CommandHandler("start", reply_hello))
    async with polling(app):
        update = fake.send_message(USER, USER, "/start")
        [reply] = await fake.wait_for_sent()

    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert reply.method == "sendMessage"
    assert reply.chat_id == USER
    assert reply.text == f"Hello {USER}"
    assert reply.message_id == update["message"]["message_id"] + 1  # one id sequence per chat


async def test_command_addressed_with_bot_username_is_delivered(
    fake: FakeTelegram, app: Application
) -> None:
    app.add_handler(CommandHandler("start", reply_hello))
    async with polling(app):
        fake.send_message(GROUP, USER, "/start@other_bot", chat_type="supergroup")
        ours = fake.send_message(GROUP, USER, "/start@test_bot now", chat_type="supergroup")
        [reply] = await fake.wait_for_sent()
        await fake.wait_for_poll()  # both updates fetched; PTB handles them in order

    entity = ours["message"]["entities"][0]
    assert entity["length"] == len("/start@test_bot")
    assert reply.chat_id == GROUP
    assert len(fake.sent) == 1  # the command for @other_bot was ignored by PTB


async def test_button_press_reaches_callback_handler_and_is_answered(
    fake: FakeTelegram, app: Application
) -> None:
    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Pause", callback_data="pause")]])
        await update.effective_message.reply_text("Trading is on", reply_markup=keyboard)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query and query.message
        await query.answer(f"got {query.data}")
        await query.edit_message_text("Paused")

    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CallbackQueryHandler(on_button))
    async with polling(app):
        fake.send_message(USER, USER, "/menu")
        [menu_message] = await fake.wait_for_sent()
        press = fake.press_button(USER, USER, menu_message.message_id, "pause")
        [answer] = await fake.wait_for_call("answerCallbackQuery")
        [edit] = await fake.wait_for_sent(lambda r: r.method == "editMessageText")

    assert menu_message.reply_markup == {
        "inline_keyboard": [[{"text": "Pause", "callback_data": "pause"}]]
    }
    assert answer.params["callback_query_id"] == press["callback_query"]["id"]
    assert answer.params["text"] == "got pause"
    assert edit.message_id == menu_message.message_id
    current = fake.message(USER, menu_message.message_id)
    assert current is not None
    assert current["text"] == "Paused"
    assert "reply_markup" not in current  # editing text without a markup drops the keyboard


async def test_press_button_refuses_a_button_the_message_does_not_have(
    fake: FakeTelegram,
) -> None:
    fake.send_message(USER, USER, "hi")
    with pytest.raises(ValueError, match="no button"):
        fake.press_button(USER, USER, 1, "pause")


# --------------------------------------------------------------------------- direct API calls


async def test_set_my_commands_is_recorded(fake: FakeTelegram, app: Application) -> None:
    commands = [BotCommand("start", "Start"), BotCommand("status", "Show status")]
    async with app:
        assert await app.bot.set_my_commands(commands)
        assert await app.bot.get_my_commands() == tuple(commands)
        with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
            await app.bot.set_my_commands([BotCommand("Status", "capital letters")])

    [call, *_] = fake.calls_to("setMyCommands")
    assert call.status == 200
    assert fake.my_commands() == [
        {"command": "start", "description": "Start"},
        {"command": "status", "description": "Show status"},
    ]


async def test_flood_control_raises_retry_after(
    fake: FakeTelegram, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without PTB_TIMEDELTA, PTB 22.8 warns while *building* RetryAfter (see next test).
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    fake.fail_next("sendMessage", 429, retry_after=7)
    async with app:
        with pytest.raises(RetryAfter) as raised:
            await app.bot.send_message(USER, "too fast")
        await app.bot.send_message(USER, "later")  # the fault was for one call only

    assert raised.value.retry_after == dtm.timedelta(seconds=7)
    failed, ok = fake.calls_to("sendMessage")
    assert failed.status == 429
    assert failed.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert ok.status == 200
    assert [r.text for r in fake.sent] == ["later"]


async def test_retry_after_warns_unless_ptb_timedelta_is_set(
    fake: FakeTelegram, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents a PTB 22.8 trap: with filterwarnings=error and no PTB_TIMEDELTA, a 429
    surfaces as PTBDeprecationWarning instead of RetryAfter."""
    monkeypatch.delenv("PTB_TIMEDELTA", raising=False)
    fake.fail_next("sendMessage", 429, retry_after=3)
    async with app:
        with pytest.warns(PTBDeprecationWarning, match="retry_after"):
            with pytest.raises(RetryAfter):
                await app.bot.send_message(USER, "too fast")


async def test_other_faults_and_unknown_methods(fake: FakeTelegram, app: Application) -> None:
    fake.fail_next("sendMessage", 403, description="Forbidden: bot was blocked by the user")
    fake.fail_next("sendMessage", 502, times=2)
    async with app:
        with pytest.raises(Exception, match="bot was blocked"):
            await app.bot.send_message(USER, "x")
        for _ in range(2):
            with pytest.raises(NetworkError, match="Bad Gateway"):
                await app.bot.send_message(USER, "x")
        await app.bot.send_message(USER, "x")
        with pytest.raises(EndPointNotFound):
            await app.bot.do_api_request("noSuchMethod")

    assert [c.status for c in fake.calls_to("sendMessage")] == [403, 502, 502, 200]
    assert fake.calls_to("noSuchMethod")[0].response == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }


async def test_photo_and_document_bytes_arrive_intact(fake: FakeTelegram, app: Application) -> None:
    png = tiny_png(width=3, height=2)
    csv = b"symbol,qty\nBTCUSDT,0.5\n"
    async with app:
        message = await app.bot.send_photo(
            USER, photo=png, caption="<b>PnL</b> today", parse_mode="HTML"
        )
        file = await app.bot.get_file(message.photo[-1].file_id)
        downloaded = await file.download_as_bytearray()
        await app.bot.send_document(USER, document=csv, filename="fills.csv")
        with pytest.raises(BadRequest, match="(?i)image_process_failed"):
            await app.bot.send_photo(USER, photo=b"not an image")

    photo, document = fake.sent
    assert photo.method == "sendPhoto"
    assert photo.photo == png
    assert photo.photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert photo.caption == "<b>PnL</b> today"
    assert photo.plain_text == "PnL today"
    assert (message.photo[-1].width, message.photo[-1].height) == (3, 2)
    assert message.caption_entities[0].type == "bold"
    assert bytes(downloaded) == png  # through base_file_url
    assert document.document == csv
    assert document.filename == "fills.csv"


async def test_wrong_token_raises_invalid_token_on_initialize(fake: FakeTelegram) -> None:
    app = build_app(fake, token="999999:WRONG-token")
    try:
        with pytest.raises(InvalidToken):
            await app.initialize()
    finally:
        await app.bot.shutdown()  # initialize() opened the HTTP clients before failing

    [call] = fake.calls
    assert (call.method, call.token_ok, call.status) == ("getMe", False, 401)
    assert call.response == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_go_down_refuses_connections_and_come_back_restores_them(
    fake: FakeTelegram, app: Application
) -> None:
    port = fake.port
    async with app:
        first = await app.bot.send_message(USER, "before")
        await fake.go_down()
        with pytest.raises(NetworkError):
            await app.bot.send_message(USER, "while down")
        await fake.come_back()
        second = await app.bot.send_message(USER, "after")

    assert fake.port == port
    assert [r.text for r in fake.sent] == ["before", "after"]  # records kept
    assert second.message_id == first.message_id + 1  # chat state kept


async def test_polling_bot_recovers_after_an_outage(fake: FakeTelegram, app: Application) -> None:
    app.add_handler(CommandHandler("start", reply_hello))
    async with polling(app):
        await fake.wait_for_poll()
        await fake.go_down()  # drops the held long poll
        fake.send_message(USER, USER, "/start")  # queued while the server is down
        await fake.come_back()
        # PTB's retry loop backs off ~1 s after a network error before polling again.
        [reply] = await fake.wait_for_sent(timeout=BOUND)
    assert reply.chat_id == USER


async def test_html_is_validated_so_the_bot_must_escape(
    fake: FakeTelegram, app: Application
) -> None:
    raw = "price < 10 & qty > 2 <script>"
    async with app:
        for bad in ("price < 10", "<b>unclosed", "<blink>x</blink>", "<b>x</i>"):
            with pytest.raises(BadRequest, match="(?i)can't parse entities"):
                await app.bot.send_message(USER, bad, parse_mode="HTML")
        await app.bot.send_message(USER, f"<b>Alert</b> {html.escape(raw)}", parse_mode="HTML")

    [record] = fake.sent
    assert record.plain_text == f"Alert {raw}"
    assert record.parse_mode == "HTML"


async def test_edits_and_deletes_follow_telegram_rules(
    fake: FakeTelegram, app: Application
) -> None:
    async with app:
        message = await app.bot.send_message(USER, "status: ok")
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await app.bot.edit_message_text("status: ok", USER, message.message_id)
        edited = await app.bot.edit_message_text("status: paused", USER, message.message_id)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Resume", callback_data="resume")]])
        await app.bot.edit_message_reply_markup(USER, message.message_id, reply_markup=markup)
        with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
            too_long = InlineKeyboardButton("x", callback_data="x" * 65)
            await app.bot.send_message(USER, "y", reply_markup=InlineKeyboardMarkup([[too_long]]))
        assert await app.bot.delete_message(USER, message.message_id)
        with pytest.raises(BadRequest, match="(?i)message to delete not found"):
            await app.bot.delete_message(USER, message.message_id)

    assert edited.text == "status: paused"
    assert [r.method for r in fake.sent] == [
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
    ]
    assert fake.message(USER, message.message_id) is None


async def test_get_chat_get_me_and_chat_action(fake: FakeTelegram, app: Application) -> None:
    fake.send_message(USER, USER, "hi", username="operator")
    async with app:
        chat = await app.bot.get_chat(USER)
        assert await app.bot.send_chat_action(USER, "typing")
    assert (chat.id, chat.type, chat.username) == (USER, "private", "operator")
    assert app.bot.username == "test_bot"


# --------------------------------------------------------------------------- updates & long polling


async def test_injected_old_update_carries_its_old_date(
    fake: FakeTelegram, app: Application
) -> None:
    seen: list[Update] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update)
        await reply_hello(update, context)

    old = int(time.time()) - 3600
    fake.send_message(USER, USER, "/start", date=old)  # queued while the bot was down
    app.add_handler(CommandHandler("start", record))
    async with polling(app):
        await fake.wait_for_sent()

    assert seen[0].message is not None
    assert seen[0].message.date == dtm.datetime.fromtimestamp(old, tz=dtm.timezone.utc)


async def test_drop_pending_updates_discards_the_backlog(
    fake: FakeTelegram, app: Application
) -> None:
    seen: list[str] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.text
        seen.append(update.message.text)
        await reply_hello(update, context)

    fake.send_message(USER, USER, "/start backlog", date=time.time() - 60)
    app.add_handler(CommandHandler("start", record))
    async with polling(app, drop_pending_updates=True):
        await fake.wait_for_poll()
        fake.send_message(USER, USER, "/start fresh")
        await fake.wait_for_sent()
    assert seen == ["/start fresh"]


async def test_get_updates_offset_confirms_and_long_poll_wakes_on_injection(
    fake: FakeTelegram, app: Application
) -> None:
    async with app:
        bot = app.bot
        first = fake.send_message(USER, USER, "one")["update_id"]
        second = fake.send_message(USER, USER, "two")["update_id"]
        assert second == first + 1
        assert [u.update_id for u in await bot.get_updates(timeout=0)] == [first, second]
        assert [u.update_id for u in await bot.get_updates(offset=second, timeout=0)] == [second]
        assert [u["update_id"] for u in fake.pending_updates] == [second]  # first confirmed

        poll = asyncio.create_task(bot.get_updates(offset=second + 1, timeout=30))
        await fake.wait_for_poll()
        started = time.perf_counter()
        third = fake.send_message(USER, USER, "three")["update_id"]
        async with asyncio.timeout(BOUND):
            updates = await poll
        woke_after = time.perf_counter() - started

        started = time.perf_counter()
        assert await bot.get_updates(offset=third + 1, timeout=1) == ()
        empty_after = time.perf_counter() - started

    assert [u.update_id for u in updates] == [third]
    assert woke_after < 0.5  # woken by the injection, not by the 30 s timeout
    assert 1.0 <= empty_after < 1.5  # an empty list exactly at the poll timeout


async def test_a_second_bot_instance_terminates_the_first_poll_with_conflict(
    fake: FakeTelegram, app: Application
) -> None:
    other_instance = build_app(fake)
    async with app, other_instance:
        first = asyncio.create_task(app.bot.get_updates(timeout=30))
        await fake.wait_for_poll()
        async with asyncio.timeout(BOUND):
            assert await other_instance.bot.get_updates(timeout=0) == ()
            with pytest.raises(Conflict, match="terminated by other getUpdates"):
                await first


async def test_edited_message_update(fake: FakeTelegram) -> None:
    original = fake.send_message(USER, USER, "buy 1")["message"]
    edited = fake.send_message(USER, USER, "buy 2", edited=True)["edited_message"]
    assert edited["message_id"] == original["message_id"]
    assert edited["text"] == "buy 2"
    assert "edit_date" in edited


# --------------------------------------------------------------------------- HTML parser


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("</i>", "Unexpected end tag at byte offset 0"),
        ("é<b>x</i>", 'Unmatched end tag at byte offset 6, expected "</b>", found "</i>"'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
    ],
)
def test_parse_html_rejects(text: str, error: str) -> None:
    with pytest.raises(EntityParseError) as raised:
        parse_html(text)
    assert str(raised.value) == error


def test_parse_html_entities_use_utf16_offsets() -> None:
    plain, entities = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.test/?a=1&amp;b=2">link</a> a&b &gt; c'
    )
    assert plain == "😀 bold both link a&b > c"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "url": "https://x.test/?a=1&b=2", "offset": 13, "length": 4},
    ]


@given(st.text())
def test_escaped_text_always_parses_back_to_itself(text: str) -> None:
    assert parse_html(html.escape(text)) == (text, [])


# --------------------------------------------------------------------------- reference timing


async def test_echo_round_trip_latency(
    fake: FakeTelegram, app: Application, capsys: pytest.CaptureFixture[str]
) -> None:
    """Measures (does not assert) inject -> bare echo handler -> recorded reply."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.text
        await update.message.reply_text(update.message.text)

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    samples: list[float] = []
    async with polling(app):
        await fake.wait_for_poll()
        for i in range(200):
            since = len(fake.sent)
            started = time.perf_counter()
            fake.send_message(USER, USER, f"ping {i}")
            [reply] = await fake.wait_for_sent(since=since)
            samples.append((time.perf_counter() - started) * 1000)
            assert reply.text == f"ping {i}"

    p50 = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    with capsys.disabled():
        print(f"\necho round trip over {len(samples)} messages: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
