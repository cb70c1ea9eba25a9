"""message templates: WhatsApp message templates per channel, kept in step with Meta

Revision ID: a9c4e2f7b1d3
Revises: f3b8d2a6c4e1
Create Date: 2026-12-03 16:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls

# Row-level security for the new tenant table (migrations/rls.py).
RLS_TABLES = ("message_templates",)

revision: str = "a9c4e2f7b1d3"
down_revision: str | Sequence[str] | None = "f3b8d2a6c4e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("provider_template_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=15), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.Column("quality_score", sa.String(length=20), nullable=True),
        sa.Column("parameter_format", sa.String(length=12), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("status_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_message_templates_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_message_templates_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "channel_id",
            "name",
            "language",
            name=op.f("uq_message_templates_channel_id_name_language"),
        ),
    )
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_templates_channel_id"), ["channel_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_message_templates_provider_template_id"),
            ["provider_template_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_message_templates_workspace_id"), ["workspace_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_templates_workspace_id_created_at",
            ["workspace_id", "created_at"],
            unique=False,
        )
    rls.protect(RLS_TABLES)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_message_templates_workspace_id_created_at")
        batch_op.drop_index(batch_op.f("ix_message_templates_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_message_templates_provider_template_id"))
        batch_op.drop_index(batch_op.f("ix_message_templates_channel_id"))
    op.drop_table("message_templates")
