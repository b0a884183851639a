"""merge the control plane's and ops' revisions

Revision ID: 0003_merge_control_ops
Revises: 0002_control, 0002_ops_incidents
"""
from __future__ import annotations

from collections.abc import Sequence

revision: str = '0003_merge_control_ops'
down_revision: str | Sequence[str] | None = ('0002_control', '0002_ops_incidents')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
