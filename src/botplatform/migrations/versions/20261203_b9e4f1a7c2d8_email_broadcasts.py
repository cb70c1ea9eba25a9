"""email broadcasts: `contacts.email_opted_out` (the unsubscribe link's flag, apart from the
contact's opt-out of everything), and a broadcast without a channel (email goes over SMTP)

Revision ID: b9e4f1a7c2d8
Revises: c5e7a9b1d3f4
Create Date: 2026-12-03 17:15:00.000000

`broadcasts.channel_id` and `broadcast_recipients.channel_id` become nullable (an email
broadcast has none); a recipient's `address` widens to hold an email address (320).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b9e4f1a7c2d8"
down_revision: str | Sequence[str] | None = "c5e7a9b1d3f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_opted_out", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.alter_column("channel_id", existing_type=sa.Uuid(), nullable=True)
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.alter_column("channel_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column(
            "address",
            existing_type=sa.String(length=100),
            type_=sa.String(length=320),
            existing_nullable=True,
        )


def downgrade() -> None:
    # Email broadcasts have no channel: they cannot be kept by the older schema.
    op.execute("DELETE FROM broadcasts WHERE channel_id IS NULL")
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.alter_column(
            "address",
            existing_type=sa.String(length=320),
            type_=sa.String(length=100),
            existing_nullable=True,
        )
        batch_op.alter_column("channel_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.alter_column("channel_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("email_opted_out")
