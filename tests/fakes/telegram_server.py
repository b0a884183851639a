"""A local HTTP server that speaks enough of the Telegram Bot API for end-to-end tests.

The real python-telegram-bot (PTB) talks to it over loopback HTTP::

    async with FakeTelegram() as fake:
        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.base_file_url)
            .build()
        )
        ...  # start the app and its updater (polling)
        fake.send_message(chat_id=1001, user_id=1001, text="/start")  # a person types
        [reply] = await fake.wait_for_sent()                        # what the bot answered
        assert reply.chat_id == 1001

Three groups of API:

* **Injection** (what a person does in a chat): :meth:`FakeTelegram.send_message`,
  :meth:`FakeTelegram.press_button`, :meth:`FakeTelegram.inject_update`. They are plain
  (synchronous) methods; the update is queued and any waiting long poll wakes up at once.
* **Observation** (what the bot did): :attr:`FakeTelegram.sent`, :attr:`FakeTelegram.calls`
  and the awaitables :meth:`~FakeTelegram.wait_for_sent`, :meth:`~FakeTelegram.wait_for_call`,
  :meth:`~FakeTelegram.wait_for_poll`. They never sleep-poll: every state change wakes them.
* **Faults**: :meth:`FakeTelegram.fail_next` (HTTP errors such as 429 flood control),
  :meth:`FakeTelegram.go_down` / :meth:`FakeTelegram.come_back` (connection refused, then
  the same port again with all state kept).

Behaviour follows the Bot API where a bot can observe it: the form-encoded/multipart
request bodies PTB sends, ``{"ok": ..., "result"/"description": ...}`` answers, long polling
with ``offset`` confirmation, HTTP 401/404/409/429 error shapes, HTML ``parse_mode``
validation ("can't parse entities"), and the common 400 errors of editing and buttons.
It is a fixture, not a Telegram: there is one bot, chats spring into existence when used,
MarkdownV2 is not validated and files are kept in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import itertools
import json
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

__all__ = [
    "ApiCall",
    "EntityParseError",
    "FakeTelegram",
    "SentMessage",
    "UploadedFile",
    "parse_html",
    "utf16_len",
]

T = TypeVar("T")

TEXT_LIMIT = 4096  # characters of a message after entity parsing
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class ApiCall:
    """One HTTP request to the Bot API, recorded when it arrives.

    ``params`` holds the raw values as sent (PTB sends strings; JSON fields arrive as JSON
    text; uploaded files as :class:`UploadedFile`). ``status`` and ``response`` are filled in
    when the answer is sent (a long poll has ``status is None`` while it is held).
    """

    method: str
    params: dict[str, Any]
    ts: float
    token_ok: bool
    status: int | None = None
    response: dict[str, Any] | None = None


@dataclass(frozen=True)
class SentMessage:
    """Something the bot put into a chat: a send* or an edit* call that succeeded.

    ``text``/``caption`` are the raw strings the bot sent (HTML tags included);
    ``plain_text`` is what the person sees (tags removed, entities decoded) for the text or
    the caption. ``reply_markup`` is the parsed JSON. For edits, ``message_id`` is the
    edited message.
    """

    method: str
    chat_id: int
    message_id: int
    text: str | None
    plain_text: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    caption: str | None = None
    photo: bytes | None = None
    document: bytes | None = None
    filename: str | None = None
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    ts: float = 0.0


# --------------------------------------------------------------------------- HTML parse_mode


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; the message is what Telegram puts after
    ``Bad Request: can't parse entities: ``."""


# Tags Telegram accepts in parse_mode=HTML and the entity type each one makes.
_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_CHAR_REF = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTRIBUTE = re.compile(
    r"""\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"""
)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


