"""send attempted marker: `messages.send_attempted_at`, committed just before a provider
request leaves and cleared when its outcome is written

Revision ID: f3b8d2a6c4e1
Revises: e7a1c5d9b3f2
Create Date: 2026-12-03 13:00:00.000000

A leased message without the marker provably never left and is sent again when its lease
ends; one with it is never re-sent automatically (it waits for the provider's status, then
ends `failed` with `delivery_unknown`). Existing rows start without it: today's behaviour.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3b8d2a6c4e1"
down_revision: str | Sequence[str] | None = "e7a1c5d9b3f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("send_attempted_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("send_attempted_at")
