from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Approved:
    inputs: dict[str, Any] = field(default_factory=dict)
    approved: bool = True
    code: None = None
    reason: str = ""
    qty: Decimal | None = None  # set when risk approved a smaller quantity (drawdown throttle): submit this


@dataclass(frozen=True, slots=True)
class Blocked:
    code: ErrorCode
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)  # always carries "policy"
    policy: str = ""
    approved: bool = False
    qty: None = None


Verdict = Approved | Blocked
