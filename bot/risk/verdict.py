from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.domain.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Approved:
    inputs: dict[str, Any] = field(default_factory=dict)
    approved: bool = True
    code: None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Blocked:
    code: ErrorCode
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    policy: str = ""
    approved: bool = False


Verdict = Approved | Blocked