def _decode_char_ref(match: re.Match[str]) -> str | None:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED_REFS[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _unescape(text: str) -> str:
    """Decode the character references Telegram knows; leave any other '&' as it is."""
    return _CHAR_REF.sub(lambda m: _decode_char_ref(m) or m.group(0), text)


def _find_tag_end(text: str, start: int) -> int:
    """Index of the '>' closing a tag whose attributes start at ``start``, or -1."""
    quote = None
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == ">":
            return index
    return -1


@dataclass
class _OpenTag:
    name: str
    entity: dict[str, Any] | None
    start: int  # UTF-16 offset in the plain text
    language: str | None = None  # <code class="language-x"> inside <pre>


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into (plain text, message entities).

    Raises :class:`EntityParseError` the way Telegram refuses a message: unsupported or
    unclosed tags, a bare ``<``, an end tag without a start tag or for another tag.
    A bare ``>`` or an ``&`` that starts no known character reference is kept as text.
    """
    plain: list[str] = []
    position = 0  # UTF-16 length of the plain text so far
    open_tags: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    index = 0

    def emit(chunk: str) -> None:
        nonlocal position
        plain.append(chunk)
        position += utf16_len(chunk)

    while index < len(text):
        char = text[index]
        if char == "&":
            match = _CHAR_REF.match(text, index)
            decoded = _decode_char_ref(match) if match else None
            if match and decoded is not None:
                emit(decoded)
                index = match.end()
            else:
                emit("&")
                index += 1
            continue
        if char != "<":
            next_special = min(
                (i for i in (text.find("<", index), text.find("&", index)) if i != -1),
                default=len(text),
            )
            emit(text[index:next_special])
            index = next_special
            continue

        byte_offset = len(text[:index].encode("utf-8"))
        if text.startswith("</", index):
            end = text.find(">", index)
            if end == -1:
                raise EntityParseError(f"Unclosed end tag at byte offset {byte_offset}")
            name = text[index + 2 : end].strip().lower()
            if not open_tags:
                raise EntityParseError(f"Unexpected end tag at byte offset {byte_offset}")
            tag = open_tags.pop()
            if name != tag.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {byte_offset}, expected "</{tag.name}>", '
                    f'found "</{name}>"'
                )
            _close_tag(tag, open_tags, position, entities)
            index = end + 1
            continue

        name_end = index + 1
        while name_end < len(text) and not text[name_end].isspace() and text[name_end] not in "/>":
            name_end += 1
        name = text[index + 1 : name_end].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {byte_offset}')
        end = _find_tag_end(text, name_end)
        if end == -1:
            raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset}")
        attributes = {
            m.group(1).lower(): _unescape(next((g for g in m.groups()[1:] if g is not None), ""))
            for m in _ATTRIBUTE.finditer(text[name_end:end].rstrip("/"))
        }
        open_tags.append(_open_tag(name, attributes, position))
        index = end + 1

    if open_tags:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{open_tags[-1].name}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(plain), entities


def _open_tag(name: str, attributes: dict[str, str], position: int) -> _OpenTag:
    kind = _HTML_TAGS[name]
    entity: dict[str, Any] | None = {"type": kind}
    language = None
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise EntityParseError('Tag "span" must have class "tg-spoiler"')
    if name == "a":
        href = attributes.get("href")
        entity = {"type": "text_link", "url": href} if href else None
    elif name == "tg-emoji":
        emoji_id = attributes.get("emoji-id")
        entity = {"type": "custom_emoji", "custom_emoji_id": emoji_id} if emoji_id else None
    elif name == "blockquote" and "expandable" in attributes:
        entity = {"type": "expandable_blockquote"}
    elif name == "code" and attributes.get("class", "").startswith("language-"):
        language = attributes["class"].removeprefix("language-")
    return _OpenTag(name, entity, position, language)


def _close_tag(
    tag: _OpenTag, still_open: list[_OpenTag], position: int, entities: list[dict[str, Any]]
) -> None:
    if tag.language and still_open and still_open[-1].name == "pre" and still_open[-1].entity:
        # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
        still_open[-1].entity["language"] = tag.language
        return
    length = position - tag.start
    if tag.entity is not None and length > 0:
        entities.append({**tag.entity, "offset": tag.start, "length": length})


# --------------------------------------------------------------------------- plumbing


class _ApiError(Exception):
    """An error answer: HTTP status plus the Bot API's JSON error body."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(reason: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {reason}")


_DEFAULT_FAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int

    def error(self) -> _ApiError:
        parameters = {"retry_after": self.retry_after} if self.retry_after is not None else None
        return _ApiError(self.status, self.description, parameters)


class _Changes:
    """Wakes every waiter whenever the fake's state changes.

    A generation of :class:`asyncio.Event`: ``notify()`` sets the current event (waking
    everyone waiting on it) and starts a new one. Unlike a Condition it can be notified from
    plain synchronous code, which keeps the injection API synchronous.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], T]) -> T:
        while not (result := predicate()):
            await self._event.wait()
        return result


class _Params:
    """Typed access to request parameters (all strings when they come from PTB)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        return self.raw.get(name) not in (None, "")

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw.get(name)
        return default if value is None else str(value)

    def required_string(self, name: str) -> str:
        value = self.string(name)
        if value is None or value == "":
            raise _bad_request(f"{name} is empty")
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.raw.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad_request(f"invalid {name} specified") from None

    def required_integer(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise _bad_request(f"{name} is empty")
        return value

    def number(self, name: str, default: float) -> float:
        value = self.raw.get(name)
        try:
            return default if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise _bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.raw.get(name)
        return value is True or str(value).lower() in ("true", "1")

    def json(self, name: str, what: str) -> Any:
        value = self.raw.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            return value  # a JSON request body already holds objects
        try:
            return json.loads(value)
        except ValueError:
            raise _bad_request(f"can't parse {what} JSON object") from None

    def chat_id(self) -> int:
        value = self.required_string("chat_id")
        try:
            return int(value)
        except ValueError:
            raise _bad_request("chat not found") from None  # @channel names are not modelled


@dataclass
class _Chat:
    info: dict[str, Any]  # the Chat object as it appears in messages
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_COMMAND = re.compile(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?")
_BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def _is_image(data: bytes) -> bool:
    return data.startswith(_IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG (its IHDR chunk); other formats report 1x1."""
    if data.startswith(_IMAGE_SIGNATURES[0]) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return 1, 1


def _unix(date: int | float | dtm.datetime | None) -> int:
    if date is None:
        return int(time.time())
    if isinstance(date, dtm.datetime):
        return int(date.timestamp())
    return int(date)


# --------------------------------------------------------------------------- the server


class FakeTelegram:
    """A Bot API server on 127.0.0.1 for one bot. See the module docstring."""

    def __init__(self, token: str = "123456:TEST-fake-token", bot_username: str = "test_bot"):
        self.token = token
        self.bot_username = bot_username
        bot_id = token.split(":", 1)[0]
        self.bot_id = int(bot_id) if bot_id.isdigit() else 123456
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Test Bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.port: int | None = None

        #: Every API request, in arrival order (wrong tokens and unknown methods included).
        self.calls: list[ApiCall] = []
        #: Every successful send*/edit* of the bot, in order.
        self.sent: list[SentMessage] = []

        self._changes = _Changes()
        self._runner: web.AppRunner | None = None
        self._poll_tasks: set[asyncio.Task[Any]] = set()
        self._waiting_polls = 0
        self._poll_ticket: object | None = None

        self._updates: list[dict[str, Any]] = []  # queued, not yet confirmed by an offset
        self._update_ids = itertools.count(1)
        self._allowed_updates: set[str] | None = None
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._open_callback_queries: set[str] = set()
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._webhook_url = ""
        self._files: dict[str, tuple[UploadedFile, str]] = {}  # file_id -> (file, file_path)
        self._file_numbers = itertools.count(1)
        self._faults: dict[str, deque[_Fault]] = {}

        self._methods: dict[str, Callable[[_Params], Awaitable[Any]]] = {
            name.lower(): handler
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "getFile": self._get_file,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getChat": self._get_chat,
            }.items()
        }

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: ``http://127.0.0.1:PORT/bot``."""
        return f"http://127.0.0.1:{self._require_port()}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``: ``http://127.0.0.1:PORT/file/bot``."""
        return f"http://127.0.0.1:{self._require_port()}/file/bot"

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        if self.port is not None:
            raise RuntimeError("FakeTelegram was already started; use come_back() after go_down()")
        await self._listen(port=0)

    async def stop(self) -> None:
        """Stop listening and drop every open connection. Safe to call twice."""
        if self.is_up:
            await self._unlisten()

    async def go_down(self) -> None:
        """Become unreachable: held long polls are dropped, new connections are refused.

        All state (queued updates, messages, records) is kept for :meth:`come_back`.
        """
        if not self.is_up:
            raise RuntimeError("FakeTelegram is not up")
        await self._unlisten()

    async def come_back(self) -> None:
        """Listen again on the same port, with the state as :meth:`go_down` left it."""
        if self.is_up:
            raise RuntimeError("FakeTelegram is already up")
        await self._listen(port=self._require_port())

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("FakeTelegram has not been started")
        return self.port

    async def _listen(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a request the client gave up on (PTB cancelling its long
        # poll at shutdown) stops being held here too.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def _unlisten(self) -> None:
        runner, self._runner = self._runner, None
        assert runner is not None
        # A held long poll would otherwise keep the shutdown waiting; cancelling its handler
        # makes aiohttp close that connection without an answer, as a dead server would.
        for task in list(self._poll_tasks):
            task.cancel()
        await runner.cleanup()
        self._changes.notify()

    # ----------------------------------------------------------------- injection

    def send_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        date: int | float | dtm.datetime | None = None,
        chat_type: str = "private",
        username: str | None = None,
        edited: bool = False,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A person types ``text`` in a chat with the bot; returns the queued update.

        A text starting with ``/`` gets the ``bot_command`` entity Telegram adds (covering
        ``/cmd`` or ``/cmd@botname``). ``date`` (unix time or datetime) back-dates the
        message, e.g. one queued while the bot was down. ``edited=True`` makes it an
        ``edited_message`` of ``message_id`` (default: this user's latest message there).
        In a private chat the chat id is the user's id; groups take ``chat_type="group"``
        or ``"supergroup"`` (and, by convention, a negative id).
        """
        if chat_type == "private" and chat_id != user_id:
            raise ValueError("a private chat's id is the user's id")
        if chat_type not in ("private", "group", "supergroup"):
            raise ValueError(f"unsupported chat_type {chat_type!r}")
        user = self._user(user_id, username)
        chat = self._chat(chat_id, chat_type, user)

        message: dict[str, Any] = {
            "date": _unix(date),
            "chat": chat.info,
            "from": user,
            "text": text,
        }
        command = _COMMAND.match(text)
        if command:
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command.group())}
            ]
        if edited:
            if message_id is None:
                mine = [m for m in chat.messages.values() if m["from"]["id"] == user_id]
                if not mine:
                    raise ValueError(f"user {user_id} has no message in chat {chat_id} to edit")
                message_id = mine[-1]["message_id"]
            elif message_id not in chat.messages:
                raise ValueError(f"no message {message_id} in chat {chat_id}")
            original = chat.messages[message_id]
            message = {**message, "date": original["date"], "edit_date": _unix(date)}
        else:
            if message_id is not None:
                raise ValueError("message_id is only for edited=True")
            message_id = chat.new_message_id()
        message = {"message_id": message_id, **message}
        chat.messages[message_id] = message
        kind = "edited_message" if edited else "message"
        return self.inject_update({kind: message})

    def press_button(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        username: str | None = None,
        require_button: bool = True,
    ) -> dict[str, Any]:
        """A person presses an inline button of message ``message_id``; returns the update.

        The message must exist, and (unless ``require_button=False``, for a forged or
        stale client) carry an inline button with this ``callback_data``.
        """
        chat = self._chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        if require_button:
            buttons = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            known = [b.get("callback_data") for row in buttons for b in row]
            if callback_data not in known:
                raise ValueError(
                    f"message {message_id} has no button with callback_data {callback_data!r}"
                    f" (it has {known})"
                )
        query_id = str(next(self._callback_ids))
        self._open_callback_queries.add(query_id)
        query = {
            "id": query_id,
            "from": self._user(user_id, username),
            "chat_instance": f"{abs(chat_id) * 7919 + 1}",
            "message": json.loads(json.dumps(message)),
            "data": callback_data,
        }
        return self.inject_update({"callback_query": query})

    def inject_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue any Update payload (without ``update_id``); returns it with its id."""
        update = {"update_id": next(self._update_ids), **update}
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates is None or kind in self._allowed_updates:
            self._updates.append(update)
            self._changes.notify()
        return update

    def _user(self, user_id: int, username: str | None) -> dict[str, Any]:
        user = self._users.setdefault(
            user_id,
            {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": "en"},
        )
        if username is not None:
            user["username"] = username
        return dict(user)

    def _chat(
        self, chat_id: int, chat_type: str | None = None, user: dict[str, Any] | None = None
    ) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_type is None:
                chat_type = "private" if chat_id > 0 else "group"
                if str(chat_id).startswith("-100"):
                    chat_type = "supergroup"
            info: dict[str, Any] = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                person = user or self._user(chat_id, None)
                info.update({k: person[k] for k in ("first_name", "username") if k in person})
            else:
                info["title"] = f"Group {chat_id}"
            chat = self._chats[chat_id] = _Chat(info)
        elif user is not None and chat.info["type"] == "private" and "username" in user:
            chat.info["username"] = user["username"]
        return chat

    # ----------------------------------------------------------------- observation

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message (after edits), as Telegram would return it."""
        chat = self._chats.get(chat_id)
        return chat.messages.get(message_id) if chat else None

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """The command list set with setMyCommands for a scope (default scope by default)."""
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method (case-insensitive, as Telegram matches names)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        count: int = 1,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> list[SentMessage]:
        """Wait until ``count`` records of :attr:`sent` (from index ``since``) match, and
        return the first ``count`` of them. Pass ``since=len(fake.sent)`` to see only what
        the bot sends from now on."""

        def matching() -> list[SentMessage]:
            found = [r for r in self.sent[since:] if predicate is None or predicate(r)]
            return found[:count] if len(found) >= count else []

        return await self._wait(matching, timeout, f"{count} sent message(s)")

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        count: int = 1,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> list[ApiCall]:
        """Wait until ``count`` calls of ``method`` (from index ``since`` of :attr:`calls`)
        have arrived, and return the first ``count`` of them."""

        def matching() -> list[ApiCall]:
            found = [
                c
                for c in self.calls[since:]
                if c.method.lower() == method.lower() and (predicate is None or predicate(c))
            ]
            return found[:count] if len(found) >= count else []

        return await self._wait(matching, timeout, f"{count} {method} call(s)")

    async def wait_for_poll(self, timeout: float = 5.0) -> None:
        """Wait until the bot holds a getUpdates long poll with nothing left to fetch:
        it is polling and has taken every injected update (its handlers may still run)."""
        await self._wait(
            lambda: self._waiting_polls > 0 and not self._updates, timeout, "an idle long poll"
        )

    async def _wait(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        try:
            async with asyncio.timeout(timeout):
                return await self._changes.wait_until(predicate)
        except TimeoutError:
            recent = [f"{c.method}->{c.status}" for c in self.calls[-10:]]
            sent = [(r.method, r.chat_id, r.plain_text) for r in self.sent[-5:]]
            raise TimeoutError(
                f"FakeTelegram: no {what} within {timeout}s; last calls {recent}; last sent {sent}"
            ) from None

    # ----------------------------------------------------------------- faults

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = None,
        times: int = 1,
        *,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an HTTP error.

        429 defaults to ``retry_after=1`` and Telegram's "Too Many Requests: retry after N";
        other statuses get a generic description unless one is given. Faults queue up.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_FAULT_DESCRIPTIONS.get(status, f"Error {status}")
        self._faults.setdefault(method.lower(), deque()).append(
            _Fault(status, description, retry_after, times)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method.lower())
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    # ----------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token_ok = request.match_info["token"] == self.token
        try:
            params = await self._read_params(request)
        except ValueError:
            params = {}
        call = ApiCall(method=method, params=params, ts=time.time(), token_ok=token_ok)
        self.calls.append(call)
        self._changes.notify()
        try:
            if not token_ok:
                raise _ApiError(401, "Unauthorized")
            handler = self._methods.get(method.lower())
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            fault = self._take_fault(method)
            if fault:
                raise fault.error()
            body: dict[str, Any] = {"ok": True, "result": await handler(_Params(params))}
            status = 200
        except _ApiError as error:
            body, status = error.body(), error.status
        call.status, call.response = status, body
        self._changes.notify()
        return web.json_response(body, status=status)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.filename is not None:
                    params[part.name] = UploadedFile(
                        field=part.name,
                        filename=part.filename,
                        content_type=part.headers.get("Content-Type"),
                        data=bytes(await part.read()),
                    )
                else:
                    params[part.name] = await part.text()
        elif request.content_type == "application/json" and request.can_read_body:
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.can_read_body:
            params.update(await request.post())
        return params

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(_ApiError(401, "Unauthorized").body(), status=401)
        path = request.match_info["path"]
        for uploaded, file_path in self._files.values():
            if file_path == path:
                return web.Response(body=uploaded.data, content_type="application/octet-stream")
        return web.json_response(_ApiError(404, "Not Found").body(), status=404)

    # ----------------------------------------------------------------- methods: bot & updates

    async def _get_me(self, p: _Params) -> dict[str, Any]:
        return dict(self.bot_user)

    async def _get_updates(self, p: _Params) -> list[dict[str, Any]]:
        if self._webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.integer("offset", 0) or 0
        limit = min(max(p.integer("limit", 100) or 100, 1), 100)
        timeout = max(p.number("timeout", 0.0), 0.0)
        allowed = p.json("allowed_updates", "allowed updates")
        if allowed is not None:
            self._allowed_updates = set(allowed) or None
        self._confirm(offset)

        # Telegram answers an older, still held getUpdates with 409 when a new one arrives.
        ticket = self._poll_ticket = object()
        task = asyncio.current_task()
        assert task is not None
        self._poll_tasks.add(task)
        self._waiting_polls += 1
        self._changes.notify()
        try:
            async with asyncio.timeout(timeout):
                await self._changes.wait_until(
                    lambda: self._updates or self._poll_ticket is not ticket
                )
        except TimeoutError:
            pass  # nothing arrived: answer [] exactly at the poll timeout
        finally:
            self._waiting_polls -= 1
            self._poll_tasks.discard(task)
            self._changes.notify()
        if self._poll_ticket is not ticket:
            raise _ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        return self._updates[:limit]

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    async def _set_webhook(self, p: _Params) -> bool:
        self._webhook_url = p.string("url", "") or ""
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, p: _Params) -> bool:
        self._webhook_url = ""
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, p: _Params) -> dict[str, Any]:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    # ----------------------------------------------------------------- methods: messages

    async def _send_message(self, p: _Params) -> dict[str, Any]:
        chat = self._chat(p.chat_id())
        text = p.string("text") or ""
        parse_mode = p.string("parse_mode")
        plain, entities = self._format(text, parse_mode, p.json("entities", "entities"))
        if not plain.strip():
            raise _bad_request("message text is empty")
        if utf16_len(plain) > TEXT_LIMIT:
            raise _bad_request("message is too long")
        markup = self._reply_markup(p)
        message = self._new_bot_message(chat, {"text": plain}, entities, markup)
        self._record(
            "sendMessage", chat, message, p, text=text, plain_text=plain, reply_markup=markup
        )
        return message

    async def _send_photo(self, p: _Params) -> dict[str, Any]:
        chat = self._chat(p.chat_id())
        uploaded = self._input_file(p, "photo")
        if uploaded is not None and not _is_image(uploaded.data):
            raise _bad_request("IMAGE_PROCESS_FAILED")
        file_id, unique_id = self._store_file(uploaded, "photos", ".png")
        width, height = _image_size(uploaded.data) if uploaded else (1, 1)
        size = {"file_id": file_id, "file_unique_id": unique_id, "width": width, "height": height}
        if uploaded:
            size["file_size"] = len(uploaded.data)
        return self._send_media(p, chat, "sendPhoto", {"photo": [size]}, photo=uploaded)

    async def _send_document(self, p: _Params) -> dict[str, Any]:
        chat = self._chat(p.chat_id())
        uploaded = self._input_file(p, "document")
        file_id, unique_id = self._store_file(uploaded, "documents", "")
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": unique_id}
        if uploaded:
            document.update(file_size=len(uploaded.data))
            if uploaded.filename:
                document["file_name"] = uploaded.filename
            if uploaded.content_type:
                document["mime_type"] = uploaded.content_type
        return self._send_media(p, chat, "sendDocument", {"document": document}, document=uploaded)

    def _send_media(
        self,
        p: _Params,
        chat: _Chat,
        method: str,
        content: dict[str, Any],
        photo: UploadedFile | None = None,
        document: UploadedFile | None = None,
    ) -> dict[str, Any]:
        caption = p.string("caption")
        parse_mode = p.string("parse_mode")
        plain, entities = None, []
        if caption:
            explicit = p.json("caption_entities", "entities")
            plain, entities = self._format(caption, parse_mode, explicit)
            if utf16_len(plain) > CAPTION_LIMIT:
                raise _bad_request("message caption is too long")
            content = {**content, "caption": plain}
        markup = self._reply_markup(p)
        message = self._new_bot_message(
            chat, content, entities, markup, entities_key="caption_entities"
        )
        upload = photo or document
        self._record(
            method,
            chat,
            message,
            p,
            caption=caption,
            plain_text=plain,
            reply_markup=markup,
            photo=photo.data if photo else None,
            document=document.data if document else None,
            filename=upload.filename if upload else None,
        )
        return message

    async def _edit_message_text(self, p: _Params) -> dict[str, Any]:
        chat, message = self._editable_message(p, "message to edit not found")
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        text = p.string("text") or ""
        parse_mode = p.string("parse_mode")
        plain, entities = self._format(text, parse_mode, p.json("entities", "entities"))
        if not plain.strip():
            raise _bad_request("message text is empty")
        if utf16_len(plain) > TEXT_LIMIT:
            raise _bad_request("message is too long")
        # As in Telegram, an edit without reply_markup removes the inline keyboard.
        markup = self._reply_markup(p)
        new = self._edited(message, markup, text=plain, entities=entities or None)
        chat.messages[message["message_id"]] = new
        self._record(
            "editMessageText", chat, new, p, text=text, plain_text=plain, reply_markup=markup
        )
        return new

    async def _edit_message_reply_markup(self, p: _Params) -> dict[str, Any]:
        chat, message = self._editable_message(p, "message to edit not found")
        markup = self._reply_markup(p)
        new = self._edited(message, markup)
        chat.messages[message["message_id"]] = new
        self._record(
            "editMessageReplyMarkup", chat, new, p, plain_text=new.get("text"), reply_markup=markup
        )
        return new

    async def _delete_message(self, p: _Params) -> bool:
        chat = self._chats.get(p.chat_id())
        message_id = p.required_integer("message_id")
        if chat is None or message_id not in chat.messages:
            raise _bad_request("message to delete not found")
        del chat.messages[message_id]
        return True

    async def _answer_callback_query(self, p: _Params) -> bool:
        query_id = p.required_string("callback_query_id")
        if query_id not in self._open_callback_queries:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._open_callback_queries.discard(query_id)
        return True

    async def _send_chat_action(self, p: _Params) -> bool:
        self._chat(p.chat_id())
        p.required_string("action")
        return True

    async def _get_file(self, p: _Params) -> dict[str, Any]:
        file_id = p.required_string("file_id")
        if file_id not in self._files:
            raise _bad_request("invalid file_id")
        uploaded, file_path = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(uploaded.data),
            "file_path": file_path,
        }

    async def _get_chat(self, p: _Params) -> dict[str, Any]:
        chat = self._chat(p.chat_id())
        return {
            **chat.info,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    # ----------------------------------------------------------------- methods: commands

    @staticmethod
    def _commands_key(scope: Any, language_code: str | None) -> tuple[str, str]:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True), language_code or ""

    async def _set_my_commands(self, p: _Params) -> bool:
        commands = p.json("commands", "commands")
        if not isinstance(commands, list):
            raise _bad_request("commands is empty")
        for command in commands:
            if not _BOT_COMMAND.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(p.json("scope", "scope"), p.string("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, p: _Params) -> list[dict[str, str]]:
        key = self._commands_key(p.json("scope", "scope"), p.string("language_code"))
        return list(self._commands.get(key, []))

    async def _delete_my_commands(self, p: _Params) -> bool:
        key = self._commands_key(p.json("scope", "scope"), p.string("language_code"))
        self._commands.pop(key, None)
        return True

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _format(
        text: str, parse_mode: str | None, entities: Any
    ) -> tuple[str, list[dict[str, Any]]]:
        """(plain text, entities) of a text as Telegram would store it."""
        if parse_mode and parse_mode.lower() == "html":
            try:
                return parse_html(text)
            except EntityParseError as error:
                raise _bad_request(f"can't parse entities: {error}") from None
        # MarkdownV2/Markdown are passed through unparsed; explicit entities are echoed.
        return text, list(entities or [])

    def _reply_markup(self, p: _Params) -> dict[str, Any] | None:
        markup = p.json("reply_markup", "reply keyboard markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad_request("can't parse inline keyboard button: Text is empty")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
                        raise _bad_request("BUTTON_DATA_INVALID")
                elif len(button) == 1:
                    raise _bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
        return markup

    def _new_bot_message(
        self,
        chat: _Chat,
        content: dict[str, Any],
        entities: list[dict[str, Any]],
        markup: dict[str, Any] | None,
        entities_key: str = "entities",
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": chat.new_message_id(),
            "from": dict(self.bot_user),
            "chat": chat.info,
            "date": int(time.time()),
            **content,
        }
        if entities:
            message[entities_key] = entities
        if markup and "inline_keyboard" in markup:  # only inline keyboards stay on a message
            message["reply_markup"] = markup
        chat.messages[message["message_id"]] = message
        return message

    def _editable_message(self, p: _Params, not_found: str) -> tuple[_Chat, dict[str, Any]]:
        if p.has("inline_message_id"):
            raise _bad_request("inline messages are not supported by FakeTelegram")
        chat = self._chats.get(p.chat_id())
        message_id = p.required_integer("message_id")
        message = chat.messages.get(message_id) if chat else None
        if chat is None or message is None:
            raise _bad_request(not_found)
        if message["from"]["id"] != self.bot_id:
            raise _bad_request("message can't be edited")
        return chat, message

    @staticmethod
    def _edited(
        message: dict[str, Any], markup: dict[str, Any] | None, **changes: Any
    ) -> dict[str, Any]:
        inline = markup if markup and "inline_keyboard" in markup else None
        new = {k: v for k, v in message.items() if k not in ("reply_markup", "edit_date")}
        for key, value in changes.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = value
        if inline:
            new["reply_markup"] = inline
        unchanged = {k: v for k, v in message.items() if k != "edit_date"}
        if new == unchanged:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        new["edit_date"] = int(time.time())
        return new

    def _input_file(self, p: _Params, name: str) -> UploadedFile | None:
        """The file of parameter ``name``: an upload, an attach:// part, a known file_id,
        or None for an http(s) URL (Telegram would download it; the fake cannot)."""
        value = p.raw.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.raw.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            if not value.data:
                raise _bad_request("file must be non-empty")
            return value
        if isinstance(value, str) and value in self._files:
            return self._files[value][0]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return None
        if value in (None, ""):
            raise _bad_request(f"there is no {name} in the request")
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _store_file(
        self, uploaded: UploadedFile | None, folder: str, suffix: str
    ) -> tuple[str, str]:
        number = next(self._file_numbers)
        file_id = f"fake-file-{number}"
        if uploaded is not None:
            if uploaded.filename and "." in uploaded.filename:
                suffix = "." + uploaded.filename.rsplit(".", 1)[1]
            self._files[file_id] = (uploaded, f"{folder}/file_{number}{suffix}")
        return file_id, f"fake-unique-{number}"

    def _record(
        self, method: str, chat: _Chat, message: dict[str, Any], p: _Params, **fields: Any
    ) -> None:
        self.sent.append(
            SentMessage(
                method=method,
                chat_id=chat.info["id"],
                message_id=message["message_id"],
                text=fields.pop("text", None),
                plain_text=fields.pop("plain_text", None),
                parse_mode=p.string("parse_mode"),
                reply_markup=fields.pop("reply_markup", None),
                params=dict(p.raw),
                ts=time.time(),
                **fields,
            )
        )
        self._changes.notify()
