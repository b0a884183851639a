"""ops: incident reports (append-only entries)

Revision ID: 0002_ops_incidents
Revises: 0001
Create Date: 2026-11-22 18:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.append_only import protect, unprotect

revision: str = "0002_ops_incidents"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_entries",
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("entry", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=24), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("strategy_id", sa.String(length=40), nullable=True),
        sa.Column("version_hash", sa.String(length=80), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_entries")),
    )
    with op.batch_alter_table("incident_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_entries_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_entries_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_entries_strategy_id"), ["strategy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_entries_ts"), ["ts"], unique=False)
    protect(op, "incident_entries")


def downgrade() -> None:
    unprotect(op, "incident_entries")
    op.drop_table("incident_entries")
