"""foundation schema

Revision ID: 0001
Revises: 
The audit tables are append-only (triggers); outbox, state_kv, key_entries and snapshots are state.
Create Date: 2026-11-22 17:58:13.546498
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.append_only import drop_function, install_function, protect, unprotect


AUDIT_TABLES = ('runs', 'decisions', 'intents', 'risk_verdicts', 'orders', 'order_events', 'fills', 'operator_commands', 'state_transitions', 'reconciliations')

revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('inputs_ref', sa.String(length=128), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('tags', sa.String(length=256), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('params_hash', sa.String(length=64), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_decision_id'), ['decision_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_ts'), ['ts'], unique=False)

    op.create_table('fills',
    sa.Column('fill_id', sa.String(length=64), nullable=False),
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('venue_order_id', sa.String(length=64), nullable=True),
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=32), nullable=False),
    sa.Column('asset', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.String(length=64), nullable=False),
    sa.Column('price', sa.String(length=64), nullable=False),
    sa.Column('fee', sa.String(length=64), nullable=False),
    sa.Column('fee_currency', sa.String(length=16), nullable=False),
    sa.Column('fee_quote', sa.String(length=64), nullable=False),
    sa.Column('is_maker', sa.Boolean(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('venue_ts', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills'))
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fills_client_order_id'), ['client_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fills_fill_id'), ['fill_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fills_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fills_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fills_ts'), ['ts'], unique=False)

    op.create_table('intents',
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('asset', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.String(length=64), nullable=False),
    sa.Column('order_type', sa.String(length=16), nullable=False),
    sa.Column('limit_price', sa.String(length=64), nullable=True),
    sa.Column('tif', sa.String(length=4), nullable=False),
    sa.Column('urgency', sa.String(length=8), nullable=False),
    sa.Column('risk_tags', sa.String(length=256), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intents'))
    )
    with op.batch_alter_table('intents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intents_intent_id'), ['intent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intents_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intents_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intents_ts'), ['ts'], unique=False)

    op.create_table('key_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('venue', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('api_key_masked', sa.String(length=64), nullable=False),
    sa.Column('master_key_id', sa.String(length=64), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_entries')),
    sa.UniqueConstraint('venue', 'kind', 'key_id', name=op.f('uq_key_entries_venue'))
    )
    op.create_table('operator_commands',
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('command', sa.String(length=32), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_commands'))
    )
    with op.batch_alter_table('operator_commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_commands_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_commands_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_commands_ts'), ['ts'], unique=False)

    op.create_table('order_events',
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('venue_order_id', sa.String(length=64), nullable=True),
    sa.Column('event', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events'))
    )
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_events_client_order_id'), ['client_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_events_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_events_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_events_ts'), ['ts'], unique=False)

    op.create_table('orders',
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('venue', sa.String(length=32), nullable=False),
    sa.Column('asset', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.String(length=64), nullable=False),
    sa.Column('order_type', sa.String(length=16), nullable=False),
    sa.Column('limit_price', sa.String(length=64), nullable=True),
    sa.Column('tif', sa.String(length=4), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_client_order_id'), ['client_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_intent_id'), ['intent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_ts'), ['ts'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('dedup_key', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('photo', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_dedup_key'), ['dedup_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)

    op.create_table('reconciliations',
    sa.Column('venue', sa.String(length=32), nullable=False),
    sa.Column('asset', sa.String(length=32), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('internal_qty', sa.String(length=64), nullable=True),
    sa.Column('venue_qty', sa.String(length=64), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliations'))
    )
    with op.batch_alter_table('reconciliations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliations_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliations_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliations_ts'), ['ts'], unique=False)

    op.create_table('risk_verdicts',
    sa.Column('intent_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('approved', sa.Boolean(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_verdicts'))
    )
    with op.batch_alter_table('risk_verdicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_verdicts_intent_id'), ['intent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_risk_verdicts_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_risk_verdicts_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_risk_verdicts_ts'), ['ts'], unique=False)

    op.create_table('runs',
    sa.Column('run_kind', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_ts'), ['ts'], unique=False)

    op.create_table('snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots'))
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshots_ts'), ['ts'], unique=False)

    op.create_table('state_kv',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_kv')),
    sa.UniqueConstraint('namespace', 'key', name=op.f('uq_state_kv_namespace'))
    )
    op.create_table('state_transitions',
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('from_state', sa.String(length=32), nullable=True),
    sa.Column('to_state', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_id', sa.String(length=40), nullable=True),
    sa.Column('version_hash', sa.String(length=80), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_transitions'))
    )
    with op.batch_alter_table('state_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_transitions_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_transitions_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_state_transitions_ts'), ['ts'], unique=False)

    install_function(op)
    for table in AUDIT_TABLES:
        protect(op, table)


def downgrade() -> None:
    for table in AUDIT_TABLES:
        unprotect(op, table)
    drop_function(op)
    with op.batch_alter_table('state_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_transitions_ts'))
        batch_op.drop_index(batch_op.f('ix_state_transitions_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_state_transitions_run_id'))

    op.drop_table('state_transitions')
    op.drop_table('state_kv')
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_ts'))

    op.drop_table('snapshots')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_ts'))
        batch_op.drop_index(batch_op.f('ix_runs_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_runs_run_id'))

    op.drop_table('runs')
    with op.batch_alter_table('risk_verdicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_verdicts_ts'))
        batch_op.drop_index(batch_op.f('ix_risk_verdicts_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_risk_verdicts_run_id'))
        batch_op.drop_index(batch_op.f('ix_risk_verdicts_intent_id'))

    op.drop_table('risk_verdicts')
    with op.batch_alter_table('reconciliations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliations_ts'))
        batch_op.drop_index(batch_op.f('ix_reconciliations_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_reconciliations_run_id'))

    op.drop_table('reconciliations')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_dedup_key'))
        batch_op.drop_index(batch_op.f('ix_outbox_created_at'))

    op.drop_table('outbox')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_ts'))
        batch_op.drop_index(batch_op.f('ix_orders_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_orders_run_id'))
        batch_op.drop_index(batch_op.f('ix_orders_intent_id'))
        batch_op.drop_index(batch_op.f('ix_orders_client_order_id'))

    op.drop_table('orders')
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_events_ts'))
        batch_op.drop_index(batch_op.f('ix_order_events_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_order_events_run_id'))
        batch_op.drop_index(batch_op.f('ix_order_events_client_order_id'))

    op.drop_table('order_events')
    with op.batch_alter_table('operator_commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_commands_ts'))
        batch_op.drop_index(batch_op.f('ix_operator_commands_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_operator_commands_run_id'))

    op.drop_table('operator_commands')
    op.drop_table('key_entries')
    with op.batch_alter_table('intents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intents_ts'))
        batch_op.drop_index(batch_op.f('ix_intents_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_intents_run_id'))
        batch_op.drop_index(batch_op.f('ix_intents_intent_id'))

    op.drop_table('intents')
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fills_ts'))
        batch_op.drop_index(batch_op.f('ix_fills_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_fills_run_id'))
        batch_op.drop_index(batch_op.f('ix_fills_fill_id'))
        batch_op.drop_index(batch_op.f('ix_fills_client_order_id'))

    op.drop_table('fills')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_ts'))
        batch_op.drop_index(batch_op.f('ix_decisions_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_run_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_decision_id'))

    op.drop_table('decisions')
