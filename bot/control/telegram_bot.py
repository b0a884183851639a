"""The python-telegram-bot Application: the auth gate in group -1, one command dispatcher, buttons, delivery.

Runs inside the service's event loop: ``async with application: await application.start();
await application.updater.start_polling(...)``. If the Bot API is unreachable at start, it retries with backoff
while the rest of the service runs (alerts wait in the outbox). A rejected token stops the retries (logged
without the token).

Outgoing messages go through PTB's ``AIORateLimiter`` (``telegram.send_rate_per_s``). Replies retry a flood-
control answer twice; alerts are retried durably by ``OutboxDelivery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import html as html_lib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.config import TelegramSettings
from bot.control.auth import Gatekeeper, Incoming
from bot.control.command import Buttons, Reply, Sender
from bot.control.delivery import OutboxDelivery
from bot.control.plane import ControlPlane
from bot.control.staging import Staged
from bot.control.views import staged_buttons, staged_html
from bot.keys.redaction import redact
from bot.store.outbox import OutboxItem, OutboxRepo

log = logging.getLogger(__name__)
NS = 1_000_000_000
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
BUTTON_COMMANDS = {"c": "confirm", "r": "cancel"}
REPLY_RETRIES = 2
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_TAG = re.compile(r"<[^>]+>")


def incoming(update: Update) -> Incoming:
    """The gate's view of an update."""
    q = update.callback_query
    if q is not None:
        data = q.data or ""
        kind, _, arg = data.partition(":")
        command = BUTTON_COMMANDS.get(kind)
        chat_id = q.message.chat.id if q.message is not None else None
        return Incoming("callback", update.update_id, chat_id, q.from_user.id, _name(q.from_user), command,
                        (arg,) if command else (), None, None)
    if update.edited_message is not None:
        m = update.edited_message
        return Incoming("edited", update.update_id, m.chat.id, m.from_user.id if m.from_user else None, "", None, (), None, None)
    msg = update.message
    if msg is None:
        return Incoming("other", update.update_id, None, None, "", None, (), None, None)
    text = msg.text or ""
    command, addressed, args = None, None, ()
    entity = msg.entities[0] if msg.entities else None
    if entity is not None and entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
        token = text[: entity.length]
        name, _, addressed_to = token[1:].partition("@")
        command, addressed = name.lower(), (addressed_to or None)
        args = tuple(text[entity.length :].split())
    user = msg.from_user
    return Incoming(
        "message", update.update_id, msg.chat.id, user.id if user else None, _name(user) if user else "", command, args, addressed,
        int(msg.date.timestamp()) * NS,
    )


def _name(user: object) -> str:
    username = getattr(user, "username", None)
    return f"@{username}" if username else str(getattr(user, "first_name", "") or "?")


def markup(buttons: Buttons | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in buttons])


