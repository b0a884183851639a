"""Configuration changes need an operator's approval (spec 15.1: approval-based config diffs).

The last approved configuration (its hash and its public form, secrets masked) is kept in ``state_kv``. When
the service starts with a different configuration it tells the operators, with the changed keys, and LIVE
cannot be armed until an operator approves the new hash with ``/approve <hash>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.control.fmt import esc, utc
from bot.control.lockout import KV
from bot.domain.ports import AuditSink, Clock

NAMESPACE = "config"
KEY = "approved"
MASK = "**********"
_SECRET_WORDS = ("token", "secret", "password", "master_key", "api_key")
MAX_LINES = 25


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: str | None  # None: the key is new
    new: str | None  # None: the key was removed


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to display strings; secrets masked by name whatever their value."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    last = key.rsplit(".", 1)[-1].lower()
    if any(w in last for w in _SECRET_WORDS) and not last.endswith(("_file", "_name", "_ids")) and data not in (None, ""):
        out[key] = MASK
    else:
        out[key] = json.dumps(data, sort_keys=True, default=str) if isinstance(data, (list, tuple)) else str(data)
    return out


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    a, b = flatten(old), flatten(new)
    return [Change(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


class ConfigApproval:
    def __init__(self, kv: KV, audit: AuditSink, clock: Clock, *, current_hash: str, current_public: dict[str, Any]) -> None:
        self._kv = kv
        self._audit = audit
        self._clock = clock
        self.current_hash = current_hash
        self.current_public = current_public
        self.approved_hash: str | None = None
        self.approved_by: str | None = None
        self.approved_ns: int | None = None
        self._approved_public: dict[str, Any] | None = None

    async def load(self) -> None:
        doc = await self._kv.get(NAMESPACE, KEY)
        if doc:
            self.approved_hash = doc.get("hash")
            self.approved_by = doc.get("by")
            self.approved_ns = doc.get("at_ns")
            self._approved_public = doc.get("config")

    @property
    def approved(self) -> bool:
        return self.approved_hash == self.current_hash

    def changes(self) -> list[Change]:
        return diff(self._approved_public or {}, self.current_public) if self._approved_public is not None else []

    def notice_html(self) -> str | None:
        """The start-up message when the running configuration is not the approved one (None when it is)."""
        if self.approved:
            return None
        h = self.current_hash
        lines = []
        if self.approved_hash is None:
            lines.append("<b>Configuration not approved yet</b> (no configuration has been approved on this database).")
        else:
            changes = self.changes()
            lines.append(f"<b>Configuration changed</b> since the one approved by {esc(self.approved_by or '?')}"
                         f"{' at ' + utc(self.approved_ns) if self.approved_ns else ''}: {len(changes)} key(s).")
            for c in changes[:MAX_LINES]:
                if c.old is None:
                    lines.append(f"+ <code>{esc(c.key)}</code> = {esc(_short(c.new))}")
                elif c.new is None:
                    lines.append(f"− <code>{esc(c.key)}</code> (was {esc(_short(c.old))})")
                else:
                    lines.append(f"~ <code>{esc(c.key)}</code>: {esc(_short(c.old))} → {esc(_short(c.new))}")
            if len(changes) > MAX_LINES:
                lines.append(f"… and {len(changes) - MAX_LINES} more (see <code>bot config check</code>)")
        lines.append(f"LIVE cannot be armed until an operator sends <code>/approve {h[:16]}</code>")
        lines.append(f"hash <code>{h}</code>")
        return "\n".join(lines)

    async def approve(self, prefix: str, by: str) -> tuple[bool, str]:
        """Approve the running configuration if ``prefix`` (>= 10 hex) starts its hash."""
        if not self.current_hash.startswith(prefix):
            return False, f"{prefix} is not the running configuration's hash (it starts {self.current_hash[:10]})"
        if self.approved:
            return True, f"configuration {self.current_hash[:10]} was already approved by {self.approved_by}"
        now = self._clock.now_ns()
        await self._kv.put(NAMESPACE, KEY, {"hash": self.current_hash, "by": by, "at_ns": now, "config": self.current_public})
        old = self.approved_hash
        self.approved_hash, self.approved_by, self.approved_ns = self.current_hash, by, now
        self._approved_public = self.current_public
        self._audit.record(
            "state_transition",
            {"kind": "config", "scope": "global", "from_state": (old or "none")[:32], "to_state": self.current_hash[:32],
             "reason": f"configuration {self.current_hash} approved by {by}"},
        )
        return True, f"configuration {self.current_hash[:10]} approved"


def _short(text: str | None, limit: int = 80) -> str:
    t = text or ""
    return t if len(t) <= limit else t[: limit - 1] + "…"
