"""channel members: which agents work which channel's inbox

Revision ID: a3c5e7f90b12
Revises: 59ae673bb89d
Create Date: 2026-11-24 21:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls

# Row-level security for the new tenant table (migrations/rls.py).
RLS_TABLES = ("channel_members",)

revision: str = "a3c5e7f90b12"
down_revision: str | Sequence[str] | None = "59ae673bb89d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_members",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_members_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_channel_members_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_members")),
        sa.UniqueConstraint(
            "channel_id", "user_id", name=op.f("uq_channel_members_channel_id_user_id")
        ),
    )
    with op.batch_alter_table("channel_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_members_channel_id"), ["channel_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_channel_members_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_channel_members_workspace_id"), ["workspace_id"], unique=False
        )
    rls.protect(RLS_TABLES)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("channel_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_members_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_channel_members_user_id"))
        batch_op.drop_index(batch_op.f("ix_channel_members_channel_id"))
    op.drop_table("channel_members")
