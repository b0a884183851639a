"""The gate every update passes before anything else (PTB handler group -1).

In order:
1. Only new messages and inline-button presses are considered; edited messages and every other update kind are
   ignored. A command addressed to another bot (``/status@other_bot``) is ignored.
2. The chat id AND the user id must both be allowlisted. Anything else has no effect and gets no answer; it is
   audited, counts as a failure toward the user's lockout, and alerts the operators (at most one alert per
   ``unauthorized_alert_interval_s``, with the count of the attempts in between).
3. A locked-out user is told until when; nothing else happens (``/kill`` and ``/disarm`` still work: they only
   ever reduce risk, and the operator must always be able to stop the bot).
4. A message older than ``max_update_age_s`` (queued while the service was down) is never executed; the sender
   is told it was dropped. Button presses carry no timestamp: a confirmation is bounded by the intent's own
   expiry instead.
5. A per-user command budget (``commands_per_minute``); over it, the sender is told when to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import TelegramSettings
from bot.control.fmt import duration, esc, utc_time
from bot.control.lockout import Lockouts
from bot.control.ratelimit import CommandRateLimiter
from bot.domain.ports import AuditSink, Clock, Notifier

NS = 1_000_000_000
EXEMPT = frozenset({"kill", "disarm"})  # never locked out or rate limited: they only reduce risk


class ArgMasker(Protocol):
    def __call__(self, command: str | None, args: list[str]) -> str: ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the gate needs to know about one update (built from a PTB Update by the Telegram layer)."""

    kind: str  # "message" | "callback" | "edited" | "other"
    update_id: int
    chat_id: int | None
    user_id: int | None
    user_name: str
    command: str | None  # lower-case command name without the slash (callbacks: confirm / cancel)
    args: tuple[str, ...]
    addressed_to: str | None  # the bot name of /cmd@bot, if any
    sent_ns: int | None  # when the message was sent (None for button presses)


@dataclass(frozen=True, slots=True)
class GateDecision:
    allow: bool
    outcome: str  # ok | ignored | unauthorized | locked_out | dropped_stale | rate_limited
    reply: str | None = None  # HTML to send to the chat (never to an unauthorized sender)


class Gatekeeper:
    def __init__(
        self,
        settings: TelegramSettings,
        clock: Clock,
        lockouts: Lockouts,
        limiter: CommandRateLimiter,
        notifier: Notifier,
        audit: AuditSink,
        mask_args: ArgMasker,
    ) -> None:
        self.allowed_chats = frozenset(settings.allowed_chat_ids)
        self.allowed_users = frozenset(settings.allowed_user_ids)
        self.max_age_ns = settings.max_update_age_s * NS
        self.alert_interval_ns = settings.unauthorized_alert_interval_s * NS
        self.clock = clock
        self.lockouts = lockouts
        self.limiter = limiter
        self.notifier = notifier
        self.audit = audit
        self.mask_args = mask_args
        self._last_alert_ns: int | None = None
        self._attempts_since_alert = 0
        self.unauthorized = 0

    async def check(self, inc: Incoming, bot_username: str) -> GateDecision:
        if inc.kind not in ("message", "callback"):
            return GateDecision(False, "ignored")
        if inc.addressed_to and inc.addressed_to.lower() != bot_username.lower():
            return GateDecision(False, "ignored")
        if inc.user_id is None or inc.chat_id is None:
            return GateDecision(False, "ignored")
        if inc.user_id not in self.allowed_users or inc.chat_id not in self.allowed_chats:
            await self._unauthorized(inc)
            return GateDecision(False, "unauthorized")
        exempt = inc.command in EXEMPT
        now = self.clock.now_ns()
        until = self.lockouts.locked_until(inc.user_id)
        if until is not None and not exempt:
            self._audit(inc, "locked_out", f"locked out until {until}")
            return GateDecision(
                False, "locked_out",
                f"🔒 You are locked out until {utc_time(until)} (in {duration((until - now) / NS)}) after repeated failures. "
                "/kill and /disarm still work.",
            )
        if inc.sent_ns is not None and now - inc.sent_ns > self.max_age_ns:
            age = (now - inc.sent_ns) / NS
            self._audit(inc, "dropped_stale", f"sent {age:.0f}s ago")
            what = f"/{esc(inc.command)}" if inc.command else "your message"
            return GateDecision(
                False, "dropped_stale",
                f"⏱ Dropped {what} sent {duration(age)} ago ({utc_time(inc.sent_ns)}): older than {duration(self.max_age_ns / NS)}, "
                "so it was not executed. Send it again if you still mean it.",
            )
        if not exempt and not await self.limiter.hit(inc.user_id):
            wait = self.limiter.retry_after_s(inc.user_id)
            self._audit(inc, "rate_limited", f"over {self.limiter.per_minute} commands per minute")
            return GateDecision(False, "rate_limited", f"🐢 Too many commands: try again in {duration(wait)}.")
        return GateDecision(True, "ok")

    async def _unauthorized(self, inc: Incoming) -> None:
        self.unauthorized += 1
        user_ok = inc.user_id in self.allowed_users
        why = "chat not allowlisted" if user_ok else "user not allowlisted"
        self._audit(inc, "unauthorized", why)
        assert inc.user_id is not None
        await self.lockouts.fail(inc.user_id, f"unauthorized attempt ({why})")
        now = self.clock.now_ns()
        self._attempts_since_alert += 1
        if self._last_alert_ns is not None and now - self._last_alert_ns < self.alert_interval_ns:
            return
        what = f"/{inc.command}" if inc.command else ("a button press" if inc.kind == "callback" else "a message")
        extra = self._attempts_since_alert - 1
        self._last_alert_ns, self._attempts_since_alert = now, 0
        text = (
            f"<b>Unauthorized attempt</b>: {esc(what)} from user {inc.user_id} ({esc(inc.user_name)}) in chat {inc.chat_id} "
            f"({esc(why)}). It had no effect."
        )
        if extra:
            text += f" {extra} more attempt(s) since the last alert."
        # the key changes with every alert: the gate itself throttles this alert
        self.notifier.alert("WARNING", f"unauthorized:{now}", text)

    def _audit(self, inc: Incoming, outcome: str, detail: str) -> None:
        self.audit.record(
            "command",
            {
                "chat_id": inc.chat_id,
                "user_id": inc.user_id,
                "command": (inc.command or ("button" if inc.kind == "callback" else "text"))[:32],
                "args": self.mask_args(inc.command, list(inc.args))[:2000],
                "outcome": outcome,
                "detail": detail[:2000],
            },
        )
