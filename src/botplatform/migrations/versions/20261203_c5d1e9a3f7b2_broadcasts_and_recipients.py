"""broadcasts and recipients: one row per broadcast, one per (broadcast, contact)

Revision ID: c5d1e9a3f7b2
Revises: a9c4e2f7b1d3
Create Date: 2026-12-03 15:34:13.146531

The unique (broadcast_id, contact_id) key makes the audience's materialisation replayable
(INSERT … ON CONFLICT DO NOTHING) and a recipient one row, whatever happens.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls

# Row-level security for the new tenant tables (migrations/rls.py).
RLS_TABLES = ("broadcasts", "broadcast_recipients")


revision: str = "c5d1e9a3f7b2"
down_revision: str | Sequence[str] | None = "a9c4e2f7b1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("cursor", sa.String(length=200), nullable=True),
        sa.Column("materialised", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("driver_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_reason", sa.String(length=50), nullable=True),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_broadcasts_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_broadcasts_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_broadcasts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcasts_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(
            "ix_broadcasts_status_next_run_at", ["status", "next_run_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_broadcasts_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("error_title", sa.String(length=500), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_recipients_broadcast_id_broadcasts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_broadcast_recipients_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_broadcast_recipients_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_recipients")),
        sa.UniqueConstraint(
            "broadcast_id",
            "contact_id",
            name=op.f("uq_broadcast_recipients_broadcast_id_contact_id"),
        ),
    )
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcast_recipients_broadcast_id_status", ["broadcast_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_broadcast_recipients_channel_id_sent_at", ["channel_id", "sent_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_broadcast_recipients_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_broadcast_recipients_workspace_id"), ["workspace_id"], unique=False
        )

    rls.protect(RLS_TABLES)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_message_id"))
        batch_op.drop_index("ix_broadcast_recipients_channel_id_sent_at")
        batch_op.drop_index("ix_broadcast_recipients_broadcast_id_status")

    op.drop_table("broadcast_recipients")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadcasts_workspace_id"))
        batch_op.drop_index("ix_broadcasts_status_next_run_at")
        batch_op.drop_index(batch_op.f("ix_broadcasts_channel_id"))

    op.drop_table("broadcasts")