class TelegramControl:
    def __init__(
        self,
        settings: TelegramSettings,
        plane: ControlPlane,
        gatekeeper: Gatekeeper,
        outbox: OutboxRepo,
        *,
        now_ns: Callable[[], int],
        alert_chat_ids: Sequence[int],
        request: BaseRequest | None = None,
        updates_request: BaseRequest | None = None,
        rate_limiter: bool = True,
        job_queue: Any = None,
    ) -> None:
        if settings.token is None:
            raise ValueError("TelegramControl needs telegram.token")
        self.settings = settings
        self.plane = plane
        self.gatekeeper = gatekeeper
        self.alert_chat_ids = tuple(alert_chat_ids)
        builder = (
            ApplicationBuilder()
            .token(settings.token.get_secret_value())
            .base_url(settings.base_url)
            .base_file_url(settings.base_file_url)
            .job_queue(job_queue)  # the service's one scheduler (ops), or none
        )
        if rate_limiter:
            builder = builder.rate_limiter(AIORateLimiter(overall_max_rate=settings.send_rate_per_s, overall_time_period=1, max_retries=0))
        if request is not None:
            builder = builder.request(request).get_updates_request(updates_request or request)
        self.app: Application = builder.build()  # type: ignore[assignment]
        self.app.add_handler(TypeHandler(Update, self._gate), group=-1)
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, self._on_command))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_text))
        self.app.add_error_handler(self._on_error)
        self._rate_limited = rate_limiter
        self.delivery = OutboxDelivery(
            outbox, self._send_item, now_ns=now_ns, retry_max_s=settings.outbox_retry_max_s, chat_ids=self.alert_chat_ids
        )
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._run_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> asyncio.Task[None]:
        self._run_task = asyncio.create_task(self.run(), name="telegram")
        return self._run_task

    async def run(self) -> None:
        """Poll and deliver until ``stop()``; retry the start while the Bot API is unreachable."""
        backoff = 1.0
        while not self._stop.is_set():
            try:
                async with self.app:
                    await self._set_commands()
                    await self.app.start()
                    assert self.app.updater is not None
                    await self.app.updater.start_polling(
                        timeout=dtm.timedelta(seconds=10), allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
                    )
                    log.info("telegram: polling as @%s", self.app.bot.username)
                    self.ready.set()
                    delivery = asyncio.create_task(self.delivery.run(self._stop), name="outbox-delivery")
                    try:
                        await self._stop.wait()
                    finally:
                        await delivery
                        await self.app.updater.stop()
                        await self.app.stop()
                return
            except InvalidToken:
                log.error("telegram: the bot token was rejected by the Bot API; check BOT_TELEGRAM__TOKEN (control plane disabled)")
                return
            except (NetworkError, OSError) as exc:
                log.warning("telegram: Bot API unreachable at start (%s); retrying in %.0fs", type(exc).__name__, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 60.0)

    async def stop(self, drain_s: float = 3.0) -> None:
        """Deliver what is due (bounded), then stop polling."""
        if self.ready.is_set():
            await self.delivery.drain(drain_s)
        self._stop.set()
        if self._run_task is not None:
            await self._run_task
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _set_commands(self) -> None:
        try:
            await self.app.bot.set_my_commands([BotCommand(name, summary[:256]) for name, summary in self.plane.bot_commands()])
        except TelegramError as exc:
            log.warning("telegram: setMyCommands failed (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ handlers
    async def _gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        inc = incoming(update)
        decision = await self.gatekeeper.check(inc, context.bot.username)
        if decision.allow:
            return
        if update.callback_query is not None and decision.outcome not in ("unauthorized", "ignored"):
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer()
        if decision.reply and inc.chat_id is not None:
            await self._send(inc.chat_id, decision.reply)
        raise ApplicationHandlerStop

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        inc = incoming(update)
        assert inc.command is not None and inc.chat_id is not None and inc.user_id is not None and update.message is not None
        sender = Sender(inc.user_id, inc.chat_id, inc.user_name)
        reply = await self.plane.handle(inc.command, list(inc.args), sender, f"telegram:{inc.chat_id}:{update.message.message_id}")
        await self._deliver(inc.chat_id, reply)

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.callback_query
        assert q is not None
        inc = incoming(update)
        with contextlib.suppress(TelegramError):
            await q.answer()
        if inc.command is None or inc.chat_id is None or inc.user_id is None:
            return  # a button this bot never made: no effect
        sender = Sender(inc.user_id, inc.chat_id, inc.user_name)
        message_id = q.message.message_id if q.message is not None else 0
        reply = await self.plane.handle(inc.command, list(inc.args), sender, f"button:{inc.chat_id}:{message_id}")
        if q.message is not None and not self.plane.intents.is_pending(inc.args[0] if inc.args else ""):
            with contextlib.suppress(TelegramError):
                await q.edit_message_reply_markup(reply_markup=None)
        await self._deliver(inc.chat_id, reply)

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is not None:
            await self._send(update.effective_chat.id, "Commands start with /. /help lists them.")

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        err = context.error
        log.error("telegram: error while handling an update: %s: %s", type(err).__name__, err)

    # ------------------------------------------------------------------ sending
    async def _send(self, chat_id: int, html: str, buttons: Buttons | None = None) -> None:
        html = redact(html)  # last line of defence: no registered secret leaves in a message (bot.keys.redaction)
        kwargs = {"rate_limit_args": REPLY_RETRIES} if self._rate_limited else {}
        try:
            await self.app.bot.send_message(chat_id=chat_id, text=html, parse_mode=ParseMode.HTML, reply_markup=markup(buttons), **kwargs)
        except BadRequest as exc:
            log.error("telegram: reply refused by the Bot API (%s); sending it as plain text", exc)
            await self.app.bot.send_message(chat_id=chat_id, text=_plain(html), reply_markup=markup(buttons), **kwargs)

    async def _deliver(self, chat_id: int, reply: Reply) -> None:
        if reply.photo is not None:
            caption = redact(reply.html) if len(reply.html) <= 1024 else None
            await self.app.bot.send_photo(chat_id=chat_id, photo=reply.photo, caption=caption, parse_mode=ParseMode.HTML)
            if caption is None:
                await self._send(chat_id, reply.html, reply.buttons)
        else:
            await self._send(chat_id, reply.html, reply.buttons)
        for extra in reply.extra:
            await self._deliver(chat_id, extra)

    async def _send_item(self, item: OutboxItem) -> None:
        """The outbox's sender: one alert to one chat (errors are classified by OutboxDelivery)."""
        assert item.chat_id is not None
        footer = f"\n<i>#{item.id}</i>"  # the alert's id: a repeat (after an ambiguous timeout) is recognisable
        limit = CAPTION_LIMIT if item.photo is not None else TEXT_LIMIT
        body = redact(item.text)
        text = body + footer if len(_plain(body)) + len(footer) <= limit else body
        if item.photo is not None:
            await self.app.bot.send_photo(chat_id=item.chat_id, photo=item.photo, caption=text or None, parse_mode=ParseMode.HTML)
        else:
            await self.app.bot.send_message(chat_id=item.chat_id, text=text, parse_mode=ParseMode.HTML)

    def announce(self, entry: Staged, suppressed: int) -> None:
        """A running strategy's intent was staged (LiveGate listener): push it with its buttons to the alert chats."""
        if not self.ready.is_set():
            return  # the operator cannot be reached: the intent expires unconfirmed
        head = f"🤖 Strategy <b>{entry.strategy_id}</b> wants to trade:"
        note = f"({suppressed} more intent(s) from it were not staged since the last one: a mandate lets it run.)" if suppressed else ""
        html = head + "\n" + staged_html(
            entry, now_ns=self.plane.clock.now_ns(), max_drift_bps=self.settings.max_price_drift_bps,
            instruments=self.plane.engine.instruments, note=note,
        )
        for chat_id in self.alert_chat_ids:
            task = asyncio.create_task(self._announce_one(chat_id, html, staged_buttons(entry)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _announce_one(self, chat_id: int, html: str, buttons: Buttons) -> None:
        try:
            await self._send(chat_id, html, buttons)
        except TelegramError as exc:
            log.warning("telegram: could not push a staged intent to chat %s (%s)", chat_id, type(exc).__name__)


def _plain(text: str) -> str:
    return html_lib.unescape(_TAG.sub("", text))
