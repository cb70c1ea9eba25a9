"""analytics: conversation cycles (opened/reopened/resolved history), daily rollups, the
rollup job's watermark, and an index to find messages changed since a moment

Revision ID: 4d2a9c7e1b53
Revises: b9e4f1a7c2d8
Create Date: 2026-12-03 19:10:00.000000

Conversations that exist when this runs get one cycle each (opened when created, resolved
when last updated if resolved now): the history before this revision is not stored anywhere.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls
from botplatform.models.base import UTCDateTime

revision: str = "4d2a9c7e1b53"
down_revision: str | Sequence[str] | None = "b9e4f1a7c2d8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in models/analytics.py (a migration keeps its own copy: the model may change later).
STALE = "facts_at IS NULL OR (resolved_at IS NOT NULL AND resolution_seconds IS NULL)"
RLS_TABLES = ("conversation_cycles", "analytics_daily", "analytics_watermarks")


def upgrade() -> None:
    op.create_table(
        "conversation_cycles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("reopened", sa.Boolean(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("bot_id", sa.Uuid(), nullable=True),
        sa.Column("bot_version_id", sa.Uuid(), nullable=True),
        sa.Column("bot_outcome", sa.String(length=20), nullable=True),
        sa.Column("bot_node_id", sa.String(length=100), nullable=True),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
        sa.Column("first_responder_id", sa.Uuid(), nullable=True),
        sa.Column("first_response_seconds", sa.Float(), nullable=True),
        sa.Column("first_response_business_seconds", sa.Float(), nullable=True),
        sa.Column("resolution_seconds", sa.Float(), nullable=True),
        sa.Column("resolution_business_seconds", sa.Float(), nullable=True),
        sa.Column("facts_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_cycles_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_conversation_cycles_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_cycles")),
    )
    with op.batch_alter_table("conversation_cycles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_cycles_open_conversation_id",
            ["conversation_id"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.create_index(
            "ix_conversation_cycles_workspace_id_opened_at", ["workspace_id", "opened_at"]
        )
        batch_op.create_index(
            "ix_conversation_cycles_stale",
            ["workspace_id", "opened_at"],
            sqlite_where=sa.text(STALE),
            postgresql_where=sa.text(STALE),
        )
        batch_op.create_index(
            "ix_conversation_cycles_workspace_id_updated_at", ["workspace_id", "updated_at"]
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_cycles_workspace_id"), ["workspace_id"], unique=False
        )
    op.create_table(
        "analytics_daily",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_daily_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_daily")),
    )
    with op.batch_alter_table("analytics_daily", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_daily_workspace_id_day", ["workspace_id", "day"])
        batch_op.create_index(
            batch_op.f("ix_analytics_daily_workspace_id"), ["workspace_id"], unique=False
        )
    op.create_table(
        "analytics_watermarks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_watermarks_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_watermarks")),
        sa.UniqueConstraint("workspace_id", name=op.f("uq_analytics_watermarks_workspace_id")),
    )
    with op.batch_alter_table("analytics_watermarks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_watermarks_workspace_id"), ["workspace_id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_workspace_id_updated_at", ["workspace_id", "updated_at"], unique=False
        )
    _backfill_cycles()
    rls.protect(RLS_TABLES)


def _backfill_cycles() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # the conversations of every tenant
        op.execute("SET LOCAL app.bypass_rls = 'on'")
    conversations = sa.table(
        "conversations",
        sa.column("id", sa.Uuid()),
        sa.column("workspace_id", sa.Uuid()),
        sa.column("channel_id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    cycles = sa.table(
        "conversation_cycles",
        *(
            sa.column(name, kind)
            for name, kind in (
                ("id", sa.Uuid()),
                ("workspace_id", sa.Uuid()),
                ("conversation_id", sa.Uuid()),
                ("channel_id", sa.Uuid()),
                ("opened_at", UTCDateTime()),
                ("reopened", sa.Boolean()),
                ("resolved_at", UTCDateTime()),
                ("created_at", UTCDateTime()),
                ("updated_at", UTCDateTime()),
            )
        ),
    )
    rows = bind.execute(sa.select(conversations)).mappings().all()
    batch = [
        {
            "id": uuid.uuid4(),
            "workspace_id": row["workspace_id"],
            "conversation_id": row["id"],
            "channel_id": row["channel_id"],
            "opened_at": row["created_at"],
            "reopened": False,
            "resolved_at": row["updated_at"] if row["status"] == "resolved" else None,
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
        for row in rows
    ]
    if batch:
        bind.execute(sa.insert(cycles), batch)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_workspace_id_updated_at")
    op.drop_table("analytics_watermarks")
    op.drop_table("analytics_daily")
    op.drop_table("conversation_cycles")
