"""What the OMS writes down and whom it tells: audit rows, operator alerts, SAFE triggers, incident records.

SAFE itself belongs to the risk part (``SafetyController``); the OMS only asks for it through the injected
``on_safe(code, reason)`` callback, and tells the operator through the injected ``alert(severity, key,
text)`` callback (a ``Notifier.alert``). Neither is imported here: the composition root wires them.

Rows written (spec 4.7.6), none of which ever contains a secret:
- ``order_event`` for every placement step, cancel, fill, refusal, lookup and refused (illegal) transition;
- ``state_transition`` with kind ``dirty`` (scope = asset, CLEAN <-> DIRTY), ``feed`` (scope = venue:<name>,
  UP <-> DOWN), ``reconcile`` (FRESH <-> STALE), ``oms_safe`` (a SAFE request: to_state SAFE, with code),
  ``incident`` (to_state OPEN: the record an incident report starts from, with the evidence in ``data``);
- ``reconciliation`` rows (see bot/oms/reconcile.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.order import Order, OrderStatus
from bot.domain.ports import AuditSink

log = logging.getLogger("bot.oms")

SafeCallback = Callable[[ErrorCode, str], None]
AlertCallback = Callable[[str, str, str], None]  # Notifier.alert(severity, key, text)


def _no_safe(code: ErrorCode, reason: str) -> None:
    log.error("SAFE requested (%s: %s) but no on_safe callback is wired: nothing stops new orders", code, reason)


def _no_alert(severity: str, key: str, text: str) -> None:
    log.warning("alert [%s] %s: %s", severity, key, text)


class OmsRecorder:
    __slots__ = ("audit", "on_safe", "alert", "_safe_sent", "safe_requests")

    def __init__(self, audit: AuditSink, on_safe: SafeCallback | None, alert: AlertCallback | None) -> None:
        self.audit = audit
        self.on_safe = on_safe or _no_safe
        self.alert = alert or _no_alert
        self._safe_sent: set[tuple[str, str]] = set()
        self.safe_requests: list[tuple[ErrorCode, str, str]] = []  # (code, scope, reason), for status and tests

    # ------------------------------------------------------------------ order events
    def order_event(
        self,
        order: Order,
        event: str,
        src: OrderStatus | None,
        code: ErrorCode | None = None,
        reason: str = "",
        dst: OrderStatus | None = None,
    ) -> None:
        self.audit.record(
            "order_event",
            {
                "strategy_id": order.strategy_id or None,
                "client_order_id": order.client_order_id,
                "venue_order_id": order.venue_order_id,
                "event": event,
                "from_status": src.value if src else None,
                "to_status": (dst or order.status).value,
                "code": code.value if code else None,
                "reason": reason,
            },
        )

    def bare_event(
        self,
        client_order_id: str,
        event: str,
        *,
        strategy_id: str | None = None,
        venue_order_id: str | None = None,
        to_status: str | None = None,
        code: ErrorCode | None = None,
        reason: str = "",
    ) -> None:
        """An event about an order the OMS does not track (refused before creation, unknown at the venue)."""
        self.audit.record(
            "order_event",
            {
                "strategy_id": strategy_id,
                "client_order_id": client_order_id,
                "venue_order_id": venue_order_id,
                "event": event,
                "from_status": None,
                "to_status": to_status,
                "code": code.value if code else None,
                "reason": reason,
            },
        )

    # ------------------------------------------------------------------ state transitions
    def transition(
        self,
        kind: str,
        scope: str,
        src: str | None,
        dst: str,
        code: ErrorCode | None = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        row: dict[str, Any] = {"kind": kind, "scope": scope, "from_state": src, "to_state": dst, "code": code.value if code else None, "reason": reason}
        if data is not None:
            row["data"] = data
        self.audit.record("state_transition", row)

    # ------------------------------------------------------------------ escalation
    def safe(self, code: ErrorCode, scope: str, reason: str, data: dict[str, Any] | None = None, *, incident: bool = False) -> bool:
        """Ask for SAFE once per (code, scope) episode. Returns False when this episode was already reported."""
        key = (code.value, scope)
        if key in self._safe_sent:
            return False
        self._safe_sent.add(key)
        self.safe_requests.append((code, scope, reason))
        self.transition("oms_safe", scope, None, "SAFE", code, reason, data)
        if incident:
            self.transition("incident", scope, None, "OPEN", code, reason, data)
        log.error("OMS requests SAFE (%s, %s): %s", code, scope, reason)
        self.alert("critical", f"oms:{code.value}:{scope}", f"SAFE requested by the OMS — {code.value} ({scope}): {reason}")
        try:
            self.on_safe(code, reason)
        except Exception:  # the request is audited and alerted; a failing callback must not lose the event
            log.exception("on_safe callback failed for %s", code)
        return True

    def episode_over(self, code: ErrorCode, scope: str) -> None:
        """The condition behind a SAFE request has cleared: a new occurrence will be reported again."""
        self._safe_sent.discard((code.value, scope))

    def warn(self, key: str, text: str) -> None:
        log.warning("%s", text)
        self.alert("warning", key, text)
