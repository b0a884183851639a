"""The schema. Alembic owns it (alembic/versions); these models describe it for the code.

Audit tables (AUDIT_TABLES) are append-only: no code updates or deletes them and database triggers
refuse it. Every audit row carries ts (UTC), run_id, mode, strategy_id where it applies, version_hash,
config_hash and schema_version. Current state lives in the state tables at the bottom.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store.types import DecimalText, UTCDateTime

SCHEMA_VERSION = 1  # bump with every migration that changes an audit table's meaning

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: DecimalText(), dict[str, Any]: JSON()}


class AuditMixin:
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    strategy_id: Mapped[str | None] = mapped_column(String(40), index=True)
    version_hash: Mapped[str] = mapped_column(String(80))
    config_hash: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # extra fields, JSON-able


# ----------------------------------------------------------------------------- audit
class Run(AuditMixin, Base):
    __tablename__ = "runs"
    run_kind: Mapped[str] = mapped_column(String(16))  # start | stop
    detail: Mapped[str] = mapped_column(Text, default="")


class DecisionRow(AuditMixin, Base):
    __tablename__ = "decisions"
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    inputs_ref: Mapped[str] = mapped_column(String(128))
    rationale: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(String(256), default="")
    code_hash: Mapped[str] = mapped_column(String(64), default="")
    params_hash: Mapped[str] = mapped_column(String(64), default="")


class IntentRow(AuditMixin, Base):
    __tablename__ = "intents"
    intent_id: Mapped[str] = mapped_column(String(64), index=True)
    decision_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    asset: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Decimal]
    order_type: Mapped[str] = mapped_column(String(16))
    limit_price: Mapped[Decimal | None]
    tif: Mapped[str] = mapped_column(String(4))
    urgency: Mapped[str] = mapped_column(String(8))
    risk_tags: Mapped[str] = mapped_column(String(256), default="")
    rationale: Mapped[str] = mapped_column(Text, default="")
    target: Mapped[str | None] = mapped_column(String(64))


class RiskVerdictRow(AuditMixin, Base):
    __tablename__ = "risk_verdicts"
    intent_id: Mapped[str] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(16))  # staged | execution
    approved: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OrderRow(AuditMixin, Base):
    __tablename__ = "orders"
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    intent_id: Mapped[str] = mapped_column(String(64), index=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(32))
    asset: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Decimal]
    order_type: Mapped[str] = mapped_column(String(16))
    limit_price: Mapped[Decimal | None]
    tif: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(20))


class OrderEventRow(AuditMixin, Base):
    __tablename__ = "order_events"
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(24))  # submit | ack | reject | fill | cancel_request | canceled | expired | illegal | lookup
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")


class FillRow(AuditMixin, Base):
    __tablename__ = "fills"
    fill_id: Mapped[str] = mapped_column(String(64), index=True)
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(64))
    intent_id: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(32))
    asset: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Decimal]
    price: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_currency: Mapped[str] = mapped_column(String(16))
    fee_quote: Mapped[Decimal]
    is_maker: Mapped[bool] = mapped_column(Boolean)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    venue_ts: Mapped[datetime | None]


class OperatorCommandRow(AuditMixin, Base):
    __tablename__ = "operator_commands"
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[str] = mapped_column(Text, default="")  # never contains secrets
    outcome: Mapped[str] = mapped_column(String(24))  # ok | refused | unauthorized | error | dropped_stale | rate_limited
    detail: Mapped[str] = mapped_column(Text, default="")


class StateTransitionRow(AuditMixin, Base):
    __tablename__ = "state_transitions"
    kind: Mapped[str] = mapped_column(String(24))  # trading_state | arming | dirty | feed | mandate | config ...
    scope: Mapped[str] = mapped_column(String(64), default="global")  # global | asset | strategy:<id> | venue:<name>
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")


class ReconciliationRow(AuditMixin, Base):
    __tablename__ = "reconciliations"
    venue: Mapped[str] = mapped_column(String(32))
    asset: Mapped[str | None] = mapped_column(String(32))
    ok: Mapped[bool] = mapped_column(Boolean)
    internal_qty: Mapped[Decimal | None]
    venue_qty: Mapped[Decimal | None]
    code: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


AUDIT_TABLES: dict[str, type[AuditMixin]] = {
    "run": Run,
    "decision": DecisionRow,
    "intent": IntentRow,
    "risk_verdict": RiskVerdictRow,
    "order": OrderRow,
    "order_event": OrderEventRow,
    "fill": FillRow,
    "command": OperatorCommandRow,
    "state_transition": StateTransitionRow,
    "reconciliation": ReconciliationRow,
}


class IncidentEntryRow(AuditMixin, Base):
    """Incident reports (spec 13), append-only like the audit tables: an incident is the fold of its entries
    (open, trigger, annotate, close). Written by bot.ops.incidents directly (not through the AuditStore buffer:
    an incident must be on disk before the operator is told about it)."""

    __tablename__ = "incident_entries"
    incident_id: Mapped[str] = mapped_column(String(40), index=True)
    entry: Mapped[str] = mapped_column(String(16))  # open | trigger | annotate | close
    field: Mapped[str | None] = mapped_column(String(24))  # for annotate: root_cause | mitigation | follow_up | impact | note
    text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(64), default="")


# ----------------------------------------------------------------------------- state (mutable)
class OutboxRow(Base):
    """Alerts waiting for delivery. Written in the same transaction as the event that raised them."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # one row per destination chat (migration 0002_control)
    severity: Mapped[str] = mapped_column(String(10))
    dedup_key: Mapped[str] = mapped_column(String(128), index=True)
    text: Mapped[str] = mapped_column(Text)
    photo: Mapped[bytes | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending | sent | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class StateKV(Base):
    """Small pieces of persistent state (arming, lockouts, approved config hash, trading state)."""

    __tablename__ = "state_kv"
    __table_args__ = (UniqueConstraint("namespace", "key"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class KeyEntryRow(Base):
    """Encrypted venue API keys (the keys issue owns the format). Never holds a clear secret."""

    __tablename__ = "key_entries"
    __table_args__ = (UniqueConstraint("venue", "kind", "key_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # read | trade
    key_id: Mapped[str] = mapped_column(String(64))
    api_key_masked: Mapped[str] = mapped_column(String(64))
    master_key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class SnapshotRow(Base):
    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(index=True)
    run_id: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
